"""``train.diagnostics: true``: per-pair rows at the start, every ``diagnostics_steps`` and the end of a real tiny
RRPO run, consistent with the trainer's own evaluation, and shown by ``savi inspect --diagnostics``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from savi_plugin.cli import main
from savi_plugin.data.diagnostics_rows import KL_TOLERANCE, DiagnosticsLines
from tests.builders import read_jsonl, tiny_rrpo_files, tiny_rrpo_run, write_jsonl


@pytest.fixture(scope="module")
def run(tiny_llava_onevision, synthetic_samples, tmp_path_factory) -> Path:
    folder = tiny_rrpo_run(tmp_path_factory.mktemp("diagnostics"), tiny_llava_onevision, synthetic_samples[:3],
                           learning_rate=2.0e-3, max_steps=4, diagnostics=True, diagnostics_steps=2)
    return folder


def test_one_row_per_pair_and_point_with_consistent_numbers(run, tiny_llava_onevision):
    from transformers import AutoTokenizer

    rows = read_jsonl(run / "out" / "diagnostics.jsonl")
    assert sorted((r["step"], r["id"]) for r in rows) == [(s, f"p{i}") for s in (0, 2, 4) for i in range(3)]
    tokenizer = AutoTokenizer.from_pretrained(tiny_llava_onevision)
    pairs = {p["id"]: p for p in read_jsonl(run / "pairs.jsonl")}
    for row in rows:
        assert row["margin"] == pytest.approx(row["reward_chosen"] - row["reward_rejected"], abs=1e-6)
        assert sum(row["chosen_token_kl"]) == pytest.approx(row["kl_chosen"], rel=1e-4, abs=1e-7)
        assert "".join(row["chosen_tokens"]).startswith(pairs[row["id"]]["chosen"])
        answer = pairs[row["id"]]["chosen"].removeprefix("The answer is ").rstrip(".")
        assert row["tagged_tokens"]["chosen"] == len(tokenizer(" " + answer, add_special_tokens=False).input_ids)
        if row["step"] == 0:  # the LoRA adapter starts at zero: the policy is the reference
            assert row["margin"] == 0 and row["kl_chosen"] == 0 and row["logratio_chosen"] == 0
    lines = DiagnosticsLines()  # every row training wrote is one the readers take
    assert [lines.problem(row, n) for n, row in enumerate(rows, 1)] == [None] * len(rows)
    mean = {step: sum(r["margin"] for r in rows if r["step"] == step) / 3 for step in (0, 2, 4)}
    assert mean[0] == 0 < mean[2] < mean[4]  # the pairs are learned, point by point
    logged = json.loads((run / "out" / "train_report.json").read_text())["log_history"]
    assert any("rewards/margins" in entry for entry in logged)


def test_inspect_shows_the_diagnostics_and_lists_pairs_never_learned(run, tmp_path, capsys):
    rows = read_jsonl(run / "out" / "diagnostics.jsonl")
    never = next(r["id"] for r in rows if r["step"] == 4)
    # a row as training writes it: the margin is the difference of the rewards the row holds
    edited = [dict(r, margin=-abs(r["margin"]) - 1e-3, reward_chosen=r["reward_rejected"] - abs(r["margin"]) - 1e-3)
              if r["id"] == never else r for r in rows]
    write_jsonl(tmp_path / "diag.jsonl", edited)
    assert main(["inspect", str(run / "pairs.jsonl"), "--out", str(tmp_path / "site"), "--diagnostics",
                 str(tmp_path / "diag.jsonl"), "--frames", "0", "--no-progress"]) == 0
    assert "1 never learned" in capsys.readouterr().out
    number = int(never[1:]) + 1
    page = (tmp_path / "site" / f"pairs/0/{number}.html").read_text()
    assert 'id="never-learned"' in page and "<svg" in page and 'class="tok"' in page
    other = (tmp_path / "site" / f"pairs/0/{1 if number != 1 else 2}.html").read_text()
    assert 'id="never-learned"' not in other and 'title="KL ' in other


def test_readme_train_line_writes_diagnostics_beside_the_adapter(tiny_llava_onevision, synthetic_samples, tmp_path,
                                                                 monkeypatch):
    """README's "See the data and the training" block, its four lines as written, from a working folder holding
    `pairs.jsonl` and a user recipe `my.yaml` (the tiny model, the pairs, `runs/train` as the output folder)."""
    import yaml

    monkeypatch.chdir(tmp_path)
    _, recipe = tiny_rrpo_files(tmp_path, tiny_llava_onevision, synthetic_samples[:2], max_steps=2,
                                output_dir="runs/train")
    recipe["data"] = {"pairs": "pairs.jsonl"}
    Path("my.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["inspect", "pairs.jsonl", "--out", "report/"]) == 0
    assert Path("report/index.html").is_file()
    assert main(["train", "my.yaml", "train.diagnostics=true"]) == 0
    rows = read_jsonl(Path("runs/train/diagnostics.jsonl"))
    assert Path("runs/train/adapter_model.safetensors").is_file()
    assert sorted({r["id"] for r in rows}) == ["p0", "p1"] and {r["step"] for r in rows} >= {0, 2}
    assert main(["inspect", "pairs.jsonl", "--out", "report/", "--diagnostics", "runs/train/diagnostics.jsonl"]) == 0
    assert "never learned" in Path("report/index.html").read_text()
    assert main(["plot", "runs/train"]) == 0
    assert Path("runs/train/training_curves.png").stat().st_size > 0


def test_inspect_never_colours_a_pair_with_the_rows_of_another_pair_of_the_same_id(run, tmp_path, capsys, caplog):
    """Diagnostics written for one pair file, joined to another whose pairs share the ids: the rows carry the
    pair's content digest, the mismatching ones are not shown and are counted in one line naming the file."""
    from savi_plugin.data.identity import pair_digest
    from savi_plugin.data.record import validate_record

    pairs = read_jsonl(run / "pairs.jsonl")
    rows = read_jsonl(run / "out" / "diagnostics.jsonl")
    digests = {p["id"]: pair_digest(validate_record(p)) for p in pairs}
    assert all(r["pair_sha256"] == digests[r["id"]] for r in rows)
    other = [dict(p, chosen=p["chosen"] + " Or yellow.", chosen_tagged=None, rejected_tagged=None) if p["id"] == "p1"
             else p for p in pairs]  # p1 of another file: other text, same id
    write_jsonl(tmp_path / "other.jsonl", other)
    with caplog.at_level("WARNING"):
        assert main(["inspect", str(tmp_path / "other.jsonl"), "--out", str(tmp_path / "site"), "--diagnostics",
                     str(run / "out" / "diagnostics.jsonl"), "--frames", "0", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "diagnostics for 2 pair(s)" in printed and "3 diagnostics row(s) of other pairs" in printed
    assert [r.getMessage() for r in caplog.records if "other pairs of the same ids" in r.getMessage()] == [
        f"{run / 'out' / 'diagnostics.jsonl'}: 3 row(s) were written for other pairs of the same ids (their text "
        f"differs from {tmp_path / 'other.jsonl'}): not shown"]
    page = (tmp_path / "site" / "pairs/0/2.html").read_text()
    assert 'class="tok"' not in page and "<svg" not in page  # p1: no tokens of the other text
    assert 'class="tok"' in (tmp_path / "site" / "pairs/0/1.html").read_text()


def test_the_kl_tolerance_holds_the_rounding_of_trainings_exact_token_kl():
    """A row's KL may read below 0 by :data:`KL_TOLERANCE` per token: the float32 rounding of training's own
    full-vocabulary KL (token_kl) between two log-softmaxes of the same logits summed in another order, over a
    Qwen2-sized vocabulary, stays far inside it (measured: at most 1.5e-5 nats), and it is below 0 there."""
    import torch

    from savi_plugin.training.token_logprobs import token_kl

    generator = torch.Generator().manual_seed(0)
    lowest = 0.0
    for scale in (3.0, 5.0):
        logits = torch.randn(4, 152_064, generator=generator) * scale
        p = torch.log_softmax(logits, -1)
        q = torch.log_softmax(logits.flip(-1), -1).flip(-1)
        lowest = min(lowest, float(token_kl(p, q).min()), float(token_kl(q, p).min()))
    assert -KL_TOLERANCE / 20 < lowest < 0


def test_a_restart_drops_the_earlier_attempts_rows_from_its_step_on(tmp_path):
    """Red team 9 #16: a run stopped by a full disk (no checkpoint) was re-run from step 0 and appended to the
    failed attempt's rows (and its torn line), so one (pair, step) held two runs' values. On train begin the file
    keeps only the rows measured before the step training starts from: none from step 0, steps < N on resume."""
    from savi_plugin.training.diagnostics import cut_from_step

    path = tmp_path / "diagnostics.jsonl"
    rows = [{"id": f"p{i}", "step": s, "margin": float(s), "reward_chosen": float(s), "reward_rejected": 0.0}
            for s in (0, 1, 2, 3) for i in range(2)]
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"id": "p0", "st'  # a torn last line
    path.write_text(text)
    assert cut_from_step(path, 2) == 5  # steps 2, 3 (4 rows) and the torn line
    assert [(r["id"], r["step"]) for r in read_jsonl(path)] == [(f"p{i}", s) for s in (0, 1) for i in range(2)]
    assert cut_from_step(path, 2) == 0  # nothing left to drop: the file is not rewritten
    assert cut_from_step(path, 0) == 4 and path.read_text() == ""  # starting over: the file starts afresh
    assert cut_from_step(tmp_path / "absent.jsonl", 0) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("line, where", [('{"id": 5, "garbage": true}', "3:step: must be a whole number"),
                                         ('{"id": "p0", "st', "3:-: invalid JSON"),
                                         ("[1]", "3:-: not a diagnostics row"),
                                         # red team 11 B#45, B#46: one rule with `savi inspect`
                                         ('{"id": "p0", "step": 0, "margin": 123.0, "reward_chosen": 123.0, '
                                          '"reward_rejected": 0.0}',
                                          "3:step: step 0 repeats the step of line 1: a pair's diagnostics row"),
                                         ('{"id": "p0", "step": 5, "kl_chosen": -5.0}',
                                          "3:kl_chosen: must be a number in [-0.001,")])
def test_a_restart_refuses_a_complete_line_training_did_not_write(line, where, tmp_path, capsys):
    """Red team 10 B#36: a complete bad line in the middle of diagnostics.jsonl was dropped on --resume as an
    earlier attempt's row, with one INFO line. The JSONL rule: only a torn last line is cut; a bad complete line
    is refused at its file:line:field (as the generation's progress file refuses one), and the file is kept."""
    from savi_plugin.cli import run_guarded
    from savi_plugin.training.diagnostics import cut_from_step

    path = tmp_path / "diagnostics.jsonl"
    rows = [json.dumps({"id": f"p{i}", "step": s, "margin": 0.0, "reward_chosen": 0.0, "reward_rejected": 0.0})
            for s in (0, 1) for i in range(2)]
    text = "\n".join(rows[:2] + [line] + rows[2:]) + "\n"
    path.write_text(text)
    capsys.readouterr()
    assert run_guarded(lambda: cut_from_step(path, 1), "train") == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}:{where}"), err
    assert err[0].endswith("not a line training wrote (the file was edited); remove the line, or remove the file to "
                           "measure every step again")
    assert path.read_text() == text and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_train_resume_refuses_an_edited_diagnostics_file_before_it_loads_anything(run, tmp_path, capsys):
    """Red team 10 B#36 through `savi train --resume`: one line naming diagnostics.jsonl:3, exit 1, before the
    model loads; the file and the finished run's report are kept."""
    import shutil

    folder = tmp_path / "copy"
    shutil.copytree(run, folder)
    path = folder / "out" / "diagnostics.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    text = "".join(lines[:2] + ['{"id": 5, "garbage": true}\n'] + lines[3:])
    path.write_text(text)
    capsys.readouterr()
    assert main(["train", str(folder / "r.yaml"), "--data", str(folder / "pairs.jsonl"), "--output-dir",
                 str(folder / "out"), "--resume"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: {path}:3:step: must be a whole number of steps in [0, 4294967295], got None: not a line "
                   f"training wrote (the file was edited); remove the line, or remove the file to measure every "
                   f"step again"], err
    assert path.read_text() == text and (folder / "out" / "train_report.json").is_file()


def test_inspect_lists_a_real_training_reports_skipped_pairs_and_refuses_another_files(run, tmp_path, capsys):
    """Red team 9, rows 46 and 62: ``--run-report`` with the ``train_report.json`` of a real run (``"failed":
    null``) builds the site; the same report given for another pair file is refused in one line, by the content
    the report vouches for (``dataset.content``), never listed as that file's skipped items."""
    report = run / "out" / "train_report.json"
    stored = json.loads(report.read_text())
    assert stored["failed"] is None and stored["dataset"]["content"]["size"] == (run / "pairs.jsonl").stat().st_size
    assert main(["inspect", str(run / "pairs.jsonl"), "--out", str(tmp_path / "site"), "--run-report", str(report),
                 "--frames", "0", "--no-progress"]) == 0
    assert "3 pair page(s), 0 bad record(s), 0 skipped item(s)" in capsys.readouterr().out
    other = tmp_path / "other.jsonl"
    write_jsonl(other, read_jsonl(run / "pairs.jsonl")[:2])
    assert main(["inspect", str(other), "--out", str(tmp_path / "site2"), "--run-report", str(report),
                 "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {other}: its content is not what its run report vouches for (edited, truncated or "
                   f"another file's report): {report}; give --run-report the report of this file's own run (or "
                   f"regenerate the file)"]
    assert not (tmp_path / "site2").exists()


def test_a_resumed_run_cuts_the_torn_row_a_kill_left_and_writes_no_step_twice(run, tmp_path):
    """Red team 9, row 48: diagnostics are appended through the one JSONL appender, keyed by pair and step, so a
    run resumed after a kill mid-line cuts the half line (the first new row is not glued onto it) and does not
    write again the rows of a step the killed run wrote."""
    from savi_plugin.training.diagnostics import DiagnosticsFile

    rows = read_jsonl(run / "out" / "diagnostics.jsonl")
    path = tmp_path / "diagnostics.jsonl"
    path.write_bytes((run / "out" / "diagnostics.jsonl").read_bytes() + b'{"id": "p0", "pair_sha256": "4031')
    diagnostics = DiagnosticsFile(path)
    again = [r for r in rows if r["step"] == 4]  # the resumed run scores its first step again
    new = [dict(r, step=6) for r in again]
    assert diagnostics.append(again) == 0 and diagnostics.append(new) == 3
    diagnostics.close()
    assert read_jsonl(path) == rows + new  # every line whole, each (pair, step) once


@pytest.mark.parametrize("link", ["symbolic", "hard"])
@pytest.mark.parametrize("opener", ["check_rows", "cut_from_step", "appender"])
def test_a_diagnostics_file_that_is_a_link_to_a_users_file_is_named_as_not_savis(opener, link, tmp_path):
    """Red team 11, A3 (as A1 for the progress file): ``diagnostics.jsonl`` replaced by a symlink to the user's
    file is named as a link savi did not write, before its lines are judged as rows training wrote; the user's
    file and the link are kept."""
    from savi_plugin.data.outputs import ForeignOutputError
    from savi_plugin.training import diagnostics

    user = tmp_path / "user3.txt"
    user.write_text("my notes\n")
    path = tmp_path / "out" / "diagnostics.jsonl"
    path.parent.mkdir()
    path.symlink_to("../user3.txt") if link == "symbolic" else path.hardlink_to(user)
    with pytest.raises(ForeignOutputError) as err:
        if opener == "appender":  # training's rows are appended through the one appender (pass 15 C #24: a hard
            from savi_plugin.data.writer import JsonlAppender  # link took 12 rows into the user's file)

            JsonlAppender(path)
        else:
            getattr(diagnostics, opener)(path, *([0] if opener == "cut_from_step" else []))
    if link == "symbolic":
        assert str(err.value) == (f"{path}: is a symbolic link to ../user3.txt, which savi did not write (savi writes "
                                  f"only files of its own); remove the link")
    else:
        assert str(err.value).startswith(f"{path}: is a hard link shared with another name (2 links): savi appends "
                                         f"to this file, and its lines would change under the other name too")
    assert user.read_text() == "my notes\n" and (path.is_symlink() or os.stat(user).st_nlink == 2)


def _derived_edits(row: dict) -> list[tuple[str, dict]]:
    """``(field, edited row)``: each field of :data:`~savi_plugin.data.diagnostics_rows.DERIVED` (and each of its
    operands) of a real row moved off what the others give, set to null, or left without its operands; and more
    tagged chosen tokens than chosen tokens."""
    from savi_plugin.data.diagnostics_rows import DERIVED

    edits = []
    for name, derived in DERIVED.items():
        for key in (name, *derived.operands):
            value = row[key]
            if isinstance(value, list):
                moved = [v + 0.5 for v in value]
            else:
                moved = value + 5.0
            edits.append((name, dict(row, **{key: moved})))
        edits.append((name, dict(row, **{name: None})))
        for key in (name, *derived.operands):
            edits.append((name, {k: v for k, v in row.items() if k != key}))
    edits.append(("tagged_tokens.chosen", dict(row, tagged_tokens={**row["tagged_tokens"],
                                                                   "chosen": len(row["chosen_tokens"]) + 1})))
    return edits


def test_a_row_whose_derived_field_is_not_what_training_computes_is_listed_never_drawn(run, tmp_path, capsys):
    """Pass 15 B #34: a row with ``margin: 5.0`` and both rewards 0 was drawn and decided the "never learned"
    list. Every field training computes from others of the row (``margin`` = ``reward_chosen -
    reward_rejected``, ``kl_chosen`` = the sum of ``chosen_token_kl``) is computed again by the reader, and a row
    that disagrees is listed at its ``file:line:field``, never drawn; the real rows around it still are."""
    rows = read_jsonl(run / "out" / "diagnostics.jsonl")
    last = max(n for n, r in enumerate(rows) if r["step"] == 4)
    variants = _derived_edits(rows[last])
    variants.append(("margin", dict(rows[last], margin=5.0, reward_chosen=0.0, reward_rejected=0.0)))  # B #34
    for k, (field, edited) in enumerate(variants):
        path = tmp_path / f"d{k}.jsonl"
        write_jsonl(path, rows[:last] + [edited] + rows[last + 1:])
        capsys.readouterr()
        assert main(["inspect", str(run / "pairs.jsonl"), "--out", str(tmp_path / f"s{k}"), "--diagnostics",
                     str(path), "--frames", "0", "--no-progress"]) == 0
        captured = capsys.readouterr()
        assert "1 bad diagnostics line(s)" in captured.out, (field, edited)
        listed = [line.strip() for line in captured.err.splitlines() if line.startswith("  ")]
        assert listed[0].startswith(f"{path}:{last + 1}:{field}: "), (listed, edited)
        assert "not a row as training writes it" in listed[0]


def test_every_row_a_real_run_writes_passes_its_derivations(run):
    """The reader's derivations hold for what training writes, to float32 rounding as JSON keeps it."""
    from savi_plugin.data.diagnostics_rows import DERIVED, diagnostics_row_problem

    rows = read_jsonl(run / "out" / "diagnostics.jsonl")
    assert all(name in row for row in rows for name in DERIVED)
    assert [diagnostics_row_problem(row) for row in rows] == [None] * len(rows)

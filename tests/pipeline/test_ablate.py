"""``savi ablate``: five losses trained on one tiny pair file and compared in one table; resumable; dry run of the
shipped ablation recipe; bad loss names are one-line errors."""

from __future__ import annotations

import json

import pytest

from savi_plugin.cli import main
from tests.builders import write_jsonl

LOSSES = ["dpo", "dpa", "tdpo", "ddpo", "rrpo"]
TAGGED = [
    ("The <MASK>red</MASK> square moves <MASK>left</MASK>.", "The <MASK>blue</MASK> square moves <MASK>up</MASK>."),
    ("It is a <MASK>circle</MASK>.", "It is a <MASK>triangle</MASK>."),
    ("There are <MASK>three</MASK> shapes.", "There are <MASK>five</MASK> shapes."),
]


def _pairs(path, samples, records):
    rows = []
    for i, (chosen, rejected) in enumerate(records):
        plain = [t.replace("<MASK>", "").replace("</MASK>", "") for t in (chosen, rejected)]
        rows.append({"id": f"p{i}", "video": samples[i].video, "question": samples[i].question, "chosen": plain[0],
                     "rejected": plain[1], "chosen_tagged": chosen, "rejected_tagged": rejected})
    return write_jsonl(path, rows)


@pytest.fixture(scope="module")
def ablation(tiny_llava_onevision, synthetic_samples, tmp_path_factory):
    work = tmp_path_factory.mktemp("ablation")
    pairs = _pairs(work / "pairs.jsonl", synthetic_samples, TAGGED)
    held_out = _pairs(work / "held_out.jsonl", synthetic_samples[3:], TAGGED[:2])
    recipe = work / "recipe.yaml"
    recipe.write_text(
        f"model:\n  path: {tiny_llava_onevision}\n  backend: llava_onevision\n  num_frames: 4\n"
        "lora:\n  r: 4\n  alpha: 8\n  dropout: 0.0\n"
        "train:\n  loss_type: rrpo\n  beta: 0.1\n  alpha: 0.05\n  loss_options:\n    kl_scope: official\n"
        "  max_steps: 1\n  per_device_train_batch_size: 3\n  learning_rate: 1.0e-3\n  use_cpu: true\n"
        "  save_strategy: 'no'\n  logging_steps: 1\n  disable_tqdm: true\n", encoding="utf-8")
    out = work / "out"
    argv = ["ablate", str(recipe), "--losses", ",".join(LOSSES), "--pairs", str(pairs), "--eval-pairs",
            str(held_out), "--no-benchmarks", "--out", str(out), "dpa:train.alpha=0.2"]
    code = main(argv)
    return code, argv, out


def test_every_loss_trains_on_the_same_pairs_and_lands_in_one_table(ablation):
    code, _, out = ablation
    assert code == 0
    table = json.loads((out / "ablation.json").read_text())
    assert [row["loss"] for row in table["rows"]] == LOSSES
    for row in table["rows"]:
        assert row["pairs"] == 3 and row["skipped"] == 0
        assert row["train_loss"] is not None and row["train_loss"] == row["train_loss"]  # finite, trained
        assert 0.0 <= row["eval_accuracy"] <= 1.0 and row["eval_margin"] is not None
    # step one starts at policy == reference (LoRA B = 0): every reference-based loss is log 2 there, DPA is not
    first = {row["loss"]: row["train_loss"] for row in table["rows"]}
    assert all(abs(first[loss] - 0.693147) < 1e-5 for loss in ("dpo", "tdpo", "ddpo", "rrpo"))
    assert abs(first["dpa"] - 0.693147) > 1e-3
    # different objectives, different adapters: the held-out margins after the step differ, except TDPO's, whose
    # KL terms have zero gradient at policy == reference, so its first step is DPO's
    margins = {row["loss"]: row["eval_margin"] for row in table["rows"]}
    assert margins["tdpo"] == pytest.approx(margins["dpo"], abs=1e-6), margins
    assert len({round(margins[loss], 6) for loss in ("dpo", "dpa", "ddpo", "rrpo")}) == 4, margins
    text = (out / "ablation.md").read_text()
    assert text.splitlines()[0].startswith("| loss | pairs |") and all(f"| {loss} |" in text for loss in LOSSES)
    # each run's hyper-parameters: the recipe's alpha/kl_scope for RRPO only, the override for DPA, defaults else
    stored = {loss: json.loads((out / loss / "train" / "savi_train_config.json").read_text()) for loss in LOSSES}
    options = {loss: stored[loss]["training"] for loss in LOSSES}
    assert options["rrpo"]["loss_options"] == {"kl_scope": "official"} and options["rrpo"]["alpha"] == 0.05
    assert options["dpa"]["alpha"] == 0.2
    assert options["tdpo"].get("alpha") is None and options["ddpo"].get("loss_options") is None


def test_a_rerun_keeps_the_finished_runs(ablation):
    _, argv, out = ablation
    before = {loss: (out / loss / "summary.json").stat().st_mtime_ns for loss in LOSSES}
    assert main(argv) == 0
    assert {loss: (out / loss / "summary.json").stat().st_mtime_ns for loss in LOSSES} == before


@pytest.mark.parametrize("damage", ["summary edited", "adapter removed", "adapter retrained", "run extended",
                                    "run retrained alike",
                                    "run started again, unfinished", "two loss folders swapped",
                                    "a loss folder copied from another ablation"])
def test_a_kept_run_whose_summary_was_edited_or_whose_adapter_is_gone_is_refused(damage, ablation, tmp_path, capsys):
    """Pass 19 C #19, #20: a kept run's ``summary.json`` edited by hand (train_loss 0.649 -> 0.001) was tabled as
    the run's result, and one whose adapter was removed was tabled as finished, both with exit 0. Pass 20 #23: a
    summary was kept after ``savi train --resume`` extended its run (step 4 in the summary, 6 in the run's
    report): a kept summary is checked against the run's report it was made from."""
    import shutil

    _, argv, out = ablation
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    summary = copy / "dpo" / "summary.json"
    if damage == "summary edited":
        summary.write_text(summary.read_text().replace('"train_loss": ', '"train_loss": 1e-3, "was": ', 1))
        words = f"{summary}: changed after savi ablate wrote it"
    elif damage == "two loss folders swapped":  # pass 21 E #23: each row then showed the other loss's numbers
        (copy / "dpo").rename(copy / "swap")
        (copy / "rrpo").rename(copy / "dpo")
        (copy / "swap").rename(copy / "rrpo")
        words = f'{summary}: it was made for another run than this one (row: "rrpo" -> "dpo"'
    elif damage == "a loss folder copied from another ablation":  # pass 21 E #35: its lr=0.01 row was kept
        from savi_plugin.data.kept import seal

        stored = json.loads(summary.read_text())
        training = stored["kept"]["slot"]["settings"]["training"]
        rate = training["learning_rate"]
        training["learning_rate"] = rate * 10
        summary.write_text(json.dumps(seal(stored)))
        words = (f"{summary}: it was made for another run than this one (settings.training.learning_rate: "
                 f"{json.dumps(rate * 10)} -> {json.dumps(rate)})")
    elif damage == "adapter removed":
        (copy / "dpo" / "train" / "adapter_config.json").unlink()
        words = f"{summary}: its adapter {copy / 'dpo' / 'train'} changed after it was made (adapter_config.json removed)"
    elif damage == "adapter retrained":  # by hand into the run's folder: the summary's numbers are the old adapter's
        weights = copy / "dpo" / "train" / "adapter_model.safetensors"
        trained = weights.read_bytes()
        weights.write_bytes(trained[:-64] + bytes(64))
        words = (f"{summary}: its adapter {copy / 'dpo' / 'train'} changed after it was made "
                 f"(adapter_model.safetensors changed)")
    else:  # what savi train writes into the run's folder: a new report when it ends, none while it runs
        report = copy / "dpo" / "train" / "train_report.json"
        written = json.loads(report.read_text())
        if damage == "run started again, unfinished":
            report.unlink()
            words = f"{summary}: its run report {report} is gone"
        else:
            step = written["global_step"] + (2 if damage == "run extended" else 0)
            report.write_text(json.dumps({**written, "global_step": step, "seconds": written["seconds"] + 1}))
            words = f"{summary}: its run report {report} changed after it was made ("
    table = (copy / "ablation.md").read_text()
    capsys.readouterr()
    assert main([str(copy) if a == str(out) else a for a in argv]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and err[0].startswith(f"error: {words}") and f"remove {copy / 'dpo'}" in err[0], err
    assert (copy / "ablation.md").read_text() == table


def test_dry_run_of_the_shipped_ablation_recipe(tmp_path, capsys):
    assert main(["ablate", "llava_video_7b_loss_ablation", "--out", str(tmp_path / "abl"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    sections = {line.strip("[]"): i for i, line in enumerate(out.splitlines()) if line.startswith("[")}
    assert list(sections) == LOSSES
    train_lines = {loss: next(line for line in out.splitlines()[i:] if "train: PreferenceConfig" in line)
                   for loss, i in sections.items()}
    assert '"kl_scope": "official"' in train_lines["rrpo"] and "16 frames (interval)" in train_lines["rrpo"]
    assert 'loss dpa {"alpha": 0.4}' in train_lines["dpa"]
    assert '"gamma": 1.1' in train_lines["ddpo"] and '"alpha": 0.5' in train_lines["tdpo"]
    assert not (tmp_path / "abl").exists()  # nothing written


@pytest.mark.parametrize("where", ["pairs folder", "eval data root"])
def test_an_ablation_out_inside_what_it_reads_is_refused_by_the_dry_run_and_the_run(where, tmp_path, capsys,
                                                                                   monkeypatch):
    """Pass 17 A #13/#49: a dry run approved an --out the run refused; an --out inside the eval data root was
    accepted by both (every re-run then evaluated again). One place rule for both, the eval data root an input."""
    monkeypatch.chdir(tmp_path)
    for folder in ("data", "evdata"):
        (tmp_path / folder).mkdir()
    (tmp_path / "data/p.jsonl").write_text("")
    out, says = ("data", "--out contains the pairs") if where == "pairs folder" else ("evdata/abl", "--out lies inside")
    code = main(["ablate", "tiny_demo", "--pairs", "data/p.jsonl", "--losses", "dpo", "--out", out, "--dry-run",
                 "eval.data_root=evdata"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and says in err[0], err
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["p.jsonl"]
    assert not any((tmp_path / "evdata").iterdir())


@pytest.mark.parametrize("argv, message", [
    (["--losses", "dpo,nope"], "--losses: not registered: nope"),
    (["--losses", "dpo,dpo"], "a loss is listed twice"),
    (["--losses", "dpo", "dpa:train.alpha=0.1"], "names a loss that is not in --losses"),
    # pass 17 A #15: the rrpo row of the table was a DPO run
    (["--losses", "dpo,rrpo", "rrpo:train.loss_type=dpo"], "rrpo:train.loss_type: the rrpo run trains rrpo into"),
    (["--losses", "dpo,rrpo", "rrpo:train.output_dir=elsewhere"], "rrpo:train.output_dir: the rrpo run trains rrpo"),
    (["--losses", "dpo,rrpo", "dpo:train.trainer=rrpo"], "dpo:train.trainer: the dpo run trains dpo into"),
])
def test_bad_loss_lists_are_one_line_errors(tmp_path, capsys, argv, message):
    recipe = "tiny_demo" if any(":" in a for a in argv) and "dpa:" not in argv[-1] else "llava_video_7b_loss_ablation"
    code = main(["ablate", recipe, "--out", str(tmp_path / "x"), "--dry-run", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_table_deltas_against_the_base_model():
    from savi_plugin.pipeline.ablate import ablation_table, markdown

    base = {"mvbench": {"acc": 50.0}, "egoschema": {"acc": 40.0}}
    rows = {"dpo": {"pairs": 2, "eval": {"mvbench": {"acc": 51.0}, "egoschema": {"acc": 40.5}}},
            "rrpo": {"pairs": 2, "eval": {"mvbench": {"acc": 53.0}, "egoschema": {"acc": 42.0}}}}
    table = ablation_table(rows, base)
    assert [r["mean_delta"] for r in table["rows"]] == [0.75, 2.5]
    assert "| base | - | - | - | - | - | 40.0000 | 50.0000 | - |" in markdown(table)


def test_extending_after_the_model_changed_or_on_unfinished_pairs_is_refused(tiny_llava_onevision, synthetic_samples,
                                                                             tmp_path, monkeypatch, capsys):
    """An ablation extended by one loss after the model's weights were replaced at the same path trained the new
    loss on the other model; pairs of an unfinished generation run trained and judged with no word (red team 4).
    The claim decides before any step, so the steps are left out."""
    import dataclasses
    import shutil

    from savi_plugin.pipeline import ablate

    model = tmp_path / "model"
    shutil.copytree(tiny_llava_onevision, model)
    pairs = _pairs(tmp_path / "pairs.jsonl", synthetic_samples, TAGGED)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"model:\n  path: {model}\n  backend: llava_onevision\n  num_frames: 4\n", encoding="utf-8")
    monkeypatch.setattr(ablate, "_run", lambda *args: {"columns": ["loss"], "rows": [{"loss": "-"}]})  # claim only
    argv = ["ablate", str(recipe), "--pairs", str(pairs), "--no-benchmarks", "--out", str(tmp_path / "out")]
    assert main([*argv, "--losses", "dpo"]) == 0
    weights = model / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    capsys.readouterr()
    assert main([*argv, "--losses", "dpo,rrpo"]) == 1
    assert "identity.model changed content" in capsys.readouterr().err
    weights.write_bytes(original)  # back to the weights the ablation was made with
    assert main([*argv, "--losses", "dpo"]) == 0
    video = tmp_path / "clip.mp4"  # a video the pairs name, replaced at the same path (red team 4)
    shutil.copyfile(synthetic_samples[0].video, video)
    _pairs(tmp_path / "pairs.jsonl", [dataclasses.replace(synthetic_samples[0], video=str(video)),
                                      *synthetic_samples[1:]], TAGGED)
    argv2 = [*argv[:-1], str(tmp_path / "out2")]
    assert main([*argv2, "--losses", "dpo"]) == 0
    shutil.copyfile(synthetic_samples[1].video, video)
    capsys.readouterr()
    assert main([*argv2, "--losses", "dpo,rrpo"]) == 1
    assert "identity.videos changed content" in capsys.readouterr().err
    (tmp_path / "pairs.jsonl.progress.jsonl").write_text("")  # a generation run still under way
    assert main([*argv[:-1], str(tmp_path / "other"), "--losses", "dpo"]) == 1
    assert "its generation run has not finished" in capsys.readouterr().err and not (tmp_path / "other").exists()


@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry-run"])
@pytest.mark.parametrize("losses", ["dpa,dpo", ",".join(reversed(LOSSES)), ",".join([*LOSSES, "ipo"])],
                         ids=["subset", "reordered", "superset"])
def test_a_rerun_with_fewer_losses_is_refused_and_the_table_keeps_every_finished_loss(losses, dry, ablation,
                                                                                      tmp_path, capsys):
    """Pass 24 H #67: the same ablation re-run with ``--losses dpo,rrpo`` rewrote its table with those two rows
    only (here ``dpa,dpo``, which keeps the fixture's ``dpa:`` override). Only extending is allowed (README "Guarantees"): fewer losses are refused naming the ones left out and
    the ``--losses`` that continues it, nothing touched; the same losses in another order or more go on, nothing
    finished trained again, and the table holds every loss. Pass 25 R3 #19: the dry run asks the same rule, so it
    refuses the shrink the same way and approves the rest, touching nothing."""
    import shutil

    _, argv, out = ablation
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    argv = [str(copy) if a == str(out) else a for a in argv]
    argv[argv.index("--losses") + 1] = losses
    argv += ["--dry-run"] if dry else []
    files = {p: p.stat().st_mtime_ns for p in sorted(copy.rglob("*")) if p.is_file() and p.name != ".savi-lock"}
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    table = json.loads((copy / "ablation.json").read_text())
    if losses == "dpa,dpo":
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
        assert "leaves out tdpo, ddpo, rrpo" in lines[0] and "--losses dpa,dpo,tdpo,ddpo,rrpo" in lines[0], lines[0]
        assert {p: p.stat().st_mtime_ns for p in files} == files
        assert sorted(row["loss"] for row in table["rows"]) == sorted(LOSSES)
        return
    assert code == 0, err
    assert all((copy / loss / "summary.json").stat().st_mtime_ns == files[copy / loss / "summary.json"]
               for loss in LOSSES)  # kept, not trained again
    if dry:
        assert {p: p.stat().st_mtime_ns for p in files} == files and "ipo" not in {r["loss"] for r in table["rows"]}
        return
    assert sorted(row["loss"] for row in table["rows"]) == sorted(losses.split(","))


def test_a_rerun_from_another_folder_with_other_spellings_keeps_the_finished_runs(ablation, tmp_path, monkeypatch):
    """The ablation's identity is its resolved runs by content, not its paths as typed: the same command from
    another working folder, with relative spellings of the same files, resumes (nothing is trained again)."""
    import os

    _, argv, out = ablation
    before = {loss: (out / loss / "summary.json").stat().st_mtime_ns for loss in LOSSES}
    monkeypatch.chdir(tmp_path)
    relative = [os.path.relpath(a) if os.path.isabs(a) else a for a in argv]
    assert relative != argv and main(relative) == 0
    assert {loss: (out / loss / "summary.json").stat().st_mtime_ns for loss in LOSSES} == before


def test_the_same_ablation_is_one_run_whatever_the_spelling_and_another_value_is_refused(
        tiny_llava_onevision, synthetic_samples, tmp_path, monkeypatch, capsys):
    """``-o`` values and paths are compared by what they name (red team: another working folder, ``./x`` against
    ``x`` against absolute, was refused as another configuration); another content or value is refused by key
    path. The claim decides before any step, so the steps are left out."""
    import shutil

    from savi_plugin.pipeline import ablate

    a, b = tmp_path / "a", tmp_path / "b"
    (a / "sub").mkdir(parents=True)
    b.mkdir()
    pairs = _pairs(a / "pairs.jsonl", synthetic_samples, TAGGED)
    shutil.copytree(tiny_llava_onevision, a / "model")
    (a / "sub" / "recipe.yaml").write_text("model:\n  path: ../model\n  backend: llava_onevision\n  num_frames: 4\n",
                                           encoding="utf-8")
    monkeypatch.setattr(ablate, "_run", lambda *args: {"columns": ["loss"], "rows": [{"loss": "-"}]})  # claim only
    monkeypatch.chdir(a)
    assert main(["ablate", "sub/recipe.yaml", "--losses", "dpo,rrpo", "--pairs", "./pairs.jsonl", "--no-benchmarks",
                 "--out", "out", "train.beta=0.2", "model.path=./model", "rrpo:train.alpha=0.1"]) == 0
    monkeypatch.chdir(b)
    same = ["ablate", str(a / "sub" / "recipe.yaml"), "--pairs", "../a/pairs.jsonl", "--no-benchmarks",
            "--out", "../a/./out", "train.beta=0.2", f"model.path={a / 'model'}"]
    assert main([*same, "--losses", "dpo,rrpo", "rrpo:train.alpha=0.1"]) == 0
    assert main([*same, "--losses", "rrpo,dpo", "rrpo:train.alpha=0.1"]) == 0  # another order: the same runs
    capsys.readouterr()
    for argv, key in ((["train.beta=0.3"], "runs.dpo.train.beta: 0.2 -> 0.3"),
                      (["--losses", "dpo,rrpo", "rrpo:train.alpha=0.2"], "runs.rrpo.train.alpha: 0.1 -> 0.2")):
        assert main([*same[:-2], f"model.path={a / 'model'}", *(["--losses", "dpo,rrpo", "rrpo:train.alpha=0.1"]
                                                                 if "--losses" not in argv else []), *argv]) == 1
        err = capsys.readouterr().err
        assert key in err and len(err.strip().splitlines()) == 1, err
    other = b / "pairs.jsonl"  # the same name, another content
    _pairs(other, synthetic_samples[1:], TAGGED[:2])
    assert main([*same[:2], "--pairs", str(other), *same[4:], "--losses", "dpo,rrpo", "rrpo:train.alpha=0.1"]) == 1
    assert "pairs" in capsys.readouterr().err
    assert json.loads((a / "out" / ".savi-output.json").read_text())["config"]["runs"].keys() == {"dpo", "rrpo"}
    assert not (b / "out").exists()


def test_the_eval_data_root_changed_after_the_base_model_s_evaluation_stops_the_ablation(
        tiny_llava_onevision, synthetic_samples, tmp_path, monkeypatch, capsys):
    """Pass 23 C #35, in ``savi ablate``: the base model is evaluated once, each loss after its training; the eval
    data root rewritten in between scored the losses on other data than the base they are compared with. Its files
    are watched from before the ablation's identity read them, and the eval step's lmms-eval run of the loss is
    refused before it starts, naming the file. lmms-eval is stood in for."""
    from savi_plugin.eval.fixtures import build_fixture
    from savi_plugin.pipeline import evaluate

    root = tmp_path / "evaldata"
    build_fixture(root, "mvbench", 1)
    changed, started = [], []

    def lmms_eval(command, *, output_path, **_):
        started.append(output_path.parents[1].name)
        if not changed:  # the base model's run: the data root is rewritten after it
            path = next(p for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".mp4")
            path.write_bytes(path.read_bytes() + b" ")
            changed.append(path)

    monkeypatch.setattr(evaluate, "run_judged", lmms_eval)
    monkeypatch.setattr(evaluate, "read_lmms_eval_results", lambda _path: {"savi_mvbench": {"accuracy": 50.0}})
    pairs = _pairs(tmp_path / "pairs.jsonl", synthetic_samples, TAGGED)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model:\n  path: {tiny_llava_onevision}\n  backend: llava_onevision\n  num_frames: 4\n"
        "lora:\n  r: 4\n  alpha: 8\n  dropout: 0.0\n"
        "train:\n  loss_type: dpo\n  max_steps: 1\n  per_device_train_batch_size: 3\n  use_cpu: true\n"
        "  save_strategy: 'no'\n  logging_steps: 1\n  disable_tqdm: true\n"
        f"eval:\n  data_root: {root}\n  tasks: [savi_mvbench_action_antonym]\n", encoding="utf-8")

    def evaluate_step(recipe, model, out_dir, adapter=None):
        return evaluate._lmms_eval(recipe, model, out_dir, out_dir.parent, adapter)

    from savi_plugin.pipeline.ablate import run_ablation

    from savi_plugin.errors import InputChangedError

    with pytest.raises(InputChangedError) as err:
        run_ablation(str(recipe), ["dpo"], tmp_path / "out", pairs=pairs, evaluate=evaluate_step)
    assert str(err.value).startswith(f"{changed[0]}: a file of the eval data root (eval.data_root) was written to")
    assert started == ["base"]  # the loss's evaluation did not start

"""`savi eval suite` through the real lmms-eval CLI: a tiny base model and a random LoRA adapter on a savi task of
the offline fixture and on the task of a benchmark a throw-away distribution adds through the
``savi_plugin.benchmarks`` entry point; the table equals a direct computation from lmms-eval's own --log_samples
files, the card and the PNG are written, a killed suite continues, and `savi eval compare` refuses tables with
other settings."""

import contextlib
import io
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from savi_plugin.cli import main
from savi_plugin.eval.card import texts_sha256
from savi_plugin.eval.compare import paired_bootstrap
from savi_plugin.eval.fixtures import build_fixture, offline_env
from savi_plugin.models.tiny import build_tiny_model
from tests.builders import random_lora_adapter, third_party_benchmark

LIMIT = 3
TASKS = ("savi_perceptiontest", "toybench_qa")


def _samples(folder: Path, task: str) -> list[dict]:
    (path,) = folder.rglob(f"*_samples_{task}.jsonl")
    return sorted((json.loads(line) for line in path.read_text().splitlines() if line.strip()),
                  key=lambda s: s["doc_id"])


@contextlib.contextmanager
def _environ(env: dict):
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _suite(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["eval", "suite", *argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    outer = tmp_path_factory.mktemp("savi_suite")
    # every path (model, adapter, --out, data root) holds what lmms-eval re-parses: a keyword that, passed raw,
    # would move lmms-eval's output to outer/elsewhere, a space and a non-ASCII letter
    tmp = Path(f"{outer}/s é,output_path={outer}/elsewhere")
    tmp.mkdir(parents=True)
    pt = build_fixture(tmp / "data", "perceptiontest", LIMIT)
    toy = [{"id": f"t{i}", "clip": f"{r['video_name']}.mp4", "question": r["question"], "choices": r["options"],
            "answer": int(r["answer_id"])} for i, r in enumerate(pt.records["savi_perceptiontest"])]
    site = third_party_benchmark(tmp / "site", tmp / "data", toy,
                                 sorted((tmp / "data" / "perceptiontest" / "videos").glob("*.mp4")))
    model = build_tiny_model(tmp / "tiny")
    adapter = random_lora_adapter(model, tmp / "aligned", seed=1)
    # the folder of a `savi train` run that has not finished (its mark, no train_report.json): said and recorded
    (adapter / ".savi-output.json").write_text(json.dumps({"written_by": "savi", "command": "savi train",
                                                           "config": {}}))
    argv = [",".join(TASKS), "--model", str(model), "--adapter", str(adapter), "--out", str(tmp / "suite"),
            "--data-root", str(tmp / "data"), "--limit", str(LIMIT), "--num-frames", "4"]
    env = offline_env(tmp / "data", tmp / "hf")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    from savi_plugin.eval.benchmarks import cache_clear

    sys.path.insert(0, str(site))  # installed, as a user's benchmark is: seen here (task names) and by lmms-eval
    cache_clear()
    with _environ(env):
        code, _out, err = _suite(argv)
        assert code == 0, err[-3000:]
        first = (tmp / "suite" / "table.json").read_text()
        # a suite killed while the adapter's run was going: its run is redone, the base model's is kept
        (tmp / "suite" / "runs" / "aligned" / "done.json").unlink()
        (tmp / "suite" / "table.json").unlink()
        code2, _, err2 = _suite(argv)
        assert code2 == 0, err2[-3000:]
        refused = _suite([*argv[:-2], "--num-frames", "8"])
        weights = adapter / "adapter_model.safetensors"
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF  # the adapter replaced at the same path: its kept run is no longer its
        weights.write_bytes(bytes(data))
        changed = _suite(argv)
        data[-1] ^= 0xFF  # restored: the later tests resume this suite
        weights.write_bytes(bytes(data))
        annotation = next(p for p in sorted((tmp / "data" / "perceptiontest").rglob("*")) if p.is_file()
                          and p.suffix in (".parquet", ".json", ".jsonl"))
        kept = annotation.read_bytes()
        annotation.write_bytes(kept + b"\0")  # the benchmark's data edited in place (red team 4)
        edited = _suite(argv)
        annotation.write_bytes(kept)
    sys.path.remove(str(site))
    for name in [m for m in sys.modules if m.partition(".")[0] == "toybench"]:
        del sys.modules[name]  # the throw-away distribution is gone: later tests install their own
    cache_clear()
    assert not (outer / "elsewhere" / "runs").exists()  # lmms-eval wrote only where the suite claimed
    return tmp, json.loads(first), err, err2, refused, (changed, edited)


def test_table_equals_a_direct_computation_from_the_logged_samples(suite):
    tmp, table, _, _, _, _ = suite
    runs = tmp / "suite" / "runs"
    assert [r["task"] for r in table["rows"]] == list(TASKS)
    for row in table["rows"]:
        base = [s for s in _samples(runs / "base", row["task"])]
        aligned = [s for s in _samples(runs / "aligned", row["task"])]
        assert [s["doc_id"] for s in base] == [s["doc_id"] for s in aligned] == list(range(LIMIT))
        b = [s["accuracy"]["score"] for s in base]
        a = [s["accuracy"]["score"] for s in aligned]
        assert row["n"] == LIMIT and row["adapter"] == "aligned"
        assert row["base"] == pytest.approx(np.mean(b)) and row["aligned"] == pytest.approx(np.mean(a))
        assert row["delta"] == pytest.approx(np.mean(a) - np.mean(b))
        direct = paired_bootstrap(b, a)
        assert (row["low"], row["high"]) == pytest.approx((direct.low, direct.high))
        assert row["low"] <= row["delta"] <= row["high"]
    md = (tmp / "suite" / "table.md").read_text()
    assert "| savi_perceptiontest | aligned | 3 |" in md


def test_card_png_and_progress(suite):
    tmp, table, err, _, _, _ = suite
    card = json.loads((tmp / "suite" / "card.json").read_text())
    assert card == table["card"]
    assert card["lmms_eval"] == "0.7.3" and card["limit"] == LIMIT and card["num_frames"] == 4
    assert card["tasks"]["savi_perceptiontest"] == {
        "dataset": "lmms-eval/PerceptionTest_Val", "config": "mc_question_val", "split": "validation",
        "benchmark": "perceptiontest", "protocol": "savi",
        "frames": {"num_frames": "model's num_frames", "rule": "uniform", "bounds": False},
        "generation": card["tasks"]["savi_perceptiontest"]["generation"]}
    assert card["tasks"]["savi_perceptiontest"]["generation"]["max_new_tokens"] == 16
    assert card["tasks"]["toybench_qa"]["benchmark"] == "toybench"  # the third party's task ran in the same job
    inputs = [s["input"] for t in TASKS for s in _samples(tmp / "suite" / "runs" / "base", t)]
    assert card["prompts_sha256"] == texts_sha256(inputs) and card["items"] == 2 * LIMIT
    assert card["adapters"]["aligned"]["sha256"] and card["base_model"]["sha256"] != card["adapters"]["aligned"]["sha256"]
    # the adapter's training run had not finished: said once, recorded in the card and under the table
    assert card["adapters"]["aligned"]["unfinished"] is True
    assert "Adapter aligned (" in (tmp / "suite" / "table.md").read_text()
    png = (tmp / "suite" / "delta.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    assert f"base: items {2 * LIMIT}/{2 * LIMIT}" in err  # the progress line over items, per model


def test_lmms_eval_s_kept_results_name_the_model_and_adapter_not_their_links(suite):
    """Every path of the suite holds ``,output_path=...``, so lmms-eval was given temporary links (removed at exit);
    its kept ``*_results.json`` names the real model and adapter (absolute: outside a run folder; tester B #45)."""
    tmp = suite[0]
    for label, adapter in (("base", None), ("aligned", tmp / "aligned")):
        (results,) = (tmp / "suite" / "runs" / label / "lmms_eval").rglob("*_results.json")
        text = results.read_text()
        kept = json.loads(text)
        assert "savi-lmms-eval-" not in text and kept["model_name"] == str(tmp / "tiny"), text[:2000]
        assert kept["config"]["model_args"].startswith(f"pretrained={tmp / 'tiny'},")
        assert (f"adapter={adapter}" in kept["config"]["model_args"]) is (adapter is not None)


def test_a_killed_suite_continues_and_other_settings_are_refused(suite):
    tmp, table, _, err2, refused, changed = suite
    assert "base: kept from an earlier run" in err2 and "aligned: kept" not in err2
    assert json.loads((tmp / "suite" / "table.json").read_text())["rows"] == table["rows"]  # greedy: same answers
    code, _, err = refused
    assert code == 1 and len(err.strip().splitlines()) == 1 and "different configuration" in err
    assert "num_frames: 4 -> 8" in err, err
    (code, _, err), edited = changed  # red team 3: the old adapter's scores were kept under the same name
    assert code == 1 and len(err.strip().splitlines()) == 1 and "identity.adapter aligned changed content" in err
    code, _, err = edited
    assert code == 1 and "identity.data root changed content" in err, err


def test_an_adapter_trained_on_another_base_is_refused_before_lmms_eval(tmp_path, tiny_llava_onevision,
                                                                         tiny_qwen2_vl):
    """It evaluated the whole base model first, then failed with the reason only in lmms-eval's log."""
    from savi_plugin.data.identity import write_adapter_identity

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    write_adapter_identity(adapter, tiny_qwen2_vl, None)
    code, _, err = _suite(["savi_perceptiontest", "--model", str(tiny_llava_onevision), "--adapter", str(adapter),
                           "--data-root", str(tmp_path), "--out", str(tmp_path / "s")])  # data: not what fails
    assert code == 2 and "the adapter was trained on" in err and not (tmp_path / "s").exists()


@pytest.mark.parametrize("damage, base", [("truncated weights", "its own"), ("torn record", "another family's"),
                                          ("nan weights", "its own")])
def test_a_damaged_adapter_is_refused_before_lmms_eval_naming_its_file(damage, base, tmp_path, tiny_adapter,
                                                                       tiny_llava_onevision, tiny_qwen2_vl):
    """Truncated weights on the adapter's own base ended as "evaluation did not finish ... re-run the same command"
    (exit 1) after the base model was evaluated; a torn savi_adapter.json let the adapter onto another base with no
    word; weights holding NaN with their header intact (red team pass 13, B8) were refused only by savi_video inside
    lmms-eval, after the base model's run. Each is one line naming the file (and the weight), exit 2, before any
    folder is made."""
    from tests.builders import damaged_adapter

    adapter, damaged = damaged_adapter(tiny_adapter, tmp_path / "rr", damage)
    model = tiny_llava_onevision if base == "its own" else tiny_qwen2_vl
    code, _, err = _suite(["savi_perceptiontest", "--model", str(model), "--adapter", str(adapter),
                           "--data-root", str(tmp_path), "--out", str(tmp_path / "s")])
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(damaged) in err, err
    assert "re-run" not in err and not (tmp_path / "s").exists()
    if damage == "nan weights":
        assert "the adapter's weight base_model.model." in err and "lora_" in err and "holds NaN" in err, err


def test_a_suite_undone_by_a_configuration_error_keeps_the_log_its_line_names(tmp_path, tiny_adapter,
                                                                             tiny_llava_onevision, monkeypatch):
    """Red team pass 13, B8: lmms-eval's exit status 2 (a configuration error savi_video found) undid the new suite
    folder, and the line named ``full log: OUT/runs/<label>/lmms_eval.log`` inside it, gone. The log is kept beside
    the folder (``OUT.failed.log``) where the line names it, with savi_video's own line as the cause. lmms-eval is
    stood in for by a process that prints that line and exits 2 (the real one takes ~50 s to get there)."""
    import savi_plugin.eval.suite as suite_module

    @contextlib.contextmanager
    def exits_2(_model, _tasks, output_path, **_settings):
        Path(output_path).mkdir(parents=True)  # as savi_video_command makes it
        yield [sys.executable, "-c", "import sys; print('lmms-eval starting'); print('savi_video: cannot load "
               "pretrained=m: ModelLoadError: m/model.safetensors: damaged', file=sys.stderr); sys.exit(2)"]

    monkeypatch.setattr(suite_module, "savi_video_command", exits_2)
    out = tmp_path / "s"
    (tmp_path / "data").mkdir()
    code, _, err = _suite(["savi_perceptiontest", "--model", str(tiny_llava_onevision), "--adapter",
                           str(tiny_adapter), "--data-root", str(tmp_path / "data"), "--out", str(out)])
    kept = tmp_path / "s.failed.log"
    line = err.strip().splitlines()[-1]
    assert code == 2 and line.endswith(f"; full log: {kept}"), err
    assert "lmms-eval said: savi_video: cannot load pretrained=m: ModelLoadError" in line, line
    assert not out.exists() and "savi_video: cannot load" in kept.read_text()  # nothing marked; the log kept
    # pass 15 C #41: a user's own file at that name was replaced by the log; it stays, the log goes beside it
    kept.write_text("USER NOTES\n")
    code, _, err = _suite(["savi_perceptiontest", "--model", str(tiny_llava_onevision), "--adapter",
                           str(tiny_adapter), "--data-root", str(tmp_path / "data"), "--out", str(out)])
    second = tmp_path / "s.failed-2.log"
    assert code == 2 and err.strip().splitlines()[-1].endswith(f"; full log: {second}"), err
    assert kept.read_text() == "USER NOTES\n" and "savi_video: cannot load" in second.read_text()


def test_a_model_file_changed_during_a_run_stops_the_suite_and_the_run_does_not_count(tmp_path, tiny_adapter,
                                                                                       tiny_llava_onevision,
                                                                                       monkeypatch):
    """Pass 15 C #2: the base model's weights copied over between the base run and the adapter's (an adapter with
    no record of its base, so no load refused it) gave exit 0 and a table comparing two bases, its card holding the
    new weights' identity. lmms-eval loads the model in its own process, so the suite checks the files its
    identity read before each run and after it ends, and counts a run done only when none changed. lmms-eval is
    stood in for by a process that writes to the model's config.json, as a ``cp`` over it would."""
    import shutil

    import savi_plugin.eval.command as command_module

    model = Path(shutil.copytree(tiny_llava_onevision, tmp_path / "model"))
    monkeypatch.setattr(command_module, "lmms_eval_command", lambda *_args: [
        sys.executable, "-c", f"open({str(model / 'config.json')!r}, 'a').write(' ')"])
    out = tmp_path / "s"
    (tmp_path / "data").mkdir()
    code, _, err = _suite(["savi_perceptiontest", "--model", str(model), "--adapter", str(tiny_adapter),
                           "--data-root", str(tmp_path / "data"), "--out", str(out)])
    line = err.strip().splitlines()[-1]
    assert code == 1 and "config.json: a file of a model the suite evaluates was written to while the job" in line, err
    assert not (out / "runs" / "base" / "done.json").exists()


def test_a_model_file_changed_between_runs_is_found_before_the_next_run_starts(tmp_path, tiny_llava_onevision,
                                                                               monkeypatch):
    """The same change after a run was counted done: the next run does not start."""
    import shutil

    import savi_plugin.eval.command as command_module
    import savi_plugin.eval.suite as suite_module
    from savi_plugin.data.identity import model_identity
    from savi_plugin.data.watched import WatchedFiles
    from savi_plugin.errors import InputChangedError

    model = Path(shutil.copytree(tiny_llava_onevision, tmp_path / "model"))
    watch = WatchedFiles("a file of a model the suite evaluates")
    model_identity(model, watch=watch)
    started = []
    monkeypatch.setattr(command_module, "lmms_eval_command", lambda *a: started.append(a))
    (model / "model.safetensors").write_bytes((model / "model.safetensors").read_bytes())  # rewritten in place
    plan = suite_module.SuitePlan(model=str(model), adapters={}, tasks=["savi_perceptiontest"], num_frames=4)
    with watch, pytest.raises(InputChangedError, match="model.safetensors: a file of a model the suite evaluates "
                                                       "was"):
        suite_module.run_model(plan, "base", tmp_path / "s", {})
    assert started == []


def _rewritten(path: Path) -> Path:
    """``savi eval fixture ROOT --seed 7`` over a fixture: the file replaced by one of other content."""
    other = path.with_name(path.name + ".new")
    other.write_bytes(path.read_bytes() + b" ")
    os.replace(other, path)
    return path


def _added(path: Path) -> Path:
    """A file the benchmark may read, added beside the others."""
    added = path.with_name("extra-" + path.name)
    shutil.copyfile(path, added)
    return added


def _removed(path: Path) -> Path:
    path.unlink()
    return path


@pytest.mark.parametrize("change", [_rewritten, _added, _removed], ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("when", ["between the runs", "during the base run", "during the adapter's run"])
def test_the_data_root_changed_between_or_during_the_runs_stops_the_suite_naming_the_file(
        when, change, tmp_path, tiny_adapter, tiny_llava_onevision, monkeypatch):
    """Red team pass 23 C #35: the data root rewritten (``savi eval fixture fxs --seed 7``) after the base model's run
    gave exit 0 and a table pairing item by item a base run on the old data with an adapter run on the new. The
    data root's files are watched as its identity read them, and every lmms-eval run checks them before it starts
    and after it ends (``savi_video_command``): one line naming the file, and no run on changed data counts. Each
    way a file changes x each moment; lmms-eval is stood in for by a process that does the change "during" its
    run, and the base run by one whose results the suite keeps."""
    import savi_plugin.eval.command as command_module
    import savi_plugin.eval.suite as suite_module

    root = tmp_path / "data"
    build_fixture(root, "perceptiontest", 2)
    target = next(root.rglob("*.parquet")) if change is _rewritten else sorted(root.rglob("*.mp4"))[0]
    changed: list[Path] = []
    started: list[str] = []  # the runs whose lmms-eval started
    real_run_model = suite_module.run_model

    def run_model(plan, label, out, *args, **kwargs):
        if label == suite_module.BASE and when != "during the base run":  # a base run counted done
            started.append(label)
            if when == "between the runs":
                changed.append(change(target))
            return out / "runs" / label / "lmms_eval"

        def lmms_eval(*_args):
            started.append(label)
            if when.endswith(("base run", "adapter's run")):  # this run is the one the moment names
                changed.append(change(target))
            return [sys.executable, "-c", "pass"]

        monkeypatch.setattr(command_module, "lmms_eval_command", lmms_eval)
        return real_run_model(plan, label, out, *args, **kwargs)

    monkeypatch.setattr(suite_module, "run_model", run_model)
    out = tmp_path / "s"
    code, _, err = _suite(["savi_perceptiontest", "--model", str(tiny_llava_onevision), "--adapter",
                           str(tiny_adapter), "--data-root", str(root), "--out", str(out)])
    lines = err.strip().splitlines()
    assert changed and code == 1 and lines[-1].startswith(f"error: {changed[0]}: a file of the data root "), err
    # no run starts after the change, and none that read changed data is counted done
    assert started == (["base", "adapter"] if when == "during the adapter's run" else ["base"]), (started, err)
    assert not (out / "table.json").exists() and not list(out.rglob("done.json")), err


def test_compare_refuses_incomparable_tables(suite, tmp_path):
    tmp, table, _, _, _, _ = suite
    other = tmp_path / "other"
    shutil.copytree(tmp / "suite", other, ignore=shutil.ignore_patterns("runs"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["eval", "compare", str(tmp / "suite"), str(other)]) == 0
    assert "| toybench_qa | aligned |" in out.getvalue()
    from savi_plugin.eval.card import CARD_FIELDS

    assert tuple(table["card"]) == CARD_FIELDS  # the fields a card may hold are the ones a suite writes
    card = dict(table["card"], limit=10, prompts_sha256="0" * 64)
    (other / "table.json").write_text(json.dumps(dict(table, card=card)))
    (other / "card.json").write_text(json.dumps(card))  # the suite writes one card to both files
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["eval", "compare", str(tmp / "suite"), str(other)]) == 1
    lines = err.getvalue().splitlines()
    assert "not comparable (2 eval-card field(s) differ)" in lines[0]
    assert lines[1].strip().startswith("limit: 3") and lines[2].strip().startswith("prompts_sha256:")


@pytest.mark.parametrize("edited", ["card.json", "table.json"])
def test_compare_refuses_a_folder_whose_two_cards_differ(edited, suite, tmp_path):
    """Pass 15 B #17: the folder's card.json edited (num_frames 32) while table.json's card still said 4 was
    compared as the table said; the suite writes one card to both, so either edited alone is refused."""
    tmp, table, _, _, _, _ = suite
    other = tmp_path / "other"
    shutil.copytree(tmp / "suite", other, ignore=shutil.ignore_patterns("runs"))
    card = dict(table["card"], num_frames=32)
    if edited == "card.json":
        (other / "card.json").write_text(json.dumps(card))
    else:
        (other / "table.json").write_text(json.dumps(dict(table, card=card)))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["eval", "compare", str(tmp / "suite"), str(other)]) == 1
    lines = err.getvalue().strip().splitlines()
    assert lines == [f"error: savi eval compare: {other / 'card.json'}: card.num_frames differs from table.json's "
                     f"card.num_frames: the suite writes one card to both, so one of them was edited"], lines


def test_compare_refuses_tables_made_under_other_decode_caps(suite, tmp_path):
    """The decode caps decide which items have no usable video (red team A40: a cap left in the shell refused
    every video of one suite): the card records them and `savi eval compare` refuses other ones by name."""
    tmp, table, _, _, _, _ = suite
    from savi_plugin.environment import item_limits

    assert table["card"]["decode_limits"] == item_limits()
    other = tmp_path / "other"
    other.mkdir()
    card = dict(table["card"], decode_limits=dict(table["card"]["decode_limits"], SAVI_MAX_FRAME_PIXELS=64))
    (other / "table.json").write_text(json.dumps(dict(table, card=card)))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["eval", "compare", str(tmp / "suite"), str(other)]) == 1
    assert "(1 eval-card field(s) differ)" in err.getvalue()
    assert "decode_limits.SAVI_MAX_FRAME_PIXELS: " in err.getvalue() and " != 64" in err.getvalue()
    # a card that also records the caps that decide no video (as cards did before) is comparable
    older = tmp_path / "older"
    older.mkdir()
    card = dict(table["card"], decode_limits=dict(table["card"]["decode_limits"], SAVI_RENDEZVOUS_TIMEOUT=300,
                                                  SAVI_MAX_DOCUMENT_BYTES=1))
    (older / "table.json").write_text(json.dumps(dict(table, card=card)))
    assert main(["eval", "compare", str(tmp / "suite"), str(older)]) == 0


def _mark_unusable(run: Path, task: str, docs: dict[int, str]) -> None:
    """The logged samples of ``task`` in the lmms-eval output ``run`` as the task logs a doc whose video was
    unusable (``docs``: doc id -> ``bad_video`` or ``missing_video``): flagged, scored 0."""
    (path,) = run.rglob(f"*_samples_{task}.jsonl")
    samples = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for sample in samples:
        if sample["doc_id"] in docs:
            sample[docs[sample["doc_id"]]] = 1
            sample["accuracy"]["score"] = 0.0
    path.write_text("".join(json.dumps(sample) + "\n" for sample in samples))


def test_items_without_a_usable_video_are_left_out_and_a_task_with_none_has_no_delta(suite, tmp_path):
    """On the suite's own lmms-eval output: a doc whose video was unusable in either run is left out of the paired
    comparison and counted; a task with none left has no Δ in table.md, and `savi eval compare` shows it as no
    usable video and exits 1 (red team A40, B42)."""
    from savi_plugin.eval.results import read_run
    from savi_plugin.eval.suite import comparison_rows, format_table

    tmp, table, _, _, _, _ = suite
    runs = tmp_path / "runs"
    shutil.copytree(tmp / "suite" / "runs", runs)
    _mark_unusable(runs / "base" / "lmms_eval", "savi_perceptiontest", {0: "bad_video"})
    _mark_unusable(runs / "aligned" / "lmms_eval", "savi_perceptiontest", {1: "missing_video"})
    for label in ("base", "aligned"):  # every video of toybench_qa refused in both runs
        _mark_unusable(runs / label / "lmms_eval", "toybench_qa", dict.fromkeys(range(LIMIT), "bad_video"))
    base, aligned = read_run(runs / "base" / "lmms_eval"), read_run(runs / "aligned" / "lmms_eval")
    rows = {r["task"]: r for r in comparison_rows(base, {"aligned": aligned}, list(TASKS))}
    pt = rows["savi_perceptiontest"]
    b = [s["accuracy"]["score"] for s in _samples(runs / "base", "savi_perceptiontest")][2:]
    a = [s["accuracy"]["score"] for s in _samples(runs / "aligned", "savi_perceptiontest")][2:]
    direct = paired_bootstrap(b, a)  # doc 2 alone: the only one usable in both runs
    assert (pt["n"], pt["excluded"], pt["no_video_base"], pt["no_video_aligned"]) == (1, 2, 1, 1)
    assert (pt["delta"], pt["low"], pt["high"]) == pytest.approx((direct.delta, direct.low, direct.high))
    toy = rows["toybench_qa"]
    assert (toy["n"], toy["excluded"], toy["delta"], toy["low"], toy["high"]) == (0, LIMIT, None, None, None)
    md = format_table(list(rows.values()), [])
    assert f"| toybench_qa | aligned | 0 | {LIMIT} ({LIMIT} / {LIMIT}) | - | - | no usable video | - |" in md
    assert "| savi_perceptiontest | aligned | 1 | 2 (1 / 1) |" in md and "left out of the comparison" in md
    other = tmp_path / "other"
    other.mkdir()
    (other / "table.json").write_text(json.dumps(dict(table, rows=list(rows.values()))))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(["eval", "compare", str(tmp / "suite"), str(other)]) == 1
    assert f"| toybench_qa | aligned | Δ {table['rows'][1]['delta']:+.2f} [" in out.getvalue()
    assert f"| no usable video ({LIMIT} items): no Δ |" in out.getvalue()
    assert "n=1, 2 left out: no usable video" in out.getvalue()
    assert err.getvalue().startswith("error: savi eval compare: no item had a usable video in B toybench_qa "
                                     "(aligned)") and len(err.getvalue().splitlines()) == 1


def test_named_suites_say_what_they_leave_out_and_labels_are_unique(tmp_path):
    from savi_plugin.eval.suite import adapter_labels, suite_tasks

    assert suite_tasks("rrpo") == (["savi_mvbench_rrpo", "tvbench", "tempcompass_multi_choice",
                                    "savi_videohallucer_official", "savi_vidhalluc", "videomme", "mlvu_dev",
                                    "longvideobench_val_v"], [])
    assert suite_tasks("videosavi") == (["savi_mvbench_lmms", "savi_perceptiontest_lmms", "savi_egoschema_lmms",
                                         "nextqa_mc_test", "longvideobench_val_v", "tempcompass_multi_choice"], [])
    assert suite_tasks(" savi_mvbench, savi_egoschema ,") == (["savi_mvbench", "savi_egoschema"], [])
    assert list(adapter_labels(["runs/a/adapter", "runs/b/adapter", "x/base"])) == ["adapter", "adapter-2", "base-2"]
    code, _, err = _suite(["rrpo", "--model", "m", "--out", str(tmp_path / "s")])
    assert code == 2 and err.strip().splitlines()[-1] == (
        "error: savi eval suite: at least one --adapter is needed, to compare with the base model")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("argv", [
    ["eval", "suite", "savi_mvbench,savi_mvbenchh", "--model", "m", "--adapter", "a"],
    ["eval", "run", "--", "--model", "savi_video", "--model_args", "pretrained=m", "--tasks", "videome"]])
def test_a_misspelt_task_is_one_line_before_lmms_eval_starts(argv, tmp_path):
    """Named before any folder, model or lmms-eval process (it used to fail after a model's evaluation with
    "lmms-eval wrote no *_results.json")."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, *(["--out", str(tmp_path / "s")] if argv[1] == "suite" else [])])
    assert code == 2 and len(err.getvalue().strip().splitlines()) == 1, err.getvalue()
    assert "unknown lmms-eval task" in err.getvalue() and "did you mean" in err.getvalue()
    assert not (tmp_path / "s").exists()


# ------------------------------------------------------------------------------------- reading what a suite wrote
def _card(tasks=("savi_egoschema",), items: int = 3, **fields) -> dict:
    """The card :func:`build_card` writes for a base run of ``items`` documents over ``tasks`` (each a leaf of the
    egoschema benchmark), as a table.json stores it, with ``fields`` changed."""
    from savi_plugin.eval.card import build_card, card_for_file
    from savi_plugin.eval.results import LmmsEvalRun

    config = {"dataset_path": "lmms-lab/egoschema", "dataset_name": "Subset", "test_split": "test",
              "generation_kwargs": {"max_new_tokens": 16, "do_sample": False},
              "metadata": {"benchmark": "egoschema", "version": 0}}
    samples = {task: [{"doc_id": i, "input": f"q{i}", "target": "A"} for i in range(items // len(tasks))]
               for task in tasks}
    run = LmmsEvalRun({"configs": {task: config for task in tasks}}, samples)
    card = build_card(run, list(tasks), model="base", adapters={"aligned": "aligned"}, num_frames=4, limit=3,
                      gen_kwargs=None)
    return dict(card_for_file(card, Path("suite/table.json")), **fields)


def _table() -> dict:
    row = {"task": "savi_egoschema", "adapter": "aligned", "n": 3, "base": 33.33, "aligned": 66.67, "delta": 33.34,
           "low": 0.0, "high": 66.67, "excluded": 0, "no_video_base": 0, "no_video_aligned": 0}
    return {"rows": [row], "missing": [], "card": _card()}


def _broken_tables() -> dict[str, bytes]:
    """Every way a table.json can be unusable: torn at each structural point, not JSON, not UTF-8, and each field
    of the shape replaced by a value of another type."""
    good = json.dumps(_table(), indent=1).encode()
    out = {f"torn-at-{n}": good[:n] for n in (0, 1, 6, len(good) // 2, len(good) - 1)}
    out.update({"not-json": b"rows: []\n", "not-utf8": b'{"rows": "\xff"}', "nan": good.replace(b"33.33", b"NaN"),
                "duplicate-key": b'{"rows": [], "rows": [], "card": {}}', "deep": b"[" * 200 + b"]" * 200})
    for top in ([], "x", 1, None):
        out[f"top-{type(top).__name__}"] = json.dumps(top).encode()
    for path, bad in [(("rows",), {}), (("rows",), None), (("card",), []), (("card",), "x"),
                      (("card", "base_model"), "abc"), (("missing",), 1), (("rows", 0), [1]),
                      (("rows", 0, "task"), 1), (("rows", 0, "adapter"), None), (("rows", 0, "delta"), "1.0"),
                      (("rows", 0, "low"), True), (("rows", 0, "n"), None)]:
        table = _table()
        inner = table
        for key in path[:-1]:
            inner = inner[key]
        inner[path[-1]] = bad
        out["-".join(map(str, path)) + f"-{type(bad).__name__}"] = json.dumps(table).encode()
    # numbers of the right type outside what a suite can write (red team B34), and one comparison given twice (B33)
    for name, change in [("n-negative", {"n": -5}), ("n-fraction", {"n": 2.5}), ("excluded-negative", {"excluded": -1}),
                         ("low-huge", {"low": 1e300}), ("base-above-100", {"base": 150.0, "delta": -83.3}),
                         ("delta-not-aligned-minus-base", {"base": 0.0, "aligned": 0.0, "delta": 5.0}),
                         ("low-above-high", {"low": 50.0, "high": 10.0}), ("n-zero-with-scores", {"n": 0}),
                         ("n-huge", {"n": 10**30})]:
        table = _table()
        table["rows"][0].update(change)
        out[name] = json.dumps(table).encode()
    table = _table()
    table["rows"].append(dict(table["rows"][0], base=50.0, aligned=90.0, delta=40.0, low=30.0, high=50.0))
    out["row-twice"] = json.dumps(table).encode()
    table = _table()  # the same comparison once more under a name with a space after it (red team pass 10, B24)
    table["rows"].append(dict(table["rows"][0], task=table["rows"][0]["task"] + " ", base=50.0, aligned=90.0,
                              delta=40.0, low=30.0, high=50.0))
    out["row-twice-spaced-name"] = json.dumps(table).encode()
    # red team pass 11, B8: the second row's task is the first's with a Cyrillic 'а' (two rows that read as one),
    # whether or not the card's task list was edited to hold it too; B9: no row at all, the card intact
    cyrillic = "savi_egoschem\u0430"
    for name, tasks in [("row-twice-lookalike-name", ["savi_egoschema"]),
                        ("card-task-twice-lookalike-name", ["savi_egoschema", cyrillic])]:
        table = _table()
        table["card"]["suite_tasks"] = tasks
        table["rows"].append(dict(table["rows"][0], task=cyrillic, base=50.0, aligned=90.0, delta=40.0, low=30.0,
                                  high=50.0))
        out[name] = json.dumps(table).encode()
    for name, change in [("rows-empty", {"rows": []}), ("card-no-suite-tasks", {"card": {"suite_tasks": []}}),
                         ("card-no-adapters", {"card": {"adapters": None}}),
                         ("row-not-a-task-of-the-card", {"card": {"suite_tasks": ["savi_mvbench"]}}),
                         ("row-missing", {"card": {"suite_tasks": ["savi_egoschema", "savi_mvbench"]}}),
                         ("task-bidi-override", {"card": {"suite_tasks": ["savi_\u202eamehcsoge"]}})]:
        table = _table()
        table.update({k: v for k, v in change.items() if k != "card"})
        table["card"].update(change.get("card", {}))
        out[name] = json.dumps(table).encode()
    return out


BROKEN_TABLES = _broken_tables()


@pytest.mark.parametrize("case", list(BROKEN_TABLES))
@pytest.mark.parametrize("side", ["a", "b"])
def test_compare_names_the_table_file_that_cannot_be_read(case, side, tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad, x=1"
    good.mkdir()
    bad.mkdir()
    (good / "table.json").write_text(json.dumps(_table()))
    (bad / "table.json").write_bytes(BROKEN_TABLES[case])
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["eval", "compare", *((str(bad), str(good)) if side == "a" else (str(good), str(bad)))])
    lines = err.getvalue().strip().splitlines()
    assert code == 1 and len(lines) == 1 and not out.getvalue(), err.getvalue()
    assert lines[0].startswith("error: ") and str(bad / "table.json") in lines[0], lines[0]


@pytest.mark.parametrize("change, fragment", [
    # pass 12, B49: a key no suite writes was compared as the same card (small or 7.9 M zeros under the caps)
    ({"card": {"x": 1}}, "card.x: not a field of an eval card (it holds lmms_eval, "),
    ({"card": {"x": [0] * 100_000}}, "card.x: not a field of an eval card"),
    ({"card": {"k\u202ey": 1}}, "card.'k\\u202ey': not a field of an eval card"),
    # pass 12, B54: a task listed as not run that has its row (or is in the card's task list) says both
    ({"missing": ["savi_egoschema"]}, ("missing[0]: task 'savi_egoschema' is listed as not run, yet rows[0] holds "
                                       "its result")),
    ({"missing": ["savi_mvbench", 5]}, "missing[1]: not a string"),
])
def test_compare_refuses_a_card_key_or_a_missing_task_no_suite_writes(change, fragment, tmp_path, capsys):
    table = _table()
    table["card"].update(change.get("card", {}))
    table.update({k: v for k, v in change.items() if k != "card"})
    for side, content in (("a", _table()), ("b", table)):
        (tmp_path / side).mkdir()
        (tmp_path / side / "table.json").write_text(json.dumps(content))
    assert main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert not out and len(lines) == 1, err
    assert lines[0].startswith(f"error: savi eval compare: {tmp_path / 'b' / 'table.json'}: {fragment}"), lines[0]


@pytest.mark.parametrize("generation, fragment", [
    ({"max_new_tokens": -1}, "max_new_tokens (gen_kwargs) must be >= 1"),
    ({"temperature": -5}, "temperature (gen_kwargs) must be >= 0"),
    ({"temperature": 1e308, "do_sample": True}, "temperature (gen_kwargs) must be at most 4294967295 in magnitude"),
    ({"temperature": 0.7, "do_sample": True, "max_new_tokens": 16, "image_aspect_ratio": "pad"}, None),  # applied
])
def test_compare_refuses_a_task_generation_no_run_could_have_used(generation, fragment, tmp_path, capsys):
    """Pass 17 B #31: ``generation.max_new_tokens: -1`` in a card's task was shown as a valid comparison; the
    settings savi_video applies are read by its own rules."""
    table = _table()
    task = next(iter(table["card"]["tasks"]))
    table["card"]["tasks"][task]["generation"] = generation
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "table.json").write_text(json.dumps(table))
    code = main(["eval", "compare", str(tmp_path / "b"), str(tmp_path / "b")])
    err = capsys.readouterr().err
    if fragment is None:
        assert code == 0, err
    else:
        assert code == 1 and f"card.tasks.{task}.generation: {fragment}" in err, err


@pytest.mark.parametrize("row, card, fragment", [
    # red team pass 13, B42 (tf3): Δ outside its own percentile bootstrap interval, which always holds the mean
    ({"aligned": 66.67, "delta": 33.34, "low": -10.0, "high": -5.0}, {},
     "rows[0].delta: 33.34 is outside its own 95% interval [-10.0, -5.0]"),
    # (tf4) with 2 items a score is 0, 50 or 100
    ({"n": 2, "base": 33.33, "aligned": 83.33, "delta": 50.0, "low": 0.0, "high": 100.0}, {},
     "rows[0].base: 33.33 is no accuracy over n=2 items"),
    ({"n": 2, "base": 50.0, "aligned": 83.33, "delta": 33.33, "low": 0.0, "high": 100.0}, {},
     "rows[0].aligned: 83.33 is no accuracy over n=2 items"),
    # (tf5) more items than the card's limit lets one task have, or than its base run logged
    ({"n": 1000, "base": 0.0, "aligned": 0.0, "delta": 0.0, "low": 0.0, "high": 0.0},
     {"limit": 2, "items": 1000},
     "rows[0].n: 1000 items (with 0 excluded) is above what the card's limit allows (2 per task x 1 task(s) = 2)"),
    ({"n": 2, "excluded": 1, "no_video_base": 1, "base": 0.0, "aligned": 0.0, "delta": 0.0, "low": 0.0,
      "high": 0.0}, {"items": 2},
     "rows[0].n: 2 items (with 1 excluded) is above the card's items (2)"),
    # replay 14, B20: a leaf task's row is capped by the limit alone, not by the limit times every leaf of the card
    ({"n": 4, "base": 25.0, "aligned": 50.0, "delta": 25.0, "low": 0.0, "high": 75.0},
     {"limit": 2, "items": 8, "tasks": _card(("savi_egoschema", "savi_perceptiontest"))["tasks"]},
     "rows[0].n: 4 items (with 0 excluded) is above what the card's limit allows (2 per task x 1 task(s) = 2)"),
    # replay 14, B21: base and aligned both 0: every paired difference is 0, so is every resampled mean
    ({"n": 2, "base": 0.0, "aligned": 0.0, "delta": 0.0, "low": -100.0, "high": 100.0}, {},
     "rows[0].low: -100.0 is below 0, yet no item can have lost its score"),
    ({"n": 2, "base": 100.0, "aligned": 100.0, "delta": 0.0, "low": 0.0, "high": 100.0}, {},
     "rows[0].high: 100.0 is above 0, yet no item can have gained a score"),
])
def test_compare_refuses_a_row_no_suite_can_write(row, card, fragment, tmp_path, capsys):
    """Each number passes the checks of its own (counts whole, scores 0-100, Δ = aligned - base, low <= high), yet no
    suite writes the row: it was compared and printed as real (red team pass 13, B42)."""
    table = _table()
    table["rows"][0].update(row)
    table["card"].update(card)
    for side, content in (("a", _table()), ("b", table)):
        (tmp_path / side).mkdir()
        (tmp_path / side / "table.json").write_text(json.dumps(content))
    assert main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert not out and len(lines) == 1, err
    assert lines[0].startswith(f"error: savi eval compare: {tmp_path / 'b' / 'table.json'}: {fragment}"), lines[0]


def test_compare_refuses_rows_holding_more_items_together_than_the_card_logged(tmp_path, capsys):
    """Replay 14 C #15: two leaf tasks' rows of 4 items each under a card whose base run logged 4 documents were
    printed as real; each row alone was within the card's items."""
    table = _table()
    table["card"] = _card(("savi_egoschema", "savi_perceptiontest"), 4, limit=4)
    row = {"adapter": "aligned", "n": 4, "base": 25.0, "aligned": 50.0, "delta": 25.0, "low": 0.0, "high": 75.0,
           "excluded": 0, "no_video_base": 0, "no_video_aligned": 0}
    table["rows"] = [{"task": "savi_egoschema", **row}, {"task": "savi_perceptiontest", **row}]
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "table.json").write_text(json.dumps(table))
    assert main(["eval", "compare", str(tmp_path / "t"), str(tmp_path / "t")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: savi eval compare: {tmp_path / 't' / 'table.json'}: rows: the rows of adapter 'aligned' hold 8 items "
        f"together (rows 0, 1), above the card's items (4)"), lines
    table["card"]["items"] = 8  # what the two tasks' base runs logged: read
    (tmp_path / "t" / "table.json").write_text(json.dumps(table))
    assert main(["eval", "compare", str(tmp_path / "t"), str(tmp_path / "t")]) == 0


def test_a_row_a_suite_computed_passes_its_checks():
    """The checks hold for what the suite computes (:func:`paired_bootstrap` over item scores of 0 or 100): Δ
    inside its interval and scores of 100 k / n, for random and one-sided paired items from 1 to 60."""
    from savi_plugin.eval.suite import row_problem

    rng = np.random.default_rng(0)
    for n in [*range(1, 13), 31, 60]:
        for p in ((0.5, 0.5), (0.05, 0.95), (0.0, 1.0 / n)):
            base, aligned = (100.0 * (rng.random(n) < q) for q in p)
            delta = paired_bootstrap(base, aligned, n_resamples=2000)
            row = {**delta.to_dict(), "no_video_base": 0, "no_video_aligned": 0}
            assert row_problem(row) is None, row
            rounded = {k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}  # as reports print
            assert row_problem(rounded) is None, rounded


def _compare_tables(tmp_path, a: dict, b: dict) -> tuple[int, str, str, Path]:
    """``savi eval compare A B`` in-process over two table.json files; (exit status, stdout, stderr, B's file)."""
    for side, content in (("a", a), ("b", b)):
        (tmp_path / side).mkdir(exist_ok=True)
        (tmp_path / side / "table.json").write_text(json.dumps(content))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")])
    return code, out.getvalue(), err.getvalue(), tmp_path / "b" / "table.json"


@pytest.mark.parametrize("change", [
    {},  # one leaf task, a limit of 3
    {"tasks": ("savi_egoschema", "savi_perceptiontest"), "items": 6},
    {"limit": None}, {"limit": 0.5}, {"model": "org/hub-model", "gen_kwargs": "max_new_tokens=8"},
    {"config": {}},  # a task whose config says nothing (no benchmark, no frames, no generation_kwargs)
    {"adapters": {"aligned": "runs/a/adapter", "aligned-2": "runs/b/adapter"}},
])
def test_every_card_build_card_writes_is_a_card_the_reader_reads_whole(change, tmp_path):
    """A table of any card :func:`build_card` writes, as the suite stores it, passes the reader: the declared
    shape holds what the writer writes (a hub id's ``id:`` hash, null limit, a fraction, a task with no protocol)."""
    from savi_plugin.eval.card import CARD, build_card, card_for_file
    from savi_plugin.eval.results import LmmsEvalRun
    from savi_plugin.eval.suite import read_table

    tasks = change.get("tasks", ("savi_egoschema",))
    config = change.get("config", {"dataset_path": "lmms-lab/egoschema", "dataset_name": "Subset",
                                   "test_split": "test", "generation_kwargs": {"until": ["\n"], "do_sample": False},
                                   "metadata": {"benchmark": "egoschema"}})
    per_task = change.get("items", 3) // len(tasks)
    run = LmmsEvalRun({"configs": {task: config for task in tasks}},
                      {task: [{"doc_id": i, "input": "q", "target": [1, "A"]} for i in range(per_task)]
                       for task in tasks})
    adapters = change.get("adapters", {"aligned": "aligned"})
    card = build_card(run, list(tasks), model=change.get("model", "base"), adapters=adapters, num_frames=4,
                      limit=change.get("limit", 3), gen_kwargs=change.get("gen_kwargs"))
    stored = card_for_file(card, tmp_path / "b" / "table.json")
    assert CARD.problem(stored, "card") is None and CARD.problem(card, "card") is None
    row = {"n": per_task, "base": 0.0, "aligned": 0.0, "delta": 0.0, "low": 0.0, "high": 0.0, "excluded": 0,
           "no_video_base": 0, "no_video_aligned": 0}
    table = {"rows": [{"task": t, "adapter": a, **row} for t in tasks for a in adapters], "missing": [],
             "card": stored}
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "table.json").write_text(json.dumps(table))
    assert read_table(tmp_path / "b")["card"] == stored


def test_the_tables_a_suite_wrote_are_read_whole(suite):
    """The suite's own table.json and card.json hold the declared shape at every depth."""
    from savi_plugin.eval.card import CARD
    from savi_plugin.eval.suite import TABLE, read_table

    tmp = suite[0]
    written = json.loads((tmp / "suite" / "table.json").read_text())
    assert TABLE.problem(written, "") is None
    assert CARD.problem(json.loads((tmp / "suite" / "card.json").read_text()), "card") is None
    assert read_table(tmp / "suite") == written


def _fields(shape, value, at: str = ""):
    """Every ``(path, shape, parent, key)`` of the document ``value`` of ``shape``, depth first (a list's items, a
    mapping's values under their names): what the generated reader cases below go through."""
    from savi_plugin.shape import ListOf, MapOf, Nullable, Record, key_path

    inner = shape.inner if isinstance(shape, Nullable) else shape
    if value is None:
        return
    if isinstance(inner, Record):
        children = [(key, sub) for key, sub in inner.fields.items() if key in value]
    elif isinstance(inner, MapOf):
        children = [(key, inner.value) for key in value]
    elif isinstance(inner, ListOf):
        children = [(i, inner.item) for i in range(len(value))]
    else:
        return
    for key, sub in children:
        path = f"{at}[{key}]" if isinstance(key, int) else key_path(at, key)
        yield path, sub, value, key
        yield from _fields(sub, value[key], path)


def _generated_cases() -> dict[str, tuple[dict, str]]:
    """Each declared field of a table a suite writes x {a value of another kind, a count that is not whole, a value
    below its range}, and each record x a key beside its fields no writer writes: (the table, the path its refusal
    names)."""
    import copy

    from savi_plugin.eval.suite import TABLE
    from savi_plugin.shape import Count, Nullable, Number, OneOf, Record, Ruled

    def counted(shape) -> bool:
        return isinstance(shape, (Count, Ruled)) or (isinstance(shape, OneOf) and
                                                     any(isinstance(o, Count) for o in shape.options))

    good = _table()
    cases: dict[str, tuple[dict, str]] = {}
    extra = copy.deepcopy(good)
    extra["zz_not_written"] = 1
    cases["zz_not_written"] = (extra, "zz_not_written: not a field of a suite table")
    for path, shape, _parent, _key in _fields(TABLE, good):
        def changed(value=None, *, new_key=False, path=path):
            table = copy.deepcopy(good)
            parent, key = next((p, k) for q, _s, p, k in _fields(TABLE, table) if q == path)  # the same place
            if new_key:
                parent[key]["zz_not_written"] = 1
            else:
                parent[key] = value
            return table

        inner = shape.inner if isinstance(shape, Nullable) else shape
        if isinstance(inner, Record) and isinstance(_parent[_key], dict):
            cases[f"{path}.zz_not_written"] = (changed(new_key=True), f"{path}.zz_not_written: not a field of")
        # a value of another kind, refused at this very path (a list of one number is refused at its item)
        wrong = next(v for v in ([1], {"k": 1}, "x", 7) if (shape.problem(v, path) or "").startswith(f"{path}: "))
        cases[f"{path}-wrong-kind"] = (changed(wrong), f"{path}: ")
        if counted(inner):
            cases[f"{path}-not-whole"] = (changed(2.5), f"{path}: ")
        if counted(inner) or isinstance(inner, Number):
            cases[f"{path}-negative"] = (changed(inner.low - 1 if isinstance(inner, Number) else -1), f"{path}: ")
    return cases


GENERATED_CASES = _generated_cases()


@pytest.mark.parametrize("case", list(GENERATED_CASES))
def test_a_table_no_suite_writes_is_refused_naming_the_field(case, tmp_path):
    """Generated from the declared shape (:data:`savi_plugin.eval.suite.TABLE`): a key beside every field, a value
    of another kind, a count that is not whole, a value below its range, at every depth -- one line naming the file
    and the field's path, exit 1, nothing compared (pass 15 C #12, #13: ``card.base_model.note`` was read)."""
    table, fragment = GENERATED_CASES[case]
    code, out, err, path = _compare_tables(tmp_path, _table(), table)
    lines = err.strip().splitlines()
    assert code == 1 and not out and len(lines) == 1, err
    assert lines[0].startswith(f"error: savi eval compare: {path}: {fragment}"), lines[0]


def _two_adapters() -> dict:
    table = _table()
    table["card"]["adapters"]["rrpo"] = dict(table["card"]["adapters"]["aligned"], path="rrpo")
    table["rows"].append(dict(table["rows"][0], adapter="rrpo"))
    return table


@pytest.mark.parametrize("edit, fragment", [
    # pass 15 C #12: a card key nobody writes one level down
    (lambda t: t["card"]["base_model"].update(note="B"), "card.base_model.note: not a field of the base model's "
                                                           "entry (it holds path, sha256)"),
    (lambda t: t["card"]["adapters"]["aligned"].update(extra=1), "card.adapters.aligned.extra: not a field of an "
                                                                  "adapter's entry"),
    # pass 15 C #13
    (lambda t: t["card"].update(items=8.5), "card.items: 8.5 is written as a decimal number; a count is written as "
                                            "a whole number (4, not 4.0)"),
    # pass 17 B #30: "16777216.0 is not a whole number" of a whole value written as a decimal number
    (lambda t: t["card"].update(items=8.0), "card.items: 8.0 is written as a decimal number"),
    (lambda t: t["rows"][0].update(no_video_base=3), "rows[0].excluded: 0 items left out, yet 3 had no usable "
                                                      "video in the base run and 0 in the aligned run"),
    (lambda t: t["rows"][0].update(excluded=2, no_video_base=1, no_video_aligned=0, n=1, base=0.0, aligned=0.0,
                                   delta=0.0, high=0.0), "rows[0].excluded: 2 items left out, yet 1 had"),
    (lambda t: t["rows"][0].update(comment="x"), "rows[0].comment: not a field of a table row"),
    (lambda t: t.update(extra=1), "extra: not a field of a suite table (it holds rows, missing, card)"),
    (lambda t: t["card"].pop("items"), "card.items: missing; an eval card always holds it"),
    (lambda t: t["card"]["adapters"].update({"a b": t["card"]["adapters"]["aligned"]}),
     "card.adapters: key 'a b': 'a b' is not an adapter label"),
    # one task's rows: every adapter compared with the one base run on the same items
    (lambda t: (t.update(_two_adapters()), t["rows"][1].update(n=2, aligned=50.0, base=50.0, delta=0.0, low=0.0,
                                                               high=0.0)),
     "rows[1].n: 2 items (n + excluded) for task 'savi_egoschema', yet rows[0] (adapter 'aligned') has 3"),
    (lambda t: (t.update(_two_adapters()), t["rows"][1].update(excluded=1, no_video_base=1, n=2, aligned=50.0,
                                                               base=50.0, delta=0.0, low=0.0, high=0.0)),
     "rows[1].no_video_base: 1 items with no usable video in the base run for task 'savi_egoschema', yet rows[0]"),
])
def test_the_testers_tables_are_refused(edit, fragment, tmp_path):
    table = _table()
    edit(table)
    code, out, err, path = _compare_tables(tmp_path, _table(), table)
    lines = err.strip().splitlines()
    assert code == 1 and not out and len(lines) == 1, err
    assert lines[0].startswith(f"error: savi eval compare: {path}: {fragment}"), lines[0]


def test_no_video_counts_count_the_compared_items():
    """A multi-document item (a VideoHallucer pair) is one item: a pair with an unusable clip counts once in
    ``no_video_base`` and ``excluded``, and a pair cut by ``--limit`` (left out of the comparison) in neither, so a
    suite's row always has ``max(no_video_base, no_video_aligned) <= excluded <= their sum``."""
    from savi_plugin.eval.results import LmmsEvalRun
    from savi_plugin.eval.suite import ROW, comparison_rows, row_problem

    def sample(doc, group, score=100.0, bad=False):
        return {"doc_id": doc, "accuracy": {"score": score, "group": group, "group_size": 2},
                **({"bad_video": 1} if bad else {})}

    base = LmmsEvalRun({}, {"pairs": [sample(0, "g1", 0.0, bad=True), sample(1, "g1", 0.0, bad=True),
                                      sample(2, "g2"), sample(3, "g2"), sample(4, "g3", 0.0, bad=True)]})
    aligned = LmmsEvalRun({}, {"pairs": [sample(0, "g1"), sample(1, "g1"), sample(2, "g2", 0.0, bad=True),
                                         sample(3, "g2"), sample(4, "g3")]})
    (row,) = comparison_rows(base, {"aligned": aligned}, ["pairs"])
    assert (row["n"], row["excluded"], row["no_video_base"], row["no_video_aligned"]) == (0, 2, 1, 1)
    assert ROW.problem(row, "row") is None and row_problem(row) is None


@pytest.mark.parametrize("spell", ["same", "slash", "link", "dotted", "hub id"])
@pytest.mark.parametrize("out_exists", [False, True])
def test_an_adapter_given_twice_is_a_usage_error_before_anything_runs(spell, out_exists, tmp_path, monkeypatch,
                                                                      capsys):
    """Pass 15 C #8: ``--adapter rrpo --adapter rrpo`` ran as two labels (``rrpo``, ``rrpo-2``) and, on a re-run,
    said ``identity.adapter rrpo-2 changed content``. The same folder given twice, however spelt or linked, is one
    line naming it, exit 2, before any folder is claimed -- a new --out stays absent, an existing one untouched."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rrpo").mkdir()
    (tmp_path / "rrpo" / "adapter_config.json").write_text("{}")
    (tmp_path / "link").symlink_to(tmp_path / "rrpo")
    first, second = {"same": ("rrpo", "rrpo"), "slash": ("rrpo", "rrpo/"), "link": ("rrpo", "link"),
                     "dotted": ("rrpo", f"../{tmp_path.name}/./rrpo"), "hub id": ("org/x", "org/x")}[spell]
    out = tmp_path / "suite"
    if out_exists:
        out.mkdir()
        (out / "table.json").write_text("kept")
    code = main(["eval", "suite", "savi_egoschema", "--model", "m", "--adapter", first, "--adapter", second,
                 "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"--adapter {second!r} is the adapter folder --adapter {first!r} names: the same adapter given twice" \
        in err[0], err[0]
    assert (sorted(p.name for p in out.iterdir()) == ["table.json"]) if out_exists else not out.exists()


def test_a_name_read_from_a_table_cannot_forge_a_markdown_row(tmp_path):
    """A task name holding ``|`` and line ends (red team B35): escaped in the one Markdown writer, so every row
    printed is one line with the table's four cells."""
    from savi_plugin.eval.suite import format_table, markdown_cell

    name = "savi_x | fake | 1 | 2\n| x\r\u2028\\"
    assert markdown_cell(name) == "savi_x \\| fake \\| 1 \\| 2\\n\\| x\\r\\u2028\\\\"
    table = _table()
    table["rows"][0]["task"] = name
    table["card"]["suite_tasks"] = [name]
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        (tmp_path / side / "table.json").write_text(json.dumps(table))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[2].startswith(f"| {markdown_cell(name)} | aligned | Δ +33.34"), lines
    assert len(format_table(table["rows"], []).splitlines()) == 3


def test_a_resumed_suite_names_a_kept_run_file_that_cannot_be_read(suite, tmp_path):
    """A kept run's lmms-eval files damaged after it finished (a torn results file, a samples line that is not an
    object, a doc logged twice) are refused by the kept-product check before anything reads them: one line naming
    the file that changed and the folder to remove."""
    from savi_plugin.errors import RunError
    from savi_plugin.eval.suite import SuitePlan, run_suite

    tmp, _, _, _, _, _ = suite
    plan = SuitePlan(**json.loads((tmp / "suite" / "suite.json").read_text()))
    def again(path):  # red team pass 11, B13: doc 0 logged once more, right this time: it replaced the first line
        first = json.loads(path.read_text().splitlines()[0])
        first["accuracy"]["score"] = 100.0 - first["accuracy"]["score"]
        path.write_text(path.read_text() + json.dumps(first) + "\n")

    for name, damage in [("results", lambda p: p.write_text(p.read_text()[:40])),
                         ("samples", lambda p: p.write_text(p.read_text() + "[1, 2]\n")), ("doc-twice", again)]:
        out = tmp_path / name
        shutil.copytree(tmp / "suite", out)
        folder = out / "runs" / "base"
        (target,) = folder.rglob("*_results.json" if name == "results" else "*_samples_savi_perceptiontest.jsonl")
        damage(target)
        with pytest.raises(RunError) as caught:
            run_suite(plan, out)
        message = str(caught.value)
        assert message.startswith(f"{folder / 'done.json'}: its lmms-eval output {folder / 'lmms_eval'} changed "
                                  f"after it was made ({target.relative_to(folder / 'lmms_eval')} changed)"), message
        assert message.endswith(f"remove {folder} to evaluate base again") and "\n" not in message


@pytest.mark.parametrize("gone", ["*_results.json", "*_samples_savi_perceptiontest.jsonl"])
def test_a_resumed_suite_names_the_kept_run_whose_file_is_gone(gone, suite, tmp_path):
    """Pass 12 B #48: a kept run missing its samples or results file ended in ``error: FileNotFoundError: ...``
    naming no run folder, with advice (``--log_samples``) the suite already follows; the run's folder is named
    with the way out."""
    from savi_plugin.errors import RunError
    from savi_plugin.eval.suite import SuitePlan, run_suite

    tmp, _, _, _, _, _ = suite
    plan = SuitePlan(**json.loads((tmp / "suite" / "suite.json").read_text()))
    out = tmp_path / "suite"
    shutil.copytree(tmp / "suite", out)
    (target,) = (out / "runs" / "base").rglob(gone)
    target.unlink()
    with pytest.raises(RunError) as caught:
        run_suite(plan, out)
    folder = out / "runs" / "base"
    assert str(caught.value).startswith(f"{folder / 'done.json'}: its lmms-eval output {folder / 'lmms_eval'} changed "
                                        f"after it was made ({target.relative_to(folder / 'lmms_eval')} removed)")
    assert str(caught.value).endswith(f"remove {folder} to evaluate base again") and "--log_samples" not in str(caught.value)


def test_a_resumed_suite_refuses_a_kept_run_edited_after_it_finished(suite, tmp_path):
    """Pass 12 B #10: a samples line of a kept run replaced by a valid "correct" one changed the table's Δ while
    lmms-eval's own results file still said otherwise; ``done.json`` holds the files' SHA-256."""
    from savi_plugin.errors import RunError
    from savi_plugin.eval.suite import SuitePlan, run_suite

    tmp, _, _, _, _, _ = suite
    plan = SuitePlan(**json.loads((tmp / "suite" / "suite.json").read_text()))
    out = tmp_path / "suite"
    shutil.copytree(tmp / "suite", out)
    (target,) = (out / "runs" / "aligned").rglob("*_samples_savi_perceptiontest.jsonl")
    lines = target.read_text().splitlines()
    first = json.loads(lines[0])
    first["accuracy"]["score"] = 100.0 - first["accuracy"]["score"]
    target.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    with pytest.raises(RunError) as caught:
        run_suite(plan, out)
    folder = out / "runs" / "aligned"
    assert str(caught.value).startswith(f"{folder / 'done.json'}: its lmms-eval output {folder / 'lmms_eval'} changed "
                                        f"after it was made ({target.relative_to(folder / 'lmms_eval')} changed)"), \
        str(caught.value)


def _copied_suite(suite, tmp_path):
    """The finished suite's plan and a copy of its folder to damage."""
    from savi_plugin.eval.suite import SuitePlan

    tmp = suite[0]
    out = tmp_path / "suite"
    shutil.copytree(tmp / "suite", out)
    return SuitePlan(**json.loads((tmp / "suite" / "suite.json").read_text())), out


def test_a_resumed_suite_refuses_kept_runs_whose_folders_were_swapped(suite, tmp_path):
    """Pass 21 E #24: ``runs/base`` and ``runs/<adapter>`` swapped; the re-run kept both and flipped Δ's sign, exit
    0. Each ``done.json`` names the run it holds, compared with the label it is kept for."""
    from savi_plugin.errors import RunError
    from savi_plugin.eval.suite import run_suite

    plan, out = _copied_suite(suite, tmp_path)
    runs = out / "runs"
    (runs / "base").rename(runs / "swap")
    (runs / "aligned").rename(runs / "base")
    (runs / "swap").rename(runs / "aligned")
    with pytest.raises(RunError) as caught:
        run_suite(plan, out)
    assert str(caught.value).startswith(f"{runs / 'base' / 'done.json'}: it was made for another run than this one "
                                        f'(label: "aligned" -> "base"'), str(caught.value)


def test_a_resumed_suite_refuses_a_kept_run_copied_from_a_suite_of_other_settings(suite, tmp_path):
    """Pass 21 E #36: an adapter's run at 2 frames copied into a 4-frame suite was kept and compared with the base
    at 4 frames (a Δ of +10 reported as significant; the real one +0). Each ``done.json`` stores the settings
    that decide its numbers, compared with the suite's."""
    from savi_plugin.data.kept import seal
    from savi_plugin.errors import RunError
    from savi_plugin.eval.suite import run_suite

    plan, out = _copied_suite(suite, tmp_path)
    done = out / "runs" / "aligned" / "done.json"
    record = json.loads(done.read_text())
    settings = record["kept"]["slot"]["settings"]
    assert settings["num_frames"] == plan.num_frames
    settings["num_frames"] = plan.num_frames + 2
    done.write_text(json.dumps(seal(record)))
    with pytest.raises(RunError) as caught:
        run_suite(plan, out)
    assert str(caught.value).startswith(f"{done}: it was made for another run than this one (settings.num_frames: "
                                        f"{plan.num_frames + 2} -> {plan.num_frames})"), str(caught.value)


def test_a_resumed_suite_refuses_a_kept_run_of_another_adapter_under_the_same_label(suite, tmp_path):
    """Pass 21 replay (E #24/#36 neighbour): a run of another adapter of the same label (another folder named like
    it) copied into a suite was kept as this adapter's run. ``done.json`` stores the identities of the model and
    adapter the run evaluated, compared when it is kept."""
    from savi_plugin.data.kept import seal
    from savi_plugin.errors import RunError
    from savi_plugin.eval.suite import run_suite

    plan, out = _copied_suite(suite, tmp_path)
    done = out / "runs" / "aligned" / "done.json"
    record = json.loads(done.read_text())
    identity = record["kept"]["slot"]["settings"]["identity"]
    identity["adapter"] = {**identity["adapter"], "sha256": "0" * 64}
    done.write_text(json.dumps(seal(record)))
    with pytest.raises(RunError) as caught:
        run_suite(plan, out)
    assert str(caught.value).startswith(f"{done}: it was made for another run than this one "
                                        f"(settings.identity.adapter changed content"), str(caught.value)


#: a logged sample of a savi task as its process_results writes it (task.process_mcq), and lines no task writes
_SAMPLE = {"doc_id": 0, "accuracy": {"score": 100.0, "pred": 1, "answered": True, "target": 1, "id": "a"},
           "unparsed": 0, "missing_video": 0, "bad_video": 0, "control_token_in_text": 0}
BAD_SAMPLES = {"score-1.0": ({"accuracy": dict(_SAMPLE["accuracy"], score=1.0)}, "accuracy.score: 1.0 is not 0 or 100"),
               "score-true": ({"accuracy": dict(_SAMPLE["accuracy"], score=True)}, "accuracy.score: True is not"),
               "score-plain-50": ({"accuracy": 50}, "accuracy: 50 is not 0 or 100"),
               "group-size-0": ({"accuracy": dict(_SAMPLE["accuracy"], group="g", group_size=0)},
                                "accuracy.group_size: 0 is not a whole number >= 1"),
               "count-2": ({"unparsed": 2}, "unparsed: 2 is not 0 or 1"),
               "doc-id-string": ({"doc_id": "0"}, "doc_id: '0' is not a whole number >= 0"),
               "doc-id-negative": ({"doc_id": -1}, "doc_id: -1 is not a whole number >= 0"),
               "doc-twice": ({"doc_id": 0}, "doc_id 0 is given twice (first at line 1)")}


@pytest.mark.parametrize("case", list(BAD_SAMPLES))
def test_a_logged_sample_no_task_writes_is_refused_naming_file_and_line(case, tmp_path):
    """The one samples reader (results.read_run) refuses what the task's process_results cannot have written (red
    team pass 11, B13: a score of 1.0, a doc_id logged twice whose later line silently replaced the first), naming
    file:line; an lmms-eval built-in's samples keep their own verdict keys (only doc_id is checked)."""
    from savi_plugin.eval.results import ResultsFileError, read_run

    change, message = BAD_SAMPLES[case]
    (tmp_path / "x_results.json").write_text("{}")
    path = tmp_path / "x_samples_savi_perceptiontest.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in (_SAMPLE, dict(_SAMPLE, doc_id=1), {**_SAMPLE, **change})))
    with pytest.raises(ResultsFileError) as caught:
        read_run(tmp_path)
    assert str(caught.value).startswith(f"{path}:3: {message}"), caught.value
    path.write_text("".join(json.dumps(s) + "\n" for s in (_SAMPLE, dict(_SAMPLE, doc_id=1))))
    assert read_run(tmp_path).item_scores("savi_perceptiontest") == {"savi_perceptiontest/0": 100.0,
                                                                      "savi_perceptiontest/1": 100.0}
    builtin = tmp_path / "x_samples_mvbench_action_antonym.jsonl"
    builtin.write_text(json.dumps({"doc_id": 0, "mvbench_accuracy": {"score": 1}}) + "\n")
    assert read_run(tmp_path).samples["mvbench_action_antonym"][0]["mvbench_accuracy"] == {"score": 1}


def test_a_suite_continues_from_another_working_folder_with_other_spellings(suite, tmp_path, monkeypatch, capsys):
    """The suite's mark compared the model, adapter and data root as typed, so continuing from another folder was
    refused as a different configuration (red team 6); their identities by content are what is compared."""
    from savi_plugin.eval.suite import SuitePlan, run_suite

    tmp, table, _, _, _, _ = suite
    out = tmp_path / "copy"
    shutil.copytree(tmp / "suite", out)
    stored = json.loads((tmp / "suite" / "suite.json").read_text())
    monkeypatch.chdir(tmp)
    plan = SuitePlan(**{**stored, "model": "tiny", "adapters": {"aligned": "./aligned"}, "data_root": "data"})
    result = run_suite(plan, out)
    assert result["rows"] == table["rows"]
    err = capsys.readouterr().err
    assert "base: kept from an earlier run" in err and "aligned: kept from an earlier run" in err
    # what it stores names the model, adapter and data root from the suite folder, not from the working folder
    # (red team 7: card.json, table.json's card, suite.json and the mark held "tiny" and "./aligned" as typed)
    from tests.test_paths_relative import every_json_stores_paths_by_the_rule

    card = json.loads((out / "card.json").read_text())
    assert card["base_model"]["path"] == str(tmp / "tiny")  # outside the suite folder: absolute
    assert card["adapters"]["aligned"]["path"] == str(tmp / "aligned")
    assert json.loads((out / "table.json").read_text())["card"]["base_model"] == card["base_model"]
    suite_json = json.loads((out / "suite.json").read_text())
    assert (suite_json["model"], suite_json["adapters"], suite_json["data_root"]) == (
        str(tmp / "tiny"), {"aligned": str(tmp / "aligned")}, str(tmp / "data"))
    every_json_stores_paths_by_the_rule(out, "card.json", "table.json", "suite.json", ".savi-output.json",
                                        "done.json")


def test_a_task_listed_twice_is_a_usage_error_before_anything_runs(tmp_path, capsys):
    """One comparison per task (red team pass 10, B43): a task listed twice would write two rows for one
    comparison, a table `savi eval compare` refuses."""
    code = main(["eval", "suite", "savi_mvbench_action_antonym,savi_mvbench_action_antonym", "--model",
                 str(tmp_path / "m"), "--adapter", str(tmp_path / "a"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "listed more than once" in err[0], err
    assert not (tmp_path / "out").exists()


def test_a_suite_evaluating_a_run_again_retires_its_table_before_it_starts(suite, tmp_path, monkeypatch):
    """Pass 18 C #13: a suite stopped while re-evaluating a run left its old ``table.json`` and ``card.json``, and
    ``savi eval compare`` showed them as a finished result. What a suite derives from its runs is removed before a
    run is evaluated again, and written anew when every run is done."""
    from savi_plugin.eval import suite as suite_module

    tmp, _, _, _, _, _ = suite
    other = tmp_path / "suite"
    shutil.copytree(tmp / "suite", other)
    (other / "runs" / "aligned" / "done.json").unlink()
    assert all((other / name).exists() for name in ("table.json", "table.md", "card.json"))

    def stopped(plan, label, out, *args, **kwargs):
        if label == "aligned":
            raise KeyboardInterrupt  # Ctrl-C while the adapter's run is evaluated again
        return out / "runs" / label / "lmms_eval"

    monkeypatch.setattr(suite_module, "run_model", stopped)
    plan = suite_module.SuitePlan(model=str(tmp / "tiny"), adapters={"aligned": str(tmp / "aligned")}, tasks=TASKS,
                                  num_frames=4, limit=LIMIT)
    with pytest.raises(KeyboardInterrupt):
        suite_module._run_claimed(plan, other, {}, [], None)
    assert not any((other / name).exists() for name in suite_module.DERIVED_FILES)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["eval", "compare", str(other), str(tmp / "suite")]) == 1
    assert "no suite table here" in err.getvalue()

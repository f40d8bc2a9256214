"""`savi align` with the tiny recipe: 2 iterations of generate -> train -> merge -> lmms-eval, resumable."""

import json
import os
import subprocess
import sys

import pytest

OVERRIDES = ["generate.batch_size=6", "generate.options={answer_format: raw}",
             "train.max_steps=3", "train.per_device_train_batch_size=2", "train.save_strategy='no'",
             "eval.limit=1", "eval.batch_size=4", "align.iterations=2"]


def synthetic_qa(folder, n: int) -> str:
    """The ``data.qa=`` override of a synthetic video-QA manifest with ``n`` videos written into ``folder``."""
    from savi_plugin.video.synthetic import make_synthetic_dataset

    make_synthetic_dataset(folder, n, seed=0)
    return f"data.qa={folder / 'samples.jsonl'}"


def test_align_runs_two_iterations_and_resumes(tmp_path, capsys, caplog):
    """In-process through the CLI's ``main`` (each eval step still runs the real lmms-eval in its own process)."""
    from savi_plugin.cli import main

    run_dir = tmp_path / "run"
    argv = ["align", "tiny_demo", synthetic_qa(tmp_path / "qa", 12), *OVERRIDES, "--out", str(run_dir)]
    capsys.readouterr()
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert len(manifest["iterations"]) == 2
    for i, it in enumerate(manifest["iterations"]):
        folder = run_dir / f"iter_{i}"
        pairs = (folder / "pairs.jsonl").read_text().splitlines()
        assert len(pairs) == it["data_report"]["counts"]["pairs"] > 0
        assert (folder / "train" / "adapter_model.safetensors").is_file()
        assert (folder / "model" / "config.json").is_file()
        assert "savi_mvbench" in it["eval"]
        assert 0.0 <= it["eval"]["savi_mvbench"]["accuracy"] <= 100.0
        assert (folder / "eval" / "results.json").is_file()
        # compared with the starting model on the same items: Δ and its paired bootstrap interval
        delta = it["eval"]["vs_base"]["savi_mvbench"]
        assert delta["n"] == 20 and delta["low"] <= delta["delta"] <= delta["high"]
        assert abs(delta["delta"] - (delta["aligned"] - delta["base"])) < 1e-9
        assert f"savi_mvbench Δ {delta['delta']:+.2f} [{delta['low']:+.2f}, {delta['high']:+.2f}]" in out.out
    assert (run_dir / "eval_base" / "results.json").is_file()  # the base model is evaluated once
    # iteration 1 generated with iteration 0's merged model
    assert manifest["iterations"][1]["model"] == manifest["iterations"][0]["next_model"]
    # a re-run finds every step done and changes nothing
    before = (run_dir / "manifest.json").read_text()
    assert main(argv) == 0, capsys.readouterr().err[-3000:]
    assert (run_dir / "manifest.json").read_text() == before
    # pass 15 A #58: a kept iteration's pairs that lost a line re-ran with exit 0, printing the old pair count
    pairs = run_dir / "iter_0" / "pairs.jsonl"
    kept = pairs.read_bytes()
    pairs.write_bytes(b"".join(kept.splitlines(keepends=True)[:-1]))
    capsys.readouterr()
    assert main(argv) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and err[0].startswith(f"error: {pairs}: its content is not what its run report vouches "
                                               f"for"), err
    assert "iteration 0 of this run was made from the pairs as they were" in err[0]
    pairs.unlink()  # pass 16 A #20: the file removed
    assert main(argv) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and err[0].startswith(f"error: {pairs}: it is gone; iteration 0 of this run"), err
    pairs.write_bytes(kept)  # put back: the run is the same again
    assert main(argv) == 0 and (run_dir / "manifest.json").read_text() == before
    # pass 21 C #41: the pairs rewritten with their report (a savi generate run by hand into the run folder) were
    # kept as iteration 0's, exit 0, while iteration 0 trained on other pairs
    from savi_plugin.data.provenance import vouch

    report_path = run_dir / "iter_0" / "pairs.jsonl.report.json"
    report_kept = report_path.read_bytes()
    pairs.write_bytes(b"".join(kept.splitlines(keepends=True)[:-1]))
    report_path.write_text(json.dumps({**json.loads(report_kept), **vouch(pairs)}))
    assert main(argv) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and err[0].startswith(f"error: {pairs}: it is not the file iteration 0 made"), err
    pairs.write_bytes(kept)
    report_path.write_bytes(report_kept)
    assert main(argv) == 0 and (run_dir / "manifest.json").read_text() == before
    # pass 18 A #26: another model's weights copied over iteration 0's merged model (same size) were generated and
    # trained from by iteration 1 with exit 0; the merged model is compared by content
    weights = next((run_dir / "iter_0" / "model").glob("*.safetensors"))
    merged = weights.read_bytes()
    weights.write_bytes(merged[:-64] + bytes(64))
    assert main(argv) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and err[0].startswith(f"error: {run_dir / 'iter_0' / 'model'}: iteration 0's merged model "
                                               f"changed since this run wrote it (its files differ: "), err
    assert weights.name in err[0]
    weights.write_bytes(merged)
    assert main(argv) == 0 and (run_dir / "manifest.json").read_text() == before
    # pass 21 replay (C #41's neighbour): iteration 0's adapter retrained by hand (savi train --resume into its
    # folder) was kept, its old Δ reported; the adapter is compared by content like the merged model
    adapter = run_dir / "iter_0" / "train" / "adapter_model.safetensors"
    trained = adapter.read_bytes()
    adapter.write_bytes(trained[:-64] + bytes(64))
    assert main(argv) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and err[0].startswith(f"error: {run_dir / 'iter_0' / 'train'}: iteration 0's adapter "
                                               f"changed since this run wrote it (its files differ: "), err
    adapter.write_bytes(trained)
    assert main(argv) == 0 and (run_dir / "manifest.json").read_text() == before
    # pass 18 A #27: the merged model removed was looked up on the hub as "iter_0/model"; it is named, gone
    os.rename(run_dir / "iter_0" / "model", run_dir / "moved")
    assert main(argv) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and err[0].startswith(f"error: {run_dir / 'iter_0' / 'model'}: iteration 0's merged model "
                                               f"changed since this run wrote it (it is gone)"), err
    os.rename(run_dir / "moved", run_dir / "iter_0" / "model")
    # the manifest is sealed: a step's record edited by hand (iteration 0's adapter identity removed, which would
    # skip the adapter's check) is refused
    kept_manifest = (run_dir / "manifest.json").read_text()
    edited = json.loads(kept_manifest)
    del edited["iterations"][0]["adapter_identity"]
    (run_dir / "manifest.json").write_text(json.dumps(edited))
    assert main(argv) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert err == [f"error: {run_dir / 'manifest.json'}: changed after savi align wrote it (the steps it records are "
                   f"not the run's): put it back, or start over with a new --out"], err
    (run_dir / "manifest.json").write_text(kept_manifest)
    # pass 26 M #29, #30: an eval folder or eval_base removed from a finished run re-ran with exit 0, printing the
    # stored Δ with nothing behind it; it is evaluated again (with the iterations compared with eval_base), and
    # one whose files changed is refused naming it
    import shutil

    kept_eval_0 = (run_dir / "iter_0" / "eval" / "results.json").stat().st_mtime_ns
    shutil.rmtree(run_dir / "iter_1" / "eval")
    capsys.readouterr()
    caplog.clear()
    assert main(argv) == 0, capsys.readouterr().err[-3000:]
    assert f"{run_dir / 'iter_1' / 'eval'}: holds no result of iteration 1's evaluation" in caplog.text
    assert (run_dir / "iter_1" / "eval" / "results.json").is_file()
    assert (run_dir / "iter_0" / "eval" / "results.json").stat().st_mtime_ns == kept_eval_0  # only the one gone
    shutil.rmtree(run_dir / "eval_base")
    caplog.clear()
    assert main(argv) == 0, capsys.readouterr().err[-3000:]
    assert f"{run_dir / 'eval_base'}: holds no evaluation of the base model" in caplog.text
    capsys.readouterr()
    assert (run_dir / "eval_base" / "results.json").is_file()
    assert (run_dir / "iter_0" / "eval" / "results.json").stat().st_mtime_ns != kept_eval_0  # compared with it
    (run_dir / "iter_0" / "eval" / "notes.txt").write_text("mine")
    assert main(argv) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and err[0].startswith(f"error: {run_dir / 'iter_0' / 'eval'}: eval folder changed after "
                                               f"savi align eval wrote it (notes.txt was added)"), err
    (run_dir / "iter_0" / "eval" / "notes.txt").unlink()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    # the base model's evaluation is kept (data.kept): a samples file edited since would change every later
    # iteration's vs_base; the next eval step stops on it before evaluating anything
    import pytest

    from savi_plugin.data.paths import path_from_file
    from savi_plugin.errors import RunError
    from savi_plugin.pipeline.evaluate import evaluate_step
    from savi_plugin.recipe import load_recipe

    samples = next((run_dir / "eval_base" / "lmms_eval").rglob("*_samples_*.jsonl"))
    samples.write_text(samples.read_text() + "\n")
    recipe = load_recipe("tiny_demo", argv[2:-2])
    base = path_from_file(manifest["iterations"][0]["model"], run_dir / "manifest.json")
    with pytest.raises(RunError) as caught:
        evaluate_step(recipe, base, run_dir / "iter_1" / "eval_again", base=base)
    assert str(caught.value).startswith(f"{run_dir / 'eval_base' / 'kept.json'}: its lmms-eval output "
                                        f"{run_dir / 'eval_base' / 'lmms_eval'} changed after it was made "
                                        f"({samples.relative_to(run_dir / 'eval_base' / 'lmms_eval')} changed)")
    assert not (run_dir / "iter_1" / "eval_again").exists()


ALIGN_RUN = """
import json, os, sys
from savi_plugin.pipeline.align import run_align
from savi_plugin.recipe import load_recipe

out = sys.argv[1]
rank = os.environ["RANK"]

def evaluate(recipe, model, folder, **kwargs):
    with open(os.path.join(out, f"eval_rank{rank}.json"), "w") as fh:
        json.dump({"model": str(model)}, fh)
    return {"savi_mvbench": {"accuracy": 50.0}}

recipe = load_recipe("tiny_demo", sys.argv[2:])
run_align(recipe, out, evaluate=evaluate)
"""

LAUNCH_OVERRIDES = ["generate.batch_size=2", "generate.options={answer_format: raw}",
                    "train.max_steps=1", "train.per_device_train_batch_size=2", "train.save_strategy='no'",
                    "train.use_cpu=true", "align.iterations=1"]


def test_align_under_torchrun_shards_generation_trains_on_both_ranks_and_evaluates_once(tmp_path):
    import pytest

    from savi_plugin.errors import RunError
    from savi_plugin.pipeline.align import run_align
    from savi_plugin.recipe import load_recipe
    from tests.builders import free_port, read_jsonl, repo_pythonpath

    run_dir = tmp_path / "run"
    script = tmp_path / "align.py"
    script.write_text(ALIGN_RUN)
    overrides = [synthetic_qa(tmp_path / "qa", 8), *LAUNCH_OVERRIDES]
    env = {**os.environ, "PYTHONPATH": repo_pythonpath(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           f"--master_port={free_port()}", str(script), str(run_dir), *overrides],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    folder = run_dir / "iter_0"
    shards = sorted(p.name for p in folder.glob("pairs.shard-*-of-00002.jsonl"))
    assert shards == ["pairs.shard-00000-of-00002.jsonl", "pairs.shard-00001-of-00002.jsonl"]
    merged = read_jsonl(folder / "pairs.jsonl")
    per_shard = [read_jsonl(folder / name) for name in shards]
    assert all(per_shard) and len(merged) == sum(map(len, per_shard))  # both ranks generated, all merged
    manifest = json.loads((run_dir / "manifest.json").read_text())
    it = manifest["iterations"][0]
    assert it["data_report"]["counts"]["pairs"] == len(merged) and it["processes"] == 2
    report = json.loads((folder / "train" / "train_report.json").read_text())
    assert report["global_step"] == 1 and report["train_metrics"]["epoch"] > 0
    assert sorted(p.name for p in run_dir.glob("eval_rank*.json")) == ["eval_rank0.json"]  # evaluated once
    assert it["eval"] == {"savi_mvbench": {"accuracy": 50.0}}
    # the finished run folder resumes under another number of processes (here 1): nothing is redone
    before = (run_dir / "manifest.json").read_text()
    recipe = load_recipe("tiny_demo", overrides)
    run_align(recipe, run_dir, evaluate=lambda *a, **k: pytest.fail("evaluated again"))
    assert (run_dir / "manifest.json").read_text() == before
    # an unfinished iteration started with 2 processes is refused under 1, in one line, before any work
    from savi_plugin.data.kept import seal

    del it["adapter"], it["next_model"], it["eval"]
    (run_dir / "manifest.json").write_text(json.dumps(seal(manifest)))
    with pytest.raises(RunError, match=r"iteration 0 was started with 2 process\(es\) and is unfinished"):
        run_align(recipe, run_dir, evaluate=lambda *a, **k: pytest.fail("evaluated"))


def test_a_recipe_without_its_generation_input_is_refused_before_the_folder_is_claimed(tmp_path, capsys,
                                                                                      monkeypatch):
    """tiny_demo names no data.qa (savi demo builds its own): savi align says so in one line, writes nothing, and
    its dry run lists the input as not set."""
    from savi_plugin.cli import main
    from savi_plugin.recipe import resolve_recipe_path

    monkeypatch.chdir(tmp_path)
    assert main(["align", "tiny_demo", "--out", "run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {resolve_recipe_path('tiny_demo')}: data.qa: required by the rrpo generator"]
    assert main(["align", "tiny_demo", "--dry-run", "--out", "run"]) == 0
    assert "generate: rrpo over data.qa: not set (the real run needs it); batch 16" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def _early_failure(case, tmp_path):
    """``(overrides, the error line's words)`` of an align run that fails before its first result."""
    if case == "a folder as data.qa":
        (tmp_path / "d").mkdir()
        return ["data.qa=d"], "data.qa: d is a folder; the rrpo generator reads a file: a video-QA JSONL manifest"
    if case == "data.qa missing":
        return ["data.qa=none.jsonl"], "data.qa: none.jsonl does not exist"
    if case == "data.qa empty":
        (tmp_path / "empty.jsonl").write_text("")
        return ["data.qa=empty.jsonl"], "empty.jsonl:-:-: holds no record"
    if case == "no question":  # found by the generator, after the claim and the tiny model's build
        synthetic_qa(tmp_path / "videos", 2)
        lines = (tmp_path / "videos" / "samples.jsonl").read_text().splitlines()
        (tmp_path / "noq.jsonl").write_text("".join(json.dumps({"video": "videos/" + json.loads(line)["video"]})
                                                    + "\n" for line in lines))
        return ["data.qa=noq.jsonl"], "noq.jsonl:1:question: rrpo needs a question"
    assert case == "a folder that is no model"
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    return [synthetic_qa(tmp_path / "videos", 2), "model.path=./m", "align.eval_every_iteration=false"], \
        "./m: the model cannot be loaded"


@pytest.mark.parametrize("case", ["a folder as data.qa", "data.qa missing", "data.qa empty", "no question",
                                  "a folder that is no model"])
def test_an_align_run_that_fails_before_its_first_result_leaves_nothing(case, tmp_path, capsys, monkeypatch):
    """pass 26 M #36: ``data.qa=<folder>`` failed after the claim (``no video files in this folder``) and left the
    run folder with its manifest, tiny model and mark, so the corrected command was refused as "a different
    configuration". Every input of the wrong kind, missing, empty or unusable stops in one line and leaves no
    run folder (the output layer's undo counts the manifest and the tiny model as no result); the corrected
    command is then accepted."""
    from savi_plugin.cli import main
    from savi_plugin.pipeline import align

    monkeypatch.chdir(tmp_path)
    overrides, said = _early_failure(case, tmp_path)
    code = main(["align", "tiny_demo", *OVERRIDES, *overrides, "--out", "run"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code in (1, 2) and len(err) == 1 and said in err[0], (code, err)
    assert not (tmp_path / "run").exists()
    ran = []
    monkeypatch.setattr(align, "_run_locked", lambda *args: ran.append(args) or {"iterations": []})
    qa = synthetic_qa(tmp_path / "good", 2)
    assert main(["align", "tiny_demo", *OVERRIDES, qa, "--out", "run"]) == 0, capsys.readouterr().err
    assert len(ran) == 1  # the folder was claimed for the corrected configuration


def test_extending_a_run_after_a_video_its_manifest_names_changed_is_refused(tmp_path, monkeypatch):
    """The run's identity holds the manifest's videos, as generation's does: iteration 1 on replaced videos beside
    iteration 0 on the old ones was accepted with no word (red team 3). The claim decides before any step runs,
    so the steps are left out here (the iterations themselves are tested above)."""
    import shutil

    import pytest

    from savi_plugin.data.fingerprint import ConfigMismatchError
    from savi_plugin.pipeline import align
    from savi_plugin.recipe import load_recipe

    qa = synthetic_qa(tmp_path / "videos", 2)
    recipe = load_recipe("tiny_demo", OVERRIDES + [qa])
    monkeypatch.setattr(align, "_run_locked", lambda *args: {})  # the claim and its mark only
    align.run_align(recipe, tmp_path / "run")
    align.run_align(load_recipe("tiny_demo", OVERRIDES + [qa, "align.iterations=3"]), tmp_path / "run")  # extends
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    shutil.copyfile(videos[1], videos[0])  # the manifest unchanged, one of its videos not
    with pytest.raises(ConfigMismatchError, match=r"identity\.videos changed content"):
        align.run_align(load_recipe("tiny_demo", OVERRIDES + [qa, "align.iterations=3"]), tmp_path / "run")


def _finished_run(run_dir, recipe, monkeypatch):
    """A run folder claimed by ``savi align`` whose two iterations finished generation, training and merge (the
    steps themselves are tested above; here only which ones a re-run repeats)."""
    from savi_plugin.data.outputs import mark_path, write_json
    from savi_plugin.pipeline import align
    from savi_plugin.pipeline.align import MERGE_COMMAND
    from savi_plugin.recipe import recipe_for_file

    def fabricate(recipe, run_dir, iterations, evaluate, eval_watch):
        iterations = []
        for i in range(2):
            (run_dir / f"iter_{i}" / "model").mkdir(parents=True)
            (run_dir / f"iter_{i}" / "model" / "config.json").write_text("{}")
            (run_dir / f"iter_{i}" / "pairs.jsonl").write_text("")  # its generation's place (no run of its own)
            write_json(mark_path(run_dir / f"iter_{i}" / "model", True),  # marked by its step's command
                       {"written_by": "savi", "command": MERGE_COMMAND, "config": {}})
            iterations.append({"iteration": i, "model": "tiny", "processes": 1, "data": f"iter_{i}/pairs.jsonl",
                               "data_report": {"counts": {"pairs": 3}}, "adapter": f"iter_{i}/train",
                               "train": {"steps": 3}, "next_model": f"iter_{i}/model"})
        stored = recipe_for_file(recipe, run_dir / "manifest.json")  # as run_align stores it
        write_json(run_dir / "manifest.json", {"recipe": stored, "iterations": iterations}, indent=1)
        return {}

    with monkeypatch.context() as patch:
        patch.setattr(align, "_run_locked", fabricate)
        align.run_align(recipe, run_dir)


def test_an_eval_only_change_re_evaluates_only_the_eval_steps(tmp_path, monkeypatch):
    """The eval section is no part of the run's identity: a re-run with another eval.limit (or data root, tasks...)
    re-does the eval steps whose stored eval configuration differs, replacing their folders whole, and keeps every
    pair, adapter and merged model; align.eval_every_iteration=false keeps the stored results; a changed training key
    is still refused; a file someone put into an eval folder is never removed."""
    import pytest

    from savi_plugin.data.fingerprint import ConfigMismatchError
    from savi_plugin.data.outputs import ForeignOutputError
    from savi_plugin.pipeline import align
    from savi_plugin.recipe import load_recipe

    qa = synthetic_qa(tmp_path / "videos", 2)
    run_dir = tmp_path / "run"
    calls = []

    def evaluate(recipe, model, folder, base=None):
        calls.append((str(model), folder.parent.name))
        (folder / "answers.txt").write_text(f"limit {recipe.eval.limit}")
        return {"savi_mvbench": {"accuracy": float(recipe.eval.limit)}}

    def run(*overrides):
        calls.clear()
        align.run_align(load_recipe("tiny_demo", OVERRIDES + [qa, *overrides]), run_dir, evaluate=evaluate)
        return json.loads((run_dir / "manifest.json").read_text())

    _finished_run(run_dir, load_recipe("tiny_demo", OVERRIDES + [qa]), monkeypatch)
    first = run()
    assert [folder for _, folder in calls] == ["iter_0", "iter_1"]
    assert [it["eval_config"]["limit"] for it in first["iterations"]] == [1, 1]
    assert run() == first and calls == []  # same eval configuration: nothing again
    steps = ("data", "data_report", "adapter", "train", "next_model", "model")
    changed = run("eval.limit=2")
    assert [folder for _, folder in calls] == ["iter_0", "iter_1"]
    assert [it["eval"]["savi_mvbench"]["accuracy"] for it in changed["iterations"]] == [2.0, 2.0]
    assert [it["eval_config"]["limit"] for it in changed["iterations"]] == [2, 2]
    assert [{k: it[k] for k in steps} for it in changed["iterations"]] == [
        {k: it[k] for k in steps} for it in first["iterations"]]
    assert (run_dir / "iter_0" / "eval" / "answers.txt").read_text() == "limit 2"  # replaced, not mixed
    assert not list((run_dir / "iter_0").glob(".eval.*"))  # no temporary left
    off = run("align.eval_every_iteration=false")  # the results stay, each labelled with its eval configuration
    assert off["iterations"] == changed["iterations"] and calls == []
    with pytest.raises(ConfigMismatchError, match=r"train\.learning_rate"):
        run("eval.limit=3", "train.learning_rate=0.5")
    # pass 19 N9: asked for 1 iteration, a 2-iteration folder reported and handed back both with exit 0
    before = (run_dir / "manifest.json").read_text()
    with pytest.raises(ConfigMismatchError, match=r"holds 2 iteration\(s\), more than the 1 asked for .* a run is "
                                                  r"extended, never shortened"):
        run("align.iterations=1")
    assert (run_dir / "manifest.json").read_text() == before
    assert calls == []
    (run_dir / "iter_1" / "eval" / "notes.txt").write_text("mine")
    with pytest.raises(ForeignOutputError, match="changed after savi align eval wrote it"):
        run("eval.limit=3")
    assert [folder for _, folder in calls] == ["iter_0"]  # iteration 0 was evaluated again before that
    assert (run_dir / "iter_1" / "eval" / "notes.txt").read_text() == "mine"


def _data_file_rewritten(root):
    """``savi eval fixture ROOT --seed 7`` over the eval data root: an annotation file replaced by one of other
    content."""
    path = next(p for p in sorted(root.rglob("*")) if p.is_file() and p.suffix != ".mp4")
    other = path.with_name(path.name + ".new")
    other.write_bytes(path.read_bytes() + b" ")
    os.replace(other, path)
    return path


# the eval step's lmms-eval runs of a two-iteration run, in order: iteration 0's, the base model's (eval_base,
# kept), iteration 1's
EVAL_RUNS = ("iter_0", "eval_base", "iter_1")


@pytest.mark.parametrize("when", [f"during {run}" for run in EVAL_RUNS] + ["between iter_0 and iter_1"])
def test_the_eval_data_root_changed_during_the_run_stops_the_eval_step_naming_the_file(when, tmp_path, monkeypatch):
    """Red team pass 23 C #35, in ``savi align``: the eval data root changed while a run went on scored
    iterations (and the base model they are paired with, ``eval_base``, kept from an earlier one) on other data than
    the run's eval configuration records. Its files are watched as that configuration's identity read them, and
    every lmms-eval run of the eval step checks them before it starts and after it ends (``savi_video_command``):
    one line naming the file; the eval result of a run on changed data is not kept, and no later one starts (each
    way a file changes is generated in ``tests/eval/test_suite.py``). lmms-eval is stood in for (its results, and
    the comparison with the base, are tested with the real one)."""
    from savi_plugin.errors import InputChangedError
    from savi_plugin.eval import results, suite
    from savi_plugin.eval.fixtures import build_fixture
    from savi_plugin.pipeline import align, evaluate
    from savi_plugin.recipe import load_recipe

    root = tmp_path / "evaldata"
    build_fixture(root, "mvbench", 1)
    qa = synthetic_qa(tmp_path / "videos", 2)
    run_dir = tmp_path / "run"
    recipe = load_recipe("tiny_demo", OVERRIDES + [qa, f"eval.data_root={root}"])
    _finished_run(run_dir, recipe, monkeypatch)
    started, changed = [], []

    def lmms_eval(command, *, output_path, **_):
        started.append("eval_base" if "eval_base" in str(output_path) else output_path.parents[1].name)
        if when == f"during {started[-1]}":
            changed.append(_data_file_rewritten(root))

    monkeypatch.setattr(evaluate, "run_judged", lmms_eval)
    monkeypatch.setattr(evaluate, "read_lmms_eval_results", lambda _path: {})
    monkeypatch.setattr(results, "read_run", lambda _path: None)
    monkeypatch.setattr(suite, "compare_runs", lambda *_args: {})

    def evaluate_then_change(recipe, model, folder, base=None):
        out = evaluate.evaluate_step(recipe, model, folder, base=base)
        if when == "between iter_0 and iter_1" and folder.parent.name == "iter_0":
            changed.append(_data_file_rewritten(root))
        return out

    with pytest.raises(InputChangedError) as err:
        align.run_align(recipe, run_dir, evaluate=evaluate_then_change)
    assert str(err.value).startswith(f"{changed[0]}: a file of the eval data root (eval.data_root) "), err.value
    last = EVAL_RUNS.index(when.split()[-1])  # the run during which (or before which) the data changed
    assert started == list(EVAL_RUNS[:last + 1 - when.startswith("between")])  # none started after the change
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert ["eval" in it for it in manifest["iterations"]] == [last > 1 or when.startswith("between"), False]
    assert not (run_dir / "eval_base" / "kept.json").exists() or last > 1 or when.startswith("between")


def test_an_unreachable_hub_stops_align_before_anything_is_written(tmp_path, capsys, monkeypatch):
    """A recipe whose eval data come from the hub, on a machine that cannot reach it (here: an endpoint where
    nothing listens) and has no cached copy: one line before the run folder exists, naming the task and the keys
    that help; a dry run notes it; with the eval off the pre-flight is not asked."""
    from savi_plugin.cli import main
    from tests.eval.test_hub_check import closed_endpoint

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", closed_endpoint())
    for var in ("SAVI_DATA_ROOT", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy",
                "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    argv = ["align", "tiny_demo", "data.qa=qa.jsonl", "model.path=some-org/some-video-model", "--out", "run"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: savi_mvbench: OpenGVLab/MVBench is not in the Hugging Face "
                                               "cache and the hub cannot be reached (127.0.0.1:"), err
    assert "set eval.data_root=<folder>" in err[0] and "or align.eval_every_iteration=false" in err[0]
    assert not (tmp_path / "run").exists()
    assert main(argv + ["--dry-run"]) == 0
    assert "note: the real run stops here before any step: savi_mvbench:" in capsys.readouterr().out
    assert main(argv + ["align.eval_every_iteration=false", "--dry-run"]) == 0
    assert "stops here" not in capsys.readouterr().out
    assert not (tmp_path / "run").exists()


def test_an_iteration_whose_generation_made_no_pair_stops_before_training_naming_the_reasons(tmp_path, monkeypatch,
                                                                                               capsys):
    """Every candidate skipped (a model whose answers pick no option): the run stops with one line naming the
    generation's reasons and report, not training's "no usable preference pair (0 skipped)"."""
    from savi_plugin.cli import main
    from savi_plugin.pipeline import steps

    def no_pairs(recipe, *, output, **kwargs):
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text("")
        return {"complete": True, "report": f"{output}.report.json",
                "counts": {"items_done": 8, "pairs": 0, "by_reason": {"unmapped_answer": 12}}}

    def train(*args, **kwargs):
        raise AssertionError("training ran on no pairs")

    monkeypatch.setattr(steps, "generate_step", no_pairs)
    monkeypatch.setattr(steps, "train_step", train)
    monkeypatch.chdir(tmp_path)
    qa = synthetic_qa(tmp_path / "videos", 2)
    assert main(["align", "tiny_demo", "--out", "run", *OVERRIDES, qa]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == ("error: run/iter_0/pairs.jsonl: generation made no preference pair from 8 item(s) (candidates: "
                   "12 unmapped_answer; see run/iter_0/pairs.jsonl.report.json); training needs pairs"), err


@pytest.mark.parametrize("change, refused", [("none", False), ("moved", False), ("spelt otherwise", False),
                                             ("reformatted", False), ("content", True)])
def test_align_holds_its_prompt_file_by_parsed_content_as_generate_does(change, refused, tmp_path, monkeypatch,
                                                                        capsys):
    """``generate.options.prompts`` is part of the run's identity by the prompts it holds, the one rule of
    ``savi generate`` (:func:`~savi_plugin.generators.prompts.override_identity`): the same file moved, spelt
    otherwise or reformatted resumes the run folder; its templates changed are refused naming the key and the
    template. Before, align compared it by the path it was stored as: a moved file was refused, an edited one at
    the same path continued with other prompts. The claim decides before any step runs, so the steps are left out
    (the iterations themselves are tested above)."""
    from savi_plugin.cli import main
    from savi_plugin.pipeline import align

    monkeypatch.setattr(align, "_run_locked", lambda *args: {"iterations": []})  # the claim and its mark only
    monkeypatch.chdir(tmp_path)
    qa = synthetic_qa(tmp_path / "videos", 2)
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "pr.yaml").write_text('open_question: "{question}"\n')
    argv = ["align", "tiny_demo", "--out", "run", *OVERRIDES, qa]
    assert main(argv + ["generate.options.prompts=p/pr.yaml"]) == 0
    capsys.readouterr()
    given = "p/pr.yaml"
    if change == "moved":
        (tmp_path / "q").mkdir()
        (tmp_path / "p" / "pr.yaml").rename(tmp_path / "q" / "pr.yaml")
        given = "q/pr.yaml"
    elif change == "spelt otherwise":
        given = str(tmp_path / "p" / ".." / "p" / "pr.yaml")
    elif change == "reformatted":
        (tmp_path / "p" / "pr.yaml").write_text('# a comment\nopen_question:   "{question}"\n')
    elif change == "content":
        (tmp_path / "p" / "pr.yaml").write_text('open_question: "Q: {question}"\n')
    code = main(argv + [f"generate.options.prompts={given}"])
    err = capsys.readouterr().err
    if not refused:
        assert code == 0, err
        return
    assert code == 1, err
    assert "was made with a different configuration (recipe.generate.options.prompts" in err, err
    assert 'open_question: "{question}" -> "Q: {question}"' in err, err

"""`savi align` with the tiny recipe: 2 iterations of generate -> train -> merge -> lmms-eval, resumable."""

import json
import os
import subprocess
import sys

OVERRIDES = ["generate.batch_size=6", "generate.options={answer_format: raw}",
             "train.max_steps=3", "train.per_device_train_batch_size=2", "train.save_strategy='no'",
             "eval.limit=1", "eval.batch_size=4", "align.iterations=2"]


def synthetic_qa(folder, n: int) -> str:
    """The ``data.qa=`` override of a synthetic video-QA manifest with ``n`` videos written into ``folder``."""
    from savi_plugin.video.synthetic import make_synthetic_dataset

    make_synthetic_dataset(folder, n, seed=0)
    return f"data.qa={folder / 'samples.jsonl'}"


def test_align_runs_two_iterations_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "savi_plugin", "align", "tiny_demo", synthetic_qa(tmp_path / "qa", 12), *OVERRIDES,
           "--out", str(run_dir)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
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
        assert f"savi_mvbench Δ {delta['delta']:+.2f} [{delta['low']:+.2f}, {delta['high']:+.2f}]" in out.stdout
    assert (run_dir / "eval_base" / "results.json").is_file()  # the base model is evaluated once
    # iteration 1 generated with iteration 0's merged model
    assert manifest["iterations"][1]["model"] == manifest["iterations"][0]["next_model"]
    # a re-run finds every step done and changes nothing
    before = (run_dir / "manifest.json").read_text()
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (run_dir / "manifest.json").read_text() == before


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
    del it["adapter"], it["next_model"], it["eval"]
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
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

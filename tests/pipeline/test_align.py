"""`savi align` with the tiny recipe: 2 iterations of generate -> train -> merge -> lmms-eval, resumable."""

import json
import subprocess
import sys

OVERRIDES = ["data.synthetic_videos=12", "generate.batch_size=6", "generate.options={answer_format: raw}",
             "train.max_steps=3", "train.per_device_train_batch_size=2", "train.save_strategy='no'",
             "eval.limit=1", "eval.batch_size=4", "align.iterations=2"]


def test_align_runs_two_iterations_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "savi_plugin", "align", "tiny_demo", *OVERRIDES, "--out", str(run_dir)]
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

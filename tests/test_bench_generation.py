"""``savi bench generation`` and ``savi bench gpu`` at tiny sizes, in-process through the CLI, on CPU."""

from __future__ import annotations

import json


def test_generation_benchmark_reuses_the_prefix_with_equal_outputs(tmp_path, capsys):
    from savi_plugin.cli import main

    out = tmp_path / "gen.json"
    code = main(["bench", "generation", "--videos", "1", "--frames", "4", "--image-size", "32", "--questions", "2",
                 "--max-new-tokens", "3", "--hidden", "64", "--layers", "2", "--intermediate", "0", "--vocab", "0",
                 "--vision-hidden", "0", "--vision-layers", "0", "--repeats", "1", "--work-dir", str(tmp_path),
                 "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["outputs_equal"]
    reuse, plain = report["best"]["reuse"], report["best"]["no_reuse"]
    assert reuse["prompts"] == plain["prompts"] == 2 + 3 * 2
    assert reuse["prefix_prefills_per_video"] == 1 and reuse["vision_encodings_per_video"] == 1
    assert plain["prefix_prefills_per_video"] == 8 and plain["vision_encodings_per_video"] == 8
    assert abs(sum(reuse["share"].values()) - 1) < 1e-6
    assert report["cost_model_7b"]["ratio"] > 1
    assert "pairs/s with reuse / without" in capsys.readouterr().out


def test_gpu_check_runs_at_a_small_shape_on_cpu(tmp_path, capsys):
    from savi_plugin.cli import main

    out = tmp_path / "gpu.json"
    code = main(["bench", "gpu", "--scale", "small", "--device", "cpu", "--dtype", "float32", "--warmup", "0",
                 "--steps", "1", "--work-dir", str(tmp_path), "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    training, generation = report["training"], report["generation"]
    assert training["prompt_tokens"] > 2 * 210  # 2 frames x 210 tokens (LLaVA-Video's layout) + the question
    assert training["first_step_loss_diff"] < 1e-4  # same weights, same adapter, same loss
    assert training["ours"]["median_step_s"] > 0 and training["official"]["median_step_s"] > 0
    assert generation["outputs_equal"] and generation["reuse"]["prefix_prefills_per_video"] == 1
    assert generation["prompt_tokens"] > 2 * 196 + 1  # LLaVA-OneVision's layout: 196 per frame + one newline
    assert "throughput ours/official" in capsys.readouterr().out

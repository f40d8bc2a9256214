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


def test_gpu_check_runs_at_a_small_shape_on_cpu(tmp_path, capsys, monkeypatch):
    """Run from the user's folder with a relative --work-dir, as README says (its pair file named the video
    relative to the working folder and then failed to find it: red team 4)."""
    from savi_plugin.cli import main

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "gpu.json"
    code = main(["bench", "gpu", "--scale", "small", "--device", "cpu", "--dtype", "float32", "--warmup", "0",
                 "--steps", "1", "--work-dir", "gw", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    training, generation = report["training"], report["generation"]
    assert training["prompt_tokens"] > 2 * 210  # 2 frames x 210 tokens (LLaVA-Video's layout) + the question
    assert training["first_step_loss_diff"] < 1e-4  # same weights, same adapter, same loss
    assert training["ours"]["median_step_s"] > 0 and training["official"]["median_step_s"] > 0
    assert generation["outputs_equal"] and generation["reuse"]["prefix_prefills_per_video"] == 1
    assert generation["outputs_agree"] and generation["min_token_agreement"] == 1.0  # float32: exact
    assert generation["agreement"]["equal_tokens"] == 1.0 and generation["agreement"]["first_difference"] is None
    assert training["ours"]["live_optimizer_states"] == 0  # our trainer freed before the official side ran
    assert report["requested_device"] == "cpu"
    assert generation["prompt_tokens"] > 2 * 196 + 1  # LLaVA-OneVision's layout: 196 per frame + one newline
    assert "throughput ours/official" in capsys.readouterr().out


def test_gpu_check_judges_greedy_outputs_with_a_stated_tolerance_and_pins_the_device():
    from savi_plugin.bench.gpu import TOKEN_AGREEMENT, greedy_agreement, pin_device
    from savi_plugin.models.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    same = greedy_agreement(["a red ball", "a blue cube"], ["a red ball", "a blue cube"], tokenizer)
    assert same["equal_outputs"] == same["equal_tokens"] == 1.0 and same["first_difference"] is None
    flipped = greedy_agreement(["a red ball rolls left", "a blue cube"], ["a red cube rolls left", "a blue cube"],
                               tokenizer)  # one near-tie flipped in one output
    assert flipped["equal_outputs"] == 0.5 and flipped["first_difference"] >= 2  # after "a red"
    assert 0.0 < flipped["equal_tokens"] < 1.0  # the second output and the first one's prefix agree
    assert TOKEN_AGREEMENT == {"float32": 1.0, "bfloat16": 0.9, "float16": 0.9}
    env = {}
    assert pin_device("cuda:1", env) == "cuda:0" and env["CUDA_VISIBLE_DEVICES"] == "1"
    env = {"CUDA_VISIBLE_DEVICES": "4,5"}
    assert pin_device("cuda:1", env) == "cuda:0" and env["CUDA_VISIBLE_DEVICES"] == "5"
    assert pin_device("cpu", env) == "cpu"


def test_gpu_check_full_shape_is_llava_video_7b(tmp_path):
    """The full-scale model, built on the meta device (no memory): Qwen2-7B + SigLIP-so400m sizes."""
    import torch

    from savi_plugin.bench.gpu import FULL, build_checkpoint, scaled_config
    from savi_plugin.models.llava_next.modeling import LlavaVideoForConditionalGeneration

    config = scaled_config(build_checkpoint(tmp_path), FULL, "grid")
    with torch.device("meta"):
        model = LlavaVideoForConditionalGeneration(config)
    counts = {"language": 0, "vision": 0}
    for name, param in model.named_parameters():
        if "vision_tower" in name:
            counts["vision"] += param.numel()
        elif "language_model" in name or "lm_head" in name:
            counts["language"] += param.numel()
    assert 7.5e9 < counts["language"] < 7.7e9 and 0.39e9 < counts["vision"] < 0.41e9
    attention = model.model.language_model.layers[0].self_attn
    assert (attention.head_dim, attention.k_proj.out_features) == (128, 512)  # 28 query heads, 4 KV heads


def test_generation_throughput_script_batches_and_makes_as_many_pairs_as_one_at_a_time(capsys):
    """``python benchmarks/generation_throughput.py`` at a tiny size (README's speed table): both sides run the
    same questions on the same model, so they make the same pairs; the ratio printed is theirs."""
    import importlib.util

    from tests.builders import REPO_ROOT

    spec = importlib.util.spec_from_file_location("generation_throughput",
                                                  REPO_ROOT / "benchmarks" / "generation_throughput.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    result = script.main(["--videos", "3", "--batch-size", "2", "--num-frames", "4", "--max-new-tokens", "3",
                          "--repeats", "1"])
    batched, single = result["batched"], result["one_at_a_time"]
    assert batched["pairs"] == single["pairs"] > 0  # the same greedy answers batched or not: the same pairs
    assert result["speedup"] == round(batched["pairs_per_s"] / single["pairs_per_s"], 3) > 0
    assert "speed-up batched / one-at-a-time" in capsys.readouterr().out


def test_a_cached_bench_model_whose_weights_were_cut_is_rebuilt(tmp_path):
    """A work folder's model left truncated (a killed write, a full disk) was trusted by its marker (red team 3)."""
    from savi_plugin.bench.fixtures import ModelShape, build_bench_model
    from savi_plugin.models import load_backend

    shape = ModelShape(hidden_size=32, num_layers=1, image_size=32)
    folder = build_bench_model(tmp_path, shape)
    weights = folder / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 2])
    assert build_bench_model(tmp_path, shape) == folder and weights.read_bytes() == whole  # same seed: same bytes
    load_backend(folder, num_frames=2)


import pytest  # noqa: E402


@pytest.mark.parametrize("bench", ["generation", "train-step", "trl", "gpu"])
@pytest.mark.parametrize("spell", ["wd", "./wd/", "link"])
def test_json_at_the_work_folder_is_one_line_naming_both_before_any_work(bench, spell, tmp_path, monkeypatch, capsys):
    """Pass 17 A #35: ``--json wd --work-dir wd`` said the work folder was in use by another savi process (this one)."""
    from savi_plugin.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "link").symlink_to("wd")
    code = main(["bench", bench, "--work-dir", "wd", "--json", spell])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"{spell}: --json is the same place as --work-dir (wd)" in err[0], err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link"]  # nothing claimed, built or written

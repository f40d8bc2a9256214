"""``savi bench train-step`` at a tiny shape: both sides run for real, compute the same RRPO loss, ratios are numbers.

No timing assertion: the machine is shared. What is asserted is that the comparison is valid (equal,
non-trivial losses; the layouts the benchmark claims: one vision call per pair against four) and that the
printed ratios are finite.
"""

from __future__ import annotations

import json
import math
import re

import pytest

TINY = ["--frames", "2", "--image-size", "32", "--hidden", "64", "--layers", "2", "--intermediate", "0",
        "--vision-hidden", "0", "--vision-layers", "0", "--vocab", "1024",
        "--response-tokens", "16", "--lora-init-std", "0.1", "--warmup", "0", "--steps", "2", "--threads", "1",
        "--no-gradient-checkpointing"]


def _ratio(pattern: str, text: str) -> float:
    match = re.search(pattern + r" ([0-9.]+|inf|nan)x", text)
    assert match, f"{pattern!r} not in output:\n{text}"
    return float(match.group(1))


@pytest.fixture(scope="module")
def train_step_run(tmp_path_factory):
    from savi_plugin.cli import main

    work = tmp_path_factory.mktemp("bench_train_step")
    code = main(["bench", "train-step", *TINY, "--work-dir", str(work), "--json", str(work / "report.json")])
    return code, json.loads((work / "report.json").read_text()), work


def test_both_sides_compute_the_same_nontrivial_loss(train_step_run):
    code, report, _ = train_step_run
    assert code == 0
    ours, base = report["results"]["ours"], report["results"]["baseline"]
    assert report["losses_equal"]
    assert abs(ours["losses"][0] - base["losses"][0]) <= 1e-4
    # the adapter's B is non-zero: policy != reference at step one, so the loss is not the trivial log 2
    assert abs(ours["losses"][0] - math.log(2)) > 1e-3
    assert report["max_loss_diff"] <= 1e-4  # the second step too: same gradients, same optimizer


def test_layouts_and_ratios(train_step_run):
    _, report, _ = train_step_run
    ours, base = report["results"]["ours"], report["results"]["baseline"]
    assert ours["packing"] is True
    assert ours["vision_per_pair"] == 1  # vision tower once per pair (frozen, gradient checkpointing off)
    assert base["vision_per_pair"] == 4  # policy and reference, chosen and rejected
    for key in ("throughput_ratio", "step_memory_ratio", "process_memory_ratio"):
        assert math.isfinite(report[key]) and report[key] > 0, key
    assert report["attention"]["max_abs_diff_split"] < 1e-5  # the split layout is the block mask, exactly
    assert all(report["attention"][k] > 0 for k in ("block_mask", "two_causal_rows", "split"))
    for side in (ours, base):
        assert side["median_step_s"] > 0 and side["step_peak_mib"] >= 0 and side["process_peak_mib"] > 0
        assert side["mmap_threshold"] == "131072"  # the memory run is a separate process with the pinned allocator
        assert abs(side["memory_run_losses"][0] - side["losses"][0]) <= 1e-6  # and trains the same step


def test_printed_report(train_step_run, capsys):
    from savi_plugin.bench import train_step

    _, report, work = train_step_run
    train_step.print_report(train_step.build_parser().parse_args([*TINY, "--work-dir", str(work)]), report)
    out = capsys.readouterr().out
    for pattern in ("throughput ours/baseline:", "step peak memory baseline/ours:", "process peak baseline/ours:"):
        assert math.isfinite(_ratio(pattern, out))
    assert "first-step loss difference" in out and "one attention layer (forward + backward)" in out


def test_video_token_count_matches_the_processor(train_step_run):
    import numpy as np

    from savi_plugin.bench.fixtures import video_tokens
    from savi_plugin.models.backends.llava_onevision import LlavaOnevisionVideoLM

    _, report, work = train_step_run
    paths = json.loads((work / "paths.json").read_text())
    lm = LlavaOnevisionVideoLM.from_pretrained(paths["model"])
    ids = lm.encode([np.zeros((3, 40, 40, 3), dtype=np.uint8)], ["q"])["input_ids"]
    assert int((ids == lm.model.config.video_token_index).sum()) == video_tokens(3, 32)
    assert report["video_tokens"] == video_tokens(2, 32) == 2 * 2 * 2 + 1
    assert lm.model.get_output_embeddings().weight.shape[0] == 1024  # --vocab pads the LM head


def test_forward_args_round_trip():
    from savi_plugin.bench import train_step
    from savi_plugin.bench.measure import forward_args

    parser = train_step.build_parser()
    args = parser.parse_args([*TINY, "--work-dir", "/tmp/x"])
    assert parser.parse_args(forward_args(parser, args)) == args
    default = parser.parse_args([])
    assert parser.parse_args(forward_args(parser, default)) == default


@pytest.mark.parametrize("bench", ["train-step", "trl"])
@pytest.mark.parametrize("rank, refused", [(64, False), (65, True), (100_000, True)])
def test_a_lora_rank_above_the_hidden_width_is_refused_before_anything_is_built(bench, rank, refused, tmp_path,
                                                                              capsys):
    """Pass 21 D #1: ``--lora-rank 100000`` built the model and let peft allocate until the machine killed it."""
    from savi_plugin.bench import train_step, trl_dpo
    from savi_plugin.bench.options import check_pair_step
    from savi_plugin.cli import main

    module = train_step if bench == "train-step" else trl_dpo
    shape = ["--hidden", "64", "--layers", "2", "--lora-rank", str(rank), "--work-dir", str(tmp_path / "w")]
    parser = module.build_parser()
    args = parser.parse_args(shape)
    if not refused:
        check_pair_step(parser, args)
        return
    with pytest.raises(SystemExit) as exit_:
        main(["bench", bench, *shape])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and err[-1].endswith(f"error: argument --lora-rank: must be <= --hidden (64), the "
                                                      f"largest rank an adapted layer can use; a higher rank adds "
                                                      f"memory, not capacity, got {rank}"), err
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("bench, words, flag", [
    ("train-step", ["--image-size", "100000"], "--image-size: a 100000x100000 frame is above $SAVI_MAX_FRAME_PIXELS"),
    ("generation", ["--image-size", "100000"], "--image-size: a 100000x100000 frame is above $SAVI_MAX_FRAME_PIXELS"),
    ("train-step", ["--frames", "100000"], "--frames: 100000 frames of 160x160 take"),
    ("generation", ["--videos", "1000000"], "--videos: 1000000 clips take"),
    ("train-step", ["--response-tokens", "10000000"], "--response-tokens: 10000000 response tokens after"),
    ("generation", ["--max-new-tokens", "10000000"], "--max-new-tokens: 10000000 response tokens after"),
    ("train-step", ["--layers", "100000"], "--layers: the model would hold"),
    ("trl", ["--layers", "100000"], "--layers: the model would hold"),
    ("generation", ["--layers", "10000000"], "--layers: the model would hold"),
    ("generation", ["--vision-hidden", "99968", "--vision-layers", "1000"],
     "--vision-layers: the model would hold")])
def test_a_benchmark_asking_more_than_the_machine_s_caps_is_refused_before_it_builds(bench, words, flag, tmp_path,
                                                                                     capsys):
    """Pass 21 D #22, #23: frames of 10^10 pixels, 10^7 response tokens, 10^5 layers or 10^6 videos were built
    until the allocator refused or a timeout stopped them; each is one line at its flag, nothing built."""
    from savi_plugin.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["bench", bench, *words, "--work-dir", str(tmp_path / "w")])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and f"error: argument {flag}" in err[0], err
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("bench", ["train-step", "trl", "generation"])
def test_a_benchmark_s_defaults_fit_its_caps(bench):
    import argparse

    from savi_plugin.bench import generation, train_step, trl_dpo
    from savi_plugin.bench.options import check_bench_resources

    module = {"train-step": train_step, "trl": trl_dpo, "generation": generation}[bench]
    parser = module.build_parser()
    check_bench_resources(parser, parser.parse_args([]))
    assert isinstance(parser, argparse.ArgumentParser)

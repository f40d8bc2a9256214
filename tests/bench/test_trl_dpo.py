"""``savi bench trl`` at a tiny shape: ours and TRL's DPOTrainer on the same video pair compute the same losses.

Skipped when TRL (an optional benchmark dependency, ``pip install 'savi-plugin[bench]'``) is not installed.
No timing assertion: the machine is shared; the printed speed-up must be a finite number.
"""

from __future__ import annotations

import json
import math
import re

import pytest

pytest.importorskip("trl")

TINY = ["--frames", "2", "--image-size", "32", "--hidden", "64", "--layers", "2", "--intermediate", "0",
        "--vision-hidden", "0", "--vision-layers", "0", "--vocab", "0",
        "--response-tokens", "16", "--warmup", "0", "--steps", "3", "--threads", "1", "--no-gradient-checkpointing",
        "--no-image-row"]


@pytest.fixture(scope="module")
def trl_run(tmp_path_factory):
    from savi_plugin.cli import main

    work = tmp_path_factory.mktemp("bench_trl")
    code = main(["bench", "trl", *TINY, "--work-dir", str(work), "--json", str(work / "report.json")])
    return code, json.loads((work / "report.json").read_text()), work


def test_equal_losses_at_every_step(trl_run):
    code, report, _ = trl_run
    assert code == 0 and report["losses_equal"]
    ours, trl = report["results"]["ours"]["losses"], report["results"]["trl_video"]["losses"]
    assert len(ours) == len(trl) == 3
    # a fresh adapter (B = 0): step one is log 2 on both sides; later steps depend on gradients and AdamW
    assert abs(ours[0] - math.log(2)) < 1e-6 and abs(trl[0] - math.log(2)) < 1e-6
    assert abs(ours[2] - math.log(2)) > 1e-3
    assert max(abs(a - b) for a, b in zip(ours, trl)) <= 1e-4
    for check in report["first_step_checks"].values():  # policy log-probs and gradient norm of step one
        assert check["rel_diff"] <= 1e-3 and math.isfinite(check["ours"])


def test_layouts_and_printed_speedup(trl_run, capsys):
    from savi_plugin.bench import trl_dpo

    _, report, work = trl_run
    assert report["results"]["ours"]["packing"] is True
    assert report["results"]["ours"]["vision_per_pair"] == 1
    assert report["results"]["trl_video"]["vision_per_pair"] == 4
    trl_dpo.print_report(trl_dpo.build_parser().parse_args([*TINY, "--work-dir", str(work)]), report)
    out = capsys.readouterr().out
    match = re.search(r"ours vs TRL on the same video pair: ([0-9.]+|inf|nan)x", out)
    assert match and math.isfinite(float(match.group(1))) and float(match.group(1)) > 0


def test_trl_video_collator_matches_trl_layout(trl_run):
    """Our video collator gives TRL rows [prompt|chosen], [prompt|rejected] with the responses' tokens marked."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from savi_plugin.bench.trl_dpo import TRLVideoCollator
    from savi_plugin.models.backends.llava_onevision import LlavaOnevisionVideoLM

    _, _, work = trl_run
    paths = json.loads((work / "trl_paths.json").read_text())
    lm = LlavaOnevisionVideoLM(AutoModelForImageTextToText.from_pretrained(paths["model"]),
                               AutoProcessor.from_pretrained(paths["model"]), num_frames=2)
    example = {"video": paths["video"], "question": paths["question"], "chosen": "the red circle",
               "rejected": "a blue square moves up"}
    batch = TRLVideoCollator(lm, 2)([example])
    assert batch["input_ids"].shape[0] == 2 and batch["pixel_values_videos"].shape[0] == 2
    for row, key in enumerate(("chosen", "rejected")):
        ids = batch["input_ids"][row][batch["completion_mask"][row].bool()].tolist()
        assert lm.tokenizer.decode(ids) == example[key] + lm.end_of_turn

"""Acceptance: a tiny LLaVA-OneVision + LoRA learns synthetic-video preference pairs with RRPO and with DPO (CPU)."""

from __future__ import annotations

import json

import pytest

from tests.builders import write_answer_pairs

STEPS = 30  # the acceptance bar is "within 50 steps"


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    """8 training pairs and 4 held-out pairs, on 12 different synthetic videos."""
    from savi_plugin.video.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("pairs")
    samples = make_synthetic_dataset(root / "videos", 12, seed=3)
    return write_answer_pairs(root / "train.jsonl", samples[:8]), write_answer_pairs(root / "heldout.jsonl", samples[8:])


@pytest.mark.parametrize("loss_type", ["rrpo", "dpo"])
def test_training_learns_the_preferences(loss_type, tiny_llava_onevision, pair_files, tmp_path):
    from savi_plugin.models import load_backend
    from savi_plugin.training.run import run_training

    train, heldout = pair_files
    out = tmp_path / "run"
    summary = run_training(
        model=tiny_llava_onevision, data=train, output_dir=out, eval_data=heldout,
        lora={"r": 8, "alpha": 16, "dropout": 0.0},
        training=dict(loss_type=loss_type, max_steps=STEPS, num_frames=4, per_device_train_batch_size=4,
                      per_device_eval_batch_size=4, gradient_accumulation_steps=2, learning_rate=5e-3,
                      lr_scheduler_type="constant", warmup_steps=0, logging_steps=1, save_strategy="no",
                      use_cpu=True, seed=0, disable_tqdm=True))
    report = json.loads((out / "train_report.json").read_text())
    steps = [h for h in report["log_history"] if "loss" in h and "rewards/accuracies" in h]
    assert len(steps) == STEPS and report["packing"] is True and summary["pairs"] == 8
    first, last = steps[0], steps[-1]
    # step 1: policy == reference (LoRA B starts at 0): zero rewards, accuracy 0 by TRL's strict ">"
    assert abs(first["rewards/margins"]) < 1e-6 and first["rewards/accuracies"] <= 0.5
    assert abs(first["loss"] - 0.6931) < 1e-3
    assert last["loss"] < first["loss"] - 0.05
    tail = [h["rewards/accuracies"] for h in steps[-5:]]
    assert min(tail) >= 0.9, tail
    assert "kl/chosen" in last and last["kl/chosen"] > 0 and last["nonfinite_steps"] == 0
    held_out = report["eval_metrics"]["eval_rewards/accuracies"]
    print(f"{loss_type}: train accuracy {tail[-1]:.2f} after {STEPS} steps, loss {first['loss']:.4f} -> "
          f"{last['loss']:.4f}, held-out accuracy {held_out:.2f} on 4 pairs")

    # the saved adapter is loadable and is what was trained (rewards are not zero)
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    reloaded = load_backend(tiny_llava_onevision, num_frames=4, adapter=out)
    assert any("lora_" in n for n, _ in reloaded.model.named_parameters())


@pytest.mark.parametrize("disable_tqdm", [False, True])
def test_print_logs_false_keeps_the_bar_and_the_history_without_metric_lines(disable_tqdm, tiny_llava_onevision,
                                                                             pair_files, tmp_path, capsys):
    """``savi demo`` trains with ``print_logs=False``: no per-step metrics dict on the console (transformers
    prints one under the bar, or alone with ``disable_tqdm``), while the report's log_history keeps them all."""
    from savi_plugin.training.run import run_training

    train, _ = pair_files
    common = dict(model=tiny_llava_onevision, data=train, lora={"r": 4, "alpha": 8, "dropout": 0.0})
    options = dict(max_steps=2, num_frames=4, per_device_train_batch_size=4, logging_steps=1, save_strategy="no",
                   use_cpu=True, seed=0, disable_tqdm=disable_tqdm)
    run_training(output_dir=tmp_path / "loud", training=options, **common)
    loud = capsys.readouterr()
    run_training(output_dir=tmp_path / "quiet", training=options, print_logs=False, **common)
    quiet = capsys.readouterr()
    assert "'loss'" in loud.out + loud.err  # transformers' default, kept for `savi train`
    assert "'loss'" not in quiet.out + quiet.err
    history = json.loads((tmp_path / "quiet" / "train_report.json").read_text())["log_history"]
    assert len([h for h in history if "loss" in h]) == 2

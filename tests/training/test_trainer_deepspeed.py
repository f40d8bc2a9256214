"""DeepSpeed ZeRO-2/3 configs: accepted by TrainingArguments, and a real one-process CPU run of each.

The run happens in a subprocess (DeepSpeed initialises torch.distributed, which must not leak into the other
tests) with the gloo-style single-process environment: MASTER_ADDR/PORT, RANK=0, WORLD_SIZE=1. Its loss curve
must match the same run without DeepSpeed (same seed, fp32), which checks that the policy forward routed
through the DeepSpeed engine, the disabled-adapter reference under ZeRO-3 partitioning, and the optimizer
hand-off all compute the same thing.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.builders import RECIPES, free_port, repo_pythonpath, write_answer_pairs

DEEPSPEED_CONFIGS = RECIPES / "deepspeed"

RUN = textwrap.dedent("""
    import json, sys
    from savi_plugin.models import load_backend
    from savi_plugin.training.config import PreferenceConfig
    from savi_plugin.training.run import apply_lora
    from savi_plugin.training.trainer import RRPOTrainer

    model, data, out, deepspeed = sys.argv[1:5]
    config = PreferenceConfig(output_dir=out, deepspeed=deepspeed or None, num_frames=4, per_device_train_batch_size=2,
                              gradient_accumulation_steps=2, max_steps=3, logging_steps=1, learning_rate=5e-3,
                              lr_scheduler_type="constant", save_strategy="no", use_cpu=True, seed=11,
                              disable_tqdm=True)
    backend = load_backend(model, num_frames=4)
    apply_lora(backend, {"r": 4, "alpha": 8, "dropout": 0.0}, seed=11)
    trainer = RRPOTrainer(backend, config, train_dataset=data)
    trainer.train()
    trainer.save_model(out)
    print("LOSSES", json.dumps([h["loss"] for h in trainer.state.log_history if "rewards/chosen" in h]))
    from savi_plugin.training.distributed import close_process_group, release_deepspeed_shm
    close_process_group()  # as PyTorch advises: left to exit, a rank can abort (SIGABRT)
    release_deepspeed_shm()  # one process: DeepSpeed's CPU allreduce segment, which it never unlinks
""")


def _start(model, data, out, deepspeed: str) -> subprocess.Popen:
    """:data:`RUN` in its own one-process group (one thread: the runs started together share the machine's
    cores, and every run computes with the same thread count)."""
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0",
           "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": repo_pythonpath()}
    logs = Path(f"{out}.stdout"), Path(f"{out}.stderr")  # files beside the output folder: no pipe to fill
    with open(logs[0], "w") as stdout, open(logs[1], "w") as stderr:
        return subprocess.Popen([sys.executable, "-c", RUN, str(model), str(data), str(out), deepspeed], env=env,
                                stdout=stdout, stderr=stderr)


def _losses(proc: subprocess.Popen) -> list[float]:
    """The loss curve a :func:`_start` run printed, once it finished."""
    proc.wait(timeout=400)
    out = proc.args[-2]
    stdout, stderr = Path(f"{out}.stdout").read_text(), Path(f"{out}.stderr").read_text()
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    line = next(l for l in stdout.splitlines() if l.startswith("LOSSES "))
    return json.loads(line[len("LOSSES "):])


@pytest.mark.parametrize("stage", [2, 3])
def test_configs_are_accepted_by_training_arguments(stage, tiny_llava_onevision, tmp_path, monkeypatch):
    """In-process, under a one-process launcher's variables (the process group it starts is closed after each test,
    tests/conftest.py)."""
    pytest.importorskip("deepspeed")
    from savi_plugin.models import load_backend
    from savi_plugin.training.config import PreferenceConfig

    path = DEEPSPEED_CONFIGS / f"zero{stage}.json"
    config = json.loads(path.read_text())
    assert config["zero_optimization"]["stage"] == stage
    assert "optimizer" not in config and "scheduler" not in config  # HF's (cosine etc.) are used
    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0", "LOCAL_RANK": "0",
                        "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(name, value)
    model = load_backend(str(tiny_llava_onevision), num_frames=4).model
    args = PreferenceConfig(output_dir=str(tmp_path), deepspeed=str(path), use_cpu=True,
                            per_device_train_batch_size=2, gradient_accumulation_steps=4, bf16=False)
    ds = args.hf_deepspeed_config
    assert ds.is_zero3() == (stage == 3)
    ds.trainer_config_finalize(args, model, 100)
    filled = (ds.config["train_micro_batch_size_per_gpu"], ds.config["gradient_accumulation_steps"],
              ds.config["bf16"]["enabled"])
    assert filled == (2, 4, False)  # "auto" values filled from the arguments
    # ... and from the model (hidden size 64 of the tiny language model)
    assert ds.config["zero_optimization"]["reduce_bucket_size"] == 64 * 64


def test_zero2_and_zero3_one_process_cpu_runs_match_the_plain_run(tiny_llava_onevision, synthetic_samples, tmp_path):
    pytest.importorskip("deepspeed")
    data = write_answer_pairs(tmp_path / "pairs.jsonl", synthetic_samples[:4], rotate=False)
    runs = {stage: _start(tiny_llava_onevision, data, tmp_path / f"zero{stage}",
                          str(DEEPSPEED_CONFIGS / f"zero{stage}.json")) for stage in (2, 3)}
    runs["plain"] = _start(tiny_llava_onevision, data, tmp_path / "plain", "")  # the three run together
    try:
        plain = _losses(runs["plain"])
        staged = {stage: _losses(runs[stage]) for stage in (2, 3)}
    finally:
        for proc in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for stage, losses in staged.items():
        assert len(losses) == 3
        assert losses == pytest.approx(plain, abs=1e-5), (stage, losses, plain)
        assert (tmp_path / f"zero{stage}" / "adapter_model.safetensors").is_file()
    assert plain[-1] < plain[0]


SKIPPED_BY_DEEPSPEED = textwrap.dedent("""
    import json, math, sys
    from savi_plugin.models import load_backend
    from savi_plugin.training.config import PreferenceConfig
    from savi_plugin.training.run import apply_lora
    from savi_plugin.training.trainer import RRPOTrainer

    model, data, out, deepspeed = sys.argv[1:5]
    config = PreferenceConfig(output_dir=out, deepspeed=deepspeed, num_frames=4, per_device_train_batch_size=2,
                              max_steps=3, logging_steps=1, learning_rate=5e-3, lr_scheduler_type="constant",
                              save_strategy="no", use_cpu=True, seed=11, disable_tqdm=True)
    backend = load_backend(model, num_frames=4)
    apply_lora(backend, {"r": 4, "alpha": 8, "dropout": 0.0}, seed=11)
    trainer = RRPOTrainer(backend, config, train_dataset=data)
    lora = next(p for n, p in backend.model.named_parameters() if "lora_A" in n)
    # a non-finite gradient at the second step (the loss stays finite): DeepSpeed skips that step by itself
    lora.register_hook(lambda g: g * math.nan if trainer.state.global_step == 1 else g)
    trainer.train()
    print("RESULT", json.dumps({"nonfinite": trainer.nonfinite_steps,
                                "losses": [h.get("loss") for h in trainer.state.log_history if "rewards/chosen" in h],
                                "logged_nonfinite": [h.get("nonfinite_steps") for h in trainer.state.log_history
                                                     if "rewards/chosen" in h]}))
    from savi_plugin.training.distributed import close_process_group, release_deepspeed_shm
    close_process_group()  # as PyTorch advises: left to exit, a rank can abort (SIGABRT)
    release_deepspeed_shm()  # one process: DeepSpeed's CPU allreduce segment, which it never unlinks
""")


def test_a_step_deepspeed_skips_is_counted_as_non_finite_and_not_logged_as_a_loss(tiny_llava_onevision,
                                                                                   synthetic_samples, tmp_path):
    pytest.importorskip("deepspeed")
    data = write_answer_pairs(tmp_path / "pairs.jsonl", synthetic_samples[:6], rotate=False)
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0",
           "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1", "PYTHONPATH": repo_pythonpath()}
    proc = subprocess.run([sys.executable, "-c", SKIPPED_BY_DEEPSPEED, str(tiny_llava_onevision), str(data),
                           str(tmp_path / "out"), str(DEEPSPEED_CONFIGS / "zero2.json")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    assert result["nonfinite"] == 1  # was 0: DeepSpeed's own skip went uncounted
    losses = result["losses"]
    assert losses[0] is not None and losses[1] is None and losses[2] is not None  # step 2 logs no loss
    assert result["logged_nonfinite"] == [0, 1, 1]


@pytest.mark.parametrize("device", [{"use_cpu": True}, {"bf16": False}], ids=["use_cpu", "bf16_false"])
def test_a_cpu_training_run_with_a_deepspeed_config_prints_only_its_summary_on_standard_output(
        device, tiny_llava_onevision, synthetic_samples, tmp_path):
    """``savi train`` of a recipe naming a DeepSpeed config, on the CPU: standard output holds the run's summary
    alone. DeepSpeed's logger (``[WARNING] [real_accelerator.py:213:get_accelerator] Setting accelerator to
    CPU...`` as it is imported) and its ``print`` (``DeepSpeed deepspeed.ops.comm.deepspeed_shm_comm_op built
    successfully``) wrote there (pass 24 H #25); they go to the log on standard error now. Without ``use_cpu``
    (``train.bf16=false``, pass 25 R4 #37) the training arguments start DeepSpeed's communication layer
    themselves (their device, through accelerate), and its print reached standard output from there. A
    subprocess: DeepSpeed initialises torch.distributed, which must not leak into the other tests."""
    pytest.importorskip("deepspeed")
    data = write_answer_pairs(tmp_path / "pairs.jsonl", synthetic_samples[:2], rotate=False)
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({
        "model": {"path": str(tiny_llava_onevision), "num_frames": 4},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {"deepspeed": "zero2", "max_steps": 1, "per_device_train_batch_size": 2,
                  "gradient_accumulation_steps": 1, "save_strategy": "no", "logging_steps": 1,
                  "disable_tqdm": True, "seed": 0, **device}}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": repo_pythonpath()}
    for name in ("MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        env.pop(name, None)  # no launcher: savi runs DeepSpeed as one process itself
    proc = subprocess.run([sys.executable, "-m", "savi_plugin", "train", str(recipe), "--data", str(data),
                           "--output-dir", str(tmp_path / "out")], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics, _, summary = proc.stdout.partition("\n{\n")  # the metrics at each logging step, then the summary
    summary = json.loads("{\n" + summary)
    assert summary["adapter"]
    for line in metrics.splitlines():  # each a dict of the run's metrics (print_logs), and nothing else
        assert _is_metrics(line), line
    assert "[WARNING] [real_accelerator" not in proc.stderr  # a savi log line, when DeepSpeed says it


def _is_metrics(line: str) -> bool:
    """Whether ``line`` is a metrics line the Trainer prints at a logging step (a dict literal)."""
    try:
        return isinstance(ast.literal_eval(line), dict)
    except (ValueError, SyntaxError):
        return False

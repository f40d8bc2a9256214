"""Resume: a run killed (SIGKILL) right after a checkpoint and resumed reproduces the uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import torch

from tests.builders import lora_policy, repo_pythonpath, write_answer_pairs

MAX_STEPS, SAVE_STEPS = 6, 3

# The child process: the same run as the parent's, which kills itself the moment checkpoint-3 is on disk.
CHILD = textwrap.dedent("""
    import os, signal, sys
    from transformers import TrainerCallback
    from tests.training.test_trainer_resume import make_trainer

    class KillAtCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)  # no clean shutdown: like a preempted job

    trainer = make_trainer(sys.argv[1], sys.argv[2], sys.argv[3], callbacks=[KillAtCheckpoint()])
    trainer.train()
    print("not killed")
""")


def make_trainer(model_path, data, output_dir, callbacks=None):
    from savi_plugin.training.config import PreferenceConfig
    from savi_plugin.training.trainer import RRPOTrainer

    config = PreferenceConfig(output_dir=str(output_dir), num_frames=4, per_device_train_batch_size=2,
                              learning_rate=5e-3, max_steps=MAX_STEPS, save_steps=SAVE_STEPS, save_strategy="steps",
                              logging_steps=1, use_cpu=True, seed=7, disable_tqdm=True, disable_dropout=False)
    # LoRA dropout on: resuming must also restore the RNG state, not only weights, optimizer and data order
    backend = lora_policy(model_path, r=4, alpha=8, dropout=0.1, seed=7)
    return RRPOTrainer(backend, config, train_dataset=str(data), callbacks=callbacks)


def _losses(trainer):
    return {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h and "rewards/chosen" in h}


def test_killed_and_resumed_run_reproduces_the_uninterrupted_loss_curve(tiny_llava_onevision, synthetic_samples,
                                                                       tmp_path):
    data = write_answer_pairs(tmp_path / "pairs.jsonl", synthetic_samples[:5])

    full = make_trainer(tiny_llava_onevision, data, tmp_path / "full")
    full.train()
    expected = _losses(full)
    assert sorted(expected) == list(range(1, MAX_STEPS + 1))

    killed_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": repo_pythonpath()}
    child = subprocess.run([sys.executable, "-c", CHILD, str(tiny_llava_onevision), str(data), str(killed_dir)],
                           env=env, capture_output=True, text=True, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stdout[-2000:] + child.stderr[-2000:]
    assert (killed_dir / f"checkpoint-{SAVE_STEPS}").is_dir()
    assert not (killed_dir / f"checkpoint-{MAX_STEPS}").exists()

    resumed = make_trainer(tiny_llava_onevision, data, killed_dir)
    resumed.train(resume_from_checkpoint=True)
    got = _losses(resumed)  # steps 1-3 come back from the checkpoint's trainer state, 4-6 are recomputed
    assert sorted(got) == list(range(1, MAX_STEPS + 1))
    for step, loss in got.items():
        assert abs(loss - expected[step]) <= 1e-6, (step, loss, expected[step])
    for (name, a), b in zip(full.model.named_parameters(), resumed.model.parameters()):
        if a.requires_grad:
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=name)

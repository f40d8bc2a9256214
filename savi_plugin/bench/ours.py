"""Our side of the training benchmarks: :class:`~savi_plugin.training.trainer.PreferenceTrainer` run by its own
``train()`` loop, with every step timed and its loss kept at full precision."""

from __future__ import annotations

from pathlib import Path

from savi_plugin.bench.measure import MemoryProbe, StepTimer, VisionCounter, log_recorder


def train_ours(*, model_path: str, adapter_path: str, data_path: str, output_dir: str | Path, loss_type: str,
               beta: float, alpha: float, lr: float, warmup: int, steps: int, frames: int,
               gradient_checkpointing: bool, seed: int, probe: MemoryProbe, base_mib: float,
               phase: str = "time") -> dict:
    """Train on ``data_path`` (one pair per step) and measure: ``warmup`` then ``steps`` timed steps
    (``phase="time"``), or ``warmup`` then one memory step (``phase="memory"``); see
    :class:`~savi_plugin.bench.measure.StepTimer`.

    Args:
        model_path, adapter_path: the checkpoint and the saved LoRA adapter the policy starts from (trainable);
            the reference is the policy with the adapter disabled (``reference="adapter"``).
        data_path: a preference JSONL file (our format).
        loss_type, beta, alpha: the loss (``rrpo`` / ``dpo``) and its parameters.
        lr: AdamW learning rate, constant (no warm-up, no decay, no weight decay), gradients clipped at 1.0.
        warmup, steps, phase: untimed steps, timed steps, and what this run measures.
        frames: frames decoded per video.
        gradient_checkpointing: recompute decoder layers in backward (non-reentrant).
        probe, base_mib: the process's memory probe and its resident set before any model was loaded.

    Returns:
        ``losses`` (every step, full precision), ``logs`` (the Trainer's per-step logs), the summary of
        :meth:`StepTimer.summary`, ``packing`` and ``vision_per_pair`` (encodings of the pair's video per step,
        counted at the vision tower).
    """
    from savi_plugin.models.backends.llava_onevision import LlavaOnevisionVideoLM

    backend = LlavaOnevisionVideoLM.from_pretrained(model_path, adapter=adapter_path, is_trainable=True,
                                                    num_frames=frames)
    return train_backend(backend, data_path=data_path, output_dir=output_dir, loss_type=loss_type, beta=beta,
                         alpha=alpha, lr=lr, frames=frames, gradient_checkpointing=gradient_checkpointing, seed=seed,
                         timer=StepTimer(probe, warmup=warmup, steps=steps, phase=phase), base_mib=base_mib)


def train_backend(backend, *, data_path: str, output_dir: str | Path, loss_type: str, beta: float, alpha: float,
                  lr: float, frames: int, gradient_checkpointing: bool, seed: int, timer, base_mib: float,
                  use_cpu: bool = True) -> dict:
    """:func:`train_ours` on a loaded backend (its ``model`` a trainable peft model) with a step ``timer``
    (:class:`~savi_plugin.bench.measure.StepTimer` or one with the same ``total_steps``, ``callback()`` and
    ``summary(base_mib)``)."""
    from savi_plugin.training.config import PreferenceConfig
    from savi_plugin.training.trainer import PreferenceTrainer

    losses: list[float] = []

    class Recording(PreferenceTrainer):
        """The trainer unchanged, except that each step's loss is also kept here at full precision."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            losses.append(float((loss[0] if return_outputs else loss).detach()))
            return loss

    logs: list[dict] = []
    config = PreferenceConfig(
        output_dir=str(output_dir), loss_type=loss_type, beta=beta, alpha=alpha, learning_rate=lr,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch",
        per_device_train_batch_size=1, max_steps=timer.total_steps, gradient_checkpointing=gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if gradient_checkpointing else None,
        num_frames=frames, save_strategy="no", logging_steps=1, use_cpu=use_cpu, seed=seed, dataloader_num_workers=0,
        disable_tqdm=True)
    trainer = Recording(backend, config, train_dataset=data_path, callbacks=[timer.callback(), log_recorder(logs)])
    vision = VisionCounter(backend.decoder().vision_tower)
    trainer.train()
    return {"losses": losses, "logs": [entry for entry in logs if "loss" in entry],
            **timer.summary(base_mib), "packing": trainer.packing,
            "vision_per_pair": vision.per_pair(len(losses), frames)}

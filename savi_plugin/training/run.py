"""``run_training``: one call from a checkpoint and a preference file to a trained LoRA adapter.

This is what ``savi train``, the recipes and the demo call. It loads the backend, applies a peft LoRA adapter
(default: every linear layer of the language model -- attention and MLP -- and nothing in the vision tower,
the projector or the LM head, as the RRPO recipe does), builds the dataset, collator and trainer from the
``training`` keyword arguments (:class:`~savi_plugin.training.config.PreferenceConfig` fields), trains, and
saves the adapter, the processor and ``train_report.json`` (metrics, log history, skipped records, packing
mode, non-finite steps) to ``output_dir``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

DEFAULT_LORA = {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": None}


def language_model_linear_pattern(model: torch.nn.Module, decoder: torch.nn.Module) -> str:
    """A peft ``target_modules`` regex matching every ``nn.Linear`` inside the language model only.

    The language model is ``decoder.language_model`` (transformers' multimodal models); the vision tower,
    the projector and the LM head live outside it and are never matched.
    """
    language_model = getattr(decoder, "language_model", None)
    if language_model is None:
        raise ValueError("cannot find the language model (decoder.language_model); pass lora target_modules")
    prefix = next((name for name, module in model.named_modules() if module is language_model), None)
    if prefix is None:
        raise ValueError("the language model is not a submodule of the model; pass lora target_modules")
    leaves = sorted({name.rsplit(".", 1)[-1] for name, module in language_model.named_modules()
                     if isinstance(module, torch.nn.Linear)})
    if not leaves:
        raise ValueError("the language model has no nn.Linear layers; pass lora target_modules")
    return rf"^{re.escape(prefix)}\..*\.({'|'.join(map(re.escape, leaves))})$"


def apply_lora(backend, lora: dict[str, Any] | None = None, *, seed: int | None = None):
    """Wrap ``backend.model`` in a trainable peft LoRA model (in place) and return the peft model.

    Args:
        backend: the loaded ``VideoLM``.
        lora: ``r`` (rank), ``alpha`` (scaling numerator), ``dropout``, ``target_modules`` (peft's list or
            regex; None: every linear layer of the language model), optional ``modules_to_save``.
        seed: seeds the adapter's initialisation.
    """
    from peft import LoraConfig, get_peft_model

    options = {**DEFAULT_LORA, **(lora or {})}
    unknown = set(options) - {"r", "alpha", "dropout", "target_modules", "modules_to_save"}
    if unknown:
        raise ValueError(f"unknown lora option(s) {sorted(unknown)}; known: r, alpha, dropout, target_modules, "
                         f"modules_to_save")
    targets = options["target_modules"] or language_model_linear_pattern(backend.model, backend.decoder())
    if seed is not None:
        torch.manual_seed(seed)
    config = LoraConfig(r=int(options["r"]), lora_alpha=int(options["alpha"]), lora_dropout=float(options["dropout"]),
                        target_modules=targets, modules_to_save=options.get("modules_to_save"), bias="none")
    backend.model = get_peft_model(backend.model, config)
    return backend.model


def last_complete_checkpoint(output_dir: str | Path) -> str | None:
    """The newest ``checkpoint-N`` of ``output_dir`` that was completely written, or None.

    The Trainer writes a checkpoint in place and its ``trainer_state.json`` last, so a job killed while saving
    leaves a torn ``checkpoint-N`` (weights without optimizer, or no state) that ``get_last_checkpoint`` would
    pick and the resume would then fail on, again at every restart. A checkpoint counts as complete when its
    ``trainer_state.json`` parses and names step N; torn ones are skipped with a warning (and overwritten when
    training reaches step N again).
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    found = []
    for path in output_dir.iterdir():
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    for step, path in sorted(found, reverse=True):
        try:
            state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
            if int(state.get("global_step", -1)) == step:
                return str(path)
        except (OSError, ValueError, TypeError):
            pass
        log.warning("%s is incomplete (a run was killed while saving it); resuming from an earlier checkpoint", path)
    return None


def _resume_argument(resume: bool | str | None, output_dir: Path) -> bool | str | None:
    if not resume:
        return None
    if isinstance(resume, str):
        return resume
    last = last_complete_checkpoint(output_dir)
    if last is None:
        log.warning("resume=True but %s has no complete checkpoint-*; training from the start", output_dir)
    return last


def run_training(*, model: str | Path, data: str | Path, output_dir: str | Path, backend: str | None = None,
                 lora: dict[str, Any] | None = None, training: dict[str, Any] | None = None,
                 reference_model: str | Path | None = None, resume: bool | str = False,
                 eval_data: str | Path | None = None) -> dict[str, Any]:
    """Train a LoRA adapter on video preference pairs and save it.

    Args:
        model: the policy checkpoint (local folder).
        data: the preference file (JSONL, ``training["data_format"]``, default ours).
        output_dir: where checkpoints, the adapter and ``train_report.json`` go.
        backend: backend name; auto-detected from ``config.json`` when None.
        lora: LoRA options (see :func:`apply_lora`); default r=8, alpha=16, dropout 0.05, all LM linear layers.
        training: :class:`PreferenceConfig` fields (``loss_type``, ``beta``, ``learning_rate``, ``max_steps``,
            ``deepspeed`` ...). ``output_dir`` is set from the argument.
        reference_model: a separate frozen reference checkpoint (sets ``reference="model"``).
        resume: True resumes from the last complete ``checkpoint-*`` in ``output_dir`` (one torn by a kill while
            saving is skipped, see :func:`last_complete_checkpoint`); a path resumes from it.
        eval_data: an optional held-out preference file, evaluated at the end (``eval_*`` metrics).

    Returns:
        A summary: the adapter path, train/eval metrics, pairs used/skipped, packing, non-finite steps.
    """
    from savi_plugin.models import load_backend
    from savi_plugin.training.config import PreferenceConfig
    from savi_plugin.training.trainer import PreferenceTrainer

    output_dir = Path(output_dir)
    options = dict(training or {})
    if reference_model is not None:
        options.update(reference="model", reference_model_path=str(reference_model))
    config = PreferenceConfig(output_dir=str(output_dir), **options)
    dtype = "bfloat16" if config.bf16 else ("float16" if config.fp16 else "float32")
    started = time.time()
    # Loaded on the CPU; the Trainer (or DeepSpeed, which partitions it first under ZeRO-3) places it.
    policy = load_backend(model, backend, dtype=dtype, device="cpu", num_frames=config.num_frames)
    apply_lora(policy, lora, seed=config.seed)
    trainer = PreferenceTrainer(policy, config, train_dataset=str(data),
                                eval_dataset=str(eval_data) if eval_data is not None else None)
    result = trainer.train(resume_from_checkpoint=_resume_argument(resume, output_dir))
    trainer.save_model(str(output_dir))
    eval_metrics = trainer.evaluate() if eval_data is not None else {}

    report = {
        "model": str(model), "data": str(data), "output_dir": str(output_dir), "adapter": str(output_dir),
        "loss_type": config.loss_type, "reference": config.reference, "packing": trainer.packing,
        "num_frames": config.num_frames, "lora": {**DEFAULT_LORA, **(lora or {})},
        "train_metrics": result.metrics, "eval_metrics": eval_metrics,
        "global_step": trainer.state.global_step, "nonfinite_steps": trainer.nonfinite_steps,
        "dataset": trainer.train_dataset.report(),
        "eval_dataset": trainer.eval_dataset.report() if eval_data is not None else None,
        "log_history": trainer.state.log_history, "seconds": round(time.time() - started, 2),
    }
    if trainer.is_world_process_zero():
        (output_dir / "train_report.json").write_text(json.dumps(report, indent=2, default=str))
    return {k: report[k] for k in ("adapter", "loss_type", "reference", "packing", "global_step", "nonfinite_steps",
                                   "train_metrics", "eval_metrics", "seconds")} | {
        "pairs": report["dataset"]["pairs"], "skipped": report["dataset"]["skipped"],
        "report": str(output_dir / "train_report.json")}

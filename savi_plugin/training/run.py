"""``run_training``: one call from a checkpoint and a preference file to a trained LoRA adapter.

This is what ``savi train``, the recipes and the demo call. It loads the backend, applies a peft LoRA adapter
(default: every linear layer of the language model -- attention and MLP -- and nothing in the vision tower,
the projector or the LM head, as the RRPO recipe does), builds the dataset, collator and trainer from the
``training`` keyword arguments (:class:`~savi_plugin.training.config.PreferenceConfig` fields), trains, and
saves the adapter, the processor and ``train_report.json`` (metrics, log history, skipped records, packing
mode, non-finite steps) to ``output_dir``.

What holds for ``output_dir``:

* one training run at a time writes it (:class:`~savi_plugin.data.outputs.OutputLock`, held by rank 0), and it
  is never the model's folder (the adapter saved there would load with the model from then on);
* ``savi_train_config.json`` holds the run's configuration; a resume with another configuration (learning rate,
  loss, data file or its content, model, LoRA, ...) is refused naming what changed
  (:mod:`savi_plugin.data.fingerprint`, the check generation uses), except for :data:`RESUMABLE_CHANGES`;
* the final adapter is saved to a temporary folder and moved in file by file, and ``train_report.json`` -- the
  mark of a finished run -- is removed at the start and written last, atomically, so a kill never leaves a
  report beside a torn or older adapter;
* a full disk while saving is an ``OSError(ENOSPC)`` naming the folder, not a C++ stream error.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from savi_plugin.config.sections import LoraSection
from savi_plugin.data.fingerprint import check_same_config
from savi_plugin.data.outputs import OutputLock, check_distinct
from savi_plugin.data.paths import path_for_file
from savi_plugin.errors import RunError
from savi_plugin.launch import current

log = logging.getLogger(__name__)

#: the recipe's ``lora`` defaults (:class:`~savi_plugin.config.sections.LoraSection`, where they are defined)
DEFAULT_LORA = LoraSection().peft_kwargs()
CONFIG_FILE = "savi_train_config.json"
REPORT_FILE = "train_report.json"
#: training options that a resumed run may change: how long it runs, and how it logs and saves
RESUMABLE_CHANGES = ("data",) + tuple(f"training.{k}" for k in (
    "max_steps", "num_train_epochs", "logging_steps", "save_steps", "save_total_limit", "disable_tqdm", "report_to",
    "logging_dir", "run_name", "dataloader_num_workers", "use_cpu", "eval_steps", "max_nonfinite_fraction"))


class TrainingFailedError(RunError):
    """The run finished but its result is not usable (e.g. most optimizer steps were skipped as non-finite)."""


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
    targets = options["target_modules"] or backend.lora_target_modules()
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


def _nonfinite_failure(trainer, config) -> str | None:
    """Why a run whose optimizer steps were mostly skipped as non-finite must fail, or None.

    See ``PreferenceConfig.max_nonfinite_fraction``: such a run trained on a fraction of its data, and its
    adapter is not the result of the configured training.
    """
    steps, skipped = trainer.state.global_step, trainer.nonfinite_steps
    limit = getattr(config, "max_nonfinite_fraction", 0.5)
    if steps and skipped > limit * steps:
        return (f"{skipped} of {steps} optimizer steps were skipped because their loss or gradient was not finite, "
                f"more than max_nonfinite_fraction={limit}; lower the learning rate, use bf16 instead of fp16, or "
                f"check the data")
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


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's content (a data file regenerated at the same path is another data file)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_configuration(model, data, backend, lora, options, eval_data) -> dict[str, Any]:
    """What a training run's result depends on, as stored in ``savi_train_config.json``."""
    def where(path):
        return None if path is None else (os.path.realpath(path) if Path(path).exists() else str(path))

    return {"model": where(model), "data": where(data),  # compared by content: a run folder may move with its data
            "data_sha256": file_digest(data) if Path(data).is_file() else None,
            "eval_data": where(eval_data), "backend": backend, "lora": {**DEFAULT_LORA, **(lora or {})},
            "training": {k: v for k, v in options.items() if k not in ("output_dir",)}}


def _disk_full(exc: BaseException, where: Path) -> OSError | None:
    """An ``OSError(ENOSPC)`` naming ``where`` when ``exc`` is a full disk in any of its disguises, else None.

    torch's writer reports it as ``basic_ios::clear: iostream error``, safetensors as ``os error 28``.
    """
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return OSError(exc.errno, exc.strerror, exc.filename or str(where))
    text = str(exc)
    if any(s in text for s in ("File too large", "os error 27")):
        return OSError(errno.EFBIG, "file too large (file size limit)", str(where))
    if any(s in text for s in ("No space left", "os error 28", "iostream error", "file write failed")):
        try:
            free = shutil.disk_usage(where if where.exists() else where.parent).free
        except OSError:
            free = 0
        return OSError(errno.ENOSPC, f"no space left on the device ({free // 2**20} MiB free; {text.strip()[:80]})",
                       str(where))
    cause = exc.__cause__ or exc.__context__
    return _disk_full(cause, where) if cause is not None and cause is not exc else None


def _save_adapter_atomically(trainer, output_dir: Path) -> None:
    """Save the adapter into a temporary folder, then move its files into ``output_dir`` one ``rename`` each."""
    tmp = output_dir / ".adapter.tmp"
    if trainer.is_world_process_zero() and tmp.exists():
        shutil.rmtree(tmp)
    trainer.save_model(str(tmp))
    if trainer.is_world_process_zero():
        for path in sorted(tmp.iterdir(), key=lambda p: p.name.endswith(".safetensors")):  # weights last
            os.replace(path, output_dir / path.name)
        tmp.rmdir()


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def run_training(*, model: str | Path, data: str | Path, output_dir: str | Path, backend: str | None = None,
                 lora: dict[str, Any] | None = None, training: dict[str, Any] | None = None,
                 reference_model: str | Path | None = None, resume: bool | str = False,
                 eval_data: str | Path | None = None, print_logs: bool = True) -> dict[str, Any]:
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
        print_logs: print the metrics at each logging step under the progress bar (transformers' default);
            False keeps the bar only (the metrics still go to the report's ``log_history``).

    Returns:
        A summary: the adapter path, train/eval metrics, pairs used/skipped, packing, non-finite steps.
    """
    output_dir = Path(output_dir)
    options = dict(training or {})
    if reference_model is not None:
        options.update(reference="model", reference_model_path=str(reference_model))
    check_distinct(output_dir, {"the model": model, "the data": data, "the reference model": reference_model,
                                "the eval data": eval_data}, output_name="output_dir")
    from savi_plugin.launch import clean_stray_launcher_env, single_process_env
    from savi_plugin.training.config import PreferenceConfig

    clean_stray_launcher_env()
    if options.get("deepspeed") and single_process_env():  # DeepSpeed needs a process group even for one process
        log.info("no launcher: DeepSpeed runs as one process (rank 0 of 1 on 127.0.0.1)")
    config = PreferenceConfig(output_dir=str(output_dir), **options)  # a bad value fails before anything is made
    with OutputLock(output_dir, folder=True, what="training output folder"):
        return _train(model=model, data=data, output_dir=output_dir, backend=backend, lora=lora, options=options,
                      config=config, resume=resume, eval_data=eval_data, print_logs=print_logs)


def _bar_only(trainer) -> None:
    """Keep the Trainer's progress bar, without the metrics line it prints at every logging step."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class BarOnly(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            return None

    trainer.pop_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(BarOnly)


def _train(*, model, data, output_dir: Path, backend, lora, options, config, resume, eval_data,
           print_logs: bool = True) -> dict[str, Any]:
    """:func:`run_training` once the output folder's lock is held."""
    from savi_plugin.models import load_backend
    from savi_plugin.training.distributed import every_rank_report, setup_process_group, shared_resume_point
    from savi_plugin.training.trainer import trainer_class

    setup_process_group(config)  # before the model is built: ZeRO-3's zero.Init asks the world size
    run_config = run_configuration(model, data, backend, lora, options, eval_data)
    config_path = output_dir / CONFIG_FILE
    resume_from = shared_resume_point(_resume_argument(resume, output_dir) if current().is_main else None,
                                      output_dir)
    has_checkpoints = output_dir.is_dir() and any(p.name.startswith("checkpoint-") for p in output_dir.iterdir())
    if config_path.exists() and (resume_from is not None or has_checkpoints):
        # A fresh run beside another configuration's checkpoints is refused too: a later --resume would pick them.
        stored = json.loads(config_path.read_text(encoding="utf-8"))
        check_same_config(stored, run_config, output=output_dir, stored_at=config_path, ignore=RESUMABLE_CHANGES,
                          remedy="resume with the same configuration, or train into a new output folder")
    main_process = current().is_main
    if main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / REPORT_FILE).unlink(missing_ok=True)  # written again, last, when this run has finished
        if resume_from is None or not config_path.exists():
            _write_json_atomic(config_path, run_config)
    dtype = "bfloat16" if config.bf16 else ("float16" if config.fp16 else "float32")
    started = time.time()
    # Loaded on the CPU; the Trainer (or DeepSpeed, which partitions it first under ZeRO-3) places it.
    policy = load_backend(model, backend, dtype=dtype, device="cpu", num_frames=config.num_frames)
    apply_lora(policy, lora, seed=config.seed)
    trainer = trainer_class(config.trainer)(policy, config, train_dataset=str(data),
                                eval_dataset=str(eval_data) if eval_data is not None else None)
    if not print_logs:
        _bar_only(trainer)
    try:
        result = trainer.train(resume_from_checkpoint=resume_from)
        failure = _nonfinite_failure(trainer, config)
        if failure is None:
            _save_adapter_atomically(trainer, output_dir)
    except Exception as exc:  # torch, safetensors and the OS each report a full disk their own way
        full = _disk_full(exc, output_dir)
        if full is None:
            raise
        raise full from exc
    eval_metrics = trainer.evaluate() if eval_data is not None and failure is None else {}

    report = {
        "model": str(model), "data": str(data), "output_dir": str(output_dir), "adapter": str(output_dir),
        "loss_type": config.loss_type, "reference": config.reference, "packing": trainer.packing,
        "num_frames": config.num_frames, "lora": {**DEFAULT_LORA, **(lora or {})},
        "train_metrics": result.metrics, "eval_metrics": eval_metrics,
        "global_step": trainer.state.global_step, "nonfinite_steps": trainer.nonfinite_steps,
        "dataset": every_rank_report(trainer.train_dataset),
        "eval_dataset": every_rank_report(trainer.eval_dataset) if eval_data is not None else None,
        "log_history": trainer.state.log_history, "seconds": round(time.time() - started, 2),
        "failed": failure,
    }
    if trainer.is_world_process_zero():  # paths as the file stores them (savi_plugin.data.paths' rule)
        stored = {k: path_for_file(report[k], output_dir / REPORT_FILE)
                  for k in ("model", "data", "output_dir", "adapter") if os.path.exists(report[k])}
        _write_json_atomic(output_dir / REPORT_FILE, {**report, **stored})
    if failure is not None:
        raise TrainingFailedError(f"{output_dir}: {failure} (no adapter saved; report: {output_dir / REPORT_FILE})")
    return {k: report[k] for k in ("adapter", "loss_type", "reference", "packing", "global_step", "nonfinite_steps",
                                   "train_metrics", "eval_metrics", "seconds")} | {
        "pairs": report["dataset"]["pairs"], "skipped": report["dataset"]["skipped"],
        "report": str(output_dir / "train_report.json")}

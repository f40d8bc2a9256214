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

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import torch

from savi_plugin.config.sections import LoraSection
from savi_plugin.data.identity import input_identity, model_identity, same_identity, write_adapter_identity
from savi_plugin.data.outputs import claim, disk_error, move_into, remove_tree, sidecar, write_json
from savi_plugin.data.paths import path_for_file
from savi_plugin.errors import RunError

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
    return input_identity(path)["sha256"]


def run_configuration(model, data, backend, lora, options, eval_data) -> dict[str, Any]:
    """What a training run's result depends on, as stored in ``savi_train_config.json`` and the folder's mark.

    Paths are kept for the reader; the data, the model and the reference model are compared by content
    (:mod:`savi_plugin.data.identity`), so a run folder may move with its data, and weights replaced at the same
    path are another model.
    """
    def where(path):
        return None if path is None else (os.path.realpath(path) if Path(path).exists() else str(path))

    reference = options.get("reference_model_path")
    return {"model": where(model), "data": where(data),
            "data_sha256": file_digest(data) if Path(data).is_file() else None,
            "eval_data": where(eval_data), "backend": backend, "lora": {**DEFAULT_LORA, **(lora or {})},
            "training": {k: v for k, v in options.items() if k not in ("output_dir",)},
            "identity": {"model": model_identity(model), "eval_data": input_identity(eval_data),
                         "reference_model": model_identity(reference) if reference else None}}


class UnfinishedDataError(ValueError):
    """The preference file comes from a generation run that has not finished (one line naming its report)."""


def check_pairs_source(data: str | Path, model: str | Path, *, allow_incomplete: bool = False) -> None:
    """Refuse pairs of an unfinished generation run; warn (one line) when they were generated by another model.

    A pairs file made by ``savi generate`` has a run report beside it (``<pairs>.report.json``) or, while the run
    is under way, only a progress file. Training on it before the run finished would train on part of the data
    with no trace of it, unless ``allow_incomplete`` (``savi train --allow-incomplete-data``).
    """
    data = Path(data)
    report_file, progress_file = sidecar(data, "report.json"), sidecar(data, "progress.jsonl")
    report = None
    if report_file.is_file():
        try:
            report = json.loads(report_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            report = None
    if report is None and not progress_file.exists():
        return  # not the product of a generation run
    if report is None or not report.get("complete"):
        counts = (report or {}).get("counts", {})
        state = (f"its run report says incomplete ({counts.get('items_final')} of {counts.get('items')} items "
                 f"finished)" if report else f"its generation run has not finished (no {report_file.name})")
        message = (f"{data}: {state}; re-run the same savi generate command to finish it, or pass "
                   f"--allow-incomplete-data to train on what is there")
        if not allow_incomplete:
            raise UnfinishedDataError(message)
        log.warning(message)
    made_by = ((report or {}).get("config") or {}).get("identity", {}).get("model")
    if made_by is not None and not same_identity(made_by, model_identity(model)):
        log.warning("%s: these pairs were generated by %s, not by the model being trained (%s); a preference "
                    "method trains on its own model's answers", data, (report.get("config") or {}).get("model"), model)


def _save_adapter_atomically(trainer, output_dir: Path, base: str | Path, backend: str | None) -> None:
    """Save the adapter into a temporary folder, record its base model (``savi_adapter.json``), then move its files
    into ``output_dir`` one ``rename`` each (weights last). The temporary folder lies inside the locked output
    folder, so its name is this job's own, and it is removed on every exit."""
    tmp = output_dir / ".adapter.tmp"
    main = trainer.is_world_process_zero()
    if main and tmp.exists():
        remove_tree(tmp)
    try:
        trainer.save_model(str(tmp))
        if main:
            write_adapter_identity(tmp, base, backend)
            for path in sorted(tmp.iterdir(), key=lambda p: p.name.endswith(".safetensors")):  # weights last
                move_into(path, output_dir / path.name)
    finally:
        if main:
            remove_tree(tmp)


def run_training(*, model: str | Path, data: str | Path, output_dir: str | Path, backend: str | None = None,
                 lora: dict[str, Any] | None = None, training: dict[str, Any] | None = None,
                 reference_model: str | Path | None = None, resume: bool | str = False,
                 eval_data: str | Path | None = None, print_logs: bool = True,
                 allow_incomplete_data: bool = False) -> dict[str, Any]:
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
        allow_incomplete_data: train on pairs whose generation run has not finished (refused by default,
            :func:`check_pairs_source`).

    Returns:
        A summary: the adapter path, train/eval metrics, pairs used/skipped, packing, non-finite steps.
    """
    output_dir = Path(output_dir)
    options = dict(training or {})
    if reference_model is not None:
        options.update(reference="model", reference_model_path=str(reference_model))
    from savi_plugin.training.config import PreferenceConfig

    config = PreferenceConfig(output_dir=str(output_dir), **options)  # a bad value fails before anything is made
    check_pairs_source(data, model, allow_incomplete=allow_incomplete_data)
    run_config = run_configuration(model, data, backend, lora, options, eval_data)
    inputs = {"the model": model, "the data": data, "the reference model": reference_model,
              "the eval data": eval_data}
    with claim(output_dir, command="savi train", config=run_config, folder=True, inputs=inputs,
               output_name="output_dir", what="training output folder", ignore=RESUMABLE_CHANGES) as claimed:
        return _train(model=model, data=data, output_dir=output_dir, backend=backend, lora=lora, options=options,
                      config=config, resume=resume, eval_data=eval_data, print_logs=print_logs,
                      run_config=run_config, claimed=claimed)


def _bar_only(trainer) -> None:
    """Keep the Trainer's progress bar, without the metrics line it prints at every logging step."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    class BarOnly(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            return None

    trainer.pop_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(BarOnly)


def _train(*, model, data, output_dir: Path, backend, lora, options, config, resume, eval_data, run_config, claimed,
           print_logs: bool = True) -> dict[str, Any]:
    """:func:`run_training` once the output folder is claimed (checked, locked; :mod:`savi_plugin.data.outputs`)."""
    from savi_plugin.models import load_backend
    from savi_plugin.training.trainer import trainer_class

    config_path = output_dir / CONFIG_FILE
    resume_from = _resume_argument(resume, output_dir)
    main_process = int(os.environ.get("RANK", "0") or 0) == 0
    if main_process:  # the mark (checked by claim) holds the configuration a later resume is compared with
        claimed.write_mark()
        (output_dir / REPORT_FILE).unlink(missing_ok=True)  # written again, last, when this run has finished
        if resume_from is None or not config_path.exists():
            write_json(config_path, run_config)
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
            _save_adapter_atomically(trainer, output_dir, model, backend)
    except Exception as exc:  # torch, safetensors and the OS each report a full disk their own way
        full = disk_error(exc, output_dir)
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
        "dataset": trainer.train_dataset.report(),
        "eval_dataset": trainer.eval_dataset.report() if eval_data is not None else None,
        "log_history": trainer.state.log_history, "seconds": round(time.time() - started, 2),
        "failed": failure,
    }
    if trainer.is_world_process_zero():  # paths as the file stores them (savi_plugin.data.paths' rule)
        stored = {k: path_for_file(report[k], output_dir / REPORT_FILE)
                  for k in ("model", "data", "output_dir", "adapter") if os.path.exists(report[k])}
        write_json(output_dir / REPORT_FILE, {**report, **stored})
    if failure is not None:
        raise TrainingFailedError(f"{output_dir}: {failure} (no adapter saved; report: {output_dir / REPORT_FILE})")
    return {k: report[k] for k in ("adapter", "loss_type", "reference", "packing", "global_step", "nonfinite_steps",
                                   "train_metrics", "eval_metrics", "seconds")} | {
        "pairs": report["dataset"]["pairs"], "skipped": report["dataset"]["skipped"],
        "report": str(output_dir / "train_report.json")}

"""``--dry-run`` of ``savi align`` and ``savi train``: build every step's real configuration objects, load nothing.

The generator with its options (and prompts), the training arguments (:class:`PreferenceConfig`, DeepSpeed config
included) with the peft ``LoraConfig``, and the lmms-eval command line are constructed exactly as the run would
construct them, so a recipe that a step would reject fails here with ``file: key.path: message``. Nothing is
written (no run folder is created) and no weights are read. The model is checked as the real run checks it before
it starts (:func:`~savi_plugin.config.checkpoint.check_model`: a local path that names no model folder, or a model
without a backend that is no model folder, is refused with the same line); a folder the loader refuses with a named
backend (an empty folder, one without ``config.json``: :func:`~savi_plugin.data.model_config.load_refusal`) is
listed with a note in the loader's words; other inputs that do not exist on this machine, or that the run would
refuse for their kind (a folder where a file is needed, a FIFO, ...), are listed with a note (:func:`_where`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from savi_plugin.config.checkpoint import check_model
from savi_plugin.config.sections import ALL_LM_LINEAR, Recipe
from savi_plugin.config.values import to_dict


def _where(path: str | Path | None, needs: str = "file or folder") -> str:
    """``path`` as a dry run lists an input, with a note where the real run would not read it as what it
    ``needs`` (``"file"``, ``"folder"`` or ``"file or folder"``): not found here (the run needs it), or what it is
    instead -- a folder where a file is needed, a file where a folder is, a FIFO or device (named, never opened),
    a broken link, one this user cannot read (the run refuses it). Every input every dry run lists is said here."""
    if path is None:
        return "not set"
    if "://" in str(path):
        return str(path)
    from savi_plugin.data.files import file_problem

    if Path(path).is_dir():
        problem = None if "folder" in needs else "is a folder, not a file"
        access = os.R_OK | os.X_OK
    else:
        problem = file_problem(path, needs)  # stat only: a FIFO is never opened
        if problem is not None and problem.startswith("file not found"):
            return f"{path} (not found here{problem.removeprefix('file not found')}; the real run needs it)"
        if problem is None and needs == "folder":
            problem = "is a file, not a folder"
        access = os.R_OK
    if problem is None and not os.access(path, access):
        problem = "cannot be read by this user (permission denied)"
    return str(path) if problem is None else f"{path} ({problem}; the real run refuses it)"


def _model_line(recipe: Recipe, model: str | Path, model_key: str = "model.path") -> str:
    m = recipe.model
    check_model(model, m.backend, model_key, recipe.source if model_key == "model.path" else None,
                backend_where="model.backend")  # the real run's check, before it starts
    backend = m.backend or "detected from config.json"
    from savi_plugin.data.model_config import load_refusal

    # a path here that the loader refuses (an empty folder, a folder with no config.json), in the loader's words
    refusal = None if "://" in str(model) or not Path(model).is_dir() else load_refusal(model, m.backend)
    shown = f"{model} ({refusal}; the real run refuses it)" if refusal else _where(model, "folder")
    return f"model: {shown}; backend {backend}, {m.dtype}, {m.num_frames} frames"


def _generate_lines(recipe: Recipe) -> list[str]:
    from savi_plugin.pipeline.align import generation_needs, generation_source
    from savi_plugin.pipeline.steps import plan_generate

    generator = plan_generate(recipe)
    g = recipe.generate
    key, path = generation_source(recipe, required=False)
    source = f"{key}={_where(path, generation_needs(recipe))}" if path else f"{key}: not set (the real run needs it)"
    return [f"generate: {g.generator} over {source}; batch {g.batch_size}, seed {g.seed}, limit {g.limit}",
            f"  options: {json.dumps(generator.describe(), sort_keys=True)}"]


def _train_lines(recipe: Recipe, output_dir: str | Path, notes: list[str]) -> list[str]:
    from savi_plugin.pipeline.steps import plan_train

    args, lora = plan_train(recipe, output_dir, hardware_notes=notes)
    targets = (f"every linear layer of the language model ({ALL_LM_LINEAR})" if lora.target_modules is None
               else str(lora.target_modules))
    per_device = args.per_device_train_batch_size * args.gradient_accumulation_steps
    params = json.dumps(to_dict(args.objective().params), sort_keys=True)
    return [
        f"train: {type(args).__name__} loss {args.loss_type} {params}, "
        f"lr {args.learning_rate} {to_dict(args.lr_scheduler_type)}, epochs {args.num_train_epochs}, max_steps "
        f"{args.max_steps}, batch {args.per_device_train_batch_size} x {args.gradient_accumulation_steps} "
        f"accumulation = {per_device} per device, {args.num_frames} frames ({args.frame_rule}), "
        f"reference {args.reference}, deepspeed {args.deepspeed or 'off'}, output {args.output_dir}",
        f"  lora: r {lora.r}, alpha {lora.lora_alpha}, dropout {lora.lora_dropout}, targets {targets}",
    ]


def dry_run_train(recipe: Recipe, *, model: str | Path, data: str | Path | None,
                  output_dir: str | Path, allow_incomplete_data: bool = False,
                  model_key: str = "model.path", check_output: bool = True) -> list[str]:
    """What ``savi train`` would run into ``output_dir`` (as :func:`~savi_plugin.pipeline.steps.train_output_dir`
    resolved it), as lines; raises ``ConfigError`` for anything the run would refuse, and the real run's refusal
    of pairs whose generation run is unfinished or one shard of several
    (:func:`savi_plugin.data.provenance.check_finished`), and an ``output_dir`` its run refuses
    (:func:`check_train_output`; ``check_output`` False: a run folder's step, which its command's claim asks)."""
    from savi_plugin.data.provenance import check_finished

    notes: list[str] = []
    if data and Path(data).is_file():
        why = check_finished(data, allow_incomplete=allow_incomplete_data, flag="--allow-incomplete-data",
                             use="train on what is there", whole=True)
        if why is not None:
            notes.append(f"{data}: {why}; the run trains on what is there (--allow-incomplete-data)")
    lines = [f"recipe: {recipe.source}", _model_line(recipe, model, model_key),
             f"data: {_where(data, 'file') if data else 'not set (data.pairs or --data; the real run needs it)'}"]
    lines += _train_lines(recipe, output_dir, notes)
    if check_output:
        check_train_output(recipe, model, data, output_dir)
    return lines + [f"note: {n}" for n in notes] + ["dry run: the train step's configuration builds; nothing loaded"]


def check_train_output(recipe: Recipe, model: str | Path, data: str | Path | None, output_dir: str | Path) -> None:
    """The train step's claim of ``output_dir`` as its run asks it (:func:`savi_plugin.training.run.run_training`),
    less the lock, the mark and the configuration: an output the run refuses is refused, with its line."""
    from savi_plugin.data.outputs import check_claim
    from savi_plugin.training.arguments import training_kwargs
    from savi_plugin.training.run import train_output_claim

    options = training_kwargs(recipe)
    if recipe.reference_model is not None:  # as train_step hands it to run_training
        options.update(reference="model", reference_model_path=str(recipe.reference_model))
    check_claim(output_dir, **train_output_claim(model, data, output_dir, options))


def dry_run_align(recipe: Recipe, run_dir: str | Path, iterations: int | None = None,
                  notes: list[str] = ()) -> list[str]:
    """What ``savi align`` would run in ``run_dir``, as lines; raises ``ConfigError`` for anything a step would
    refuse. ``notes``: what the caller found about this machine (e.g. eval data that cannot be had here)."""
    from savi_plugin.pipeline.evaluate import eval_command

    run_dir = Path(run_dir)
    notes = list(notes)
    model = recipe.model.path
    n = iterations or recipe.align.iterations
    lines = [f"recipe: {recipe.source}", f"run folder: {run_dir} ({n} iteration(s))", _model_line(recipe, model)]
    from savi_plugin.data.outputs import check_claim
    from savi_plugin.pipeline.align import align_output_claim

    check_claim(run_dir, **align_output_claim(recipe))  # the run's claim of its folder, less lock, mark, config
    lines += _generate_lines(recipe)
    lines += _train_lines(recipe, run_dir / "iter_0" / "train", notes)
    lines.append(f"merge: the adapter folded into {run_dir / 'iter_0' / 'model'}")
    if recipe.align.eval_every_iteration:
        command = eval_command(recipe, run_dir / "iter_0" / "model", run_dir / "iter_0" / "eval")
        lines.append("eval: " + " ".join(command[1:]))
        data_root = recipe.eval.data_root
        lines.append(f"  eval data: {_where(data_root, 'folder') if data_root else 'the hub (or a synthetic set for tiny://)'}")
    else:
        lines.append("eval: off (align.eval_every_iteration: false)")
    return lines + [f"note: {n}" for n in notes] + ["dry run: every step's configuration builds; nothing loaded"]


def resolved(recipe: Recipe) -> dict:
    """The recipe with every default filled in: sections, the generator's full options, and ``train`` as the
    training step receives it (PreferenceConfig's own fields' defaults, then the recipe's keys)."""
    import dataclasses

    from transformers import TrainingArguments

    from savi_plugin.training.arguments import config_class
    from savi_plugin.pipeline.steps import plan_generate, training_kwargs

    out = to_dict(recipe)
    options = plan_generate(recipe).describe()
    options.pop("prompts_version", None)  # the prompts' own version, not an option: the output loads as a recipe
    out["generate"]["options"] = options
    out["eval"]["num_frames"] = recipe.eval.num_frames or recipe.model.num_frames
    base = {f.name for f in dataclasses.fields(TrainingArguments)}
    own = {f.name: to_dict(f.default) for f in dataclasses.fields(config_class())
           if f.name not in base and f.default is not dataclasses.MISSING}
    out["train"] = {**own, **to_dict(training_kwargs(recipe))}
    first = ("description", "notes")
    return {**{k: out[k] for k in first}, **{k: v for k, v in out.items() if k not in first}}

"""The loss ablation: several preference losses trained on ONE pair file and evaluated side by side.

RRPO's loss ablation (arXiv 2504.12083, project page table "RRPO consistently outperforms existing alignment
methods": DPO, DPA, TDPO, DDPO, RRPO on LongVU, mean delta 0.7 / 0.7 / 0.8 / 0.9 / 2.5) trains each loss on the
same pairs with the same model, adapter and schedule. :func:`run_ablation` does that from one recipe:

* every run is the recipe with ``train.loss_type`` replaced (and a ``train.trainer`` that fixes another loss
  replaced by ``preference``); ``beta`` (the shared implicit-reward scale) is kept
  for every loss that declares it; ``alpha`` and ``loss_options`` belong to the recipe's own loss and are kept
  for it only, so each other loss starts from its own paper's defaults (DPA ``alpha`` 0.4, TDPO2 ``alpha`` 0.5,
  DDPO ``gamma`` 1.1; see each loss's docstring). ``LOSS:key.path=value`` overrides one run (``dpa:train.alpha=0.1``);
  ``key.path=value`` applies to all;
* each run trains into ``OUT/<loss>/train`` (a finished run is kept and not trained again: re-running resumes),
  is evaluated on held-out pairs when given (``eval_pairs``: implicit-reward accuracy and margin) and on the
  recipe's ``eval.tasks`` through lmms-eval unless ``benchmarks=False``; the base model is evaluated once
  (``OUT/base/eval``) so each row has its mean change over the tasks (the paper's delta);
* the table goes to ``OUT/ablation.json`` and ``OUT/ablation.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from savi_plugin.config.values import ConfigError
from savi_plugin.data.fingerprint import json_normal

log = logging.getLogger(__name__)

#: RRPO's ablation table, in its order
PAPER_LOSSES = ("dpo", "dpa", "tdpo", "ddpo", "rrpo")
#: ``train`` keys that belong to the recipe's own loss only
OWN_LOSS_KEYS = ("alpha", "loss_options", "label_smoothing", "length_normalize")
SUMMARY = "summary.json"


def split_overrides(overrides: list[str], losses: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """``key=value`` overrides for every run, and ``LOSS:key=value`` ones per loss."""
    from savi_plugin.recipe import TypedOverride, override_source

    shared: list[str] = []
    per_loss: dict[str, list[str]] = {loss: [] for loss in losses}
    for text in overrides:
        head, sep, rest = text.partition(":")
        if sep and "=" not in head:
            if head not in per_loss:
                raise ConfigError(head, f"{override_source(text)} names a loss that is not in --losses "
                                        f"({', '.join(losses)})")
            per_loss[head].append(TypedOverride(rest, text))  # an error quotes it with its loss, as typed
        else:
            shared.append(text)
    return shared, per_loss


def loss_recipe(recipe_ref: str, loss: str, shared: list[str], own: list[str], out: Path):
    """The recipe of one run: the recipe with ``loss``, its own hyper-parameters only, its output folder."""
    from savi_plugin.recipe import TypedOverride, load_recipe

    base = load_recipe(recipe_ref, shared)
    # made from --losses and --out: an error names the flag the user typed, not an override they never wrote
    overrides = [TypedOverride(f"train.loss_type={loss}", loss, shown=f"--losses {loss!r}"),
                 TypedOverride(f"train.output_dir={out / loss / 'train'}", str(out), shown=f"--out {str(out)!r}")]
    if base.train.get("loss_type", "rrpo") != loss:
        overrides += [f"train.{key}=null" for key in OWN_LOSS_KEYS if base.train.get(key) is not None]
    if base.train.get("trainer"):
        from savi_plugin.training.trainer import trainer_class

        fixed = trainer_class(base.train["trainer"]).fixed_loss_type
        if fixed is not None and fixed != loss:  # a trainer that fixes another loss would train that one
            overrides.append("train.trainer=preference")
    recipe = load_recipe(recipe_ref, [*shared, *overrides, *own])
    # the row is named by the loss: its own overrides may set its hyper-parameters, never which loss it trains or
    # where its run goes
    trainer = recipe.train.get("trainer")
    fixed = None
    if trainer:
        from savi_plugin.training.trainer import trainer_class

        fixed = trainer_class(trainer).fixed_loss_type
    for key, expected, actual in (("train.loss_type", loss, recipe.train.get("loss_type")),
                                  ("train.trainer", loss, fixed if fixed is not None else loss),
                                  ("train.output_dir", str(out / loss / "train"), str(recipe.train.get("output_dir")))):
        if actual != expected:
            raise ConfigError(f"{loss}:{key}", f"the {loss} run trains {loss} into {out / loss / 'train'}; its own "
                                               f"overrides set its hyper-parameters, not this (the table would name "
                                               f"one run by another)")
    return recipe


def plan_ablation(recipe_ref: str, losses: list[str], out: str | Path, overrides: list[str] | None = None) -> dict:
    """Each loss's checked recipe (a bad loss name or value is a ``ConfigError`` before anything runs)."""
    from savi_plugin import registry

    out = Path(out)
    if not losses:
        raise ConfigError("--losses", "no loss given")
    if len(set(losses)) != len(losses):
        raise ConfigError("--losses", f"a loss is listed twice: {', '.join(losses)}")
    unknown = [loss for loss in losses if loss not in registry.available(registry.LOSSES)]
    if unknown:
        raise ConfigError("--losses", f"not registered: {', '.join(unknown)}; available: "
                                      f"{', '.join(registry.available(registry.LOSSES))}")
    shared, per_loss = split_overrides(list(overrides or []), losses)
    return {loss: loss_recipe(recipe_ref, loss, shared, per_loss[loss], out) for loss in losses}


def ablation_inputs(first, data, eval_pairs) -> dict[str, Any]:
    """Every file or folder an ablation reads (its ``--out`` may be none of them, nor lie inside one)."""
    return {"the pairs": data, "the eval pairs": eval_pairs, "the model": first.model.path,
            "the recipe": first.source or None, "the eval data root (eval.data_root)": first.eval.data_root or None}


def ablation_output_claim(first, data, eval_pairs, losses) -> dict[str, Any]:
    """How ``savi ablate`` claims its ``--out`` for ``losses`` (:func:`savi_plugin.data.outputs.claim`'s arguments,
    less the configuration and what it may change), asked by the run and, through
    :func:`savi_plugin.data.outputs.check_claim`, by its dry run; ``first``: the first loss's recipe."""
    from savi_plugin.training.arguments import training_kwargs
    from savi_plugin.training.run import pair_video_paths

    return dict(command="savi ablate", folder=True, inputs=ablation_inputs(first, data, eval_pairs),
                output_name="--out", what="ablation folder", steps=ablation_steps(losses),
                input_files={"a video the pairs name": pair_video_paths(data, training_kwargs(first)) if data else []})


def dry_run_ablation(recipe_ref: str, losses: list[str], out: str | Path, pairs: str | Path | None,
                     overrides: list[str] | None = None, eval_pairs: str | Path | None = None,
                     benchmarks: bool = True) -> list[str]:
    """What :func:`run_ablation` would run, as lines: each run's training configuration, built, nothing loaded."""
    from savi_plugin.pipeline.dry_run import _where, dry_run_train
    from savi_plugin.pipeline.evaluate import eval_command

    from savi_plugin.data.outputs import check_claim, read_mark

    out = Path(out)
    plans = plan_ablation(recipe_ref, losses, out, overrides)
    first = next(iter(plans.values()))
    # the run's claim of --out as the run asks it, less lock, mark and configuration: a dry run approved an --out
    # the run refused (its place, a user's files in it)
    check_claim(out, **ablation_output_claim(first, pairs or first.data.pairs, eval_pairs, losses))
    _check_extends(out, _stored_runs(read_mark(out, True) if out.is_dir() else None), plans)  # as the run refuses
    lines = [f"ablation: {', '.join(losses)} on {pairs or 'data.pairs of the recipe'} -> {out}"]
    for loss, recipe in plans.items():
        lines.append(f"[{loss}]")
        lines += ["  " + line for line in dry_run_train(recipe, model=recipe.model.path,
                                                        data=pairs or recipe.data.pairs,
                                                        output_dir=recipe.train["output_dir"],
                                                        check_output=False)[1:-1]]
    first = next(iter(plans.values()))
    if eval_pairs:
        lines.append(f"eval pairs (implicit-reward accuracy of each adapter): {_where(eval_pairs, 'file')}")
    if benchmarks:
        command = eval_command(first, first.model.path, out / "<loss>" / "eval", adapter=out / "<loss>" / "train")
        lines.append("eval (base model once, then each adapter): " + " ".join(command[1:]))
    else:
        lines.append("eval: benchmarks off")
    return lines + [f"table: {out / 'ablation.json'}, {out / 'ablation.md'}",
                    "dry run: every run's configuration builds; nothing loaded"]


def run_ablation(recipe_ref: str, losses: list[str], out: str | Path, *, pairs: str | Path | None = None,
                 overrides: list[str] | None = None, eval_pairs: str | Path | None = None, benchmarks: bool = True,
                 evaluate: Callable[..., dict] | None = None, print_logs: bool = False) -> dict:
    """Train each loss on ``pairs`` and evaluate it; returns (and writes) the table.

    Args:
        recipe_ref: a shipped recipe name or a YAML path.
        losses: registered loss names (:data:`PAPER_LOSSES` for RRPO's table).
        out: the ablation folder.
        pairs: the one preference file (default: the recipe's ``data.pairs``).
        overrides: ``key.path=value`` for every run, ``LOSS:key.path=value`` for one.
        eval_pairs: held-out pairs scored after training (``eval_rewards/accuracies``, ``eval_rewards/margins``).
        benchmarks: evaluate the base model and each adapter on the recipe's ``eval.tasks`` (lmms-eval).
        evaluate: ``evaluate(recipe, model, out_dir, adapter=None) -> {task: {metric: value}}`` (default
            :func:`savi_plugin.pipeline.evaluate.evaluate_step`).
    """
    from savi_plugin.config.checkpoint import check_model

    out = Path(out)
    plans = plan_ablation(recipe_ref, losses, out, overrides)
    first = next(iter(plans.values()))
    data = pairs or first.data.pairs
    if not data:
        raise ConfigError("data.pairs", "required (or --pairs)", first.source)
    check_model(first.model.path, first.model.backend, "model.path", first.source)
    from savi_plugin.training.arguments import check_trainable_here

    for recipe in plans.values():  # what this machine cannot train (train.bf16 without a GPU): before the claim
        check_trainable_here(recipe, recipe.train["output_dir"])
    if benchmarks and evaluate is None:
        from savi_plugin.pipeline.evaluate import evaluate_step as evaluate
    from savi_plugin.data.identity import folder_identity, input_identity, model_identity
    from savi_plugin.data.outputs import claim, read_mark
    from savi_plugin.data.paths import run_folder
    from savi_plugin.data.provenance import check_finished
    from savi_plugin.data.watched import WatchedFiles
    from savi_plugin.recipe import recipe_identity
    from savi_plugin.training.arguments import training_kwargs
    from savi_plugin.training.run import pair_videos_identity

    for pair_file in (data, eval_pairs):  # an unfinished generation run is not trained or judged on
        if pair_file:
            check_finished(pair_file, whole=True)
    # new, or an ablation folder of the same runs and pairs (more losses extend it); never an input. Each run is
    # its resolved recipe by content (recipe_identity): the same ablation from another working folder, or with
    # another spelling of the same files, continues; another file content, value or model is refused by key path
    # the eval data root's files are watched from before the runs' identities read them: every lmms-eval run of the
    # ablation (the base model's, each loss's) checks them before it starts and after it ends (savi_video_command),
    # so the losses and the base they are compared with are scored on the same data
    eval_watch = WatchedFiles("a file of the eval data root (eval.data_root)")
    for root in {recipe.eval.data_root for recipe in plans.values()} if benchmarks else ():
        if root:
            folder_identity(root, watch=eval_watch)
    runs = {loss: recipe_identity(recipe) for loss, recipe in plans.items()}
    # each video's signature is kept as its identity read it: a video changed between (or during) the runs stops
    # the ablation (data/watched.py), so every loss trains on the same videos
    watch = WatchedFiles("a video the pairs name")
    config = {"runs": runs, "pairs": input_identity(data),
              "eval_pairs": input_identity(eval_pairs) if eval_pairs else None, "benchmarks": benchmarks,
              "identity": {"model": model_identity(first.model.path),
                           "videos": pair_videos_identity(data, training_kwargs(first), watch=watch)}}
    # a loss run only now is not compared (it extends the ablation); one run before but not now is refused
    # (_check_extends): the table is every stored loss's
    others = tuple(f"runs.{loss}" for loss in set(_stored_runs(read_mark(out, True) if out.is_dir() else None))
                   ^ set(runs))
    with claim(out, config=config, ignore=others, **ablation_output_claim(first, data, eval_pairs, runs)) as claimed, \
            watch, eval_watch:
        _check_extends(out, _stored_runs(claimed.previous), runs)
        claimed.config["runs"] = {**_stored_runs(claimed.previous), **runs}
        claimed.steps = ablation_steps(claimed.config["runs"])  # every loss run so far is a step of the folder
        claimed.write_mark()
        with run_folder(out):  # every path its files store to its own files is relative: it moves whole
            return _run(plans, first, data, out, eval_pairs, benchmarks, evaluate, print_logs)


def ablation_steps(losses) -> dict:
    """What an ablation writes in its folder (:func:`savi_plugin.data.outputs.claim`'s ``steps``): a folder per
    loss and one for the base model, each with its kept summary, its training run and its evaluation; the table;
    the synthetic eval data of a ``tiny://`` model."""
    from savi_plugin.data.outputs import KEPT, OWN

    return {"base": {SUMMARY: KEPT, "eval": OWN}, **{loss: {SUMMARY: KEPT, "train": "savi train", "eval": OWN}
                                                     for loss in losses},
            "ablation.json": OWN, "ablation.md": OWN, "eval_data": OWN, "hf_home": OWN}


def _check_extends(out: Path, stored: dict, runs: dict) -> None:
    """Refuse a re-run into ``out`` that leaves out a loss it holds (README "Guarantees": only extending a run,
    ``savi ablate`` with more losses, is allowed): its table would be written without the finished losses' rows.
    The same losses in another order, or more, go on. Asked by the run on its claim's previous mark and by its dry
    run (:func:`dry_run_ablation`) on the mark as it is, so a dry run refuses what the run refuses.

    Raises:
        ForeignOutputError: naming the losses it would drop and the ``--losses`` that continues the ablation.
    """
    from savi_plugin.data.outputs import ForeignOutputError

    dropped = [loss for loss in stored if loss not in runs]
    if dropped:
        every = ",".join([*runs, *dropped])
        raise ForeignOutputError(
            f"{out}: --out holds an ablation of {', '.join(stored)}; --losses leaves out {', '.join(dropped)}, and "
            f"its table would lose their rows (an ablation is only extended): give --losses {every} (and any more) "
            f"to continue it, or choose another --out")


def _stored_runs(mark: dict | None) -> dict:
    """The runs (``{loss: recipe identity}``) an ablation folder's mark records ({} for none)."""
    runs = ((mark or {}).get("config") or {}).get("runs")
    return runs if isinstance(runs, dict) else {}


def _run(plans, first, data, out: Path, eval_pairs, benchmarks: bool, evaluate, print_logs: bool) -> dict:
    """:func:`run_ablation` once its folder is claimed."""
    from savi_plugin.data.outputs import write_json, write_text
    from savi_plugin.data.paths import path_for_file
    from savi_plugin.training.run import run_training

    rows: dict[str, dict[str, Any]] = {}
    base_scores = None
    if benchmarks:
        base_scores = _cached(out / "base" / SUMMARY, lambda: {"eval": evaluate(first, first.model.path,
                                                                                out / "base" / "eval")})["eval"]
    for loss, recipe in plans.items():
        from savi_plugin.training.arguments import training_kwargs

        def train_and_evaluate(recipe=recipe, loss=loss):
            summary = run_training(
                model=str(recipe.model.path), data=str(data), output_dir=recipe.train["output_dir"],
                backend=recipe.model.backend, lora=recipe.lora.peft_kwargs(), training=training_kwargs(recipe),
                reference_model=recipe.reference_model, eval_data=str(eval_pairs) if eval_pairs else None,
                print_logs=print_logs)
            if benchmarks:
                summary["eval"] = evaluate(recipe, recipe.model.path, out / loss / "eval", adapter=summary["adapter"])
            return summary

        log.info("ablation: %s", loss)
        settings = json_normal({"training": {k: v for k, v in training_kwargs(recipe).items() if k != "output_dir"},
                            "lora": recipe.lora.peft_kwargs(), "num_frames": recipe.model.num_frames})
        rows[loss] = _cached(out / loss / SUMMARY, train_and_evaluate, loss, settings)
    table = ablation_table(rows, base_scores)
    write_json(out / "ablation.json", {"pairs": path_for_file(data, out / "ablation.json"),
                                       "eval_pairs": path_for_file(eval_pairs, out / "ablation.json") if eval_pairs
                                       else None, "base": base_scores, **table}, indent=1)
    write_text(out / "ablation.md", markdown(table))
    return table


def _cached(path: Path, compute: Callable[[], dict], row: str = "base", settings: dict | None = None) -> dict:
    """``compute()``, kept at ``path`` (:mod:`savi_plugin.data.kept`) for its ``row`` (a loss, or ``base``) and the
    ``settings`` its run trains with, with the content of the training run's report and adapter it was made
    from; a kept summary is returned instead (a re-run resumes) when it is still that row's own.

    Raises:
        RunError: a kept summary edited since it was written, made for another row or other settings (folders
            moved, swapped, or copied from another ablation), or whose run's report or adapter changed or is gone
            since (the run was extended or trained again), naming the folder to remove.
    """
    from savi_plugin.data.kept import read_kept, write_kept
    from savi_plugin.data.paths import paths_for_file

    slot = {"row": row, "settings": paths_for_file(settings, path) if settings is not None else None}
    if path.is_file():
        stored = read_kept(path, slot=slot, written_by="savi ablate", remedy=f"remove {path.parent} to run it again")
        log.info("ablation: %s exists; kept", path)
        return stored
    result = compute()
    sources = {name: (result[key], kind) for name, key, kind in (("run report", "report", "file"),
                                                                 ("adapter", "adapter", "model"))
               if isinstance(result.get(key), str)}
    write_kept(path, paths_for_file(result, path), slot=slot, sources=sources)  # README "Paths, everywhere"
    return result


def _first_metric(scores: dict) -> float | None:
    numbers = [v for v in scores.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return float(numbers[0]) if numbers else None


def ablation_table(rows: dict[str, dict], base: dict | None) -> dict:
    """``{"columns": [...], "rows": [{loss, pairs, skipped, train_loss, eval_accuracy, eval_margin, <task>...,
    mean_delta}]}``: one row per loss; a task's value is its first numeric metric."""
    tasks = sorted({task for row in rows.values() for task in (row.get("eval") or {})} | set(base or {}))
    out_rows = []
    for loss, row in rows.items():
        metrics = row.get("eval_metrics") or {}
        entry = {"loss": loss, "pairs": row.get("pairs"), "skipped": row.get("skipped"),
                 "train_loss": (row.get("train_metrics") or {}).get("train_loss"),
                 "eval_accuracy": metrics.get("eval_rewards/accuracies"),
                 "eval_margin": metrics.get("eval_rewards/margins")}
        deltas = []
        for task in tasks:
            value = _first_metric((row.get("eval") or {}).get(task, {}))
            entry[task] = value
            before = _first_metric((base or {}).get(task, {}))
            if value is not None and before is not None:
                deltas.append(value - before)
        entry["mean_delta"] = sum(deltas) / len(deltas) if deltas else None
        out_rows.append(entry)
    columns = ["loss", "pairs", "skipped", "train_loss", "eval_accuracy", "eval_margin", *tasks, "mean_delta"]
    return {"columns": columns, "rows": out_rows,
            "base_row": {"loss": "base", **{t: _first_metric(base[t]) for t in tasks if t in base}} if base else None}


def markdown(table: dict) -> str:
    """The table as Markdown (numbers to 4 decimals; ``-`` where a value was not measured)."""
    def cell(value):
        if value is None:
            return "-"
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    columns = table["columns"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    rows = ([table["base_row"]] if table.get("base_row") else []) + table["rows"]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"

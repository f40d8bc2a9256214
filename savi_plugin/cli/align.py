"""``savi align RECIPE``: generate -> train -> merge -> eval for N iterations in one run folder (resumable).

``--dry-run`` builds every step's configuration (generator and options, training arguments and LoRA, the
lmms-eval command line) and prints it, loading and writing nothing.
"""

from __future__ import annotations

import json
import time

from savi_plugin.cli import chose_output, refuse_flag_and_override, say
from savi_plugin.config.sections import AlignSection
from savi_plugin.config.values import add_flag


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("align", help="iterative self-alignment: generate, train, eval, repeat")
    parser.add_argument("recipe", metavar="RECIPE", help="a shipped recipe name or a YAML path")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value")
    parser.add_argument("--out", default=None, help="run folder (default: savi_runs/align-<recipe>-<time>); "
                                                    "re-run with the same folder to resume")
    add_flag(parser, "--iterations", AlignSection, "iterations", default=None,
             help="generate -> train -> merge -> eval rounds (default: the recipe's align.iterations)")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the recipe and build every step's configuration; load and write nothing")
    parser.set_defaults(func=run)


def run(args) -> int:
    from savi_plugin.recipe import load_recipe

    refuse_flag_and_override(args.overrides, {"--iterations": ("align.iterations", args.iterations)})
    recipe = load_recipe(args.recipe, args.overrides)
    if recipe.train.get("deepspeed"):  # building the training arguments starts DeepSpeed: one process without
        from savi_plugin.launch import (
            single_process_env,  # a launcher, not MPI discovery (mpi4py)
        )

        single_process_env()
    out = args.out or chose_output(f"savi_runs/align-{recipe.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    notes: list[str] = []
    if recipe.align.eval_every_iteration:  # an unknown task name stops here, not after a round of training
        from savi_plugin.eval.task_names import check_task_names

        check_task_names(list(recipe.eval.tasks), "eval.tasks", recipe.source)
        from savi_plugin.eval.hub_check import EvalDataUnavailableError
        from savi_plugin.pipeline.evaluate import check_eval_data

        try:  # eval data that cannot be had here: the run stops before any step (a dry run notes it)
            check_eval_data(recipe)
        except EvalDataUnavailableError as exc:
            if not args.dry_run:
                raise
            notes.append(f"the real run stops here before any step: {exc}")
    from savi_plugin.data.paths import (
        check_data_root,  # a data root that is not there: before any step runs
    )

    check_data_root(recipe.data.data_root, "data.data_root")
    if recipe.align.eval_every_iteration:  # not found only after generation, training and merge otherwise
        check_data_root(recipe.eval.data_root, "eval.data_root")
    if args.dry_run:
        from savi_plugin.pipeline.dry_run import dry_run_align

        say(*dry_run_align(recipe, out, iterations=args.iterations, notes=notes))
        return 0
    from savi_plugin.config.checkpoint import check_model
    from savi_plugin.pipeline.align import run_align
    from savi_plugin.training.arguments import check_trainable_here

    check_model(recipe.model.path, recipe.model.backend, "model.path", recipe.source)
    check_trainable_here(recipe, f"{out}/iter_0/train")  # fails before the run
    manifest = run_align(recipe, out, iterations=args.iterations)
    from savi_plugin.launch import current

    if not current().is_main:  # one summary per run, printed by rank 0
        return 0
    from savi_plugin.eval.compare import format_delta

    for it in manifest["iterations"]:
        counts = it.get("data_report", {}).get("counts", {})
        ev = it.get("eval", {})
        deltas = ev.get("vs_base") or {}
        shown = "; ".join(f"{task} {format_delta(d)}" for task, d in deltas.items()) or json.dumps(ev)
        say(f"iteration {it['iteration']}: pairs {counts.get('pairs', '?')}, adapter {it.get('adapter')}, "
            f"eval vs base (paired bootstrap 95% CI): {shown}" if deltas else
            f"iteration {it['iteration']}: pairs {counts.get('pairs', '?')}, adapter {it.get('adapter')}, eval {shown}")
    say(f"manifest: {out}/manifest.json")
    return 0

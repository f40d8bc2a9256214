"""``savi train RECIPE [key.path=value ...]``: preference training (RRPO / DPO / ...) from a recipe.

Multi-GPU: launch the same command under torchrun, accelerate or deepspeed, e.g.
``torchrun --nproc_per_node 4 -m savi_plugin train llava_video_7b_rrpo_16f``.
``--dry-run`` builds the training arguments and LoRA configuration and prints them, loading nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from savi_plugin.cli import refuse_flag_and_override, say


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train on preference pairs as a recipe says")
    parser.add_argument("recipe", metavar="RECIPE", help="a shipped recipe name or a YAML path")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value")
    parser.add_argument("--model", help="model path (default: the recipe's model.path)")
    parser.add_argument("--data", help="preference JSONL (default: the recipe's data.pairs)")
    parser.add_argument("--output-dir", help="default: the recipe's train.output_dir")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the last checkpoint of this run even when it finished (e.g. after "
                             "raising train.max_steps); an unfinished run continues without it")
    parser.add_argument("--allow-incomplete-data", action="store_true",
                        help="train on pairs whose savi generate run has not finished (refused by default)")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the recipe and build the step's configuration; load and write nothing")
    parser.set_defaults(func=run)


def run(args) -> int:
    from savi_plugin.config.checkpoint import check_model
    from savi_plugin.config.values import ConfigError
    from savi_plugin.errors import ConfigurationError
    from savi_plugin.pipeline.steps import train_output_dir
    from savi_plugin.recipe import load_recipe
    from savi_plugin.training.arguments import check_trainable_here

    refuse_flag_and_override(args.overrides, {"--model": ("model.path", args.model),
                                              "--data": ("data.pairs", args.data),
                                              "--output-dir": ("train.output_dir", args.output_dir)})
    recipe = load_recipe(args.recipe, args.overrides)
    if recipe.train.get("deepspeed"):  # building the training arguments starts DeepSpeed: one process without
        from savi_plugin.launch import (
            single_process_env,  # a launcher, not MPI discovery (mpi4py)
        )

        single_process_env()
    model = args.model or recipe.model.path
    model_key = "--model" if args.model else "model.path"  # where a refused model is said
    data = args.data or recipe.data.pairs
    output_dir = train_output_dir(recipe, args.output_dir)
    from savi_plugin.data.outputs import check_distinct

    check_distinct(output_dir, {"the recipe": recipe.source or None}, output_name="--output-dir", folder=True)
    if args.dry_run:  # asks the run's place question too (dry_run_train): it refuses what the run refuses
        from savi_plugin.pipeline.dry_run import dry_run_train

        say(*dry_run_train(recipe, model=model, data=data, output_dir=output_dir,
                           allow_incomplete_data=args.allow_incomplete_data, model_key=model_key))
        return 0
    if not data:
        raise ConfigError("data.pairs", "required (or --data)", recipe.source)
    check_model(model, recipe.model.backend, model_key, recipe.source if not args.model else None)
    check_trainable_here(recipe, output_dir)  # what this machine lacks fails now
    if not Path(data).is_file():  # named by the flag or key that gave it: after the recipe's checks, before loading
        from savi_plugin.data.files import file_problem

        problem = file_problem(data, "file")
        what = "not found" if problem == "file not found" else problem.removesuffix(", not a file")
        if args.data:
            raise ConfigurationError(f"{data}: --data {what}; give a preference JSONL")
        raise ConfigError("data.pairs", f"{data}: {what}; give a preference JSONL (or --data)", recipe.source)
    from savi_plugin.pipeline.steps import train_step

    summary = train_step(recipe, model=model, data=data, output_dir=output_dir, resume=args.resume,
                         allow_incomplete_data=args.allow_incomplete_data)
    from savi_plugin.launch import current

    if current().is_main:  # one summary per run, not one per rank
        print(json.dumps(summary, indent=1, default=str))
    return 0

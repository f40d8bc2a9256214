"""``savi train RECIPE [key.path=value ...]``: preference training (RRPO / DPO / ...) from a recipe.

Multi-GPU: launch the same command under torchrun, accelerate or deepspeed, e.g.
``torchrun --nproc_per_node 4 -m savi_plugin train llava_video_7b_rrpo_16f``.
"""

from __future__ import annotations

import json
import sys


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train on preference pairs as a recipe says")
    parser.add_argument("recipe", help="a shipped recipe name or a YAML path")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value")
    parser.add_argument("--model", help="model path (default: the recipe's model.path)")
    parser.add_argument("--data", help="preference JSONL (default: the recipe's data.pairs)")
    parser.add_argument("--output-dir", help="default: the recipe's train.output_dir")
    parser.add_argument("--resume", action="store_true", help="resume from the last checkpoint in the output dir")
    parser.set_defaults(func=run)


def run(args) -> int:
    from savi_plugin.pipeline.steps import train_step
    from savi_plugin.recipe import RecipeError, load_recipe

    try:
        recipe = load_recipe(args.recipe, args.overrides)
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    data = args.data or recipe.get("data", {}).get("pairs")
    output_dir = args.output_dir or recipe.get("train", {}).get("output_dir")
    if not data or not output_dir:
        print("error: need data.pairs and train.output_dir in the recipe, or --data / --output-dir", file=sys.stderr)
        return 1
    summary = train_step(recipe, model=args.model or recipe["model"]["path"], data=data,
                         output_dir=output_dir, resume=args.resume)
    print(json.dumps(summary, indent=1, default=str))
    return 0

"""``savi align RECIPE``: generate -> train -> merge -> eval for N iterations in one run folder (resumable)."""

from __future__ import annotations

import json
import sys
import time


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("align", help="iterative self-alignment: generate, train, eval, repeat")
    parser.add_argument("recipe", help="a shipped recipe name or a YAML path")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value")
    parser.add_argument("--out", default=None, help="run folder (default: savi_runs/align-<recipe>-<time>); "
                                                    "re-run with the same folder to resume")
    parser.add_argument("--iterations", type=int, default=None, help="default: the recipe's align.iterations")
    parser.set_defaults(func=run)


def run(args) -> int:
    from savi_plugin.pipeline.align import run_align
    from savi_plugin.recipe import RecipeError, load_recipe

    try:
        recipe = load_recipe(args.recipe, args.overrides)
    except RecipeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = args.out or f"savi_runs/align-{args.recipe.removesuffix('.yaml').split('/')[-1]}-{time.strftime('%Y%m%d-%H%M%S')}"
    manifest = run_align(recipe, out, iterations=args.iterations)
    for it in manifest["iterations"]:
        counts = it.get("data_report", {}).get("counts", {})
        print(f"iteration {it['iteration']}: pairs {counts.get('pairs', '?')}, adapter {it.get('adapter')}, "
              f"eval {json.dumps(it.get('eval', {}))}")
    print(f"manifest: {out}/manifest.json")
    return 0

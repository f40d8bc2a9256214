"""``savi demo``: the embedded default — the whole loop on CPU with no network (see :mod:`savi_plugin.demo`)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from savi_plugin.cli import chose_output, say
from savi_plugin.config.values import AtLeast, Range, add_flag, checked


@dataclass
class DemoOptions:
    """``savi demo``'s checked flags."""

    seeds: int = checked(1, AtLeast(1), Range(high=1000), help="run the demo N times (seeds train.seed .. +N-1) and "
                         "report the mean and spread over seeds (1: one run)")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run the whole RRPO loop on a tiny model and synthetic videos (CPU)")
    parser.add_argument("--out", default=None, help="run folder (default: savi_runs/demo-<time>)")
    parser.add_argument("--recipe", default=None, help="a recipe name or file (default: the shipped tiny_demo)")
    add_flag(parser, "--seeds", DemoOptions, "seeds", metavar="N")
    from savi_plugin.demo.settings import DemoSettings

    settings = ", ".join(f.name for f in dataclasses.fields(DemoSettings))
    parser.add_argument("overrides", nargs="*", metavar="key.path=value",
                        help=f"recipe overrides; demo.KEY=VALUE sets the demo's own settings ({settings})")
    parser.set_defaults(func=run)


def run(args) -> int:
    import os

    import torch

    from savi_plugin.demo.report import format_table
    from savi_plugin.demo.run import run_demo
    from savi_plugin.recipe import shipped_recipes_dir

    if "OMP_NUM_THREADS" not in os.environ:
        # The tiny model's matrices are too small to gain from intra-op threads, and on a machine whose cores
        # are busy, threads that wait for each other make every step many times slower.
        torch.set_num_threads(1)

    out = args.out or chose_output(f"savi_runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    # left out, the recipe is the shipped file itself: a tiny_demo.yaml of the working folder makes no name
    # ambiguous that the user did not type
    recipe = args.recipe or str(shipped_recipes_dir() / "tiny_demo.yaml")
    if args.seeds > 1:
        from savi_plugin.demo.seeds import format_seed_table, run_seeds

        summary = run_seeds(out, recipe, args.overrides, seeds=args.seeds)
        print()
        print(format_seed_table(summary, summary["time_s"]))
        say(f"results: {out}/results.json; plot: {out}/demo.png")
        return 0
    results = run_demo(out, recipe, args.overrides)
    print()
    print(format_table(results))
    return 0

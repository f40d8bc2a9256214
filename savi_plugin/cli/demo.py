"""``savi demo``: the embedded default — the whole loop on CPU with no network (see savi_plugin.pipeline.demo)."""

from __future__ import annotations

import time


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run the whole RRPO loop on a tiny model and synthetic videos (CPU)")
    parser.add_argument("--out", default=None, help="run folder (default: savi_runs/demo-<time>)")
    parser.add_argument("--recipe", default="tiny_demo")
    parser.add_argument("overrides", nargs="*", metavar="key.path=value")
    parser.set_defaults(func=run)


def run(args) -> int:
    import torch

    from savi_plugin.pipeline.demo import format_table, run_demo

    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = args.out or f"savi_runs/demo-{time.strftime('%Y%m%d-%H%M%S')}"
    results = run_demo(out, args.recipe, args.overrides)
    print()
    print(format_table(results))
    return 0

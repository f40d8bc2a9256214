"""``savi bench train-step|trl|decode|generation|gpu|all``: the performance benchmarks (see benchmarks/README.md).

Every benchmark lives in :mod:`savi_plugin.bench` and ships with the package: users run it to check the
performance claims on their own hardware (``savi bench gpu`` is the first check on a GPU), so none of them
needs a source checkout. ``benchmarks/*.py`` in a checkout are thin scripts over the same functions.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from savi_plugin.cli import say

#: sub-command -> module in savi_plugin.bench
MODULES = {"train-step": "train_step", "trl": "trl_dpo", "decode": "decode", "generation": "generation",
           "gpu": "gpu"}
HELP = {
    "train-step": "RRPO step time and peak memory: ours vs an official-style baseline (long video)",
    "trl": "DPO seconds per pair: ours vs TRL's DPOTrainer at equal loss (needs trl)",
    "decode": "video decoding frames/s: decord vs PyAV",
    "generation": "VideoSAVi pairs/s with and without the video prefix reused (equal greedy outputs)",
    "gpu": "the first check on a GPU: 7B shapes, random weights, bf16 (a scaled-down shape runs on CPU)",
    "all": "every CPU benchmark above with its default settings",
}
#: what `savi bench all` runs (the GPU check needs a GPU for its real shape)
ALL = ("train-step", "trl", "decode", "generation")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="performance benchmarks (ratios measured in the same run)")
    sub = parser.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    for name, module in MODULES.items():
        bench = sub.add_parser(name, help=HELP[name], description=HELP[name])
        importlib.import_module(f"savi_plugin.bench.{module}").build_parser(bench)
        bench.set_defaults(func=run_one, bench_module=module)
    every = sub.add_parser("all", help=HELP["all"], description=HELP["all"])
    every.add_argument("--work-dir", help="where each benchmark builds its inputs (default: temporary folders)")
    every.set_defaults(func=run_all)


def run_one(args) -> int:
    """Run one benchmark module with the parsed options."""
    module = importlib.import_module(f"savi_plugin.bench.{args.bench_module}")
    options = {k: v for k, v in vars(args).items() if k not in ("func", "bench_module", "bench_command", "command",
                                                                 "verbose")}
    return module.main(_to_argv(module.build_parser(), options))


def _to_argv(parser: argparse.ArgumentParser, options: dict) -> list[str]:
    from savi_plugin.bench.measure import forward_args

    return forward_args(parser, argparse.Namespace(**{**vars(parser.parse_args([])), **options}))


def run_all(args) -> int:
    """Every CPU benchmark with its defaults; TRL is skipped (and said so) when it is not installed."""
    from savi_plugin.bench.trl_dpo import trl_version

    status = 0
    for name in ALL:
        module_name = MODULES[name]
        say("", f"== savi bench {name}")
        sys.stdout.flush()
        if name == "trl" and trl_version() is None:
            say("skipped: trl is not installed (pip install 'savi-plugin[bench]')")
            continue
        module = importlib.import_module(f"savi_plugin.bench.{module_name}")
        argv = ["--work-dir", os.path.join(args.work_dir, module_name)] if args.work_dir else []
        status = max(status, module.main(argv))
    return status

"""``savi bench train-step|trl|decode|generation|all``: the performance benchmarks (see benchmarks/README.md).

The benchmark logic lives in :mod:`savi_plugin.bench` (installed with the package); ``benchmarks/*.py`` in a
source checkout are thin scripts over the same functions. The generation benchmark is
``benchmarks/generation_throughput.py``, which only exists in a source checkout.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

#: sub-command -> module in savi_plugin.bench
MODULES = {"train-step": "train_step", "trl": "trl_dpo", "decode": "decode"}
HELP = {
    "train-step": "RRPO step time and peak memory: ours vs an official-style baseline (long video)",
    "trl": "DPO seconds per pair: ours vs TRL's DPOTrainer at equal loss (needs trl)",
    "decode": "video decoding frames/s: decord vs PyAV",
    "generation": "preference-pair generation pairs/s: batched vs one at a time (source checkout)",
    "all": "every benchmark above with its default settings",
}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="performance benchmarks (ratios measured in the same run)")
    sub = parser.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    for name, module in MODULES.items():
        bench = sub.add_parser(name, help=HELP[name], description=HELP[name])
        importlib.import_module(f"savi_plugin.bench.{module}").build_parser(bench)
        bench.set_defaults(func=run_one, bench_module=module)
    generation = sub.add_parser("generation", help=HELP["generation"], description=HELP["generation"])
    generation.add_argument("options", nargs=argparse.REMAINDER,
                            help="passed to benchmarks/generation_throughput.py (see its --help)")
    generation.set_defaults(func=run_generation)
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


def generation_script() -> Path | None:
    """``benchmarks/generation_throughput.py`` of the source checkout this package runs from, if any."""
    candidates = [Path(__file__).resolve().parents[2] / "benchmarks" / "generation_throughput.py",
                  Path.cwd() / "benchmarks" / "generation_throughput.py"]
    return next((path for path in candidates if path.is_file()), None)


def run_generation(args) -> int:
    script = generation_script()
    if script is None:
        print("error: benchmarks/generation_throughput.py not found: the generation benchmark runs from a source "
              "checkout of savi-plugin (run `savi bench generation` from its root)", file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location("savi_generation_throughput", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    options = [o for o in (args.options or []) if o != "--"]
    module.main(options)
    return 0


def run_all(args) -> int:
    """Every benchmark with its defaults; TRL is skipped (and said so) when it is not installed."""
    from savi_plugin.bench.trl_dpo import trl_version

    status = 0
    for name, module_name in MODULES.items():
        print(f"\n== savi bench {name}", flush=True)
        if name == "trl" and trl_version() is None:
            print("skipped: trl is not installed (pip install 'savi-plugin[bench]')")
            continue
        module = importlib.import_module(f"savi_plugin.bench.{module_name}")
        argv = ["--work-dir", os.path.join(args.work_dir, module_name)] if args.work_dir else []
        status = max(status, module.main(argv))
    print("\n== savi bench generation", flush=True)
    if generation_script() is None:
        print("skipped: benchmarks/generation_throughput.py is only in a source checkout")
    else:
        status = max(status, run_generation(argparse.Namespace(options=[])))
    return status

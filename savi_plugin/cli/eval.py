"""``savi eval tasks-path|run|fixture``: evaluate with lmms-eval on our MVBench/EgoSchema/PerceptionTest tasks.

    savi eval tasks-path                       # the folder of our task YAMLs (for --include_path)
    savi eval run --data-root /data/savi_eval -- --model savi_video \\
        --model_args pretrained=/ckpt,num_frames=32 --tasks savi_mvbench,savi_egoschema,savi_perceptiontest \\
        --output_path results/
    savi eval fixture /tmp/savi_eval_data -n 4  # a small synthetic dataset in the SAVI_DATA_ROOT layout
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from savi_plugin.config.values import AtLeast, OneOf, add_flag, checked

BENCHMARK_CHOICES = ("all", "mvbench", "egoschema", "perceptiontest")


@dataclass(frozen=True)
class FixtureOptions:
    """The options of ``savi eval fixture``."""

    benchmark: str = checked("all", OneOf(*BENCHMARK_CHOICES, what="benchmark"))
    n: int = checked(4, AtLeast(1), help="records per task (MVBench: per subtask)")
    seed: int = checked(0, AtLeast(0), help="synthetic-video seed (the dataset is a pure function of it)")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="run lmms-eval on the savi_ video QA tasks")
    sub = parser.add_subparsers(dest="eval_command", metavar="ACTION", required=True)

    path = sub.add_parser("tasks-path", help="print the folder holding our lmms-eval task YAMLs")
    path.set_defaults(func=run_tasks_path)

    run = sub.add_parser(
        "run", help="run the real lmms-eval CLI with our tasks included",
        description="Runs `python -m lmms_eval <args>` with --include_path set to our task folder "
                    "(unless given), so it works even where the automatic registration is off.")
    run.add_argument("--data-root", default=None,
                     help="read benchmark data from this folder (sets SAVI_DATA_ROOT; see eval_tasks/README.md)")
    run.add_argument("lmms_eval_args", nargs="*", metavar="LMMS_EVAL_ARG",
                     help="arguments for lmms-eval, after `--` (e.g. -- --model savi_video --tasks savi_mvbench)")
    run.set_defaults(func=run_lmms_eval)

    fixture = sub.add_parser("fixture", help="write a small synthetic benchmark dataset in the SAVI_DATA_ROOT layout")
    fixture.add_argument("root", help="destination data root (new, empty, or written by this command before)")
    add_flag(fixture, "--benchmark", FixtureOptions, "benchmark", choices=BENCHMARK_CHOICES)
    add_flag(fixture, "-n", FixtureOptions, "n")
    add_flag(fixture, "--seed", FixtureOptions, "seed")
    fixture.set_defaults(func=run_fixture)


def run_tasks_path(args) -> int:
    from savi_plugin.eval.registration import tasks_path

    print(tasks_path())
    return 0


def run_lmms_eval(args) -> int:
    """Run lmms-eval; an evaluation (``--model`` and ``--tasks``) is judged by its results file, since lmms-eval
    exits 0 on every error: every requested task must have results, else one ``error:`` line and exit 1. A
    ``--output_path`` lmms-eval would re-parse (a ``,`` or ``=`` in it) is passed as a link without them; without
    ``--output_path`` the results go to a temporary folder, read, then removed."""
    import tempfile

    from savi_plugin.eval.command import (
        flag_value,
        lmms_eval_command,
        run_judged,
        safe_paths,
        with_flag,
    )
    from savi_plugin.eval.registration import tasks_path

    env = dict(os.environ)
    if args.data_root:
        env["SAVI_DATA_ROOT"] = os.path.abspath(args.data_root)
    lmms_args = list(args.lmms_eval_args)
    tasks = flag_value(lmms_args, "--tasks")
    if not tasks or not flag_value(lmms_args, "--model") or (lmms_args and not lmms_args[0].startswith("-")):
        command = lmms_eval_command(lmms_args, tasks_path())  # a listing or another sub-command: passed through
        print("+", " ".join(command), file=sys.stderr)
        return subprocess.call(command, env=env)
    requested = [t.strip() for t in tasks.split(",") if t.strip()]
    output = flag_value(lmms_args, "--output_path")
    with tempfile.TemporaryDirectory(prefix="savi-eval-results-") as scratch:
        output = output or scratch
        os.makedirs(output, exist_ok=True)
        with safe_paths(output) as (safe_output,):
            command = lmms_eval_command(with_flag(lmms_args, "--output_path", str(safe_output)), tasks_path())
            print("+", " ".join(command), file=sys.stderr)
            run_judged(command, env=env, output_path=output, tasks=requested, verbose=args.verbose)
    return 0


def run_fixture(args) -> int:
    """Write the synthetic dataset into a folder it may write into (:mod:`savi_plugin.eval.fixture_folder`)."""
    from savi_plugin.eval.fixture_folder import FixtureFolder
    from savi_plugin.eval.fixtures import build_fixture

    folder = FixtureFolder(args.root).claim()  # FixtureFolderError: one line, exit 1
    names = BENCHMARK_CHOICES[1:] if args.benchmark == "all" else (args.benchmark,)
    for name in names:
        folder.begin(name)
        fixture = build_fixture(folder.root, name, args.n, seed=args.seed)
        folder.done(name, fixture.files)
        print(f"{name}: {sum(len(r) for r in fixture.records.values())} record(s) in {len(fixture.records)} task(s)")
    print(f"use it with: SAVI_DATA_ROOT={os.path.abspath(args.root)} lmms-eval --tasks ...")
    return 0

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

BENCHMARK_CHOICES = ("all", "mvbench", "egoschema", "perceptiontest")


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
    fixture.add_argument("root", help="destination data root")
    fixture.add_argument("--benchmark", default="all", choices=BENCHMARK_CHOICES)
    fixture.add_argument("-n", type=int, default=4, help="records per task (MVBench: per subtask)")
    fixture.add_argument("--seed", type=int, default=0)
    fixture.set_defaults(func=run_fixture)


def run_tasks_path(args) -> int:
    from savi_plugin.eval.registration import tasks_path

    print(tasks_path())
    return 0


def run_lmms_eval(args) -> int:
    from savi_plugin.eval.command import lmms_eval_command
    from savi_plugin.eval.registration import tasks_path

    env = dict(os.environ)
    if args.data_root:
        env["SAVI_DATA_ROOT"] = os.path.abspath(args.data_root)
    command = lmms_eval_command(args.lmms_eval_args, tasks_path())
    print("+", " ".join(command), file=sys.stderr)
    return subprocess.call(command, env=env)


#: written into every folder ``savi eval fixture`` fills: the folders it may write into again
FIXTURE_MARKER = ".savi-eval-fixture"


def run_fixture(args) -> int:
    from pathlib import Path

    from savi_plugin.eval.fixtures import build_fixture

    root = Path(args.root)
    if root.exists() and not root.is_dir():
        print(f"error: {root}: exists and is not a folder", file=sys.stderr)
        return 1
    if root.is_dir() and any(root.iterdir()) and not (root / FIXTURE_MARKER).exists():
        print(f"error: {root}: the folder is not empty and was not written by savi eval fixture; it would "
              f"overwrite annotations and videos there: choose an empty or new folder", file=sys.stderr)
        return 1
    root.mkdir(parents=True, exist_ok=True)
    (root / FIXTURE_MARKER).write_text("written by savi eval fixture: synthetic data, safe to overwrite\n")
    names = BENCHMARK_CHOICES[1:] if args.benchmark == "all" else (args.benchmark,)
    for name in names:
        fixture = build_fixture(args.root, name, args.n, seed=args.seed)
        print(f"{name}: {sum(len(r) for r in fixture.records.values())} record(s) in {len(fixture.records)} task(s)")
    print(f"use it with: SAVI_DATA_ROOT={os.path.abspath(args.root)} lmms-eval --tasks ...")
    return 0

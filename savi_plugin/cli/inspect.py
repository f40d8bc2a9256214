"""``savi inspect PAIRS --out DIR``: a static HTML site of preference pairs (see :mod:`savi_plugin.inspection`)."""

from __future__ import annotations

import sys
from pathlib import Path

from savi_plugin.cli import say
from savi_plugin.errors import RunError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("inspect", help="write a static HTML site to look at preference pairs")
    parser.add_argument("pairs", metavar="PAIRS", help="preference file (JSONL)")
    parser.add_argument("--out", required=True, help="site folder: new, empty, or a site this command wrote")
    parser.add_argument("--format", default="savi", choices=("savi", "rrpo", "trl"))
    parser.add_argument("--data-root", default=None, help="root of relative video paths (as for training)")
    parser.add_argument("--run-report", default=None,
                        help="generation or training report whose skipped items to list (default: the generation "
                             "report beside PAIRS)")
    parser.add_argument("--diagnostics", default=None,
                        help="per-pair diagnostics JSONL from `savi train ... train.diagnostics=true`")
    parser.add_argument("--frames", type=_count(0, 64), default=8, help="thumbnails per pair (0: none; <= 64)")
    parser.add_argument("--page-size", type=_count(1, 10000), default=100, help="index rows per page")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def _count(low: int, high: int):
    def parse(text: str) -> int:
        import argparse

        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high}], got {value}")
        return value
    return parse


def run(args) -> int:
    from savi_plugin.data.files import file_problem
    from savi_plugin.data.outputs import claim, mark_path, replace_folder
    from savi_plugin.data.paths import check_data_root, configuration_for_file
    from savi_plugin.inspection.site import build_site, pair_videos

    out = Path(args.out)
    inputs = {"PAIRS": args.pairs, "--run-report": args.run_report, "--diagnostics": args.diagnostics,
              "--data-root": args.data_root}
    check_data_root(args.data_root)
    problem = file_problem(args.pairs, "preference file")
    if problem:
        raise RunError(f"{args.pairs}: {'preference file not found' if problem == 'file not found' else problem}")
    for flag, path, what in (("--run-report", args.run_report, "run report"),
                             ("--diagnostics", args.diagnostics, "diagnostics file")):
        problem = file_problem(path, what) if path is not None else None
        if problem:  # asked for by name: a missing or odd file is said, never an empty section
            raise RunError(f"{path}: {flag}: {f'{what} not found' if problem == 'file not found' else problem}")
    # new, or a site this command wrote (replaced whole, never merged with the old one); a user's folder is refused
    config = configuration_for_file({"pairs": str(args.pairs)}, mark_path(out, True), (("pairs", False),))
    # inputs too: never the site nor in it; a file of which no record is a pair is refused here, writing nothing
    videos = pair_videos(args.pairs, args.format, args.data_root)
    with claim(out, command="savi inspect", config=config, folder=True, inputs=inputs,
               output_name="--out", what="inspection site", replace_ours=True, lock_beside=True,
               input_files={"a video the pairs name": videos}) as claimed:
        with replace_folder(out) as building:
            summary = build_site(args.pairs, building, fmt=args.format, data_root=args.data_root,
                                 run_report=args.run_report, diagnostics=args.diagnostics, frames=args.frames,
                                 page_size=args.page_size, progress=not args.no_progress)
            claimed.write_mark(into=building)
    say(f"{out / 'index.html'}: {summary.pairs} pair page(s), {summary.bad_records} bad record(s)"
        + (f" ({summary.refused_videos} of them pairs whose video training would skip: each page says why)"
           if summary.refused_videos else "")
        + f", {summary.skipped_items} skipped item(s)"
        + (f", diagnostics for {summary.with_diagnostics} pair(s), {len(summary.never_learned)} never learned"
           if args.diagnostics else "")
        + (f", {summary.diagnostics_mismatched} diagnostics row(s) of other pairs with the same ids not shown"
           if summary.diagnostics_mismatched else "")
        + (f", {summary.diagnostics_unmatched} diagnostics row(s) naming an id of no pair not shown"
           if summary.diagnostics_unmatched else "")
        + (f", {len(summary.diagnostics_problems)} bad diagnostics line(s) (listed with the bad records)"
           if summary.diagnostics_problems else ""))
    for problem in summary.diagnostics_problems:  # one rule for a bad line: named, the rest read
        say(f"  {problem}", file=sys.stderr)
    return 0

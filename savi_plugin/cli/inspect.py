"""``savi inspect PAIRS --out DIR``: a static HTML site of preference pairs (see :mod:`savi_plugin.inspection`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from savi_plugin.errors import RunError

#: the mark a site folder carries: a later ``savi inspect`` may replace a folder only when it holds this
MARK = ".savi-inspect.json"


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


def claim_site_folder(out: Path) -> None:
    """Refuse ``out`` unless it is absent, empty, or a site this command wrote (it carries :data:`MARK`)."""
    if out.exists() and not out.is_dir():
        raise RunError(f"{out}: --out is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARK).is_file():
        raise RunError(f"{out}: --out holds files that `savi inspect` did not write; choose a new or empty folder")


def run(args) -> int:
    from savi_plugin.data.outputs import OutputLock, check_distinct
    from savi_plugin.inspection.site import build_site

    out = Path(args.out)
    check_distinct(out, {"PAIRS": args.pairs, "--run-report": args.run_report, "--diagnostics": args.diagnostics,
                         "--data-root": args.data_root}, output_name="--out", folder=True)
    if not Path(args.pairs).is_file():
        raise RunError(f"{args.pairs}: preference file not found")
    claim_site_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with OutputLock(out, what="inspection site"):  # beside the folder, which is replaced whole
        claim_site_folder(out)
        building = out.parent / f".{out.name}.building-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir()
        try:
            summary = build_site(args.pairs, building, fmt=args.format, data_root=args.data_root,
                                 run_report=args.run_report, diagnostics=args.diagnostics, frames=args.frames,
                                 page_size=args.page_size, progress=not args.no_progress)
            (building / MARK).write_text(json.dumps({"command": "savi inspect", "pairs": str(args.pairs)}))
            if out.is_dir():  # ours (checked under the lock): replaced whole, never merged with the old site
                old = out.parent / f".{out.name}.old-{os.getpid()}"
                os.replace(out, old)
                os.replace(building, out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(building, out)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    print(f"{out / 'index.html'}: {summary.pairs} pair page(s), {summary.bad_records} bad record(s), "
          f"{summary.skipped_items} skipped item(s)"
          + (f", diagnostics for {summary.with_diagnostics} pair(s), {len(summary.never_learned)} never learned"
             if args.diagnostics else ""))
    return 0

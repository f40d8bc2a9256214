"""The ``savi`` command. Each sub-command lives in its own module with ``add_parser(subparsers)``.

Modules import heavy libraries (torch, transformers) inside their handlers, so ``savi --help``
stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from savi_plugin import __version__

#: Sub-command modules, in the order ``savi --help`` shows them.
COMMANDS = ("demo", "recipes", "generate", "train", "eval", "align", "data", "convert", "bench", "plugins")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command that is installed."""
    parser = argparse.ArgumentParser(
        prog="savi",
        description="Self-aligning video language models: VideoSAVi and RRPO data, training and evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"savi-plugin {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"savi_plugin.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"savi_plugin.cli.{name}":
                continue  # command not built yet in this checkout
            raise
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``savi`` console script; returns the process exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse gives a `nargs="*"` positional only the words right after the one before it, so
    # `savi train R --data D key=value` would leave key=value unparsed: recipe overrides may stand anywhere.
    overrides = [a for a in extra if "=" in a and not a.startswith("-")]
    if overrides and hasattr(args, "overrides"):
        args.overrides = list(args.overrides or []) + overrides
        extra = [a for a in extra if a not in overrides]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

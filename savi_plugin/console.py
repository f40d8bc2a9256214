"""The ``savi`` console script: :func:`savi_plugin.cli.main` with its own import inside the Ctrl-C boundary.

The command-line module imports argparse, logging and every sub-command's parser before its own boundary
(:func:`savi_plugin.cli.run_guarded`) stands; a Ctrl-C in that second was Python's ``KeyboardInterrupt``
traceback and death by SIGINT. This module imports nothing but :mod:`sys` and the import-free :mod:`savi_plugin.stop_lines` (the boundary's own
words, defined there once) before it catches it."""

import sys

from savi_plugin.stop_lines import STOPPED_AT_START


def main() -> int:
    """Run ``savi``; a Ctrl-C before the command's own boundary is one line and exit 130 (128 + SIGINT)."""
    try:
        from savi_plugin.cli import main as run

        return run()
    except KeyboardInterrupt:
        try:
            sys.stderr.write(STOPPED_AT_START)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        return 130

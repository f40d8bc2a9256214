"""The ``savi`` console script: :func:`savi_plugin.cli.main` with its own import inside the Ctrl-C boundary.

The command-line module imports argparse, logging and every sub-command's parser before its own boundary
(:func:`savi_plugin.cli.run_guarded`) stands; a Ctrl-C in that second was Python's ``KeyboardInterrupt``
traceback and death by SIGINT. This module imports nothing but :mod:`os`, :mod:`sys` and the import-free
:mod:`savi_plugin.stop_lines` (the boundary's own words, defined there once) before it catches it."""

import os
import sys

from savi_plugin.stop_lines import STOPPED_AT_START


def shadowed_by() -> str | None:
    """The folder of the ``savi_plugin`` package Python imported when it is not the one this script belongs to: a
    folder named ``savi_plugin`` on ``sys.path`` (``$PYTHONPATH``, the working folder) took the name, and the
    command-line module would fail to import from it with a traceback; else None."""
    package = sys.modules.get("savi_plugin")
    file = getattr(package, "__file__", None)
    here = os.path.dirname(os.path.realpath(__file__))
    if file is None or os.path.dirname(os.path.realpath(file)) == here:
        return None
    return os.path.dirname(file)


def main() -> int:
    """Run ``savi``; a Ctrl-C before the command's own boundary is one line and exit 130 (128 + SIGINT); a
    ``savi_plugin`` folder shadowing the installed package is one line and exit 2 (:func:`shadowed_by`)."""
    try:
        shadow = shadowed_by()
        if shadow is not None:
            sys.stderr.write(f"error: savi_plugin imports from {shadow}, not from this installation "
                             f"({os.path.dirname(os.path.realpath(__file__))}): remove {os.path.dirname(shadow)} from "
                             f"sys.path ($PYTHONPATH, the working folder) or rename the folder there\n")
            return 2
        from savi_plugin.cli import main as run

        return run()
    except KeyboardInterrupt:
        try:
            sys.stderr.write(STOPPED_AT_START)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        return 130

"""The ``savi`` command. Each sub-command lives in its own module with ``add_parser(subparsers)``.

Modules import heavy libraries (torch, transformers) inside their handlers, so ``savi --help``
stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from savi_plugin import __version__

#: Sub-command modules, in the order ``savi --help`` shows them.
COMMANDS = ("demo", "recipes", "generate", "train", "eval", "align", "ablate", "inspect", "plot", "data", "convert",
            "bench", "plugins", "doctor")


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
    argv = launcher_arguments(sys.argv[1:] if argv is None else list(argv))
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
    from savi_plugin.launch import clean_stray_launcher_env

    clean_stray_launcher_env()  # RANK/WORLD_SIZE left in a shell do not shard a plain run
    if args.command in ("train", "align", "generate"):
        from savi_plugin.launch import accelerate_single_process_warning

        warning = accelerate_single_process_warning()
        if warning:
            logging.getLogger("savi_plugin").warning(warning)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"interrupted: {RESUME_HINTS.get(args.command, 'stopped before finishing; re-run the command')}",
              file=sys.stderr)
        return 130
    except Exception as exc:
        message = user_error_message(exc)
        if message is None or args.verbose:
            raise
        print(f"error: {message}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 1))  # 2 for a configuration error (ConfigError), as argparse's


def launcher_arguments(argv: list[str]) -> list[str]:
    """``argv`` without the ``--local_rank=N`` / ``--local_rank N`` that ``deepspeed``'s launcher appends.

    The launcher also sets ``LOCAL_RANK`` in the environment (what :mod:`savi_plugin.launch` reads); the
    argument is taken only when the variable is missing.
    """
    out, i = [], 0
    while i < len(argv):
        word = argv[i]
        name, eq, value = word.partition("=")
        if name in ("--local_rank", "--local-rank"):
            if not eq:
                value = argv[i + 1] if i + 1 < len(argv) else ""
                i += 1
            if not value.isdigit():
                raise SystemExit(f"savi: error: {name} needs a non-negative integer, got {value!r}")
            os.environ.setdefault("LOCAL_RANK", value)
        else:
            out.append(word)
        i += 1
    return out


#: what Ctrl-C tells the user about each command (every one keeps its finished work)
RESUME_HINTS = {
    "generate": "finished records are kept; re-run the same command to resume",
    "train": "checkpoints are kept; re-run the same command with --resume to continue from the last complete one",
    "align": "finished steps are kept; re-run the same command (same --out) to resume",
    "ablate": "finished runs are kept; re-run the same command (same --out) to resume",
}


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message for an error the user can act on (bad input, value, path, lock, full disk), or None.

    The one place that turns errors into ``error: ...`` lines for every sub-command; anything else (a bug) keeps
    its traceback. ``savi -v`` shows the traceback of every error.
    """
    import errno

    from savi_plugin.errors import RunError
    from savi_plugin.registry import PluginNotFoundError

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        where = exc.filename or "a file"
        reason = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                  errno.EFBIG: "file too large (file size limit)"}[exc.errno]
        return f"{where}: {reason} while writing; free space and re-run the same command to resume"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    video_error = _video_decode_error()
    if isinstance(exc, (ValueError, PluginNotFoundError, RunError, FloatingPointError)) or (
            video_error is not None and isinstance(exc, video_error)):
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return "; ".join(lines) or type(exc).__name__
    return None


def _video_decode_error():
    try:
        from savi_plugin.video.decode import VideoDecodeError
    except ImportError:  # numpy missing: nothing decoded, nothing to catch
        return None
    return VideoDecodeError


if __name__ == "__main__":
    sys.exit(main())

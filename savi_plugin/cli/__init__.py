"""The ``savi`` command. Each sub-command lives in its own module with ``add_parser(subparsers)``.

Modules import heavy libraries (torch, transformers) inside their handlers, so ``savi --help``
stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import logging
import os
import re
import signal
import sys
import traceback
from collections.abc import Callable
from typing import NamedTuple

from savi_plugin import __version__

#: Sub-command modules, in the order ``savi --help`` shows them.
COMMANDS = ("demo", "recipes", "generate", "train", "eval", "align", "ablate", "inspect", "plot", "data", "convert",
            "bench", "plugins", "doctor")


class Parser(argparse.ArgumentParser):
    """argparse's parser, except that help, version and usage text that cannot be written is an error: argparse
    drops an ``OSError`` of its own prints (``savi --help >/dev/full`` exited 0 with its text lost), and a flag is
    taken only as written: argparse's prefix matching read ``savi generate --data`` (a flag of ``savi train``) as
    ``--data-root`` and ``savi train --out`` as ``--output-dir``."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def _print_message(self, message: str, file=None) -> None:
        if message:
            (file or sys.stderr).write(message)

    #: the words being parsed (set by :func:`main`), so a usage error can say which word it comes from
    words: list[str] = []

    def _check_value(self, action: argparse.Action, value) -> None:
        """argparse's choice check, except that a value that reads as one of the choices (a look-alike letter of
        another script, a character drawn as nothing: ``--to rr\u0440o``) is refused by the one unknown-name
        rule (:func:`savi_plugin.untrusted.unknown_name`), shown escaped and naming the character, never echoed
        as text that reads as a valid choice."""
        from savi_plugin.untrusted import read_as_known, shown_value

        choices = action.choices
        if choices is not None and value not in choices:  # a sub-command's name too (choices a dict of parsers)
            like = read_as_known(value, [c for c in choices if isinstance(c, str)])
            if like is not None:
                raise argparse.ArgumentError(action, f"invalid choice {shown_value(value)}: {like}")
        super()._check_value(action, value)

    def error(self, message: str):
        """A usage error as one line, ``<prog>: error: <message>``, exit status 2: argparse's own line without the
        usage block it prints above it (ten lines for ``savi generate``; ``--help`` shows it). A misspelt flag
        whose value argparse then offered to a sub-command (``--limt 3``: "argument merge: invalid choice: '3'")
        is named as the unrecognized flag it is."""
        from savi_plugin.untrusted import printable

        choice = re.match(r"argument ([^-]\S*): invalid choice: '(.*)' \(choose from", message)  # a sub-command
        if choice:
            words = Parser.words
            for i in range(1, len(words)):
                flag = words[i - 1]
                if (words[i] == choice.group(2) and flag.startswith("--") and "=" not in flag
                        and flag not in self._option_string_actions):
                    message = f"unrecognized arguments: {words[i - 1]} {words[i]}"
                    break
        self.exit(2, f"{self.prog}: error: {printable(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command that is installed (sub-parsers are of its class)."""
    parser = Parser(
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


def _after_dashes_hint(args) -> str:
    """For a command that passes another program's arguments on (``savi eval run``'s ``forwards``: the program and
    the command's own flags that take a value), the words given as they belong: after ``--``."""
    forwards = getattr(args, "forwards", None)
    if forwards is None:
        return ""
    program, command, own = forwards
    words = Parser.words
    start = next((i + len(command) for i in range(len(words)) if words[i:i + len(command)] == list(command)),
                 len(words))
    mine, theirs, rest = [], [], words[start:]
    while rest:
        word = rest.pop(0)
        if word.split("=", 1)[0] in own:
            mine += [word] + ([rest.pop(0)] if "=" not in word and rest else [])
        elif word != "--":
            theirs.append(word)
    shown = " ".join(["savi", *command, *mine, "--", *theirs])
    return f"; {program}'s arguments go after `--`: {shown}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``savi`` console script; returns the process exit code."""
    parser = build_parser()
    ignored: list[str] = []
    argv = launcher_arguments(sys.argv[1:] if argv is None else list(argv), ignored)
    Parser.words = list(argv)
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit:  # --help, --version, or a usage error: argparse printed its text and stops, as it does
        if _flushed(0):
            return 1
        raise
    except OSError as exc:  # its text could not be written
        return _flushed(1, exc)
    # argparse gives a `nargs="*"` positional only the words right after the one before it, so
    # `savi train R --data D key=value` would leave key=value unparsed: recipe overrides may stand anywhere.
    overrides = [a for a in extra if "=" in a and not a.startswith("-")]
    if overrides and hasattr(args, "overrides"):
        args.overrides = list(args.overrides or []) + overrides
        extra = [a for a in extra if a not in overrides]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}{_after_dashes_hint(args)}")
    empty = _empty_argument(args, parser)
    if empty is not None:  # Path("") is ".": `savi recipes cp tiny_demo "$DEST"` wrote into the working folder
        parser.error(f"argument {empty}: an empty value (an unset variable in the shell?); give a value")
    handler = ClearOfBarsHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    route_deepspeed_logs()  # DeepSpeed's logger writes to standard output, where the results go
    from savi_plugin.launch import clean_stray_launcher_env

    if ignored:
        logging.getLogger("savi_plugin.launch").warning(
            "ignoring %s: no launcher (torchrun, deepspeed, accelerate) started this process, so it runs as one "
            "process; drop the flag, or start the command under a launcher", " ".join(ignored))
    clean_stray_launcher_env()  # RANK/WORLD_SIZE left in a shell do not shard a plain run
    if not _main_rank():  # one job's ranks say its warnings once, through rank 0
        handler.addFilter(_RANK_ERRORS_ONLY)
    if command_name(args) in LAUNCHED_COMMANDS:
        from savi_plugin.launch import accelerate_single_process_warning

        warning = accelerate_single_process_warning()
        if warning:
            logging.getLogger("savi_plugin").warning(warning)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    code = run_guarded(lambda: _run_command(args), args.command, verbose=args.verbose)
    if code == 0:  # under a launcher: every rank finished; close the group before the interpreter exits
        from savi_plugin.training.distributed import close_process_group

        close_process_group()
    return code


#: the arguments whose words are ``KEY=VALUE``, by ``dest``, and how a refusal names one of their keys
KEY_VALUE_ARGUMENTS = {"option": "--option {}", "overrides": "override {}="}


def _empty_argument(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str | None:
    """How the user wrote the first argument given as the empty string (``""``, an unset ``$VAR``) or as white
    space alone (``' '``), or None: no
    savi argument takes one, and a path read from one is the working folder. The same rule for the value of a
    ``KEY=VALUE`` word (:data:`KEY_VALUE_ARGUMENTS`): ``-o judge_model=$JUDGE`` with the variable unset read as
    "no judge"; a value left out on purpose is written ``null``."""
    for name, value in vars(args).items():
        values = value if isinstance(value, list) else [value]
        if name in KEY_VALUE_ARGUMENTS:
            for word in values:
                key, sep, rest = word.partition("=") if isinstance(word, str) else ("", "", "x")
                if sep and key.strip() and not rest.strip():
                    return KEY_VALUE_ARGUMENTS[name].format(key.strip())
        elif any(isinstance(v, str) and not v.strip() for v in values):  # lmms-eval's words too: `--model_args
            # "$UNSET"`; white space alone is as empty (`--output-dir ' '` would write a folder named ' ')
            at = next(i for i, v in enumerate(values) if isinstance(v, str) and not v.strip())
            if name == "lmms_eval_args" and at and str(values[at - 1]).startswith("-"):  # the lmms-eval flag it follows
                return values[at - 1]
            return _shown_name(parser, name, args) or name
    return None


def _shown_name(parser: argparse.ArgumentParser, dest: str, args: argparse.Namespace) -> str | None:
    """The argument stored at ``dest`` as the usage of the sub-command that ran shows it: its flag (``--output``)
    or its positional's name (``OUT``, argparse's ``dest`` when it has no metavar). Only the parsers of the
    sub-command given are searched: another sub-command's argument of the same ``dest`` (``savi convert
    llava-next``'s ``DST``) is not this one's."""
    current: argparse.ArgumentParser | None = parser
    found = None
    while current is not None:
        chosen = None
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                given = getattr(args, action.dest, None) if action.dest != argparse.SUPPRESS else None
                given = given if given in action.choices else next(
                    (word for word in Parser.words if word in action.choices), None)
                chosen = action.choices.get(given) if given is not None else None
            elif action.dest == dest:
                found = action.option_strings[-1] if action.option_strings else (action.metavar or dest)
        current = chosen
    return found


def printable(text: object) -> str:
    """``text`` as one line of what a command prints: :func:`savi_plugin.untrusted.printable` (a line feed, a
    control character or a bidi override from a file name written as its escape)."""
    from savi_plugin.untrusted import printable as escaped

    return escaped(str(text))


def say(*lines: object, file=None) -> None:
    """Print each of ``lines`` as one line (:func:`printable`) on standard output, or on ``file``: the printer of
    every ``savi`` command's problem, summary and ``error:`` lines, so a name read from the user cannot start a
    line of its own. Text that is a document of its own (JSON, YAML, a Markdown table: their encoders escape what
    they hold) is printed as it is."""
    with clear_of_progress_bars(file or sys.stdout):
        for line in lines:
            print(printable(line), file=file)


#: the process that imported the CLI; a forked worker (a DataLoader's) writes its lines as they come
_CLI_PID = os.getpid()


@contextlib.contextmanager
def clear_of_progress_bars(file):
    """While a line is written to ``file``, the progress bars drawn on the terminal are cleared and drawn again
    after it (tqdm's ``external_write_mode``), so a warning, a log line or a message never continues a bar's line.
    Only in the process that draws them: a forked worker holds copies of the bars it must not redraw."""
    tqdm = getattr(sys.modules.get("tqdm"), "tqdm", None)
    if tqdm is None or not getattr(tqdm, "_instances", None) or os.getpid() != _CLI_PID:
        yield
        return
    try:
        mode = tqdm.external_write_mode(file=file)
        mode.__enter__()
    except Exception:  # a bar whose stream is closed: the line is written as it comes
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            mode.__exit__(None, None, None)


class ClearOfBarsHandler(logging.StreamHandler):
    """The log handler of every ``savi`` command: standard error's handler, writing each record clear of the
    progress bars (:func:`clear_of_progress_bars`). Once transformers is loaded, its own records come here too
    (:func:`route_library_logs`), so a library's warning never lands on a bar's line either."""

    def handle(self, record: logging.LogRecord) -> bool:
        route_library_logs()  # before the handler's filters: a record they drop still routes the library's
        return super().handle(record)

    def emit(self, record: logging.LogRecord) -> None:
        with clear_of_progress_bars(self.stream):
            super().emit(record)


_ROUTED: set[str] = set()


def route_library_logs() -> None:
    """Send transformers' log records through the command's handler instead of the stream handler transformers
    installs on its own logger (which writes straight to standard error, over a progress bar's line): its
    default handler is removed and its records propagate. Once per process, when transformers is loaded."""
    if "transformers" in _ROUTED or "transformers.utils.logging" not in sys.modules:
        return
    library = sys.modules["transformers.utils.logging"]
    lock = getattr(library, "_lock", None)
    # a record transformers logs while it configures its logger (TRANSFORMERS_VERBOSITY=loud) arrives here with
    # its lock held: configuring it from here would wait on that lock forever, so the next record does it
    if lock is not None and not lock.acquire(blocking=False):
        return
    if lock is not None:
        lock.release()
    _ROUTED.add("transformers")
    with contextlib.suppress(Exception):  # a transformers without these functions keeps its own handler
        library.disable_default_handler()
        library.enable_propagation()


class _ToCommandLog(logging.Filter):
    """On DeepSpeed's logger: each record goes to the command's log (standard error, at the level the user chose)
    instead of the handler DeepSpeed installs, which writes to standard output, where the results go."""

    def filter(self, record: logging.LogRecord) -> bool:
        root = logging.getLogger()
        if root.isEnabledFor(record.levelno):
            root.handle(record)
        return False


_DEEPSPEED_TO_LOG = _ToCommandLog()


def route_deepspeed_logs() -> None:
    """Route DeepSpeed's log records (``[WARNING] [real_accelerator.py:213:get_accelerator] Setting accelerator to
    CPU...`` as it is imported) to the command's log: a filter on its logger, set before DeepSpeed is imported
    (DeepSpeed adds its standard-output handler to the same logger then) or after. Its ``print``s are caught where
    savi starts it (:func:`savi_plugin.training.distributed.deepspeed_prints_to_log`)."""
    library = logging.getLogger("DeepSpeed")
    if _DEEPSPEED_TO_LOG not in library.filters:
        library.addFilter(_DEEPSPEED_TO_LOG)


class OneLineFormatter(logging.Formatter):
    """The log format of every ``savi`` command: each record's message is one line (:func:`printable`), so a
    name in a warning cannot forge a log or ``error:`` line; a traceback (``-v``, ``logger.exception``) follows
    it as Python writes it."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)


class Launched(NamedTuple):
    """How a command runs as one job of several processes under a launcher (:data:`LAUNCHED_COMMANDS`)."""

    #: it joins the launcher's process group (its training arguments start ``torch.distributed``)
    group: bool
    #: flags whose value the launcher's ranks decide, refused under one
    rank_flags: tuple[str, ...] = ()


#: the commands that work as one job of several processes under a launcher (``torchrun``, ``deepspeed``,
#: ``accelerate launch`` with ``WORLD_SIZE`` above 1): training shares each step among the ranks, ``savi align``
#: shards generation and trains on every rank, ``savi generate`` writes one shard per rank. Every other command
#: (``savi generate merge``, ``inspect``, ``ablate``, ``demo``, ``eval ...``) runs in one process: under such a
#: launcher each rank would do the whole work into the same output, so every rank refuses it
#: (:func:`check_launched`). Keyed by :func:`command_name`.
LAUNCHED_COMMANDS = {"train": Launched(group=True), "align": Launched(group=True),
                     "generate": Launched(group=False, rank_flags=("--shard",))}


def command_name(args: argparse.Namespace) -> str | None:
    """The command as typed, with its sub-command (``generate merge``, ``eval run``); None when none was given."""
    if not args.command:
        return None
    sub = getattr(args, f"{args.command}_command", None)
    return f"{args.command} {sub}" if sub else args.command


def _main_rank() -> bool:
    """Whether this process is rank 0 of its launcher's job (or no launcher's): a process whose launcher
    variables are wrong is taken as rank 0 here, and refused by the command's own look at them."""
    from savi_plugin.launch import current

    try:
        return current().is_main
    except Exception:  # noqa: BLE001 - the command's boundary says it in one line
        return True


class _ErrorsAndOwnLines(logging.Filter):
    """On the log handler of a launched job's ranks other than 0: their errors pass, and a record the code marks
    as this rank's own (``extra={"every_rank": True}``); summaries and warnings of the job are rank 0's to say."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or bool(getattr(record, "every_rank", False))


_RANK_ERRORS_ONLY = _ErrorsAndOwnLines()


def check_launched(args: argparse.Namespace) -> None:
    """Refuse, on every rank, a command that runs in one process (not in :data:`LAUNCHED_COMMANDS`) under a
    launcher that started several, and a flag of one whose value the launcher's ranks decide (``--shard``).

    Raises:
        ConfigurationError: ``savi inspect runs in one process; start it without torchrun`` (exit status 2).
    """
    from savi_plugin.errors import ConfigurationError
    from savi_plugin.launch import current

    process = current()
    if not process.distributed:
        return
    name = command_name(args)
    launched = LAUNCHED_COMMANDS.get(name)
    if launched is None:
        raise ConfigurationError(f"savi {name} runs in one process; start it without {process.launcher} (it "
                                 f"started {process.world_size}, each of which would do the whole work into the "
                                 f"same output)")
    for flag in launched.rank_flags:
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value is not None:
            raise ConfigurationError(f"savi {name}: {flag} {value} is given under {process.launcher}, whose "
                                     f"{process.world_size} processes choose the shards themselves (rank i of n "
                                     f"takes shard i/n); drop {flag}, or run each {flag} without the launcher")


def _run_command(args: argparse.Namespace) -> int | None:
    """Run the parsed command: under a launcher of several processes only what works that way
    (:func:`check_launched`); a launched process of a training command first waits for its rendezvous in Python
    (:func:`savi_plugin.launch.wait_for_rendezvous`), where Ctrl-C and SIGTERM stop it."""
    check_launched(args)
    launched = LAUNCHED_COMMANDS.get(command_name(args))
    if launched is not None and launched.group:
        from savi_plugin.environment import env_value
        from savi_plugin.launch import wait_for_rendezvous

        wait_for_rendezvous(env_value("SAVI_RENDEZVOUS_TIMEOUT"))
    return args.func(args)


def _flushed(code: int, failed: OSError | None = None) -> int:
    """``code``, once what was printed has reached standard output; 1 with one line on standard error when it
    cannot (``savi --help >/dev/full`` reported success with its text lost)."""
    try:
        if failed is not None:
            raise failed
        sys.stdout.flush()
    except OSError as exc:
        from savi_plugin.data.outputs import DISK_FULL_ERRNOS, disk_full_message

        message = (disk_full_message(exc.errno, None, stdout=True) if exc.errno in DISK_FULL_ERRNOS else
                   f"standard output: {exc.strerror or exc}: the text was not written")
        say(f"error: {message}", file=sys.stderr)
        _stdout_to_null()
        return 1
    return code


def _stdout_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a full disk (quota, file size limit) met writing standard output
    (:class:`_MarkedStdout`), not a file of the command's."""
    from savi_plugin.data.outputs import DISK_FULL_ERRNOS

    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS and getattr(exc, "savi_stdout", False)


class _MarkedStdout:
    """Standard output while a command runs: an ``OSError`` of its ``write`` or ``flush`` is marked as standard
    output's (``savi_stdout``), since the system names no file for either (nor for a file's own write), so the
    boundary names the destination. Everything else is the stream's own."""

    def __init__(self, stream):
        self._stream = stream

    def _marked(self, call, *args):
        try:
            return call(*args)
        except OSError as exc:
            exc.savi_stdout = True
            raise

    def write(self, text):
        return self._marked(self._stream.write, text)

    def flush(self):
        return self._marked(self._stream.flush)

    def __getattr__(self, name):
        return getattr(self._stream, name)


@contextlib.contextmanager
def _marked_stdout():
    stream = sys.stdout
    if stream is None:
        yield
        return
    sys.stdout = _MarkedStdout(stream)
    try:
        yield
    finally:
        if isinstance(sys.stdout, _MarkedStdout):  # a command that replaced it put it back
            sys.stdout = stream


def _stdout_to_null() -> None:
    """Put the null device under standard output's descriptor: what is still buffered goes nowhere, so the
    interpreter's last flush does not fail a second time (a closed pipe, a full device). An in-process stream
    without a descriptor is left as it is."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def launcher_arguments(argv: list[str], ignored: list[str] | None = None) -> list[str]:
    """``argv`` without the ``--local_rank=N`` / ``--local_rank N`` that ``deepspeed``'s launcher appends.

    The launcher also sets ``LOCAL_RANK`` in the environment (what :mod:`savi_plugin.launch` reads); the
    argument is taken only when the variable is missing, and only inside a launcher
    (:func:`savi_plugin.launch.launcher_name`): typed by hand it is dropped, and appended to ``ignored`` as
    written (the command warns, naming it). A value that is not a non-negative integer is a usage error: one
    line, exit status 2.
    """
    from savi_plugin.launch import launcher_name

    out, i = [], 0
    while i < len(argv):
        word = argv[i]
        name, eq, value = word.partition("=")
        if name in ("--local_rank", "--local-rank"):
            if not eq:
                value = argv[i + 1] if i + 1 < len(argv) else ""
                i += 1
            if not (value.isascii() and value.isdigit()):
                say(f"savi: error: {name} needs a non-negative integer, got {value!r}", file=sys.stderr)
                raise SystemExit(2)
            if launcher_name() is None:
                if ignored is not None:
                    ignored.append(f"{name}={value}")
            else:
                os.environ.setdefault("LOCAL_RANK", value)
        else:
            out.append(word)
        i += 1
    return out


#: what Ctrl-C tells the user about each command (every one keeps its finished work)
RESUME_HINTS = {
    "generate": "finished records are kept; re-run the same command to resume",
    "train": "checkpoints are kept; re-run the same command to continue from the last complete one",
    "align": "finished steps are kept; re-run the same command (same --out) to resume",
    "ablate": "finished runs are kept; re-run the same command (same --out) to resume",
    "demo": "finished steps are kept; re-run the same command (same --out) to resume",
}

#: the run folder a command chose itself (``savi align``/``savi demo`` without ``--out``: a new timestamped folder
#: each time), so that the line of a stopped run names the ``--out`` that resumes it (:func:`chose_output`)
_chosen_output: str | None = None


def refuse_flag_and_override(overrides: list[str], flags: dict[str, tuple[str, object]]) -> None:
    """Refuse a command line that sets one recipe key twice, by its own flag and by a ``key.path=value`` override
    (``--output-dir a train.output_dir=b``; ``savi ablate``'s ``LOSS:key=value`` too): the flag won and the override
    was dropped without a word. ``flags``: flag -> (the key it sets, its value; None when not given). An override of
    a section holding the key (``train={output_dir: b}``) counts.

    Raises:
        ConfigError: ``<flag>: <key> is given twice (<flag> and override '<override>'); give it once``.
    """
    from savi_plugin.errors import ConfigError

    for flag, (key, value) in flags.items():
        if value is None or value is False:
            continue
        for override in overrides:
            path = override.partition("=")[0].rpartition(":")[2].strip()
            if path == key or key.startswith(f"{path}."):
                raise ConfigError(flag, f"{key} is given twice ({flag} and override {override!r}); give it once")


def chose_output(folder: str) -> str:
    """Record that the running command chose its run folder ``folder`` itself (no ``--out`` given); returns it."""
    global _chosen_output
    _chosen_output = folder
    return folder


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler's stop, a launcher stopping its workers), SIGHUP (the terminal closed, an
    ssh session dropped) or SIGQUIT (Ctrl-\\ at a terminal), raised where the command runs so that it stops as
    Ctrl-C stops it: its outputs' cleanup runs (locks released, temporary files removed, finished work kept), and
    the boundary says what is kept; exit status 128 + the signal (143, 129, 131)."""


#: the stop signals the running command turns into a clean stop when their action is the default one (ignored
#: or someone else's handler: left as they are); SIGINT is Python's own ``KeyboardInterrupt``, SIGTERM always ours
_DEFAULT_STOPS = ("SIGHUP", "SIGQUIT")

#: the stop signal (SIGINT, SIGTERM, SIGHUP or SIGQUIT) that reached the running command, None before one did
_stop_signal: int | None = None



@contextlib.contextmanager
def terminate_as_interrupt():
    """While the command runs, SIGTERM, SIGHUP and SIGQUIT raise :class:`Terminated` and Ctrl-C
    ``KeyboardInterrupt`` in the main thread (elsewhere: unchanged), and each records that it arrived
    (:func:`stop_requested`): an interrupt raised inside code that turns it into another exception (an import that
    fails as ``ImportError: initialization failed`` when Ctrl-C lands in it) is still reported as the
    interruption. A SIGHUP that is ignored when the command starts (``nohup savi train ...``) stays ignored, and so
    does a SIGHUP or SIGQUIT with a handler someone else installed; SIGQUIT's default action (a core dump, no line,
    the lock file left) becomes the same clean stop as SIGTERM's. A stop that lands in a finalizer, where Python
    ignores exceptions, is raised again (``sys.unraisablehook``)."""
    import threading

    global _stop_signal
    _stop_signal = None
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        global _stop_signal
        _stop_signal = signum
        raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated()

    previous_term = signal.signal(signal.SIGTERM, stop)
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:  # a handler someone else installed is theirs
        signal.signal(signal.SIGINT, stop)
    # ignored (SIGHUP under nohup), or someone else's when installed: left as it is
    defaults = [getattr(signal, name) for name in _DEFAULT_STOPS if hasattr(signal, name)]
    defaults = [signum for signum in defaults if signal.getsignal(signum) is signal.SIG_DFL]
    for signum in defaults:
        signal.signal(signum, stop)
    previous_hook = sys.unraisablehook

    def redeliver(unraisable) -> None:
        """A stop raised inside a finalizer (a library's ``__del__``, a weakref callback) is printed and ignored by
        Python, and the command would go on: the signal is sent again from a thread a moment later, once the
        finalizer has returned, to land where it can stop the command (again, should it land in a finalizer)."""
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and _stop_signal is not None:
            again = threading.Timer(0.05, os.kill, (os.getpid(), _stop_signal))
            again.daemon = True
            again.start()
            return
        previous_hook(unraisable)

    sys.unraisablehook = redeliver
    try:
        yield
    finally:
        if sys.unraisablehook is redeliver:
            sys.unraisablehook = previous_hook
        signal.signal(signal.SIGTERM, previous_term)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)
        for signum in defaults:
            signal.signal(signum, signal.SIG_DFL)


def stop_requested() -> int | None:
    """The signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) that asked the running command to stop, or None."""
    return _stop_signal


def run_guarded(command: Callable[[], int | None], name: str | None = None, *, verbose: bool = False) -> int:
    """The error boundary of every ``savi`` command: run ``command`` and return its exit status.

    Whatever it raises -- any ``Exception``, ``RecursionError``, ``MemoryError``, ``KeyboardInterrupt`` -- ends
    in ONE ``error:`` line on stderr (:func:`error_message`) and a non-zero status: 2 for a configuration error
    (:class:`~savi_plugin.errors.ConfigurationError`, argparse's status for a usage error), 130 for Ctrl-C,
    143 for SIGTERM, 129 for SIGHUP and 131 for SIGQUIT (also when the stop became another exception on its way up,
    :func:`terminate_as_interrupt`), 1 otherwise. The traceback is printed only with ``savi -v``. ``SystemExit`` passes through (argparse's own
    one-line refusals and a command's explicit exit status). The environment is checked first
    (:func:`savi_plugin.environment.check_environment`): a bad ``SAVI_*`` value stops every command before it
    starts, never per item. What the command and the boundary print is escaped where the terminal's encoding
    lacks a character (:func:`escaped_output`).
    """
    global _chosen_output
    _chosen_output = None
    with escaped_output(), _marked_stdout(), one_line_warnings(verbose):
        return _run(command, name, verbose)


@contextlib.contextmanager
def one_line_warnings(verbose: bool = False):
    """While the command runs, a Python warning (a library's ``FutureWarning``, ``UserWarning``) prints as one line,
    ``warning: <category>: <message's first line>``, instead of Python's format, which adds the file, line number
    and the source line of the ``warnings.warn(`` call (a bare ``warnings.warn(`` line beside the command's own
    ``error:`` line). With ``savi -v`` Python's full format stays. Which warnings show is Python's filters' choice."""
    import warnings

    if verbose:
        yield
        return

    def show(message, category, filename, lineno, file=None, line=None):
        text = next((part.strip() for part in str(message).splitlines() if part.strip()), "")
        with contextlib.suppress(OSError, AttributeError, ValueError):  # no stderr, or it is closed: nothing shown
            say(f"warning: {category.__name__}: {text}", file=file or sys.stderr)

    saved = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    finally:
        if warnings.showwarning is show:
            warnings.showwarning = saved


@contextlib.contextmanager
def escaped_output():
    """While the command runs, standard output and error write a character their encoding lacks as a backslash
    escape (``\\xfc`` under ``PYTHONIOENCODING=ascii`` or a C locale) instead of raising: a message (a file's
    problem naming ``ü.jsonl``) always prints, escaped, never replaced by the codec's error."""
    changed = []
    for stream in (sys.stdout, sys.stderr):
        errors = getattr(stream, "errors", None)
        if errors not in (None, "backslashreplace") and hasattr(stream, "reconfigure"):
            with contextlib.suppress(Exception):  # a stream that cannot change its handler keeps it
                stream.reconfigure(errors="backslashreplace")
                changed.append((stream, errors))
    try:
        yield
    finally:
        for stream, errors in changed:
            with contextlib.suppress(Exception):
                stream.reconfigure(errors=errors)


def _run(command: Callable[[], int | None], name: str | None, verbose: bool) -> int:
    global _stop_signal
    _stop_signal = None
    from savi_plugin.data.outputs import reset_command_outputs

    reset_command_outputs()
    try:
        from savi_plugin.environment import check_environment

        check_environment()
        with terminate_as_interrupt():
            code = int(command() or 0)
            if sys.stdout is not None:  # what it printed reaches standard output here, or its failure is the command's
                sys.stdout.flush()
            return code
    except SystemExit:
        raise
    except BrokenPipeError:  # the reader of our output left (`savi recipes show x | head -1`): nothing to say
        _stdout_to_null()  # no second error at exit's flush
        return 141  # 128 + SIGPIPE, what a shell reports for a command whose reader closed the pipe
    except KeyboardInterrupt as exc:
        if verbose:
            traceback.print_exc()
        return _stopped(name, stop_requested() or (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT))
    except BaseException as exc:  # noqa: BLE001 - the boundary: every error type ends in one line
        if isinstance(exc, MemoryError) and not verbose:
            _release_frames(exc)
        try:
            return _report(exc, name, verbose)
        except MemoryError:  # even the message could not be built: a fixed line, written without allocating
            _release_frames(exc)
            os.write(2, _OUT_OF_MEMORY_LINE)
            return 1


#: the line printed when memory is exhausted even after what the failed command held is freed
_OUT_OF_MEMORY_LINE = b"error: out of memory (MemoryError: the allocator refused); use smaller inputs or a larger machine\n"


def _release_frames(exc: BaseException) -> None:
    """Free what a command that ran out of memory held: its frames stay alive through the traceback of the
    exception (and of the ones it was raised while handling) until the boundary lets go of it, so the one-line
    message would otherwise be built with no memory left (a chained ``MemoryError`` traceback instead of a line)."""
    import gc

    seen = 0
    while exc is not None and seen < 100:
        exc.__traceback__ = None
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    gc.collect()


def _report(exc: BaseException, name: str | None, verbose: bool) -> int:
    """The one line (or the stop's line) for an exception that ended a command, and its exit status."""
    from savi_plugin.errors import ConfigurationError, InputChangedError

    if verbose:
        traceback.print_exception(exc)
    if stop_requested() is not None:  # the stop became another error on its way up (e.g. inside an import)
        return _stopped(name, stop_requested())
    if _stdout_full(exc):  # `savi plugins >/dev/full`: standard output is named, as for help text
        return _flushed(1, exc)
    _end_progress_bars()
    message = error_message(exc)
    if isinstance(exc, InputChangedError):
        message = f"{message}; {_changed_input_hint()}"
    say(f"error: {message}", file=sys.stderr)
    if isinstance(exc, ConfigurationError):
        return int(getattr(exc, "exit_code", 2))
    return int(getattr(exc, "exit_code", 1) or 1)


def _stopped(name: str | None, signum: int) -> int:
    """Say what a stopped command keeps (one line) and return its status, 128 + the signal: 130 for Ctrl-C, 143 for
    SIGTERM, 129 for SIGHUP, 131 for SIGQUIT. The line is not written when standard error went with the terminal
    that hung up."""
    from savi_plugin.stop_lines import STOP_WORDS, stopped_line

    word = STOP_WORDS.get(signal.Signals(signum).name, f"stopped ({signal.Signals(signum).name})")
    with contextlib.suppress(OSError):
        say(stopped_line(word, _kept_hint(name)), file=sys.stderr)
    return 128 + int(signum)


def _kept_hint(name: str | None) -> str:
    """What a stopped command keeps: its resume hint (:data:`RESUME_HINTS`) when an output it claimed keeps
    results, else :func:`_nothing_written`."""
    from savi_plugin.stop_lines import RERUN

    nothing = _nothing_written()
    if nothing:
        return f"{nothing}; {RERUN}"
    hint = RESUME_HINTS.get(name, "stopped before finishing; re-run the command")
    if _chosen_output is not None:  # the same command would choose a new folder: name the one that resumes
        hint = hint.replace("re-run the same command (same --out)", f"re-run the command with --out {_chosen_output}")
    return hint


def _changed_input_hint() -> str:
    """What a job stopped by an input changed under it (:class:`~savi_plugin.errors.InputChangedError`) keeps."""
    from savi_plugin.stop_lines import RERUN

    nothing = _nothing_written()
    if nothing:
        return f"{nothing}; {RERUN}"
    return ("what the job made from it until now is kept: put the file back as it was and re-run the same command "
            "to continue, or write to a new output to start over with the new file")


def _nothing_written() -> str | None:
    """"nothing was written" when the command claimed no output, or the output layer removed each new one it
    claimed because it ended before its first result (:meth:`~savi_plugin.data.outputs.Output.undo`); else None."""
    from savi_plugin.data.outputs import command_outputs
    from savi_plugin.stop_lines import NOTHING_WRITTEN

    ended = command_outputs()
    if not all(state == "undone" for state in ended.values()):
        return None
    undone = [path for path in ended  # an output inside another one removed is named by that one
              if not any(path.startswith(other.rstrip("/") + "/") for other in ended if other != path)]
    removed = (f" (the new output {undone[0]}{f' and {len(undone) - 1} more' if len(undone) > 1 else ''} held "
               f"no result yet and was removed)") if undone else ""
    return f"{NOTHING_WRITTEN}{removed}"


def _end_progress_bars() -> None:
    """End the line of a progress bar the error interrupted, so the ``error:`` line starts a line of its own."""
    tqdm = sys.modules.get("tqdm")
    for bar in list(getattr(getattr(tqdm, "tqdm", None), "_instances", ()) if tqdm else ()):
        with contextlib.suppress(Exception):
            bar.close()


def user_error_message(exc: BaseException) -> str | None:
    """The one-line message of an error the user can act on (bad input, value, path, lock, full disk), or None
    for an error that says nothing the user can act on (a bug: :func:`error_message` names its type)."""
    from savi_plugin.data.outputs import DISK_FULL_ERRNOS, disk_full_message
    from savi_plugin.errors import ConfigurationError, InputError, RunError
    from savi_plugin.registry import PluginNotFoundError

    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return disk_full_message(exc.errno, exc.filename)
    if isinstance(exc, OSError) and exc.errno == errno.ELOOP and exc.filename:
        return f"{printable(exc.filename)}: is a loop of symbolic links (it names itself); give the file itself"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, UnicodeEncodeError) and "surrogates not allowed" in str(exc):
        text = exc.object if isinstance(exc.object, str) else ""
        near = text[max(0, exc.start - 30):exc.end + 30].encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return (f"a file or folder name is not valid UTF-8 (near {near!r}): savi writes names into UTF-8 text "
                f"(reports, pages); rename it")
    loop = re.fullmatch(r"Symlink loop from (.+)", str(exc)) if isinstance(exc, RuntimeError) else None
    if loop:  # pathlib's resolve() of a link that names itself, directly or through others
        return (f"{printable(loop.group(1).strip(chr(39)))}: is a loop of symbolic links (it names itself); give the "
                f"file itself")
    if _is_unsafe_pickle(exc):
        from savi_plugin.errors import PICKLED_CHECKPOINT

        return PICKLED_CHECKPOINT
    if isinstance(exc, (ValueError, PluginNotFoundError, RunError, FloatingPointError, ConfigurationError,
                        InputError)):
        return _message_line(exc) or type(exc).__name__
    return None


def _message_line(exc: BaseException) -> str:
    """``exc``'s message as one line: savi's own messages are one line by construction, so a line break in one
    comes from a name it quotes and is shown escaped (:func:`printable`); another library's lines are joined
    (:func:`_one_line`)."""
    text = str(exc)
    return _one_line(printable(text) if type(exc).__module__.startswith("savi_plugin") else text)


def error_message(exc: BaseException) -> str:
    """One line for any error: :func:`user_error_message`, else the error's type and first words."""
    message = user_error_message(exc)
    if message is not None:
        return message
    if isinstance(exc, RecursionError):
        return "input nested too deeply to process (RecursionError); simplify it, or re-run with -v for details"
    if isinstance(exc, MemoryError) or _is_allocation_failure(exc):
        return (f"out of memory ({type(exc).__name__}: the allocator refused); use smaller inputs, batch or frame "
                f"counts, or a larger machine")
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or _one_line(str(exc)) or 'operating-system error'}"
    if isinstance(exc, RuntimeError) and "device" in str(exc).lower():
        return f"{_one_line(str(exc))} (a device string is cpu, cuda, cuda:N or mps)"
    text = _one_line(str(exc))
    return f"{type(exc).__name__}{': ' + text if text else ''} (unexpected; re-run with -v for the traceback)"


def _is_allocation_failure(exc: BaseException) -> bool:
    """torch's allocators report a failed allocation as a ``RuntimeError`` (``torch.OutOfMemoryError`` on a GPU,
    ``DefaultCPUAllocator: can't allocate memory`` on the CPU): the machine's memory, like ``MemoryError``."""
    if any(c.__name__ == "OutOfMemoryError" for c in type(exc).__mro__):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "CUDA out of memory" in text)


def _one_line(text: str, limit: int = 500) -> str:
    """``text``'s non-empty lines joined by "; ", at most ``limit`` characters: a longer line keeps its start
    (the file and key path) and its end (the reason, which ``file: key.path: message`` puts last) with `` ... ``
    between them, so the reason is never what is cut; the cut falls between words (a word longer than a third of
    the line, a long path, is cut inside as :func:`~savi_plugin.untrusted.shown` cuts a value)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = "; ".join(lines)
    if len(line) <= limit:
        return line
    budget = limit - 5  # the characters of the line kept: a third from its start, the rest from its end
    head, tail = line[:budget // 3], line[len(line) - (budget - budget // 3):]
    if line[len(head)] != " " and " " in head[len(head) // 2:]:  # the start ends inside a word: before it
        head = head[:head.rindex(" ")]
    if line[len(line) - len(tail) - 1] != " " and " " in tail[:len(tail) // 2]:  # the end starts inside one
        tail = tail[tail.index(" ") + 1:]
    return f"{head.rstrip()} ... {tail.lstrip()}"


def _is_unsafe_pickle(exc: BaseException) -> bool:
    """torch.load(weights_only=True) refusing a pickle (its message advises ``weights_only=False``: never shown).
    Recognised by name: this module does not import the pickle machinery. savi's own errors are not: the model-file
    check says this refusal already, naming the file (``data.model_config.pickled_weight_problem``)."""
    if type(exc).__module__.startswith("savi_plugin"):
        return False
    return any(c.__name__ == "UnpicklingError" for c in type(exc).__mro__) or "weights_only" in str(exc)


if __name__ == "__main__":
    sys.exit(main())

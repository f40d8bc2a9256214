"""The names around an output: its sidecars (:func:`sidecar`), a failed run's kept log, its lock and mark, the
temporary names, and the checks on a name (its length, the folder above it, a file output given as a folder)."""

from __future__ import annotations

import os
import re
import secrets
import stat
from pathlib import Path

from savi_plugin.errors import ConfigurationError
from savi_plugin.data.outputs.common import ForeignOutputError, LOCK_NAME, MARK_NAME
from savi_plugin.data.outputs.kinds import special_kind


def sidecar(output: str | Path, kind: str) -> Path:
    """``<output>.<kind>``: a file that belongs to ``output`` (progress, report, lock, mark), named by its full
    name, so ``pairs.jsonl`` and ``pairs.json`` have separate sidecars. They belong to the file itself: for a
    symlink (``proj/pairs.jsonl -> ../gen/pairs.jsonl``) they are the linked file's (``../gen/pairs.jsonl.<kind>``,
    where its writer put them; :func:`savi_plugin.data.paths.file_itself`), so every reader of a file -- training,
    conversion, inspection, merging -- finds its run report and progress whichever name it is given by."""
    from savi_plugin.data.paths import file_itself

    output = Path(output)
    if os.path.islink(output):
        output = file_itself(output)
    if not output.name:  # `.` or `/`: the folder's own name (a reader asked of a folder finds no sidecar there)
        output = Path(os.path.abspath(output))
        if not output.name:
            return output / f".{kind}"
    return output.with_name(f"{output.name}.{kind}")


def sidecar_shown(output: str | Path, kind: str) -> str:
    """How a message names the :func:`sidecar` of ``output``: by its path from where the user stands (relative to
    the working folder, else absolute), as every message names a file -- never by its bare name, which from
    another folder names another file (``sub/c1.jsonl``'s report is ``sub/c1.jsonl.report.json``, not a
    ``c1.jsonl.report.json`` the working folder may hold), and for a link, the sidecar beside the file it names."""
    from savi_plugin.data.paths import from_here

    return from_here(sidecar(output, kind))


def failed_log_path(output: str | Path) -> Path:
    """Where the log of a failed job is kept beside its ``output`` (``iter_0/eval.failed.log``,
    ``suite.failed.log``) when the failure removes the folder the log was written in (a temporary folder, or a new
    output undone after a configuration error: :meth:`Output.undo` keeps this name); the job's next success
    removes it (:func:`remove_failed_log`). A file savi did not write there is never replaced or removed
    (:func:`keep_failed_log` then takes ``<output>.failed-2.log``, ...)."""
    output = Path(output)
    return output.with_name(f"{output.name}.failed.log")


#: the first line of a log savi kept (:func:`keep_failed_log`): what tells it from a user's file of that name
FAILED_LOG_HEADER = b"# savi kept this log of a failed run of "


def _failed_log_names(output: str | Path) -> list[Path]:
    """:func:`failed_log_path`, then the names taken when a user's file stands there."""
    output = Path(output)
    return [failed_log_path(output), *(output.with_name(f"{output.name}.failed-{n}.log") for n in range(2, 100))]


def _failed_log_is_ours(path: Path) -> bool:
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return False
        with open(path, "rb") as fh:
            return fh.read(len(FAILED_LOG_HEADER)) == FAILED_LOG_HEADER
    except OSError:
        return False


#: the sidecars a file output may have (:func:`sidecar` kinds): progress, run report, lock, our mark
SIDECAR_KINDS = ("progress.jsonl", "report.json", "lock", MARK_NAME.lstrip("."))


def check_own_file(path: str | Path) -> None:
    """Refuse to open ``path`` -- an output's sidecar (progress file, run report) or a file savi appends to -- when
    what stands at its name is not a regular file savi could have written: a symbolic link (savi writes its own
    files at their names, never through a link, so a link there names someone else's file: appending to it,
    cutting its "torn" last line or reading it as savi's progress would touch or misjudge that file), a folder, a
    FIFO, socket or device; and a sidecar (or lock file) that is a hard link, a regular file with another name
    too (``st_nlink > 1``): savi creates its sidecars under their own names and replaces them by renames, never
    linking them, so another name is someone's file -- appending to it or removing a line of it would edit that
    file. The one check every opener of such a file asks: :func:`claim` for a file output's sidecars, the lock
    (:class:`OutputLock`), the appender (:class:`savi_plugin.data.writer.JsonlAppender`) and the progress reader.
    A file savi appends to or cuts (a generation output, ``diagnostics.jsonl``) with another name is refused the
    same way: its lines would change under the other name too.

    Raises:
        ForeignOutputError: ``<path>: is a symbolic link to <target>, which savi did not write; remove the link to
            redo every item`` (the remedy by what the file is).
    """
    import stat

    path = Path(path)
    try:
        st = os.lstat(path)
    except OSError:
        return  # nothing there (or nothing to open): the opener says what it finds
    kind = next((k for k in SIDECAR_KINDS if path.name.endswith("." + k) and len(path.name) > len(k) + 1), None)
    if path.name == LOCK_NAME:
        kind = "lock"
    if stat.S_ISREG(st.st_mode) and st.st_nlink <= 1:
        return
    redo = {"progress.jsonl": " to redo every item", "report.json": " (the run writes its report there when it "
                                                                    "ends)"}.get(kind or "", "")
    if stat.S_ISREG(st.st_mode):
        what = f"a hard link shared with another name ({st.st_nlink} links)"
        remove = "remove this name (the file stays under its other name)"
    elif stat.S_ISLNK(st.st_mode):
        what, remove = f"a symbolic link to {os.readlink(path)}", "remove the link"
    else:
        what = "a folder" if stat.S_ISDIR(st.st_mode) else special_kind(path) or "not a regular file"
        remove = "move it away"
    named = {"progress.jsonl": "progress file", "report.json": "run report", "lock": "lock file"}.get(kind or "", "mark")
    if kind is None and stat.S_ISREG(st.st_mode):  # a data file savi appends to (or cuts), linked by the user
        raise ForeignOutputError(f"{path}: is {what}: savi appends to this file, and its lines would change under "
                                 f"the other name too; break the link (copy the file and move the copy over this "
                                 f"name) and run again")
    own = f"savi keeps its {named} at that name" if kind else "savi writes only files of its own"
    raise ForeignOutputError(f"{path}: is {what}, which savi did not write ({own}); {remove}{redo}")


#: what a temporary file adds to the name it stands in for (:func:`_temp_name`: ``.NAME.<pid>.<8 hex>.tmp``, a pid
#: of at most 7 digits)
_TEMP_NAME_EXTRA = len(".") + len(".1234567.01234567.tmp")


def _name_max(path: Path) -> int:
    """The longest file name, in bytes, the file system holding ``path`` (its nearest existing folder) allows."""
    folder = path.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def short_path(path: str | Path, keep: int = 60) -> str:
    """``path`` as written, its middle replaced by ``...`` when it is longer than ``keep`` characters: a message
    names a long path this way so that the reason after it is never what a length limit cuts."""
    text = str(path)
    return text if len(text) <= keep else f"{text[:keep // 2]}...{text[-(keep - keep // 2 - 3):]}"


def name_length_error(output: str | Path, folder: bool, output_name: str = "output") -> ConfigurationError | None:
    """The one-line refusal of an output whose own name, or the name of a file savi writes beside it (its
    sidecars, :data:`SIDECAR_KINDS`, and their temporary files), is longer than the file system allows
    (``NAME_MAX`` bytes, usually 255), or None. Asked before anything else of an output, so that the system's
    ``File name too long`` is never met half way through a job or mistaken for something at that name."""
    path = Path(output)
    name = os.fsencode(path.name)
    if not name:
        return None
    extras = ([len(".lock")] if folder else [len("." + kind) for kind in SIDECAR_KINDS])
    longest = len(name) + max(extras) + _TEMP_NAME_EXTRA
    limit = _name_max(path)
    if longest <= limit:
        return None
    most = limit - (longest - len(name))
    return ConfigurationError(
        f"{short_path(output)}: {output_name}'s name is too long: {len(name)} bytes, and savi writes files beside it "
        f"whose names are up to {longest - len(name)} bytes longer (its sidecars and their temporary files), "
        f"{longest - limit} bytes over this file system's {limit}-byte limit on a name (NAME_MAX): choose "
        f"{another(output_name)} whose name is at most {most} bytes")


def folder_above_problem(output: str | Path) -> str | None:
    """What stands in the way of ``output``'s folder: ``"qa.jsonl is a file, not a folder"`` when the nearest
    existing path above ``output`` is not a folder (``--out qa.jsonl/site``, where the system says only "Not a
    directory" of every name below it), or None (every existing path above is a folder)."""
    import stat

    for above in Path(output).parents:
        try:
            mode = os.stat(above).st_mode
        except OSError:  # absent, or itself below a file (ENOTDIR): look further up
            continue
        if stat.S_ISDIR(mode):
            return None
        return f"{above} is {'a file' if stat.S_ISREG(mode) else special_kind(above)}, not a folder"
    return None


def folder_above_error(output: str | Path, output_name: str = "output") -> ConfigurationError | None:
    """The one-line refusal of an output below a file (:func:`folder_above_problem`), or None: a wrong flag value,
    said before any name below the file (the output's mark, lock or sidecars) is looked at."""
    problem = folder_above_problem(output)
    return ConfigurationError(f"{output}: {problem}: choose {another(output_name)}") if problem else None


def names_a_folder(given: str | os.PathLike) -> bool:
    """Whether a path as the user gave it names a folder whatever is there: it ends in ``/`` (or ``/.``), as
    ``cp`` and the shell read it. ``pathlib`` drops both (``Path("newdir/")`` is ``newdir``), so it is asked of the
    given text, before it becomes a :class:`~pathlib.Path`."""
    text = os.fspath(given)
    seps = "".join(filter(None, (os.sep, os.altsep)))
    if not isinstance(text, str) or not text.rstrip(seps):  # the root, `/`, which pathlib keeps as it is
        return False
    return text.endswith(tuple(f"{sep}{tail}" for sep in seps for tail in ("", ".")))


def file_output(given: str | os.PathLike, output_name: str = "output") -> Path:
    """A file output as given (``--output``, ``DST``, ``--out``), as a :class:`~pathlib.Path`: the one conversion
    every writer of a file makes, so a name that names a folder (:func:`names_a_folder`: ``newdir/``) is refused
    instead of silently becoming the file ``newdir``.

    Raises:
        ConfigurationError: ``given`` ends in ``/`` (one line, exit 2).
    """
    if names_a_folder(given):
        raise ConfigurationError(f"{given}: not a file name: {output_name} ending in '/' names a folder, and savi "
                                 f"writes a file here: give the file's name")
    return Path(given)


def another(name: str, adjective: str = "another") -> str:
    """``another --output`` for a flag or a noun, ``another path for the output's report.json`` for a name that
    already has its article (messages read ``choose another ...`` either way)."""
    if name.startswith(("the ", "a ", "an ")):
        return f"{adjective} path for {name}"
    return f"{adjective} {name}"


def lock_path(output: str | Path, folder: bool = False) -> Path:
    """``<output>.lock`` for a file output, ``<output>/.savi.lock`` for a folder output."""
    output = Path(output)
    return output / LOCK_NAME if folder else sidecar(output, "lock")


def mark_path(output: str | Path, folder: bool) -> Path:
    """Where our mark of ``output`` lives: ``<folder>/.savi-output.json`` or ``<file>.savi-output.json``."""
    output = Path(output)
    return output / MARK_NAME if folder else sidecar(output, MARK_NAME.lstrip("."))


#: the names :func:`_temp_name` makes (``.NAME.<pid>.<8 hex>.tmp``, a suffix after it), left where a writer was killed
TEMP_NAME = re.compile(r"\..+\.\d+\.[0-9a-f]{8}\.tmp(?:\..*)?")


def _temp_name(path: Path, suffix: str = "") -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{suffix}")

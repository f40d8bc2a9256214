"""The output layer: every file or folder a ``savi`` command writes goes through this module.

What holds for every output, by construction (README "Guarantees"):

* **A target is new, or ours for the same run** (:func:`claim`). An output that exists is written only when it
  carries our mark (:func:`mark_path`: ``<folder>/.savi-output.json`` or ``<file>.savi-output.json``) for the same
  command and the same configuration (a resume or an extension), and, for a file the job finished, the content
  the mark recorded (:meth:`Output.record_content`: a file someone changed since may be theirs now); a mark of another command or configuration is
  refused naming what changed, and an output without our mark (a user's file, a folder with files we did not
  write, ``--output-dir .`` in a project) is refused naming a file in it. A mark is ours only when it is a
  regular file holding a JSON object with ``"written_by": "savi"`` (:func:`foreign_mark`); anything else at its
  name (a user's text or JSON, a folder, a FIFO, a link), and a lock's name holding anything but a savi lock, is
  refused naming that path before anything is written.
* **A run folder's steps are the run's** (:func:`steps_problem`, :func:`check_not_in_run_step`): a command that
  writes its steps inside a folder it claimed (``savi ablate``'s ``OUT/<loss>``, ``savi align``'s ``iter_<i>``)
  names them in the claim (``steps``); one that exists and is not the run's -- a user's folder or file, another
  command's output -- is refused before the first step, naming what to move. The mark lists the steps, so
  another command's output at one of them is refused naming the run.
* **An output is a regular file or a folder** (:func:`special_kind`, :func:`link_problem`): an existing FIFO,
  socket or device (also through a symlink, e.g. ``/dev/null`` or ``/dev/stdout``) is refused, never replaced by
  the final rename; so is a file output that is a symbolic link (the rename would replace the link, not write
  its target) and a link to nothing. A folder output may be a link to a folder: it is written through the link,
  and replaced whole it is the folder the link leads to, the link kept (:func:`folder_behind_link`).
* **An output is never an input** (:func:`check_distinct`): not equal to, and not inside (nor, for a folder
  output, around) anything the job reads -- the model folder, a data file, the recipe, a video a manifest names.
  Paths are compared after ``..``, ``./`` and symlinks are resolved, by inode (a hard link is the same file), and
  case-insensitively where the file system is.
* **An output never lies in a training checkpoint** (:func:`check_not_in_checkpoint`): a checkpoint's run checks
  every file it holds when it resumes, so a plot, site or report written there would stop the run from being
  continued; refused for every writer, whether or not it reads the run.
* **One writer per output** (:class:`OutputLock`): an exclusive lock for the whole job, ``flock`` on
  ``<output>.lock`` (a file) or ``<folder>/.savi.lock`` (a folder), naming its holder, and first a *shadow*
  ``flock`` that removing that file (or the whole output) does not free: ``/tmp/savi-locks-<uid>/<digest>.lock``,
  keyed by the device and inode of the output's parent folder and its name (:func:`shadow_lock_path`); a running
  job puts back a removed lock file with one warning. An output inside a folder another live job holds is refused
  too (:func:`check_no_enclosing_job`). Where the file system does
  not support ``flock`` (some NFS and Lustre mounts raise ``ENOLCK``, ``EOPNOTSUPP`` or ``ENOSYS``) the lock falls
  back to a file created with ``O_EXCL`` (``<lock>.excl``) holding the holder's pid and host; a holder that is
  gone (same host, no such pid) is taken over, one on another host is respected.
* **Sidecars are named by the full output name** (:func:`sidecar`): ``pairs.jsonl`` and ``pairs.json`` never share
  a progress file, report or lock.
* **Writes are atomic, temporaries unique and always removed** (:func:`write_json`, :func:`write_text`,
  :func:`atomic_path`, :func:`temp_folder`): a temporary file is named ``.<name>.<pid>.<random>.tmp`` beside the
  destination and removed on every exit (success, exception, Ctrl-C); the destination is replaced by one
  ``rename``.
* **A file described by a run report never stands without it** (:func:`write_reported`): ``savi data convert``
  and ``savi generate merge`` write the data under a temporary name, write its report (the content identity is
  computed from the temporary), and only then rename the data into place; a failure at any point (a full disk at
  the report) leaves the data's name as it was.
* **A configuration error marks nothing** (:meth:`Output.undo`): when a ``ConfigurationError`` -- or any error
  or stop (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT: a ``KeyboardInterrupt``) before the first result (the job added only
  its mark, empty files and records of its configuration, :meth:`Output.wrote_record`) -- leaves the
  ``with claim(...)`` block of an output that was new, what the job created there (mark, sidecars, files, the
  folder) is removed, so the corrected command is not refused as "another configuration"; the boundary's line
  then says that nothing was written (:func:`command_outputs`).
* **An output removed or replaced under a running job stops it** (:meth:`Output.check_intact`): from its mark
  on, a job's output is known by its identity (a folder's device and inode, a file's folder and mark); the next
  write through this module into it (:func:`atomic_path`, :func:`move_into`, an appender's next line,
  :func:`check_live_outputs` at a training step) and the end of the ``with claim(...)`` block find it removed,
  replaced or without our mark, and the job stops with one line naming the output (:class:`OutputRemovedError`),
  writing nothing more there -- never a finished job in a recreated folder no mark claims.
* **A full disk names the destination** (:func:`disk_error`): ``ENOSPC``, ``EDQUOT`` and ``EFBIG`` become one
  ``OSError`` naming the file the user asked for, never a temporary name, and no temporary file is left.

Under a launcher only rank 0 takes a folder output's lock (the other ranks belong to the same job).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from savi_plugin.errors import ConfigurationError, RunError

log = logging.getLogger(__name__)

LOCK_NAME = ".savi.lock"
#: our mark on an output: which command made it, with which configuration
MARK_NAME = ".savi-output.json"
#: errnos of a file system that has no ``flock`` (NFS without lockd, some Lustre mounts)
NO_FLOCK_ERRNOS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}
#: errnos that mean the destination's file system is full or the file too large
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class OutputLockedError(RunError):
    """Another live process holds the output's lock; the message names it."""


class OutputIsInputError(ConfigurationError):
    """An output would overwrite or write into one of the job's inputs: a configuration error (exit status 2),
    found before the job starts."""


class OutputInCheckpointError(ConfigurationError):
    """An output would add files to a training checkpoint (:func:`checkpoint_holding`): its run's resume checks
    every file the checkpoint holds, so the run could not be continued. A configuration error (exit status 2)."""


class OutputRemovedError(RunError):
    """An output this job holds was removed or replaced while the job ran (:meth:`Output.check_intact`)."""


class ForeignOutputError(ValueError):
    """An output exists and was not written by this command with this configuration (one line naming it)."""


# --------------------------------------------------------------------------------------------- names
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


def keep_failed_log(log: str | Path, output: str | Path) -> Path:
    """Move ``log`` (a file this job wrote, in a folder its failure removes) beside ``output``: to
    :func:`failed_log_path`, or, where a file savi did not write stands at that name, to the first
    ``<output>.failed-N.log`` free or ours; its first line says what it is. Returns where it is now."""
    names = _failed_log_names(output)
    dst = next((p for p in names if not os.path.lexists(p) or _failed_log_is_ours(p)), None)
    if dst is None:
        return Path(log)
    with atomic_path(dst) as tmp:
        with open(tmp, "wb") as out, open(log, "rb") as src:
            out.write(FAILED_LOG_HEADER + os.fsencode(str(output)) + b"\n")
            shutil.copyfileobj(src, out)
    Path(log).unlink(missing_ok=True)
    return dst


def remove_failed_log(output: str | Path) -> None:
    """Remove the log :func:`keep_failed_log` kept beside ``output`` (its job has now succeeded); a user's file of
    that name stays."""
    for path in _failed_log_names(output):
        if _failed_log_is_ours(path):
            path.unlink(missing_ok=True)


#: the sidecars a file output may have (:func:`sidecar` kinds): progress, run report, lock, our mark
SIDECAR_KINDS = ("progress.jsonl", "report.json", "lock", MARK_NAME.lstrip("."))


def sidecar_clash(output: str | Path, folder: bool = False) -> str | None:
    """Why ``output`` would share a name with another output's sidecar, or None: ``output`` (a file or a folder) is
    a sidecar of an output we marked (``pairs.jsonl.report.json`` beside a marked ``pairs.jsonl``), or a sidecar
    of file ``output`` is itself an output we marked (``--output q.jsonl.progress.jsonl`` of an earlier run, then
    ``--output q.jsonl``)."""
    output = Path(output)
    for kind in SIDECAR_KINDS:
        if output.name.endswith("." + kind) and len(output.name) > len(kind) + 1:
            owner = output.with_name(output.name[:-len(kind) - 1])
            if read_mark(owner, False) is not None:
                return f"is the {kind} of {owner}, an output of {read_mark(owner, False).get('command')}"
        if folder:
            continue
        side = sidecar(output, kind)
        theirs = read_mark(side, side.is_dir()) if kind != MARK_NAME.lstrip(".") else None
        if theirs is not None:
            return (f"would use {side} as its {kind}, but that {'folder' if side.is_dir() else 'file'} is an output "
                    f"of {theirs.get('command')}")
    return None


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


def _temp_name(path: Path, suffix: str = "") -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{suffix}")


# --------------------------------------------------------------------------------------------- disk full
#: errno -> (what is full, what frees it); ``None``: one of the three, the system did not say which
_DISK_FULL_WORDS = {
    errno.ENOSPC: ("no space left on the device", "free space"),
    errno.EDQUOT: ("disk quota exceeded", "free space or raise the quota"),
    errno.EFBIG: ("file too large (file size limit)",
                  "raise the file size limit (ulimit -f) or write to a file system that allows it"),
    None: ("the disk, a disk quota or the file size limit was full", "free space (or raise the quota or ulimit -f)"),
}


def disk_full_message(code: int | None, filename: str | Path | None, doing: str = "writing", *,
                      stdout: bool = False) -> str:
    """The one line every command prints for a full disk, a quota or a file size limit (``code``: ``ENOSPC``,
    ``EDQUOT``, ``EFBIG``, or None when the writer did not say which) met while ``doing`` ``filename``; ``stdout``:
    the write that failed was to standard output (``savi plugins >file`` on a full device), which is named, with
    no output folder and nothing to resume."""
    reason, remedy = _DISK_FULL_WORDS[code if code in _DISK_FULL_WORDS else None]
    if stdout:
        return (f"standard output: {reason} while {doing} the command's output; {remedy}, or send it elsewhere, "
                f"and re-run the command")
    where = f"{filename}: " if filename else ""
    unnamed = "" if filename else " (the system named no file; see the command's output folder)"
    return f"{where}{reason} while {doing}{unnamed}; {remedy} and re-run the same command to resume"


def disk_full_errno(text: str) -> int | None:
    """The errno a message shows for a full disk, quota or file size limit (Python's ``[Errno 28] No space left on
    device``, Rust's ``os error 28``, torch's ``iostream error``), or None."""
    if "File too large" in text or "os error 27" in text or "[Errno 27]" in text:
        return errno.EFBIG
    if "Disk quota exceeded" in text or "[Errno 122]" in text or "os error 122" in text:
        return errno.EDQUOT
    if any(s in text for s in ("No space left", "os error 28", "[Errno 28]", "iostream error", "file write failed")):
        return errno.ENOSPC
    return None


def _file_size_limit() -> int | None:
    """The process's file size limit in bytes (``ulimit -f``), or None when there is none."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def _cut_by_the_limit(folder: Path) -> Path | None:
    """The file under ``folder`` that the file size limit (``ulimit -f``) cut -- one exactly at the limit, the
    newest if several --, or None (no limit, or no file at it). What a writer that names no file (torch's
    ``file write failed`` while the Trainer saves ``checkpoint-1/optimizer.pt``) left cut."""
    limit = _file_size_limit()
    if limit is None:
        return None
    found: tuple[float, Path] | None = None
    for root, _, names in os.walk(folder):
        for name in names:
            path = Path(root) / name
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_size == limit and (found is None or st.st_mtime > found[0]):
                found = (st.st_mtime, path)
    return None if found is None else found[1]


def _file_being_written(exc: BaseException, folder: Path) -> str | None:
    """The file under ``folder`` that the failed write was writing, as the writer's innermost frame in ``exc``'s
    traceback names it (``torch.save``'s ``f``, safetensors' ``filename``: neither says it in its message), or
    None."""
    inside = os.path.realpath(folder) + os.sep
    frames = []
    tb = exc.__traceback__
    while tb is not None and len(frames) < 200:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        for value in list(frame.f_locals.values()):
            if not isinstance(value, (str, Path)) or len(str(value)) > 4096 or "\n" in str(value):
                continue
            text = str(value)
            if os.path.realpath(text).startswith(inside) and not os.path.isdir(text):
                return text
    return None


def disk_error(exc: BaseException, destination: str | Path) -> OSError | None:
    """An ``OSError`` naming ``destination`` when ``exc`` (or its cause) is a full disk or a too-large file.

    torch reports a full disk as ``basic_ios::clear: iostream error``, safetensors as ``os error 28``, ``os.write``
    without a file name; each becomes ``OSError(errno, reason, destination)``. Where ``destination`` is a folder
    (a training run's, where transformers writes its checkpoints) the file inside it is named when it can be told:
    the one an ``OSError`` names, the one the file size limit cut (:func:`_cut_by_the_limit`), or the one the
    writer was given (:func:`_file_being_written`).
    """
    def named(code: int) -> str:
        if not os.path.isdir(destination):
            return str(destination)
        inside = os.path.realpath(destination) + os.sep
        given = getattr(exc, "filename", None)
        if isinstance(given, (str, Path)) and os.path.realpath(given).startswith(inside):
            return str(given)
        cut = _cut_by_the_limit(Path(destination)) if code == errno.EFBIG else None
        return str(cut or _file_being_written(exc, Path(destination)) or destination)

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), named(exc.errno))
        code = disk_full_errno(str(exc))
        if code in (errno.EFBIG, errno.EDQUOT):
            return OSError(code, _DISK_FULL_WORDS[code][0], named(code))
        if code == errno.ENOSPC:
            where = Path(destination)
            try:
                free = shutil.disk_usage(where if where.exists() else where.parent).free
            except OSError:
                free = 0
            limit = _file_size_limit()
            if limit is not None and free > max(limit, 64 * 2**20):  # torch's "iostream error" names no cause:
                return OSError(errno.EFBIG, _DISK_FULL_WORDS[errno.EFBIG][0], named(errno.EFBIG))  # not the disk
            return OSError(errno.ENOSPC, f"no space left on the device ({free // 2**20} MiB free)", named(errno.ENOSPC))
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


# --------------------------------------------------------------------------------------------- atomic writes
@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a unique temporary path beside ``path``; on success it replaces ``path`` by one rename.

    The temporary file is removed on every other exit (an exception, Ctrl-C); a full disk is re-raised naming
    ``path``. Writers that need a file name (``safetensors.save_file``, ``torch.save``, a video muxer) write to the
    yielded path; ``suffix`` ends its name (e.g. ``.mp4``, for writers that pick a format by the name).
    """
    path = Path(path)
    special = special_kind(path)
    if special is not None:  # the rename would replace the node (a FIFO, /dev/null) instead of writing through it
        raise ForeignOutputError(f"{path}: exists and is {special}; savi writes only regular files: choose another "
                                 f"output")
    linked = link_problem(path, folder=False)
    if linked is not None:  # the rename would replace the link, not write its target
        raise ForeignOutputError(f"{path}: {linked}")
    check_live_outputs(path)  # an output moved away is not made again by the folder creation below
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path, suffix)
    try:
        yield tmp
        check_live_outputs(path)
        try:
            os.replace(tmp, path)
        except IsADirectoryError:  # a folder made at its name while the job ran: said of the name, not the temporary
            raise ForeignOutputError(f"{path}: is a folder, which savi did not write (savi writes a file at that "
                                     f"name); move it away and run again") from None
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        full = disk_error(exc, path) if isinstance(exc, Exception) else None
        if full is not None:
            raise full from None
        if isinstance(exc, OSError) and str(tmp) in (str(exc.filename), str(exc.filename2)):
            # a file that cannot be replaced (immutable, a folder without write permission): said of the
            # destination, never of the temporary name that no longer exists
            raise OSError(exc.errno, f"{exc.strerror or exc} (savi could not write or replace it)", str(path)) from None
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
    """An open temporary file that replaces ``path`` when the block ends without an error (see
    :func:`atomic_path`); its data is flushed to disk before the rename."""
    with atomic_path(path) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (UTF-8, non-ASCII kept, unknown types as ``str``) to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False, default=str) + "\n")


def write_jsonl(path: str | Path, objects: Iterable[Any]) -> Path:
    """Write one JSON line per object to ``path`` atomically."""
    with atomic_open(path, "w") as fh:
        for obj in objects:
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
    return Path(path)


def write_reported(path: str | Path, report: str | Path, write: Callable[[Any], None],
                   describe: Callable[[Path], Any]) -> Path:
    """Write data file ``path`` and the run report ``report`` that describes it, so that ``path`` never stands
    under its name without that report (a report is what says a product is incomplete or unverified; a data file
    without it would be taken as a plain copy).

    ``write(fh)`` writes the data to an open text file (UTF-8) at a unique temporary beside ``path``;
    ``describe(tmp)`` builds the report from that temporary (its content identity is the data's, size and
    SHA-256); the report is written (atomically) and only then is the temporary renamed onto ``path``. On any
    failure -- a full disk while writing the data or the report, an interrupt -- ``path`` is left as it was and
    the temporary is removed; a report already written for data that never took its name is removed too. A full
    disk names ``path``.
    """
    report = Path(report)
    reported = False
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "w", encoding="utf-8") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            write_json(report, describe(tmp))
            reported = True
    except BaseException:
        if reported:  # it vouches for bytes that are not at ``path``
            with contextlib.suppress(OSError):
                report.unlink()
        raise
    return Path(path)


def copy_file(src: str | Path, dst: str | Path) -> Path:
    """Copy ``src`` to ``dst`` atomically (a unique temporary beside ``dst``, then one rename)."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def move_into(src: str | Path, dst: str | Path) -> Path:
    """Move a file this job wrote (a temporary) to ``dst`` by one rename (same file system)."""
    check_live_outputs(dst)
    try:
        os.replace(src, dst)
    except OSError as exc:
        full = disk_error(exc, dst)
        raise (full or exc) from None
    return Path(dst)


def folder_behind_link(path: str | Path) -> Path:
    """The folder a symbolic link at ``path`` leads to (its real path), or ``path`` itself when it is no link to
    a folder. A folder output may be such a link (README "Guarantees"): what replaces the folder, and the
    temporaries built for it, belong beside the folder itself -- on its file system, so one rename moves them in --
    while the user's link stays as it is and names the new folder."""
    path = Path(path)
    return Path(os.path.realpath(path)) if os.path.islink(path) and os.path.isdir(path) else path


@contextlib.contextmanager
def temp_folder(near: str | Path, keep: bool = False) -> Iterator[Path]:
    """A unique folder beside ``near`` (``.<name>.<pid>.<random>.tmp``; beside the folder ``near`` leads to when
    it is a link to one, :func:`folder_behind_link`), removed on every exit unless ``keep`` and the block
    succeeded (then the caller has moved it). Temporaries of ``near`` left by a process that is gone (SIGKILL)
    are removed first (:func:`remove_stale_temps`)."""
    near = folder_behind_link(near)
    near.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(near)  # what a killed build left beside it (a site, a conversion, a fixture)
    tmp = _temp_name(near)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        full = disk_error(exc, near) if isinstance(exc, Exception) else None
        if full is not None:
            raise full from None
        raise
    if not keep:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def made_folder(path: str | Path, lock: str | None = None) -> Iterator[Path]:
    """``path`` made as a folder (its missing parents too) for a job another program fills (lmms-eval's
    ``--output_path``). With ``lock`` (how a refusal names the output) the folder's :class:`OutputLock` is held over
    the block, so two jobs never fill one folder: another live job holding it (a ``savi eval run``, a suite, any
    writer) is refused with one line naming it, and what this call made is removed. When the block fails, what it
    made is removed where it is still empty: the folders this call created and the empty folders made inside them
    during the block, never a folder that existed before or anything holding a file (nor a link)."""
    path = Path(path)
    made, probe = [], path
    while not os.path.lexists(probe) and probe != probe.parent:
        made.append(probe)
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    held, started = None, False
    try:
        held = OutputLock(path, folder=True, what=lock).acquire() if lock is not None else None
        started = True  # refused: the folder holds only the other job's files, none of this one's
        yield path
    except BaseException:
        if held is not None:  # first: the lock file would keep the folder from being empty
            held.release()
            held = None
        for folder in made:  # deepest first
            if not folder.is_dir() or folder.is_symlink():
                continue
            for root, dirs, _ in os.walk(folder, topdown=False):  # empty folders made inside it during the block
                for name in dirs:
                    with contextlib.suppress(OSError):  # not empty, or a link: kept
                        if not os.path.islink(os.path.join(root, name)):
                            os.rmdir(os.path.join(root, name))
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        if started and path.is_dir() and any(path.iterdir()):  # what the other program wrote before the stop
            note_ended(path, "kept")
        raise
    finally:
        if held is not None:
            held.release()


def remove_stale_temps(near: str | Path) -> list[Path]:
    """Remove the temporaries beside ``near`` (:func:`_temp_name`: ``.<name>.<pid>.<random>.tmp*``) whose process
    is gone from this host -- what a SIGKILL leaves -- and return them. A live process's are kept."""
    import glob

    near = Path(near)
    prefix = f".{near.name}."
    removed = []
    parent = _parent(near)
    if not parent.is_dir():
        return removed
    for entry in parent.glob(glob.escape(prefix) + "*.tmp*"):
        pid = entry.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _alive({"host": socket.gethostname(), "pid": int(pid)}):
            if entry.is_dir() and not entry.is_symlink():
                remove_tree(entry)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def remove_tree(path: str | Path) -> None:
    """Remove a folder this job owns (a previous result of the same command, or its own temporary)."""
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------- locks
def _holder_text(info: dict) -> str:
    since = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
    child = info.get("child")
    orphan = ""
    if isinstance(child, int) and info.get("host") == socket.gethostname() and not _alive(info) \
            and _alive({**info, "pid": child}):  # the holder was killed; a process it started holds its locks
        orphan = f" (gone; pid {child}, which it started, still runs and holds the lock)"
    return (f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, since {when}{orphan}"
            + (f": {info['command']}" if info.get("command") else ""))


def _read_info(path: Path) -> dict:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _job_key() -> str | None:
    """What the ranks of one launched job share (its launcher's rendezvous), or None outside a launcher."""
    from savi_plugin.launch import launcher_name

    name = launcher_name()
    if name is None:
        return None
    return ":".join([name] + [os.environ.get(k, "") for k in ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")])


def _holder_info() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
            "command": " ".join(sys.argv)[:500], "job": _job_key()}


def _held_by_another_job(lock: Path, output: Path | None = None) -> dict | None:
    """The holder of ``lock`` when a live process of another job holds it, else None (no lock, released, this
    process, or another rank of this launched job). With ``output`` (its real path) the job's shadow lock
    (:func:`shadow_lock_path`) is asked too, so a lock file someone removed does not hide its holder."""
    info = _read_info(lock)
    held = _flock_holder(lock, info) if info else None
    if held is None and output is not None:
        shadow = shadow_lock_path(output)
        if shadow is not None and os.path.exists(shadow):
            held = _flock_holder(shadow, _read_info(shadow), _read_info(lock))
    return held


def _flock_holder(lock: Path, info: dict, fallback: dict | None = None) -> dict | None:
    """``info`` (or ``fallback`` when ``info`` is empty) when another job's live process holds ``lock``."""
    shown = info or fallback or {}
    if shown.get("pid") == os.getpid() and shown.get("host") == socket.gethostname():
        return None
    if shown.get("job") is not None and shown.get("job") == _job_key():
        return None
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return shown or {"pid": "?"}
    except OSError:  # no flock here: the O_EXCL lock file beside it decides
        return info if _holds(_read_info(lock.with_name(lock.name + ".excl"))) else None
    finally:
        os.close(fd)
    return None


# ------------------------------------------------------------------------------ the shadow lock (one per output)
#: how often a running job checks that its lock files are still in place and puts back a removed one
LOCK_CHECK_SECONDS = 2.0
#: shadow lock files no process holds (left by killed jobs) and older than this are removed by the next job that
#: takes a shadow lock, so they do not pile up
STALE_SHADOW_SECONDS = 60.0


def _shadow_roots() -> list[Path]:
    """Where the per-user shadow lock folder may live, in order: ``/tmp`` first, whatever ``TMPDIR`` says, so two
    jobs of one user started from different shells (one with ``TMPDIR`` or ``XDG_RUNTIME_DIR`` set, one without)
    meet in one place; ``XDG_RUNTIME_DIR`` is not used because logind removes it when the user's last session
    ends, while a ``nohup`` job still runs. The temporary folder Python chooses is the fallback."""
    roots = [Path("/tmp")]
    with contextlib.suppress(Exception):
        roots.append(Path(tempfile.gettempdir()))
    return list(dict.fromkeys(roots))


def shadow_lock_folder() -> Path | None:
    """The user's shadow lock folder, ``<tmp>/savi-locks-<uid>``, created ``0700``; None when no root gives one
    this user alone owns (not writable, or squatted by another user or with group/other access: why is logged at
    debug level, and the job is locked by its visible lock file alone)."""
    uid = os.getuid()
    for root in _shadow_roots():
        folder = root / f"savi-locks-{uid}"
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder, 0o700)
            st = os.lstat(folder)
        except OSError as exc:
            log.debug("no shadow lock folder at %s: %s", folder, exc)
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
            log.debug("no shadow lock folder at %s: %s", folder, "not a folder" if not stat.S_ISDIR(st.st_mode)
                      else f"owned by uid {st.st_uid}" if st.st_uid != uid else f"mode {oct(st.st_mode & 0o777)}")
            continue
        return folder
    return None


def shadow_lock_path(output: str | Path) -> Path | None:
    """The shadow lock of output ``output`` (a real path): a file in :func:`shadow_lock_folder` named by a digest
    of the output's identity on this machine -- the device and inode of its parent folder and its name. Removing
    or replacing the output (a folder replaced whole, ``rm -r`` of a training folder, its ``.lock`` file) does not
    change it, and every spelling of the output (``./``, symlinks, a moved parent folder) names the same one.
    None when there is no shadow folder or the parent folder does not exist."""
    output = Path(output)
    folder = shadow_lock_folder()
    if folder is None:
        return None
    try:
        st = os.stat(output.parent)
    except OSError:
        return None
    name = output.name.casefold() if _case_insensitive(output.parent) else output.name
    key = hashlib.sha256(f"{st.st_dev}:{st.st_ino}:{name}".encode("utf-8", "surrogateescape")).hexdigest()
    return folder / f"{key[:40]}.lock"


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not removed, not replaced by another file)."""
    try:
        a, b = os.lstat(path), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _sweep_stale_shadows(folder: Path, keep: Path) -> None:
    """Remove shadow lock files no process holds (left by killed jobs) once they are old: taken with a
    non-blocking exclusive ``flock`` and unlinked while held, so a job that opened one meanwhile sees it gone
    and retries (:meth:`OutputLock._take_shadow`)."""
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if entry.path == str(keep) or not entry.name.endswith(".lock"):
                continue
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime < STALE_SHADOW_SECONDS:
                    continue
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if _names(Path(entry.path), fd):
                    os.unlink(entry.path)
            except OSError:
                pass
            finally:
                os.close(fd)


def _remove_empty_lock_file(path: Path) -> None:
    """Remove the lock file a stopped :meth:`OutputLock.acquire` created and had not yet written its holder into:
    only while nobody holds it and it names no holder (a holder writes its line right after it locks)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_size == 0 and _names(path, fd):
                os.unlink(path)
        finally:
            os.close(fd)


# the locks this process holds, checked by one watcher thread (:func:`_watch_locks`)
_held: list[OutputLock] = []
_held_guard = threading.Lock()
_watcher: threading.Thread | None = None


def _register(lock: OutputLock) -> None:
    global _watcher
    with _held_guard:
        _held.append(lock)
        if _watcher is None or not _watcher.is_alive():
            _watcher = threading.Thread(target=_watch_locks, name="savi-lock-check", daemon=True)
            _watcher.start()


def _unregister(lock: OutputLock) -> None:
    with _held_guard, contextlib.suppress(ValueError):
        _held.remove(lock)


def _watch_locks() -> None:
    """Every :data:`LOCK_CHECK_SECONDS`, each held lock checks its files (:meth:`OutputLock.check`); the thread
    ends when this process holds no lock."""
    global _watcher
    while True:
        time.sleep(LOCK_CHECK_SECONDS)
        with _held_guard:
            held = list(_held)
            if not held:
                _watcher = None
                return
        for lock in held:
            try:
                lock.check()
            except OSError as exc:  # a check never ends the job
                log.debug("%s: checking its lock failed: %s", lock.output, exc)


def _forget_locks_in_child() -> None:
    """A forked child (a data loader worker) holds none of its parent's locks or outputs and runs no watcher."""
    global _held, _held_guard, _watcher, _live
    _held, _held_guard, _watcher, _live = [], threading.Lock(), None, []


os.register_at_fork(after_in_child=_forget_locks_in_child)


# ------------------------------------------------------------------------ child processes (lmms-eval, workers)
#: Linux's ``prctl`` option that sends the child a signal when the thread that started it ends
_PR_SET_PDEATHSIG = 1


def _death_signal_setter() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the child killed (SIGKILL) when this process dies, or None where the kernel offers
    no such request (not Linux). ``prctl`` is looked up here, before the fork, so the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request was made: nobody would send the signal
            os.kill(os.getpid(), signal.SIGKILL)

    return die_with_parent


def start_child(command: list[str], **popen_kwargs: Any):
    """Start a process of this job (lmms-eval, a listing of lmms-eval's, a benchmark worker): the one place savi
    starts a program (``tests/data/test_write_routes.py`` refuses a ``subprocess`` call anywhere else). Returns
    the :class:`subprocess.Popen` (keyword arguments are passed to it).

    * The child dies with this process: on Linux it is killed when the thread that started it ends
      (``PR_SET_PDEATHSIG`` with SIGKILL, set before its program runs), so a ``savi`` killed with SIGKILL -- the
      OOM killer, a scheduler's ``kill -9`` -- leaves no lmms-eval writing into the output it held.
    * While it lives it holds every output lock this process holds (:class:`OutputLock`): their descriptors are
      passed on (``pass_fds``), and a ``flock`` is freed only when every process holding its open file has closed
      it. A child that outlives its parent anyway (no death signal on this system, or a process it forked) keeps
      the output locked, and a second job is refused naming it (each lock file records the latest child's pid,
      ``child``), never let in beside it.
    """
    import subprocess

    with _held_guard:
        held = list(_held)
    fds = {fd for lock in held for fd in lock.descriptors()}
    popen_kwargs["pass_fds"] = tuple(sorted(fds | set(popen_kwargs.get("pass_fds", ()))))
    setter = _death_signal_setter()
    if setter is not None and popen_kwargs.get("preexec_fn") is None:
        popen_kwargs["preexec_fn"] = setter
    proc = subprocess.Popen(command, **popen_kwargs)
    for lock in held:
        lock.note_child(proc.pid)
    return proc


def writer_now(output: str | Path, folder: bool = False) -> str | None:
    """Who holds ``output``'s lock right now, described (pid, host, since, command), when it is a live process of
    another job; None otherwise (e.g. a pair file a generation run is extending is not finished data)."""
    real = _real(output)
    holder = _held_by_another_job(lock_path(real, folder), real)
    return _holder_text(holder) if holder else None


def checkpoint_holding(output: str | Path) -> tuple[Path, Path] | None:
    """``(checkpoint, run folder)`` when ``output`` is, or lies inside, a training checkpoint, else None.

    A checkpoint is a folder holding ``savi train``'s record
    (:data:`~savi_plugin.data.identity.CHECKPOINT_FILE`, ``savi_checkpoint.json``), or a ``checkpoint-N``
    folder of a folder savi marked (a checkpoint the Trainer is still writing has no record yet). Its run's resume
    checks every file it holds (:func:`savi_plugin.training.checkpoints.check_contents`): a file added there -- a
    plot, a site, a report -- would stop the run from being continued. Compared by real path, so a link to the
    checkpoint (or to a folder inside it) is found too."""
    from savi_plugin.data.identity import CHECKPOINT_FILE

    real = _real(output)
    for folder in (real, *real.parents):
        if not folder.name:
            continue
        record = folder / CHECKPOINT_FILE
        named = folder.name.startswith("checkpoint-") and folder.name[len("checkpoint-"):].isdigit()
        if os.path.isfile(record) or (named and os.path.lexists(folder.parent / MARK_NAME)):
            return folder, folder.parent
    return None


def check_not_in_checkpoint(output: str | Path, output_name: str = "output") -> None:
    """Refuse an output that is, or lies inside, a training checkpoint (:func:`checkpoint_holding`).

    Raises:
        OutputInCheckpointError: naming the checkpoint and its run.
    """
    from savi_plugin.data.paths import from_here

    found = checkpoint_holding(output)
    if found is not None:
        checkpoint, run = found
        raise OutputInCheckpointError(
            f"{output}: {output_name} would add files to {checkpoint.name}, a checkpoint of the savi train run in "
            f"{from_here(run)}, which its resume checks file by file (the run could not be continued): choose "
            f"{another(output_name)} outside {from_here(checkpoint)}")


def check_no_enclosing_job(output: str | Path, what: str = "output") -> None:
    """Refuse an output inside a folder another live savi job is writing (its ``.savi.lock``, or a replaced
    folder's ``<folder>.lock`` beside it): two jobs would mix their files in one folder, e.g. ``savi train
    --output-dir run/rrpo`` while ``savi ablate --out run`` writes ``run/rrpo``.

    Raises:
        OutputLockedError: naming the enclosing folder and its holder.
    """
    real = _real(output)
    for folder in real.parents:
        if not folder.name:
            continue
        for lock in (folder / LOCK_NAME, folder.with_name(folder.name + ".lock"), None):
            if lock is None:  # the visible lock files are gone or free: the job's shadow lock decides
                holder, lock = _held_by_another_job(folder / LOCK_NAME, folder), folder / LOCK_NAME
            elif not lock.exists():
                continue
            else:
                holder = _held_by_another_job(lock)
            if holder is not None:
                raise OutputLockedError(f"{output}: {what} lies inside {folder}, which another savi process is "
                                        f"writing ({_holder_text(holder)}); wait for it to finish or choose an "
                                        f"output outside it (lock file {lock})")


def _is_main_rank() -> bool:
    from savi_plugin.launch import current  # RANK counts only inside a launcher

    return current().is_main


def _holds(info: dict) -> bool:
    """Whether the holder of an ``O_EXCL`` lock file (``info``, its content) may still write: it runs
    (:func:`_alive`), or the child it started last does (:func:`start_child`; no ``flock`` to inherit here)."""
    child = info.get("child")
    return _alive(info) or (isinstance(child, int) and _alive({**info, "pid": child}))


def _alive(info: dict) -> bool:
    """Whether the holder in ``info`` may still run: another host (unknown: yes), or a live pid here."""
    if info.get("host") != socket.gethostname():
        return bool(info)
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    """Hold an exclusive lock on ``output`` (a file, or a folder with ``folder=True``) while the job runs.

    Two ``flock`` locks are taken, both released when the process ends however it ends: the *shadow* lock
    (:func:`shadow_lock_path`, in a folder of the user's own outside the output, keyed by the output's identity),
    which removing or cleaning the output's folder does not free, then the visible lock file beside or inside
    the output (:func:`lock_path`), which names the holder where users and other jobs look. A holder checks after
    each ``flock`` that the path still names the file it locked (a releasing holder may have removed it), and a
    watcher thread puts back a visible lock file removed while the job runs, with one warning.

    Use as a context manager; :meth:`acquire` raises :class:`OutputLockedError` naming the live holder. Only
    the launcher's rank 0 locks a folder -- other ranks of the same job write into the same folder -- unless
    ``every_rank`` (each rank writes its own output, e.g. a generation shard).
    """

    def __init__(self, output: str | Path, *, folder: bool = False, what: str = "output", every_rank: bool = False):
        self.output = Path(output)
        self.folder = folder
        self.every_rank = every_rank
        self.what = what
        self.real = Path(os.path.realpath(self.output))
        self.path = lock_path(self.real, folder)  # one lock file for every spelling
        self._fd = -1
        self._where: tuple[int, int] | None = None  #: the lock file's folder when it was taken
        self._excl: Path | None = None
        self._shadow: Path | None = None
        self._shadow_fd = -1
        self._info: dict = {}
        self._guard = threading.Lock()  # the watcher thread's check against release
        self._warned: set[str] = set()

    def _refuse(self, info: dict, path: Path) -> OutputLockedError:
        where = path if os.path.exists(path) else (f"{path}, removed while that job runs; it still holds the "
                                                    f"{self.what}")
        return OutputLockedError(
            f"{self.output}: {self.what} is in use by another savi process ({_holder_text(info)}); wait for it "
            f"to finish or use {another(self.what)} (lock file {where})")

    def _check_not_foreign(self) -> None:
        """Refuse a lock path that holds something other than a savi lock (a user's ``e.jsonl.lock``, a folder):
        taking the lock would empty that file, and releasing it would delete it."""
        if os.path.islink(self.path) or self.path.is_dir():
            raise ForeignOutputError(f"{self.output}: {self.path} exists and is not a savi lock file (a "
                                     f"{'link' if os.path.islink(self.path) else 'folder'}); savi needs that name for "
                                     f"the {self.what}'s lock: move it away or choose another {self.what}")
        check_own_file(self.path)  # a hard link: emptying it would empty the file under its other name
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size and not {"pid", "host", "started"} <= _read_info(self.path).keys():
            raise ForeignOutputError(f"{self.output}: {self.path} exists and is not a savi lock file; savi needs "
                                     f"that name for the {self.what}'s lock (it would empty and remove it): move it "
                                     f"away or choose another {self.what}")

    def acquire(self) -> "OutputLock":
        if not (self.every_rank or _is_main_rank()):
            return self
        self._check_not_foreign()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._info = _holder_info()
        self._take_shadow()
        try:
            self._take_visible()
            _register(self)
        except BaseException as exc:
            if self._fd >= 0 or self._excl is not None:  # taken: given back whole
                self.release()
                raise
            if not isinstance(exc, Exception):  # a stop (Ctrl-C, SIGTERM) between creating the file and locking it
                _remove_empty_lock_file(self.path)
            self._drop_shadow()
            raise
        return self

    def _take_shadow(self) -> None:
        """The shadow lock (:func:`shadow_lock_path`): refused naming its holder when another job holds it; left
        out, with the reason at debug level, when there is no usable shadow folder or it has no ``flock``."""
        shadow = shadow_lock_path(self.real)
        if shadow is None:
            log.debug("%s: no shadow lock (no private lock folder); locked by %s alone", self.output, self.path)
            return
        for attempt in range(20):  # retried if a releasing holder or a sweep removed the file before our flock
            try:
                fd = os.open(shadow, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            except OSError as exc:
                log.debug("%s: no shadow lock (%s: %s); locked by %s alone", self.output, shadow, exc, self.path)
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if attempt < 3:  # a job that only asks who writes here (writer_now) holds it shared for an instant
                    time.sleep(0.05)
                    continue
                info = _read_info(shadow) or _read_info(self.path) or {"pid": "?"}
                raise self._refuse(info, self.path) from None
            except OSError as exc:
                os.close(fd)
                log.debug("%s: no shadow lock (%s: %s); locked by %s alone", self.output, shadow, exc, self.path)
                return
            if not _names(shadow, fd):
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps({**self._info, "output": str(self.real)}) + "\n").encode("utf-8"), 0)
            except OSError as exc:  # the flock is what counts; the holder's name is a courtesy
                log.debug("%s: could not write the holder into %s: %s", self.output, shadow, exc)
            self._shadow, self._shadow_fd = shadow, fd
            _sweep_stale_shadows(shadow.parent, shadow)
            return
        raise OutputLockedError(f"{self.output}: could not take the lock {shadow} (it keeps being replaced)")

    def _drop_shadow(self) -> None:
        if self._shadow_fd < 0:
            return
        if self._shadow is not None and _names(self._shadow, self._shadow_fd):
            with contextlib.suppress(OSError):  # while still locked: a job that opened it meanwhile retries
                os.unlink(self._shadow)
        os.close(self._shadow_fd)
        self._shadow, self._shadow_fd = None, -1

    def _take_visible(self) -> None:
        for _ in range(20):  # retried only if a releasing holder unlinked the file between open and flock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._refuse(_read_info(self.path), self.path) from None
            except OSError as exc:
                os.close(fd)
                if exc.errno in NO_FLOCK_ERRNOS:
                    self._acquire_exclusive_file()
                    return
                raise
            if not _names(self.path, fd):
                os.close(fd)
                continue
            stale = _read_info(self.path)
            if stale.get("pid"):
                log.warning("%s: taking over the lock of a process that is gone (%s)", self.output, _holder_text(stale))
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(self._info) + "\n").encode("utf-8"), 0)
            except OSError as exc:  # a full disk names the output, not "a file" (os.pwrite names none)
                os.close(fd)
                raise (disk_error(exc, self.output) or exc) from None
            self._fd = fd
            self._where = _identity(self.path.parent)
            return
        raise OutputLockedError(f"{self.output}: could not take the lock {self.path} (it keeps being replaced)")

    def _acquire_exclusive_file(self) -> "OutputLock":
        """The lock where ``flock`` is unsupported: ``<lock>.excl`` created with ``O_EXCL``, naming its holder."""
        excl = self.path.with_name(self.path.name + ".excl")
        with contextlib.suppress(OSError):  # the empty flock file this attempt created has no use here
            if self.path.stat().st_size == 0:
                self.path.unlink()
        for _ in range(3):
            try:
                fd = os.open(excl, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                info = _read_info(excl)
                if not info and time.time() - excl.stat().st_mtime < 10:  # a holder writing its info right now
                    time.sleep(0.2)
                    info = _read_info(excl)
                if _holds(info) or (not info and time.time() - excl.stat().st_mtime < 10):
                    raise self._refuse(info, excl) from None
                log.warning("%s: taking over the lock of a process that is gone (%s)", self.output, _holder_text(info))
                with contextlib.suppress(FileNotFoundError):
                    excl.unlink()
                continue
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(json.dumps(self._info) + "\n")
            except OSError as exc:
                with contextlib.suppress(FileNotFoundError):
                    excl.unlink()
                raise (disk_error(exc, self.output) or exc) from None
            self._excl = excl
            log.info("%s: the file system does not support flock; locked with %s instead", self.output, excl)
            return self
        raise OutputLockedError(f"{self.output}: could not take the lock {excl} (it keeps being replaced)")

    def check(self) -> None:
        """Put back a lock file removed while the job runs (the visible one where users and other jobs look, and
        the shadow one, e.g. removed by a cleaner of the temporary folder), with one warning each; a path that
        names something else now is left alone (the other lock still refuses a second job)."""
        with self._guard:
            if self._fd >= 0 and not _names(self.path, self._fd) and _identity(self.path.parent) != self._where:
                self._warn_once("visible", "%s: the folder of its lock file %s was removed or replaced while this "
                                "job runs; the lock is not put back there (the job stops at its next write)",
                                self.output, self.path)
            elif self._fd >= 0 and not _names(self.path, self._fd):
                fd = self._put_back(self.path, self._info, 0o644)
                if fd >= 0:
                    os.close(self._fd)
                    self._fd = fd
                self._warn_once("visible", "%s: its lock file %s was removed while this job runs; %s", self.output,
                                self.path, "put back (the job still holds the output)" if fd >= 0 else
                                "the job still holds the output through its shadow lock" if self._shadow_fd >= 0
                                else "a second job on this output would not be refused")
            if self._shadow_fd >= 0 and self._shadow is not None and not _names(self._shadow, self._shadow_fd):
                fd = self._put_back(self._shadow, {**self._info, "output": str(self.real)}, 0o600)
                if fd >= 0:
                    os.close(self._shadow_fd)
                    self._shadow_fd = fd
                self._warn_once("shadow", "%s: its shadow lock %s was removed while this job runs; %s", self.output,
                                self._shadow, "put back" if fd >= 0 else "could not put it back")

    def _warn_once(self, kind: str, *args: Any) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning(*args)

    @staticmethod
    def _put_back(path: Path, info: dict, mode: int) -> int:
        """A new lock file at ``path`` (absent: nothing else is replaced), locked and naming the holder; -1 when
        that is not possible (the folder is gone, the name taken, another process locked it first)."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        except OSError:
            return -1
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not _names(path, fd):
                raise FileNotFoundError(path)
            os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
        except OSError:
            os.close(fd)
            return -1
        return fd

    def descriptors(self) -> list[int]:
        """The open lock files this job's flocks are held through (the visible and the shadow lock), which a child
        process inherits to hold the output while it lives (:func:`start_child`)."""
        with self._guard:
            return [fd for fd in (self._fd, self._shadow_fd) if fd >= 0]

    def note_child(self, pid: int) -> None:
        """Record ``pid``, a process this job started that holds its lock (:func:`start_child`), in the lock files,
        so that a refusal names it when this process is gone and the child is not (:func:`_holder_text`)."""
        with self._guard:
            self._info = {**self._info, "child": pid}
            for fd, info in ((self._fd, self._info), (self._shadow_fd, {**self._info, "output": str(self.real)})):
                if fd < 0:
                    continue
                with contextlib.suppress(OSError):  # the flock is what counts; the holder's name is a courtesy
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
            if self._excl is not None:  # no flock to pass on: the file names the child, which holds it while alive
                with contextlib.suppress(OSError), open(self._excl, "w", encoding="utf-8") as fh:
                    fh.write(json.dumps(self._info) + "\n")  # read while empty: a holder writing (held)

    def release(self) -> None:
        _unregister(self)
        with self._guard:
            if self._excl is not None:
                with contextlib.suppress(FileNotFoundError):
                    self._excl.unlink()
                self._excl = None
            if self._fd >= 0:
                if _names(self.path, self._fd):  # while still locked, so no other process locks a removed inode
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.path)
                os.close(self._fd)
                self._fd = -1
            self._drop_shadow()  # last: the output stays held until its visible lock is gone

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# --------------------------------------------------------------------------------------------- inputs vs outputs
def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def _case_insensitive(folder: Path) -> bool:
    """Whether names in ``folder`` (an existing folder) are compared without case by its file system."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    name = probe.name
    if not name or name.swapcase() == name:
        return False
    try:
        return os.path.samefile(probe, probe.with_name(name.swapcase()))
    except OSError:
        return False


def _same(a: Path, b: Path) -> bool:
    """The same file: equal real paths, the same inode (hard links), or equal up to case on a folding file system."""
    if a == b:
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
        if (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino):
            return True
    except OSError:
        pass
    return str(a).lower() == str(b).lower() and _case_insensitive(a.parent)


def _inside(child: Path, folder: Path) -> bool:
    """``child`` lies under ``folder`` (both real paths), up to case on a folding file system."""
    if folder in child.parents:
        return True
    if str(folder).lower() in (str(p).lower() for p in child.parents):
        return _case_insensitive(folder)
    return False


def _inode_chain(path: Path) -> list[tuple[int, int]]:
    """``(st_dev, st_ino)`` of ``path`` and of each of its ancestors that exists, nearest first.

    One folder seen under two paths -- a bind mount, a symlinked folder, a hard-linked file -- has one device and
    inode, so comparing these finds an output inside an input whatever path named either of them."""
    chain = []
    for p in (path, *path.parents):
        with contextlib.suppress(OSError):
            st = os.stat(p)
            chain.append((st.st_dev, st.st_ino))
    return chain


def _ancestor_inodes(path: Path) -> list[tuple[int, int]]:
    """:func:`_inode_chain` of the folders that hold ``path`` (``path`` itself left out when it exists)."""
    chain = _inode_chain(path)
    return chain[1:] if path.exists() else chain


def check_distinct(output: str | Path, inputs: Mapping[str, str | Path | None], *, output_name: str = "output",
                   folder: bool = False) -> None:
    """Refuse an ``output`` that is, lies inside, or (``folder=True``) holds one of ``inputs``.

    Args:
        output: the path the job writes.
        inputs: ``{"--input": path, ...}``: the job's inputs by the name the user knows them (None: not given;
            a value naming nothing on disk, e.g. a hub id, is compared by its path only).
        output_name: how the user named the output (``--output``, ``--output-dir``).
        folder: the output is a folder the job writes files into.

    Raises:
        OutputIsInputError: naming both.
    """
    out = _real(output)
    for name, value in inputs.items():
        if value is None or str(value) == "":
            continue
        src = _real(value)
        if _same(out, src):
            raise OutputIsInputError(f"{output}: {output_name} is the same path as {name} ({value}); the job would "
                                     f"write into its own input: choose {another(output_name)}")
        if _inside(out, src):
            raise OutputIsInputError(f"{output}: {output_name} lies inside {name} ({value}); the job would write "
                                     f"into its input: choose {another(output_name)}")
        with contextlib.suppress(OSError):
            st = os.stat(src)
            if (st.st_dev, st.st_ino) in _ancestor_inodes(out):
                raise OutputIsInputError(f"{output}: {output_name} lies inside {name} ({value}), the same folder "
                                         f"under another path (a bind mount or a link: one device and inode); "
                                         f"the job would write into its input: choose {another(output_name)}")
        if folder and (_inside(src, out) or (_identity(out) is not None and _identity(out) in _ancestor_inodes(src))):
            raise OutputIsInputError(f"{output}: {output_name} contains {name} ({value}); the job would write into "
                                     f"its input's folder: choose {another(output_name)}")


def check_apart(outputs: Mapping[str, str | Path | None]) -> None:
    """Refuse two outputs of one command given as one place, however spelt (``savi bench --json wd --work-dir
    wd``): each would be claimed, locked and written as a place of its own. (A file output inside a folder output
    of the same command, ``--json wd/report.json``, is the user's choice.)

    Args:
        outputs: ``{"--json": path, "--work-dir": path, ...}`` by the names the user gave them (None: not given).

    Raises:
        ConfigurationError: naming both, before anything is claimed.
    """
    given = [(name, value, _real(value)) for name, value in outputs.items() if value is not None and str(value) != ""]
    for i, (name, value, real) in enumerate(given):
        for other, other_value, other_real in given[i + 1:]:
            if _same(real, other_real):
                raise ConfigurationError(f"{value}: {name} is the same place as {other} ({other_value}); one "
                                         f"command's outputs must be apart: give {name} a place of its own")


def check_not_any(outputs: Mapping[str, str | Path], files: Iterable[str | Path], *, what: str,
                  folder: bool = False) -> None:
    """Refuse an output that is (or lies inside) one of many ``files`` (e.g. the videos a manifest names), or,
    for a folder output (``folder=True``), holds one of them.

    Args:
        outputs: ``{how the user names it: path}`` of every file (or folder) the job writes.
        files: the inputs; each is resolved once, so 10^5 videos cost one ``realpath`` and one ``stat`` each (and
            one ``stat`` per distinct folder holding them, for ``folder``).
        what: how the message names an input (``"a video the input names"``).
        folder: the outputs are folders the job writes into: one around an input (the videos' own folder, its
            parent, a link to either) is refused too.

    Compared by real path and by inode, so a hard link or symlink to a video (or to its folder) is caught too.
    """
    by_path: dict[Path, str] = {}
    by_inode: dict[tuple[int, int], str] = {}
    holders: dict[Path, str] = {}  # each folder that holds an input (real path) -> that input
    for value in files:
        src = _real(value)
        by_path.setdefault(src, str(value))
        try:
            st = os.stat(src)
            by_inode.setdefault((st.st_dev, st.st_ino), str(value))
        except OSError:
            pass
        if folder:
            holders.setdefault(src.parent, str(value))
    around: dict[Path, str] = {}
    around_inode: dict[tuple[int, int], str] = {}
    for parent, value in holders.items():
        for p in (parent, *parent.parents):
            around.setdefault(p, value)
        for key in _inode_chain(parent):
            around_inode.setdefault(key, value)
    for output_name, output in outputs.items():
        out = _real(output)
        own = _identity(out)  # None when nothing is there, or its name is too long to look up
        hit = by_path.get(out) or by_inode.get(own or (-1, -1))
        if hit is not None:
            raise OutputIsInputError(f"{output}: {output_name} is {what} ({hit}), or a link to it; the job would "
                                     f"write into its own input: choose {another(output_name)}")
        hit = next((by_path[p] for p in out.parents if p in by_path), None)
        hit = hit or next((by_inode[k] for k in _inode_chain(out)[own is not None:] if k in by_inode), None)
        if hit is not None:
            raise OutputIsInputError(f"{output}: {output_name} lies inside {what} ({hit}); the job would write "
                                     f"into its own input: choose {another(output_name)}")
        if folder:
            hit = around.get(out) or around_inode.get(own or (-1, -1))
            if hit is not None:
                raise OutputIsInputError(f"{output}: {output_name} holds {what} ({hit}); the job would write into "
                                         f"its input's folder: choose {another(output_name)}")


# --------------------------------------------------------------------------------------------- claiming
def special_kind(path: str | Path) -> str | None:
    """What ``path`` is when it exists and is neither a regular file nor a folder (followed through symlinks):
    ``"a FIFO (named pipe)"``, ``"a character device"``, ... ; None otherwise (absent, a file, a folder, a broken
    link). An output is written by renaming a temporary onto it, which would replace such a node (``/dev/null``
    run as root) instead of writing through it."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kinds = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def link_problem(path: str | Path, folder: bool) -> str | None:
    """Why an output that is a symbolic link cannot be written, or None (not a link; a link to a folder for a
    folder output, whose files are written through it). A file output is replaced by renaming a new file onto
    its name, which would replace the link itself -- the user's link lost, its target never written -- and a
    link to nothing names no folder to write into."""
    path = Path(path)
    if not os.path.islink(path):
        return None
    target = os.readlink(path)
    if folder and os.path.isdir(path):
        return None
    if not os.path.exists(path):
        if os.path.lexists(os.path.join(os.path.dirname(path), target)):  # the target is a link that leads back
            return f"is a loop of symbolic links (to {target}, which leads back to it)"
        return f"is a symbolic link to {target}, which does not exist"
    return (f"is a symbolic link (to {target}); writing it would replace the link, not its target: give the "
            f"target's own path, or another")


def content_signature(path: str | Path) -> list:
    """``[size, SHA-256]`` of a file output (a large one hashed once per version:
    :func:`savi_plugin.data.identity.cached_digest`)."""
    from savi_plugin.data.identity import cached_digest

    return [os.path.getsize(path), cached_digest(Path(path))]


#: folders with at most this many files record their names (a changed one is named); larger ones a digest only
LISTED_FILES = 2000


def folder_listing(folder: str | Path) -> dict:
    """What a finished folder output holds: ``{"files": n, "sha256": digest of every relative path and size,
    "names": [...]}`` (names only up to :data:`LISTED_FILES`), without our lock and mark."""
    import hashlib

    folder = Path(folder)
    ours = {LOCK_NAME, MARK_NAME, LOCK_NAME + ".excl"}
    entries = sorted((p.relative_to(folder).as_posix(), p.lstat().st_size) for p in folder.rglob("*")
                     if not p.is_dir() or p.is_symlink())
    entries = [(name, size) for name, size in entries if name not in ours]
    digest = hashlib.sha256("".join(f"{name}\0{size}\n" for name, size in entries).encode("utf-8", "surrogateescape"))
    listing = {"files": len(entries), "sha256": digest.hexdigest()}
    if len(entries) <= LISTED_FILES:
        listing["names"] = [name for name, _ in entries]
    return listing


def _listing_change(stored: dict, now: dict) -> str:
    """A short phrase naming what differs between two :func:`folder_listing` results."""
    if "names" in stored and "names" in now:
        added = sorted(set(now["names"]) - set(stored["names"]))
        removed = sorted(set(stored["names"]) - set(now["names"]))
        if added:
            return f"{added[0]} was added"
        if removed:
            return f"{removed[0]} was removed"
        return "a file's size changed"
    return f"{now['files']} files now, {stored['files']} then"


#: a file larger than this at a marker's name is not one savi wrote (it is not read to find out)
MARKER_MAX_BYTES = 64 * 2**20


def foreign_marker(path: str | Path, ours: Callable[[bytes], bool]) -> str | None:
    """What stands at a marker's name ``path`` when it is not a marker we wrote, as a phrase (``"a folder"``,
    ``"a FIFO (named pipe)"``, ``"a file savi did not write (not JSON)"``); None when nothing is there or it is ours.

    Only a regular file (not a symbolic link) whose bytes ``ours`` accepts is ours; anything else at that name
    belongs to someone else, and a writer that replaced it would lose it. Nothing but a regular file is opened
    (reading a FIFO would block)."""
    import stat

    path = Path(path)
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # nothing can be there (a path above it is a file)
        return None
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return f"a symbolic link (to {os.readlink(path)})"
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    if not stat.S_ISREG(st.st_mode):
        return special_kind(path) or "not a regular file"
    if st.st_size > MARKER_MAX_BYTES:
        return f"a file savi did not write ({st.st_size} bytes)"
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return None if ours(data) else f"a file savi did not write ({_why_not_ours(data)})"


def _why_not_ours(data: bytes) -> str:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "empty" if not data.strip() else "not JSON"
    if not isinstance(obj, dict):
        return "JSON, not an object"
    if "written_by" not in obj:
        return "no written_by"
    return f"written_by {json.dumps(obj['written_by'], ensure_ascii=False)[:80]}"


def _parse_mark(data: bytes) -> dict | None:
    """The mark in ``data`` when it is one :meth:`Output.write_mark` wrote (a JSON object, ``written_by: savi``)."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return obj if isinstance(obj, dict) and obj.get("written_by") == "savi" else None


def foreign_mark(output: str | Path, folder: bool) -> str | None:
    """What stands at ``output``'s mark name (:func:`mark_path`) when it is not our mark (see
    :func:`foreign_marker`); None when there is no mark or it is ours."""
    return foreign_marker(mark_path(output, folder), lambda data: _parse_mark(data) is not None)


def foreign_mark_error(output: str | Path, folder: bool, output_name: str = "output") -> "ForeignOutputError | None":
    """The one-line refusal for a mark name that holds something not ours, or None."""
    what = foreign_mark(output, folder)
    if what is None:
        return None
    return ForeignOutputError(f"{mark_path(output, folder)}: exists and is {what}; savi keeps its mark of "
                              f"{output_name} {output} under that name and would replace it: move it away or choose "
                              f"{another(output_name)}")


def read_mark(output: str | Path, folder: bool) -> dict | None:
    """Our mark on ``output`` (``{"command", "config"}``), or None when it has none. Anything else at the mark's
    name (another JSON, text, a folder, a FIFO, a link) is not a mark: :func:`foreign_mark` says what it is."""
    if foreign_mark(output, folder) is not None:
        return None
    try:
        return _parse_mark(mark_path(output, folder).read_bytes())
    except OSError:
        return None


def _foreign_files(folder: Path, own: Iterable[str] = ()) -> list[str]:
    own = {MARK_NAME, *own}
    locks = {LOCK_NAME, LOCK_NAME + ".excl"}
    return sorted(p.name for p in folder.iterdir()
                  if not (p.name in own or (p.name in locks and _savi_lock_file(p)) or _our_mark_temp(p.name)
                          or _our_lock(p)))


def _savi_lock_file(path: Path) -> bool:
    """``path`` is a lock file a savi job wrote: a regular file (not a link), empty (being taken) or naming its
    holder. A user's file or folder under a lock's name is not (a job would empty and remove it)."""
    return (not path.is_symlink() and path.is_file()
            and (path.stat().st_size == 0 or {"pid", "host", "started"} <= _read_info(path).keys()))


def folder_lock_file(path: str | Path) -> bool:
    """Whether ``path`` is the lock a savi job keeps inside a folder it holds (``.savi.lock``, or its ``.excl``
    where ``flock`` is missing), as a savi job wrote it: not a file of what fills the folder."""
    path = Path(path)
    return path.name in (LOCK_NAME, LOCK_NAME + ".excl") and _savi_lock_file(path)


def _our_lock(path: Path) -> bool:
    """The lock file of another output a savi job holds right now (``<file>.lock`` with its holder; a released
    lock is removed), e.g. ``--json report.json`` claimed inside a benchmark's ``--work-dir``."""
    return path.name.endswith(".lock") and path.is_file() and {"pid", "host", "started"} <= _read_info(path).keys()


def _our_mark_temp(name: str) -> bool:
    """A temporary file of our mark (:func:`_temp_name`), left by a writer killed while it stored the mark."""
    return name.startswith(f".{MARK_NAME}.") and name.endswith(".tmp")


#: the outputs this process has marked and still holds (:meth:`Output.write_mark`, :func:`check_live_outputs`)
_live: list["Output"] = []


def _identity(path: Path) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of ``path`` (links followed), None when nothing is there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_write_landed(written: str | Path) -> None:
    """:meth:`Output.check_write_landed` for every output this process holds that ``written`` lies inside."""
    target = os.path.abspath(written)
    for output in list(_live):
        if output.covers(target):
            output.check_write_landed(written)


def check_live_outputs(path: str | Path | None = None) -> None:
    """Check every output this process holds (or only those that ``path`` is, lies inside or is a sidecar of)
    with :meth:`Output.check_intact`, before a write.

    Raises:
        OutputRemovedError: naming the output that was removed or replaced while the job ran.
    """
    if not _live:
        return
    target = os.path.abspath(path) if path is not None else None
    for output in list(_live):
        if target is None or output.covers(target):
            output.check_intact()


class Output:
    """A claimed output: locked for the job, checked against the inputs, and marked as ours (see :func:`claim`)."""

    def __init__(self, path: Path, folder: bool, command: str, config: Mapping[str, Any], lock: OutputLock,
                 previous: dict | None):
        self.path, self.folder, self.command, self.config = path, folder, command, dict(config)
        self.lock = lock
        #: the output's identity once marked (:meth:`check_intact`): a folder's, or a file output's folder's
        self._identity: tuple[int, int] | None = None
        self._marked: tuple[str, Any] | None = None  # the command and configuration our mark holds (write_mark)
        self.previous = previous  #: the mark found on the output (None: the output was new)
        #: what existed before the job (None: the output was not new); a configuration error removes the rest
        self._before: set[str] | None = None
        #: a folder the job replaces whole (its finished listing is recorded: :meth:`record_content`)
        self.replaced_whole = False
        #: names (relative to the output's parent) that record the configuration, not a result (:func:`claim`)
        self.records: set[str] = set()
        self.what = "output"  #: how messages name it (:func:`claim`'s ``what``)
        self.output_name = "output"  #: the flag or name the user gave it by (:func:`claim`'s ``output_name``)
        #: files (relative to the output's parent) that hold only the job's record of its configuration while
        #: their size is the one noted here (:meth:`wrote_record`): a progress file's first row
        self._record_sizes: dict[str, int] = {}
        #: a run folder's steps (:func:`claim`'s ``steps``), recorded in its mark
        self.steps: dict[str, Any] | None = None

    @property
    def mark(self) -> Path:
        return mark_path(self.path, self.folder)

    def sidecar(self, kind: str) -> Path:
        return sidecar(self.path, kind)

    def write_mark(self, into: str | Path | None = None, **extra: Any) -> None:
        """Store our mark (command, configuration, anything in ``extra``, e.g. the files written); ``into``: the
        temporary folder that is about to become the output (:func:`replace_folder`)."""
        if self.folder:
            self.path.mkdir(parents=True, exist_ok=True)
        target = mark_path(into, True) if into is not None else self.mark
        if into is None:  # what stands at the mark's name is replaced only when it is our mark
            foreign = foreign_mark_error(self.path, self.folder)
            if foreign is not None:
                raise foreign
        if self.steps is not None:
            extra = {"steps": self.steps, **extra}
        try:
            write_json(target, {"written_by": "savi", "command": self.command, "config": self.config, **extra})
        except OSError as exc:  # a full disk is said of the output the user named, not of our mark file
            named = disk_error(exc, self.path)
            if named is None:
                raise
            raise named from exc
        if into is None:
            self._marked = (self.command, json.loads(json.dumps(self.config, default=str)))
        if into is None and self._identity is None and (_is_main_rank() or self.lock.every_rank):
            self._identity = _identity(self.path if self.folder else _parent(self.path))
            with _held_guard:
                _live.append(self)

    def wrote_record(self, path: str | Path) -> None:
        """Note that ``path`` (the output or a sidecar) now holds only the job's record of its configuration (a
        progress file's configuration row): until it grows it is no result, so an error or a stop before the first
        result still removes it with the rest of a new output (:meth:`undo`)."""
        path = Path(path)
        with contextlib.suppress(OSError):
            self._record_sizes[str(path.relative_to(_parent(self.path)))] = path.stat().st_size

    def covers(self, target: str) -> bool:
        """Whether absolute path ``target`` is this output, inside this folder output, or one of its sidecars."""
        own = os.path.abspath(self.path)
        return target == own or target.startswith(own + ("/" if self.folder else "."))

    def removed(self) -> str | None:
        """How the marked output was removed or replaced since :meth:`write_mark` (None: it was not): its folder
        gone or another one at its path (device and inode differ), our mark gone from it, or another run's mark
        (another command or configuration) in its place."""
        if self._identity is None:
            return None
        where = self.path if self.folder else _parent(self.path)
        now = _identity(where)
        if now is None:
            return f"{'it' if self.folder else 'its folder ' + str(where)} was removed or moved away"
        if now != self._identity:
            return f"{'it' if self.folder else 'its folder ' + str(where)} was replaced by another folder"
        mark = read_mark(self.path, self.folder)
        if mark is None:
            return f"its mark {self.mark} was removed"
        if self._marked is not None and (mark.get("command"), mark.get("config")) != self._marked:
            return f"its mark {self.mark} was replaced by the mark of another run"
        return None

    def check_intact(self) -> None:
        """Stop the job when its output was removed or replaced while it ran (:meth:`removed`): what it would
        write next would land in a folder no mark claims, and its result would be lost or foreign.

        Raises:
            OutputRemovedError: one line naming the output.
        """
        why = self.removed()
        if why is not None:
            raise OutputRemovedError(self._removed_message(why))

    def _removed_message(self, why: str, done: str = "wrote nothing more there") -> str:
        # with its mark gone, what is left there is no longer known as ours: a re-run would refuse it
        # a mark removed, or another folder now at the path: a re-run would refuse what stands there as not ours
        there = os.path.lexists(self.path)
        with contextlib.suppress(OSError):
            there = there and (not os.path.isdir(self.path) or any(os.scandir(self.path)))  # an empty folder is new
        again = ("move it away (or remove it) and run again to start over"
                 if (why.startswith("its mark") or "replaced by another folder" in why) and there
                 else "run it again to start over")
        return (f"{self.path}: {self.what} was removed or replaced during the run ({why}); {self.command} stopped "
                f"and {done}: {again}")

    def check_write_landed(self, written: str | Path) -> None:
        """After a write by a route outside this module (the Trainer saving ``written``, a checkpoint folder inside
        this folder output), stop the job when the output was removed or replaced meanwhile -- the route recreated
        the folder at its path, or wrote into the one that replaced it. What the write created there is removed
        when the folder now at the path holds nothing else (it was created by that write); otherwise it is left,
        and the message names it.

        Raises:
            OutputRemovedError: one line naming the output, and what was written where it now stands.
        """
        why = self.removed()
        if why is None:
            return
        written = Path(written)
        if not os.path.lexists(written):
            raise OutputRemovedError(self._removed_message(why))
        top = Path(os.path.relpath(written, self.path)).parts[0] if self.folder else written.name
        holder = self.path if self.folder else _parent(self.path)
        others = [p.name for p in holder.iterdir() if p.name != top] if holder.is_dir() else []
        if self.folder and not others and self._identity is not None and _identity(holder) != self._identity:
            remove_tree(holder / top)  # a folder the write itself created at the path: it leaves none of it
            with contextlib.suppress(OSError):
                holder.rmdir()
            raise OutputRemovedError(self._removed_message(
                why, f"removed the {top} it had begun to save there in a folder of its own; it wrote nothing more"))
        raise OutputRemovedError(self._removed_message(
            why, f"had already saved {written} there, which is left as it is (it is not part of this run: remove it)"))

    def release(self) -> None:
        with _held_guard, contextlib.suppress(ValueError):
            _live.remove(self)
        self.lock.release()

    def record_content(self) -> None:
        """Store the finished file output's content signature in our mark (:func:`content_signature`): a later
        run of the same command refuses the file once someone changed it (it may be theirs now)."""
        if not (_is_main_rank() or self.lock.every_rank):
            return
        if self.folder and not (self.replaced_whole and self.path.is_dir()):
            return  # a folder a later run adds to (a training run, plotted into) keeps no listing
        if not self.folder and not self.path.is_file():
            return
        mark = read_mark(self.path, self.folder)
        if mark is not None and mark.get("command") == self.command:
            content = folder_listing(self.path) if self.folder else content_signature(self.path)
            write_json(self.mark, {**mark, "content": content})

    def undo(self) -> None:
        """Remove everything this job created at a new output (the mark, sidecars, files), leaving what was there
        before: a configuration error found after the claim marks nothing, so the corrected command is not refused
        as "another configuration" (README "Guarantees": configuration errors stop with nothing marked)."""
        if self._before is None or not (_is_main_rank() or self.lock.every_rank):
            return
        parent = _parent(self.path)
        for name in sorted(self._added(), reverse=True):  # a folder's entries before the folder
            target = parent / name
            if target.is_dir() and not target.is_symlink():
                remove_tree(target)
            else:
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
        if not self.folder and self.path.name in self._before and self.path.is_file():
            os.truncate(self.path, 0)  # it was empty (claim accepts no other unmarked file)

    def _added(self) -> set[str]:
        """What the job added to the output (paths relative to its folder's parent), without the lock files."""
        name = self.path.name
        locks = {f"{name}/{LOCK_NAME}", f"{name}/{LOCK_NAME}.excl", f"{name}.lock", f"{name}.lock.excl"}
        kept = {n for n in _existing_names(self.path, self.folder)  # the failure's log, which its line names
                if re.fullmatch(re.escape(name) + r"\.failed(-\d+)?\.log", n)}
        return _existing_names(self.path, self.folder) - (self._before or set()) - locks - kept - {name}

    def undoes(self, exc_type: type[BaseException]) -> bool:
        """Whether leaving the ``with`` block with ``exc_type`` removes what this job created (:meth:`undo`): a
        new output, and a configuration error or nothing written yet but the mark and empty files. A caller whose
        error names a file inside the output moves it out first (:func:`failed_log_path`)."""
        from savi_plugin.errors import ConfigurationError

        return self._before is not None and (issubclass(exc_type, ConfigurationError) or self._holds_no_result())

    def _holds_no_result(self) -> bool:
        """Whether what this job added to a new output is only its mark and empty files (nothing to resume)."""
        if self._before is None:
            return False
        parent, mark = _parent(self.path), str(self.mark.relative_to(_parent(self.path)))
        for name in self._added() | ({self.path.name} - self._before):
            target = parent / name
            if self.folder and name == self.path.name:
                continue  # the folder itself: its entries decide
            if name in self.records:
                continue  # the job's record of its configuration, written before its first result
            if name in self._record_sizes and target.is_file() and not target.is_symlink() and \
                    target.stat().st_size == self._record_sizes[name]:
                continue  # still only the record it held when noted (wrote_record)
            if target.is_dir() and not target.is_symlink() and _holds_only_empty_files(target):
                continue  # a step's folder whose own output was undone (an inner claim) or not yet written
            if name != mark and os.path.lexists(target) and not (target.is_file() and not target.is_symlink()
                                                                 and target.stat().st_size == 0):
                return False
        return True

    def __enter__(self) -> "Output":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        why = None if exc_type is OutputRemovedError else self.removed()
        if why is not None or exc_type is OutputRemovedError:  # what stands there now is not this job's:
            _ended[str(self.path)] = "removed"
            self.release()  # nothing is undone, recorded or marked there
            if why is not None:
                try:
                    self.check_intact()
                except OutputRemovedError as removed:
                    raise removed from exc
            return
        # any exception, a stop (Ctrl-C, SIGTERM: KeyboardInterrupt) included, before the first result
        undo = exc_type is not None and self.undoes(exc_type)
        _ended[str(self.path)] = "undone" if undo else "kept"
        try:
            if undo:
                self.undo()
            elif exc_type is None:
                self.record_content()
        finally:
            self.release()
        if undo and self._before is not None and self.path.name not in self._before:
            with contextlib.suppress(OSError):  # created by this job: a folder empty once undone, or the file
                self.path.rmdir() if self.folder else self.path.unlink()


#: what became of each output the running command claimed, by path: "undone" (new, nothing kept), "kept" (its
#: results, or an earlier run's, stay) or "removed" (removed or replaced under the job); the ``savi`` boundary
#: resets it per command and says, at a stop, whether anything was kept (:func:`command_outputs`)
_ended: dict[str, str] = {}


def reset_command_outputs() -> None:
    """Forget the outputs of an earlier command run in this process (the ``savi`` boundary, per command)."""
    _ended.clear()


def note_ended(path: str | Path, state: str) -> None:
    """Record how an output a command wrote without :func:`claim` ended (``savi eval fixture``'s folder: ``"kept"``),
    so the command's last line says what it left (:func:`command_outputs`)."""
    _ended[str(path)] = state


def command_outputs() -> dict[str, str]:
    """``{output path: "undone" | "kept" | "removed"}`` for each output the running command claimed and left."""
    return dict(_ended)


def _parent(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


def _existing_names(path: Path, folder: bool) -> set[str]:
    """What makes up output ``path`` now, relative to its parent: the output itself, its sidecars beside it
    (``<name>.*``) and, for a folder, its entries (``<name>/<entry>``; a folder output given as a link to a folder
    is written through the link, so its entries are the folder's)."""
    parent = _parent(path)
    if not parent.is_dir():
        return set()
    names = {p.name for p in parent.iterdir() if p.name == path.name or p.name.startswith(path.name + ".")}
    if folder and path.is_dir():
        names |= {f"{path.name}/{p.name}" for p in path.iterdir()}
    return names


def _holds_only_empty_files(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but folders, empty files and savi lock files (no result)."""
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if not (path.is_file() and not path.is_symlink() and (path.stat().st_size == 0 or (
                    path.name.endswith((".lock", ".lock.excl")) and _savi_lock_file(path)))):
                return False
    return True


def _stray_sidecar(path: Path) -> Path | None:
    """A result sidecar (progress, run report) beside unmarked file output ``path`` that holds something: no job
    of ours wrote it for this output (a job writes its mark before any sidecar), so it is someone else's file."""
    for kind in ("progress.jsonl", "report.json"):
        side = sidecar(path, kind)
        if os.path.lexists(side) and not (side.is_file() and not side.is_symlink() and side.stat().st_size == 0):
            return side
    return None


def check_place(output: str | Path, inputs: Mapping[str, str | Path | None] | None = None, *,
                output_name: str = "output", folder: bool = False,
                input_files: Mapping[str, Iterable[str | Path]] | None = None, what: str | None = None) -> None:
    """Refuse, as a configuration error (exit 2), an output whose place no job may write, whatever is there: ``-``
    (standard output to many tools), a file output given as a folder's name (``x/``: :func:`file_output`), below a
    file (:func:`folder_above_error`), a name too long for its sidecars (:func:`name_length_error`), equal to,
    inside or around an input (:func:`check_distinct`, :func:`check_not_any`), or inside a training checkpoint
    (:func:`check_not_in_checkpoint`); as not ours (exit 1), a FIFO, device or link savi would replace
    (:func:`special_kind`, :func:`link_problem`), a folder where a file is needed or the reverse, or a name that is
    another marked output's sidecar (:func:`sidecar_clash`); and, while another live job writes a folder around it,
    as taken (exit 1, :func:`check_no_enclosing_job`), and at a step of a run folder another command claimed (exit
    1, :func:`check_not_in_run_step`). The first question :func:`claim` asks, the place check of
    ``savi eval fixture``'s folder, and the whole check of an output no mark claims (``savi eval run``'s ``--output_path``,
    shared between lmms-eval runs one at a time: :func:`made_folder` holds its lock); ``what``: how the last refusal
    names the output (default ``output_name``)."""
    path = file_output(output, output_name) if not folder else Path(output)
    if str(output) == "-":  # standard output to most tools; savi writes files, so one named `-` is asked as ./-
        raise ConfigurationError(f"-: {output_name} '-' names standard output to many tools, and savi writes a "
                                 f"{'folder' if folder else 'file'} here; for one named '-' write ./-")
    refused = folder_above_error(path, output_name) or name_length_error(path, folder, output_name)
    if refused is not None:
        raise refused
    check_distinct(path, inputs or {}, output_name=output_name, folder=folder)
    for group, files in (input_files or {}).items():
        check_not_any({output_name: path}, files, what=group, folder=folder)
    check_not_in_checkpoint(path, output_name)
    special = special_kind(path)
    if special is not None:
        raise ForeignOutputError(f"{output}: {output_name} exists and is {special}; savi writes only regular files "
                                 f"and folders (it would replace it): choose {another(output_name)}")
    linked = link_problem(path, folder)
    if linked is not None:
        raise ForeignOutputError(f"{output}: {output_name} {linked}: choose {another(output_name)}")
    if path.exists() and path.is_dir() != folder:  # before any sidecar is named: `.` and `/` have no name
        raise ForeignOutputError(f"{output}: {output_name} exists and is {'a file' if folder else 'a folder'}; "
                                 f"a {'folder' if folder else 'file'} is needed here: choose {another(output_name)}")
    for name, given in (inputs or {}).items():  # a sidecar of an input (its run report, progress file, mark) is
        if given is None or not os.path.isfile(given):  # read with it: an output there is an output in an input
            continue
        for kind in SIDECAR_KINDS:
            side = sidecar(given, kind)
            if os.path.abspath(side) == os.path.abspath(path) or (
                    os.path.exists(side) and os.path.exists(path) and os.path.samefile(side, path)):
                raise OutputIsInputError(f"{output}: {output_name} is the {kind} of {name} ({given}), which this job "
                                         f"reads with it: choose {another(output_name)}")
    clash = sidecar_clash(path, folder)  # a folder too: one at a generation's report name would stop that run
    if clash is not None:
        raise ForeignOutputError(f"{output}: {output_name} {clash}; the two would overwrite each other's files: "
                                 f"choose {another(output_name)}")
    check_no_enclosing_job(path, what or output_name)  # two jobs would mix their files in one folder
    check_not_in_run_step(path, output_name)  # another command would change what a run made, and stop the run


def claim(output: str | Path, *, command: str, config: Mapping[str, Any] | None = None, folder: bool = False,
          inputs: Mapping[str, str | Path | None] | None = None, output_name: str = "output",
          ignore: Iterable[str] = (), own_files: Iterable[str] = (), what: str | None = None,
          every_rank: bool = False, lock: bool = True, replace_ours: bool = False, lock_beside: bool = False,
          records: Iterable[str] = (), own_content: Callable[[Path], bool] | None = None,
          input_files: Mapping[str, Iterable[str | Path]] | None = None,
          steps: Mapping[str, Any] | None = None) -> Output:
    """Check and lock ``output`` for ``command``; the gate every ``savi`` writer passes before it writes (except
    ``savi eval fixture``, whose folder check, :mod:`savi_plugin.eval.fixture_folder`, asks the same place question,
    :func:`check_place`, and takes the same lock).

    An output may be written when it is new (absent, an empty file or folder), or when it carries our mark for
    the same ``command`` and the same ``config`` (keys in ``ignore`` may differ: a resume that extends the run).
    Everything else is refused with one line: a mark of another command or configuration (naming what changed),
    or an existing output without our mark (naming a file that is not ours). With ``replace_ours`` a mark of the
    same command with another configuration is accepted (the caller replaces the previous result whole, e.g.
    ``convert --overwrite``).

    Args:
        output: the file or folder.
        command: e.g. ``"savi train"``; stored in the mark.
        config: what the result depends on (compared with the mark's, key by key).
        folder: the output is a folder.
        inputs: ``{name: path}`` of everything the job reads (:func:`check_distinct`).
        input_files: ``{what: paths}`` of inputs too many to name one by one (the videos the pairs name), each
            group checked the same way (:func:`check_not_any`); like ``inputs``, before anything at the output is
            looked at, so a folder holding them is refused as a configuration error, not as a folder of files
            that are not ours.
        output_name: how the user named the output (``--output-dir``).
        ignore: configuration keys that may change between a run and its continuation.
        own_files: names in a folder output that count as ours without a mark (none by default).
        what: how messages name the output (default ``output_name``).
        every_rank: every launcher rank claims its own output (each writes its own, e.g. a shard); without it
            only rank 0 checks, locks and marks, and the other ranks of the job return unchecked.
        lock: take the lock (False: the caller holds it already).
        replace_ours: accept our own mark with another configuration (the result is replaced whole).
        lock_beside: lock a folder output with ``<folder>.lock`` beside it (the folder is replaced whole by
            :func:`replace_folder`, which would move a lock inside it).
        records: names inside a folder output that record the job's configuration before its first result
            (``savi_train_config.json``): a new output that holds only them after an error holds no result, and is
            removed like one, so the corrected command is not refused as "another configuration".
        own_content: for a file output whose content changed since the mark recorded it: whether it still holds
            only what the job itself wrote (e.g. a generation output with lines lost, each remaining line verified
            against the job's progress file); then the job may resume and redo what was lost instead of refusing.
        steps: for a run folder, what each of its steps writes there (:func:`steps_problem`): a step that exists
            and is not the run's -- a user's folder, another command's output -- is refused before any step runs,
            naming what to move; and the mark records them, so another command's output at a step is refused
            (:func:`check_not_in_run_step`).

    Returns:
        The :class:`Output`, locked; call :meth:`Output.write_mark` once the configuration is final (before the
        first result is written), and :meth:`Output.release` at the end (or use it as a context manager).
    """
    from savi_plugin.data.fingerprint import check_same_config

    path = Path(output) if folder else file_output(output, output_name)  # `x/` is asked before pathlib drops the /
    config = dict(config or {})
    check_place(path, inputs, output_name=output_name, folder=folder, input_files=input_files, what=what)
    # a step of a command that claimed a folder around it (the demo's pairs file in its --out): its messages name
    # the flag the user typed, never a flag of a command they did not run
    remedy_name = enclosing_output_name(path) or output_name
    if remedy_name != output_name and output_name.startswith("-"):
        output_name = "output"
    held = OutputLock(path, folder=folder and not lock_beside, what=what or output_name, every_rank=every_rank)
    if not (every_rank or _is_main_rank()):
        # One job's ranks share this output: rank 0 alone decides whether it may be written (it locks, checks and
        # marks it). Another rank checking too would race with rank 0's own writes, and on a node-local disk it
        # would judge a folder rank 0 never sees; node-local folders are refused by the collective checks that
        # need them (training.distributed.shared_resume_point).
        return Output(path, folder, command, config, held, read_mark(path, folder))  # unchecked: rank 0 decides
    before = _existing_names(path, folder)  # before the lock file exists (it may create the folder)
    foreign = foreign_mark_error(path, folder, output_name)  # a user's file or folder at our mark's name
    if foreign is not None:
        raise foreign
    if not folder:  # a link, folder or FIFO at a sidecar's name is not ours to append to, cut or replace
        for kind in ("progress.jsonl", "report.json"):
            check_own_file(sidecar(path, kind))
    if folder and lock_beside and path.is_dir():  # the folder is replaced whole: a lock inside must be a savi lock
        for inner in (path / LOCK_NAME, path / (LOCK_NAME + ".excl")):
            if os.path.lexists(inner) and not _savi_lock_file(inner):
                kind = "a link" if inner.is_symlink() else "a folder" if inner.is_dir() else "a file"
                raise ForeignOutputError(f"{inner}: exists and is not a savi lock file ({kind}); replacing "
                                         f"{output_name} {output} whole would remove it: move it away or choose "
                                         f"{another(remedy_name)}")
        holder = _held_by_another_job(path / LOCK_NAME)
        if holder is not None:
            raise OutputLockedError(f"{output}: {output_name} is in use by another savi process "
                                    f"({_holder_text(holder)}); wait for it to finish or choose "
                                    f"{another(remedy_name)} (lock file {path / LOCK_NAME})")
    if lock:
        held.acquire()
    try:
        previous = read_mark(path, folder)
        if previous is not None:
            if previous.get("command") != command:
                raise ForeignOutputError(f"{output}: {output_name} was written by {previous.get('command')}, not "
                                         f"{command}: choose {another(remedy_name)}")
            stored = previous.get("content")
            if not folder and stored and path.is_file() and content_signature(path) != stored and not (
                    own_content is not None and own_content(path)):
                raise ForeignOutputError(f"{output}: {output_name} was changed after {command} wrote it; it may be "
                                         f"your own data now: move it away or choose {another(remedy_name)}")
            if folder and replace_ours and isinstance(stored, dict) and path.is_dir():
                now = folder_listing(path)
                if now["sha256"] != stored.get("sha256"):  # the job replaces the folder whole: nothing else in it
                    raise ForeignOutputError(
                        f"{output}: {output_name} changed after {command} wrote it ({_listing_change(stored, now)}); "
                        f"replacing it whole would lose what is there: move it away or choose {another(remedy_name)}")
            if not replace_ours:
                check_same_config(previous.get("config") or {}, config, output=output,
                                  stored_at=mark_path(path, folder), ignore=ignore,
                                  remedy=f"continue with the same configuration, or choose {another(remedy_name)}")
        elif folder and path.is_dir():
            foreign = _foreign_files(path, own_files)
            if foreign:
                raise ForeignOutputError(
                    f"{output}: {output_name} holds {len(foreign)} file(s) not written by {command} (e.g. "
                    f"{foreign[0]}); it would mix its results with them: "
                    f"choose {another(remedy_name, 'a new or empty')}")
        elif not folder and path.is_file() and path.stat().st_size > 0:
            raise ForeignOutputError(f"{output}: {output_name} exists and was not written by {command}; writing it "
                                     f"would replace or mix with its content: choose {another(remedy_name, 'a new')}")
        if steps is not None:
            refused = steps_error(path, steps, command, remedy_name)
            if refused is not None:
                raise refused
        if previous is None and not folder:
            stray = _stray_sidecar(path)
            if stray is not None:
                kind = stray.name[len(path.name) + 1:]
                raise ForeignOutputError(f"{stray}: exists beside {output_name} {output}, which holds no mark of "
                                         f"{command}; the job would replace it as its own {kind}: move it away or "
                                         f"choose {another(remedy_name, 'a new')}")
    except BaseException:
        held.release()
        raise
    claimed = Output(path, folder, command, config, held, previous)
    claimed.what = what or output_name
    claimed.output_name = output_name
    claimed._before = before if previous is None else None
    claimed.replaced_whole = folder and replace_ours
    claimed.records = {f"{path.name}/{name}" if folder else name for name in records}
    claimed.steps = dict(steps) if steps is not None else None
    return claimed


# ------------------------------------------------------------------------------ a run folder's steps
#: a step entry the run writes itself, with no mark of its own (lmms-eval's output, a log, a table, a tiny model)
OWN = "own"
#: a kept product the run writes itself (:mod:`savi_plugin.data.kept`: a JSON file sealed with its SHA-256)
KEPT = "kept"
#: a temporary file or folder of this module (:func:`_temp_name`), left where a writer was killed
_TEMP = re.compile(r"\..+\.\d+\.[0-9a-f]{8}\.tmp(\..*)?")


def _step_key(steps: Mapping[str, Any], name: str) -> str | None:
    """The key of ``steps`` (a name or a ``fnmatch`` pattern: ``iter_[0-9]*``) that entry ``name`` is, or None."""
    import fnmatch

    return next((key for key in steps if fnmatch.fnmatchcase(name, key)), None)


def _beside_a_step(folder: Path, name: str, steps: Mapping[str, Any]) -> bool:
    """Whether ``name`` in the run's plain step folder ``folder`` belongs to one of its ``steps`` without being one:
    a sidecar of a product (its progress file, report, lock, mark), the lock of a folder replaced whole, a kept
    failure log, a savi lock file, or a temporary file of a writer that was killed."""
    import fnmatch

    path = folder / name
    if name in (LOCK_NAME, LOCK_NAME + ".excl"):
        return _savi_lock_file(path)
    if _TEMP.fullmatch(name):
        return True
    for key, kind in steps.items():
        if not isinstance(kind, Mapping) and kind not in (OWN, KEPT) and any(
                fnmatch.fnmatchcase(name, f"{key}.{side}") for side in (*SIDECAR_KINDS, "lock.excl")):
            return True  # the product's own claim checks what stands there
        if fnmatch.fnmatchcase(name, f"{key}.failed*.log") and _failed_log_is_ours(path):
            return True
    return False


def _what_stands(path: Path) -> str:
    """What stands at ``path`` where a step was expected, as a phrase: ``"a file"``, ``"a folder"``, ``"a FIFO
    (named pipe)"``, a link to nothing."""
    if os.path.islink(path) and not path.exists():
        return f"a symbolic link to nothing ({os.readlink(path)})"
    return special_kind(path) or ("a file" if path.is_file() else "a folder")


def steps_problem(run: str | Path, steps: Mapping[str, Any], command: str) -> tuple[Path, str] | None:
    """The first entry at a step of ``command``'s run folder ``run`` that is not the run's own, with what it is, or
    None: every step the run writes there must be absent or the run's.

    ``steps`` maps each entry's name (or a ``fnmatch`` pattern, ``iter_[0-9]*``) to what the run makes there: a
    ``{name: ...}`` mapping for a plain folder of the run's (holding these entries, their sidecars and locks, and
    nothing else: a user's ``notes.txt`` there is not the run's, nor is any mark: a ``savi inspect`` site), the
    command whose mark a product carries (``"savi train"``, or a list of them: its mark names that command, or it
    is new -- a folder of unmarked files is not that command's), :data:`KEPT` for a kept product (a sealed JSON
    file, :func:`savi_plugin.data.kept.unsealed_problem`; what a seal vouches for is checked when the run reads
    it) or :data:`OWN` for what the run writes itself unmarked. A product of ``command`` itself without its mark
    is left to :func:`step_product` (an earlier savi's)."""
    run = Path(run)

    def problem(path: Path, kind: Any) -> tuple[Path, str] | None:
        if not os.path.lexists(path):
            return None
        if isinstance(kind, Mapping):
            if not path.is_dir():
                return path, f"{_what_stands(path)}, not the folder the run makes there"
            if os.path.lexists(mark_path(path, True)):
                mark = read_mark(path, True)
                return (path, f"an output of {mark.get('command')}" if mark is not None
                        else f"a folder holding {MARK_NAME}, which savi did not write there")
            for child in sorted(path.iterdir()):
                if _beside_a_step(path, child.name, kind):  # before the steps: `pairs.shard-*.jsonl` matches a
                    continue  # shard's `.progress.jsonl` too
                key = _step_key(kind, child.name)
                if key is None:
                    return child, f"{_what_stands(child)} not written by {command}"
                found = problem(child, kind[key])
                if found is not None:
                    return found
            return None
        if kind == OWN:
            return None
        special = special_kind(path)
        if special is not None or (os.path.islink(path) and not path.exists()):
            return path, _what_stands(path)
        if kind == KEPT:
            from savi_plugin.data.kept import unsealed_problem

            found = unsealed_problem(path, command) if path.is_file() else "a folder, not the file the run keeps there"
            return (path, found) if found is not None else None
        makers = [kind] if isinstance(kind, str) else list(kind)
        maker = " or ".join(makers)
        folder = path.is_dir()
        foreign = foreign_mark(path, folder)
        if foreign is not None:
            return mark_path(path, folder), f"{foreign}, at the name of {maker}'s mark"
        mark = read_mark(path, folder)
        if mark is not None:
            return None if mark.get("command") in makers else (path, f"an output of {mark.get('command')}, not {maker}")
        if command in makers:  # the run's own step product, checked when it is made (step_product)
            return None
        if folder:
            others = _foreign_files(path)
            return (path / others[0], f"{_what_stands(path / others[0])} not written by {maker}") if others else None
        if path.is_file() and path.stat().st_size > 0:
            return path, f"a file not written by {maker}"
        return None

    if not run.is_dir():
        return None
    for child in sorted(run.iterdir()):
        key = _step_key(steps, child.name)
        if key is not None:
            found = problem(child, steps[key])
            if found is not None:
                return found
    return None


def steps_error(run: str | Path, steps: Mapping[str, Any], command: str,
                output_name: str = "--out") -> "ForeignOutputError | None":
    """The one-line refusal of what :func:`steps_problem` finds at a step of ``run``, naming it (what to move), or
    None."""
    found = steps_problem(run, steps, command)
    if found is None:
        return None
    path, what = found
    return ForeignOutputError(f"{path}: {what}, at a step of the {command} run in {run}, which writes there: move it "
                              f"away to continue the run, or choose {another(output_name)}")


def _step_of(steps: Mapping[str, Any], parts: tuple[str, ...]) -> bool:
    """Whether the path ``parts`` (relative to a run folder) is a step of the run or lies in a folder the run
    writes itself (a plain step folder, an :data:`OWN` one); a path inside another command's product (a plot in
    a training folder) is that product's, and a top-level name the run does not use is free."""
    kind: Any = steps
    for depth, part in enumerate(parts):
        if not isinstance(kind, Mapping):  # inside what the run writes itself, or inside another command's product
            return isinstance(kind, str) and kind in (OWN, KEPT)
        key = _step_key(kind, part)
        if key is None:
            return depth > 0  # a free name at the top; inside a plain step folder, the run's
        kind = kind[key]
    return True


def _run_held_here(folder: Path) -> bool:
    """Whether this process, or another rank of its launched job, holds the run folder ``folder``."""
    with _held_guard:
        if any(o.folder and _same(_real(o.path), folder) for o in _live):
            return True
    job = _read_info(folder / LOCK_NAME).get("job")
    return job is not None and job == _job_key()


def check_not_in_run_step(output: str | Path, output_name: str = "output") -> None:
    """Refuse an output at a step of a run folder another command claimed and marked with its steps
    (:func:`claim`'s ``steps``: ``savi align``'s ``iter_0/pairs.jsonl``, ``savi ablate``'s ``dpo/``), unless this
    job holds that run (its own step): another command would change what the run made there, and the run could
    not be continued.

    Raises:
        ForeignOutputError: naming the enclosing run folder and its command.
    """
    real = _real(output)
    for folder in real.parents:
        mark = read_mark(folder, True) if os.path.isfile(folder / MARK_NAME) else None
        steps = (mark or {}).get("steps")
        if not isinstance(steps, dict) or not _step_of(steps, real.relative_to(folder).parts):
            continue
        if _run_held_here(folder):
            return
        from savi_plugin.data.paths import from_here

        raise ForeignOutputError(f"{output}: {output_name} lies at a step of the {mark.get('command')} run in "
                                 f"{from_here(folder)}, which only that run writes: choose {another(output_name)} "
                                 f"outside its steps")


def enclosing_output_name(path: str | Path) -> str | None:
    """The flag of the folder output this process claimed around ``path`` (``--out`` of ``savi demo`` around its
    generation step's pairs file), or None: a step's refusal names the flag the user typed, never the flag of a
    command they did not run."""
    target = os.path.abspath(path)
    with _held_guard:
        around = [o for o in _live if o.folder and target.startswith(os.path.abspath(o.path) + os.sep)]
    return min(around, key=lambda o: len(str(o.path.absolute()))).output_name if around else None


def step_product(folder: str | Path, *, command: str, config: Mapping[str, Any], make: Callable[[Path], None],
                 what: str) -> bool:
    """Make a run step's product folder once and keep it (the demo's videos and warm-up model, inside its claimed
    run folder): the later steps were made from it, so a re-run of the same run must find it as they did.

    New: ``make(tmp)`` builds it in a temporary folder, marked with ``config`` and its content
    (:func:`savi_plugin.data.identity.content_identity`: every file's SHA-256), which becomes ``folder`` by one
    rename. Marked for ``command`` with the same ``config`` and the same content: kept untouched. Marked with
    other content (a file changed, added or removed): refused naming the file, since what was made from it no
    longer matches it. Another configuration is refused by :func:`claim`, naming what changed. A folder without a
    mark (made by a savi that marked no step product) is kept as it is, its content recorded now, with a warning.

    Returns:
        True when ``folder`` was kept, False when it was made.

    Raises:
        ForeignOutputError: the content changed since it was made (exit 1).
    """
    from savi_plugin.data.identity import content_identity, identity_differences

    folder = Path(folder)
    mark = mark_path(folder, True)
    if folder.is_dir() and not folder.is_symlink() and not os.path.lexists(mark) and _foreign_files(folder):
        log.warning("%s: %s holds no record of its content (made by an earlier savi): kept as it is, its content "
                    "recorded now", folder, what)
        write_json(mark, {"written_by": "savi", "command": command, "config": dict(config),
                          "content": content_identity(folder)})
    with claim(folder, command=command, config=config, folder=True, lock_beside=True, output_name=what,
               what=what) as claimed:
        stored = (claimed.previous or {}).get("content")
        if isinstance(stored, dict) and folder.is_dir():
            now = content_identity(folder)
            if now is not None and now["sha256"] == stored.get("sha256"):
                return True
            hint = enclosing_output_name(folder) or what
            raise ForeignOutputError(
                f"{folder}: {what} changed after {command} made it "
                f"({identity_differences(stored, now) or 'its content differs'}); what the later steps made from it "
                f"no longer matches it: choose {another(hint)} to start over")
        with replace_folder(folder) as tmp:
            make(tmp)
            claimed.write_mark(into=tmp, content=content_identity(tmp))
        return False


@contextlib.contextmanager
def replace_folder(dst: str | Path) -> Iterator[Path]:
    """Yield a unique temporary folder beside ``dst``; when the block succeeds it becomes ``dst``, replacing the
    previous ``dst`` whole (so none of the previous files stays beside the new ones). On any other exit the
    temporary folder is removed and ``dst`` is left as it was. The caller has claimed ``dst``. A ``dst`` that is a
    symbolic link to a folder keeps its link: the folder it leads to is the one replaced
    (:func:`folder_behind_link`), and no temporary is left beside either."""
    dst = folder_behind_link(dst)
    with temp_folder(dst, keep=True) as tmp:
        yield tmp
    old = None
    if dst.exists():
        old = _temp_name(dst)
        os.replace(dst, old)
    try:
        os.replace(tmp, dst)
    except BaseException:
        if old is not None:
            os.replace(old, dst)
        remove_tree(tmp)
        raise
    if old is not None:
        remove_tree(old)

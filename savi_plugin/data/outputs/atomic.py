"""Atomic writes: a temporary beside the destination, replaced by one ``rename`` and removed on every exit
(:func:`atomic_path`, :func:`write_json`, :func:`temp_folder`, :func:`replace_folder`, :func:`remove_tree`)."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from savi_plugin.data.outputs.common import ForeignOutputError
from savi_plugin.data.outputs.kinds import link_problem, _parent, special_kind
from savi_plugin.data.outputs.disk import disk_error
from savi_plugin.data.outputs.names import FAILED_LOG_HEADER, _failed_log_is_ours, _failed_log_names, _temp_name
from savi_plugin.data.outputs.holders import _alive
from savi_plugin.data.outputs.state import check_live_outputs

log = logging.getLogger(__name__)


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
        refused = not_written(exc, tmp, path)
        if refused is not None:
            raise refused from None
        raise


def not_written(exc: BaseException, tmp: Path, path: Path) -> OSError | None:
    """The error to raise for ``exc``, met writing the temporary ``tmp`` of ``path`` or renaming it onto ``path``:
    said of ``path`` (never of the temporary name, which no longer exists) with why it could not be written --
    its folder read-only (a read-only file system, a folder without write permission or made immutable while the
    job ran), or the file itself protected. None when ``exc`` is not about ``tmp``. The one wording of a write
    refused for every file the output layer writes (a report, a mark, a data file, a folder's temporary)."""
    if not isinstance(exc, OSError) or str(tmp) not in (str(exc.filename), str(exc.filename2)):
        return None
    why = ""
    if exc.errno == errno.EROFS:
        why = f": its folder {path.parent} is on a read-only file system"
    elif exc.errno in (errno.EPERM, errno.EACCES):
        probe = _temp_name(path)
        try:  # can a new file be made beside it? No: the folder is read-only; yes: the file itself is protected
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            os.unlink(probe)
            why = ": the file is protected (immutable, or not writable by this user)"
        except OSError:
            why = f": its folder {path.parent} is read-only (savi can make no file in it)"
    return OSError(exc.errno, f"{exc.strerror or exc} (savi could not write or replace it{why})", str(path))


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
    try:
        tmp.mkdir()
    except OSError as exc:  # said of the folder being written, not of its temporary's name
        raise (not_written(exc, tmp, near) or exc) from None
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

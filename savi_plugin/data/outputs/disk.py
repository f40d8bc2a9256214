"""A full disk names the destination (:func:`disk_error`): ``ENOSPC``, ``EDQUOT`` and ``EFBIG`` become one
``OSError`` naming the file the user asked for."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

from savi_plugin.data.outputs.common import DISK_FULL_ERRNOS


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

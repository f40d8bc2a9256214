"""What stands at a path: a node no output may replace (:func:`special_kind`), a link a file output cannot be
(:func:`link_problem`), a loop of links on its path (:func:`link_loop`), a path's identity (device and inode)."""

from __future__ import annotations

import os
from pathlib import Path

from savi_plugin.data.files import loop_text


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
        if link_loop(path) == path:
            return loop_text(path)
        return f"is a symbolic link to {target}, which does not exist"
    return (f"is a symbolic link (to {target}); writing it would replace the link, not its target: give the "
            f"target's own path, or another")


def link_loop(path: str | Path) -> Path | None:
    """The first link on ``path`` -- a folder above it, or ``path`` itself -- that is a loop of symbolic links (the
    system gives up resolving it: ``ELOOP``), or None. An output below one can be neither read nor written, and
    every name below it (its mark, its lock) is "too many levels of symbolic links": the loop is named, once, at
    the looping link, by every writer (:func:`~savi_plugin.data.outputs.claim.check_place`)."""
    import errno

    path = Path(path)
    for part in (*reversed(path.parents), path):
        if not os.path.islink(part):
            continue
        try:
            os.stat(part)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return part
    return None


def _identity(path: Path) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of ``path`` (links followed), None when nothing is there."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _parent(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")

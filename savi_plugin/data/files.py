"""What a user's input path is on disk, asked before it is opened (the one module of ``data`` that looks).

:mod:`savi_plugin.data.paths` stays pure (it only resolves names); this module stats the path.
"""

from __future__ import annotations

import os
from pathlib import Path


def file_problem(path: str | Path, what: str = "file") -> str | None:
    """Why ``path`` is not a regular file one can read -- what it is instead -- or None when it is one.

    ``"file not found"``, ``"is a broken symbolic link (to ...)"``, ``"cannot be read (...)"``, or ``"is a
    directory, not a <what>"`` (a FIFO, socket or device likewise: such a node would block or stream forever if
    opened, so it is named and never opened). Every reader of a user's file asks this first.
    """
    import stat

    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            return f"is a broken symbolic link (to {os.readlink(path)})"
        return "file not found"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"is {kind}, not a {what}"

"""What a user's input path is on disk, asked before it is opened (the one module of ``data`` that looks).

:mod:`savi_plugin.data.paths` stays pure (it only resolves names); this module stats the path.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: the variable that caps a document read whole (:func:`read_document`; a size in bytes like the other
#: ``SAVI_MAX_*`` caps of :mod:`savi_plugin.environment`, default 256 MiB)
DOCUMENT_BYTES_ENV = "SAVI_MAX_DOCUMENT_BYTES"


def loop_text(link: str | Path) -> str:
    """How a link that loops back to itself is said, for an input (:func:`file_problem`) and an output
    (:func:`savi_plugin.data.outputs.kinds.link_loop`) alike."""
    return f"is a loop of symbolic links (to {os.readlink(link)}, which leads back to it)"


def file_problem(path: str | Path, what: str = "file") -> str | None:
    """Why ``path`` is not a regular file one can read -- what it is instead -- or None when it is one.

    ``"file not found"`` (with why, when a part of the path is a file or a name too long), ``"is a broken symbolic
    link (to ...)"``, ``"is a loop of symbolic links (...)"``, ``"cannot be read (...)"``, or ``"is a
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
        if exc.errno == errno.ELOOP:
            return loop_text(path)
        if exc.errno == errno.ENOTDIR:  # a/b.mp4/x.mp4 with a/b.mp4 a file: nothing of that name can be there
            return "file not found (a part of its path is a file, not a folder)"
        if exc.errno == errno.ENAMETOOLONG:
            return "file not found (a name on its path is longer than the file system allows)"
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    return f"is {kind}, not a {what}"


def names_nothing(problem: str | None) -> bool:
    """Whether :func:`file_problem`'s ``problem`` says that nothing readable is at the path (not found, a broken
    link or a loop of links): a video the input names that is not there is ``missing_video``, not undecodable."""
    return problem is not None and problem.startswith(("file not found", "is a broken symbolic link",
                                                       "is a loop of symbolic links"))


def folder_problem(path: str | Path, holds: str, what: str) -> str | None:
    """Why ``path`` is not a ``what`` (a folder holding the file ``holds``) -- what it is instead -- or None when
    it is one: ``"no such file or folder"``, ``"is a broken symbolic link (to ...)"``, ``"is a file, not
    <what>"`` (a FIFO, socket or device named likewise, never opened), ``"is an empty folder, not <what>"``, or
    ``"is a folder without <holds>, not <what>"`` (``what`` with its article: ``"a model folder"``). Asked of a model or adapter folder before it is loaded.
    An empty name is said as one (``judge_model=$JUDGE`` with the variable unset): ``Path("")`` is the working
    folder, which would be named as a folder without ``holds``."""
    if not str(path).strip():
        return f"is an empty value (an unset variable in the shell?), not {what}"
    path = Path(path)
    if (path / holds).is_file():
        return None
    if not path.is_dir():
        problem = file_problem(path, "file")
        if problem is None:
            return f"is a file, not {what}"
        if problem == "file not found":
            return "no such file or folder"
        return problem.removesuffix(", not a file") + f", not {what}" if problem.endswith(", not a file") else problem
    try:
        empty = next(path.iterdir(), None) is None
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return f"is an empty folder, not {what}" if empty else f"is a folder without {holds}, not {what}"


def read_document_text(path: str | Path) -> str:
    """:func:`read_document` decoded as UTF-8 (``UnicodeDecodeError`` as ``bytes.decode`` raises it): what every
    reader of a whole JSON or YAML document a user gives reads it with."""
    return read_document(path).decode("utf-8")


def read_json(path: str | Path, error: Callable[..., Exception] | None = None, *, strict: bool = False) -> Any:
    """The JSON document at ``path``, read whole: :func:`read_document`'s byte cap, then
    :func:`savi_plugin.untrusted.load_json`'s caps on values and depth (``strict``: and its value checks). Every
    whole JSON document savi reads is read here or through ``load_json``.

    Raises:
        DocumentTooLarge: above ``$SAVI_MAX_DOCUMENT_BYTES`` or ``$SAVI_MAX_DOCUMENT_VALUES`` (whatever ``error``).
        ``error(message, line)`` (default: a ``ConfigError`` at ``path[:line]``) for a document too deep or invalid
        JSON; an unreadable path raises the ``OSError`` of ``open``.
    """
    from savi_plugin.untrusted import load_json

    return load_json(read_document(path), str(path), error, strict=strict)


def read_document(path: str | Path) -> bytes:
    """The bytes of ``path``, a document to be parsed whole, at most ``$SAVI_MAX_DOCUMENT_BYTES``: a larger file is
    refused from its size before it is read (a 3 GiB ``trainer_state.json`` was read into memory), and a stream
    that grows past the cap while read is refused too.

    Raises:
        DocumentTooLarge: naming the file, its size, the cap and the variable -- a configuration error (exit 2)
        whoever reads the document, never one of the reader's own "damaged file" errors.
        An unreadable path raises the ``OSError`` of ``open``; a FIFO, device or socket an ``OSError`` naming what
        it is (:func:`file_problem`), opened without blocking and never read.
    """
    from savi_plugin.environment import env_value, format_bytes
    from savi_plugin.errors import DocumentTooLarge

    cap = env_value(DOCUMENT_BYTES_ENV)

    def too_large(size: str) -> DocumentTooLarge:
        return DocumentTooLarge(path, size, format_bytes(cap), DOCUMENT_BYTES_ENV, "a document read whole")

    import stat

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once, to be named below, never read
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block forever, /dev/zero stream without end
            raise OSError(errno.EINVAL, (file_problem(path, "document file") or "is not a regular file"), str(path))
        size = st.st_size
        if size > cap:
            raise too_large(format_bytes(size))
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise too_large(f"more than {format_bytes(cap)}")
    return data

"""Append-only, crash-safe, resumable JSONL writer for preference records (and run reports' rows).

Guarantees, relied on by every long job:
- one ``write`` system call per record, of one complete line, on a file opened with ``O_APPEND``;
- on open, a trailing partial line (a crash mid-write) is cut off and logged, never kept;
- ids already in the file are known (``id in writer``), so a re-run skips finished work;
- ``fsync=True`` makes each line durable before ``write`` returns;
- a file removed, replaced, cut shorter (emptied, truncated in place) or hard-linked to another name while it is
  appended to stops the job
  before its next line (:class:`~savi_plugin.data.outputs.OutputRemovedError`), and :meth:`JsonlAppender.check_intact`
  says the same after the last line: the line would go to a file no one can read, or to a file without the
  earlier lines its progress counts as done;
- :func:`encode_line` is the one encoding of a line, so a caller can store the digest (:func:`line_digest`) of
  what it wrote and later verify the file against it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

from savi_plugin.data.record import PreferenceRecord

log = logging.getLogger(__name__)


def repair_truncated_tail(path: Path) -> int:
    """Cut a partial last line (no trailing newline) from ``path``; return the bytes removed.

    Raises:
        ForeignOutputError: ``path`` is a symbolic link, folder or FIFO, not a file savi wrote
            (:func:`savi_plugin.data.outputs.check_own_file`): nothing is cut or appended through it.
    """
    from savi_plugin.data.outputs import check_own_file

    check_own_file(path)
    if not path.exists():
        return 0
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        # Walk back to the last newline in blocks (files can be large).
        pos, block = size, 1 << 16
        keep = 0
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                break
            pos = start
        fh.truncate(keep)
    log.warning("%s: dropped a truncated last line (%d bytes) left by an interrupted run", path, size - keep)
    return size - keep


def cut_from_line(path: Path, number: int) -> int:
    """Cut ``path`` at the start of its line ``number`` (1-based): that line and every one after it are removed,
    the lines before it kept byte for byte; return the bytes removed. A job that must write those lines again in
    their order (a resumed generation whose earlier pair was lost) cuts here, then appends as ever.

    Raises:
        ForeignOutputError: ``path`` is a symbolic link, folder or FIFO (:func:`savi_plugin.data.outputs.
            check_own_file`): nothing is cut through it.
    """
    from savi_plugin.data.outputs import check_own_file

    check_own_file(path)
    size = path.stat().st_size
    with open(path, "rb+") as fh:
        keep, seen, block = 0, 0, 1 << 16
        while seen < number - 1:  # the end of line number - 1, found in blocks (lines can be long)
            fh.seek(keep)
            chunk = fh.read(block)
            if not chunk:
                return 0  # fewer lines than that: nothing to cut
            at = -1
            while seen < number - 1:
                at = chunk.find(b"\n", at + 1)
                if at < 0:
                    break
                seen += 1
            keep = keep + at + 1 if at >= 0 else keep + len(chunk)
        fh.truncate(keep)
    return size - keep


def iter_complete_objects(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects on the complete lines of ``path`` (a torn last line and lines that are not JSON objects,
    by the readers' rule, are skipped)."""
    from savi_plugin.data.readers import iter_lines, parse_line

    if not path.exists():
        return
    for number, raw, ended in iter_lines(path):  # at most MAX_LINE_BYTES of one line held
        if not ended:
            break
        obj, problem = parse_line(path, number, raw)
        if problem is None and isinstance(obj, dict):
            yield obj


def encode_line(obj: dict[str, Any]) -> bytes:
    """The bytes of ``obj``'s line as :class:`JsonlAppender` writes it, without the line feed.

    Raises:
        UnicodeEncodeError: ``obj`` holds text that is not valid Unicode.
    """
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def line_digest(line: bytes) -> str:
    """The SHA-256 (hex) of one line's bytes, without its line feed: what a progress file stores of a written
    record, to verify the output against it."""
    return hashlib.sha256(line).hexdigest()


def item_key(obj: dict[str, Any], key: str | tuple[str, ...]) -> str | None:
    """The identity of ``obj`` under ``key`` (one field, or several: a diagnostics row is one per pair and step),
    or None when a field is missing."""
    if isinstance(key, str):
        return str(obj[key]) if key in obj else None
    if not all(k in obj for k in key):
        return None
    return json.dumps([obj[k] for k in key], ensure_ascii=False, default=str)


def existing_ids(path: Path, key: str | tuple[str, ...] = "id") -> set[str]:
    """Ids of the complete lines already in ``path`` (lines that are not JSON objects are ignored)."""
    return {found for obj in iter_complete_objects(path) if (found := item_key(obj, key)) is not None}


class JsonlAppender:
    """Append JSON objects to ``path``, one complete line per ``os.write``; resumable by ``key`` (a field, or a
    tuple of fields that together identify a line).

    Every JSONL output is appended through this class (``tests/data/test_write_routes.py`` refuses an append
    anywhere else), so every one cuts a torn last line on reopen and skips what a resumed job already wrote."""

    def __init__(self, path: str | Path, *, fsync: bool = False, key: str | tuple[str, ...] = "id"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.key = key
        repair_truncated_tail(self.path)
        self.ids = existing_ids(self.path, key)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        #: where this appender's last line ended: the file is never shorter while the job holds it
        self._end = os.fstat(self._fd).st_size

    def __contains__(self, item_id: object) -> bool:
        """Whether ``item_id`` (an id, or for a tuple ``key`` an object holding its fields) was written."""
        if isinstance(item_id, dict):
            return item_key(item_id, self.key) in self.ids
        return str(item_id) in self.ids

    def __len__(self) -> int:
        return len(self.ids)

    def write_object(self, obj: dict[str, Any]) -> bool:
        """Append ``obj``; return False (and write nothing) if its id is already present."""
        item_id = item_key(obj, self.key)
        if item_id is None:
            raise KeyError(f"{self.path}: a line to append has no {self.key!r}")
        if item_id in self.ids:
            return False
        try:
            data = encode_line(obj) + b"\n"
        except UnicodeEncodeError as exc:
            raise ValueError(f"{self.path}: record {item_id!r} holds text that is not valid Unicode ({exc.reason}: "
                             f"{exc.object[exc.start:exc.end]!r}); nothing was written") from None
        self.check_intact()
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            written = os.write(self._fd, data)
            while written < len(data):  # a short write: the next one says why (disk full, file size limit)
                more = os.write(self._fd, data[written:])
                if more == 0:
                    raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")
                written += more
        except OSError as exc:  # never leave half a line behind; name the file (os.write does not)
            with contextlib.suppress(OSError):  # a file made immutable refuses the cut too (it took no byte either)
                os.ftruncate(self._fd, start)
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None
        if self.fsync:
            os.fsync(self._fd)
        self._end = start + written
        self.ids.add(item_id)
        return True

    def check_intact(self) -> None:
        """Stop when :attr:`path` no longer holds every line this appender wrote or found: the file removed,
        replaced by another one, or cut shorter in place (emptied with ``: >``, truncated); or when another name
        was hard-linked to it (a line appended would change that name's file too).

        Raises:
            OutputRemovedError: one line naming the file and what happened to it.
        """
        from savi_plugin.data.outputs import OutputRemovedError, check_live_outputs

        opened = os.fstat(self._fd)
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            now = None
        if now is None or (now.st_dev, now.st_ino) != (opened.st_dev, opened.st_ino):
            raise OutputRemovedError(f"{self.path}: was {'removed' if now is None else 'replaced'} during the run, "
                                     f"while this job was appending to it; the job stopped and wrote nothing more "
                                     f"there: run it again to start over")
        if opened.st_nlink > 1:  # a hard link made while it runs: each line would land in the other name's file
            raise OutputRemovedError(f"{self.path}: another name was linked to this file during the run "
                                     f"({opened.st_nlink} links), while this job was appending to it: its lines "
                                     f"would change under the other name too; the job stopped and wrote nothing "
                                     f"more there: break the link (copy the file and move the copy over this "
                                     f"name) and run it again to continue")
        if self._fd >= 0 and opened.st_size < self._end:
            raise OutputRemovedError(f"{self.path}: was cut from {self._end} to {opened.st_size} bytes during the "
                                     f"run, while this job was appending to it (lines it had written are gone); "
                                     f"the job stopped and wrote nothing more there: run it again to redo what "
                                     f"was lost")
        check_live_outputs(self.path)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PreferenceWriter(JsonlAppender):
    """A :class:`JsonlAppender` of :class:`PreferenceRecord` objects."""

    def write(self, record: PreferenceRecord) -> bool:
        """Append ``record``; return False if its id was already written (a resumed run)."""
        return self.write_object(record.to_json())

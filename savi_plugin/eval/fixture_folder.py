"""The folder ``savi eval fixture`` writes into: it writes only where nothing else lives, and a second run
replaces what the first wrote.

A marker file (:data:`~savi_plugin.data.outputs.FIXTURE_MARK_NAME`, JSON, read by the output layer too) lists, per
benchmark, every file the command wrote there with its size and
SHA-256, and the benchmarks whose writing began and has not finished (``writing``: the one a run is writing, and
any a stopped run left). From that:

* a folder holding any file the marker does not list (real annotations, videos, a user's notes), or a listed file
  whose content changed since (the user put their own file under that name), is refused before
  anything is written: :class:`FixtureFolderError`, one line naming the folder and such a file;
* writing a benchmark again first removes the files its previous run wrote (a run with a smaller ``-n`` or another
  ``--seed`` leaves no videos that no annotation names), and leaves other benchmarks' files alone;
* a run stopped while writing a benchmark leaves the marker naming it, so the files under that benchmark's folder
  count as the command's own and the next run of that benchmark replaces them -- also after runs of other
  benchmarks in between, which leave it named.

The marker is the command's own only when it is a regular file holding what the command writes (a JSON object
whose ``written_by`` names it; the plain-text line of its first version counts every file in the folder as its own).
Anything else under that name -- a user's file, other JSON, a folder, a FIFO, a link -- is refused naming it, before
anything is written (:func:`savi_plugin.data.outputs.foreign_marker`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from savi_plugin.data.outputs import (
    FIXTURE_MARK_NAME,
    FIXTURE_WRITTEN_BY,
    LOCK_NAME,
    OutputLock,
    check_place,
    foreign_marker,
    parse_fixture_mark,
    write_json,
)

def _writing(data: dict | None) -> list[str]:
    """The benchmarks a marker says are being written (or were, by a run that was stopped): a list; a single name
    or None in a marker of an earlier version."""
    writing = (data or {}).get("writing")
    names = [writing] if isinstance(writing, str) else writing if isinstance(writing, list) else []
    return [name for name in names if isinstance(name, str) and name]


def unfinished_benchmarks(root: Path) -> list[str]:
    """The benchmarks ``savi eval fixture`` was writing into ``root`` when it was stopped (its marker still says
    ``writing``); empty for a finished fixture, or a folder the command never wrote (a user's real data)."""
    marker = Path(root) / FIXTURE_MARK_NAME
    try:
        if not marker.is_file() or marker.stat().st_size > 1 << 24:
            return []
        return _writing(parse_fixture_mark(marker.read_bytes()))
    except OSError:
        return []


class FixtureFolderError(ValueError):
    """The folder is not one ``savi eval fixture`` may write into (a one-line message naming it)."""


def _files(folder: Path) -> list[str]:
    """Every file under ``folder``, relative to it, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def _signature(path: Path) -> list | None:
    """``[size, SHA-256]`` of a file (a link by its target's name), None when it is gone. The content, not the
    modification time: ``cp -p`` or ``rsync -a`` puts another file of the same size under the same time."""
    import hashlib

    try:
        if path.is_symlink():
            return [-1, hashlib.sha256(str(path.readlink()).encode()).hexdigest()]
        return [path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()]
    except OSError:
        return None


def _stored_signature(value) -> list | None:
    """A stored ``[size, SHA-256]``; None for anything else (a marker of an older version: its files are ours)."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], int) and isinstance(value[1], str):
        return value
    return None


class FixtureFolder:
    """The data root of one ``savi eval fixture`` run (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.written: dict[str, list[str]] = {}
        #: benchmarks whose writing began and has not finished (this run's, and any a stopped run left)
        self.writing: list[str] = []
        self._lock: OutputLock | None = None

    @property
    def marker(self) -> Path:
        return self.root / FIXTURE_MARK_NAME

    def claim(self) -> FixtureFolder:
        """Check that the command may write here and mark the folder as its own; returns ``self``.

        Raises:
            FixtureFolderError: the path is a file, or the folder holds a file the command did not write.
            ConfigurationError: its place is one no output may take (:func:`~savi_plugin.data.outputs.check_place`:
                below a file, inside a training checkpoint).
            OutputLockedError: another live savi job writes a folder around it, or this folder.
        """
        # the output layer's place rule: below a file or in a training checkpoint is exit 2, inside a folder another
        # running job writes exit 1, nothing written
        check_place(self.root, output_name="fixture folder", folder=True)
        if self.root.exists() and not self.root.is_dir():
            raise FixtureFolderError(f"{self.root}: exists and is not a folder")
        foreign = foreign_marker(self.marker, lambda data: parse_fixture_mark(data) is not None)
        if foreign is not None:
            raise FixtureFolderError(f"{self.marker}: exists and is {foreign}; savi eval fixture keeps its record "
                                     f"of what it wrote under that name and would replace it: move it away or "
                                     f"choose an empty or new folder")
        self._lock = OutputLock(self.root, folder=True, what="fixture folder").acquire()  # one run at a time
        try:
            return self._claim()
        except BaseException:
            self.release()
            raise

    def _claim(self) -> FixtureFolder:
        from savi_plugin.eval.fixtures import FIXTURE_BENCHMARKS

        ours = (FIXTURE_MARK_NAME, LOCK_NAME, LOCK_NAME + ".excl")
        if self.root.is_dir():  # the command writes only its benchmarks' folders there: anything else is someone's,
            others = sorted(e.name for e in os.scandir(self.root)  # said without walking it (`savi eval fixture /`)
                            if e.name not in ours and e.name not in FIXTURE_BENCHMARKS)
            if others:
                raise FixtureFolderError(
                    f"{self.root}: the folder holds {len(others)} entr{'y' if len(others) == 1 else 'ies'} not "
                    f"written by savi eval fixture (e.g. {others[0]}); it would overwrite annotations and videos "
                    f"there: choose an empty or new folder")
        present = [f for f in _files(self.root) if f not in ours] if self.root.is_dir() else []
        self._read(present)
        own = {f: sig for files in self.written.values() for f, sig in files.items()}
        own.update({f: None for f in present if Path(f).parts[0] in self.writing})
        foreign = [f for f in present if f not in own]
        if foreign:
            raise FixtureFolderError(
                f"{self.root}: the folder holds {len(foreign)} file(s) not written by savi eval fixture (e.g. "
                f"{foreign[0]}); it would overwrite annotations and videos there: choose an empty or new folder")
        changed = [f for f in present if own[f] is not None and _signature(self.root / f) != own[f]]
        if changed:
            raise FixtureFolderError(
                f"{self.root}: {changed[0]} was changed after savi eval fixture wrote it ({len(changed)} file(s) "
                f"differ in content); it may be your own data now: move it away or choose a new folder")
        self.root.mkdir(parents=True, exist_ok=True)
        self._save()
        return self

    def release(self) -> None:
        """Release the folder's lock (taken by :meth:`claim`)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> FixtureFolder:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None and self.root.is_dir():  # stopped or failed with files written: kept, unfinished
            from savi_plugin.data.outputs import note_ended

            note_ended(self.root, "kept")
        self.release()

    def __del__(self) -> None:
        self.release()

    def _read(self, present: list[str]) -> None:
        if not self.marker.exists():
            return
        data = parse_fixture_mark(self.marker.read_bytes())  # ours: claim refused anything else
        if not data:  # the plain-text marker: no file list
            self.written, self.writing = {"": {f: None for f in present}}, []
            return
        self.written = {str(k): ({str(f): _stored_signature(sig) for f, sig in v.items()} if isinstance(v, dict)
                                 else {str(f): None for f in v}) for k, v in data["written"].items()}
        self.writing = _writing(data)

    def _save(self) -> None:
        data = {"written_by": FIXTURE_WRITTEN_BY, "writing": self.writing,
                "written": self.written}
        write_json(self.marker, data, indent=1)

    def begin(self, benchmark: str) -> None:
        """Remove the files an earlier run wrote for ``benchmark`` and mark it as being written (beside any other
        benchmark a stopped run left unfinished: its files stay the command's own until it is written again)."""
        stale = list(self.written.pop(benchmark, {}))
        if benchmark in self.writing:
            stale += [f for f in _files(self.root) if Path(f).parts[0] == benchmark]
        else:
            self.writing.append(benchmark)
        self._save()  # before the first file goes: a stop from here on leaves the benchmark marked unfinished
        for name in stale:
            (self.root / name).unlink(missing_ok=True)

    def done(self, benchmark: str, files: list[Path]) -> None:
        """Record the files written for ``benchmark``."""
        self.written[benchmark] = {str(Path(f).relative_to(self.root)): _signature(Path(f)) for f in sorted(files)}
        self.writing.remove(benchmark)
        self._save()

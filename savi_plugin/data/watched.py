"""Input files a running job reads by the identity it took at its start: a file changed afterwards stops the job.

A job stores the identity of its inputs (:mod:`savi_plugin.data.identity`) once, at its start, with its output.
A video replaced at the same path while the job runs would make the items decoded after the change the new
file's work, recorded under the old file's identity, with exit status 0. So when an identity is computed, each
file's signature -- device, inode, size, modification and change times, taken from the file it hashed -- is kept
in a :class:`WatchedFiles`; while the job holds it (``with watch:``), the one video loader
(:func:`savi_plugin.video.decode.read_frames`) compares the file's signature after decoding it (and when the
decode failed) with the kept one (:func:`check_unchanged`, one ``stat``), and a difference stops the job with one
line naming the file (:class:`InputChangedError`). Every write changes the change time (``ctime``), which no user
call can set back, so a ``cp`` over the file, a ``dd conv=notrunc`` into it, a rename over it or its removal is
seen; what was done before is the old file's work, consistent with the stored identity, and is kept.

Files the job does not read itself are checked the same way around the process that reads them: lmms-eval reads
the model, the adapters and the benchmark data (the data root) a suite or ``savi align``'s eval step evaluates, so
the one launcher of a ``savi_video`` evaluation (:func:`savi_plugin.eval.command.savi_video_command`) checks every
held watch (:func:`check_active`) before lmms-eval starts and after it ends: a run during which one changed, or a
second run of a job begun after one changed (a base model's and an adapter's, paired item by item), is not counted.
A watched folder's file list is kept too (:meth:`WatchedFiles.add_folder`), so a file added to it is a change.

The same signatures tell a training run whether its base model's files changed on disk while it ran
(:meth:`WatchedFiles.changed`), so its adapter can say which base it records.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable

from savi_plugin.errors import InputChangedError

_active: list[WatchedFiles] = []
_guard = threading.Lock()


__all__ = ["InputChangedError", "WatchedFiles", "check_active", "check_unchanged", "signature_of"]


def signature_of(st: os.stat_result | None) -> tuple[int, ...] | None:
    """The parts of a ``stat`` result that every change of a file's content or place changes: (device, inode,
    size, mode, modification and change times in nanoseconds); None for a file that is not there."""
    if st is None:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mode, st.st_mtime_ns, st.st_ctime_ns)


def _key(path: str | os.PathLike) -> str:
    """The one name a watched file is kept and looked up under: absolute by the paths rule (a ``..`` taken through
    a symlinked folder as the disk takes it, :func:`~savi_plugin.data.paths.absolute_path`), so the key names the
    file that was stat-ed."""
    from savi_plugin.data.paths import absolute_path

    return absolute_path(path)


def _stat(path: str | os.PathLike) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


class WatchedFiles:
    """The signatures of a job's input files, as they were when their identity was computed.

    ``what``: how a message names such a file (``"a video the manifest names"``). Enter it (``with watch:``) for
    the part of the job that reads the files; watches nest (a pipeline's and each of its steps'), and a file is
    checked against every watch that holds it.
    """

    def __init__(self, what: str = "an input file"):
        self.what = what
        self.signatures: dict[str, tuple[int, ...] | None] = {}
        self.folders: dict[str, Callable[[], Iterable[str | os.PathLike]]] = {}

    def add(self, path: str | os.PathLike, st: os.stat_result | None) -> None:
        """Keep ``path``'s signature ``st`` (from the ``stat`` of the file its identity read; None: absent)."""
        self.signatures.setdefault(_key(path), signature_of(st))

    def add_paths(self, paths: Iterable[str | os.PathLike]) -> None:
        """Keep each path's signature as it is now."""
        for path in paths:
            self.add(path, _stat(path))

    def add_folder(self, folder: str | os.PathLike, members: Callable[[], Iterable[str | os.PathLike]]) -> None:
        """Watch ``folder``'s file list: ``members()`` lists the files that make up its content (those whose
        signatures :meth:`add` keeps); a file it lists later that is not watched has appeared."""
        self.folders.setdefault(_key(folder), members)

    def changed(self) -> list[str]:
        """The watched files whose signature differs now (removed, replaced or written), and the files that
        appeared in a watched folder (:meth:`add_folder`), in name order."""
        found = {key for key, before in self.signatures.items() if signature_of(_stat(key)) != before}
        for members in self.folders.values():
            found.update(key for key in map(_key, members()) if key not in self.signatures)
        return sorted(found)

    def check(self) -> None:
        """Stop the job when any watched file changed (:meth:`changed`): for files the job does not read itself
        (another process loads them, as lmms-eval loads the model a suite evaluates), asked between its steps.

        Raises:
            InputChangedError: naming the first changed file and what happened to it.
        """
        for key in self.changed():
            raise _changed_error(key, self.what, _stat(key), self.signatures.get(key))

    def __enter__(self) -> WatchedFiles:
        with _guard:
            _active.append(self)
        return self

    def __exit__(self, *exc) -> None:
        with _guard:
            if self in _active:
                _active.remove(self)


def check_active() -> None:
    """Stop the job when a file of any watch it holds (``with watch:``) changed (:meth:`WatchedFiles.check`): asked
    by the one launcher of a process that reads such files itself (lmms-eval:
    :func:`savi_plugin.eval.command.savi_video_command`), before it starts and after it ends.

    Raises:
        InputChangedError: naming the first changed file and what happened to it.
    """
    with _guard:
        held = list(_active)
    for watch in held:
        watch.check()


def check_unchanged(path: str | os.PathLike) -> None:
    """Stop the job when ``path`` is a file a running job watches (:class:`WatchedFiles`) and it changed since its
    identity was taken. Costs one ``stat``; nothing when no job watches the file.

    Raises:
        InputChangedError: naming the file and what happened to it.
    """
    if not _active:
        return
    key = _key(path)
    with _guard:
        held = [(watch, watch.signatures[key]) for watch in _active if key in watch.signatures]
    if not held:
        return
    now = _stat(key)
    for watch, before in held:
        if signature_of(now) != before:
            raise _changed_error(path, watch.what, now, before)


def _changed_error(path: str | os.PathLike, what: str, now: os.stat_result | None,
                   before: tuple[int, ...] | None) -> InputChangedError:
    happened = ("was removed" if now is None else "appeared" if before is None else
                "was replaced by another file" if (now.st_dev, now.st_ino) != before[:2] else
                "was written to" if (now.st_size, now.st_mtime_ns) != (before[2], before[4]) else
                "had its permissions changed" if now.st_mode != before[3] else
                "was changed (its change time moved: written to with its time set back, or its owner or links "
                "changed)")
    return InputChangedError(  # what was kept is said by the CLI's one line (cli._changed_input_hint)
        f"{path}: {what} {happened} while the job runs; its identity was taken at start, so nothing more is made "
        f"from it")


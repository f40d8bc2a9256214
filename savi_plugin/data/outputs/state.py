"""What this process holds: its locks (checked by one watcher thread), the outputs it marked, and how each output
of the running command ended. A forked child holds none of them (:func:`_forget_locks_in_child`), so the
other modules read ``_held``, ``_held_guard`` and ``_live`` through this module, never a copy of the name."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: these modules import this one
    from savi_plugin.data.outputs.locks import OutputLock
    from savi_plugin.data.outputs.claim import Output

log = logging.getLogger(__name__)


#: how often a running job checks that its lock files are still in place and puts back a removed one
LOCK_CHECK_SECONDS = 2.0


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


#: the outputs this process has marked and still holds (:meth:`Output.write_mark`, :func:`check_live_outputs`)
_live: list["Output"] = []


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

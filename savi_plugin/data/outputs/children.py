"""Child processes (lmms-eval, workers): the one place savi starts a program (:func:`start_child`), killed with
this process where the kernel allows."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from savi_plugin.data.outputs import state


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

    with state._held_guard:
        held = list(state._held)
    fds = {fd for lock in held for fd in lock.descriptors()}
    popen_kwargs["pass_fds"] = tuple(sorted(fds | set(popen_kwargs.get("pass_fds", ()))))
    setter = _death_signal_setter()
    if setter is not None and popen_kwargs.get("preexec_fn") is None:
        popen_kwargs["preexec_fn"] = setter
    proc = subprocess.Popen(command, **popen_kwargs)
    for lock in held:
        lock.note_child(proc.pid)
    return proc

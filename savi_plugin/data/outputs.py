"""Guards for what a job writes: one writer per output, an output is never an input, never destroy a source.

* :class:`OutputLock` -- an exclusive lock on an output file or folder, held for the whole job. Two processes
  appending to one pairs file, or training into one output folder, would interleave their work (duplicate ids,
  checkpoints of two runs in one folder) and both exit 0. The lock is ``flock`` on ``<output>.lock`` (a file
  output) or ``<folder>/.savi.lock`` (a folder output); the lock file names its holder (pid, host, start time,
  command) so the refusal can say who holds it. The kernel releases ``flock`` when its process dies, however it
  dies, so a lock file left by a killed job is stale by construction: the next job takes it over (and logs the
  dead holder). Under torchrun only rank 0 takes the lock; the other ranks belong to the same job.
* :func:`check_distinct` -- an output may not be one of the job's inputs (``--input qa.jsonl --output qa.jsonl``
  would append pairs to the QA manifest), nor a folder that holds an input (``--output-dir`` equal to the base
  model's folder would save the adapter into the model, which then loads with it attached).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

from savi_plugin.errors import RunError

log = logging.getLogger(__name__)

LOCK_NAME = ".savi.lock"


class OutputLockedError(RunError):
    """Another live process holds the output's lock; the message names it."""


class OutputIsInputError(ValueError):
    """An output would overwrite or write into one of the job's inputs."""


def lock_path(output: str | Path, folder: bool = False) -> Path:
    """``<output>.lock`` for a file output, ``<output>/.savi.lock`` for a folder output."""
    output = Path(output)
    return output / LOCK_NAME if folder else output.with_name(output.name + ".lock")


def _holder_text(info: dict) -> str:
    since = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
    return (f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, since {when}"
            + (f": {info['command']}" if info.get("command") else ""))


def _read_info(path: Path) -> dict:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _is_main_rank() -> bool:
    from savi_plugin.launch import current  # RANK counts only inside a launcher

    return current().is_main


class OutputLock:
    """Hold an exclusive lock on ``output`` (a file, or a folder with ``folder=True``) while the job runs.

    Use as a context manager; :meth:`acquire` raises :class:`OutputLockedError` naming the live holder. Only
    the torchrun rank 0 locks (``RANK``) -- other ranks of the same job write into the same folder -- unless
    ``every_rank`` (each rank writes its own output, e.g. a generation shard).
    """

    def __init__(self, output: str | Path, *, folder: bool = False, what: str = "output", every_rank: bool = False):
        self.output = Path(output)
        self.folder = folder
        self.every_rank = every_rank
        self.what = what
        self.path = lock_path(Path(os.path.realpath(self.output)), folder)  # one lock file for every spelling
        self._fd = -1

    def acquire(self) -> "OutputLock":
        if not (self.every_rank or _is_main_rank()):
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):  # retried only if a releasing holder unlinked the file between open and flock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                info = _read_info(self.path)
                raise OutputLockedError(
                    f"{self.output}: {self.what} is in use by another savi process ({_holder_text(info)}); wait for it "
                    f"to finish or use another {self.what} (lock file {self.path})") from None
            try:
                same_file = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same_file = False
            if not same_file:
                os.close(fd)
                continue
            stale = _read_info(self.path)
            if stale.get("pid"):
                log.warning("%s: taking over the lock of a process that is gone (%s)", self.output, _holder_text(stale))
            info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                    "command": " ".join(sys.argv)[:500]}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
            self._fd = fd
            return self
        raise OutputLockedError(f"{self.output}: could not take the lock {self.path} (it keeps being replaced)")

    def release(self) -> None:
        if self._fd < 0:
            return
        try:
            os.unlink(self.path)  # while still locked, so no other process can lock the inode being removed
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = -1

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def check_distinct(output: str | Path, inputs: dict[str, str | Path | None], *, output_name: str = "output",
                   folder: bool = False) -> None:
    """Refuse an ``output`` that is one of ``inputs`` or (``folder=True``) a folder an input lives in or under.

    Args:
        output: the path the job writes.
        inputs: ``{"--input": path, ...}``: the job's inputs by the name the user knows them (None: not given).
        output_name: how the user named the output (``--output``, ``--output-dir``).
        folder: the output is a folder the job writes files into.

    Raises:
        OutputIsInputError: naming both.
    """
    out = _real(output)
    for name, value in inputs.items():
        if value is None:
            continue
        src = _real(value)
        if src == out:
            raise OutputIsInputError(f"{output}: {output_name} is the same path as {name} ({value}); the job would "
                                     f"write into its own input: choose another {output_name}")
        if folder and out in src.parents:
            raise OutputIsInputError(f"{output}: {output_name} contains {name} ({value}); the job would write into "
                                     f"its input's folder: choose another {output_name}")

"""Who holds a lock: the holder's record in a lock file (pid, host, since, command) and whether it still runs."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path


def _holder_text(info: dict) -> str:
    since = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
    child = info.get("child")
    orphan = ""
    if isinstance(child, int) and info.get("host") == socket.gethostname() and not _alive(info) \
            and _alive({**info, "pid": child}):  # the holder was killed; a process it started holds its locks
        orphan = f" (gone; pid {child}, which it started, still runs and holds the lock)"
    return (f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, since {when}{orphan}"
            + (f": {info['command']}" if info.get("command") else ""))


def _read_info(path: Path) -> dict:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _job_key() -> str | None:
    """What the ranks of one launched job share (its launcher's rendezvous), or None outside a launcher."""
    from savi_plugin.launch import launcher_name

    name = launcher_name()
    if name is None:
        return None
    return ":".join([name] + [os.environ.get(k, "") for k in ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")])


def _holder_info() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
            "command": " ".join(sys.argv)[:500], "job": _job_key()}


def _holds(info: dict) -> bool:
    """Whether the holder of an ``O_EXCL`` lock file (``info``, its content) may still write: it runs
    (:func:`_alive`), or the child it started last does (:func:`start_child`; no ``flock`` to inherit here)."""
    child = info.get("child")
    return _alive(info) or (isinstance(child, int) and _alive({**info, "pid": child}))


def _alive(info: dict) -> bool:
    """Whether the holder in ``info`` may still run: another host (unknown: yes), or a live pid here."""
    if info.get("host") != socket.gethostname():
        return bool(info)
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

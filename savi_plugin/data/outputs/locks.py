"""One writer per output (:class:`OutputLock`): the ``flock`` on the lock file and on its shadow, the ``O_EXCL``
fallback, the checks for another job's lock (:func:`writer_now`, :func:`check_no_enclosing_job`), and a folder
another program fills under that lock (:func:`made_folder`)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from savi_plugin.data.outputs.common import ForeignOutputError, LOCK_NAME, NO_FLOCK_ERRNOS, OutputLockedError
from savi_plugin.data.outputs.kinds import _identity
from savi_plugin.data.outputs.disk import disk_error
from savi_plugin.data.outputs.names import another, check_own_file, lock_path
from savi_plugin.data.outputs.holders import _holder_info, _holder_text, _holds, _job_key, _read_info
from savi_plugin.data.outputs.state import note_ended, _register, _unregister
from savi_plugin.data.outputs.places import _case_insensitive, _real

log = logging.getLogger(__name__)


def _held_by_another_job(lock: Path, output: Path | None = None) -> dict | None:
    """The holder of ``lock`` when a live process of another job holds it, else None (no lock, released, this
    process, or another rank of this launched job). With ``output`` (its real path) the job's shadow lock
    (:func:`shadow_lock_path`) is asked too, so a lock file someone removed does not hide its holder."""
    info = _read_info(lock)
    held = _flock_holder(lock, info) if info else None
    if held is None and output is not None:
        shadow = shadow_lock_path(output)
        if shadow is not None and os.path.exists(shadow):
            held = _flock_holder(shadow, _read_info(shadow), _read_info(lock))
    return held


def _flock_holder(lock: Path, info: dict, fallback: dict | None = None) -> dict | None:
    """``info`` (or ``fallback`` when ``info`` is empty) when another job's live process holds ``lock``."""
    shown = info or fallback or {}
    if shown.get("pid") == os.getpid() and shown.get("host") == socket.gethostname():
        return None
    if shown.get("job") is not None and shown.get("job") == _job_key():
        return None
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return shown or {"pid": "?"}
    except OSError:  # no flock here: the O_EXCL lock file beside it decides
        return info if _holds(_read_info(lock.with_name(lock.name + ".excl"))) else None
    finally:
        os.close(fd)
    return None


# ------------------------------------------------------------------------------ the shadow lock (one per output)
#: shadow lock files no process holds (left by killed jobs) and older than this are removed by the next job that
#: takes a shadow lock, so they do not pile up
STALE_SHADOW_SECONDS = 60.0


def _shadow_roots() -> list[Path]:
    """Where the per-user shadow lock folder may live, in order: ``/tmp`` first, whatever ``TMPDIR`` says, so two
    jobs of one user started from different shells (one with ``TMPDIR`` or ``XDG_RUNTIME_DIR`` set, one without)
    meet in one place; ``XDG_RUNTIME_DIR`` is not used because logind removes it when the user's last session
    ends, while a ``nohup`` job still runs. The temporary folder Python chooses is the fallback."""
    roots = [Path("/tmp")]
    with contextlib.suppress(Exception):
        roots.append(Path(tempfile.gettempdir()))
    return list(dict.fromkeys(roots))


def shadow_lock_folder() -> Path | None:
    """The user's shadow lock folder, ``<tmp>/savi-locks-<uid>``, created ``0700``; None when no root gives one
    this user alone owns (not writable, or squatted by another user or with group/other access: why is logged at
    debug level, and the job is locked by its visible lock file alone)."""
    uid = os.getuid()
    for root in _shadow_roots():
        folder = root / f"savi-locks-{uid}"
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder, 0o700)
            st = os.lstat(folder)
        except OSError as exc:
            log.debug("no shadow lock folder at %s: %s", folder, exc)
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
            log.debug("no shadow lock folder at %s: %s", folder, "not a folder" if not stat.S_ISDIR(st.st_mode)
                      else f"owned by uid {st.st_uid}" if st.st_uid != uid else f"mode {oct(st.st_mode & 0o777)}")
            continue
        return folder
    return None


def shadow_lock_path(output: str | Path) -> Path | None:
    """The shadow lock of output ``output`` (a real path): a file in :func:`shadow_lock_folder` named by a digest
    of the output's identity on this machine -- the device and inode of its parent folder and its name. Removing
    or replacing the output (a folder replaced whole, ``rm -r`` of a training folder, its ``.lock`` file) does not
    change it, and every spelling of the output (``./``, symlinks, a moved parent folder) names the same one.
    None when there is no shadow folder or the parent folder does not exist."""
    output = Path(output)
    folder = shadow_lock_folder()
    if folder is None:
        return None
    try:
        st = os.stat(output.parent)
    except OSError:
        return None
    name = output.name.casefold() if _case_insensitive(output.parent) else output.name
    key = hashlib.sha256(f"{st.st_dev}:{st.st_ino}:{name}".encode("utf-8", "surrogateescape")).hexdigest()
    return folder / f"{key[:40]}.lock"


def _names(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not removed, not replaced by another file)."""
    try:
        a, b = os.lstat(path), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _sweep_stale_shadows(folder: Path, keep: Path) -> None:
    """Remove shadow lock files no process holds (left by killed jobs) once they are old: taken with a
    non-blocking exclusive ``flock`` and unlinked while held, so a job that opened one meanwhile sees it gone
    and retries (:meth:`OutputLock._take_shadow`)."""
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if entry.path == str(keep) or not entry.name.endswith(".lock"):
                continue
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime < STALE_SHADOW_SECONDS:
                    continue
                fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if _names(Path(entry.path), fd):
                    os.unlink(entry.path)
            except OSError:
                pass
            finally:
                os.close(fd)


def _remove_empty_lock_file(path: Path) -> None:
    """Remove the lock file a stopped :meth:`OutputLock.acquire` created and had not yet written its holder into:
    only while nobody holds it and it names no holder (a holder writes its line right after it locks)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_size == 0 and _names(path, fd):
                os.unlink(path)
        finally:
            os.close(fd)


def writer_now(output: str | Path, folder: bool = False) -> str | None:
    """Who holds ``output``'s lock right now, described (pid, host, since, command), when it is a live process of
    another job; None otherwise (e.g. a pair file a generation run is extending is not finished data)."""
    real = _real(output)
    holder = _held_by_another_job(lock_path(real, folder), real)
    return _holder_text(holder) if holder else None


def check_no_enclosing_job(output: str | Path, what: str = "output") -> None:
    """Refuse an output inside a folder another live savi job is writing (its ``.savi.lock``, or a replaced
    folder's ``<folder>.lock`` beside it): two jobs would mix their files in one folder, e.g. ``savi train
    --output-dir run/rrpo`` while ``savi ablate --out run`` writes ``run/rrpo``.

    Raises:
        OutputLockedError: naming the enclosing folder and its holder.
    """
    real = _real(output)
    for folder in real.parents:
        if not folder.name:
            continue
        for lock in (folder / LOCK_NAME, folder.with_name(folder.name + ".lock"), None):
            if lock is None:  # the visible lock files are gone or free: the job's shadow lock decides
                holder, lock = _held_by_another_job(folder / LOCK_NAME, folder), folder / LOCK_NAME
            elif not lock.exists():
                continue
            else:
                holder = _held_by_another_job(lock)
            if holder is not None:
                raise OutputLockedError(f"{output}: {what} lies inside {folder}, which another savi process is "
                                        f"writing ({_holder_text(holder)}); wait for it to finish or choose an "
                                        f"output outside it (lock file {lock})")


def _is_main_rank() -> bool:
    from savi_plugin.launch import current  # RANK counts only inside a launcher

    return current().is_main


class OutputLock:
    """Hold an exclusive lock on ``output`` (a file, or a folder with ``folder=True``) while the job runs.

    Two ``flock`` locks are taken, both released when the process ends however it ends: the *shadow* lock
    (:func:`shadow_lock_path`, in a folder of the user's own outside the output, keyed by the output's identity),
    which removing or cleaning the output's folder does not free, then the visible lock file beside or inside
    the output (:func:`lock_path`), which names the holder where users and other jobs look. A holder checks after
    each ``flock`` that the path still names the file it locked (a releasing holder may have removed it), and a
    watcher thread puts back a visible lock file removed while the job runs, with one warning.

    Use as a context manager; :meth:`acquire` raises :class:`OutputLockedError` naming the live holder. Only
    the launcher's rank 0 locks a folder -- other ranks of the same job write into the same folder -- unless
    ``every_rank`` (each rank writes its own output, e.g. a generation shard).
    """

    def __init__(self, output: str | Path, *, folder: bool = False, what: str = "output", every_rank: bool = False):
        self.output = Path(output)
        self.folder = folder
        self.every_rank = every_rank
        self.what = what
        self.real = Path(os.path.realpath(self.output))
        self.path = lock_path(self.real, folder)  # one lock file for every spelling
        self._fd = -1
        self._where: tuple[int, int] | None = None  #: the lock file's folder when it was taken
        self._excl: Path | None = None
        self._shadow: Path | None = None
        self._shadow_fd = -1
        self._info: dict = {}
        self._guard = threading.Lock()  # the watcher thread's check against release
        self._warned: set[str] = set()

    def _refuse(self, info: dict, path: Path) -> OutputLockedError:
        where = path if os.path.exists(path) else (f"{path}, removed while that job runs; it still holds the "
                                                    f"{self.what}")
        return OutputLockedError(
            f"{self.output}: {self.what} is in use by another savi process ({_holder_text(info)}); wait for it "
            f"to finish or use {another(self.what)} (lock file {where})")

    def _check_not_foreign(self) -> None:
        """Refuse a lock path that holds something other than a savi lock (a user's ``e.jsonl.lock``, a folder):
        taking the lock would empty that file, and releasing it would delete it."""
        if os.path.islink(self.path) or self.path.is_dir():
            raise ForeignOutputError(f"{self.output}: {self.path} exists and is not a savi lock file (a "
                                     f"{'link' if os.path.islink(self.path) else 'folder'}); savi needs that name for "
                                     f"the {self.what}'s lock: move it away or choose another {self.what}")
        check_own_file(self.path)  # a hard link: emptying it would empty the file under its other name
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size and not {"pid", "host", "started"} <= _read_info(self.path).keys():
            raise ForeignOutputError(f"{self.output}: {self.path} exists and is not a savi lock file; savi needs "
                                     f"that name for the {self.what}'s lock (it would empty and remove it): move it "
                                     f"away or choose another {self.what}")

    def acquire(self) -> "OutputLock":
        if not (self.every_rank or _is_main_rank()):
            return self
        self._check_not_foreign()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._info = _holder_info()
        self._take_shadow()
        try:
            self._take_visible()
            _register(self)
        except BaseException as exc:
            if self._fd >= 0 or self._excl is not None:  # taken: given back whole
                self.release()
                raise
            if not isinstance(exc, Exception):  # a stop (Ctrl-C, SIGTERM) between creating the file and locking it
                _remove_empty_lock_file(self.path)
            self._drop_shadow()
            raise
        return self

    def _take_shadow(self) -> None:
        """The shadow lock (:func:`shadow_lock_path`): refused naming its holder when another job holds it; left
        out, with the reason at debug level, when there is no usable shadow folder or it has no ``flock``."""
        shadow = shadow_lock_path(self.real)
        if shadow is None:
            log.debug("%s: no shadow lock (no private lock folder); locked by %s alone", self.output, self.path)
            return
        for attempt in range(20):  # retried if a releasing holder or a sweep removed the file before our flock
            try:
                fd = os.open(shadow, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            except OSError as exc:
                log.debug("%s: no shadow lock (%s: %s); locked by %s alone", self.output, shadow, exc, self.path)
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if attempt < 3:  # a job that only asks who writes here (writer_now) holds it shared for an instant
                    time.sleep(0.05)
                    continue
                info = _read_info(shadow) or _read_info(self.path) or {"pid": "?"}
                raise self._refuse(info, self.path) from None
            except OSError as exc:
                os.close(fd)
                log.debug("%s: no shadow lock (%s: %s); locked by %s alone", self.output, shadow, exc, self.path)
                return
            if not _names(shadow, fd):
                os.close(fd)
                continue
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps({**self._info, "output": str(self.real)}) + "\n").encode("utf-8"), 0)
            except OSError as exc:  # the flock is what counts; the holder's name is a courtesy
                log.debug("%s: could not write the holder into %s: %s", self.output, shadow, exc)
            self._shadow, self._shadow_fd = shadow, fd
            _sweep_stale_shadows(shadow.parent, shadow)
            return
        raise OutputLockedError(f"{self.output}: could not take the lock {shadow} (it keeps being replaced)")

    def _drop_shadow(self) -> None:
        if self._shadow_fd < 0:
            return
        if self._shadow is not None and _names(self._shadow, self._shadow_fd):
            with contextlib.suppress(OSError):  # while still locked: a job that opened it meanwhile retries
                os.unlink(self._shadow)
        os.close(self._shadow_fd)
        self._shadow, self._shadow_fd = None, -1

    def _take_visible(self) -> None:
        for _ in range(20):  # retried only if a releasing holder unlinked the file between open and flock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._refuse(_read_info(self.path), self.path) from None
            except OSError as exc:
                os.close(fd)
                if exc.errno in NO_FLOCK_ERRNOS:
                    self._acquire_exclusive_file()
                    return
                raise
            if not _names(self.path, fd):
                os.close(fd)
                continue
            stale = _read_info(self.path)
            if stale.get("pid"):
                log.warning("%s: taking over the lock of a process that is gone (%s)", self.output, _holder_text(stale))
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(self._info) + "\n").encode("utf-8"), 0)
            except OSError as exc:  # a full disk names the output, not "a file" (os.pwrite names none)
                os.close(fd)
                raise (disk_error(exc, self.output) or exc) from None
            self._fd = fd
            self._where = _identity(self.path.parent)
            return
        raise OutputLockedError(f"{self.output}: could not take the lock {self.path} (it keeps being replaced)")

    def _acquire_exclusive_file(self) -> "OutputLock":
        """The lock where ``flock`` is unsupported: ``<lock>.excl`` created with ``O_EXCL``, naming its holder."""
        excl = self.path.with_name(self.path.name + ".excl")
        with contextlib.suppress(OSError):  # the empty flock file this attempt created has no use here
            if self.path.stat().st_size == 0:
                self.path.unlink()
        for _ in range(3):
            try:
                fd = os.open(excl, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                info = _read_info(excl)
                if not info and time.time() - excl.stat().st_mtime < 10:  # a holder writing its info right now
                    time.sleep(0.2)
                    info = _read_info(excl)
                if _holds(info) or (not info and time.time() - excl.stat().st_mtime < 10):
                    raise self._refuse(info, excl) from None
                log.warning("%s: taking over the lock of a process that is gone (%s)", self.output, _holder_text(info))
                with contextlib.suppress(FileNotFoundError):
                    excl.unlink()
                continue
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(json.dumps(self._info) + "\n")
            except OSError as exc:
                with contextlib.suppress(FileNotFoundError):
                    excl.unlink()
                raise (disk_error(exc, self.output) or exc) from None
            self._excl = excl
            log.info("%s: the file system does not support flock; locked with %s instead", self.output, excl)
            return self
        raise OutputLockedError(f"{self.output}: could not take the lock {excl} (it keeps being replaced)")

    def check(self) -> None:
        """Put back a lock file removed while the job runs (the visible one where users and other jobs look, and
        the shadow one, e.g. removed by a cleaner of the temporary folder), with one warning each; a path that
        names something else now is left alone (the other lock still refuses a second job)."""
        with self._guard:
            if self._fd >= 0 and not _names(self.path, self._fd) and _identity(self.path.parent) != self._where:
                self._warn_once("visible", "%s: the folder of its lock file %s was removed or replaced while this "
                                "job runs; the lock is not put back there (the job stops at its next write)",
                                self.output, self.path)
            elif self._fd >= 0 and not _names(self.path, self._fd):
                fd = self._put_back(self.path, self._info, 0o644)
                if fd >= 0:
                    os.close(self._fd)
                    self._fd = fd
                self._warn_once("visible", "%s: its lock file %s was removed while this job runs; %s", self.output,
                                self.path, "put back (the job still holds the output)" if fd >= 0 else
                                "the job still holds the output through its shadow lock" if self._shadow_fd >= 0
                                else "a second job on this output would not be refused")
            if self._shadow_fd >= 0 and self._shadow is not None and not _names(self._shadow, self._shadow_fd):
                fd = self._put_back(self._shadow, {**self._info, "output": str(self.real)}, 0o600)
                if fd >= 0:
                    os.close(self._shadow_fd)
                    self._shadow_fd = fd
                self._warn_once("shadow", "%s: its shadow lock %s was removed while this job runs; %s", self.output,
                                self._shadow, "put back" if fd >= 0 else "could not put it back")

    def _warn_once(self, kind: str, *args: Any) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning(*args)

    @staticmethod
    def _put_back(path: Path, info: dict, mode: int) -> int:
        """A new lock file at ``path`` (absent: nothing else is replaced), locked and naming the holder; -1 when
        that is not possible (the folder is gone, the name taken, another process locked it first)."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        except OSError:
            return -1
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not _names(path, fd):
                raise FileNotFoundError(path)
            os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
        except OSError:
            os.close(fd)
            return -1
        return fd

    def descriptors(self) -> list[int]:
        """The open lock files this job's flocks are held through (the visible and the shadow lock), which a child
        process inherits to hold the output while it lives (:func:`start_child`)."""
        with self._guard:
            return [fd for fd in (self._fd, self._shadow_fd) if fd >= 0]

    def note_child(self, pid: int) -> None:
        """Record ``pid``, a process this job started that holds its lock (:func:`start_child`), in the lock files,
        so that a refusal names it when this process is gone and the child is not (:func:`_holder_text`)."""
        with self._guard:
            self._info = {**self._info, "child": pid}
            for fd, info in ((self._fd, self._info), (self._shadow_fd, {**self._info, "output": str(self.real)})):
                if fd < 0:
                    continue
                with contextlib.suppress(OSError):  # the flock is what counts; the holder's name is a courtesy
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
            if self._excl is not None:  # no flock to pass on: the file names the child, which holds it while alive
                with contextlib.suppress(OSError), open(self._excl, "w", encoding="utf-8") as fh:
                    fh.write(json.dumps(self._info) + "\n")  # read while empty: a holder writing (held)

    def release(self) -> None:
        _unregister(self)
        with self._guard:
            if self._excl is not None:
                self._unlink_lock_file(self._excl)
                self._excl = None
            if self._fd >= 0:
                if _names(self.path, self._fd):  # while still locked, so no other process locks a removed inode
                    self._unlink_lock_file(self.path)
                os.close(self._fd)
                self._fd = -1
            self._drop_shadow()  # last: the output stays held until its visible lock is gone

    def _unlink_lock_file(self, path: Path) -> None:
        """Remove a lock file of this job's as it ends. One that cannot be removed (its folder made read-only while
        the job ran) is said in one warning and left: it holds no lock once closed, the next job takes it over, and
        the error that ended the job (the file it could not write) is never replaced by this one."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("%s: its lock file %s could not be removed (%s); it holds no lock now, and the next job on "
                        "this output takes it over", self.output, path, exc.strerror or exc)

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def missing_folders(path: str | Path) -> list[Path]:
    """``path`` and its parents that do not exist yet (nothing, not even a link, at their name), deepest first: the
    folders a job that makes ``path`` creates, which only it may remove again (:func:`remove_made_folders`)."""
    missing, probe = [], Path(path)
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    return missing


def remove_made_folders(folders: list[Path]) -> None:
    """Remove, deepest first, the folders of :func:`missing_folders` that are still empty folders (never a link,
    never one holding anything): what a job that stopped before its first result made on its way to its output."""
    for folder in folders:
        if folder.is_symlink() or not folder.is_dir():
            continue
        with contextlib.suppress(OSError):  # not empty: kept, and so is every folder above it
            os.rmdir(folder)


@contextlib.contextmanager
def made_folder(path: str | Path, lock: str | None = None) -> Iterator[Path]:
    """``path`` made as a folder (its missing parents too) for a job another program fills (lmms-eval's
    ``--output_path``). With ``lock`` (how a refusal names the output) the folder's :class:`OutputLock` is held over
    the block, so two jobs never fill one folder: another live job holding it (a ``savi eval run``, a suite, any
    writer) is refused with one line naming it, and what this call made is removed. When the block fails, what it
    made is removed where it is still empty: the folders this call created and the empty folders made inside them
    during the block, never a folder that existed before or anything holding a file (nor a link)."""
    path = Path(path)
    made = missing_folders(path)
    path.mkdir(parents=True, exist_ok=True)
    held, started = None, False
    try:
        held = OutputLock(path, folder=True, what=lock).acquire() if lock is not None else None
        started = True  # refused: the folder holds only the other job's files, none of this one's
        yield path
    except BaseException:
        if held is not None:  # first: the lock file would keep the folder from being empty
            held.release()
            held = None
        for folder in made:  # deepest first
            if folder.is_dir() and not folder.is_symlink():
                for root, dirs, _ in os.walk(folder, topdown=False):  # empty folders made in it during the block
                    for name in dirs:
                        with contextlib.suppress(OSError):  # not empty, or a link: kept
                            if not os.path.islink(os.path.join(root, name)):
                                os.rmdir(os.path.join(root, name))
        remove_made_folders(made)
        if started and path.is_dir() and any(path.iterdir()):  # what the other program wrote before the stop
            note_ended(path, "kept")
        raise
    finally:
        if held is not None:
            held.release()

"""Our mark on an output and the files that are ours: what stands at a marker's name (:func:`foreign_marker`),
reading the mark (:func:`read_mark`, and ``savi eval fixture``'s own: :func:`folder_mark_command`), and which files
in a folder a savi job wrote."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable

from savi_plugin.data.outputs.common import ForeignOutputError, LOCK_NAME, MARK_NAME
from savi_plugin.data.outputs.kinds import special_kind
from savi_plugin.data.outputs.names import another, mark_path, sidecar, SIDECAR_KINDS
from savi_plugin.data.outputs.holders import _read_info


def sidecar_clash(output: str | Path, folder: bool = False) -> str | None:
    """Why ``output`` would share a name with another output's sidecar, or None: ``output`` (a file or a folder) is
    a sidecar of an output we marked (``pairs.jsonl.report.json`` beside a marked ``pairs.jsonl``), or a sidecar
    of file ``output`` is itself an output we marked (``--output q.jsonl.progress.jsonl`` of an earlier run, then
    ``--output q.jsonl``)."""
    output = Path(output)
    for kind in SIDECAR_KINDS:
        if output.name.endswith("." + kind) and len(output.name) > len(kind) + 1:
            owner = output.with_name(output.name[:-len(kind) - 1])
            if read_mark(owner, False) is not None:
                return f"is the {kind} of {owner}, an output of {read_mark(owner, False).get('command')}"
        if folder:
            continue
        side = sidecar(output, kind)
        theirs = read_mark(side, side.is_dir()) if kind != MARK_NAME.lstrip(".") else None
        if theirs is not None:
            return (f"would use {side} as its {kind}, but that {'folder' if side.is_dir() else 'file'} is an output "
                    f"of {theirs.get('command')}")
    return None


#: a file larger than this at a marker's name is not one savi wrote (it is not read to find out)
MARKER_MAX_BYTES = 64 * 2**20


def foreign_marker(path: str | Path, ours: Callable[[bytes], bool]) -> str | None:
    """What stands at a marker's name ``path`` when it is not a marker we wrote, as a phrase (``"a folder"``,
    ``"a FIFO (named pipe)"``, ``"a file savi did not write (not JSON)"``); None when nothing is there or it is ours.

    Only a regular file (not a symbolic link) whose bytes ``ours`` accepts is ours; anything else at that name
    belongs to someone else, and a writer that replaced it would lose it. Nothing but a regular file is opened
    (reading a FIFO would block)."""
    import stat

    path = Path(path)
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # nothing can be there (a path above it is a file)
        return None
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return f"a symbolic link (to {os.readlink(path)})"
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    if not stat.S_ISREG(st.st_mode):
        return special_kind(path) or "not a regular file"
    if st.st_size > MARKER_MAX_BYTES:
        return f"a file savi did not write ({st.st_size} bytes)"
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return None if ours(data) else f"a file savi did not write ({_why_not_ours(data)})"


def _why_not_ours(data: bytes) -> str:
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "empty" if not data.strip() else "not JSON"
    if not isinstance(obj, dict):
        return "JSON, not an object"
    if "written_by" not in obj:
        return "no written_by"
    return f"written_by {json.dumps(obj['written_by'], ensure_ascii=False)[:80]}"


def _parse_mark(data: bytes) -> dict | None:
    """The mark in ``data`` when it is one :meth:`Output.write_mark` wrote (a JSON object, ``written_by: savi``)."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return obj if isinstance(obj, dict) and obj.get("written_by") == "savi" else None


def foreign_mark(output: str | Path, folder: bool) -> str | None:
    """What stands at ``output``'s mark name (:func:`mark_path`) when it is not our mark (see
    :func:`foreign_marker`); None when there is no mark or it is ours."""
    return foreign_marker(mark_path(output, folder), lambda data: _parse_mark(data) is not None)


def foreign_mark_error(output: str | Path, folder: bool, output_name: str = "output") -> "ForeignOutputError | None":
    """The one-line refusal for a mark name that holds something not ours, or None."""
    what = foreign_mark(output, folder)
    if what is None:
        return None
    return ForeignOutputError(f"{mark_path(output, folder)}: exists and is {what}; savi keeps its mark of "
                              f"{output_name} {output} under that name and would replace it: move it away or choose "
                              f"{another(output_name)}")


def read_mark(output: str | Path, folder: bool) -> dict | None:
    """Our mark on ``output`` (``{"command", "config"}``), or None when it has none. Anything else at the mark's
    name (another JSON, text, a folder, a FIFO, a link) is not a mark: :func:`foreign_mark` says what it is."""
    if foreign_mark(output, folder) is not None:
        return None
    try:
        return _parse_mark(mark_path(output, folder).read_bytes())
    except OSError:
        return None


def marked_output(folder: str | Path) -> tuple[Path, str, Path] | None:
    """An output another savi command marked as its own at ``folder`` -- the folder itself, or a file or folder
    directly in it (:func:`folder_mark_command`) -- as ``(that output, its command, its mark's file)``, or None. Asked of a folder that no mark claims (``savi
    eval run``'s ``--output_path``, :func:`~savi_plugin.data.outputs.claim.check_place`'s ``claims_none``): every
    mark there is another command's, whose output it would change or mix with."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    marked = folder_mark_command(folder)
    if marked is not None:
        return folder, *marked
    suffix = MARK_NAME.lstrip(".")
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return None
    for name in names:
        inner = folder / name[:-len(suffix) - 1]
        if name.endswith("." + suffix) and os.path.lexists(inner):
            mark = read_mark(inner, False)
            if mark is not None:
                return inner, str(mark.get("command")), mark_path(inner, False)
        inner = folder / name
        if inner.is_dir() and not inner.is_symlink():  # a folder output directly in it (a finished `savi train`)
            marked = folder_mark_command(inner)
            if marked is not None:
                return inner, *marked
    return None


#: the marker ``savi eval fixture`` keeps in each folder it fills, in its own format: the files it wrote there, and
#: the benchmarks it was writing (:mod:`savi_plugin.eval.fixture_folder`)
FIXTURE_MARK_NAME = ".savi-eval-fixture"
#: that marker's ``written_by``
FIXTURE_WRITTEN_BY = "savi eval fixture: synthetic data, safe to overwrite"
#: the plain-text marker of the command's first version (no file list)
_FIXTURE_PLAIN_MARK = "written by " + FIXTURE_WRITTEN_BY


def parse_fixture_mark(data: bytes) -> dict | None:
    """The fixture marker in ``data`` when ``savi eval fixture`` wrote it: ``{"written": {...}, "writing": [...]}``;
    ``{}`` for the plain-text marker (no file list); None for anything else."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text.strip() == _FIXTURE_PLAIN_MARK:
        return {}
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not (isinstance(obj, dict) and obj.get("written_by") == FIXTURE_WRITTEN_BY and isinstance(obj.get("written"), dict)
            and all(isinstance(v, (dict, list)) for v in obj["written"].values())):
        return None
    return obj


def folder_mark_command(folder: str | Path) -> tuple[str, Path] | None:
    """The savi command that marked ``folder`` as its output, with the mark's file, or None: our mark's command
    (:func:`read_mark`), or ``savi eval fixture`` for that command's own marker (:data:`FIXTURE_MARK_NAME`). Only a
    regular file a savi command wrote is a mark (:func:`foreign_marker`)."""
    folder = Path(folder)
    if os.path.isfile(folder / MARK_NAME):
        mark = read_mark(folder, True)
        if mark is not None:
            return str(mark.get("command")), folder / MARK_NAME
    fixture = folder / FIXTURE_MARK_NAME
    if os.path.isfile(fixture) and foreign_marker(fixture, lambda data: parse_fixture_mark(data) is not None) is None:
        return "savi eval fixture", fixture
    return None


def _foreign_files(folder: Path, own: Iterable[str] = ()) -> list[str]:
    own = {MARK_NAME, *own}
    locks = {LOCK_NAME, LOCK_NAME + ".excl"}
    return sorted(p.name for p in folder.iterdir()
                  if not (p.name in own or (p.name in locks and _savi_lock_file(p)) or _our_mark_temp(p.name)
                          or _our_lock(p)))


def _savi_lock_file(path: Path) -> bool:
    """``path`` is a lock file a savi job wrote: a regular file (not a link), empty (being taken) or naming its
    holder. A user's file or folder under a lock's name is not (a job would empty and remove it)."""
    return (not path.is_symlink() and path.is_file()
            and (path.stat().st_size == 0 or {"pid", "host", "started"} <= _read_info(path).keys()))


def folder_lock_file(path: str | Path) -> bool:
    """Whether ``path`` is the lock a savi job keeps inside a folder it holds (``.savi.lock``, or its ``.excl``
    where ``flock`` is missing), as a savi job wrote it: not a file of what fills the folder."""
    path = Path(path)
    return path.name in (LOCK_NAME, LOCK_NAME + ".excl") and _savi_lock_file(path)


def _our_lock(path: Path) -> bool:
    """The lock file of another output a savi job holds right now (``<file>.lock`` with its holder; a released
    lock is removed), e.g. ``--json report.json`` claimed inside a benchmark's ``--work-dir``."""
    return path.name.endswith(".lock") and path.is_file() and {"pid", "host", "started"} <= _read_info(path).keys()


def _our_mark_temp(name: str) -> bool:
    """A temporary file of our mark (:func:`_temp_name`), left by a writer killed while it stored the mark."""
    return name.startswith(f".{MARK_NAME}.") and name.endswith(".tmp")

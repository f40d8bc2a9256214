"""Claiming an output (:func:`claim`, :class:`Output`): checked against the inputs and the steps of a run,
locked, marked as ours, watched while the job runs and undone when a configuration error leaves it; and
a run's step product (:func:`step_product`)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from savi_plugin.errors import ConfigurationError
from savi_plugin.data.outputs import state
from savi_plugin.data.outputs.common import (
    ForeignOutputError, LOCK_NAME, MARK_NAME, OutputIsInputError, OutputLockedError, OutputRemovedError)
from savi_plugin.data.outputs.kinds import _identity, link_loop, link_problem, loop_text, _parent, special_kind
from savi_plugin.data.outputs.disk import disk_error
from savi_plugin.data.outputs.names import (
    another, check_own_file, file_output, folder_above_error, mark_path, name_length_error, sidecar, SIDECAR_KINDS)
from savi_plugin.data.outputs.holders import _holder_text
from savi_plugin.data.outputs.state import _ended
from savi_plugin.data.outputs.places import check_distinct, check_not_any, check_not_in_checkpoint
from savi_plugin.data.outputs.atomic import remove_tree, replace_folder, write_json
from savi_plugin.data.outputs.locks import (
    check_no_enclosing_job,
    _held_by_another_job,
    _is_main_rank,
    missing_folders,
    OutputLock,
    remove_made_folders,
)
from savi_plugin.data.outputs.marks import (
    _foreign_files, foreign_mark_error, marked_output, read_mark, _savi_lock_file, sidecar_clash)
from savi_plugin.data.outputs.steps import (
    check_not_in_run_step, enclosing_output_name, marked_above_by_another, steps_error)

log = logging.getLogger(__name__)


def content_signature(path: str | Path) -> list:
    """``[size, SHA-256]`` of a file output (a large one hashed once per version:
    :func:`savi_plugin.data.identity.cached_digest`)."""
    from savi_plugin.data.identity import cached_digest

    return [os.path.getsize(path), cached_digest(Path(path))]


#: folders with at most this many files record their names (a changed one is named); larger ones a digest only
LISTED_FILES = 2000


def folder_listing(folder: str | Path) -> dict:
    """What a finished folder output holds: ``{"files": n, "sha256": digest of every relative path and size,
    "names": [...]}`` (names only up to :data:`LISTED_FILES`), without our lock and mark."""
    import hashlib

    folder = Path(folder)
    ours = {LOCK_NAME, MARK_NAME, LOCK_NAME + ".excl"}
    entries = sorted((p.relative_to(folder).as_posix(), p.lstat().st_size) for p in folder.rglob("*")
                     if not p.is_dir() or p.is_symlink())
    entries = [(name, size) for name, size in entries if name not in ours]
    digest = hashlib.sha256("".join(f"{name}\0{size}\n" for name, size in entries).encode("utf-8", "surrogateescape"))
    listing = {"files": len(entries), "sha256": digest.hexdigest()}
    if len(entries) <= LISTED_FILES:
        listing["names"] = [name for name, _ in entries]
    return listing


def _listing_change(stored: dict, now: dict) -> str:
    """A short phrase naming what differs between two :func:`folder_listing` results."""
    if "names" in stored and "names" in now:
        added = sorted(set(now["names"]) - set(stored["names"]))
        removed = sorted(set(stored["names"]) - set(now["names"]))
        if added:
            return f"{added[0]} was added"
        if removed:
            return f"{removed[0]} was removed"
        return "a file's size changed"
    return f"{now['files']} files now, {stored['files']} then"


class Output:
    """A claimed output: locked for the job, checked against the inputs, and marked as ours (see :func:`claim`)."""

    def __init__(self, path: Path, folder: bool, command: str, config: Mapping[str, Any], lock: OutputLock,
                 previous: dict | None):
        self.path, self.folder, self.command, self.config = path, folder, command, dict(config)
        self.lock = lock
        #: the output's identity once marked (:meth:`check_intact`): a folder's, or a file output's folder's
        self._identity: tuple[int, int] | None = None
        self._marked: tuple[str, Any] | None = None  # the command and configuration our mark holds (write_mark)
        self.previous = previous  #: the mark found on the output (None: the output was new)
        #: what existed before the job (None: the output was not new); a configuration error removes the rest
        self._before: set[str] | None = None
        #: a folder the job replaces whole (its finished listing is recorded: :meth:`record_content`)
        self.replaced_whole = False
        #: names (relative to the output's parent) made from the configuration alone, not a result (:func:`claim`)
        self.records: set[str] = set()
        self.what = "output"  #: how messages name it (:func:`claim`'s ``what``)
        self.output_name = "output"  #: the flag or name the user gave it by (:func:`claim`'s ``output_name``)
        #: files (relative to the output's parent) that hold only the job's record of its configuration while
        #: their size is the one noted here (:meth:`wrote_record`): a progress file's first row
        self._record_sizes: dict[str, int] = {}
        #: a run folder's steps (:func:`claim`'s ``steps``), recorded in its mark
        self.steps: dict[str, Any] | None = None
        #: the folders above a new output that did not exist at the claim, deepest first (:func:`missing_folders`):
        #: undone, the job removes those still empty (``runs/`` of ``--output-dir runs/x``), and only those
        self.made_above: list[Path] = []

    @property
    def mark(self) -> Path:
        return mark_path(self.path, self.folder)

    def sidecar(self, kind: str) -> Path:
        return sidecar(self.path, kind)

    def write_mark(self, into: str | Path | None = None, **extra: Any) -> None:
        """Store our mark (command, configuration, anything in ``extra``, e.g. the files written); ``into``: the
        temporary folder that is about to become the output (:func:`replace_folder`)."""
        if self.folder:
            self.path.mkdir(parents=True, exist_ok=True)
        target = mark_path(into, True) if into is not None else self.mark
        if into is None:  # what stands at the mark's name is replaced only when it is our mark
            foreign = foreign_mark_error(self.path, self.folder)
            if foreign is not None:
                raise foreign
        if self.steps is not None:
            extra = {"steps": self.steps, **extra}
        try:
            write_json(target, {"written_by": "savi", "command": self.command, "config": self.config, **extra})
        except OSError as exc:  # a full disk is said of the output the user named, not of our mark file
            named = disk_error(exc, self.path)
            if named is None:
                raise
            raise named from exc
        if into is None:
            self._marked = (self.command, json.loads(json.dumps(self.config, default=str)))
        if into is None and self._identity is None and (_is_main_rank() or self.lock.every_rank):
            self._identity = _identity(self.path if self.folder else _parent(self.path))
            with state._held_guard:
                state._live.append(self)

    def wrote_record(self, path: str | Path) -> None:
        """Note that ``path`` (the output or a sidecar) now holds only the job's record of its configuration (a
        progress file's configuration row): until it grows it is no result, so an error or a stop before the first
        result still removes it with the rest of a new output (:meth:`undo`)."""
        path = Path(path)
        with contextlib.suppress(OSError):
            self._record_sizes[str(path.relative_to(_parent(self.path)))] = path.stat().st_size

    def covers(self, target: str) -> bool:
        """Whether absolute path ``target`` is this output, inside this folder output, or one of its sidecars."""
        own = os.path.abspath(self.path)
        return target == own or target.startswith(own + ("/" if self.folder else "."))

    def removed(self) -> str | None:
        """How the marked output was removed or replaced since :meth:`write_mark` (None: it was not): its folder
        gone or another one at its path (device and inode differ), our mark gone from it, or another run's mark
        (another command or configuration) in its place."""
        if self._identity is None:
            return None
        where = self.path if self.folder else _parent(self.path)
        now = _identity(where)
        if now is None:
            return f"{'it' if self.folder else 'its folder ' + str(where)} was removed or moved away"
        if now != self._identity:
            return f"{'it' if self.folder else 'its folder ' + str(where)} was replaced by another folder"
        mark = read_mark(self.path, self.folder)
        if mark is None:
            return f"its mark {self.mark} was removed"
        if self._marked is not None and (mark.get("command"), mark.get("config")) != self._marked:
            return f"its mark {self.mark} was replaced by the mark of another run"
        return None

    def check_intact(self) -> None:
        """Stop the job when its output was removed or replaced while it ran (:meth:`removed`): what it would
        write next would land in a folder no mark claims, and its result would be lost or foreign.

        Raises:
            OutputRemovedError: one line naming the output.
        """
        why = self.removed()
        if why is not None:
            raise OutputRemovedError(self._removed_message(why))

    def _removed_message(self, why: str, done: str = "wrote nothing more there") -> str:
        # with its mark gone, what is left there is no longer known as ours: a re-run would refuse it
        # a mark removed, or another folder now at the path: a re-run would refuse what stands there as not ours
        there = os.path.lexists(self.path)
        with contextlib.suppress(OSError):
            there = there and (not os.path.isdir(self.path) or any(os.scandir(self.path)))  # an empty folder is new
        again = ("move it away (or remove it) and run again to start over"
                 if (why.startswith("its mark") or "replaced by another folder" in why) and there
                 else "run it again to start over")
        return (f"{self.path}: {self.what} was removed or replaced during the run ({why}); {self.command} stopped "
                f"and {done}: {again}")

    def check_write_landed(self, written: str | Path) -> None:
        """After a write by a route outside this module (the Trainer saving ``written``, a checkpoint folder inside
        this folder output), stop the job when the output was removed or replaced meanwhile -- the route recreated
        the folder at its path, or wrote into the one that replaced it. What the write created there is removed
        when the folder now at the path holds nothing else (it was created by that write); otherwise it is left,
        and the message names it.

        Raises:
            OutputRemovedError: one line naming the output, and what was written where it now stands.
        """
        why = self.removed()
        if why is None:
            return
        written = Path(written)
        if not os.path.lexists(written):
            raise OutputRemovedError(self._removed_message(why))
        top = Path(os.path.relpath(written, self.path)).parts[0] if self.folder else written.name
        holder = self.path if self.folder else _parent(self.path)
        others = [p.name for p in holder.iterdir() if p.name != top] if holder.is_dir() else []
        if self.folder and not others and self._identity is not None and _identity(holder) != self._identity:
            remove_tree(holder / top)  # a folder the write itself created at the path: it leaves none of it
            with contextlib.suppress(OSError):
                holder.rmdir()
            raise OutputRemovedError(self._removed_message(
                why, f"removed the {top} it had begun to save there in a folder of its own; it wrote nothing more"))
        raise OutputRemovedError(self._removed_message(
            why, f"had already saved {written} there, which is left as it is (it is not part of this run: remove it)"))

    def release(self) -> None:
        with state._held_guard, contextlib.suppress(ValueError):
            state._live.remove(self)
        self.lock.release()

    def record_content(self) -> None:
        """Store the finished file output's content signature in our mark (:func:`content_signature`): a later
        run of the same command refuses the file once someone changed it (it may be theirs now)."""
        if not (_is_main_rank() or self.lock.every_rank):
            return
        if self.folder and not (self.replaced_whole and self.path.is_dir()):
            return  # a folder a later run adds to (a training run, plotted into) keeps no listing
        if not self.folder and not self.path.is_file():
            return
        mark = read_mark(self.path, self.folder)
        if mark is not None and mark.get("command") == self.command:
            content = folder_listing(self.path) if self.folder else content_signature(self.path)
            write_json(self.mark, {**mark, "content": content})

    def undo(self) -> None:
        """Remove everything this job created at a new output (the mark, sidecars, files), leaving what was there
        before: a configuration error found after the claim marks nothing, so the corrected command is not refused
        as "another configuration" (README "Guarantees": configuration errors stop with nothing marked)."""
        if self._before is None or not (_is_main_rank() or self.lock.every_rank):
            return
        parent = _parent(self.path)
        for name in sorted(self._added(), reverse=True):  # a folder's entries before the folder
            target = parent / name
            if target.is_dir() and not target.is_symlink():
                remove_tree(target)
            else:
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
        if not self.folder and self.path.name in self._before and self.path.is_file():
            os.truncate(self.path, 0)  # it was empty (claim accepts no other unmarked file)

    def _added(self) -> set[str]:
        """What the job added to the output (paths relative to its folder's parent), without the lock files."""
        name = self.path.name
        locks = {f"{name}/{LOCK_NAME}", f"{name}/{LOCK_NAME}.excl", f"{name}.lock", f"{name}.lock.excl"}
        kept = {n for n in _existing_names(self.path, self.folder)  # the failure's log, which its line names
                if re.fullmatch(re.escape(name) + r"\.failed(-\d+)?\.log", n)}
        return _existing_names(self.path, self.folder) - (self._before or set()) - locks - kept - {name}

    def undoes(self, exc_type: type[BaseException]) -> bool:
        """Whether leaving the ``with`` block with ``exc_type`` removes what this job created (:meth:`undo`): a
        new output, and a configuration error or nothing written yet but the mark and empty files. A caller whose
        error names a file inside the output moves it out first (:func:`failed_log_path`)."""
        from savi_plugin.errors import ConfigurationError

        return self._before is not None and (issubclass(exc_type, ConfigurationError) or self._holds_no_result())

    def _holds_no_result(self) -> bool:
        """Whether what this job added to a new output is only its mark and empty files (nothing to resume)."""
        if self._before is None:
            return False
        parent, mark = _parent(self.path), str(self.mark.relative_to(_parent(self.path)))
        for name in self._added() | ({self.path.name} - self._before):
            target = parent / name
            if self.folder and name == self.path.name:
                continue  # the folder itself: its entries decide
            if name in self.records:
                continue  # written from the job's configuration alone, before its first result
            if name in self._record_sizes and target.is_file() and not target.is_symlink() and \
                    target.stat().st_size == self._record_sizes[name]:
                continue  # still only the record it held when noted (wrote_record)
            if target.is_dir() and not target.is_symlink() and _holds_only_empty_files(target):
                continue  # a step's folder whose own output was undone (an inner claim) or not yet written
            if name != mark and os.path.lexists(target) and not (target.is_file() and not target.is_symlink()
                                                                 and target.stat().st_size == 0):
                return False
        return True

    def __enter__(self) -> "Output":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        why = None if exc_type is OutputRemovedError else self.removed()
        if why is not None or exc_type is OutputRemovedError:  # what stands there now is not this job's:
            _ended[str(self.path)] = "removed"
            self.release()  # nothing is undone, recorded or marked there
            if why is not None:
                try:
                    self.check_intact()
                except OutputRemovedError as removed:
                    raise removed from exc
            return
        # any exception, a stop (Ctrl-C, SIGTERM: KeyboardInterrupt) included, before the first result
        undo = exc_type is not None and self.undoes(exc_type)
        _ended[str(self.path)] = "undone" if undo else "kept"
        try:
            if undo:
                try:
                    self.undo()
                except OSError as failed:  # its folder made read-only: the job's own error stays the one said
                    _ended[str(self.path)] = "kept"
                    undo = False
                    log.warning("%s: what this job began there could not be removed (%s: %s); remove it by hand",
                                self.path, failed.filename, failed.strerror or failed)
            elif exc_type is None:
                self.record_content()
        finally:
            self.release()
        if undo and self._before is not None and self.path.name not in self._before:
            with contextlib.suppress(OSError):  # created by this job: a folder empty once undone, or the file
                self.path.rmdir() if self.folder else self.path.unlink()
            remove_made_folders(self.made_above)  # and the folders it created to reach it, where still empty


def _existing_names(path: Path, folder: bool) -> set[str]:
    """What makes up output ``path`` now, relative to its parent: the output itself, its sidecars beside it
    (``<name>.*``) and, for a folder, its entries (``<name>/<entry>``; a folder output given as a link to a folder
    is written through the link, so its entries are the folder's)."""
    parent = _parent(path)
    if not parent.is_dir():
        return set()
    names = {p.name for p in parent.iterdir() if p.name == path.name or p.name.startswith(path.name + ".")}
    if folder and path.is_dir():
        names |= {f"{path.name}/{p.name}" for p in path.iterdir()}
    return names


def _holds_only_empty_files(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but folders, empty files and savi lock files (no result)."""
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if not (path.is_file() and not path.is_symlink() and (path.stat().st_size == 0 or (
                    path.name.endswith((".lock", ".lock.excl")) and _savi_lock_file(path)))):
                return False
    return True


def _stray_sidecar(path: Path) -> Path | None:
    """A result sidecar (progress, run report) beside unmarked file output ``path`` that holds something: no job
    of ours wrote it for this output (a job writes its mark before any sidecar), so it is someone else's file."""
    for kind in ("progress.jsonl", "report.json"):
        side = sidecar(path, kind)
        if os.path.lexists(side) and not (side.is_file() and not side.is_symlink() and side.stat().st_size == 0):
            return side
    return None


def check_place(output: str | Path, inputs: Mapping[str, str | Path | None] | None = None, *,
                output_name: str = "output", folder: bool = False,
                input_files: Mapping[str, Iterable[str | Path]] | None = None, what: str | None = None,
                claims_none: bool = False, inside: str | Path | None = None) -> None:
    """Refuse, as a configuration error (exit 2), an output whose place no job may write, whatever is there: ``-``
    (standard output to many tools), a file output given as a folder's name (``x/``: :func:`file_output`), below a
    file (:func:`folder_above_error`), a name too long for its sidecars (:func:`name_length_error`), equal to,
    inside or around an input (:func:`check_distinct`, :func:`check_not_any`), or inside a training checkpoint
    (:func:`check_not_in_checkpoint`); as not ours (exit 1), a FIFO, device or link savi would replace
    (:func:`special_kind`, :func:`link_problem`), an output with a loop of links on its path, named at the looping
    link (:func:`link_loop`), a folder where a file is needed or the reverse, or a name that is
    another marked output's sidecar (:func:`sidecar_clash`); and, while another live job writes a folder around it,
    as taken (exit 1, :func:`check_no_enclosing_job`), and at a step of a run folder another command claimed (exit
    1, :func:`check_not_in_run_step`), and inside another command's marked output folder at any depth unless this
    job holds it or it is ``inside``, the marked folder the caller writes into by design (exit 1,
    :func:`marked_above_by_another`). The first question
    :func:`claim` asks, the place check of ``savi eval fixture``'s folder, and the whole check of an output no mark
    claims (``savi eval run``'s ``--output_path``, shared between lmms-eval runs one at a time: :func:`made_folder`
    holds its lock); ``what``: how the last refusal names the output (default ``output_name``); ``claims_none``: the caller never marks its folder (``savi eval run``), so a savi mark
    on it or on an output directly in it is another command's, and the place is refused as theirs (exit 1,
    :func:`marked_output`), as every claim refuses another command's output."""
    path = file_output(output, output_name) if not folder else Path(output)
    if str(output) == "-":  # standard output to most tools; savi writes files, so one named `-` is asked as ./-
        raise ConfigurationError(f"-: {output_name} '-' names standard output to many tools, and savi writes a "
                                 f"{'folder' if folder else 'file'} here; for one named '-' write ./-")
    loop = link_loop(path)  # every name below a loop is "too many levels of symbolic links": the loop is named
    if loop is not None:
        on = "" if loop == path else f", on the path of {output_name} {output}"
        shown = f"{output}: {output_name}" if loop == path else f"{loop}:"
        raise ForeignOutputError(f"{shown} {loop_text(loop)}{on}: choose {another(output_name)}")
    refused = folder_above_error(path, output_name) or name_length_error(path, folder, output_name)
    if refused is not None:
        raise refused
    check_distinct(path, inputs or {}, output_name=output_name, folder=folder)
    for group, files in (input_files or {}).items():
        check_not_any({output_name: path}, files, what=group, folder=folder)
    check_not_in_checkpoint(path, output_name)
    special = special_kind(path)
    if special is not None:
        raise ForeignOutputError(f"{output}: {output_name} exists and is {special}; savi writes only regular files "
                                 f"and folders (it would replace it): choose {another(output_name)}")
    linked = link_problem(path, folder)
    if linked is not None:
        raise ForeignOutputError(f"{output}: {output_name} {linked}: choose {another(output_name)}")
    if path.exists() and path.is_dir() != folder:  # before any sidecar is named: `.` and `/` have no name
        raise ForeignOutputError(f"{output}: {output_name} exists and is {'a file' if folder else 'a folder'}; "
                                 f"a {'folder' if folder else 'file'} is needed here: choose {another(output_name)}")
    for name, given in (inputs or {}).items():  # a sidecar of an input (its run report, progress file, mark) is
        if given is None or not os.path.isfile(given):  # read with it: an output there is an output in an input
            continue
        for kind in SIDECAR_KINDS:
            side = sidecar(given, kind)
            if os.path.abspath(side) == os.path.abspath(path) or (
                    os.path.exists(side) and os.path.exists(path) and os.path.samefile(side, path)):
                raise OutputIsInputError(f"{output}: {output_name} is the {kind} of {name} ({given}), which this job "
                                         f"reads with it: choose {another(output_name)}")
    clash = sidecar_clash(path, folder)  # a folder too: one at a generation's report name would stop that run
    if clash is not None:
        raise ForeignOutputError(f"{output}: {output_name} {clash}; the two would overwrite each other's files: "
                                 f"choose {another(output_name)}")
    if claims_none:
        theirs = marked_output(path)
        if theirs is not None:
            owned, maker, marked = theirs
            held = f"is {maker}'s output" if owned == path else f"holds {owned.name}, {maker}'s output"
            raise ForeignOutputError(f"{output}: {output_name} {held} (marked {marked}); "
                                     f"writing here would mix with it: choose {another(output_name)}")
    check_no_enclosing_job(path, what or output_name)  # two jobs would mix their files in one folder
    check_not_in_run_step(path, output_name)  # another command would change what a run made, and stop the run
    above = marked_above_by_another(path, inside)  # after the two above, which name a live job or a run's step
    if above is not None:  # more exactly
        owned, maker, marked = above
        raise ForeignOutputError(f"{output}: {output_name} lies inside {owned}, {maker}'s output (marked "
                                 f"{marked}); writing there would change what it made: choose "
                                 f"{another(output_name)} outside it")


def claim(output: str | Path, *, command: str, config: Mapping[str, Any] | None = None, folder: bool = False,
          inputs: Mapping[str, str | Path | None] | None = None, output_name: str = "output",
          ignore: Iterable[str] = (), own_files: Iterable[str] = (), what: str | None = None,
          every_rank: bool = False, lock: bool = True, replace_ours: bool = False, lock_beside: bool = False,
          records: Iterable[str] = (), own_content: Callable[[Path], bool] | None = None,
          input_files: Mapping[str, Iterable[str | Path]] | None = None,
          steps: Mapping[str, Any] | None = None, check_only: bool = False,
          inside: str | Path | None = None) -> Output | None:
    """Check and lock ``output`` for ``command``; the gate every ``savi`` writer passes before it writes (except
    ``savi eval fixture``, whose folder check, :mod:`savi_plugin.eval.fixture_folder`, asks the same place question,
    :func:`check_place`, and takes the same lock).

    An output may be written when it is new (absent, an empty file or folder), or when it carries our mark for
    the same ``command`` and the same ``config`` (keys in ``ignore`` may differ: a resume that extends the run).
    Everything else is refused with one line: a mark of another command or configuration (naming what changed),
    or an existing output without our mark (naming a file that is not ours). With ``replace_ours`` a mark of the
    same command with another configuration is accepted (the caller replaces the previous result whole, e.g.
    ``convert --overwrite``).

    Args:
        output: the file or folder.
        command: e.g. ``"savi train"``; stored in the mark.
        config: what the result depends on (compared with the mark's, key by key).
        folder: the output is a folder.
        inputs: ``{name: path}`` of everything the job reads (:func:`check_distinct`).
        input_files: ``{what: paths}`` of inputs too many to name one by one (the videos the pairs name), each
            group checked the same way (:func:`check_not_any`); like ``inputs``, before anything at the output is
            looked at, so a folder holding them is refused as a configuration error, not as a folder of files
            that are not ours.
        output_name: how the user named the output (``--output-dir``).
        ignore: configuration keys that may change between a run and its continuation.
        own_files: names in a folder output that count as ours without a mark (none by default).
        what: how messages name the output (default ``output_name``).
        every_rank: every launcher rank claims its own output (each writes its own, e.g. a shard); without it
            only rank 0 checks, locks and marks, and the other ranks of the job return unchecked.
        lock: take the lock (False: the caller holds it already).
        replace_ours: accept our own mark with another configuration (the result is replaced whole).
        lock_beside: lock a folder output with ``<folder>.lock`` beside it (the folder is replaced whole by
            :func:`replace_folder`, which would move a lock inside it).
        records: names inside a folder output that the job writes before its first result from its configuration
            alone: its record of that configuration (``savi_train_config.json``, ``savi align``'s manifest) or what
            it builds from it (the tiny model a ``tiny://`` address builds, ``models``): a new output that holds only
            them after an error holds no result, and is removed like one, so the corrected command is not refused as
            "another configuration".
        own_content: for a file output whose content changed since the mark recorded it: whether it still holds
            only what the job itself wrote (e.g. a generation output with lines lost, each remaining line verified
            against the job's progress file); then the job may resume and redo what was lost instead of refusing.
        steps: for a run folder, what each of its steps writes there (:func:`steps_problem`): a step that exists
            and is not the run's -- a user's folder, another command's output -- is refused before any step runs,
            naming what to move; and the mark records them, so another command's output at a step is refused
            (:func:`check_not_in_run_step`).
        inside: the one folder another command marked that this output may lie inside (``savi plot RUN_DIR``'s
            curves in that ``savi train`` output; :func:`marked_above_by_another`).
        check_only: ask every question but the configuration's (:func:`check_claim`, a dry run): take no lock,
            write nothing, return None.

    Returns:
        The :class:`Output`, locked; call :meth:`Output.write_mark` once the configuration is final (before the
        first result is written), and :meth:`Output.release` at the end (or use it as a context manager).
    """
    from savi_plugin.data.fingerprint import check_same_config

    path = Path(output) if folder else file_output(output, output_name)  # `x/` is asked before pathlib drops the /
    config = dict(config or {})
    check_place(path, inputs, output_name=output_name, folder=folder, input_files=input_files, what=what,
                inside=inside)
    # a step of a command that claimed a folder around it (the demo's pairs file in its --out): its messages name
    # the flag the user typed, never a flag of a command they did not run
    remedy_name = enclosing_output_name(path) or output_name
    if remedy_name != output_name and output_name.startswith("-"):
        output_name = "output"
    held = OutputLock(path, folder=folder and not lock_beside, what=what or output_name, every_rank=every_rank)
    if not (every_rank or _is_main_rank()):
        # One job's ranks share this output: rank 0 alone decides whether it may be written (it locks, checks and
        # marks it). Another rank checking too would race with rank 0's own writes, and on a node-local disk it
        # would judge a folder rank 0 never sees; node-local folders are refused by the collective checks that
        # need them (training.distributed.shared_resume_point).
        if check_only:
            return None
        return Output(path, folder, command, config, held, read_mark(path, folder))  # unchecked: rank 0 decides
    before = _existing_names(path, folder)  # before the lock file exists (it may create the folder)
    made_above = missing_folders(_parent(path))  # before the lock file's folder is made
    foreign = foreign_mark_error(path, folder, output_name)  # a user's file or folder at our mark's name
    if foreign is not None:
        raise foreign
    if not folder:  # a link, folder or FIFO at a sidecar's name is not ours to append to, cut or replace
        for kind in ("progress.jsonl", "report.json"):
            check_own_file(sidecar(path, kind))
    if folder and lock_beside and path.is_dir():  # the folder is replaced whole: a lock inside must be a savi lock
        for inner in (path / LOCK_NAME, path / (LOCK_NAME + ".excl")):
            if os.path.lexists(inner) and not _savi_lock_file(inner):
                kind = "a link" if inner.is_symlink() else "a folder" if inner.is_dir() else "a file"
                raise ForeignOutputError(f"{inner}: exists and is not a savi lock file ({kind}); replacing "
                                         f"{output_name} {output} whole would remove it: move it away or choose "
                                         f"{another(remedy_name)}")
        holder = _held_by_another_job(path / LOCK_NAME)
        if holder is not None:
            raise OutputLockedError(f"{output}: {output_name} is in use by another savi process "
                                    f"({_holder_text(holder)}); wait for it to finish or choose "
                                    f"{another(remedy_name)} (lock file {path / LOCK_NAME})")
    if lock and not check_only:
        held.acquire()
    try:
        previous = read_mark(path, folder)
        if previous is not None:
            if previous.get("command") != command:
                raise ForeignOutputError(f"{output}: {output_name} was written by {previous.get('command')}, not "
                                         f"{command}: choose {another(remedy_name)}")
            stored = previous.get("content")
            if not folder and stored and path.is_file() and content_signature(path) != stored and not (
                    own_content is not None and own_content(path)):
                raise ForeignOutputError(f"{output}: {output_name} was changed after {command} wrote it; it may be "
                                         f"your own data now: move it away or choose {another(remedy_name)}")
            if folder and replace_ours and isinstance(stored, dict) and path.is_dir():
                now = folder_listing(path)
                if now["sha256"] != stored.get("sha256"):  # the job replaces the folder whole: nothing else in it
                    raise ForeignOutputError(
                        f"{output}: {output_name} changed after {command} wrote it ({_listing_change(stored, now)}); "
                        f"replacing it whole would lose what is there: move it away or choose {another(remedy_name)}")
            if not (replace_ours or check_only):
                check_same_config(previous.get("config") or {}, config, output=output,
                                  stored_at=mark_path(path, folder), ignore=ignore,
                                  remedy=f"continue with the same configuration, or choose {another(remedy_name)}")
        elif folder and path.is_dir():
            foreign = _foreign_files(path, own_files)
            if foreign:
                raise ForeignOutputError(
                    f"{output}: {output_name} holds {len(foreign)} file(s) not written by {command} (e.g. "
                    f"{foreign[0]}); it would mix its results with them: "
                    f"choose {another(remedy_name, 'a new or empty')}")
        elif not folder and path.is_file() and path.stat().st_size > 0:
            raise ForeignOutputError(f"{output}: {output_name} exists and was not written by {command}; writing it "
                                     f"would replace or mix with its content: choose {another(remedy_name, 'a new')}")
        if steps is not None:
            refused = steps_error(path, steps, command, remedy_name)
            if refused is not None:
                raise refused
        if previous is None and not folder:
            stray = _stray_sidecar(path)
            if stray is not None:
                kind = stray.name[len(path.name) + 1:]
                raise ForeignOutputError(f"{stray}: exists beside {output_name} {output}, which holds no mark of "
                                         f"{command}; the job would replace it as its own {kind}: move it away or "
                                         f"choose {another(remedy_name, 'a new')}")
    except BaseException:
        held.release()
        if lock and not check_only:  # refused after the lock made the output's folders: nothing of them stays
            remove_made_folders(([path] if folder and path.name not in before else []) + made_above)
        raise
    if check_only:
        return None
    claimed = Output(path, folder, command, config, held, previous)
    claimed.made_above = made_above if previous is None else []
    claimed.what = what or output_name
    claimed.output_name = output_name
    claimed._before = before if previous is None else None
    claimed.replaced_whole = folder and replace_ours
    claimed.records = {f"{path.name}/{name}" if folder else name for name in records}
    claimed.steps = dict(steps) if steps is not None else None
    return claimed


def check_claim(output: str | Path, *, command: str, **place: Any) -> None:
    """What :func:`claim` asks of ``output`` before it writes, with the same arguments (less ``config``), asked by a
    dry run so it refuses, with the same line and exit code, what its run refuses: the place (:func:`check_place`),
    another command's mark, a user's files, a step that is not the run's. It takes no lock and writes nothing; the
    configuration is not compared (a dry run computes no identities): a mark of the same command passes."""
    place.pop("config", None)
    claim(output, command=command, check_only=True, **place)


def step_product(folder: str | Path, *, command: str, config: Mapping[str, Any], make: Callable[[Path], None],
                 what: str) -> bool:
    """Make a run step's product folder once and keep it (the demo's videos and warm-up model, inside its claimed
    run folder): the later steps were made from it, so a re-run of the same run must find it as they did.

    New: ``make(tmp)`` builds it in a temporary folder, marked with ``config`` and its content
    (:func:`savi_plugin.data.identity.content_identity`: every file's SHA-256), which becomes ``folder`` by one
    rename. Marked for ``command`` with the same ``config`` and the same content: kept untouched. Marked with
    other content (a file changed, added or removed): refused naming the file, since what was made from it no
    longer matches it. Another configuration is refused by :func:`claim`, naming what changed. A folder without a
    mark (made by a savi that marked no step product) is kept as it is, its content recorded now, with a warning.

    Returns:
        True when ``folder`` was kept, False when it was made.

    Raises:
        ForeignOutputError: the content changed since it was made (exit 1).
    """
    from savi_plugin.data.identity import content_identity, identity_differences

    folder = Path(folder)
    mark = mark_path(folder, True)
    if folder.is_dir() and not folder.is_symlink() and not os.path.lexists(mark) and _foreign_files(folder):
        log.warning("%s: %s holds no record of its content (made by an earlier savi): kept as it is, its content "
                    "recorded now", folder, what)
        write_json(mark, {"written_by": "savi", "command": command, "config": dict(config),
                          "content": content_identity(folder)})
    with claim(folder, command=command, config=config, folder=True, lock_beside=True, output_name=what,
               what=what) as claimed:
        stored = (claimed.previous or {}).get("content")
        if isinstance(stored, dict) and folder.is_dir():
            now = content_identity(folder)
            if now is not None and now["sha256"] == stored.get("sha256"):
                return True
            hint = enclosing_output_name(folder) or what
            raise ForeignOutputError(
                f"{folder}: {what} changed after {command} made it "
                f"({identity_differences(stored, now) or 'its content differs'}); what the later steps made from it "
                f"no longer matches it: choose {another(hint)} to start over")
        with replace_folder(folder) as tmp:
            make(tmp)
            claimed.write_mark(into=tmp, content=content_identity(tmp))
        return False

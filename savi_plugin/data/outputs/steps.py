"""A run folder's steps are the run's (:func:`steps_problem`, :func:`check_not_in_run_step`), and another command's
output is its own (:func:`marked_above_by_another`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from savi_plugin.data.outputs import state
from savi_plugin.data.outputs.common import ForeignOutputError, LOCK_NAME, MARK_NAME
from savi_plugin.data.outputs.kinds import special_kind
from savi_plugin.data.outputs.names import another, _failed_log_is_ours, mark_path, SIDECAR_KINDS, TEMP_NAME
from savi_plugin.data.outputs.holders import _job_key, _read_info
from savi_plugin.data.outputs.places import _real, _same
from savi_plugin.data.outputs.marks import _foreign_files, folder_mark_command, foreign_mark, read_mark, _savi_lock_file


#: a step entry the run writes itself, with no mark of its own (lmms-eval's output, a log, a table, a tiny model)
OWN = "own"
#: a kept product the run writes itself (:mod:`savi_plugin.data.kept`: a JSON file sealed with its SHA-256)
KEPT = "kept"


def _step_key(steps: Mapping[str, Any], name: str) -> str | None:
    """The key of ``steps`` (a name or a ``fnmatch`` pattern: ``iter_[0-9]*``) that entry ``name`` is, or None."""
    import fnmatch

    return next((key for key in steps if fnmatch.fnmatchcase(name, key)), None)


def _beside_a_step(folder: Path, name: str, steps: Mapping[str, Any]) -> bool:
    """Whether ``name`` in the run's plain step folder ``folder`` belongs to one of its ``steps`` without being one:
    a sidecar of a product (its progress file, report, lock, mark), the lock of a folder replaced whole, a kept
    failure log, a savi lock file, or a temporary file of a writer that was killed."""
    import fnmatch

    path = folder / name
    if name in (LOCK_NAME, LOCK_NAME + ".excl"):
        return _savi_lock_file(path)
    if TEMP_NAME.fullmatch(name):
        return True
    for key, kind in steps.items():
        if not isinstance(kind, Mapping) and kind not in (OWN, KEPT) and any(
                fnmatch.fnmatchcase(name, f"{key}.{side}") for side in (*SIDECAR_KINDS, "lock.excl")):
            return True  # the product's own claim checks what stands there
        if fnmatch.fnmatchcase(name, f"{key}.failed*.log") and _failed_log_is_ours(path):
            return True
    return False


def _what_stands(path: Path) -> str:
    """What stands at ``path`` where a step was expected, as a phrase: ``"a file"``, ``"a folder"``, ``"a FIFO
    (named pipe)"``, a link to nothing."""
    if os.path.islink(path) and not path.exists():
        return f"a symbolic link to nothing ({os.readlink(path)})"
    return special_kind(path) or ("a file" if path.is_file() else "a folder")


def steps_problem(run: str | Path, steps: Mapping[str, Any], command: str) -> tuple[Path, str] | None:
    """The first entry at a step of ``command``'s run folder ``run`` that is not the run's own, with what it is, or
    None: every step the run writes there must be absent or the run's.

    ``steps`` maps each entry's name (or a ``fnmatch`` pattern, ``iter_[0-9]*``) to what the run makes there: a
    ``{name: ...}`` mapping for a plain folder of the run's (holding these entries, their sidecars and locks, and
    nothing else: a user's ``notes.txt`` there is not the run's, nor is any mark: a ``savi inspect`` site), the
    command whose mark a product carries (``"savi train"``, or a list of them: its mark names that command, or it
    is new -- a folder of unmarked files is not that command's), :data:`KEPT` for a kept product (a sealed JSON
    file, :func:`savi_plugin.data.kept.unsealed_problem`; what a seal vouches for is checked when the run reads
    it) or :data:`OWN` for what the run writes itself unmarked. A product of ``command`` itself without its mark
    is left to :func:`step_product` (an earlier savi's)."""
    run = Path(run)

    def problem(path: Path, kind: Any) -> tuple[Path, str] | None:
        if not os.path.lexists(path):
            return None
        if isinstance(kind, Mapping):
            if not path.is_dir():
                return path, f"{_what_stands(path)}, not the folder the run makes there"
            if os.path.lexists(mark_path(path, True)):
                mark = read_mark(path, True)
                return (path, f"an output of {mark.get('command')}" if mark is not None
                        else f"a folder holding {MARK_NAME}, which savi did not write there")
            for child in sorted(path.iterdir()):
                if _beside_a_step(path, child.name, kind):  # before the steps: `pairs.shard-*.jsonl` matches a
                    continue  # shard's `.progress.jsonl` too
                key = _step_key(kind, child.name)
                if key is None:
                    return child, f"{_what_stands(child)} not written by {command}"
                found = problem(child, kind[key])
                if found is not None:
                    return found
            return None
        if kind == OWN:
            return None
        special = special_kind(path)
        if special is not None or (os.path.islink(path) and not path.exists()):
            return path, _what_stands(path)
        if kind == KEPT:
            from savi_plugin.data.kept import unsealed_problem

            found = unsealed_problem(path, command) if path.is_file() else "a folder, not the file the run keeps there"
            return (path, found) if found is not None else None
        makers = [kind] if isinstance(kind, str) else list(kind)
        maker = " or ".join(makers)
        folder = path.is_dir()
        foreign = foreign_mark(path, folder)
        if foreign is not None:
            return mark_path(path, folder), f"{foreign}, at the name of {maker}'s mark"
        mark = read_mark(path, folder)
        if mark is not None:
            return None if mark.get("command") in makers else (path, f"an output of {mark.get('command')}, not {maker}")
        if command in makers:  # the run's own step product, checked when it is made (step_product)
            return None
        if folder:
            others = _foreign_files(path)
            return (path / others[0], f"{_what_stands(path / others[0])} not written by {maker}") if others else None
        if path.is_file() and path.stat().st_size > 0:
            return path, f"a file not written by {maker}"
        return None

    if not run.is_dir():
        return None
    for child in sorted(run.iterdir()):
        key = _step_key(steps, child.name)
        if key is not None:
            found = problem(child, steps[key])
            if found is not None:
                return found
    return None


def steps_error(run: str | Path, steps: Mapping[str, Any], command: str,
                output_name: str = "--out") -> "ForeignOutputError | None":
    """The one-line refusal of what :func:`steps_problem` finds at a step of ``run``, naming it (what to move), or
    None."""
    found = steps_problem(run, steps, command)
    if found is None:
        return None
    path, what = found
    return ForeignOutputError(f"{path}: {what}, at a step of the {command} run in {run}, which writes there: move it "
                              f"away to continue the run, or choose {another(output_name)}")


def _step_of(steps: Mapping[str, Any], parts: tuple[str, ...]) -> bool:
    """Whether the path ``parts`` (relative to a run folder) is a step of the run or lies in a folder the run
    writes itself (a plain step folder, an :data:`OWN` one); a path inside another command's product (a plot in
    a training folder) is that product's, and a top-level name the run does not use is free."""
    kind: Any = steps
    for depth, part in enumerate(parts):
        if not isinstance(kind, Mapping):  # inside what the run writes itself, or inside another command's product
            return isinstance(kind, str) and kind in (OWN, KEPT)
        key = _step_key(kind, part)
        if key is None:
            return depth > 0  # a free name at the top; inside a plain step folder, the run's
        kind = kind[key]
    return True


def _run_held_here(folder: Path) -> bool:
    """Whether this process (its lock taken, or its mark written), or another rank of its launched job, holds the
    run folder ``folder``."""
    with state._held_guard:
        if any(o.folder and _same(_real(o.path), folder) for o in state._live):
            return True
        if any(_same(lock.real, folder) for lock in state._held):
            return True
    job = _read_info(folder / LOCK_NAME).get("job")
    return job is not None and job == _job_key()


def check_not_in_run_step(output: str | Path, output_name: str = "output") -> None:
    """Refuse an output at a step of a run folder another command claimed and marked with its steps
    (:func:`claim`'s ``steps``: ``savi align``'s ``iter_0/pairs.jsonl``, ``savi ablate``'s ``dpo/``), unless this
    job holds that run (its own step): another command would change what the run made there, and the run could
    not be continued.

    Raises:
        ForeignOutputError: naming the enclosing run folder and its command.
    """
    real = _real(output)
    for folder in real.parents:
        mark = read_mark(folder, True) if os.path.isfile(folder / MARK_NAME) else None
        steps = (mark or {}).get("steps")
        if not isinstance(steps, dict) or not _step_of(steps, real.relative_to(folder).parts):
            continue
        if _run_held_here(folder):
            return
        from savi_plugin.data.paths import from_here

        raise ForeignOutputError(f"{output}: {output_name} lies at a step of the {mark.get('command')} run in "
                                 f"{from_here(folder)}, which only that run writes: choose {another(output_name)} "
                                 f"outside its steps")


def marked_above_by_another(output: str | Path, inside: str | Path | None = None) -> tuple[Path, str, Path] | None:
    """The nearest folder above ``output`` (by real path, at any depth) that a savi command marked as its output,
    as ``(that folder, its command, its mark's file)``, when the output may not lie there; None when no folder above is marked,
    when this job holds one of them (a run writes inside its own folder: :func:`_run_held_here`), or when the
    nearest one is ``inside``, the one marked folder the caller writes into by design (``savi plot RUN_DIR``'s
    curves inside that ``savi train`` output). Files written inside another command's finished output change
    what it made: its own re-run then refuses it as changed, or mixes them in."""
    real = _real(output)
    nearest = None
    for folder in real.parents:
        marked = folder_mark_command(folder)
        if marked is None:
            continue
        if _run_held_here(folder):
            return None
        if nearest is None:
            nearest = folder, *marked
    if nearest is None or (inside is not None and _same(nearest[0], _real(inside))):
        return None
    return nearest


def enclosing_output_name(path: str | Path) -> str | None:
    """The flag of the folder output this process claimed around ``path`` (``--out`` of ``savi demo`` around its
    generation step's pairs file), or None: a step's refusal names the flag the user typed, never the flag of a
    command they did not run."""
    target = os.path.abspath(path)
    with state._held_guard:
        around = [o for o in state._live if o.folder and target.startswith(os.path.abspath(o.path) + os.sep)]
    return min(around, key=lambda o: len(str(o.path.absolute()))).output_name if around else None

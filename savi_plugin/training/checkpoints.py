"""Training checkpoints: which run wrote each ``checkpoint-N``, whether it is complete, where a run resumes.

Every ``checkpoint-N`` a ``savi train`` run saves carries the identity of that run, ``savi_checkpoint.json``: the
fingerprint of its configuration (:func:`savi_plugin.data.fingerprint.config_fingerprint` of what the output
folder's mark stores, without the keys a continuation may change) and that configuration, its paths stored for the
checkpoint's own file (:func:`savi_plugin.training.stored_config.stored_configuration`: relative inside a declared
run folder, so a run folder moved whole still names its model and pairs; absolute otherwise). It is written by
:func:`identity_callback`, atomically, as every save begins (before any process writes a file of it) and again
once the save is done, so a checkpoint torn by a kill or a full disk still says whose it is. The second
write adds ``contents``: every file a resume loads from the checkpoint with its size and SHA-256
(:func:`checkpoint_contents`), so weights or optimizer state replaced at the same path are not resumed from.

A checkpoint is *complete* when its ``trainer_state.json`` (the Trainer writes it last) parses and names step N.
:func:`resume_point` sorts a folder's checkpoints:

* one whose state or identity names another step than its name (renamed, or copied from elsewhere): refused;
* complete and of this run: the newest is where the run resumes, once its files are checked against its
  ``contents`` (:func:`check_contents`): a file changed, removed or added since the run wrote it is refused in one
  line naming the checkpoint and the file. It is refused, not skipped for the checkpoint before it (as a torn one
  is): it is complete and someone put those files there, and a run continued from the one before would write
  over them when it saves that step again. A checkpoint recorded before ``contents`` existed resumes unchecked,
  said at INFO; one whose run was stopped between its ``trainer_state.json`` and its record (``contents`` null)
  resumes unchecked with a warning (removing it could leave no checkpoint: the Trainer has rotated older ones
  away by then);
* of another run (another fingerprint), or complete and carrying no identity (another tool's, or copied from
  elsewhere): refused in one line naming it -- resuming from it would continue another run's weights, optimizer
  and schedule under this run's configuration, and training anew would overwrite or rotate it away;
* torn and of this run: removed before training (the Trainer would write its step into it again);
* torn with no identity (a kill between creating the folder and renaming the identity's temporary file into
  place): skipped with a warning, and removed with the earlier session's checkpoints when the run is trained anew
  -- only while it holds nothing but that temporary file (:func:`stray_member`): a save writes nothing before its
  identity, so a folder holding anything else (a user's file, even valid JSON at a save's name or another run's
  weights, a sub-folder, a link) was not written by this run and is refused by name, with or without
  ``--resume``, never removed;
* a ``checkpoint-*`` folder under a name no save is written at (``checkpoint-0003``, ``checkpoint-3.bak``):
  refused by name (transformers' rotation counts it among the run's checkpoints and would remove it).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from savi_plugin.data.files import read_json
from savi_plugin.data.identity import (
    CHECKPOINT_FILE,
    cached_digest,
    identity_differences,
)
from savi_plugin.data.outputs import check_live_outputs, remove_tree, TEMP_NAME, write_json
from savi_plugin.errors import ConfigurationError, DocumentTooLarge
from savi_plugin.training.stored_config import (
    configuration_from_file,
    stored_configuration,
)

log = logging.getLogger(__name__)

#: a file another process writes into the checkpoint while rank 0 records it (its RNG state; the others, weights,
#: optimizer and DeepSpeed shards included, are complete when the Trainer calls ``on_save`` on rank 0)
_OTHER_PROCESS = re.compile(r"rng_state_([1-9]\d*)\.pth")


#: the names the Trainer saves a checkpoint under (``checkpoint-{global_step}``: no leading zero)
_SAVED_NAME = re.compile(r"checkpoint-(0|[1-9]\d*)")


def stray_member(checkpoint: str | Path) -> Path | None:
    """The first thing in ``checkpoint`` that a save of this run could not have left there before its identity, or
    None. A save writes the identity first (:func:`identity_callback`, before any process writes a file of the
    save), so a folder without one holds nothing, or the identity's own temporary file (the output layer's
    ``TEMP_NAME`` of :data:`CHECKPOINT_FILE`: a stop while :func:`write_identity` wrote it); anything else -- a file
    at any other name, even one a save writes (``config.json``, weights), a sub-folder, a link -- was put there by
    someone else."""
    for path in sorted(Path(checkpoint).iterdir()):
        identity_temp = TEMP_NAME.fullmatch(path.name) and path.name.startswith(f".{CHECKPOINT_FILE}.")
        if path.is_symlink() or not path.is_file() or not identity_temp:
            return path
    return None


class ForeignCheckpointError(ConfigurationError):
    """A ``checkpoint-N`` in a run's output folder was not written by this run (exit status 2, nothing touched)."""


def checkpoint_folders(output_dir: str | Path) -> list[tuple[int, Path]]:
    """``(N, path)`` of every ``checkpoint-N`` folder in ``output_dir`` (named as the Trainer names a save), newest
    first."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir()
             if (m := _SAVED_NAME.fullmatch(p.name)) and p.is_dir()]
    return sorted(found, reverse=True)


def misnamed_checkpoint_folders(output_dir: str | Path) -> list[Path]:
    """The folders of ``output_dir`` that transformers counts among the run's checkpoints (``checkpoint-*``: its
    rotation removes the oldest beyond ``save_total_limit``) under a name no save is written at
    (``checkpoint-0003``, ``checkpoint-3.bak``)."""
    output_dir = Path(output_dir)
    return sorted(p for p in output_dir.glob("checkpoint-*") if p.is_dir() and not _SAVED_NAME.fullmatch(p.name)) \
        if output_dir.is_dir() else []


def read_identity(checkpoint: str | Path) -> dict[str, Any] | None:
    """The run identity stored in ``checkpoint`` (None: none, or not readable as ours)."""
    try:
        data = read_json(Path(checkpoint) / CHECKPOINT_FILE)
    except DocumentTooLarge:
        raise
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("run"), str) else None


def state_step(checkpoint: str | Path, with_epoch: bool = False) -> int | tuple[int, float] | None:
    """The step ``checkpoint``'s ``trainer_state.json`` (written last by the Trainer) names (with ``with_epoch``:
    ``(step, epoch)``), or None (absent or torn)."""
    try:
        state = read_json(Path(checkpoint) / "trainer_state.json")
        step = int(state["global_step"])
        return (step, float(state.get("epoch") or 0.0)) if with_epoch else step
    except DocumentTooLarge:
        raise
    except (OSError, ValueError, TypeError, KeyError):
        return None


def checkpoint_contents(checkpoint: str | Path) -> dict[str, Any]:
    """What a resume loads from ``checkpoint``, by content: every file under it with its size and SHA-256
    (``{"files": n, "members": [[name, "size:sha256"], ...]}``, as
    :func:`~savi_plugin.data.identity.model_identity` lists a model's files).

    Every file, not a list of names: transformers' resume reads the weights (``adapter_model.safetensors`` or
    ``.bin`` with ``adapter_config.json``, or ``model.safetensors``, ``pytorch_model.bin`` and their shard index,
    whichever is there, so a full model's weights copied beside an adapter change what loads), ``optimizer.pt``,
    ``scheduler.pt``, ``scaler.pt``, the RNG states and ``trainer_state.json``; DeepSpeed its ``global_stepN``
    shards and ``latest``. Not listed: our record, hidden files (temporaries) and another process's RNG state
    (:data:`_OTHER_PROCESS`). Files above :data:`~savi_plugin.data.identity.FULL_HASH_LIMIT` are hashed once per
    version (:func:`~savi_plugin.data.identity.cached_digest`), so the check on resume reads again only the small
    ones.
    """
    folder = Path(checkpoint)
    members = []
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if (name == CHECKPOINT_FILE or any(part.startswith(".") for part in name.split("/"))
                or _OTHER_PROCESS.fullmatch(path.name) or not path.is_file()):
            continue
        members.append([name, f"{path.stat().st_size}:{cached_digest(path)}"])
    return {"files": len(members), "members": members}


def write_identity(checkpoint: str | Path, fingerprint: str, config: dict[str, Any], step: int, *,
                   contents: dict[str, Any] | None = None) -> None:
    """Store the run identity in ``checkpoint`` (created if needed), atomically; ``config`` (the run's, paths
    absolute) is stored with its paths for that file
    (:func:`~savi_plugin.training.stored_config.stored_configuration`). ``contents``: the checkpoint's
    :func:`checkpoint_contents` once the save is done (None, stored as null, before it)."""
    checkpoint = Path(checkpoint)
    check_live_outputs(checkpoint)  # a run folder moved away is not recreated for its checkpoint's record
    checkpoint.mkdir(parents=True, exist_ok=True)
    record = checkpoint / CHECKPOINT_FILE
    write_json(record, {"written_by": "savi train", "run": fingerprint, "step": step,
                        "config": stored_configuration(config, record), "contents": contents})


def check_contents(checkpoint: str | Path, identity: dict[str, Any], reading: bool = False) -> None:
    """Refuse to resume from ``checkpoint`` (``reading``: to read its log history) when its files differ from the
    ``contents`` its record (``identity``) holds; resume unchecked, and say so, when it holds none (the rules in the
    module docstring).

    Raises:
        ForeignCheckpointError: naming the checkpoint and the first file that differs.
    """
    if "contents" not in identity:
        log.info("%s was saved before savi recorded what a checkpoint holds (no contents in its %s): its files "
                 "cannot be checked against what the run wrote", checkpoint, CHECKPOINT_FILE)
        return
    stored = identity["contents"]
    if stored is None:
        log.warning("%s: the run was stopped before it recorded the checkpoint's contents (its %s holds none): its "
                    "files cannot be checked against what the run wrote; resuming from it as it is", checkpoint,
                    CHECKPOINT_FILE)
        return
    current = checkpoint_contents(checkpoint)
    if isinstance(stored, dict) and stored.get("members") == current["members"]:
        return
    differs = identity_differences(stored, current, limit=1) or f"its {CHECKPOINT_FILE} contents are not readable"
    why = (f"its log history would not be the one this run logged: restore its files, or move it out of "
           f"{Path(checkpoint).parent} to plot the run's checkpoint before it" if reading else
           f"resuming would continue from weights or state this run did not write: remove the checkpoint to resume "
           f"from the one before it, restore its files, or choose another --output-dir")
    raise ForeignCheckpointError(
        f"{checkpoint}: {differs} after the run wrote it (its {CHECKPOINT_FILE} holds each file's size and SHA-256 "
        f"as saved); {why}")


def _why_not_ours(identity: dict | None, config: dict | None, ignore: tuple[str, ...], record: Path) -> str:
    from savi_plugin.data.fingerprint import config_changes, describe_changes

    if identity is None:
        return f"carries no savi run identity ({CHECKPOINT_FILE}): it was not written by this run"
    stored = identity.get("config")
    changes = (config_changes(configuration_from_file(stored, record), config, ignore)
               if isinstance(stored, dict) and config is not None else [])
    what = f" ({describe_changes(changes)})" if changes else ""
    return f"was written by a run with another configuration{what}, not by the run of this folder"


def resume_point(output_dir: str | Path, fingerprint: str | None, *, config: dict[str, Any] | None = None,
                 ignore: tuple[str, ...] = (), clean: bool = False, verify: bool = True,
                 reading: bool = False) -> str | None:
    """The newest complete checkpoint of the run ``fingerprint`` in ``output_dir``, or None (the rules above).

    Args:
        output_dir: the run's output folder.
        fingerprint: the run's identity (None: the folder has no run, so every checkpoint is another's).
        config: the run's configuration (paths absolute), to name what differs in another run's checkpoint.
        ignore: the keys a continuation may change (as the fingerprint leaves them out).
        clean: remove this run's torn checkpoints (the caller is about to train into the folder).
        verify: check the newest one's files against its record (:func:`check_contents`; off when the caller
            resumes from another checkpoint it names).
        reading: the caller reads the checkpoint's log history (``savi plot``), never resumes from it: a refusal
            says what reading it would show.

    Raises:
        ForeignCheckpointError: a checkpoint of another run, or a complete one with no identity, or the newest
            one with files changed since the run wrote them, naming it.
    """
    newest, newest_identity, torn = None, None, []
    misnamed = [] if reading else misnamed_checkpoint_folders(output_dir)  # a reader removes nothing
    if misnamed:
        raise ForeignCheckpointError(
            f"{misnamed[0]}: is no checkpoint this run saved (the Trainer saves step N as checkpoint-N), yet "
            f"transformers counts every checkpoint-* folder among the run's and removes the oldest beyond "
            f"train.save_total_limit: move it out of {output_dir}, or choose another --output-dir")
    for step, path in checkpoint_folders(output_dir):  # every one is judged before anything is removed
        identity, saved = read_identity(path), state_step(path)
        held = {saved, identity.get("step") if identity else None} - {None}
        read = (f"its log history would be drawn as this run's curves: move it out of {output_dir} to plot the "
                f"run's own")
        if held - {step}:
            raise ForeignCheckpointError(
                f"{path}: holds step {min(held - {step})}, not {step} (renamed, or copied from elsewhere); " +
                (read if reading else f"resuming from it would continue at the wrong step: move it out of "
                                      f"{output_dir}, or choose another --output-dir"))
        ours = identity is not None and identity["run"] == fingerprint
        complete = saved == step
        if not ours and (identity is not None or complete):
            raise ForeignCheckpointError(
                f"{path}: {_why_not_ours(identity, config, ignore, path / CHECKPOINT_FILE)}; " +
                (read if reading else f"resuming from it would continue another run's weights and schedule, and "
                                      f"training would overwrite it: move it out of {output_dir}, or choose another "
                                      f"--output-dir"))
        if ours and complete:
            if newest is None:
                newest, newest_identity = str(path), identity
        elif ours:
            torn.append(path)
        elif (stray := stray_member(path)) is not None:  # not removed with the earlier session's checkpoints
            raise ForeignCheckpointError(
                f"{path}: holds {stray.name} and carries no savi run identity ({CHECKPOINT_FILE}), which a save of "
                f"this run writes before anything else: it was not written by this run; " +
                (read if reading else f"training would remove or overwrite it: move it out of {output_dir}, or "
                                      f"choose another --output-dir"))
        else:
            log.warning("%s is incomplete and carries no run identity (the run was stopped as it began writing "
                        "its identity); not used", path)
    if newest is not None and verify:  # before anything is removed: a refusal leaves the folder as it was
        check_contents(newest, newest_identity, reading)
    for path in torn:
        log.warning("%s is incomplete (the run was stopped while saving it); %s", path,
                    "removed" if clean else "not used")
        if clean:
            remove_tree(path)
    return newest


def outputs_intact_callback():
    """A ``TrainerCallback`` that checks, after every step and epoch (before the Trainer saves a checkpoint), that
    the outputs this job holds were not removed or replaced (:func:`~savi_plugin.data.outputs.check_live_outputs`):
    the Trainer writes its checkpoints by its own route, which would recreate a removed output folder."""
    from transformers import TrainerCallback

    from savi_plugin.data.outputs import check_live_outputs

    class OutputsIntact(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            check_live_outputs()

        on_epoch_end = on_step_end

    return OutputsIntact()


def identity_callback(fingerprint: str, config: dict[str, Any]):
    """A ``TrainerCallback`` that writes the run identity into every checkpoint the Trainer saves (rank 0).

    Written first, before any file of the save: :class:`~savi_plugin.training.trainer.PreferenceTrainer` calls
    ``on_checkpoint_begin`` as its ``_save_checkpoint`` begins -- the one route of every save, whatever decided it
    (``save_strategy`` steps or epoch after a step or an epoch, ``best`` after an evaluation, the save at
    ``max_steps``) -- and no process writes into the checkpoint before rank 0 has written it. Written again once
    the save is done (``on_save``, after ``_save_checkpoint`` has written the weights, optimizer, scheduler, RNG
    state and, last, ``trainer_state.json``) with the checkpoint's :func:`checkpoint_contents`. So a folder with no
    identity holds at most the identity's temporary file (:func:`stray_member`).
    """
    from transformers import TrainerCallback

    class CheckpointIdentity(TrainerCallback):
        def _write(self, args, state, saved: bool = False) -> None:
            if state.is_world_process_zero:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                write_identity(folder, fingerprint, config, state.global_step,
                               contents=checkpoint_contents(folder) if saved else None)

        def on_checkpoint_begin(self, args, state, control, **kwargs):
            self._write(args, state)

        def on_save(self, args, state, control, **kwargs):
            self._write(args, state, saved=True)

    return CheckpointIdentity()

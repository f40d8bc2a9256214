"""Kept products: what a command made once and uses again on a re-run instead of making it anew (an ablation
row's summary, a suite's run of one model, an alignment run's evaluation of its base model).

A kept product is the slot's own only when three things hold, and :func:`kept_problem` is the one check of them
every reader of a kept product makes:

* **sealed** -- its record is as it was written (:func:`seal`: the SHA-256 of the record): a number edited in it by
  hand is not the run's;
* **slot** -- it was made *for* what this run would make it for: the row or label it belongs to, the settings that
  decide its numbers, the identities (by content) of the model and adapter whose numbers it holds. A product
  moved, swapped or copied in from another run, another configuration or another model is refused, naming the
  first key that differs;
* **sources** -- what it was made *from* or *of* is still what it was: each file or folder it names, by content
  (:mod:`savi_plugin.data.identity`: a training run's report, an adapter, lmms-eval's results and samples). One
  edited, extended, retrained, replaced or removed since is refused, naming it.

:func:`keep` makes the record (``{"slot", "sources"}``), stored as the ``kept`` member of the product's JSON file
(:func:`write_kept`, :func:`read_kept`) or of a run manifest's entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from savi_plugin.data.fingerprint import json_normal
from savi_plugin.errors import RunError


def _identity(kind: str, path: Path) -> dict[str, Any] | None:
    from savi_plugin.data.identity import content_identity, file_identity, model_identity

    if kind == "file":
        return file_identity(path)
    if kind == "model":  # the files a loader reads (config, weights, tokenizer, processor)
        return model_identity(path) if path.is_dir() else None
    if kind == "folder":  # every file in it
        return content_identity(path)
    raise ValueError(f"unknown kind of kept source: {kind!r}")


def keep(slot: Mapping[str, Any], sources: Mapping[str, tuple[str | Path, str]], holder: str | Path) -> dict:
    """The record of a kept product: ``slot`` (what it is made for) and, for each ``name: (path, kind)`` of
    ``sources`` (``kind``: ``"file"``, ``"model"`` or ``"folder"``), the path as ``holder`` stores it and its
    identity by content now."""
    from savi_plugin.data.paths import path_for_file

    return {"slot": json_normal(dict(slot)),
            "sources": {name: {"path": path_for_file(path, holder), "kind": kind,
                               "identity": _identity(kind, Path(path))}
                        for name, (path, kind) in sources.items()}}


def _digest(record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def seal(record: Mapping[str, Any]) -> dict:
    """``record`` with the SHA-256 of the rest of it (``sha256``)."""
    body = {k: v for k, v in record.items() if k != "sha256"}
    return {**body, "sha256": _digest(body)}


def kept_problem(kept: Any, slot: Mapping[str, Any], holder: str | Path) -> str | None:
    """Why the kept record ``kept`` (:func:`keep`, stored in the file ``holder``) is not the slot's own, in words
    (None: it is): no record, another slot (the first keys that differ), or a source gone or changed since."""
    from savi_plugin.data.fingerprint import config_changes, describe_changes
    from savi_plugin.data.identity import identity_differences, same_identity
    from savi_plugin.data.paths import path_from_file

    if (not isinstance(kept, dict) or not isinstance(kept.get("slot"), dict)
            or not isinstance(kept.get("sources"), dict)):
        return "it holds no record of what it was made for and from (written by an earlier savi, or by hand)"
    changes = config_changes(kept["slot"], json_normal(dict(slot)))
    if changes:
        return f"it was made for another run than this one ({describe_changes(changes, limit=3)})"
    for name, source in sorted(kept["sources"].items()):
        if not (isinstance(source, dict) and isinstance(source.get("path"), str)
                and source.get("kind") in ("file", "model", "folder")):
            return f"its record of its {name} cannot be read"
        path = path_from_file(source["path"], holder)
        now = _identity(source["kind"], path) if os.path.lexists(path) else None
        if same_identity(source.get("identity"), now):
            continue
        if now is None:
            return f"its {name} {path} is gone"
        differs = identity_differences(source.get("identity"), now) or "its content differs"
        return f"its {name} {path} changed after it was made ({differs})"
    return None


def write_kept(path: str | Path, body: Mapping[str, Any], *, slot: Mapping[str, Any],
               sources: Mapping[str, tuple[str | Path, str]]) -> dict:
    """Write the kept product ``body`` to the JSON file ``path`` with its record (``kept``) and seal; returns what
    was written."""
    from savi_plugin.data.outputs import write_json

    record = seal({**body, "kept": keep(slot, sources, path)})
    write_json(path, record, indent=1)
    return record


def _read_sealed(path: str | Path, written_by: str) -> tuple[Any, str | None]:
    """The document at ``path`` and, when it holds no seal (:func:`seal`) -- no record a savi wrote -- why."""
    from savi_plugin.data.files import read_json
    from savi_plugin.errors import DocumentTooLarge

    try:
        stored = read_json(path, lambda message, line=None: ValueError(message))
    except DocumentTooLarge:
        raise
    except (ValueError, OSError) as exc:
        why = " ".join(str(exc).split()) if isinstance(exc, ValueError) else (exc.strerror or str(exc))
        return None, f"not written by {written_by} (not a JSON record savi keeps: {why})"
    if not isinstance(stored, dict) or "sha256" not in stored:
        return stored, (f"not written by {written_by} (it holds no seal: a file of your own, or of a savi that "
                        f"sealed none)")
    return stored, None


def unsealed_problem(path: str | Path, written_by: str) -> str | None:
    """Why the file ``path`` is no kept product ``written_by`` wrote (it holds no seal), or None: asked of every kept
    product of a run folder before the run's first step (:func:`savi_plugin.data.outputs.steps_problem`), and first
    by :func:`read_kept`."""
    return _read_sealed(path, written_by)[1]


def read_kept(path: str | Path, *, slot: Mapping[str, Any], written_by: str, remedy: str) -> dict:
    """The kept product at ``path`` when it is the slot's own (:func:`kept_problem`); else one line naming the
    file, what is wrong and ``remedy`` (the folder to remove).

    Raises:
        RunError: the file is not a record ``written_by`` sealed (a user's own: named as not written by it), the
            record was edited since it was written, or is not the slot's own.
    """
    stored, problem = _read_sealed(path, written_by)
    if problem is not None:
        raise RunError(f"{path}: {problem}: move it away, or {remedy}")
    if stored.get("sha256") != _digest(stored):
        raise RunError(f"{path}: changed after {written_by} wrote it (its numbers are not the run's): {remedy}")
    problem = kept_problem(stored.get("kept"), slot, path)
    if problem is not None:
        raise RunError(f"{path}: {problem}, so its numbers are not this run's: {remedy}")
    return stored

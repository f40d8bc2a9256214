"""A run's configuration fingerprint: what a resumed or repeated run must share with the run it continues.

Every resumable job (``savi generate`` into an output, ``savi train`` in an output folder, ``savi align``
in a run folder) stores the configuration it was started with next to its output. A later run into the same
output compares its own configuration with the stored one, key by key (nested mappings are compared leaf by
leaf, as dotted key paths), and is refused when anything that shapes the result differs: continuing with
another learning rate, data file, model or generator option would mix two configurations in one result with no
trace of it. Keys that may legitimately change between a run and its continuation (e.g. the device, or the
number of steps of a training run that is being extended) are named by the caller.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping


class ConfigMismatchError(ValueError):
    """A run continues an output made with another configuration; the message lists what changed."""


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists and scalars are leaves)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _normal(value: Any) -> Any:
    """JSON round trip, so a stored value (lists, string keys) compares equal to the same live value."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _ignored(key: str, ignore: Iterable[str]) -> bool:
    return any(key == name or key.startswith(name + ".") for name in ignore)


def config_changes(stored: Mapping[str, Any], current: Mapping[str, Any],
                   ignore: Iterable[str] = ()) -> list[tuple[str, Any, Any]]:
    """The ``(key.path, stored value, current value)`` triples that differ, sorted by key.

    Args:
        stored: the configuration the output was made with.
        current: this run's configuration.
        ignore: key paths (and everything under them) that may change between runs; the environment variables
            that decide no item (:data:`~savi_plugin.environment.NOT_ITEM_LIMITS`) are never compared.
    """
    from savi_plugin.environment import NOT_ITEM_LIMITS

    ignore = (*ignore, *NOT_ITEM_LIMITS)
    old, new = flatten(_normal(dict(stored))), flatten(_normal(dict(current)))
    missing = object()
    out = []
    for key in sorted(set(old) | set(new)):
        if _ignored(key, ignore):
            continue
        a, b = old.get(key, missing), new.get(key, missing)
        if (a is missing and b is None) or (b is missing and a is None):
            continue  # a value that is absent on one side and null on the other (e.g. no identity yet)
        if a != b:
            out.append((key, None if a is missing else a, None if b is missing else b))
    return out


def config_fingerprint(config: Mapping[str, Any], ignore: Iterable[str] = ()) -> str:
    """The SHA-256 of ``config`` without the keys in ``ignore`` (and without null leaves): two configurations
    have the same fingerprint exactly when :func:`config_changes` finds no change between them."""
    ignore = tuple(ignore)
    leaves = {k: v for k, v in flatten(_normal(dict(config))).items() if v is not None and not _ignored(k, ignore)}
    return hashlib.sha256(json.dumps(leaves, sort_keys=True).encode("utf-8")).hexdigest()


def describe_changes(changes: list[tuple[str, Any, Any]], limit: int = 6, *, same_path: bool | None = None) -> str:
    """``"learning_rate: 0.0001 -> 0.0002, data: a.jsonl -> b.jsonl"`` (at most ``limit``, then a count).
    ``same_path``: whether nothing but contents changed (default: no other key among ``changes`` changed)."""
    def short(value: Any) -> str:
        text = json.dumps(value, default=str)
        return text if len(text) <= 60 else text[:57] + "..."

    merged: list[tuple[str, Any, Any]] = []
    for key, a, b in changes:  # an identity (data/identity.py) changed: one entry naming the input, not its digests
        if key.startswith("identity.") or ".identity." in key:
            head, _, rest = key.partition("identity.")
            name = head + "identity." + rest.split(".", 1)[0]
            if not any(k == name for k, _, _ in merged):
                merged.append((name, "content", "changed"))
            continue
        merged.append((key, a, b))
    changes = merged
    if same_path is None:
        same_path = not any(not _is_identity(key) for key, _, _ in changes)
    parts = [f"{key}: {short(a)} -> {short(b)}" if a != "content" else
             f"{key} changed content" + (" (same path)" if same_path else "") for key, a, b in changes[:limit]]
    if len(changes) > limit:
        parts.append(f"and {len(changes) - limit} more")
    return ", ".join(parts)


def _is_identity(key: str) -> bool:
    return key.startswith("identity.") or ".identity." in key


def check_same_config(stored: Mapping[str, Any] | None, current: Mapping[str, Any], *, output: str | Path,
                      stored_at: str | Path, ignore: Iterable[str] = (), remedy: str = "") -> None:
    """Refuse to continue ``output`` with a configuration that differs from the stored one.

    Raises:
        ConfigMismatchError: ``<output>: was made with a different configuration (<key>: <old> -> <new>, ...;
            stored in <stored_at>); <remedy>``.
    """
    if stored is None:
        return
    changes = config_changes(stored, current, ignore)
    if changes:
        remedy = remedy or "write to a new output, or delete the old one to start over"
        # "(same path)" only when no other key changed, those that may change (paths compared by identity) included
        same_path = not any(not _is_identity(key) for key, _, _ in config_changes(stored, current))
        raise ConfigMismatchError(f"{output}: was made with a different configuration "
                                  f"({describe_changes(changes, same_path=same_path)}; "
                                  f"stored in {stored_at}); {remedy}")

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


#: a leaf of this name in a configuration says which file the mapping holding it was read from (a prompt file):
#: the mapping is compared by its content, never by this path (the same file named otherwise, or a copy, is the
#: same content), and a change under the mapping names the file (:func:`describe_changes`)
READ_FROM = "read_from"


#: the mapping of a configuration that holds the plugins a job uses (:func:`savi_plugin.registry.components`: key
#: path -> entry, distribution, version); a change under it is one entry naming the component and what changed:
#: ``train.loss_type: plugin 'offset_loss' (goodloss 0.1 -> 0.2)``
PLUGINS = "plugins"


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


def json_normal(value: Any) -> Any:
    """JSON round trip, so a stored value (lists, string keys) compares equal to the same live value."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _ignored(key: str, ignore: Iterable[str]) -> bool:
    return key.rsplit(".", 1)[-1] == READ_FROM or any(key == name or key.startswith(name + ".") for name in ignore)


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
    old, new = flatten(json_normal(dict(stored))), flatten(json_normal(dict(current)))
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
    leaves = {k: v for k, v in flatten(json_normal(dict(config))).items() if v is not None and not _ignored(k, ignore)}
    return hashlib.sha256(json.dumps(leaves, sort_keys=True).encode("utf-8")).hexdigest()


def _identity_key(key: str) -> tuple[str, str | None] | None:
    """``(the identity's key path, its field)`` when ``key`` is (a field of) an identity stored in a
    configuration, else None: ``identity.model.members`` -> ``("identity.model", "members")`` (the run's
    ``identity`` mapping, by input name), ``model.path.identity.sha256`` -> ``("model.path.identity", "sha256")``
    (a recipe's path replaced by its identity, :func:`savi_plugin.recipe.recipe_for_file`)."""
    from savi_plugin.data.identity import IDENTITY_FIELDS

    parts = key.split(".")
    if "identity" not in parts:
        return None
    at = len(parts) - 1 - parts[::-1].index("identity")
    rest = parts[at + 1:]
    if len(rest) == 1 and rest[0] in IDENTITY_FIELDS:
        return ".".join(parts[:at + 1]), rest[0]
    if not rest:
        return key, None
    return ".".join(parts[:at + 2]), ".".join(rest[1:]) or None


def describe_changes(changes: list[tuple[str, Any, Any]], limit: int = 6, *, same_path: bool | None = None,
                     current: Mapping[str, Any] | None = None) -> str:
    """``"learning_rate: 0.0001 -> 0.0002, data: a.jsonl -> b.jsonl"`` (at most ``limit``, then a count).
    ``same_path``: whether nothing but contents changed (default: no other key among ``changes`` changed).
    ``current``: this run's configuration; a change under a mapping read from a file (:data:`READ_FROM`) names
    that file: ``options.prompts (p.yaml): open_question: "{question}" -> "Q: {question}"``.

    An identity (:mod:`savi_plugin.data.identity`) that changed is one entry naming the input and what tells its
    two contents apart (:func:`~savi_plugin.data.identity.identity_differences`: the files added, removed or
    changed in a model or adapter folder), never its digests: ``identity.model changed content
    (preprocessor_config.json added)``; an identity on one side only is ``added`` or ``removed``."""
    from savi_plugin.data.identity import identity_differences

    def short(value: Any) -> str:
        text = json.dumps(value, default=str)
        return text if len(text) <= 60 else text[:57] + "..."

    merged: list[tuple[str, Any, Any]] = []
    identities: dict[str, tuple[dict, dict]] = {}  # identity key path -> (its stored fields, its current fields)
    plugins: dict[str, tuple[dict, dict]] = {}  # a plugin's key path -> (its stored fields, its current fields)
    now = flatten(json_normal(dict(current or {})))
    for key, a, b in changes:
        if key.startswith(PLUGINS + ".") and key.count(".") >= 2:
            component, field = key[len(PLUGINS) + 1:].rsplit(".", 1)
            if component not in plugins:
                plugins[component] = ({}, {})
                merged.append((PLUGINS + "." + component, None, None))
            plugins[component][0][field], plugins[component][1][field] = a, b
            continue
        found = _identity_key(key)
        if found is None:
            merged.append((key, a, b))
            continue
        name, field = found
        if name not in identities:
            identities[name] = ({}, {})
            merged.append((name, "content", "changed"))
        if field is not None:
            for side, value in zip(identities[name], (a, b)):
                if value is not None:
                    side[field] = value
    changes = merged
    if same_path is None:
        same_path = not any(not _is_identity(key) for key, _, _ in changes)

    def content(key: str) -> str:
        stored_fields, current_fields = identities[key]
        if not stored_fields and current_fields:
            return f"{key} added (not in the stored configuration)"
        if stored_fields and not current_fields:
            return f"{key} removed (in the stored configuration, not in this one)"
        details = (["same path"] if same_path else []) + [
            d for d in [identity_differences(*identities[key]) if all(identities[key]) else None] if d]
        return f"{key} changed content" + (f" ({'; '.join(details)})" if details else "")

    read_from = {key[:-len(READ_FROM) - 1]: value for key, value in flatten(json_normal(dict(current or {}))).items()
                 if key.endswith("." + READ_FROM) and isinstance(value, str)}

    def leaf(key: str) -> str:
        parts = key.split(".")
        for at in range(len(parts) - 1, 0, -1):
            mapping = ".".join(parts[:at])
            if mapping in read_from:
                from savi_plugin.data.paths import from_here

                return f"{mapping} ({from_here(read_from[mapping])}): {'.'.join(parts[at:])}"
        return key

    def plugin(component: str) -> str:
        stored, current_fields = plugins[component]
        for field in ("entry", "distribution", "version"):  # a field that did not change is this run's
            here = now.get(f"{PLUGINS}.{component}.{field}")
            stored.setdefault(field, here)
            current_fields.setdefault(field, here)

        def side(fields: dict) -> str:
            if not any(fields.values()):
                return "savi-plugin's own"
            return f"plugin {fields.get('entry')!r} ({fields.get('distribution')} {fields.get('version')})"

        if all(stored.values()) and all(current_fields.values()) and all(
                stored[f] == current_fields[f] for f in ("entry", "distribution")):
            return (f"{component}: plugin {stored['entry']!r} ({stored['distribution']} {stored['version']} -> "
                    f"{current_fields['version']})")
        return f"{component}: {side(stored)} -> {side(current_fields)}"

    parts = [content(key) if key in identities else plugin(key[len(PLUGINS) + 1:]) if key.startswith(PLUGINS + ".")
             and key[len(PLUGINS) + 1:] in plugins else f"{leaf(key)}: {short(a)} -> {short(b)}"
             for key, a, b in changes[:limit]]
    if len(changes) > limit:
        parts.append(f"and {len(changes) - limit} more")
    return ", ".join(parts)


def _is_identity(key: str) -> bool:
    return _identity_key(key) is not None


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
                                  f"({describe_changes(changes, same_path=same_path, current=current)}; "
                                  f"stored in {stored_at}); {remedy}")

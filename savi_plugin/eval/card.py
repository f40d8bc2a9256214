"""The eval card: everything that makes two evaluation tables comparable, and the check that they are.

A number moves with the harness, the protocol, the frames, the prompt, the split, the generation settings and the
items (LLaVA-Video-7B MVBench: 61.1 in RRPO's scripts at 64 frames, 58.6 through lmms-eval). The card records all
of them for one suite run; :func:`differences` lists where two cards disagree, and a comparison of two tables is
refused when any field of :data:`MUST_MATCH` differs.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from savi_plugin.config.values import EvalLimit
from savi_plugin.data.identity import unfinished_training
from savi_plugin.environment import NOT_ITEM_LIMITS, VARIABLES, item_limits
from savi_plugin.shape import AnyObject, Count, Flag, ListOf, MapOf, Name, Nullable, OneOf, Record, Ruled, Text

#: Card fields two tables must share to be compared (the models under test may differ).
MUST_MATCH = ("lmms_eval", "tasks", "limit", "num_frames", "generation", "prompts_sha256", "targets_sha256",
              "base_model", "decode_limits")
#: Files up to this size are hashed whole; larger weight files are fingerprinted (size + first and last MiB).
WHOLE_HASH_BYTES = 64 << 20
_EDGE = 1 << 20


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def file_fingerprint(path: Path) -> str:
    """sha256 of the file, or, above :data:`WHOLE_HASH_BYTES`, of its size and its first and last MiB."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        if size <= WHOLE_HASH_BYTES:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
            return digest.hexdigest()
        digest.update(str(size).encode())
        digest.update(fh.read(_EDGE))
        fh.seek(size - _EDGE)
        digest.update(fh.read(_EDGE))
    return "fp:" + digest.hexdigest()


def model_hash(path: str | Path | None) -> str | None:
    """A hash of a model or adapter folder: its config and weight files (names and contents or fingerprints);
    a hub id (no such folder) is recorded as given."""
    if path is None:
        return None
    folder = Path(path)
    if not folder.is_dir():
        return f"id:{path}"
    digest = hashlib.sha256()
    for file in sorted(folder.iterdir()):
        if file.is_file() and (file.suffix in (".safetensors", ".bin", ".pt", ".pth") or file.name.endswith(".json")):
            digest.update(file.name.encode())
            digest.update(file_fingerprint(file).encode())
    return digest.hexdigest()


def texts_sha256(texts: list[str]) -> str:
    """sha256 of the texts in order, each length-prefixed (so no two lists share a hash by concatenation)."""
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def task_card(config: dict) -> dict:
    """What one task's lmms-eval config says about how it is run (from ``*_results.json``'s ``configs``)."""
    meta = config.get("metadata")
    meta = meta if isinstance(meta, dict) else {}  # built-in tasks also write a list (``- version: 0.0``)
    protocol = meta.get("protocol", "savi" if meta.get("benchmark") else None)
    frames = None
    if meta.get("benchmark"):
        from savi_plugin.eval.benchmarks import BenchmarkError, get

        try:  # the benchmark's package may be installed only where lmms-eval ran
            proto = get(meta["benchmark"]).protocol(protocol)
        except (BenchmarkError, ValueError):
            proto = None
        frames = proto and {"num_frames": proto.num_frames or "model's num_frames", "rule": proto.frames,
                            "bounds": proto.bounds}
    benchmark = meta.get("benchmark")
    if not benchmark:  # an lmms-eval built-in task: savi_video samples its num_frames uniformly over the video
        from savi_plugin.eval.builtin_tasks import builtin_of

        builtin = builtin_of(str(config.get("task", "")))
        if builtin is not None:
            benchmark, protocol = builtin.benchmark, "lmms-eval built-in"
            frames = {"num_frames": "model's num_frames", "rule": "uniform", "bounds": False}
    return {
        "dataset": config.get("dataset_path"), "config": config.get("dataset_name"),
        "split": config.get("test_split") or config.get("validation_split"),
        "benchmark": benchmark, "protocol": protocol, "frames": frames,
        "generation": config.get("generation_kwargs"),
    }


def build_card(run, tasks: list[str], *, model: str, adapters: dict[str, str | None], num_frames: int | None,
               limit: float | None, gen_kwargs: str | None) -> dict:
    """The card of a suite from its base model's lmms-eval run (:class:`~savi_plugin.eval.results.LmmsEvalRun`).

    Prompts and targets are hashed over every logged sample in task and ``doc_id`` order: equal hashes mean the
    same items asked the same way (the frames follow from ``num_frames`` and each task's protocol).
    """
    leaves = sorted({leaf for task in tasks for leaf in run.leaves(task)})
    samples = [s for leaf in leaves for s in sorted(run.samples.get(leaf, []), key=lambda s: s["doc_id"])]
    configs = run.results.get("configs", {})
    return {
        "lmms_eval": _version("lmms_eval"),
        "savi_plugin": _version("savi-plugin"),
        "tasks": {leaf: task_card(configs.get(leaf, {})) for leaf in leaves},
        "suite_tasks": list(tasks),
        "limit": limit,
        "num_frames": num_frames,
        "generation": gen_kwargs or "",
        "items": len(samples),
        # the decode caps (SAVI_MAX_* variables) decide which items have no usable video
        "decode_limits": item_limits(),
        "prompts_sha256": texts_sha256([str(s.get("input", "")) for s in samples]),
        "targets_sha256": texts_sha256([json.dumps(s.get("target"), sort_keys=True) for s in samples]),
        "base_model": {"path": str(model), "sha256": model_hash(model)},
        # ``unfinished``: the adapter folder's training run had not finished (its top-level adapter is not that run's result)
        "adapters": {label: {"path": str(path) if path else None, "sha256": model_hash(path),
                             "unfinished": bool(path and unfinished_training(path))}
                     for label, path in adapters.items()},
    }


#: A SHA-256 as :func:`texts_sha256` writes it.
DIGEST = Text(r"[0-9a-f]{64}", "a SHA-256 digest (64 hex digits)")
#: What :func:`model_hash` writes: a folder's SHA-256, or ``id:`` and the hub id given.
MODEL_HASH = Text(r"[0-9a-f]{64}|id:.+", "a SHA-256 digest or id:<hub id>")
class TaskGeneration(AnyObject):
    """A task's ``generation_kwargs`` as lmms-eval recorded them (any keys), whose settings ``savi_video`` applies
    (``max_new_tokens``, ``temperature``, ``top_p``, ``num_beams``, ``do_sample``, ``until``) by the rules it applies
    them with (:func:`savi_plugin.eval.settings.check_gen_kwargs`): no run can have used ``max_new_tokens: -1``."""

    def problem(self, value, at: str) -> str | None:
        found = super().problem(value, at)
        if found:
            return found
        from savi_plugin.eval.settings import APPLIED_GEN_KWARGS, SettingError, check_gen_kwargs

        try:
            check_gen_kwargs({k: v for k, v in value.items() if k in APPLIED_GEN_KWARGS})
        except SettingError as exc:
            return f"{at}: {exc.message.removeprefix('savi_video: ')}" if at else exc.message
        return None


#: One leaf task's entry, as :func:`task_card` writes it (``generation``: lmms-eval's own ``generation_kwargs``).
TASK_ENTRY = Record("a task's entry", {
    "dataset": Nullable(Text()), "config": Nullable(Text()), "split": Nullable(Text()),
    "benchmark": Nullable(Text()), "protocol": Nullable(Text()),
    "frames": Nullable(Record("a task's frames", {
        "num_frames": OneOf((Count(low=1), Text(re.escape("model's num_frames"), "'model's num_frames'"))),
        "rule": Text(), "bounds": Flag()})),
    "generation": Nullable(TaskGeneration()),
})
#: The decode caps as :func:`~savi_plugin.environment.item_limits` records them, by their variables' kinds; a card
#: written when every cap was recorded holds the others too.
DECODE_LIMITS = Record("the decode caps", {
    name: Flag() if var.kind == "switch" else Count(var.low, var.high) for name, var in VARIABLES.items()},
    optional=frozenset(name for name, var in VARIABLES.items() if not var.decides_items))
#: The card, as :func:`build_card` writes it: every key at every depth with what it holds. A card is only ever
#: written by ``savi eval suite``, so a key outside it was put there by another hand (or by a savi-plugin newer than
#: this one, whose card may hold what decides comparability here unread): a reader refuses it
#: (:mod:`savi_plugin.shape`) rather than compare two tables as the same card while they differ in a field no one
#: checks.
CARD = Record("an eval card", {
    "lmms_eval": Text(), "savi_plugin": Text(),
    "tasks": MapOf(Name(), TASK_ENTRY, nonempty=True),
    "suite_tasks": ListOf(Name(), nonempty=True),
    "limit": Nullable(Ruled(EvalLimit(), "lmms-eval's --limit")),
    "num_frames": Count(low=1),
    "generation": Text(),
    "items": Count(),
    "decode_limits": DECODE_LIMITS,
    "prompts_sha256": DIGEST, "targets_sha256": DIGEST,
    "base_model": Record("the base model's entry", {"path": Text(), "sha256": MODEL_HASH}),
    # an adapter's label: its folder's name in these characters (:func:`savi_plugin.eval.suite.adapter_labels`)
    "adapters": MapOf(Name(r"[A-Za-z0-9_.-]+", "an adapter label (letters, digits, _ . -)"),
                      Record("an adapter's entry", {"path": Nullable(Text()), "sha256": Nullable(MODEL_HASH),
                                                    "unfinished": Flag()}), nonempty=True),
})
#: Every field of a card, in the order :func:`build_card` writes them.
CARD_FIELDS = tuple(CARD.fields)


def card_for_file(card: dict, holder) -> dict:
    """``card`` as the file ``holder`` stores it: the base model's and each adapter's ``path`` by the one rule for
    stored paths (:mod:`savi_plugin.data.paths`: relative to ``holder``'s folder, or absolute; a hub id as
    given), so a card names the same folders from any working folder."""
    from savi_plugin.data.paths import name_for_file, path_for_file

    out = dict(card)
    base = card.get("base_model")
    if isinstance(base, dict) and base.get("path"):
        out["base_model"] = {**base, "path": name_for_file(base["path"], holder)}
    out["adapters"] = {label: {**entry, "path": path_for_file(entry["path"], holder) if entry.get("path") else None}
                       for label, entry in (card.get("adapters") or {}).items()}
    return out


def differences(a: dict, b: dict) -> list[str]:
    """Where two cards differ in the :data:`MUST_MATCH` fields, one line per differing value (a field holding a
    mapping: per leaf), empty when the tables are comparable."""
    out = []
    for key in MUST_MATCH:
        left, right = a.get(key), b.get(key)
        if key == "base_model":
            left, right = (left or {}).get("sha256"), (right or {}).get("sha256")
        if key == "decode_limits":  # cards written when every cap was recorded hold the ones that decide no video
            left, right = ({k: v for k, v in (side or {}).items() if f"limits.{k}" not in NOT_ITEM_LIMITS}
                           for side in (left, right))
        if left != right:
            out.extend(_leaf_differences(key, left, right))
    return out


def _leaf_differences(key: str, left: Any, right: Any) -> list[str]:
    """One line per differing leaf of two values of card field ``key`` (``tasks.savi_egoschema.generation.
    max_new_tokens: 16 != 32``), so the difference is named however deep it lies."""
    from savi_plugin.data.fingerprint import flatten

    def shown(value: Any) -> str:
        text = "(absent)" if value is _ABSENT else json.dumps(value, sort_keys=True)
        return text if len(text) <= 120 else text[:117] + "..."

    if not (isinstance(left, dict) and isinstance(right, dict)):
        return [f"{key}: {shown(left)} != {shown(right)}"]
    a, b = flatten(left, key + "."), flatten(right, key + ".")
    return [f"{leaf}: {shown(a.get(leaf, _ABSENT))} != {shown(b.get(leaf, _ABSENT))}" for leaf in sorted(set(a) | set(b))
            if a.get(leaf, _ABSENT) != b.get(leaf, _ABSENT)]


_ABSENT = object()

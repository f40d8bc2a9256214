"""Run a generator over many videos: batched, resumable, sharded, reported. And merge the shards.

How a run stays exact across crashes, re-runs and shards:

- Shard ``i`` of ``n`` takes items ``i, i+n, i+2n, ...`` of the input (:func:`shard_items`, as torchrun /
  accelerate users expect: shard sizes differ by at most one item, and no shard is idle while another has two
  items) and cuts them into batches of ``batch_size`` in input order. An item's shard depends on its position
  only, not on how many items there are, so a re-run with another ``--limit`` keeps every item on its shard.
  Batch ``j`` of shard ``i`` has the global index ``j*n + i`` (unique across shards; the unsharded run's batch
  index when ``n`` is 1). A shard's batches hold other items than the unsharded run's: with ``batch_size`` 1
  sharded + merged output equals the unsharded output by construction; with larger batches, sampling (seeded
  per batch) draws differently, and greedy answers can differ only where padding another batch changes a
  near-tie (``tests/generators/test_shard_merge.py`` finds the bytes equal). The split scheme
  (:data:`SHARD_SPLIT`) is part of a shard's configuration: an output made under another scheme is refused.
- Every record id is deterministic (``<item id>-<generator>-<k>``) and every random draw is seeded by the
  run seed plus the item id (perturbations) or the global batch index (sampling).
- Records are appended with one ``write`` per line (:class:`~savi_plugin.data.PreferenceWriter`); after a
  batch's records, one line per item goes to a *progress* file next to the output, with every outcome, its
  reason, and the SHA-256 of each pair's line. A re-run skips batches whose items are all in the progress file and
  recomputes the others whole (same composition, same outputs); the writer drops ids it already has, so a batch
  interrupted half-way is completed without duplicates. A line torn by a kill is cut off when the files are
  reopened.
- The output is the truth about which items are done; the progress file is a cache of it that must agree
  (:func:`_reconcile`). On every run an item counts as done only while each pair its progress row records is in
  the output, byte for byte: pairs lost since (the output removed, emptied, cut, a line deleted) are generated
  again with one warning; a line whose bytes differ from the pair written there stops the run naming it. A
  progress file that is gone while the output and its mark remain is rebuilt by running every item again (the
  writer writes no record twice). While the run goes on, the writers stop at their next line when their file
  was removed, replaced or cut shorter (:meth:`~savi_plugin.data.writer.JsonlAppender.check_intact`), and once
  more before the report; the report's ``complete`` counts only pairs that are in the output.
- An output holds video paths relative to its own folder (:func:`_stored_video`): resuming it from another
  folder (moved without its videos) would mix lines naming the old place with lines naming the new one, so it is
  refused naming the first line whose video no longer resolves to the input's (:func:`_check_not_moved`).
- A re-run with a different configuration (generator options, prompts, model, seed, frames, batch size,
  shard) into the same output is refused: mixing two configurations in one file would be silent corruption
  (:mod:`savi_plugin.data.fingerprint`, the check every resumable job uses).
- Failures follow the one taxonomy (:mod:`savi_plugin.errors`, decided by :func:`~savi_plugin.errors.classify`):
  a *configuration* error (a bad ``SAVI_*`` variable, an impossible option, a batch above the decoded-bytes
  budget) stops the run with nothing marked for the items it reached -- environment and options are checked
  before the first item; an *input* error (a bad or missing video, too few frames, a prompt too long, a
  record the generator refuses) is final and counted under its reason; a *machine* error (the model raised:
  ``generation_error``; reading the video failed with an I/O or memory error: ``io_error``) is not final: the
  item is retried by the next run instead of being marked done forever, and the run report stays
  ``complete: false`` until it has a final outcome.
- One process at a time writes an output (:class:`~savi_plugin.data.outputs.OutputLock`), and the output may
  not be the input.

The run report (JSON, next to the output) is rebuilt from the progress file at the end of every run, so it
describes the whole output, including the parts made by interrupted runs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from savi_plugin import registry
from savi_plugin.data.fingerprint import check_same_config
from savi_plugin.data.identity import files_identity, input_identity, model_identity
from savi_plugin.data.outputs import (
    check_distinct,
    check_not_any,
    check_own_file,
    claim,
    file_output,
    mark_path,
    sidecar,
    write_json,
)
from savi_plugin.data.paths import (
    absolute_path,
    check_data_root,
    configuration_for_file,
    configuration_from_file,
    held_configuration,
    is_within,
    name_for_file,
    path_for_file,
    path_from_file,
)
from savi_plugin.data.record import DataError, check_encodable
from savi_plugin.data.run_counts import generation_counts, is_retried, repeated
from savi_plugin.data.watched import WatchedFiles
from savi_plugin.data.writer import (
    JsonlAppender,
    PreferenceWriter,
    encode_line,
    cut_from_line,
    line_digest,
    repair_truncated_tail,
)
from savi_plugin.device import resolve_device
from savi_plugin.errors import CONFIGURATION, INPUT, MACHINE, classify, reason_of
from savi_plugin.generators.base import (
    FAILED,
    PAIR,
    SKIPPED,
    BatchContext,
    Generator,
    Outcome,
    WorkItem,
    config_class_problem,
    outcome_problem,
)
from savi_plugin.generators.inputs import InputItem, load_inputs
from savi_plugin.plugin_call import PluginFailure, broken_contract, plugin_call
from savi_plugin.video.decode import DEFAULT_NUM_FRAMES

log = logging.getLogger(__name__)

CONFIG_ID = "__config__"
#: how the items are split between shards (:func:`shard_items`), stored in a sharded run's configuration: a shard
#: output made under another scheme (e.g. one giving each shard whole batches) holds other items: refused, not continued
SHARD_SPLIT = "items-round-robin"

#: the most shards one generation run is split into (``--shard i/n`` and a launcher's ``WORLD_SIZE``; a merge
#: refuses a shard name with a larger ``n`` before any work): far above any one job's process count, and small
#: enough that a merge lists every missing shard of a set in well under a second
MAX_SHARDS = 4096
#: configuration keys that may change between a run and its resumption
_RESUMABLE_CHANGES = ("limit", "device")
#: paths compared by what they name (``identity``: the inputs, their videos, the model and adapter by content), not
#: as spelled: a run folder moved whole, or the same files named from another working folder, resumes
_BY_IDENTITY = ("model", "adapter", "inputs", "data_root")
#: ``(key, may be a hub id or a label)`` of the paths in a run's configuration: held absolute
#: (:func:`~savi_plugin.data.paths.held_configuration`), stored by the paths rule in each file that holds the
#: configuration -- the output's mark, the progress file's first line, the run report
#: (:func:`~savi_plugin.data.paths.configuration_for_file`) -- and read back by it; ``inputs`` may be a label
#: (``<6 items>``) and the model or adapter a hub id: kept as given. The options that name files are among them:
#: the judge's and tagger's folders (``policy`` kept as given) and the prompt file an override was read from
#: (:meth:`~savi_plugin.generators.base.Generator.run_options`: its content is compared, the file only named)
PATH_KEYS = (("model", True), ("adapter", True), ("inputs", True), ("data_root", False),
             ("options.judge_model", True), ("options.tagger_model", True), ("options.prompts.read_from", False))
#: generator options that name a model the generator loads besides the policy (RRPO's judge and tagger), with
#: their flags: a local folder is part of the run's ``identity`` by content (:func:`model_identity`, as the policy
#: model), so a resume or merge after its weights were replaced at the same path is refused; ``policy`` names
#: the policy model, identified already
MODEL_OPTIONS = {"judge_model": "--judge-model", "tagger_model": "--tagger-model"}
#: reasons an item's video is refused under, and what to check when every item of a run is refused under one
VIDEO_REASONS = {
    "too_few_frames": "every clip has fewer frames than --num-frames / model.num_frames={num_frames} (frames are "
                      "never repeated): sample fewer frames, into a new output",
    "missing_video": "no video the input names is there: check the manifest's paths (relative to its folder) or "
                     "--data-root",
    "decode_error": "check the videos, or the decode caps ($SAVI_MAX_DECODED_BYTES, $SAVI_MAX_FRAME_PIXELS) against "
                    "--num-frames / model.num_frames={num_frames}",
}


# --------------------------------------------------------------------------- paths and shards
def parse_shard(shard: str | Sequence[int] | None) -> tuple[int, int] | None:
    """``"1/4"`` or ``(1, 4)`` -> ``(1, 4)``; None -> the torchrun rank (``RANK``/``WORLD_SIZE``) or None.

    Raises:
        ValueError: not ``i/n``, ``n`` outside ``1..MAX_SHARDS``, or ``i`` outside ``0..n-1``.
    """
    if shard is None:
        from savi_plugin.launch import current  # RANK/WORLD_SIZE count only inside a launcher

        process = current()
        return (process.rank, process.world_size) if process.distributed else None
    if isinstance(shard, str):
        m = re.fullmatch(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*", shard)
        if not m:
            raise ValueError(f"shard must look like 'i/n' (e.g. 0/4), got {shard!r}")
        shard = (int(m.group(1)), int(m.group(2)))
    index, count = (int(v) for v in shard)
    if count > MAX_SHARDS:
        raise ValueError(f"shard count must be at most {MAX_SHARDS}, got {count}")
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard index must satisfy 0 <= i < n, got {index}/{count}")
    return index, count


def shard_items(items: Sequence[Any], index: int, count: int, batch_size: int) -> list[tuple[int, list[Any]]]:
    """Shard ``index`` of ``count``'s batches as ``(global batch index, items)``: items ``index, index+count,
    ...`` of ``items`` (:data:`SHARD_SPLIT`), in input order, cut into batches of ``batch_size``; batch ``j`` has the
    global index ``j*count + index``."""
    mine = list(items[index::count])
    return [(j * count + index, mine[s:s + batch_size]) for j, s in enumerate(range(0, len(mine), batch_size))]


def shard_output_path(output: str | Path, index: int, count: int) -> Path:
    """``out.jsonl`` -> ``out.shard-00001-of-00004.jsonl`` (the file shard ``index`` writes)."""
    output = Path(output)
    return output.with_name(f"{output.stem}.shard-{index:05d}-of-{count:05d}{output.suffix}")


def find_shards(output: str | Path) -> list[Path]:
    """The shard files written for ``output`` (as named by :func:`shard_output_path`), sorted."""
    output = Path(output)
    pattern = re.compile(rf"^{re.escape(output.stem)}\.shard-(\d+)-of-(\d+){re.escape(output.suffix)}$")
    found = [p for p in output.parent.glob(f"{output.stem}.shard-*") if pattern.match(p.name)]
    return sorted(found)


def progress_path(output: str | Path) -> Path:
    """``pairs.jsonl`` -> ``pairs.jsonl.progress.jsonl`` (named by the full output name: see ``data.outputs``)."""
    return sidecar(output, "progress.jsonl")


def report_path(output: str | Path) -> Path:
    """``pairs.jsonl`` -> ``pairs.jsonl.report.json``."""
    return sidecar(output, "report.json")


# --------------------------------------------------------------------------- generator and model
def resolve_generator(generator: str | type | Generator, options: dict[str, Any] | None) -> Generator:
    """A generator instance from a registered name, a class, or an instance (then ``options`` must be None)."""
    if isinstance(generator, Generator):
        if options:
            raise ValueError("pass options to the generator's constructor, not with an instance")
        return generator
    entry = generator if isinstance(generator, str) else None
    if isinstance(generator, str):
        generator = registry.load_class(registry.GENERATORS, generator, Generator)
    problem = config_class_problem(generator)
    if problem is not None:
        raise broken_contract(registry.GENERATORS, entry, generator, "config_class", problem)
    with plugin_call(registry.GENERATORS, entry, generator, "construction"):
        gen = generator(options)
    gen.entry = entry  # the name messages give it (None: a class given directly, named by its class)
    if entry is not None:
        # known by the name the user chose it by, as a loss is (train.loss_type): a class registered under another
        # entry name (an alias) writes records, ids and its report under the entry's name; its templates stay
        # those of its class (prompts/<class name>.yaml, read above)
        gen.name = entry
    return gen


def _load_model(model, backend, num_frames, adapter, dtype, device, progress=True):
    if not isinstance(model, (str, Path)):
        return model, 0.0
    from transformers.utils import logging as hf_logging

    from savi_plugin.models import load_backend

    start = time.perf_counter()
    shown = hf_logging.is_progress_bar_enabled()
    if not progress:  # transformers' own "Loading weights" bar too
        hf_logging.disable_progress_bar()
    try:
        lm = load_backend(model, backend, adapter=adapter, dtype=dtype, device=resolve_device(device),
                          num_frames=num_frames)
    finally:
        if shown and not progress:
            hf_logging.enable_progress_bar()
    return lm, time.perf_counter() - start


def _option_model_identities(gen: Generator, watch: WatchedFiles) -> dict[str, Any]:
    """``option -> model_identity`` of each :data:`MODEL_OPTIONS` option of ``gen`` that names a local folder;
    ``watch`` keeps its files' signatures, which the model's loader checks (the generator loads it when first
    needed, so files replaced since the claim stop the job instead of working under this identity)."""
    from savi_plugin.generators.textlm import POLICY

    options = gen.describe()
    return {key: model_identity(value, watch=watch) for key in MODEL_OPTIONS
            if isinstance(value := options.get(key), str) and value != POLICY and Path(value).is_dir()}


def _check_loaded_identity(config: dict[str, Any], model: Any, adapter: Any) -> None:
    """Refuse when the model or adapter folder changed content between the claim, whose mark and progress file
    record its identity, and the load: the pairs would be the loaded weights' work stored under another model's
    identity (red team 11, A35: weights copied in while the job started). A configuration error, so a new output
    is left unmarked and the re-run records what it loads.

    Raises:
        IdentityMismatchError: naming the folder and the files that changed.
    """
    from savi_plugin.data.identity import IdentityMismatchError, identity_differences, same_identity

    for key, path in (("model", model), ("adapter", adapter)):
        if not isinstance(path, (str, Path)) or not Path(path).is_dir():
            continue
        recorded, now = (config.get("identity") or {}).get(key), model_identity(path)
        if recorded is not None and not same_identity(recorded, now):
            raise IdentityMismatchError(
                f"{path}: the {key}'s files changed while this job loaded it "
                f"({identity_differences(recorded, now) or 'by content'}); "
                f"the pairs would be another {key}'s than the run records, so nothing was generated: re-run the "
                f"command once the {key} is no longer being changed")


def _check_output_lines(out_path: Path) -> None:
    """Refuse to resume an output holding a complete line that is not a valid record: the writer writes only
    whole valid lines (a torn last line is cut), so such a line was edited or damaged after the run wrote it, and
    resuming would leave it among the results (``savi data validate`` would count it, training would stop on it).

    Raises:
        DataError: naming the output's first such line.
    """
    from savi_plugin.data.readers import read_records

    if not out_path.is_file() or out_path.stat().st_size == 0:
        return
    bad: list[DataError] = []
    try:
        for _ in read_records(out_path, errors="collect", collected=bad):
            pass
    except DataError:  # no record (blank lines only): no line savi wrote was edited
        return
    bad = [e for e in bad if e.line is not None]
    if bad:
        raise DataError(bad[0].file, bad[0].line, bad[0].field,
                        f"{bad[0].message} -- this output's line was edited or damaged after savi wrote it "
                        f"({len(bad)} such line(s)); restore it, or write to a new output")


# --------------------------------------------------------------------------- output vs progress
def _output_lines(out_path: Path) -> tuple[dict[str, tuple[int, str, Any]], int]:
    """``record id -> (line number, SHA-256 of the line, its stored video)`` of the output's complete record
    lines (the first line of an id), and how many complete lines the output has (records or not)."""
    from savi_plugin.data.readers import iter_lines, parse_line

    found: dict[str, tuple[int, str, Any]] = {}
    count = 0
    if not out_path.is_file():
        return found, 0
    for number, raw, ended in iter_lines(out_path):
        if not ended:
            continue
        count += 1
        if raw is None:
            continue
        obj, problem = parse_line(out_path, number, raw)
        if problem is None and isinstance(obj, dict) and "id" in obj:
            found.setdefault(str(obj["id"]), (number, line_digest(raw), obj.get("video")))
    return found, count


def _written_pairs(rows: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str | None]]:
    """``record id -> (item id, SHA-256 of its line or None)`` of every pair the progress rows count as written."""
    return {str(o["id"]): (item_id, o.get("sha256")) for item_id, row in rows.items()
            for o in row.get("outcomes", []) if o.get("status") == PAIR and o.get("id") is not None}


def _holds_only_own_records(out_path: Path, prog_path: Path) -> bool:
    """Whether every record line of ``out_path`` is, byte for byte, a pair its progress file records as written
    (once each): the output lost lines since the run, but holds nothing that another hand wrote."""
    _, rows = _read_progress(prog_path)
    pairs = _written_pairs(rows)
    if not pairs or any(digest is None for _, digest in pairs.values()):
        return False  # a progress file without digests cannot vouch for the lines
    present, count = _output_lines(out_path)
    return count == len(present) and all(rid in pairs and pairs[rid][1] == digest
                                         for rid, (_, digest, _) in present.items())


def _reconcile(out_path: Path, prog_path: Path, rows: dict[str, dict[str, Any]],
               present: dict[str, tuple[int, str, Any]]) -> set[str]:
    """The items whose recorded pairs are not all in the output (to be generated again, with one warning).

    Raises:
        DataError: an output line holds a recorded pair's id with other bytes than the run wrote there.
    """
    lost: dict[str, int] = {}
    for rid, (item_id, digest) in _written_pairs(rows).items():
        if rid not in present:
            lost[item_id] = lost.get(item_id, 0) + 1
        elif digest is not None and present[rid][1] != digest:
            raise DataError(str(out_path), present[rid][0], None,
                            f"record {rid!r} differs from the line savi generate wrote there (its SHA-256 is in "
                            f"{prog_path.name}): it was edited after the run; restore it, or write to a new output")
    if lost:
        log.warning("%s: %d pair(s) of %d item(s) that %s counts as written are not in the output (it was removed, "
                    "emptied, cut or edited since): generating those items again", out_path, sum(lost.values()),
                    len(lost), prog_path.name)
    return set(lost)


def _cut_for_order(out_path: Path, rows: dict[str, dict[str, Any]], present: dict[str, tuple[int, str, Any]],
                   lost: set[str]) -> set[str]:
    """Keep the output in the order an uninterrupted run writes (batch after batch) when pairs of the ``lost``
    items are generated again: appended after the lines that followed them, they would leave the same records in
    another order (a file no run writes, whose digest a kept product or a training run no longer finds). The
    output is cut at the first line of the earliest batch holding a lost pair; lost pairs that were the output's
    last lines cut nothing.

    Returns:
        The items whose lines the cut removed (to be generated again with the lost ones, batch by batch).
    """
    if not lost:
        return set()
    written = _written_pairs(rows)
    first = min(int(rows[item_id].get("batch", 0)) for item_id in lost)
    later = [number for rid, (number, _, _) in present.items()
             if rid not in written or int(rows[written[rid][0]].get("batch", 0)) >= first]
    if not later:
        return set()
    number = min(later)
    cut = {written[rid][0] for rid, (at, _, _) in present.items() if at >= number and rid in written}
    cut_from_line(out_path, number)
    log.warning("%s: cut at line %d, the first of batch %d that held a lost pair: %d later item(s) are generated "
                "again after it, so the output keeps the order an uninterrupted run writes", out_path, number, first,
                len(cut - lost))
    return cut


def _check_not_moved(out_path: Path, present: dict[str, tuple[int, str, Any]], rows: dict[str, dict[str, Any]],
                     items: dict[str, InputItem]) -> None:
    """Refuse to resume an output whose stored video paths no longer name the videos its items read: it was
    moved away from the folder it was written in (relative paths start from the output's folder), and the lines
    written now would name the videos another way than the lines before.

    Raises:
        ValueError: one line naming the output's first such line.
    """
    item_of = {rid: item_id for rid, (item_id, _) in _written_pairs(rows).items()}
    for rid, (number, _, video) in sorted(present.items(), key=lambda kv: kv[1][0]):
        item = items.get(item_of.get(rid, ""))
        if item is None or not isinstance(video, str):
            continue
        named = path_from_file(video, out_path)
        if os.path.realpath(named) != os.path.realpath(item.video):
            raise ValueError(f"{out_path}:{number}: video {video!r} now names {named}, not the input's {item.video}: "
                             f"the output was moved away from the folder it was written in (its relative video "
                             f"paths start from that folder); move it back there to resume it, or write to a new "
                             f"output")


# --------------------------------------------------------------------------- progress file
def _read_progress(path: Path) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """The stored configuration (its paths read back absolute: :data:`PATH_KEYS`) and ``item id -> progress row``
    of a progress file (complete lines only). A link, folder or FIFO at its name is not the run's
    (:func:`savi_plugin.data.outputs.check_own_file` refuses it, naming what it is)."""
    from savi_plugin.data.readers import iter_lines, parse_line

    check_own_file(path)
    config, rows = None, {}
    if not path.exists():
        return config, rows
    for number, raw, ended in iter_lines(path):  # at most MAX_LINE_BYTES of one line held
        if not ended:
            break  # a torn last line: the writer cuts it on reopen
        obj, problem = parse_line(path, number, raw)
        why = problem.message if problem is not None else progress_row_problem(obj)
        if why is not None:  # the file is the run's own: a line it did not write means it was edited
            raise DataError(str(path), number, None, f"{why}: not a line this run wrote (the progress file was "
                                                      f"edited); remove the line, or remove the file to redo every item")
        if obj["id"] == CONFIG_ID:
            config = obj.get("config")
            config = configuration_from_file(config, path, PATH_KEYS) if isinstance(config, dict) else config
        else:
            rows[obj["id"]] = obj  # a retried item's later row replaces the earlier one
    return config, rows


def _check_known_items(path: Path, rows: dict[str, dict[str, Any]], input_ids: set[str]) -> None:
    """Refuse a progress file with a row for an item the input does not hold: the run writes rows for its own
    items only (the input's content is part of its configuration, compared before), so such a row was written by
    another hand, and counting it would report items done that the input never had.

    Raises:
        DataError: ``progress file:line``, the first such row.
    """
    foreign = set(rows) - input_ids
    if foreign:
        _refuse_row(path, foreign, "is not among the input's items")


def _check_within_limit(out_path: Path, rows: dict[str, dict[str, Any]], in_scope: set[str], limit: int | None,
                        stored_limit: int | None) -> None:
    """Refuse a ``--limit`` below what the output already holds (a run of 6 items re-run with ``--limit 3``): its
    mark and report would say 3 items while the file holds 6. A run is extended, never shortened (``--limit`` may
    grow, as ``max_steps`` may).

    Raises:
        ConfigMismatchError: naming the output, how many items lie beyond the limit, and the earlier limit.
    """
    from savi_plugin.data.fingerprint import ConfigMismatchError

    beyond = set(rows) - in_scope
    if limit is not None and beyond:
        earlier = "no --limit" if stored_limit is None else f"--limit {stored_limit}"
        raise ConfigMismatchError(f"{out_path}: holds {len(beyond)} item(s) beyond --limit {limit} (it was made with "
                                  f"{earlier}): a run is extended, never shortened; give the earlier limit or more, "
                                  f"or write to a new output")


#: the reasons the runner finds from an item's input alone, each with the test that it still holds, and what a row
#: claiming it while the test fails contradicts (decode failures would need the video decoded again)
_INPUT_REASONS: dict[str, tuple[Callable[[InputItem, str | Path | None], bool], str]] = {
    "missing_video": (lambda item, root: not os.path.isfile(item.video), "yet its video is there"),
    "outside_data_root": (lambda item, root: root is not None and not is_within(item.video, root),
                          "yet its video lies inside the data root (or the run has none)"),
}


def _check_skips_hold(path: Path, rows: dict[str, dict[str, Any]], items: dict[str, InputItem],
                      data_root: str | Path | None = None) -> None:
    """Refuse a progress row that counts an item under a reason its input contradicts (:data:`_INPUT_REASONS`: its
    video said to be missing while it is there, or outside the data root while it is inside, or the run has
    none): the input's videos and the data root are part of the run's identity (compared before), so what was
    true of them when the row was written is true still, and such a row was written by another hand (counting it
    would skip the item forever).

    Raises:
        DataError: ``progress file:line``, the first such row.
    """
    for reason, (holds, contradiction) in _INPUT_REASONS.items():
        contradicted = {item_id for item_id, row in rows.items() if item_id in items
                        and any(o.get("reason") == reason for o in row.get("outcomes", []))
                        and not holds(items[item_id], data_root)}
        if contradicted:
            _refuse_row(path, contradicted, f"is counted as {reason}, {contradiction}")


def _refuse_row(path: Path, ids: set[str], why: str) -> None:
    """Raise the one-line refusal of the first progress line for one of ``ids``: not a line the run wrote."""
    from savi_plugin.data.readers import iter_lines, parse_line

    for number, raw, ended in iter_lines(path):
        obj, _ = parse_line(path, number, raw) if ended else (None, None)
        if isinstance(obj, dict) and obj.get("id") in ids:
            raise DataError(str(path), number, None, f"item {obj['id']!r} {why}: not a line this run wrote (the "
                                                      f"progress file was edited); remove the line, or remove the "
                                                      f"file to redo every item")


def progress_row_problem(obj: Any) -> str | None:
    """What makes ``obj`` something other than a progress line the runner writes (the configuration line, or
    ``{"id": item id, "batch": n, "outcomes": [{"id", "status", "reason", ...}, ...]}``), or None."""
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
        return "no item id (text)"
    if obj["id"] == CONFIG_ID:
        return None
    batch, outcomes = obj.get("batch"), obj.get("outcomes")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 0:
        return "batch: not a batch number"
    if not isinstance(outcomes, list) or not all(isinstance(o, dict) and isinstance(o.get("status"), str)
                                                   and isinstance(o.get("reason"), str) for o in outcomes):
        return "outcomes: not a list of outcomes"
    twice = repeated(outcomes)
    if twice is not None:
        return (f"outcomes[{twice[1]}]: record {outcomes[twice[1]].get('id')!r} beside outcomes[{twice[0]}] (one "
                f"outcome per record)")
    return None


def to_retry(row: dict[str, Any]) -> bool:
    """Whether a progress row holds a failure that is not final (:func:`~savi_plugin.data.run_counts.is_retried`):
    the rule the report's ``items_to_retry`` counts by (:func:`~savi_plugin.data.run_counts.generation_counts`)."""
    return any(o.get("status") in (SKIPPED, FAILED) and is_retried(o) for o in row.get("outcomes", []))


def is_transient(exc: BaseException) -> bool:
    """An error of the machine, not of the input (:func:`savi_plugin.errors.classify`)."""
    return classify(exc) == MACHINE


def check_inputs_encodable(items: Sequence[InputItem]) -> None:
    """Refuse an input whose text (id, question, answer, options) is not valid Unicode, naming ``file:line``."""
    for item in items:
        file, line = item.where()
        for name in ("id", "question", "answer"):
            check_encodable(getattr(item, name), file, line, name)
        for option in item.options or ():
            check_encodable(option, file, line, "options")


# --------------------------------------------------------------------------- one batch
def _decode(items: Sequence[InputItem], num_frames: int, data_root: str | Path | None = None,
            gen: Generator | None = None) -> tuple[list[WorkItem], list[Outcome]]:
    from savi_plugin.video.decode import check_batch_budget, read_frames

    # from the headers, before decoding the batch: every clip the generator holds at once (RRPO: one per draw)
    check_batch_budget([item.video for item in items], num_frames, copies=gen.clips_per_item() if gen else 1,
                       copies_key=gen.clips_option if gen else None)
    work, failed = [], []
    for item in items:
        if data_root is not None and not is_within(item.video, data_root):  # e.g. a symlink in an input folder
            failed.append(Outcome(item.id, None, SKIPPED, "outside_data_root",
                                  f"{item.video} resolves to {os.path.realpath(item.video)}, outside the data root "
                                  f"{os.path.realpath(data_root)}"))
            continue
        try:
            frames = read_frames(item.video, num_frames).frames
        except Exception as exc:  # VideoDecodeError, a missing file, a codec crash: count it, go on
            kind = classify(exc)
            if kind == CONFIGURATION:  # e.g. a bad $SAVI_MAX_FRAME_PIXELS: stop, mark nothing
                raise
            reason = "io_error" if kind == MACHINE else reason_of(exc, "decode_error")
            status = SKIPPED if reason == "missing_video" else FAILED  # not there: skipped, as too_few_frames
            failed.append(Outcome(item.id, None, status, reason, f"{type(exc).__name__}: {exc}"))
            continue
        if len(frames) < num_frames:  # never padded by repeating frames; the trainer refuses such videos too
            failed.append(Outcome(item.id, None, SKIPPED, "too_few_frames",
                                  f"{item.video}: {len(frames)} frame(s), fewer than num_frames={num_frames}"))
            continue
        work.append(WorkItem(item, frames))
    return work, failed


def _process(gen: Generator, lm, work: list[WorkItem], ctx: BatchContext) -> list[Outcome]:
    """Run the generator on a batch; if the batch fails, retry item by item so one bad item costs only itself."""
    if not work:
        return []
    entry = getattr(gen, "entry", None) or gen.name
    try:
        with plugin_call(registry.GENERATORS, entry, gen, "process"):
            outcomes = gen.process(lm, work, ctx)
    except Exception as exc:
        kind = classify(exc)
        if kind == CONFIGURATION or getattr(exc, "stops_job", False):  # the same for every item: stop, mark nothing
            raise
        if len(work) == 1:
            if kind == INPUT:  # e.g. PromptTooLongError: the input, not the run, is at fault: final
                reason = reason_of(exc, "bad_input")
                return [Outcome(work[0].item.id, None, SKIPPED, reason, f"{type(exc).__name__}: {exc}")]
            log.debug("generation failed for %s:\n%s", work[0].item.id, traceback.format_exc())
            # a PluginFailure's words name the generator and the error it raised
            detail = str(exc) if isinstance(exc, PluginFailure) else f"{type(exc).__name__}: {exc}"
            return [Outcome(work[0].item.id, None, FAILED, "generation_error", detail)]
        log.warning("batch %d failed (%s: %s); retrying its %d items one by one", ctx.batch_index,
                    type(exc).__name__, exc, len(work))
    else:  # checked when returned: a bad outcome is the generator's, never written (nor blamed on the progress file)
        if not isinstance(outcomes, list):
            raise broken_contract(registry.GENERATORS, entry, gen, "process()",
                                  f"returned {type(outcomes).__name__}, not a list of Outcome objects")
        ids = {w.item.id for w in work}
        for n, outcome in enumerate(outcomes):
            problem = outcome_problem(outcome, ids)
            if problem is not None:
                raise broken_contract(registry.GENERATORS, entry, gen, f"process()'s outcome {n}", problem)
        answered = {outcome.item_id for outcome in outcomes}
        missing = [w.item.id for w in work if w.item.id not in answered]
        if missing:  # an item with no outcome would be recorded as done with nothing, and never retried
            raise broken_contract(registry.GENERATORS, entry, gen, "process()",
                                  f"returned no outcome for item {missing[0]!r} ({len(missing)} of the {len(work)} "
                                  f"items of its batch): every item gets at least one (a pair, skipped or failed)")
        return outcomes
    out: list[Outcome] = []
    for w in work:
        out.extend(_process(gen, lm, [w], ctx))
    return out


# --------------------------------------------------------------------------- the run
def run_generation(*, generator: str | type | Generator, model: Any, inputs: str | Path | Sequence[InputItem],
                   output: str | Path, backend: str | None = None, num_frames: int | None = None,
                   batch_size: int = 8, seed: int = 0, shard: str | Sequence[int] | None = None,
                   limit: int | None = None, options: dict[str, Any] | None = None,
                   adapter: str | Path | None = None, dtype: str = "float32", device: str = "auto",
                   progress: bool = True, data_root: str | Path | None = None,
                   model_key: str = "model") -> dict[str, Any]:
    """Generate preference pairs into ``output`` (JSONL) and return the run report.

    Args:
        generator: ``"rrpo"``, ``"videosavi"`` (any name registered under ``savi_plugin.generators``), a
            generator class, or an instance.
        model: a model directory (loaded with :func:`savi_plugin.models.load_backend`) or a loaded
            :class:`~savi_plugin.models.backends.base.VideoLM` (or any object with its ``generate``).
        inputs: a folder of videos, a JSONL manifest, or a list of :class:`InputItem`.
        output: the preference JSONL. With sharding, each shard writes :func:`shard_output_path`.
        backend: backend name when it cannot be detected from the model's ``config.json``.
        num_frames: frames decoded per video (default: the loaded backend's ``num_frames``, else
            :data:`~savi_plugin.video.decode.DEFAULT_NUM_FRAMES`).
        batch_size: items per batch and sequences per ``generate`` call.
        seed: the run's seed; the output is a function of (inputs, model, options, seed, batch_size, shard count).
        shard: ``(i, n)`` or ``"i/n"``: items ``i, i+n, ...`` (:func:`shard_items`); None uses torchrun's
            ``RANK``/``WORLD_SIZE`` when ``WORLD_SIZE > 1``.
        limit: use only the first ``limit`` inputs.
        options: the generator's options (see ``RRPOConfig`` / ``VideoSAViConfig``).
        adapter: a LoRA adapter directory applied on top of ``model``.
        dtype, device: how to load ``model`` (``device="auto"``: ``cuda:<LOCAL_RANK>`` if available).
        progress: show a tqdm bar with pairs/s.
        data_root: a manifest's relative video paths start from this folder and no video path may leave it
            (default: the manifest's folder, no confinement; see :func:`load_inputs`).
        model_key: the flag or key that gave ``model`` (``--model``), named when it is no model folder and no
            ``backend`` is given (:func:`~savi_plugin.config.checkpoint.check_model_found`, exit status 2).

    Returns:
        The run report (also written beside the output, :func:`report_path`, where every reader of the output
        looks for it: :mod:`savi_plugin.data.provenance`): counts per outcome, every skipped or failed record with
        its reason, throughput of this run, and the configuration.
    """
    from savi_plugin.config.sections import GenerateSection, ModelSection
    from savi_plugin.config.values import check_field
    from savi_plugin.environment import check_environment, item_limits

    check_environment()  # a bad SAVI_* value is a configuration error now, not a failure of every item
    # the recipe's and the CLI's rules for the same values: never 0 frames turned into 32, nor a limit of -1
    num_frames = check_field(ModelSection, "num_frames", num_frames, "num_frames") if num_frames is not None else None
    for name, value in (("batch_size", batch_size), ("seed", seed), ("limit", limit)):
        check_field(GenerateSection, name, value, name)
    generator_name = generator if isinstance(generator, str) else None  # a registered entry (else a class)
    gen = resolve_generator(generator, options)
    check_data_root(data_root)
    if adapter is not None:  # before the output is claimed: peft would refuse it only after the model loaded
        from savi_plugin.data.identity import check_adapter

        check_adapter(adapter, model if isinstance(model, (str, Path)) else None)
    items = list(inputs) if not isinstance(inputs, (str, Path)) else load_inputs(inputs, data_root)
    check_inputs_encodable(items)
    input_ids = {item.id for item in items}  # every item a progress row may name, whatever the limit
    # the videos a manifest names, by content (a folder input's identity covers its files already); each one's
    # signature is kept as it was hashed, so a video changed while the job runs stops it (data/watched.py)
    watch = WatchedFiles("a video the input names")
    helpers = WatchedFiles("a file of the judge or tagger model")
    videos = files_identity((item.video for item in items), watch=watch) if isinstance(inputs, (str, Path)) and Path(
        inputs).is_file() else None
    if limit is not None:
        items = items[:limit]
    gen.check_items(items)
    shard_ix = parse_shard(shard)
    out_path = file_output(output, "--output")
    if shard_ix is not None and shard_ix[1] > 1:
        out_path = shard_output_path(output, *shard_ix)
    index, count = shard_ix or (0, 1)
    mine = shard_items(items, index, count, batch_size)
    if count > 1 and not mine:
        log.warning("shard %d/%d has no item: items go to the shards in turn, and there are %d item(s) for %d shards",
                    index, count, len(items), count)

    by_path = isinstance(model, (str, Path))
    if by_path:  # the model is loaded only if there is work left (a finished run is re-run for free)
        from savi_plugin.config.checkpoint import check_model_found
        from savi_plugin.models import detect_backend

        check_model_found(model, backend, model_key)
        backend_name = backend or detect_backend(model)
        frames = int(num_frames or DEFAULT_NUM_FRAMES)
        model_name = str(model)
    else:
        backend_name = getattr(model, "family", backend)
        frames = int(num_frames or getattr(model, "num_frames", None) or DEFAULT_NUM_FRAMES)
        model_name = str(getattr(model, "name_or_path", type(model).__name__))
    # the plugins it runs (entry, distribution, version): a resume after a plugin changed is refused, naming it
    plugins = registry.components({"generate.generator": (registry.GENERATORS, generator_name),
                                   "model.backend": (registry.BACKENDS, backend_name)})
    config = held_configuration({
        "generator": gen.name,
        **({"plugins": plugins} if plugins else {}),
        "options": gen.run_options(),
        "model": model_name,
        "adapter": str(adapter) if adapter else None,
        "backend": backend_name,
        "num_frames": frames,
        "batch_size": batch_size,
        "seed": seed,
        "shard": [index, count],
        "shard_split": SHARD_SPLIT if count > 1 else None,  # one process: no split (an unsharded output resumes)
        "limit": limit,
        "inputs": str(inputs) if isinstance(inputs, (str, Path)) else f"<{len(items)} items>",
        "data_root": str(data_root) if data_root is not None else None,
        "device": resolve_device(device) if by_path else str(getattr(model, "device", device)),
        "dtype": dtype,
        "limits": item_limits(),  # the decode caps decide which items fail (final under these caps)
        # what the inputs, model and adapter are by content: a resume after any of them changed is refused
        "identity": {"inputs": input_identity(inputs, watch=watch) if isinstance(inputs, (str, Path)) else None,
                     "videos": videos,
                     "model": model_identity(model if by_path else getattr(model, "name_or_path", None)),
                     "adapter": model_identity(adapter) if adapter else None,
                     **_option_model_identities(gen, helpers)},
    }, PATH_KEYS)
    # each pair names its model (and adapter) by the paths rule for the output that holds it
    base_meta = {"generator": gen.name, "prompts_version": gen.prompts_version,
                 "model": name_for_file(config["model"], out_path), "backend": backend_name, "num_frames": frames,
                 "seed": seed}
    if adapter:
        base_meta["adapter"] = name_for_file(config["adapter"], out_path)

    prog_path = progress_path(out_path)
    named_inputs = {"--input": inputs if isinstance(inputs, (str, Path)) else None,
                    "--model": model if by_path else None, "--adapter": adapter}
    for key, flag in {"prompts": "--prompts", **MODEL_OPTIONS}.items():
        value = (options or {}).get(key)
        if isinstance(value, (str, Path)) and value != "policy" and os.path.exists(value):
            named_inputs[flag] = value  # files the generator reads are inputs too
    written = {"--output" if path == out_path else f"the output's {path.name}": path
               for path in (out_path, prog_path, report_path(out_path))}
    for name, path in written.items():
        check_distinct(path, named_inputs, output_name=name)
    check_not_any(written, (item.video for item in items), what="a video the input names")
    stored = configuration_for_file(config, mark_path(out_path, False), PATH_KEYS)  # as the mark stores it
    with claim(out_path, command="savi generate", config=stored, inputs=named_inputs, output_name="--output",
               ignore=_RESUMABLE_CHANGES + _BY_IDENTITY, every_rank=True,
               own_content=lambda path: _holds_only_own_records(path, prog_path)) as claimed, watch, helpers:
        result = _run_locked(gen, model, mine, config, base_meta, out_path, prog_path, index, count, frames,
                             backend_name, adapter, dtype, device, seed, batch_size, progress, data_root,
                             claimed, len(items), input_ids)
        return result


def _run_locked(gen, model, mine, config, base_meta, out_path, prog_path, index, count, frames, backend_name,
                adapter, dtype, device, seed, batch_size, progress, data_root, claimed,
                split_items, input_ids) -> dict[str, Any]:
    """The body of :func:`run_generation` once the output is claimed (:func:`~savi_plugin.data.outputs.claim`)."""
    repair_truncated_tail(prog_path)
    stored, rows = _read_progress(prog_path)
    has_output = out_path.is_file() and out_path.stat().st_size > 0
    if stored is None and (rows or (has_output and claimed.previous is None)):
        raise ValueError(f"{out_path}: {prog_path.name} holds no stored configuration (it was removed or edited); "
                         f"resuming could mix two configurations: write to a new output or delete the old files")
    check_same_config(stored, config, output=out_path, stored_at=prog_path, ignore=_RESUMABLE_CHANGES + _BY_IDENTITY,
                      remedy="write to a new output or delete the old files")
    _check_known_items(prog_path, rows, input_ids)
    made_with = (claimed.previous or {}).get("config") or stored or {}  # the mark: the run's latest limit
    _check_within_limit(out_path, rows, {item.id for _, chunk in mine for item in chunk}, config["limit"],
                        made_with.get("limit"))
    _check_skips_hold(prog_path, rows, {item.id: item for _, chunk in mine for item in chunk}, data_root)
    repair_truncated_tail(out_path)  # a torn last line is a crash's, cut as the writer does
    _check_output_lines(out_path)
    if stored is None and has_output:  # our mark holds the configuration (claim compared it): rebuild the cache
        log.warning("%s: its progress file %s is gone; the output's records are kept and every item is run again "
                    "to rebuild it (no record is written twice)", out_path, prog_path.name)
    present, _ = _output_lines(out_path)
    lost = _reconcile(out_path, prog_path, rows, present)
    cut = _cut_for_order(out_path, rows, present, lost)
    if cut:  # generated again too, after the lost ones, in batch order
        lost |= cut
        present, _ = _output_lines(out_path)
    _check_not_moved(out_path, present, rows, {item.id: item for _, chunk in mine for item in chunk})
    claimed.write_mark()
    done = {item_id for item_id, row in rows.items() if not to_retry(row) and item_id not in lost}
    owners = {rid: item_id for rid, (item_id, _) in _written_pairs(rows).items()}  # record id -> its item
    writer = PreferenceWriter(out_path)
    progress_log = JsonlAppender(prog_path)
    progress_log.ids -= set(rows) - done  # failed for a transient reason: this run writes their new rows
    if stored is None:
        progress_log.write_object({"id": CONFIG_ID, "config": configuration_for_file(config, prog_path, PATH_KEYS)})
        claimed.wrote_record(prog_path)  # no result yet: a stop before the first item removes a new output whole

    todo = [(b, chunk) for b, chunk in mine if not all(item.id in done for item in chunk)]
    if todo:  # the earlier run's report vouches for what it wrote; this run writes more, and its own report last
        report_path(out_path).unlink(missing_ok=True)
    lm, load_seconds = _load_model(model, backend_name, frames, adapter, dtype, device, progress) if todo else (model, 0.0)
    if todo:
        _check_loaded_identity(config, model, adapter)
    if todo:  # the templates meet the model's control tokens: a configuration error now, not a failure per item
        gen.check_prompts(getattr(lm, "tokenizer", None))
    total_items = sum(len(chunk) for _, chunk in mine)
    run_items = run_pairs = 0
    start = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_items, initial=total_items - sum(len(c) for _, c in todo), unit="video",
                   desc=f"savi generate {gen.name}" + (f" [{index}/{count}]" if count > 1 else ""), dynamic_ncols=True)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:  # decode the next batch while the model runs
            pending = pool.submit(_decode, todo[0][1], frames, data_root, gen) if todo else None
            for n, (b, chunk) in enumerate(todo):
                work, outcomes = pending.result()
                pending = pool.submit(_decode, todo[n + 1][1], frames, data_root, gen) if n + 1 < len(todo) else None
                ctx = BatchContext(seed=seed, batch_index=b, batch_size=batch_size, meta=base_meta)
                outcomes = outcomes + _process(gen, lm, work, ctx)
                by_item: dict[str, list[Outcome]] = {item.id: [] for item in chunk}
                digests: dict[str, str | None] = {}  # record id -> SHA-256 of its line in the output
                for o in outcomes:
                    if o.item_id in done:  # a done item's batch is re-run whole; what its progress row says stands
                        continue
                    if o.status == PAIR:  # a pair to write, or a failure when the records' rules refuse it
                        o = _checked_pair(gen, o, _stored_video(o.record, out_path, data_root), owners, out_path)
                    by_item[o.item_id].append(o)
                    if o.status == PAIR:
                        record = o.record
                        owners[str(record.id)] = o.item_id
                        if writer.write(record):
                            run_pairs += 1
                            digests[o.record_id] = line_digest(encode_line(record.to_json()))
                        else:  # written by an earlier, interrupted run: the line that is there
                            digests[o.record_id] = present.get(str(record.id), (0, None, None))[1]
                    elif o.status == FAILED:
                        log.warning("%s: %s: %s", o.record_id or o.item_id, o.reason, o.detail)
                    else:
                        log.debug("%s: skipped (%s): %s", o.record_id or o.item_id, o.reason, o.detail)
                for item in chunk:  # after the records: an item is "done" only once its records are on disk
                    _check_one_per_record(gen, by_item[item.id])
                    progress_log.write_object({"id": item.id, "batch": b,
                                               "outcomes": [_outcome_row(o, digests) for o in by_item[item.id]]})
                run_items += len(chunk)
                if bar is not None:
                    elapsed = max(time.perf_counter() - start, 1e-9)
                    bar.update(len(chunk))
                    bar.set_postfix(pairs=run_pairs, pairs_per_s=f"{run_pairs / elapsed:.2f}")
        writer.check_intact()  # removed, replaced or cut after its last line: stop before a report vouches for it
        progress_log.check_intact()
    finally:
        if bar is not None:
            bar.close()
        writer.close()
        progress_log.close()
    seconds = time.perf_counter() - start

    result = build_report(prog_path, out_path, total_items)
    result["config"] = config
    if count > 1:  # the items split among all shards: a merge refuses shards that split different item counts
        result["split"] = {"scheme": SHARD_SPLIT, "shard": [index, count], "items": split_items}
    result["throughput"] = {
        "seconds": round(seconds, 4), "items": run_items, "pairs": run_pairs,
        "items_per_s": round(run_items / seconds, 4) if seconds > 0 else None,
        "pairs_per_s": round(run_pairs / seconds, 4) if seconds > 0 else None,
        "batches": len(todo), "model_load_seconds": round(load_seconds, 4),
    }
    rpath = report_path(out_path)
    result["report"] = str(rpath)
    stored = {k: path_for_file(result[k], rpath) for k in ("output", "progress", "report")}  # the paths rule
    stored["config"] = configuration_for_file(config, rpath, PATH_KEYS)
    from savi_plugin.data.provenance import vouch

    result.update(vouch(out_path))  # the bytes it vouches for: an edit, a truncation or a foreign copy is seen
    write_json(rpath, {**result, **stored})
    c = result["counts"]
    one_reason = {e["reason"] for e in result["skipped"] + result["failed"]}
    if c["items_done"] and not c["pairs"] and len(one_reason) == 1 and one_reason & set(VIDEO_REASONS):
        reason = one_reason.pop()  # every item refused alike: the run's settings, not each clip, are likely at fault
        log.warning("%s: every item (%d) was refused under %s, none made a pair; %s", out_path, c["items_done"],
                    reason, VIDEO_REASONS[reason].format(num_frames=frames))
    log.info("%s: %d pair(s) from %d item(s); candidate pairs skipped %d, failed %d; this run %.2f pairs/s "
             "(report: %s)",
             out_path, c["pairs"], c["items_done"], c["skipped"], c["failed"],
             result["throughput"]["pairs_per_s"] or 0.0, rpath)
    return result


def _check_one_per_record(gen: Generator, outcomes: list[Outcome]) -> None:
    """Refuse a generator's outcomes for one item that are not one per would-be record (a record id twice, or an
    outcome without a record id beside another): neither a progress row nor a report lists them so
    (:func:`~savi_plugin.data.run_counts.repeated`)."""
    twice = repeated([o.to_json() for o in outcomes])
    if twice is not None:
        first, again = outcomes[twice[0]], outcomes[twice[1]]
        raise RuntimeError(f"generator {gen.name!r} gave item {again.item_id!r} an outcome for record "
                           f"{again.record_id!r} beside one for {first.record_id!r}: a generator gives one outcome "
                           f"per would-be record (an item that failed before any record was numbered, only one)")


def _checked_pair(gen: Generator, outcome: Outcome, record: Any, owners: dict[str, str], out_path: Path) -> Outcome:
    """A generator's pair outcome with ``record`` (its video stored by the paths rule), or a listed failure when the
    record may not be written: the record rule ``savi data validate`` applies refuses it, or its id is a record of
    another item (written by this run or an earlier one). A generator's record is checked as every reader checks it
    before it is written, so the writer never writes what validate refuses, nor drops a pair silently as "written
    before". The failure names the generator and is counted and listed in the report (``generation_error``:
    retried by the next run)."""
    from savi_plugin.data.record import DataError, validate_record

    rid = str(record.id)
    owner = owners.get(rid)
    if owner is not None and owner != outcome.item_id:
        why = f"record id {rid!r} is already item {owner!r}'s record (one id, one record)"
    else:
        try:
            validate_record(record.to_json(), str(out_path))
            return dataclasses.replace(outcome, record=record)
        except DataError as exc:
            why = f"record {rid!r} is refused by the record rule (savi data validate): {exc.field or '-'}: {exc.message}"
    return dataclasses.replace(outcome, status=FAILED, reason="generation_error", record=None,
                               detail=f"generator {gen.name!r}: {why}")


def _outcome_row(outcome: Outcome, digests: dict[str, str | None]) -> dict[str, Any]:
    """An outcome as its progress row stores it; a pair with the SHA-256 of its line in the output."""
    row = outcome.to_json()
    if digests.get(outcome.record_id):
        row["sha256"] = digests[outcome.record_id]
    return row


def _stored_video(record, out_path: Path, data_root) -> Any:
    """``record`` with its video path as the pairs file stores it (:mod:`savi_plugin.data.paths`' rule).

    Relative to the pairs file's folder when the video lies under it, else absolute; absolute whenever a data
    root is set, since a reader with a data root joins relative paths to the root.
    """
    video = absolute_path(record.video) if data_root is not None else path_for_file(record.video, out_path)
    return dataclasses.replace(record, video=video) if video != record.video else record


def build_report(prog_path: Path, out_path: Path, total_items: int | None = None) -> dict[str, Any]:
    """Counts per outcome and the list of skipped/failed records, from a progress file."""
    _, rows = _read_progress(prog_path)
    tagging: dict[str, int] = {}
    pairs = 0
    listed: dict[str, list[dict[str, Any]]] = {SKIPPED: [], FAILED: []}
    for item_id, row in rows.items():
        for o in row.get("outcomes", []):
            status = o.get("status")
            pairs += status == PAIR
            if "tagging" in o.get("info", {}):
                tagging[o["info"]["tagging"]] = tagging.get(o["info"]["tagging"], 0) + 1
            if status in listed:
                entry = {"item": item_id, "id": o.get("id"), "reason": o["reason"], "detail": o.get("detail", "")}
                listed[status].append(entry)
    lines = 0
    if out_path.exists():
        from savi_plugin.data.readers import iter_lines

        lines = sum(1 for _, _, ended in iter_lines(out_path) if ended)  # bounded per line
    present, _ = _output_lines(out_path)
    missing = sum(1 for rid in _written_pairs(rows) if rid not in present)  # the output is the truth
    counts = generation_counts(listed[SKIPPED], listed[FAILED], pairs, len(rows))  # what every reader recomputes
    report = {
        "output": str(out_path),
        "progress": str(prog_path),
        "complete": total_items is not None and counts["items_final"] >= total_items and not missing,
        "counts": {"items": total_items, **counts, "pairs_missing": missing, "tagging": dict(sorted(tagging.items()))},
        "records_in_output": lines,
        "skipped": listed[SKIPPED],
        "failed": listed[FAILED],
    }
    return report

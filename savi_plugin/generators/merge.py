"""Merge the outputs of sharded generation runs into one preference file, refusing an incomplete set.

A shard set is complete when every shard ``i`` of ``n`` (named by :func:`~savi_plugin.generators.runner.
shard_output_path`) is present and each shard's run finished: its run report says ``complete`` (every item has a
final outcome, none waits for a retry), the shards' runs split one number of items (each shard is complete over its
own share), its output has no torn last line, every line is a valid record and no id has different content in two
shards (a shard damaged or edited after its run); each shard's relative video paths name files from its own folder
(not a copy moved or copied away from the folder its run wrote it in, with or without its sidecars) and its progress
file records the configuration its run report does (not another output's). Merging an incomplete set would silently
produce a file with part of the data, so it is refused, naming what is missing, unless the caller asks for it
(``allow_incomplete``, ``savi generate merge --allow-incomplete``); the merge report then says ``complete: false``
and lists what is missing.
"""

from __future__ import annotations

import json
import logging
import os
import re
from contextlib import ExitStack
from glob import escape as glob_escape
from pathlib import Path
from typing import Any, Sequence

from savi_plugin.data.files import read_json
from savi_plugin.data.fingerprint import ConfigMismatchError, config_changes, describe_changes
from savi_plugin.data.outputs import (SIDECAR_KINDS, OutputLock, claim, file_output, mark_path, sidecar,
                                      write_reported)
from savi_plugin.data.paths import (absolute_path, configuration_for_file, configuration_from_file, file_folder,
                                    from_here, name_for_file, path_for_file, path_from_file)
from savi_plugin.data.provenance import (
    CHANGED,
    report_kind,
    run_problem,
    run_report,
    unvouched_copy,
    vouch,
    vouched_finished,
)
from savi_plugin.data.readers import iter_lines, parse_line
from savi_plugin.data.run_counts import counts_problem, generation_counts
from savi_plugin.data.record import DataError, validate_record
from savi_plugin.errors import ConfigError, DocumentTooLarge
from savi_plugin.generators.runner import (_RESUMABLE_CHANGES, PATH_KEYS, _read_progress, parse_shard, progress_path,
                                           report_path, shard_output_path)
from savi_plugin.untrusted import shown

log = logging.getLogger(__name__)

_SHARD_NAME = re.compile(r"^(?P<stem>.+)\.shard-(?P<index>\d+)-of-(?P<count>\d+)(?P<suffix>\.[^.]*)?$")


class IncompleteShardsError(ValueError):
    """The shard set is incomplete; the message lists every missing or unfinished shard."""


def _shard_run_problem(path: Path) -> str | None:
    """Why ``path`` is not a finished generation run's shard as its report vouched for it, or None (finished, or
    not a generation output): :func:`savi_plugin.data.provenance.run_problem`, the rule every consumer asks; a
    report beside it that another command wrote (a conversion's, a merge's) is named as such."""
    report = run_report(path)
    kind = report_kind(report) if report is not None else None
    if kind is not None and kind != "savi generate":
        return (f"its report ({report_path(path).name}) is {kind}'s, not a generation run's: merge the generation "
                f"shards themselves")
    problem = run_problem(path)
    if problem is None:
        return _progress_problem(path, report)
    return problem + (": restore the file its report was written for, or regenerate it" if problem.startswith(CHANGED)
                      else ": re-run the same savi generate command")


def _progress_problem(path: Path, report: Any) -> str | None:
    """Why the progress file beside ``path`` is not the one its run wrote, or None: the configuration it records
    (what the merge's mark stores for the shard) is not the one the shard's run report records (another output's
    progress file put beside it), beyond what a run may change when it is continued (``--limit``, the device)."""
    stored, _ = _read_progress(progress_path(path))
    recorded = report.get("config") if isinstance(report, dict) else None
    if not isinstance(stored, dict) or not isinstance(recorded, dict):
        return None
    changes = config_changes(configuration_from_file(recorded, report_path(path), PATH_KEYS), stored,
                             ignore=_RESUMABLE_CHANGES)  # an extended run's report says its last --limit
    if not changes:
        return None
    return (f"its progress file {progress_path(path).name} records another configuration than its run report "
            f"({describe_changes(changes, limit=3)}): it is another run's; put back the one its run wrote")


def check_shard_names(paths: Sequence[Path]) -> None:
    """Refuse a file named as shard ``i`` of ``n`` where ``--shard i/n`` is refused (``n`` above
    :data:`~savi_plugin.generators.runner.MAX_SHARDS`, ``i >= n``), before any work: the set's missing shards
    are listed one by one.

    Raises:
        ConfigError: at the first such file, naming it and the rule.
    """
    for path in paths:
        match = _SHARD_NAME.match(path.name)
        if match is None:
            continue
        try:
            parse_shard((int(match["index"]), int(match["count"])))
        except ValueError as exc:
            raise ConfigError("", f"named as a shard that --shard refuses ({exc}); not a shard of one run",
                              str(path)) from None


def check_one_name_per_file(paths: Sequence[Path]) -> None:
    """Refuse one file given under two names (a link, a hard link) that name it as different files: a merge reads
    each shard once, so the shard the second name claims to be would be missing, and the shard set's line would
    name files nobody gave. The same name given twice (two overlapping globs) is read once.

    Raises:
        ConfigError: naming both names and the file.
    """
    seen: dict[tuple[int, int], Path] = {}
    for path in paths:
        st = path.stat()
        first = seen.setdefault((st.st_dev, st.st_ino), path)
        if first is not path and absolute_path(first) != absolute_path(path):
            raise ConfigError("", f"is the same file as {first} (a link to it, or it to this one), given under a "
                                  f"second name: give each shard once, by its own name", str(path))


def shard_set_problems(paths: Sequence[Path]) -> list[str]:
    """What keeps ``paths`` from being a complete shard set: missing shards, unfinished runs, and shards whose runs
    split different numbers of items (another ``--limit``: each is complete over its share, the set is not)."""
    problems = []
    groups: dict[tuple[str, str, int], set[int]] = {}
    folders: dict[tuple[str, str, int], dict[Path, Path]] = {}  # each set's folders: real path -> as given
    split: dict[tuple[str, str, int], dict[int, tuple[Path, int]]] = {}
    for path in paths:
        problem = _shard_run_problem(path)
        if problem:
            problems.append(f"{path}: {problem}")
        report = run_report(path)
        if report is not None and report_kind(report) not in (None, "savi generate"):
            continue  # another command's output (a conversion's) named like a shard is no member of a shard set
        match = _SHARD_NAME.match(path.name)
        shard = ((report or {}).get("split") or {}).get("shard") if isinstance(report, dict) else None
        if match and isinstance(shard, list) and shard != [int(match["index"]), int(match["count"])]:
            problems.append(f"{path}: named as shard {int(match['index'])} of {int(match['count'])}, but its run "
                            f"report says it is shard {shard[0]} of {shard[1]} (a copy or a rename): give each "
                            f"shard under the name its run wrote")
            continue
        if match:  # a set is the shards given of one name, wherever each lies (check_same_run: of one run)
            key = (match["stem"], match["suffix"] or "", int(match["count"]))
            groups.setdefault(key, set()).add(int(match["index"]))
            folders.setdefault(key, {}).setdefault(Path(os.path.realpath(path.parent)), path.parent)
            items = (report or {}).get("split", {}).get("items") if isinstance(report, dict) else None
            if isinstance(items, int):
                split.setdefault(key, {})[int(match["index"])] = (path, items)
    for shards in split.values():  # each shard is complete over its share of N items: one N for the whole set
        (first, n_first), *others = [shards[i] for i in sorted(shards)]
        for path, n_items in others:
            if n_items != n_first:
                problems.append(f"{path}: its run split {n_items} item(s) among the shards, {first.name}'s "
                                f"{n_first} (another --limit): re-run the shards with one --limit")
    for (stem, suffix, count), present in sorted(groups.items(), key=lambda kv: str(kv[0])):
        parents = list(folders[(stem, suffix, count)].values())
        for index in range(count):
            if index in present:
                continue
            found = next((f for f in (_shard_on_disk(p, stem, suffix, index, count) for p in parents) if f), None)
            if found is not None:  # beside a shard given, but not given itself
                problems.append(f"{from_here(found)}: shard {index} of {count} is not given")
            elif len(parents) == 1:
                missing = shard_output_path(parents[0] / f"{stem}{suffix}", index, count)
                problems.append(f"{from_here(missing)}: shard {index} of {count} is not found")
            else:
                problems.append(f"{stem}.shard-{index}-of-{count}{suffix}: shard {index} of {count} is neither given "
                                f"nor found beside the shards given (in {', '.join(map(from_here, parents))})")
    return problems


def _shard_on_disk(parent: Path, stem: str, suffix: str, index: int, count: int) -> Path | None:
    """The file of shard ``index`` of ``count`` in ``parent``, however its numbers are padded
    (``pairs.shard-0-of-2.jsonl`` or :func:`shard_output_path`'s ``pairs.shard-00000-of-00002.jsonl``), or None."""
    try:
        candidates = sorted(parent.glob(f"{glob_escape(stem)}.shard-*-of-*{glob_escape(suffix)}"))
    except OSError:
        return None
    for candidate in candidates:
        match = _SHARD_NAME.match(candidate.name)
        if (match and match["stem"] == stem and (match["suffix"] or "") == suffix and int(match["index"]) == index
                and int(match["count"]) == count and candidate.is_file()):
            return candidate
    return None


def check_same_run(paths: Sequence[Path]) -> None:
    """Refuse shards that were generated with different configurations (another seed, model, options ...).

    Each shard's stored paths are read back from its own progress file (:func:`_read_progress`), so shards in
    different folders that name the same model and inputs (relative inside a run folder) are one run.

    Raises:
        ConfigMismatchError: naming the two shards and what differs.
    """
    first: tuple[Path, dict[str, Any]] | None = None
    for path in paths:
        stored, _ = _read_progress(progress_path(path))
        if stored is None:
            continue
        if first is None:
            first = (path, stored)
            continue
        changes = config_changes(first[1], stored, ignore=("shard",) + _RESUMABLE_CHANGES)
        if changes:
            raise ConfigMismatchError(f"{path}: generated with a different configuration than {first[0]} "
                                      f"({describe_changes(changes)}); shards of one output share one configuration")


def _sort_key(obj: dict[str, Any]):
    order = obj.get("meta", {}).get("order")
    return (tuple(order) if isinstance(order, list) else (), obj["id"])


def merge_shards(paths: Sequence[str | Path], output: str | Path, *, allow_incomplete: bool = False) -> dict[str, Any]:
    """Merge shard outputs into ``output``: complete, validated, de-duplicated by id, in input order.

    Records are ordered by ``meta.order`` (input index, then ``k``) when every record has it, which
    reproduces the unsharded run's order; otherwise the first-seen order is kept. The first record of an
    id wins; a later record with the same id but different content is reported as a conflict. Only complete
    lines are read (a shard still being written, or torn by a crash, loses its partial last line, reported).
    The output is written to a temporary file and renamed, so it is never half-written. The shards' run
    reports, when present, are combined into ``<output>.report.json``. A shard's sidecar (progress file, run report,
    mark, lock) given among ``paths`` (``pairs.shard-*`` matches them) is set aside.

    Args:
        paths: the shard files (e.g. from :func:`~savi_plugin.generators.runner.find_shards`).
        output: the merged JSONL (must not be one of ``paths``).
        allow_incomplete: merge even if shards are missing or unfinished (the report says ``complete: false``).

    Returns:
        The merge report: records written, duplicates dropped, conflicts, invalid lines, truncated tails,
        ``complete`` and ``missing`` (every missing shard, unfinished run, shard whose content is not what its run
        report vouches for, or torn file), the merged file's ``content`` identity, and ``unverified`` when an
        input is a copy whose run's end cannot be checked (:func:`savi_plugin.data.provenance.unvouched_copy`).
        ``complete`` is true only when every input's finished run vouches for it
        (:func:`~savi_plugin.data.provenance.vouched_finished`), false when something is missing, else null.

    Raises:
        IncompleteShardsError: the set is incomplete and ``allow_incomplete`` is False (nothing is written).
        ConfigMismatchError: the shards were generated with different configurations (nothing is written).
    """
    output = file_output(output, "the merge output")
    paths = [Path(p) for p in paths]
    # a glob such as pairs.shard-* matches each shard's sidecars too (progress, run report, mark, lock): set aside
    sidecars = {sidecar(p, kind).resolve() for p in paths for kind in SIDECAR_KINDS}
    dropped = [p for p in paths if p.resolve() in sidecars]
    paths = [p for p in paths if p.resolve() not in sidecars]
    if not paths:
        raise ValueError(f"no shard files to merge into {output}")
    for path in paths:
        if not path.is_file():
            raise DataError(str(path), None, None, "shard file not found")
    check_shard_names(paths)
    check_one_name_per_file(paths)
    paths = list({absolute_path(p): p for p in paths}.values())  # one name given twice (overlapping globs): once
    check_same_run(paths)
    inputs = {f"the shard {p.name}": p for p in paths}
    inputs.update({f"the shard's {progress_path(p).name}": progress_path(p) for p in paths})
    mark = mark_path(output, False)  # the shards' configurations, their paths as the merge's mark stores them
    config = {"shards": [configuration_for_file(_shard_config(p), mark, PATH_KEYS) for p in paths]}
    with ExitStack() as locks:  # the output, and every shard: a shard still being generated is not merged
        claimed = locks.enter_context(claim(output, command="savi generate merge", config=config, inputs=inputs,
                                            output_name="the merge output", every_rank=True, replace_ours=True))
        for path in dict.fromkeys(Path(os.path.realpath(p)) for p in paths):  # each file once
            locks.enter_context(OutputLock(path, what="shard", every_rank=True))
        result = _merge(paths, output, allow_incomplete, claimed)
    if dropped:
        result["ignored_sidecars"] = [str(p) for p in dropped]
    return result


def _video_for_output(video: str, shard: Path, output: Path) -> str:
    """A shard record's ``video`` as ``output`` stores it (:mod:`savi_plugin.data.paths`' rule): unchanged when
    both files share a folder or the path is absolute, else re-expressed for ``output``'s folder."""
    if os.path.isabs(video) or absolute_path(file_folder(shard)) == absolute_path(output.parent):
        return video
    return path_for_file(path_from_file(video, shard), output)


def _record_for_output(obj: dict[str, Any], shard: Path, output: Path) -> dict[str, Any]:
    """A shard record as ``output`` stores it: its ``video`` (:func:`_video_for_output`) and the model and adapter
    its ``meta`` names (a local path re-expressed for ``output``'s folder, a hub id as given)."""
    moved = {**obj, "video": _video_for_output(obj["video"], shard, output)}
    meta = obj.get("meta")
    if isinstance(meta, dict) and absolute_path(file_folder(shard)) != absolute_path(output.parent):
        names = {}
        for key in ("model", "adapter"):
            value = meta.get(key)
            if isinstance(value, str) and value and not os.path.isabs(value):
                found = path_from_file(value, shard)
                if os.path.exists(found):  # a relative name naming nothing beside the shard is a hub id: kept
                    names[key] = name_for_file(found, output)
        if names:
            moved["meta"] = {**meta, **names}
    return moved


def _shard_config(path: Path) -> dict[str, Any]:
    """A shard's stored generation configuration (its identities included), or its name when it has none."""
    stored, _ = _read_progress(progress_path(path))
    return {k: v for k, v in (stored or {"file": path.name}).items() if k not in ("shard",) + _RESUMABLE_CHANGES}


#: the fields of a record that name a file by a path relative to the file holding the record
_RELATIVE_FIELDS = (("video",), ("meta", "model"), ("meta", "adapter"))


def _moved_path(first: tuple[Path, dict[str, Any]], second: tuple[Path, dict[str, Any]]
                ) -> tuple[Path, Path, str] | None:
    """For one id read from two shards as the same record (``(shard, record as written)``): ``(the shard that
    looks moved, the other, the first relative path the record holds that names another file from each shard's
    folder)`` (``video '../v.mp4' names nothing from b.jsonl's folder, v.mp4 from a.jsonl's``; the moved one is
    the one where it names nothing, else the second); None when the records differ as written, or no path of
    theirs does."""
    (a, obj_a), (b, obj_b) = first, second
    if obj_a != obj_b:
        return None
    for keys in _RELATIVE_FIELDS:
        value: Any = obj_a
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, str) or not value or os.path.isabs(value):
            continue
        here = {shard: from_here(absolute_path(path_from_file(value, shard))) for shard in (a, b)}
        if here[a] == here[b]:
            continue
        named = {shard: found if os.path.exists(found) else "nothing" for shard, found in here.items()}
        if named[a] == "nothing" != named[b]:
            a, b = b, a
        return b, a, f"{'.'.join(keys)} {shown(value)} names {named[b]} from {b}'s folder, {named[a]} from {a}'s"
    return None


def _video_names_nothing(obj: dict[str, Any], shard: Path) -> str | None:
    """How the record ``obj`` (as written in ``shard``) names no video, in words, or None: its ``video`` is a
    relative path (it starts from the folder of the file holding it) naming nothing from ``shard``'s folder."""
    video = obj.get("video")
    if not isinstance(video, str) or not video or os.path.isabs(video):
        return None
    if os.path.exists(path_from_file(video, shard)):
        return None
    return f"video {shown(video)} names nothing from {shard}'s folder"


def _conflict_problems(clashes: list[tuple[str, tuple[Path, dict[str, Any]], tuple[Path, dict[str, Any]]]],
                       astray: dict[Path, str] | None = None) -> list[str]:
    """The merge's problems for the ids two shards give different content (``(id, (shard, record as written)`` of
    the first and of the other): per pair of shards, one for the records that are the same as written but name
    other files by their relative paths (each starts from its own file's folder: one shard is a copy moved away
    from the folder of the file it was cut from), and one per id whose content differs (a shard edited after its
    run); and, from ``astray`` (``{shard: how its first record's relative video names nothing from its folder}``),
    one for each shard alone whose paths start from a folder that is not the one its run wrote it in."""
    moved: dict[tuple[Path, Path], list[str]] = {}
    problems = []
    for pid, first, second in clashes:
        found = _moved_path(first, second)
        if found is None:
            problems.append(f"id {pid!r} has different content in two shards (edited after its run)")
        else:
            copy, original, where = found
            moved.setdefault((copy, original), []).append(where)
    for (copy, original), found in moved.items():
        problems.append(f"{copy} holds {len(found)} record(s) of {original} as written there, but a relative path "
                        f"starts from its own file's folder: {found[0]} (is {copy.name} a copy moved away from its "
                        f"folder?)")
    named = {copy for copy, _ in moved}
    for shard, where in (astray or {}).items():  # a shard alone: its relative paths, from where it is now
        if shard not in named:
            problems.append(f"{shard}: a relative path starts from its own file's folder, and {where} (is "
                            f"{shard.name} a copy moved away from its folder, or its video removed?)")
    return problems


def _merge(paths: list[Path], output: Path, allow_incomplete: bool, claimed) -> dict[str, Any]:
    records: dict[str, dict[str, Any]] = {}
    raw_lines: dict[str, str] = {}
    first_seen: dict[str, tuple[Path, dict[str, Any]]] = {}  # each id's first shard and record as written there
    clashes = []  # (id, first, other) for each id a later shard gives other content
    astray: dict[Path, str] = {}  # each shard's first record whose relative video names nothing from its folder
    duplicates, conflicts, invalid, truncated = 0, [], [], []
    for path in paths:
        for number, raw, ended in iter_lines(path):  # the readers' one rule for a line (data/readers.py)
            if not ended:
                truncated.append(f"{path}:{number}")
                break
            if raw is not None and not raw.strip():
                continue
            obj, problem = parse_line(path, number, raw)
            try:
                if problem is not None:
                    raise problem
                validate_record(obj, str(path), number)
            except DataError as exc:
                invalid.append(str(exc))
                continue
            text = raw.decode("utf-8")
            written = obj
            if path not in astray and (where := _video_names_nothing(obj, path)) is not None:
                astray[path] = where
            moved = _record_for_output(obj, path, output)
            if moved != obj:  # another folder: its paths stay relative to the file holding them
                obj = moved
                text = json.dumps(obj, ensure_ascii=False)
            if obj["id"] in records:  # compared as the output stores both: shards in two folders agree
                duplicates += 1
                if obj != records[obj["id"]]:
                    conflicts.append(obj["id"])
                    clashes.append((obj["id"], first_seen[obj["id"]], (path, written)))
                continue
            records[obj["id"]] = obj
            first_seen[obj["id"]] = (path, written)
            raw_lines[obj["id"]] = text.rstrip("\n")
    # a shard line that is not a valid record, or an id two shards give different content, was damaged or edited
    # after its run: the merged file would lack or arbitrarily pick records, so the set is not complete
    missing = (shard_set_problems(paths) + [f"{t}: truncated last line (a run still writing, or killed)"
                                            for t in truncated]
               + [f"{problem} (a damaged shard line: its record is not merged)" for problem in invalid]
               + _conflict_problems(clashes, astray))
    if missing and not allow_incomplete:
        raise IncompleteShardsError(f"{output}: refusing to merge an incomplete shard set: {'; '.join(missing)} "
                                    f"(or pass --allow-incomplete to merge what is there)")
    ordered = list(records.values())
    if ordered and all(isinstance(o.get("meta", {}).get("order"), list) for o in ordered):
        ordered.sort(key=_sort_key)
    # complete is true only when every input's finished run vouches for it (savi_plugin.data.provenance); an
    # input whose run's end cannot be checked (a copy without its report) leaves it null and its reason is carried
    # forward; so does an input no run wrote (hand-made, an empty plain file), which vouches for nothing
    unverified = [f"{absolute_path(p)}, where {why}" for p in paths if (why := unvouched_copy(p)) is not None]
    complete = False if missing else True if all(vouched_finished(p) for p in paths) else None
    result: dict[str, Any] = {"output": str(output), "inputs": [str(p) for p in paths], "records": len(ordered),
                              "complete": complete, "missing": missing,
                              "duplicates": duplicates, "conflicts": conflicts, "invalid": invalid,
                              "truncated": truncated}
    if unverified:
        result["unverified"] = "made by savi generate merge from " + "; and from ".join(unverified)
    run = _combine_reports([report_path(p) for p in paths])
    if run is not None:
        result["run"] = run
    stored = report_path(output)  # paths as the report stores them (savi_plugin.data.paths' rule)
    as_stored = {**result, "output": path_for_file(output, stored),
                 "inputs": [path_for_file(p, stored) for p in paths]}

    def write(fh) -> None:
        for obj in ordered:
            fh.write(raw_lines[obj["id"]] + "\n")  # byte-for-byte the shard's line

    def describe(written: Path) -> dict[str, Any]:
        result.update(vouch(written))  # the bytes it vouches for
        return {**as_stored, **vouch(written)}

    claimed.write_mark()
    # the merged file takes its name only once its report is written (a full disk names the output and leaves no
    # temporary file): never a file without the report that says whether it is complete
    write_reported(output, stored, write, describe)
    for problem in missing:
        log.warning("merge: %s", problem)
    return result


def _combine_reports(paths: list[Path]) -> dict[str, Any] | None:
    """The shards' run reports as one: their lists joined and counted by the rule every report is
    (:func:`~savi_plugin.data.run_counts.generation_counts`); None if any is missing, is not a generation run's, or
    was edited (its counts are not what its lists give)."""
    reports = []
    for path in paths:
        try:
            report = read_json(path)
        except DocumentTooLarge:
            raise
        except (OSError, ValueError):
            return None
        if not isinstance(report, dict) or report_kind(report) != "savi generate" or counts_problem(report):
            return None
        reports.append(report)
    skipped = [e for r in reports for e in r.get("skipped") or []]
    failed = [e for r in reports for e in r.get("failed") or []]
    total = {key: sum(n for r in reports if isinstance(n := r["counts"].get(key), int)) for key in
             ("items", "items_done", "pairs")}
    tagging: dict[str, int] = {}
    for r in reports:
        tags = r["counts"].get("tagging")
        for name, value in (tags.items() if isinstance(tags, dict) else ()):
            tagging[name] = tagging.get(name, 0) + (value if isinstance(value, int) else 0)
    counts = {"items": total["items"], **generation_counts(skipped, failed, total["pairs"], total["items_done"]),
              "tagging": tagging}
    return {"complete": all(r.get("complete") for r in reports), "counts": counts, "skipped": skipped,
            "failed": failed,
            "shards": [r.get("config", {}).get("shard") for r in reports]}

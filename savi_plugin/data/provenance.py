"""Where a preference file came from: the generation run that wrote it, finished or not, whether the file is still
what that run wrote, and which model made it. The one rule every consumer of a pair file asks (training, ablation,
conversion, merging), so each gives the same answer.

``savi generate`` writes a run report beside its output (``<pairs>.report.json``) when it ends, and a progress
file while it runs (looked for beside the file itself, a symlink followed: :func:`savi_plugin.data.outputs.sidecar`,
so a link to an unfinished run's output is that run's); ``savi generate merge`` and ``savi data convert`` write a report that carries their inputs'
state forward. Every such report stores the content identity of the file it vouches for (``content``: size and
SHA-256 of its bytes, :func:`savi_plugin.data.identity.file_identity`) when it is written. A file is in one of
these states:

* **unfinished** (:func:`unfinished_run`): a savi job is writing it, its run has a progress file and no report
  (or the mark of a command that writes a report last, and no report: killed, or a full disk between the two),
  its report says incomplete, its content is not what its report vouches for (edited, truncated in place, or
  another file's report copied beside it), or its report is there but unreadable (torn, damaged: named at its
  ``file:line``, never taken for "no report"). Consumers refuse it unless asked (``--allow-incomplete-data``,
  ``--allow-incomplete``). A report written by an older savi (no ``content``) is not compared.
* **unverified** (:func:`unvouched_copy`): no report or progress beside it, but its records name the generator
  that wrote them (``meta.generator``): a copy that left its report behind; or a conversion or merge of such a
  file, whose report carries that reason forward (``unverified``). Consumers warn once that whether the run
  finished cannot be checked.
* **vouched** (a report saying ``complete: true`` whose content matches) or **no run's product** (hand-made,
  downloaded): nothing to say.

Which model made the pairs (:func:`made_by`, :func:`record_models`): the generation report's model identity (by
content), carried by convert's report into formats that drop ``meta`` (TRL, RRPO); otherwise the records' own
``meta.model``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from savi_plugin.data.identity import file_identity, same_identity
from savi_plugin.data.outputs import MARK_NAME, read_mark, sidecar, sidecar_shown, writer_now
from savi_plugin.data.paths import absolute_path, name_for_file, path_for_file, path_from_file
from savi_plugin.data.run_counts import counts_problem
from savi_plugin.errors import DocumentTooLarge

log = logging.getLogger(__name__)

#: the reason a file whose bytes differ from what its report vouches for is refused
CHANGED = "its content is not what its run report vouches for (edited, truncated or another file's report)"
#: the reason a file whose run report is there but unreadable (torn by a kill, damaged) is refused
UNREADABLE = "its run report is there but unreadable, so it vouches for nothing"


class UnfinishedDataError(ValueError):
    """The preference file comes from a generation run that has not finished (one line naming its report)."""


class RunReportError(ValueError):
    """A run report that is there but cannot be read: ``<report>[:<line>]: run report: <why>`` (one line)."""


class EditedReportError(RunReportError):
    """A generation report whose counts are not what its own lists give, or whose lists hold what no run writes
    (:func:`savi_plugin.data.run_counts.counts_problem`): ``<report>: run report: <field>: <why>: the report was
    edited``."""


def load_report(path: str | Path) -> dict[str, Any]:
    """The run report at ``path``, read whole within ``$SAVI_MAX_DOCUMENT_BYTES`` and the untrusted-JSON limits:
    the one reader of a run report (the report beside a pair file, or one named by ``--run-report``). A generation
    report's counts (a merge's: its ``run``'s) are computed again from its own lists by the rule its writer used
    (:mod:`savi_plugin.data.run_counts`).

    Raises:
        RunReportError: unreadable, torn or not JSON (at its line), too deep, too large, or not a JSON object;
            :class:`EditedReportError` when its counts are not what its lists give, or a list repeats a record.
    """
    from savi_plugin.data.files import read_document
    from savi_plugin.untrusted import load_json

    def refuse(message: str, line: int | None = None) -> RunReportError:
        return RunReportError(f"{path}{f':{line}' if line else ''}: run report: {message}")

    try:
        report = load_json(read_document(path), str(path), error=refuse)
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.strerror or exc})") from None
    if not isinstance(report, dict):
        raise refuse(f"expected a JSON object, got {type(report).__name__}")
    kind = report_kind(report)
    run, at = (report, "") if kind == "savi generate" else (report.get("run"), "run.")
    if kind in ("savi generate", "savi generate merge") and isinstance(run, dict):  # a merge's: its shards' runs'
        problem = counts_problem(run, at)
        if problem is not None:
            raise EditedReportError(f"{path}: run report: {problem[0]}: {problem[1]}")
    return report


def report_problem(data: str | Path) -> str | None:
    """Why the run report beside ``data`` is there but unreadable (its :class:`RunReportError` text), or None
    (absent, or read)."""
    path = sidecar(data, "report.json")
    if not os.path.lexists(path):
        return None
    try:
        load_report(path)
    except RunReportError as exc:
        return str(exc)
    return None


def run_report(data: str | Path) -> dict[str, Any] | None:
    """The run report stored beside ``data``, or None (none, or unreadable: :func:`report_problem` says why, and
    :func:`run_problem` refuses the file for it)."""
    try:
        return load_report(sidecar(data, "report.json"))
    except RunReportError:
        return None


#: the run reports savi writes, by the command that writes one -> the keys its writer always puts in it (the
#: generation run's :func:`~savi_plugin.generators.runner.build_report` and configuration, a conversion's carried
#: source, a merge's inputs and record count, ``savi train``'s ``train_report.json``), in the order they are told apart
REPORT_KINDS: dict[str, tuple[str, ...]] = {
    "savi generate": ("counts", "config"),
    "savi data convert": ("converted_from",),
    "savi generate merge": ("inputs", "records"),
    "savi train": ("dataset", "log_history"),
}


def report_kind(report: dict[str, Any]) -> str | None:
    """The command that wrote ``report`` (one of :data:`REPORT_KINDS`: its writer's keys are all there), or None
    (not one of ours)."""
    return next((kind for kind, keys in REPORT_KINDS.items() if all(key in report for key in keys)), None)


def not_a_report(report: dict[str, Any]) -> str:
    """Why ``report`` (of no :func:`report_kind`) is no run report, naming what is missing: for each kind, the keys
    its writer puts in a report that this document lacks."""
    lacks = "; ".join(f"{kind}: {', '.join(key for key in keys if key not in report)}"
                      for kind, keys in REPORT_KINDS.items())
    return f"not a report savi wrote (it lacks the keys each writer puts in one -- {lacks})"


def vouch(data: str | Path) -> dict[str, Any]:
    """The fields a report stores about the file it vouches for (its content identity), read now."""
    return {"content": file_identity(data)}


def content_changed(data: str | Path, report: dict[str, Any]) -> bool:
    """Whether ``data``'s bytes differ from the content ``report`` stored (False when it stored none)."""
    stored = report.get("content")
    return isinstance(stored, dict) and not same_identity(stored, file_identity(data))


def run_problem(data: str | Path) -> str | None:
    """Why ``data`` is not a finished run's product as its report vouched for it (one phrase), or None: the
    report's content mismatch, no report beside a progress file, or a report that says incomplete. Does not
    look for a live writer (:func:`unfinished_run` does)."""
    data = Path(data)
    unreadable = report_problem(data)
    if unreadable is not None:  # there, but torn or damaged: it vouches for nothing, and is not "no report"
        return f"{UNREADABLE}: {unreadable}"
    report = run_report(data)
    if report is None:
        if sidecar(data, "progress.jsonl").exists():
            return f"its generation run has not finished (no {sidecar_shown(data, 'report.json')})"
        command = _unreported(data)
        if command is not None:
            return (f"the {command} run that wrote it has not finished (its mark {sidecar_shown(data, _MARK)} is "
                    f"there, no {sidecar_shown(data, 'report.json')}: it stopped before writing its report, e.g. "
                    f"killed or on a full disk)")
        return None
    if content_changed(data, report):
        return f"{CHANGED}: {sidecar_shown(data, 'report.json')}"
    if report.get("complete", True) is not False:  # true; or no claim (null: a merge of unverified files)
        return None
    counts = report.get("counts") or {}
    if "items" in counts:
        retry = counts.get("items_to_retry") or 0
        missing = counts.get("pairs_missing") or 0
        return (f"its run report says incomplete ({counts.get('items_final', counts.get('items_done'))} of "
                f"{counts.get('items')} items finished" + (f", {retry} failed for a transient reason and will be "
                                                            f"retried" if retry else "")
                + (f", {missing} pair(s) it wrote are not in the file and will be generated again" if missing
                   else "") + ")")
    return f"its run report says incomplete ({'; '.join(map(str, report.get('missing') or [])) or 'see the report'})"


#: the commands that write a run report beside their file output last, once it is complete
REPORTING = ("savi generate", "savi generate merge", "savi data convert")
_MARK = MARK_NAME.lstrip(".")


def _unreported(data: str | Path) -> str | None:
    """The command (:data:`REPORTING`) whose mark stands beside ``data`` with no run report: the file is where that
    command wrote it, and the report it writes last is missing (a kill, a full disk between data and report)."""
    mark = read_mark(data, False)
    command = mark.get("command") if isinstance(mark, dict) else None
    return command if command in REPORTING and not os.path.lexists(sidecar(data, "report.json")) else None


def unfinished_run(data: str | Path) -> str | None:
    """Why ``data``'s generation run is unfinished (one phrase), or None when it finished or is no run's product."""
    holder = writer_now(data)  # a generation extending it, a merge
    if holder is not None:
        return f"a savi job is writing it now ({holder})"
    return run_problem(data)


def _first_generator(data: Path) -> str | None:
    """``meta.generator`` of ``data``'s first record, or None: read by the one reader of a pair file's records
    (:func:`savi_plugin.data.readers.iter_json_objects`), so every form a reader accepts (one record per line, a
    JSON array on one line or many) names its generator alike. Unreadable lines are the readers' to report."""
    from savi_plugin.data.readers import iter_json_objects

    try:
        first = next((obj for _, obj in iter_json_objects(data, errors=[])), None)
    except DocumentTooLarge:
        raise
    except (OSError, ValueError):
        return None
    meta = first.get("meta") if isinstance(first, dict) else None
    generator = meta.get("generator") if isinstance(meta, dict) else None
    return generator if isinstance(generator, str) else None


def unvouched_copy(data: str | Path) -> str | None:
    """Why whether ``data``'s generation run finished cannot be checked (one phrase), or None.

    A file with no report or progress beside it whose first record names its generator (a copy that left them
    behind, or a file edited out of one); or a file whose convert or merge report carries that reason forward
    from its input (``unverified``)."""
    data = Path(data)
    if report_problem(data) is not None:  # a report is there, unreadable: run_problem's to name, not "none beside"
        return None
    report = run_report(data)
    if report is not None and isinstance(report.get("unverified"), str):
        return report["unverified"]
    if report is not None and "complete" in report or sidecar(data, "progress.jsonl").exists():
        return None
    generator = _first_generator(data)
    if generator is None:
        return None
    runs = _run_settings(data)
    if len(runs) > 1:
        return (f"its records were written by {len(runs)} savi generate runs (their settings differ: "
                f"{'; '.join(runs[:3])}{'; ...' if len(runs) > 3 else ''}), joined without a report")
    return (f"its records were written by savi generate (generator {generator}) but no run report is beside it "
            f"({sidecar_shown(data, 'report.json')})")


#: the record ``meta`` keys every record of one generation run shares (``runner.run_generation``'s base meta)
_RUN_META = ("generator", "prompts_version", "model", "backend", "num_frames", "seed", "adapter")


def _run_settings(data: Path) -> list[str]:
    """The distinct generation-run settings (:data:`_RUN_META`) of ``data``'s records, in order of first
    appearance, each as ``key=value`` text: more than one when runs were joined (``cat a.jsonl b.jsonl``)."""
    from savi_plugin.data.readers import iter_json_objects

    seen: dict[str, None] = {}
    try:
        for _, obj in iter_json_objects(data, errors=[]):  # bad lines are the readers' to report, not ours
            meta = obj.get("meta") if isinstance(obj, dict) else None
            if isinstance(meta, dict) and "generator" in meta:
                seen.setdefault(", ".join(f"{k}={meta[k]}" for k in _RUN_META if k in meta), None)
    except DocumentTooLarge:
        raise
    except (OSError, ValueError):
        return []
    return list(seen)


def carried_state(src: str | Path, why: str | None, command: str) -> dict[str, Any]:
    """What a file made from ``src`` by ``command`` (convert, merge) says in its report about where its records
    came from: ``complete: false`` and ``missing`` when ``src``'s run is unfinished (``why``, allowed), ``complete:
    true`` when a finished run's report vouches for ``src``, ``unverified`` (the reason) when that cannot be
    checked, nothing when ``src`` is no run's product."""
    part = shard_part(src)  # one shard of several stays one shard through every conversion
    if why is not None:
        return {"complete": False, "missing": [why], **({"part": part} if part else {})}
    if part:
        return {"complete": True, "part": part} if vouched_finished(src) else {"part": part}
    unverified = unvouched_copy(src)
    if unverified is not None:
        carried = (run_report(src) or {}).get("unverified") == unverified
        return {"unverified": unverified if carried else f"made by {command} from {os.path.abspath(src)}, where "
                                                          f"{unverified}"}
    return {"complete": True} if vouched_finished(src) else {}


def vouched_finished(src: str | Path) -> bool:
    """Whether a finished run's report beside ``src`` vouches for it (``complete: true``; a report whose content
    is not ``src``'s is :func:`unfinished_run`'s to name). A copy without its report, or a file no run wrote
    (hand-made, an empty plain file), is vouched for by nothing: a file made from it cannot say complete."""
    return (run_report(src) or {}).get("complete") is True


def _resolved(stored: Any, holder: str | Path) -> str | None:
    """A model stored in ``holder`` (a path by the paths rule, or a hub id) as a comparable name: the real path of
    a local folder, else the name as stored."""
    if not isinstance(stored, str) or not stored:
        return None
    path = path_from_file(stored, holder)
    return os.path.realpath(path) if os.path.exists(path) else stored


def _carried(name: Any, source: str | Path, holder: str | Path) -> Any:
    """A model ``name`` that the file ``source`` names (:func:`_resolved`), as the file ``holder`` (in another
    folder) stores it: a local path by the paths rule; a relative path spelled as one (``./``, ``../``) that names
    nothing from ``source`` by the place it names from there, absolute -- carried as it stands it would name another
    place from ``holder``'s folder; a hub id as given."""
    if isinstance(name, str) and name.startswith(("./", "../")) and not os.path.exists(path_from_file(name, source)):
        return absolute_path(path_from_file(name, source))
    return name_for_file(name, holder)


def record_model_for(stored: Any, src: str | Path, dst: str | Path) -> Any:
    """A record's ``meta.model``, read from the file ``src``, as the file ``dst`` stores it so that it names the
    same model from there (:func:`_resolved`, the rule training compares it by): a local folder by the paths rule
    for ``dst``; a relative path naming nothing from ``src`` as :func:`_carried` carries it; a hub id as given."""
    if not isinstance(stored, str) or not stored:
        return stored
    here = path_from_file(stored, src)
    if os.path.exists(here):
        return path_for_file(here, dst)
    return absolute_path(here) if stored.startswith(("./", "../")) else stored


def made_by(data: str | Path) -> dict[str, Any] | None:
    """The model that generated ``data``'s pairs as a report beside it names it: ``{"model": real path or hub id,
    "identity": model identity by content}`` (the generation run's, or carried by a conversion), or None."""
    report = run_report(data) or {}
    rpath = sidecar(data, "report.json")
    if report_kind(report) == "savi generate":
        config = report.get("config") if isinstance(report.get("config"), dict) else {}
        identity = (config.get("identity") or {}).get("model") if isinstance(config.get("identity"), dict) else None
        if isinstance(identity, dict):
            return {"model": _resolved(config.get("model"), rpath), "identity": identity}
    carried = report.get("model")
    if isinstance(carried, dict) and isinstance(carried.get("identity"), dict):
        return {"model": _resolved(carried.get("path"), rpath), "identity": carried["identity"]}
    return None


def record_models(data: str | Path) -> dict[str, int]:
    """How many records of ``data`` each model generated, by their ``meta.model`` (resolved: :func:`_resolved`);
    for a file whose format drops ``meta``, as its convert report carried them (``record_models``). A cheap scan
    of every JSON line (or of a JSON array); unreadable lines are left to the reader that trains on them."""
    report = run_report(data) or {}
    rpath = sidecar(data, "report.json")
    carried = report.get("record_models")
    if isinstance(carried, dict):
        out: dict[str, int] = {}
        for stored, n in carried.items():
            name = _resolved(stored, rpath)
            if name is not None and isinstance(n, int):
                out[name] = out.get(name, 0) + n
        return out
    counts: dict[str, int] = {}

    def count(obj: Any) -> None:
        meta = obj.get("meta") if isinstance(obj, dict) else None
        name = _resolved(meta.get("model"), data) if isinstance(meta, dict) else None
        if name is not None:
            counts[name] = counts.get(name, 0) + 1

    from savi_plugin.data.readers import iter_json_objects

    try:
        for _, obj in iter_json_objects(data, errors=[]):  # a JSON array or JSONL; bad lines left to the readers
            count(obj)
    except DocumentTooLarge:
        raise
    except (OSError, ValueError):
        return {}
    return counts


def carried_model(src: str | Path, holder: str | Path) -> dict[str, Any]:
    """What a conversion of ``src`` stores in its report ``holder`` about the model that made the pairs (the
    target format may drop ``meta``): ``model`` (path by the paths rule, identity) when a report beside ``src``
    names it, else ``record_models`` (each record model's count)."""
    source = made_by(src)
    if source is not None:
        path = source["model"]
        return {"model": {"path": _carried(path, sidecar(src, "report.json"), holder) if path else None,
                          "identity": source["identity"]}}
    models = record_models(src)
    return {"record_models": {_carried(name, src, holder): n for name, n in models.items()}} if models else {}


def shard_part(data: str | Path) -> str | None:
    """``one shard (0 of 2) of a sharded savi generate run`` when ``data``'s run report is one shard's of several
    (``--shard i/n``, n > 1: its report is complete for that shard only), else None."""
    report = run_report(data) or {}
    shard = report.get("config", {}).get("shard") if isinstance(report.get("config"), dict) else None
    if (isinstance(shard, list) and len(shard) == 2 and all(type(n) is int for n in shard) and shard[1] > 1):
        return f"one shard ({shard[0]}/{shard[1]}) of a sharded savi generate run: the other shards' pairs are not in it"
    part = report.get("part")  # carried by a conversion of one shard (carried_state)
    return part if isinstance(part, str) and part.startswith("one shard") else None


def check_finished(data: str | Path, *, allow_incomplete: bool = False, flag: str | None = None,
                   use: str = "", whole: bool = False) -> str | None:
    """Refuse ``data`` when its generation run is unfinished or its content is not what its report vouches for,
    unless ``allow_incomplete`` (then the reason is returned for the caller to say); warn once when whether its
    run finished cannot be checked (:func:`unvouched_copy`).

    Args:
        flag: the option that allows it (``--allow-incomplete-data``); None: the command has none.
        use: what the caller would do with it (``train on what is there``).
        whole: the caller consumes the whole run's pairs (training): one shard of several is refused too
            (:func:`shard_part`).

    Raises:
        UnfinishedDataError: ``<data>: <why>; <remedy>, or pass <flag> to <use>``.
    """
    why = unfinished_run(data) or (shard_part(data) if whole else None)
    if why is not None and not allow_incomplete:
        allow = f", or pass {flag} to {use}" if flag else ""
        report = run_report(data) or {}
        remedy = ("merge every shard with savi generate merge and use the merged file" if why.startswith("one shard")
                  else "restore the file its report was written for, or regenerate it" if why.startswith(CHANGED) else
                  "restore its run report, or regenerate the file" if why.startswith(UNREADABLE) else
                  "restore or regenerate the shards it names and merge again" if "inputs" in report and "missing"
                  in report else "wait for it to finish" if why.startswith("a savi job") else
                  f"re-run the same {_unreported(data) or 'savi generate'} command to finish it")
        raise UnfinishedDataError(f"{data}: {why}; {remedy}{allow}")
    unverified = unvouched_copy(data) if why is None else None
    if unverified is not None:
        remedy = ("no one run report can vouch for it: to check that each run finished, give each run's own file "
                  "(its report beside it) to savi data convert, which refuses an unfinished run"
                  if "joined without a report" in unverified else
                  "if it is a copy of one run's output, copy that run's report beside it; if it joins the shards of "
                  "one run, merge the shard files with savi generate merge instead" if unverified.startswith(
                      "its records") else
                  "convert or merge again from the run's own file, with its report beside it")
        log.warning("%s: %s, so whether that run finished cannot be checked; %s", data, unverified, remedy)
    return why

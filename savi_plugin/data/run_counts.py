"""The counts of a generation run report (``savi generate``'s ``<pairs>.report.json``, and the ``run`` a merge
carries): a pure function of the outcomes the report lists, so the writer and every reader compute them by one rule.

A report lists each outcome that made no pair as ``{"item", "id", "reason", "detail"}``, under ``skipped``
(filtered out by design) or ``failed`` (an error); its pairs are counted, not listed. From those lists, the number
of pairs and the number of items done, :func:`generation_counts` gives

- ``skipped``, ``failed``: the lists' lengths;
- ``by_reason``: the entries under each listed reason, and the pairs under :data:`WRITTEN`;
- ``items_to_retry``: the items with a listed outcome of a machine error (:data:`RETRIED_REASONS`), which the next
  run retries; ``items_final``: the other items done.

The writer (:func:`savi_plugin.generators.runner.build_report`, and a merge summing its shards,
:func:`savi_plugin.generators.merge._combine_reports`) stores what this function gives; the one reader of a run
report (:func:`savi_plugin.data.provenance.load_report`) computes it again from the report's own lists
(:func:`counts_problem`), so counts that differ mean the report was edited. A count a report lacks is not compared
(only ``skipped`` and ``failed``, which every writer stores, must be there).

An outcome is one would-be record (:class:`savi_plugin.generators.base.Outcome`): one item lists a record id at
most once, and an outcome without a record id (the item failed before any record was numbered) is its item's only
one. :func:`repeated` names the entry that breaks this; the runner refuses a generator's outcomes, a progress row
and a report's lists by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: the reason ``counts.by_reason`` counts every pair under
WRITTEN = "written"
#: failure reasons of machine errors, which do not describe the input: the item is retried by the next run
RETRIED_REASONS = ("generation_error", "io_error")
#: the counts :func:`generation_counts` derives from a report's lists, in the order a reader compares them
DERIVED = ("skipped", "failed", "by_reason", "items_to_retry", "items_final")
#: the counts every writer of a generation report has stored: compared even when the report lacks them
ALWAYS_STORED = ("skipped", "failed")


def is_retried(outcome: dict[str, Any]) -> bool:
    """Whether a skipped or failed outcome (a progress row's, or a report's entry) is a machine error that the
    next run retries (:data:`RETRIED_REASONS`)."""
    return outcome.get("reason") in RETRIED_REASONS


def generation_counts(skipped: Sequence[dict[str, Any]], failed: Sequence[dict[str, Any]], pairs: int,
                      items_done: int) -> dict[str, Any]:
    """The counts of a generation report whose lists are ``skipped`` and ``failed``, for ``pairs`` pairs made from
    ``items_done`` items (the module's rules: lengths, reasons, items to retry)."""
    listed = [*skipped, *failed]
    by_reason: dict[str, int] = {}
    for entry in listed:
        reason = entry.get("reason")
        by_reason[reason] = by_reason.get(reason, 0) + 1
    if pairs:
        by_reason[WRITTEN] = by_reason.get(WRITTEN, 0) + pairs
    retry = len({entry.get("item") for entry in listed if is_retried(entry)})
    return {"items_done": items_done, "items_final": items_done - retry, "items_to_retry": retry, "pairs": pairs,
            "skipped": len(skipped), "failed": len(failed), "by_reason": dict(sorted(by_reason.items()))}


def repeated(outcomes: Sequence[dict[str, Any]]) -> tuple[int, int] | None:
    """``(earlier, later)`` positions among one item's ``outcomes`` of an outcome no run writes twice: a record id
    given twice, or an outcome without a record id beside another one; None when each outcome is one record's."""
    seen: dict[Any, int] = {}
    for k, outcome in enumerate(outcomes):
        key = outcome.get("id")
        if k and (key is None or None in seen):
            return 0, k
        if key in seen:
            return seen[key], k
        seen[key] = k
    return None


def _same(stored: Any, given: Any) -> bool:
    """Equal as JSON values, types included (``true`` is not 1, ``1.0`` is not 1)."""
    if isinstance(given, dict):
        return (isinstance(stored, dict) and stored.keys() == given.keys()
                and all(_same(stored[key], value) for key, value in given.items()))
    return type(stored) is type(given) and stored == given


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entries(value: Any, field: str) -> tuple[list[dict[str, Any]] | None, tuple[str, str] | None]:
    """A report's list as the writer stores it (absent: empty), or ``(field, why)`` it is not one."""
    if value is None:
        return [], None
    if not isinstance(value, list):
        return None, (field, f"expected a list of items, got {type(value).__name__}")
    for k, entry in enumerate(value):
        if not isinstance(entry, dict):
            return None, (f"{field}[{k}]", f"expected an object, got {type(entry).__name__}")
        for key, may_be_null in (("item", False), ("id", True), ("reason", False)):
            if not (isinstance(entry.get(key), str) or (may_be_null and entry.get(key) is None)):
                return None, (f"{field}[{k}].{key}", f"expected text, got {type(entry.get(key)).__name__}")
    return value, None


def counts_problem(run: dict[str, Any], at: str = "") -> tuple[str, str] | None:
    """``(field, why)`` when the counts of a generation report (or of the ``run`` a merge carries, fields then
    named under ``at``, ``"run."``) are not what its own lists give by :func:`generation_counts`, or when a list
    holds what no run writes (an entry of the wrong shape, an item's record listed twice: :func:`repeated`); None
    when they agree. Counts the report lacks are not compared, except :data:`ALWAYS_STORED`."""
    lists = {}
    for status in ("skipped", "failed"):
        lists[status], problem = _entries(run.get(status), at + status)
        if problem is not None:
            return problem
    counts = run.get("counts")
    if not isinstance(counts, dict):
        return f"{at}counts", f"expected an object, got {type(counts).__name__}"
    places: dict[str, list[tuple[str, int]]] = {}  # item -> its entries, (list, position)
    for status in ("skipped", "failed"):
        for k, entry in enumerate(lists[status]):
            places.setdefault(entry["item"], []).append((status, k))
    for item, at_item in places.items():
        twice = repeated([lists[status][k] for status, k in at_item])
        if twice is not None:
            (s1, k1), (s2, k2) = at_item[twice[0]], at_item[twice[1]]
            record, first = lists[s2][k2]["id"], f"first at {at}{s1}[{k1}]"
            if record is not None and lists[s1][k1]["id"] is not None:
                why = f"item {item!r}'s record {record!r} is listed again ({first}), which no run writes"
            else:
                why = (f"item {item!r} is listed again ({first}), and an outcome without a record id is its item's "
                       f"only one")
            return f"{at}{s2}[{k2}]", f"{why}: the report was edited"
    pairs, items_done = counts.get("pairs"), counts.get("items_done")
    given = generation_counts(lists["skipped"], lists["failed"], pairs if _whole(pairs) else 0,
                              items_done if _whole(items_done) else 0)
    for key in DERIVED:
        needs = {"by_reason": pairs, "items_to_retry": items_done, "items_final": items_done}.get(key, 0)
        if (key not in counts and key not in ALWAYS_STORED) or not _whole(needs):
            continue
        stored = counts.get(key)
        if not _same(stored, given[key]):
            why = f"{stored!r} is not what its lists give ({given[key]!r}): the report was edited"
            return f"{at}counts.{key}", why
    return None

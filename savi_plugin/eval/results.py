"""The counts every result carries next to accuracy, summed over a whole lmms-eval run."""

from __future__ import annotations

#: Samples scored wrong for a reason other than a wrong answer (metrics of every savi_ task).
COUNTS = ("unparsed", "missing_video", "bad_video")


def overall_counts(results_json: dict) -> dict[str, int]:
    """``{count: total}`` over the run's top-level tasks (groups count once, not again through their subtasks).

    Args:
        results_json: lmms-eval's ``*_results.json`` content (``results``, ``groups``, ``group_subtasks``).
    """
    results = {**results_json.get("results", {}), **results_json.get("groups", {})}
    inside = {sub for subs in results_json.get("group_subtasks", {}).values() for sub in subs}
    totals = dict.fromkeys(COUNTS, 0)
    for task, metrics in results.items():
        if task in inside:
            continue
        for count in COUNTS:
            value = metrics.get(f"{count},none")
            if isinstance(value, (int, float)):
                totals[count] += int(value)
    return totals

"""Where a preference file came from: the generation run that wrote it, finished or not, and which model made it.

``savi generate`` writes a run report beside its output (``<pairs>.report.json``) when it ends, and a progress
file while it runs; ``savi generate merge`` writes a report that says whether the shard set was complete. A file
with neither is not a generation run's product (hand-made, downloaded), or a copy of one that left its report
behind: its records then still say which generator wrote them (``meta.generator``), and consumers say once that
whether that run finished cannot be checked (:func:`unvouched_copy`). Every consumer of a pair file that would make it look complete -- training on it, converting it into a file that
has no report -- asks :func:`unfinished_run` first.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from savi_plugin.data.outputs import sidecar, writer_now

log = logging.getLogger(__name__)


class UnfinishedDataError(ValueError):
    """The preference file comes from a generation run that has not finished (one line naming its report)."""


def run_report(data: str | Path) -> dict[str, Any] | None:
    """The generation run report stored beside ``data``, or None (none, unreadable, or not an object)."""
    try:
        report = json.loads(sidecar(data, "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) else None


def unfinished_run(data: str | Path) -> str | None:
    """Why ``data``'s generation run is unfinished (one phrase), or None when it finished or is no run's product."""
    data = Path(data)
    holder = writer_now(data)  # a generation extending it, a merge
    if holder is not None:
        return f"a savi job is writing it now ({holder})"
    report = run_report(data)
    if report is None and not sidecar(data, "progress.jsonl").exists():
        return None
    if report is not None and report.get("complete"):
        return None
    if report is None:
        return f"its generation run has not finished (no {sidecar(data, 'report.json').name})"
    counts = report.get("counts") or {}
    if "items" in counts:
        return (f"its run report says incomplete ({counts.get('items_final')} of {counts.get('items')} items "
                f"finished)")
    return f"its run report says incomplete ({'; '.join(map(str, report.get('missing') or [])) or 'see the report'})"


def unvouched_copy(data: str | Path) -> str | None:
    """The generator named by ``data``'s first record when ``data`` has no run report or progress beside it (a copy
    that left them behind, or a file edited out of one), else None. Reads the first line only."""
    data = Path(data)
    if sidecar(data, "report.json").exists() or sidecar(data, "progress.jsonl").exists():
        return None
    try:
        with open(data, encoding="utf-8") as f:
            first = json.loads(f.readline(1 << 20))
    except (OSError, ValueError):
        return None
    meta = first.get("meta") if isinstance(first, dict) else None
    generator = meta.get("generator") if isinstance(meta, dict) else None
    return generator if isinstance(generator, str) else None


def check_finished(data: str | Path, *, allow_incomplete: bool = False, flag: str | None = None,
                   use: str = "") -> str | None:
    """Refuse ``data`` when its generation run is unfinished, unless ``allow_incomplete`` (then the reason is
    returned for the caller to say).

    Args:
        flag: the option that allows it (``--allow-incomplete-data``); None: the command has none.
        use: what the caller would do with it (``train on what is there``).

    Raises:
        UnfinishedDataError: ``<data>: <why>; re-run the same savi generate command to finish it, or pass <flag>
            to <use>``.
    """
    why = unfinished_run(data)
    if why is not None and not allow_incomplete:
        allow = f", or pass {flag} to {use}" if flag else ""
        report = run_report(data) or {}
        remedy = ("restore or regenerate the shards it names and merge again" if "inputs" in report and "missing"
                  in report else "wait for it to finish" if why.startswith("a savi job") else
                  "re-run the same savi generate command to finish it")
        raise UnfinishedDataError(f"{data}: {why}; {remedy}{allow}")
    generator = unvouched_copy(data) if why is None else None
    if generator is not None:
        log.warning("%s: its records were written by savi generate (generator %s) but no run report is beside it "
                    "(%s), so whether that run finished cannot be checked; copy the report beside it", data,
                    generator, sidecar(data, "report.json").name)
    return why

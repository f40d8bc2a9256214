"""Which lmms-eval task names exist, without loading lmms-eval's task registry or a model.

lmms-eval's ``TaskManager`` indexes every task YAML by importing and parsing it (~16 s of CPU for its ~2000
files). The names a run may ask for are the scalar ``task:``, ``group:`` and ``tag:`` values of those YAMLs
(lmms-eval's own rule: a YAML whose ``task`` is a string defines that task; a ``group`` names a group; a ``tag``
groups tasks), so they are read here from the files' text, in ~0.4 s: our task folder
(:func:`savi_plugin.eval.registration.tasks_path`) and lmms-eval's built-in ``lmms_eval/tasks`` folder.
Checked against ``TaskManager().all_tasks`` of lmms-eval 0.7.3: every savi task, group and tag is found, and
all but a handful of built-ins (tasks whose names only Python code generates) are.

:func:`check_task_names` refuses a name found in neither (a configuration error naming the key and the closest
known names) -- ``savi align --dry-run`` and ``savi align`` call it before anything runs.
"""

from __future__ import annotations

import difflib
import functools
import re
from pathlib import Path

_KEY = re.compile(r"""^["']?(task|group|tag)["']?\s*:\s*(.*?)\s*(?:#.*)?$""")
_ITEM = re.compile(r"^\s+-\s*(.+?)\s*(?:#.*)?$")


def _clean(value: str) -> str:
    return value.strip().strip("'\"").strip()


def scan_task_names(folder: str | Path) -> set[str]:
    """Task, group and tag names declared by the YAML files under ``folder``."""
    names: set[str] = set()
    for path in Path(folder).rglob("*.yaml"):
        try:
            lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
        except OSError:
            continue
        for i, line in enumerate(lines):
            match = _KEY.match(line)
            if not match:
                continue
            key, value = match.groups()
            if value.startswith("["):  # tag: [a, b]; task: [list] names the members of a group, not new tasks
                if key == "tag":
                    names.update(v for v in map(_clean, value.strip("[]").split(",")) if v)
            elif value and not value.startswith(("!", "{", "|", ">")):
                names.add(_clean(value))
            elif key == "tag":
                for item in lines[i + 1:]:
                    found = _ITEM.match(item)
                    if not found:
                        break
                    names.add(_clean(found.group(1)))
    names.discard("")
    return names


@functools.cache
def _shipped_task_names() -> frozenset[str]:
    """Our task folder's names and lmms-eval's built-in ones (empty when lmms-eval is not installed)."""
    from savi_plugin.eval.registration import tasks_path

    names = scan_task_names(tasks_path())
    try:
        import lmms_eval
    except ImportError:
        return frozenset()
    return frozenset(names | scan_task_names(Path(lmms_eval.__file__).parent / "tasks"))


def known_task_names() -> frozenset[str]:
    """Every task name lmms-eval will find with our model: ours, lmms-eval's built-in ones, and those of the
    benchmarks other distributions register (``savi_plugin.benchmarks``); empty when lmms-eval is not installed."""
    from savi_plugin.eval.registration import benchmark_task_folders

    shipped = _shipped_task_names()
    if not shipped:
        return shipped
    extra: set[str] = set()
    for folder in benchmark_task_folders():
        extra |= scan_task_names(folder)
    return shipped | extra


def check_task_names(tasks: list[str], key: str = "eval.tasks", source: str | None = None) -> None:
    """Refuse a task name lmms-eval would not find.

    Raises:
        ConfigError: ``source: eval.tasks[i]: unknown lmms-eval task 'x'; did you mean ...``.
    """
    from savi_plugin.config.values import ConfigError

    known = known_task_names()
    if not known:  # lmms-eval not installed: the eval step names that itself
        return
    for i, name in enumerate(tasks):
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else "; `lmms-eval --tasks list` lists them"
            raise ConfigError(f"{key}[{i}]", f"unknown lmms-eval task {name!r} (neither a savi task nor an "
                                             f"lmms-eval built-in){hint}", source)

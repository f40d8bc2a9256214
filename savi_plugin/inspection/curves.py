"""Training curves of any ``savi train`` run: loss, reward margins, KL to the reference and the share of pairs
whose margin is positive (``rewards/accuracies``), per optimizer step, from the Trainer's log history.

The log history is read from the run's ``train_report.json`` when the run finished, else from the newest
``checkpoint-*/trainer_state.json`` (a run still going, or killed), else from a ``trainer_state.json`` in the
folder itself.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from savi_plugin.data.files import file_problem, read_document
from savi_plugin.untrusted import load_json

#: panels: title -> the metric names drawn in it (training and evaluation)
PANELS = {
    "loss": ("loss", "eval_loss"),
    "reward margin (chosen - rejected)": ("rewards/margins", "eval_rewards/margins"),
    "rewards": ("rewards/chosen", "rewards/rejected"),
    "KL(ref || policy) on the chosen response": ("kl/chosen", "eval_kl/chosen"),
    "accuracy of the margin's sign": ("rewards/accuracies", "eval_rewards/accuracies"),
}


class NoLogHistory(ValueError):
    """The folder holds no log history to plot; the message names where it looked."""


def read_log_history(run_dir: str | Path) -> tuple[list[dict[str, Any]], Path]:
    """The run's log history and the file it came from."""
    run_dir = Path(run_dir)
    candidates = [run_dir / "train_report.json"]
    checkpoints = sorted((p for p in run_dir.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name)),
                         key=lambda p: int(p.name.split("-")[1]), reverse=True)
    candidates += [p / "trainer_state.json" for p in checkpoints] + [run_dir / "trainer_state.json"]
    for path in candidates:
        problem = file_problem(path, "log history file")  # a FIFO or folder is named as what it is, never opened
        if problem == "file not found":
            continue
        if problem is not None:
            raise NoLogHistory(f"{path}: {problem}")
        def refuse(message, line=None, path=path):  # the untrusted-input boundary's limits, naming the file
            return NoLogHistory(f"{path}{f':{line}' if line else ''}: {message}")

        document = load_json(read_document(path), str(path), error=refuse)
        if not isinstance(document, dict):
            raise NoLogHistory(f"{path}: not a JSON object with a log_history ({type(document).__name__})")
        history = document.get("log_history")
        if isinstance(history, list) and history:
            return [row for row in history if isinstance(row, dict)], path
    raise NoLogHistory(f"{run_dir}: no train_report.json, checkpoint-*/trainer_state.json or trainer_state.json "
                       f"with a log history (is it a `savi train` output folder?)")


#: the largest step a log history row may name (README: every count at most 2^32-1)
MAX_STEP = 2**32 - 1
#: the largest magnitude of a plotted value: the Trainer logs float32 statistics, so a value beyond float32's
#: largest finite number was not logged by it (and two such values of opposite sign overflow an axis' span)
MAX_VALUE = 3.4028234663852886e38


def check_history(history: list[dict[str, Any]], source: str | Path) -> None:
    """Refuse a log history that no Trainer wrote: a row's ``step`` not a whole number in [0, :data:`MAX_STEP`],
    or a plotted metric (:data:`PANELS`) that is not a number within +-:data:`MAX_VALUE` (null: not logged).

    Raises:
        NoLogHistory: ``<file>: log_history[<i>].<field>: <why>`` (one line).
    """
    names = {n for names in PANELS.values() for n in names}
    for i, row in enumerate(history):
        step = row.get("step", 0)
        if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= MAX_STEP:
            raise NoLogHistory(f"{source}: log_history[{i}].step: must be a whole number of steps in [0, {MAX_STEP}], "
                               f"got {step!r:.40}")
        for name in names & row.keys():
            value = row[name]
            if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                          and abs(value) <= MAX_VALUE):
                raise NoLogHistory(f"{source}: log_history[{i}].{name}: must be a number within +-{MAX_VALUE:.4g} "
                                   f"(float32's range, what the Trainer logs) or null, got {value!r:.40}")


def series(history: list[dict[str, Any]], name: str) -> list[tuple[int, float]]:
    """``(step, value)`` of metric ``name``, finite values only."""
    import math

    return [(int(row.get("step", 0)), float(row[name])) for row in history
            if isinstance(row.get(name), (int, float)) and math.isfinite(row[name])]


def plot_training(run_dir: str | Path, out: str | Path) -> tuple[Path, list[str]]:
    """Write the training curves of ``run_dir`` to the PNG ``out``; returns it and the panels drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history, source = read_log_history(run_dir)
    check_history(history, source)
    panels = {title: {n: series(history, n) for n in names} for title, names in PANELS.items()}
    panels = {title: lines for title, lines in panels.items() if any(lines.values())}
    if not panels:
        raise NoLogHistory(f"{source}: its log history has none of the metrics "
                           f"{', '.join(n for names in PANELS.values() for n in names)}")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels.items()):
        for name, points in lines.items():
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, marker="." if len(points) < 50 else None, label=name)
        if "margin" in title or "accuracy" in title:
            ax.axhline(0 if "margin" in title else 0.5, color="grey", lw=0.5)
        ax.set(title=title, xlabel="optimizer step")
        ax.legend(fontsize=7)
    fig.suptitle(str(source), fontsize=8)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out, list(panels)

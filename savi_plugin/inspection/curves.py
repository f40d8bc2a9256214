"""Training curves of any ``savi train`` run: loss, reward margins, KL to the reference and the share of pairs
whose margin is positive (``rewards/accuracies``), per optimizer step, from the Trainer's log history.

The log history is read from the run's ``train_report.json`` when the run finished, else from the newest
``checkpoint-*/trainer_state.json`` of the run (a run still going, or killed: a checkpoint another run wrote is
refused by the rule a resume uses), else from a ``trainer_state.json`` in the folder itself.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from savi_plugin.data.files import file_problem, read_document
from savi_plugin.data.metric_ranges import MAX_STEP, logged_range
from savi_plugin.data.step_order import StepOrder
from savi_plugin.untrusted import load_json

#: the panels drawn: title -> the metric names drawn in it (training and evaluation); each number's range is
#: :func:`savi_plugin.data.metric_ranges.logged_range`'s, the one table of what training logs
PANELS: dict[str, tuple[str, ...]] = {
    "loss": ("loss", "eval_loss"),
    "reward margin (chosen - rejected)": ("rewards/margins", "eval_rewards/margins"),
    "rewards": ("rewards/chosen", "rewards/rejected"),
    "KL(ref || policy) on the chosen response": ("kl/chosen", "eval_kl/chosen"),
    "accuracy of the margin's sign": ("rewards/accuracies", "eval_rewards/accuracies"),
}
#: the plotted keys only a training row carries (an evaluation row's are ``eval_``-prefixed, the summary row's
#: ``train_``-prefixed): a row with one of them is the step's training row, written once per step
TRAINING_KEYS = frozenset(name for names in PANELS.values() for name in names if not name.startswith("eval_"))


class NoLogHistory(ValueError):
    """The folder holds no log history to plot; the message names where it looked."""


def read_log_history(run_dir: str | Path) -> tuple[list[dict[str, Any]], Path]:
    """The run's log history and the file it came from."""
    history, path, _ = read_run_history(run_dir)
    return history, path


def read_run_history(run_dir: str | Path) -> tuple[list[dict[str, Any]], Path, str | None]:
    """The run's log history, the file it came from and the run's loss type where the run names it
    (``train_report.json``'s ``loss_type``, or the stored configuration beside a checkpoint's
    ``trainer_state.json``), else None.

    Each document read is checked whole against the shape its writer writes (:mod:`savi_plugin.training.logged`)
    before anything is taken from it: a file of another shape is named with what is wrong in it
    (``train_report.json: log_history[2]: a list, not a log entry``), never skipped for the next file.

    Raises:
        NoLogHistory: one line naming the file (and the field) that is not what a run writes, or the folder
            when it holds none of the files.
    """
    from savi_plugin.training.logged import (
        CHECKPOINT_IDENTITY,
        TRAIN_REPORT,
        TRAINER_STATE,
    )

    run_dir = Path(run_dir)
    checkpoints = sorted((p for p in run_dir.glob("checkpoint-*") if re.fullmatch(r"checkpoint-\d+", p.name)),
                         key=lambda p: int(p.name.split("-")[1]), reverse=True)

    def candidates():
        yield run_dir / "train_report.json"
        yield from (p / "trainer_state.json" for p in _own_checkpoints(run_dir, checkpoints))
        yield run_dir / "trainer_state.json"

    for path in candidates():
        problem = file_problem(path, "log history file")  # a FIFO or folder is named as what it is, never opened
        if problem == "file not found":
            continue
        if problem is not None:
            raise NoLogHistory(f"{path}: {problem}")
        report = path.name == "train_report.json"
        if path.parent in checkpoints and _torn(path):  # a kill while saving: training skips it too
            logging.getLogger(__name__).info("%s: incomplete (its trainer_state.json is empty or torn); the "
                                             "checkpoint before it is plotted", path.parent)
            continue
        document = _read_shaped(path, TRAIN_REPORT if report else TRAINER_STATE)
        history = document["log_history"]
        if not history:
            continue
        if report:
            loss_type = document["loss_type"]
            _check_report_is_the_runs(path, document)
        else:
            from savi_plugin.data.identity import CHECKPOINT_FILE
            from savi_plugin.training.checkpoints import read_identity

            identity = read_identity(path.parent)  # None: no savi run identity beside it (names no loss)
            shape_problem = identity is not None and CHECKPOINT_IDENTITY.problem(identity, "")
            if shape_problem:
                raise NoLogHistory(f"{path.parent / CHECKPOINT_FILE}: {shape_problem}")
            loss_type = identity["config"]["training"]["loss_type"] if identity is not None else None
        return history, path, loss_type
    raise NoLogHistory(f"{run_dir}: no train_report.json, checkpoint-*/trainer_state.json or trainer_state.json "
                       f"with a log history (is it a `savi train` output folder?)")


def _check_report_is_the_runs(path: Path, report: dict[str, Any]) -> None:
    """Refuse a ``train_report.json`` that another run wrote (copied into this run's folder) where the folder's
    ``savi train`` mark names its run: the report's ``run`` (every report carries its run's fingerprint) or, for a
    report written before it did, its ``loss_type``, differs from the mark's.

    Raises:
        NoLogHistory: naming the report and both runs.
    """
    from savi_plugin.training.run import marked_run_config, run_fingerprint

    run_config = marked_run_config(path.parent)
    if run_config is None:  # no mark of savi train: nothing names the run (another tool's folder, a copy)
        return
    ours, theirs = run_fingerprint(run_config), report.get("run")
    marked_loss = (run_config.get("training") or {}).get("loss_type")
    if theirs is not None and theirs != ours:
        why = f"its run {str(theirs)[:12]}, this folder's {ours[:12]}"
    elif theirs is None and marked_loss is not None and report["loss_type"] != marked_loss:
        why = f"its loss {report['loss_type']!r}, this folder's run trains {marked_loss!r}"
    else:
        return
    raise NoLogHistory(f"{path}: was written by another run ({why}): its log history would be drawn as this run's "
                       f"curves; move it out of {path.parent}")


def _own_checkpoints(run_dir: Path, checkpoints: list[Path]) -> list[Path]:
    """The checkpoints (newest first) whose log history is ``run_dir``'s run's: when the folder's mark names its
    run, the newest complete checkpoint that run wrote, chosen by the rule a resume uses
    (:func:`savi_plugin.training.run.run_checkpoint_to_read`), so one of another run or configuration copied in,
    or renamed, is refused naming it; a folder no mark names (another tool's, a checkpoint copied out) keeps
    its ``checkpoint-N`` folders newest first, a torn one skipped as it is read.

    Raises:
        NoLogHistory: naming a checkpoint the run did not write.
    """
    if not checkpoints:
        return []
    from savi_plugin.training.checkpoints import ForeignCheckpointError
    from savi_plugin.training.run import run_checkpoint_to_read

    try:
        marked, newest = run_checkpoint_to_read(run_dir)
    except ForeignCheckpointError as exc:
        raise NoLogHistory(str(exc)) from None
    return checkpoints if not marked else [Path(newest)] if newest else []


def _torn(path: Path) -> bool:
    """Whether ``path`` (a checkpoint's ``trainer_state.json``, which the Trainer writes last, as one JSON object)
    is empty or stops before its closing brace: what a kill while saving leaves. A document that ends as an object
    does is read and checked as any (an edited one is named)."""
    from savi_plugin.data.files import read_document

    try:
        text = read_document(path).strip()
    except OSError:
        return False
    return not text.endswith(b"}")


def _read_shaped(path: Path, shape) -> dict[str, Any]:
    """``path`` read through the untrusted-input boundary and checked whole against ``shape``."""
    def refuse(message, line=None):  # the untrusted-input boundary's limits, naming the file
        return NoLogHistory(f"{path}{f':{line}' if line else ''}: {message}")

    document = load_json(read_document(path), str(path), error=refuse)
    problem = shape.problem(document, "")
    if problem:
        raise NoLogHistory(f"{path}: {problem} (not {shape.name} as `savi train` writes it)")
    return document


def check_history(history: list[dict[str, Any]], source: str | Path, loss_type: str | None = None) -> None:
    """Refuse a log history that no Trainer wrote: a row's ``step`` not a whole number in [0, :data:`MAX_STEP`]
    or out of the Trainer's order (:class:`StepOrder`: a training row is one with a key of :data:`TRAINING_KEYS`),
    or a logged number out of its range (:func:`~savi_plugin.data.metric_ranges.logged_range`, the one table;
    null: not logged). ``loss_type``: the loss the run names (``loss`` is >= 0 for a loss savi ships).

    Raises:
        NoLogHistory: ``<file>: log_history[<i>].<field>: <why>`` (one line).
    """
    order = StepOrder()
    for i, row in enumerate(history):
        step = row.get("step", 0)
        if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= MAX_STEP:
            raise NoLogHistory(f"{source}: log_history[{i}].step: must be a whole number of steps in [0, {MAX_STEP}], "
                               f"got {step!r:.40}")
        if "step" in row:
            bad = order.problem(step, f"log_history[{i}]", "train" if row.keys() & TRAINING_KEYS else None,
                                "a Trainer's training row (with a loss or a training metric)")
            if bad:
                raise NoLogHistory(f"{source}: log_history[{i}].step: {bad}")
        for name, value in row.items():
            rule = logged_range(name, loss_type) if name != "step" else None
            bad = rule and rule.problem(value)
            if bad:
                raise NoLogHistory(f"{source}: log_history[{i}].{name}: {bad}")


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

    history, source, loss_type = read_run_history(run_dir)
    check_history(history, source, loss_type)
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

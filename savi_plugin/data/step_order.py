"""The order in which training writes steps, one rule for every reader of logged steps: ``savi plot``'s log
history (:func:`savi_plugin.inspection.curves.check_history`) and the per-pair diagnostics rows, read by
``savi inspect`` and by a training run that restarts their file
(:class:`savi_plugin.data.diagnostics_rows.DiagnosticsLines`)."""

from __future__ import annotations

from typing import Any


class StepOrder:
    """The order in which steps are written, one rule for every reader of logged steps.

    Every row carries the step it was written at, and steps never go back (transformers' ``Trainer.log`` stamps
    each row with ``state.global_step``, which only grows; a resumed run continues the checkpoint's history from
    its step). A row of a kind written once per step (``once``: a Trainer's training row, logged only when
    ``global_step > _globalstep_last_logged``; a diagnostics row of one pair, keyed by pair and step) never
    repeats the step of an earlier row of its kind. Other rows may share a step: the evaluation row of a periodic
    evaluation and of ``evaluate()`` after training, and the final summary row, at the last training row's step.
    """

    def __init__(self):
        self._last: tuple[int, str] | None = None
        self._kinds: dict[Any, tuple[int, str]] = {}

    def problem(self, step: int, where: str, kind: Any = None, what: str = "a row") -> str | None:
        """Why ``step`` (of the row at ``where``) breaks the order, naming the earlier row, or None; ``kind``:
        the row's kind when it is written once per step."""
        if self._last is not None and step < self._last[0]:
            return (f"step {step} comes after step {self._last[0]} of {self._last[1]}: steps are written in "
                    f"increasing order")
        if kind is not None and kind in self._kinds and self._kinds[kind][0] == step:
            return f"step {step} repeats the step of {self._kinds[kind][1]}: {what} is written once per step"
        self._last = (step, where)
        if kind is not None:
            self._kinds[kind] = (step, where)
        return None

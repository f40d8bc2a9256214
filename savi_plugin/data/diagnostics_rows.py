"""What a per-pair training diagnostics row is (``diagnostics.jsonl``, written by
:mod:`savi_plugin.training.diagnostics`): the one check shared by the training run that restarts the file and by
``savi inspect --diagnostics`` that draws it -- each row as training writes it (:func:`diagnostics_row_problem`,
every number in its range of :data:`FIELDS`) and one row per pair and step (:class:`DiagnosticsLines`)."""

from __future__ import annotations

from typing import Any

from savi_plugin.data.metric_ranges import (  # noqa: F401 (KL_TOLERANCE, MAX_STEP: this file's rule, named here)
    KL_TOLERANCE, LOSS, MAX_STEP, RANGES, Range, is_number, loss_range)
from savi_plugin.data.step_order import StepOrder

#: the fields that make a row's identity: training appends one row per pair and step
#: (:class:`savi_plugin.training.diagnostics.DiagnosticsFile`)
ROW_KEY = ("id", "step")

#: Every number of a diagnostics row and its range, from the one table of what training logs
#: (:data:`savi_plugin.data.metric_ranges.RANGES`; a nested one as ``outer.inner``; ``chosen_token_kl``: each of
#: its values); all may be null but ``step``. A row does not name the loss that wrote it, so its ``loss`` has
#: :func:`~savi_plugin.data.metric_ranges.loss_range`'s range for no named loss: float32's (a plugin's loss may be
#: negative).
FIELDS: dict[str, Range] = {
    name: loss_range(None) if name == LOSS else RANGES[name]
    for name in ("step", LOSS, "margin", "reward_chosen", "reward_rejected", "logratio_chosen", "logratio_rejected",
                 "kl_chosen", "chosen_token_kl", "tagged_tokens.chosen", "tagged_tokens.rejected")}
#: the fields of ``tagged_tokens``
_TAGGED = tuple(name.split(".", 1)[1] for name in FIELDS if name.startswith("tagged_tokens."))


def diagnostics_row_problem(row: Any) -> tuple[str, str] | None:
    """Why ``row`` is not a diagnostics row as ``savi train`` writes it, as ``(field, message)``, or None: an object
    with an ``id``, every number of :data:`FIELDS` in its range (``step`` present), ``tagged_tokens`` an object
    of the two counts, ``chosen_tokens`` texts and ``chosen_token_kl`` numbers, one per token."""
    if not isinstance(row, dict):
        return "-", f"not a diagnostics row (expected a JSON object, got {type(row).__name__})"
    if not isinstance(row.get("id"), (str, int)) or isinstance(row.get("id"), bool):
        return "id", "not a diagnostics row (expected a JSON object with an \"id\")"
    tokens, kl = row.get("chosen_tokens"), row.get("chosen_token_kl")
    for name, rule in FIELDS.items():
        if "." in name or name == "chosen_token_kl":
            continue
        bad = rule.problem(row.get(name), len(kl) if isinstance(kl, list) else 1, nullable=name != "step")
        if bad:
            return name, bad
    tagged = row.get("tagged_tokens")
    if tagged is not None:
        if not isinstance(tagged, dict) or not set(tagged) <= set(_TAGGED):
            return "tagged_tokens", (f"must be an object of the {' and '.join(_TAGGED)} token counts, got "
                                     f"{tagged!r:.60}")
        for side in _TAGGED:
            bad = FIELDS[f"tagged_tokens.{side}"].problem(tagged.get(side))
            if bad:
                return f"tagged_tokens.{side}", bad
    if tokens is not None and not (isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)):
        return "chosen_tokens", "must be a list of texts"
    if kl is not None:
        if not isinstance(kl, list):
            return "chosen_token_kl", f"must be a list of numbers, got {type(kl).__name__}"
        for k, value in enumerate(kl):
            bad = FIELDS["chosen_token_kl"].problem(value, nullable=False)
            if bad:
                return f"chosen_token_kl[{k}]", bad
        if len(kl) != len(tokens or []):
            return "chosen_token_kl", (f"has {len(kl)} value(s) for {len(tokens or [])} chosen token(s): one per "
                                       f"token")
    return None


class DiagnosticsLines:
    """The rule for the lines of one diagnostics file, given in file order: each a row as training writes it
    (:func:`diagnostics_row_problem`), in training's step order
    (:class:`~savi_plugin.data.step_order.StepOrder`): no step before an earlier row's, and no second row for a
    pair and step (:data:`ROW_KEY`; ids compared as texts, as a reader joins them to pairs), named with the line
    that holds the first."""

    def __init__(self) -> None:
        self._order = StepOrder()

    def problem(self, row: Any, line: int) -> tuple[str, str] | None:
        """``(field, message)`` for the row at ``line``, or None."""
        bad = diagnostics_row_problem(row)
        if bad is not None:
            return bad
        late = self._order.problem(row["step"], f"line {line}", str(row["id"]), "a pair's diagnostics row")
        return ("step", late) if late else None

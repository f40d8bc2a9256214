"""What a per-pair training diagnostics row is (``diagnostics.jsonl``, written by
:mod:`savi_plugin.training.diagnostics`): the one check shared by the training run that restarts the file and by
``savi inspect --diagnostics`` that draws it -- each row as training writes it (:func:`diagnostics_row_problem`,
every number in its range of :data:`FIELDS`, every field training computes from others of the row equal to what
they give, :data:`DERIVED`) and one row per pair and step (:class:`DiagnosticsLines`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from savi_plugin.data.metric_ranges import (  # noqa: F401 (KL_TOLERANCE, MAX_STEP: this file's rule, named here)
    KL_TOLERANCE,
    LOSS,
    MAX_STEP,
    MAX_VALUE,
    RANGES,
    Range,
    is_number,
    loss_range,
)
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

#: the rounding a derived field may hold, relative to the size of what it is computed from: training computes in
#: float32 (the scoring path's log-probs, KLs and every loss's rewards, :mod:`savi_plugin.training.scoring`), and
#: a float32 difference is within 2^-24 of the exact one, a float32 sum of n terms within (n - 1) * 2^-24 times the
#: sum of their sizes (in any order, as a GPU adds them); 2^-23 is twice that. The file holds each float32 number
#: exactly (JSON's shortest repr of the double it widens to), so a row training wrote passes, and an edit of a
#: derived field by more than rounding does not.
FLOAT32_ROUNDING = 2.0**-23


@dataclass(frozen=True)
class Derived:
    """A field training computes from other fields of the same row, by the function that computes it
    (:func:`savi_plugin.training.diagnostics.pair_rows` writes both from the same tensors).

    ``operands``: the fields it is computed from, always written with it; ``exact``: its value from theirs (None
    where an operand is null: not finite); ``tolerance``: the float32 rounding it may hold; ``rule``: the relation,
    for messages."""

    operands: tuple[str, ...]
    exact: Callable[..., float | None]
    tolerance: Callable[..., float]
    rule: str

    def problem(self, name: str, row: dict[str, Any]) -> str | None:
        """Why ``row[name]`` is not what training computes from the operands (None: it is)."""
        given = [key for key in (name, *self.operands) if key in row]
        if len(given) not in (0, 1 + len(self.operands)):
            return (f"training writes {', '.join((name, *self.operands))} together ({self.rule}); this row holds "
                    f"{' and '.join(given)} only")
        if not given:
            return None
        values = [row[key] for key in self.operands]
        exact = self.exact(*values)
        value = row[name]
        if exact is None:
            return None if value is None else (f"{value!r:.40} where an operand is null (not finite): {self.rule} "
                                               f"is not finite either, written as null")
        allowed = self.tolerance(*values)
        if value is None:  # a float32 overflow of a finite difference or sum is written as null
            return None if abs(exact) + allowed >= MAX_VALUE else f"null, though {self.rule} = {exact:.9g}"
        if abs(value - exact) > allowed:
            return f"{value!r:.40} is not {self.rule} = {exact:.9g} (to float32 rounding, {allowed:.3g})"
        return None


def _difference(chosen: float | None, rejected: float | None) -> float | None:
    return None if chosen is None or rejected is None else chosen - rejected


def _sum(values: list[float] | None) -> float | None:
    return None if values is None else math.fsum(values)


#: Every field of a row that training computes from others of the same row (:meth:`Objective.__call__
#: <savi_plugin.training.scoring.Objective.__call__>`, :func:`savi_plugin.training.diagnostics.pair_rows`):
#:
#: * ``margin``: ``rewards/margins``, the chosen minus the rejected implicit reward, of the rewards the row holds;
#: * ``kl_chosen``: ``kl/chosen``, the chosen response's token KLs summed -- the ``chosen_token_kl`` values the
#:   row lists, one per chosen token.
DERIVED: dict[str, Derived] = {
    "margin": Derived(("reward_chosen", "reward_rejected"), _difference,
                      lambda chosen, rejected: FLOAT32_ROUNDING * max(abs(chosen), abs(rejected)),
                      "reward_chosen - reward_rejected"),
    "kl_chosen": Derived(("chosen_token_kl",), _sum,
                         lambda kl: FLOAT32_ROUNDING * max(1, len(kl)) * math.fsum(abs(v) for v in kl),
                         "the sum of chosen_token_kl"),
}


def diagnostics_row_problem(row: Any) -> tuple[str, str] | None:
    """Why ``row`` is not a diagnostics row as ``savi train`` writes it, as ``(field, message)``, or None: an object
    with an ``id``, every number of :data:`FIELDS` in its range (``step`` present), ``tagged_tokens`` an object
    of the two counts, ``chosen_tokens`` texts and ``chosen_token_kl`` numbers, one per token, every field of
    :data:`DERIVED` what training computes from the others (``margin`` is ``reward_chosen - reward_rejected``),
    and no more tagged chosen tokens than chosen tokens."""
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
    for name, derived in DERIVED.items():
        bad = derived.problem(name, row)
        if bad:
            return name, f"{bad}: not a row as training writes it"
    chosen_tagged = tagged.get("chosen") if isinstance(tagged, dict) else None
    if is_number(chosen_tagged) and isinstance(tokens, list) and chosen_tagged > len(tokens):
        return "tagged_tokens.chosen", (f"{chosen_tagged} tagged tokens of {len(tokens)} chosen tokens: the tagged "
                                        f"are among them; not a row as training writes it")
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

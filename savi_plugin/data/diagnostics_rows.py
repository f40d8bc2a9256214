"""What a per-pair training diagnostics row is (``diagnostics.jsonl``, written by
:mod:`savi_plugin.training.diagnostics`): the one check shared by the training run that restarts the file and by
``savi inspect --diagnostics`` that draws it -- each row as training writes it (:func:`diagnostics_row_problem`,
every number in its range of :data:`FIELDS`) and one row per pair and step (:class:`DiagnosticsLines`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from savi_plugin.data.step_order import StepOrder

#: the largest step a diagnostics row may name (README: every count at most 2^32-1)
MAX_STEP = 2**32 - 1
#: the largest token count a diagnostics row may hold (the same cap)
MAX_COUNT = 2**32 - 1
#: the largest magnitude of a diagnostics value: training scores in float32 at most, so a value beyond float32's
#: largest finite number was not written by it
MAX_VALUE = 3.4028234663852886e38
#: how far below 0 one token's KL(ref || policy) may read. A KL divergence is never negative (Gibbs' inequality;
#: RRPO's regulariser, Sarkar et al. 2025, arXiv 2504.12083, eq. 6). Training computes it exactly over the whole
#: vocabulary, not by sampling (``sum_v p_v (log p_v - log q_v)`` from float32 log-softmaxes,
#: :func:`savi_plugin.training.token_logprobs.token_kl`), so it is below 0 by rounding only: measured at most
#: 1.5e-5 nats per token for two float32 log-softmaxes of the same logits over a 152k-token vocabulary. 1e-3 nats
#: (about 70 times that) stays far below any KL a page colours.
KL_TOLERANCE = 1e-3
#: the fields that make a row's identity: training appends one row per pair and step
#: (:class:`savi_plugin.training.diagnostics.DiagnosticsFile`)
ROW_KEY = ("id", "step")


@dataclass(frozen=True)
class Range:
    """The values one number of a row may take: ``low`` to ``high`` (whole numbers of ``unit`` where ``whole``);
    ``per_token``: ``low`` counts once per chosen token (a sum over them); ``why``: the reason for ``low``."""

    low: float = -MAX_VALUE
    high: float = MAX_VALUE
    whole: bool = False
    unit: str = ""
    per_token: bool = False
    why: str = ""

    def problem(self, value: Any, tokens: int = 1, *, nullable: bool = True) -> str | None:
        """Why ``value`` is not in this range (None: it is); ``tokens``: the chosen tokens a ``per_token`` low
        counts."""
        low = self.low * max(1, tokens) if self.per_token else self.low
        if value is None and nullable:
            return None
        null = " or null" if nullable else ""
        if self.whole:
            if not (isinstance(value, int) and not isinstance(value, bool) and low <= value <= self.high):
                return f"must be a whole number of {self.unit} in [{low:g}, {self.high:d}]{null}, got {value!r:.40}"
        elif not (is_number(value) and low <= value <= self.high):
            if low == -MAX_VALUE:
                return f"must be a number within +-{MAX_VALUE:.4g} (float32's range){null}, got {value!r:.40}"
            return f"must be a number in [{low:.4g}, {self.high:.4g}]{null} ({self.why}), got {value!r:.40}"
        return None


_KL = "a KL divergence is never negative; the 1e-3 nats per token below 0 allow float32 rounding"
#: Every number of a diagnostics row and its range (a nested one as ``outer.inner``; ``chosen_token_kl``: each of
#: its values); all may be null but ``step``.
#:
#: * ``loss`` is unbounded below. Every loss shipped here (setup.cfg's ``savi_plugin.losses``) is >= 0: DPO and
#:   cDPO (Rafailov et al., arXiv 2305.18290, eq. 7; Mitchell 2023), TDPO (Zeng et al., arXiv 2404.11999),
#:   SimPO (Meng et al., arXiv 2405.14734, eq. 6) and DDPO (Yu et al., arXiv 2312.00849) are ``-log sigmoid``,
#:   IPO a square (Azar et al., arXiv 2310.12036, eq. 17), RRPO (Sarkar et al., arXiv 2504.12083) and DPA
#:   (HALVA, arXiv 2405.18654) such a term plus ``alpha >= 0`` times a KL. But the loss contract
#:   (:mod:`savi_plugin.losses.base`) lets a plugin register any per-pair loss, and a row does not name the loss
#:   that wrote it: TRL's ``robust`` DPO (Chowdhury et al., arXiv 2403.00409:
#:   ``(-(1-e) log s(bh) + e log s(-bh)) / (1-2e)``) is negative once the margin is large.
#: * ``margin``, ``reward_*`` and ``logratio_*`` are differences of log-probabilities: either sign.
#: * ``kl_chosen`` and ``chosen_token_kl``: a KL divergence, >= 0 up to :data:`KL_TOLERANCE` per token.
#: * ``step`` and the ``tagged_tokens`` counts: whole numbers >= 0 (``<MASK>`` tokens counted per side).
FIELDS: dict[str, Range] = {
    "step": Range(0, MAX_STEP, whole=True, unit="steps"),
    "loss": Range(),
    "margin": Range(),
    "reward_chosen": Range(),
    "reward_rejected": Range(),
    "logratio_chosen": Range(),
    "logratio_rejected": Range(),
    "kl_chosen": Range(-KL_TOLERANCE, per_token=True, why=_KL),
    "chosen_token_kl": Range(-KL_TOLERANCE, why=_KL),
    "tagged_tokens.chosen": Range(0, MAX_COUNT, whole=True, unit="tokens"),
    "tagged_tokens.rejected": Range(0, MAX_COUNT, whole=True, unit="tokens"),
}
#: the fields of ``tagged_tokens``
_TAGGED = tuple(name.split(".", 1)[1] for name in FIELDS if name.startswith("tagged_tokens."))


def is_number(value: Any) -> bool:
    """A JSON number (not a boolean)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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

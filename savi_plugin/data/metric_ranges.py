"""The range of every number training logs, in one table: the Trainer's log history (``train_report.json``,
``checkpoint-*/trainer_state.json``; read by ``savi plot``) and the per-pair diagnostics rows
(``diagnostics.jsonl``; read by ``savi inspect --diagnostics`` and by the run that appends to it) name their
numbers differently, and each name has one range here (:data:`RANGES`; ``loss`` and ``step`` are shared by
both files). Names the table does not list are found by their last word (:data:`BY_LAST_WORD`): a loss logs its
own per-pair metrics under its name (``rrpo/chosen_phrase_tokens``, ``ddpo/changed_tokens``, ``dpa/phrases``,
``rrpo/kl``), and evaluation and the summary row prefix the names (``eval_``, ``train_``). :func:`logged_range`
is the one lookup; a name it does not know is not checked.

The loss has one rule (:func:`loss_range`): every loss savi ships (:data:`NONNEGATIVE_LOSSES`) is >= 0, so where
the file names one of them (``train_report.json``'s ``loss_type``, or the configuration stored beside a
checkpoint) a loss below 0 beyond float32 rounding was not logged by it; where the file names another loss (one
registered by a plugin, which may be negative: TRL's ``robust`` DPO, Chowdhury et al., arXiv 2403.00409,
``(-(1-e) log s(bh) + e log s(-bh)) / (1-2e)``, is negative once the margin is large) or none (a diagnostics
row does not name the loss that wrote it), a loss is any float32 number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: the largest magnitude of a logged value: training logs float32 statistics, so a value beyond float32's largest
#: finite number was not logged by it (and two such values of opposite sign overflow an axis' span)
MAX_VALUE = 3.4028234663852886e38
#: the largest step or count a logged row may hold (README: every count at most 2^32-1)
MAX_COUNT = 2**32 - 1
MAX_STEP = MAX_COUNT
#: how far below 0 a KL logged by the Trainer (the mean over a logging window of each pair's summed token KL,
#: ``kl/chosen``), and a loss that adds one, may lie: ``token_kl`` sums ``p * (log p - log q)`` over the
#: vocabulary in float32, so a KL that is 0 (policy == reference, the first step) is logged as a small rounding
#: error of either sign (-3.3e-7 in a tiny run); -0.01 nats is no rounding error
KL_ROUNDING = 0.01
#: how far below 0 one token's KL(ref || policy) may read in a diagnostics row. A KL divergence is never negative
#: (Gibbs' inequality; RRPO's regulariser, Sarkar et al. 2025, arXiv 2504.12083, eq. 6). Training computes it
#: exactly over the whole vocabulary, not by sampling (``sum_v p_v (log p_v - log q_v)`` from float32
#: log-softmaxes, :func:`savi_plugin.training.token_logprobs.token_kl`), so it is below 0 by rounding only:
#: measured at most 1.5e-5 nats per token for two float32 log-softmaxes of the same logits over a 152k-token
#: vocabulary. 1e-3 nats (about 70 times that) stays far below any KL a page colours.
KL_TOLERANCE = 1e-3
#: the losses savi ships whose value is never negative: each is a mean (pair weights > 0) of ``-log sigma(.)``
#: terms -- DPO/cDPO (Rafailov et al. 2023, eq. 7; Mitchell 2023), SimPO (Meng et al. 2024, eq. 6), TDPO (Zeng et
#: al. 2024, eqs. 19/21), DDPO (Yu et al. 2024), DPA's alignment term (Sarkar et al. 2025, HALVA) -- or a square
#: (IPO, Azar et al. 2024, eq. 17), plus ``alpha >= 0`` times a KL (RRPO, Sarkar et al. 2025, eq. 6; DPA). A loss
#: registered by another package has no lower bound here.
NONNEGATIVE_LOSSES = frozenset({"dpo", "ipo", "rrpo", "simpo", "tdpo", "dpa", "ddpo"})


@dataclass(frozen=True)
class Range:
    """The values one logged number may take: ``low`` to ``high`` (whole numbers of ``unit`` where ``whole``);
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
            if low == -MAX_VALUE and self.high == MAX_VALUE:
                return f"must be a number within +-{MAX_VALUE:.4g} (float32's range){null}, got {value!r:.40}"
            return f"must be a number in [{low:.4g}, {self.high:.4g}]{null} ({self.why}), got {value!r:.40}"
        return None


def is_number(value: Any) -> bool:
    """A JSON number (not a boolean)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


ANY = Range()
_KL = Range(-KL_ROUNDING, why=f"a KL divergence is never negative (Gibbs' inequality; RRPO eq. 6), {KL_ROUNDING} "
                              f"for float32 rounding")
_TOKEN_KL = "a KL divergence is never negative; the 1e-3 nats per token below 0 allow float32 rounding"
#: a loss of :data:`NONNEGATIVE_LOSSES` (:func:`loss_range`)
NONNEGATIVE_LOSS = Range(-KL_ROUNDING, why=f"every loss savi ships is >= 0 (-log sigma, a square, alpha * KL), "
                                           f"{KL_ROUNDING} for float32 rounding")
#: the name whose range is :func:`loss_range`'s (in both files, and a loss's own ``*_loss`` terms)
LOSS = "loss"

#: Every number training logs, by the name it is logged under, and its range (a nested one as ``outer.inner``;
#: ``chosen_token_kl``: each of its values); all may be null but a diagnostics row's ``step``.
#:
#: * ``step``: whole numbers in [0, 2^32-1], in both files.
#: * ``loss``: :func:`loss_range` (>= 0 where the file names a loss savi ships).
#: * log history (transformers' Trainer and TRL's names): margins and rewards, differences of log-probabilities,
#:   either sign; ``kl/chosen`` a KL; ``rewards/accuracies`` a share; ``learning_rate``, ``epoch`` and
#:   ``grad_norm`` (the gradient's norm before clipping) never negative; ``nonfinite_steps`` (the optimizer steps
#:   skipped) a whole count; ``truncated`` the pairs cut to fit, summed as float32.
#: * diagnostics rows: ``margin``, ``reward_*`` and ``logratio_*`` either sign; ``kl_chosen`` (summed over the
#:   chosen tokens) and each ``chosen_token_kl`` value a KL, >= 0 up to :data:`KL_TOLERANCE` per token;
#:   ``tagged_tokens`` (``<MASK>`` tokens per side) whole counts.
RANGES: dict[str, Range] = {
    "step": Range(0, MAX_STEP, whole=True, unit="steps"),
    LOSS: ANY,  # by loss_range
    "rewards/margins": ANY,
    "rewards/chosen": ANY,
    "rewards/rejected": ANY,
    "kl/chosen": _KL,
    "rewards/accuracies": Range(0.0, 1.0, why="the share of pairs whose chosen reward is strictly greater"),
    "learning_rate": Range(0.0, why="a learning rate is never negative"),
    "epoch": Range(0.0, why="epochs done are never negative"),
    "grad_norm": Range(0.0, why="a norm is never negative"),
    "nonfinite_steps": Range(0, MAX_COUNT, whole=True, unit="steps"),
    "truncated": Range(0.0, why="a count of pairs is never negative"),
    "margin": ANY,
    "reward_chosen": ANY,
    "reward_rejected": ANY,
    "logratio_chosen": ANY,
    "logratio_rejected": ANY,
    "kl_chosen": Range(-KL_TOLERANCE, per_token=True, why=_TOKEN_KL),
    "chosen_token_kl": Range(-KL_TOLERANCE, why=_TOKEN_KL),
    "tagged_tokens.chosen": Range(0, MAX_COUNT, whole=True, unit="tokens"),
    "tagged_tokens.rejected": Range(0, MAX_COUNT, whole=True, unit="tokens"),
}

#: The range of a name :data:`RANGES` does not list, by its last word (after the last ``/`` or ``_``): a count of
#: steps is whole (``*_steps``); a count of tokens or phrases is the mean over the logged pairs (``*_tokens``,
#: ``*phrases``), so not whole, but never negative; a KL (``rrpo/kl``, ``dpa/kl``) is one; a loss's own loss term
#: (``rrpo/preference_loss``, ``dpa/alignment_loss``) follows :func:`loss_range`. The losses' metric names are
#: the keys of their :class:`~savi_plugin.losses.base.LossOutput` ``metrics``
#: (``tests/data/test_metric_ranges.py`` runs every shipped loss and checks each metric it logs against this).
BY_LAST_WORD: dict[str, Range] = {
    "steps": RANGES["nonfinite_steps"],
    "tokens": Range(0.0, why="a count of tokens (the mean over the logged pairs) is never negative"),
    "phrases": Range(0.0, why="a count of phrases (the mean over the logged pairs) is never negative"),
    "kl": _KL,
    LOSS: ANY,  # by loss_range
}


def loss_range(loss_type: str | None) -> Range:
    """The range of a loss: :data:`NONNEGATIVE_LOSS` for a loss of :data:`NONNEGATIVE_LOSSES`, else (a loss
    registered by a plugin, or a file that names no loss) float32's range."""
    return NONNEGATIVE_LOSS if loss_type in NONNEGATIVE_LOSSES else ANY


def logged_range(name: str, loss_type: str | None = None) -> Range | None:
    """The range of the number logged as ``name`` (``eval_`` and ``train_`` prefixes read as the name they
    prefix), or None for a name not checked (``eval_runtime``, ``total_flos``); ``loss_type``: the loss the file
    names, if any (:func:`loss_range`)."""
    for prefix in ("eval_", "train_"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    word = name if name in RANGES else re.split(r"[/_]", name)[-1]
    if word == LOSS:
        return loss_range(loss_type)
    return RANGES.get(name) or BY_LAST_WORD.get(word)

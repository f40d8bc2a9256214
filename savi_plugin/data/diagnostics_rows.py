"""What a per-pair training diagnostics row is (``diagnostics.jsonl``, written by
:mod:`savi_plugin.training.diagnostics`): the one check shared by the training run that restarts the file and by
``savi inspect --diagnostics`` that draws it."""

from __future__ import annotations

from typing import Any

#: the largest step a diagnostics row may name (README: every count at most 2^32-1)
MAX_STEP = 2**32 - 1
#: the largest magnitude of a diagnostics value: training scores in float32 at most, so a value beyond float32's
#: largest finite number was not written by it
MAX_VALUE = 3.4028234663852886e38
#: the numeric fields of a diagnostics row (:mod:`savi_plugin.training.diagnostics`); each a number or null
_VALUES = ("loss", "margin", "reward_chosen", "reward_rejected", "logratio_chosen", "logratio_rejected", "kl_chosen")


def is_number(value: Any) -> bool:
    """A JSON number (not a boolean)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def diagnostics_row_problem(row: Any) -> tuple[str, str] | None:
    """Why ``row`` is not a diagnostics row as ``savi train`` writes it, as ``(field, message)``, or None: an object
    with an ``id``, a ``step`` that is a whole number in [0, :data:`MAX_STEP`], each value of :data:`_VALUES` null
    or a finite number within :data:`MAX_VALUE`, ``chosen_tokens`` texts and ``chosen_token_kl`` numbers, one per
    token."""
    if not isinstance(row, dict):
        return "-", f"not a diagnostics row (expected a JSON object, got {type(row).__name__})"
    if not isinstance(row.get("id"), (str, int)) or isinstance(row.get("id"), bool):
        return "id", "not a diagnostics row (expected a JSON object with an \"id\")"
    step = row.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step <= MAX_STEP:
        return "step", f"must be a whole number of steps in [0, {MAX_STEP}], got {step!r:.40}"
    for key in _VALUES:
        value = row.get(key)
        if value is not None and not (is_number(value) and abs(value) <= MAX_VALUE):
            return key, (f"must be a number within +-{MAX_VALUE:.4g} (float32's range) or null, got {value!r:.40}")
    tokens, kl = row.get("chosen_tokens"), row.get("chosen_token_kl")
    if tokens is not None and not (isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)):
        return "chosen_tokens", "must be a list of texts"
    if kl is not None:
        if not (isinstance(kl, list) and all(is_number(v) and abs(v) <= MAX_VALUE for v in kl)):
            return "chosen_token_kl", f"must be a list of numbers within +-{MAX_VALUE:.4g}"
        if len(kl) != len(tokens or []):
            return "chosen_token_kl", (f"has {len(kl)} value(s) for {len(tokens or [])} chosen token(s): one per "
                                       f"token")
    return None

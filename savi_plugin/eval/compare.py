"""Base vs aligned on the same items: the change Δ and its paired bootstrap 95% interval (pure functions).

Published numbers for one model differ by protocol (frames, prompt, harness), so the comparable quantity is the
change over the base model in the same harness, on the same items, with its uncertainty. The paired bootstrap
(Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13; the percentile interval) resamples
*items* with replacement and recomputes the mean of the per-item differences ``aligned_i - base_i``, so the
items' shared difficulty cancels and the interval is that of the change, not of two independent scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

#: Resamples and seed of every interval we report (fixed, so a table is a pure function of its items).
N_RESAMPLES = 10_000
SEED = 0
LEVEL = 0.95


@dataclass(frozen=True)
class Delta:
    """One benchmark's comparison: mean scores, Δ = aligned - base, and the interval of Δ (same unit), over the
    ``n`` paired items; ``excluded``: the items left out because their video was unusable in either run
    (:func:`compare_usable`). With no usable item (``n`` 0) there is no comparison: the numbers are None."""

    n: int
    base: float | None
    aligned: float | None
    delta: float | None
    low: float | None
    high: float | None
    excluded: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def format_delta(d: Delta | Mapping) -> str:
    """One comparison as every report shows it (``savi align``'s summary line, ``savi eval compare``):
    ``Δ +1.00 [-2.00, +4.00] (base 40.00, n=18, 2 left out: no usable video)``, or ``no usable video (20 items):
    no Δ`` when no item had a usable video in both runs."""
    d = d.to_dict() if isinstance(d, Delta) else d
    excluded = int(d.get("excluded") or 0)
    if not d["n"]:
        return f"no usable video ({excluded} items): no Δ"
    left = f", {excluded} left out: no usable video" if excluded else ""
    return f"Δ {d['delta']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] (base {d['base']:.2f}, n={d['n']}{left})"


def paired_items(base: Mapping[str, float], aligned: Mapping[str, float]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The items both runs scored (sorted ids) and their two score vectors; raises when they share none."""
    ids = sorted(set(base) & set(aligned))
    if not ids:
        raise ValueError("the two runs share no scored item")
    return ids, np.asarray([base[i] for i in ids], float), np.asarray([aligned[i] for i in ids], float)


def paired_bootstrap(base: Sequence[float], aligned: Sequence[float], *, n_resamples: int = N_RESAMPLES,
                     seed: int = SEED, level: float = LEVEL) -> Delta:
    """Δ = mean(aligned) - mean(base) over paired items and its percentile bootstrap interval.

    Each resample draws ``n`` item indices with replacement (``numpy.random.default_rng(seed).integers``), the
    same indices for both runs, and takes the mean of ``aligned - base`` over them; the interval is the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (numpy's default linear interpolation) of those means.
    """
    b, a = np.asarray(base, float), np.asarray(aligned, float)
    if b.shape != a.shape or b.ndim != 1 or b.size == 0:
        raise ValueError(f"paired scores must be two equal-length non-empty vectors, got {b.shape} and {a.shape}")
    if n_resamples < 1 or not 0 < level < 1:
        raise ValueError(f"n_resamples must be >= 1 and level in (0, 1), got {n_resamples}, {level}")
    diff = a - b
    idx = np.random.default_rng(seed).integers(0, diff.size, size=(n_resamples, diff.size))
    means = diff[idx].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Delta(n=int(diff.size), base=float(b.mean()), aligned=float(a.mean()), delta=float(diff.mean()),
                 low=float(low), high=float(high))


def compare_items(base: Mapping[str, float], aligned: Mapping[str, float], **bootstrap) -> Delta:
    """:func:`paired_bootstrap` over the items (by id) both runs scored."""
    _, b, a = paired_items(base, aligned)
    return paired_bootstrap(b, a, **bootstrap)


def compare_usable(base: Mapping[str, float], aligned: Mapping[str, float], unusable: set[str],
                   **bootstrap) -> Delta:
    """:func:`compare_items` over the items whose video was usable in both runs; ``unusable``: the ids of the others.

    An item with no usable video (missing, undecodable, too short, over a decode budget) is scored 0 by the task
    whatever the model: paired with the other run's score it would add a difference that says nothing of the
    model, and with every item unusable the comparison would be Δ 0 with a zero-width interval. Such items are left
    out and counted (``excluded``); with none left there is no comparison (``n`` 0, numbers None)."""
    excluded = set(unusable) & (set(base) | set(aligned))
    kept = [i for i in base if i not in excluded]
    if not kept:
        return Delta(n=0, base=None, aligned=None, delta=None, low=None, high=None, excluded=len(excluded))
    found = compare_items({i: base[i] for i in kept}, {i: aligned[i] for i in kept if i in aligned}, **bootstrap)
    return Delta(**{**found.to_dict(), "excluded": len(excluded)})

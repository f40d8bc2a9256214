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
    """One benchmark's comparison: mean scores, Δ = aligned - base, and the interval of Δ (same unit)."""

    n: int
    base: float
    aligned: float
    delta: float
    low: float
    high: float

    def to_dict(self) -> dict:
        return asdict(self)


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

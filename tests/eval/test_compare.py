"""The paired bootstrap interval of Δ, checked against a direct resampling loop and the normal approximation."""

import numpy as np
import pytest

from savi_plugin.eval.compare import compare_items, paired_bootstrap


def _direct(base, aligned, n_resamples, seed, level):
    """Resample item indices one row at a time, scoring each resample from the two runs separately."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(base), size=(n_resamples, len(base)))
    means = []
    for row in rows:
        means.append(sum(aligned[i] for i in row) / len(row) - sum(base[i] for i in row) / len(row))
    means.sort()
    lo_q, hi_q = (1 - level) / 2, (1 + level) / 2

    def quantile(q):  # numpy's default ("linear") rule, written out
        pos = q * (len(means) - 1)
        k = int(np.floor(pos))
        return means[k] + (pos - k) * (means[min(k + 1, len(means) - 1)] - means[k])

    return quantile(lo_q), quantile(hi_q)


def test_equals_a_direct_resampling_loop():
    rng = np.random.default_rng(7)
    base = list(100.0 * (rng.random(37) < 0.4))
    aligned = list(100.0 * (rng.random(37) < 0.6))
    got = paired_bootstrap(base, aligned, n_resamples=500, seed=3, level=0.9)
    low, high = _direct(base, aligned, 500, 3, 0.9)
    assert got.low == pytest.approx(low, abs=1e-9) and got.high == pytest.approx(high, abs=1e-9)
    assert got.delta == pytest.approx(np.mean(aligned) - np.mean(base))
    assert got.n == 37 and got.low <= got.delta <= got.high


def test_matches_the_normal_approximation_on_many_items():
    rng = np.random.default_rng(0)
    n = 4000
    base = 100.0 * (rng.random(n) < 0.5)
    flip = rng.random(n) < 0.2  # aligned differs from base on 20% of items, mostly for the better
    aligned = np.where(flip, 100.0 * (rng.random(n) < 0.7), base)
    got = paired_bootstrap(base, aligned, n_resamples=4000, seed=1)
    diff = aligned - base
    half = 1.959964 * diff.std(ddof=1) / np.sqrt(n)
    assert got.low == pytest.approx(diff.mean() - half, abs=0.08 * half)
    assert got.high == pytest.approx(diff.mean() + half, abs=0.08 * half)
    # pairing matters: the interval of Δ is narrower than the one of two independent scores
    unpaired = 1.959964 * np.sqrt(base.var(ddof=1) / n + aligned.var(ddof=1) / n)
    assert got.high - got.low < 0.8 * 2 * unpaired


def test_seeded_and_paired_by_item_id():
    base = {"a": 0.0, "b": 100.0, "c": 0.0, "x": 100.0}
    aligned = {"c": 100.0, "b": 100.0, "a": 0.0, "y": 0.0}
    one, two = compare_items(base, aligned), compare_items(base, aligned)
    assert one == two and one.n == 3 and one.delta == pytest.approx(100 / 3)
    with pytest.raises(ValueError, match="share no scored item"):
        compare_items({"a": 1.0}, {"b": 1.0})
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap([1.0, 2.0], [1.0])


def test_items_without_a_usable_video_are_left_out_and_counted():
    """For every subset of unusable items (generated, seeded): Δ and its interval are those of the other items
    alone, ``excluded`` counts the subset; with none left there is no Δ (n 0, numbers None), and every report's
    line (:func:`format_delta`) says so instead of a Δ."""
    from savi_plugin.eval.compare import compare_usable, format_delta

    rng = np.random.default_rng(3)
    ids = [f"t/{i}" for i in range(8)]
    base = dict(zip(ids, rng.choice([0.0, 100.0], 8)))
    aligned = dict(zip(ids, rng.choice([0.0, 100.0], 8)))
    for mask in range(2 ** len(ids)):
        unusable = {i for k, i in enumerate(ids) if mask >> k & 1}
        got = compare_usable(base, aligned, unusable | {"other/9"}, n_resamples=200)  # ids of no item: ignored
        kept = [i for i in ids if i not in unusable]
        assert got.excluded == len(unusable) and got.n == len(kept)
        if kept:
            want = paired_bootstrap([base[i] for i in kept], [aligned[i] for i in kept], n_resamples=200)
            assert (got.delta, got.low, got.high, got.base) == pytest.approx((want.delta, want.low, want.high,
                                                                             want.base))
            line = format_delta(got.to_dict())
            assert line.startswith(f"Δ {want.delta:+.2f} [") and f"n={len(kept)}" in line
            assert (f"{len(unusable)} left out: no usable video" in line) is bool(unusable)
        else:
            assert (got.delta, got.low, got.high, got.base, got.aligned) == (None,) * 5
            assert format_delta(got) == "no usable video (8 items): no Δ"

"""The demo's table: accuracy per stage and group, with the standard errors that say whether a change is real.

Pure functions over the results :func:`savi_plugin.demo.run.run_demo` returns.
"""

from __future__ import annotations

import math
from typing import Sequence

STAGES = (("before", "after warm-up (before)"), ("rrpo", "after RRPO"),
          ("dpo", "after DPO (same pairs)"))


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` measured on ``n`` independent items: ``sqrt(p (1 - p) / n)``."""
    return math.sqrt(max(p * (1.0 - p), 0.0) / n) if n else float("nan")


def paired_se(before: Sequence[int], after: Sequence[int]) -> float:
    """Standard error of the mean per-item change ``after - before`` on the same items (0/1 each)."""
    d = [a - b for a, b in zip(after, before)]
    n = len(d)
    if n < 2:
        return float("nan")
    mean = sum(d) / n
    return math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1) / n)


def gain(results: dict, method: str = "rrpo") -> dict:
    """``method``'s held-out gain over the warm-up model, in points and in standard errors.

    ``se`` is the standard error of an accuracy on the held-out set, taken at the larger of the two
    accuracies' ``p (1 - p)`` (the conservative one); ``paired_se`` is the standard error of the per-item
    change (the two stages answer the same questions).
    """
    b, a = results["before"], results[method]
    n = b["n"]
    se = max(binomial_se(b["accuracy"], n), binomial_se(a["accuracy"], n))
    diff = a["accuracy"] - b["accuracy"]
    pse = paired_se(b["correct"], a["correct"])
    # a standard error of 0 (every item right, or no item's answer changed) gives no ratio: None, said in words
    return {"points": 100 * diff, "se_points": 100 * se, "in_se": diff / se if se else None,
            "paired_se_points": 100 * pse, "in_paired_se": diff / pse if pse else None, "n": n}


def format_table(results: dict) -> str:
    """The table ``savi demo`` prints (and README shows): stages x accuracy per group, N, SE, gain in SE."""
    before = results["before"]
    groups = sorted(before["per_group"])
    n = before["n"]
    cols = [f"all (N={n})"] + [f"{g} (N={before['n_per_group'][g]})" for g in groups]
    width = max(14, *(len(c) for c in cols[1:])) + 2
    lines = [f"{'stage':<24}{cols[0]:>14}" + "".join(f"{c:>{width}}" for c in cols[1:])]
    lines.append("-" * len(lines[0]))
    for key, label in STAGES:
        if key not in results:
            continue
        r = results[key]
        lines.append(f"{label:<24}{100 * r['accuracy']:>13.1f}%"
                     + "".join(f"{100 * r['per_group'][g]:>{width - 1}.1f}%" for g in groups))
    lines.append("")
    world = results.get("sets", {})
    if world:
        lines.append(f"held-out: {n} videos, disjoint from the {world.get('warmup')} warm-up and "
                     f"{world.get('align')} self-alignment videos (no shared video: checked)")
    for method in ("rrpo", "dpo"):
        if method in results:
            g = gain(results, method)
            in_se = f"{g['in_se']:+.1f} SE" if g["in_se"] is not None else "no SE (both accuracies at 0% or 100%)"
            paired = (f" = {g['in_paired_se']:+.1f}" if g["in_paired_se"] is not None
                      else ", no item answered differently")
            lines.append(f"{method.upper()} vs before: {g['points']:+.1f} points = {in_se} (SE of an accuracy on "
                         f"N={n}: {g['se_points']:.1f} points; per-item paired SE of the change: "
                         f"{g['paired_se_points']:.1f} points{paired})")
    gen = results.get("generation", {})
    pairs = gen.get("counts", {}).get("pairs", "?")
    lines.append(f"RRPO pairs from the warm model's errors on perturbed self-alignment videos: {pairs} "
                 f"({results.get('pairs_by_group', {})})")
    t = results.get("time", {})
    if t:
        lines.append(f"time: {t['wall_s']:.0f} s wall, {t['cpu_s']:.0f} s CPU ({t['threads']} torch threads); "
                     f"{results.get('versions', '')}; plot: {results.get('plot')}")
    return "\n".join(lines)

"""``demo.png``: reward margins over training steps, and held-out accuracy per stage and group."""

from __future__ import annotations

from pathlib import Path


def plot_demo(path: str | Path, curves: dict[str, list[tuple[int, float]]], results: dict[str, dict]) -> Path:
    """Two panels: ``rewards/margins`` per step for each method; accuracy bars per stage and group.

    Args:
        path: PNG to write.
        curves: method -> [(step, margin), ...] from the trainers' log history.
        results: stage label (``"before"``, ``"RRPO"``, ``"DPO"``) -> :func:`~savi_plugin.demo.mcq_eval.mcq_accuracy`
            result (``accuracy``, ``per_group``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1, 1.5]})
    for name, points in curves.items():
        if points:
            steps, values = zip(*points)
            left.plot(steps, values, marker=".", label=name)
    left.axhline(0, color="grey", lw=0.5)
    left.set(title="reward margin (chosen - rejected)", xlabel="optimizer step", ylabel="rewards/margins")
    left.legend()
    stages = list(results)
    groups = ["all"] + sorted(next(iter(results.values()))["per_group"])
    x = np.arange(len(groups))
    width = 0.8 / len(stages)
    for k, stage in enumerate(stages):
        r = results[stage]
        values = [100 * r["accuracy"]] + [100 * r["per_group"][g] for g in groups[1:]]
        bars = right.bar(x + (k - (len(stages) - 1) / 2) * width, values, width, label=stage)
        right.bar_label(bars, fmt="%.0f", fontsize=7)
    right.set_xticks(x, [g.replace(": ", ":\n") for g in groups], fontsize=8)
    right.set(title="held-out accuracy", ylabel="accuracy (%)", ylim=(0, 105))
    right.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_seeds(path: str | Path, summary: dict) -> Path:
    """Held-out accuracy per stage and group over seeds: the mean as a bar, the sample SD as an error bar, each
    seed as a dot (:func:`savi_plugin.demo.seeds.summarize`'s ``accuracy``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = {"before": "before", "rrpo": "RRPO", "dpo": "DPO"}
    accuracy = summary["accuracy"]
    stages = list(accuracy)
    groups = ["all"] + [g for g in accuracy[stages[0]] if g != "all"]
    x = np.arange(len(groups))
    width = 0.8 / len(stages)
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for k, stage in enumerate(stages):
        at = x + (k - (len(stages) - 1) / 2) * width
        means = [accuracy[stage][g]["mean"] for g in groups]
        sds = [accuracy[stage][g]["sd"] for g in groups]
        bars = ax.bar(at, means, width, yerr=sds, capsize=3, label=labels.get(stage, stage))
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=2)
        for i, g in enumerate(groups):
            values = accuracy[stage][g]["values"]
            ax.plot([at[i]] * len(values), values, "k.", ms=3)
    ax.set_xticks(x, [g.replace(": ", ":\n") for g in groups], fontsize=8)
    seeds = summary["seeds"]
    ax.set(title=f"held-out accuracy over {len(seeds)} seeds (mean, sample SD, one dot per seed)",
           ylabel="accuracy (%)", ylim=(0, 105))
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Pictures users look at: reward margins over training steps, accuracy before/after."""

from __future__ import annotations

from pathlib import Path


def plot_demo(path: str | Path, curves: dict[str, list[tuple[int, float]]], accuracy: dict[str, float]) -> Path:
    """Two panels: ``rewards/margins`` per step for each method; accuracy bars per stage.

    Args:
        path: PNG to write.
        curves: method -> [(step, margin), ...] from the trainers' log history.
        accuracy: stage label (e.g. ``"before"``, ``"RRPO"``, ``"DPO"``) -> accuracy in [0, 1].
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, points in curves.items():
        if points:
            steps, values = zip(*points)
            left.plot(steps, values, marker=".", label=name)
    left.axhline(0, color="grey", lw=0.5)
    left.set(title="reward margin (chosen - rejected)", xlabel="optimizer step", ylabel="rewards/margins")
    left.legend()
    labels = list(accuracy)
    bars = right.bar(labels, [100 * accuracy[k] for k in labels], color=["#999999"] + ["#3b7dd8", "#e07b39"][: len(labels) - 1])
    right.bar_label(bars, fmt="%.1f")
    right.set(title="held-out accuracy (synthetic MVBench-format)", ylabel="accuracy (%)", ylim=(0, 100))
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

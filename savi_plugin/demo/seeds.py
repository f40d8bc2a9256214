"""``savi demo --seeds N``: the whole demo once per seed, and the mean and spread of every number over the seeds.

A single seed's table moves with the library versions (the same seeds gave +12.0 points on transformers 5.24 and
+34.5 on 5.25: a different float path through the same tiny model), so the size of the effect is only meaningful
with its spread over seeds. Seed ``s`` sets ``train.seed`` (the world's videos, the tiny model, the warm-up,
training) and ``generate.seed`` (pair generation) to ``s``; the seeds are ``base, base + 1, ...`` from the recipe's
``train.seed``. Each seed's run is a normal demo run in ``<out>/seed-<s>/``; the run folder, claimed like every
output (:func:`savi_plugin.data.outputs.claim`: new, or this command's with the same recipe and overrides), gets
the summary's ``results.json`` and ``demo.png``.

:func:`summarize` and :func:`format_seed_table` are pure functions over the per-seed results.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from savi_plugin.data.outputs import OWN, claim, write_json
from savi_plugin.demo.report import STAGES, gain


def seed_overrides(seed: int) -> list[str]:
    """Recipe overrides that make a demo run use ``seed`` everywhere it draws."""
    return [f"train.seed={seed}", f"generate.seed={seed}"]


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (0 for one value), min, max and the values themselves."""
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "values": list(values)}


def summarize(per_seed: dict[int, dict]) -> dict:
    """Mean and spread over seeds of each stage's held-out accuracy (all and per group) and each method's gain.

    Args:
        per_seed: seed -> :func:`savi_plugin.demo.run.run_demo` results.

    Returns:
        ``{"seeds", "n", "n_per_group", "accuracy": {stage: {"all"|group: spread}},
        "gain_points": {method: spread}, "pairs": spread}``; accuracies and gains in percentage points.
    """
    seeds = sorted(per_seed)
    runs = [per_seed[s] for s in seeds]
    first = runs[0]["before"]
    groups = sorted(first["per_group"])
    accuracy = {}
    for stage, _ in STAGES:
        if all(stage in r for r in runs):
            accuracy[stage] = {"all": spread([100 * r[stage]["accuracy"] for r in runs]),
                               **{g: spread([100 * r[stage]["per_group"][g] for r in runs]) for g in groups}}
    gains = {m: spread([gain(r, m)["points"] for r in runs]) for m in ("rrpo", "dpo") if m in accuracy}
    pairs = [r.get("generation", {}).get("counts", {}).get("pairs") for r in runs]
    return {"seeds": seeds, "n": first["n"], "n_per_group": first["n_per_group"], "accuracy": accuracy,
            "gain_points": gains, "pairs": spread(pairs) if all(isinstance(p, int) for p in pairs) else None,
            "versions": runs[0].get("versions", "")}


def _cell(s: dict) -> str:
    return f"{s['mean']:.1f} ± {s['sd']:.1f}"


def format_seed_table(summary: dict, time_s: float | None = None) -> str:
    """The table ``savi demo --seeds N`` prints: mean ± sample SD over seeds per stage and group, the gains."""
    seeds = summary["seeds"]
    groups = [g for g in next(iter(summary["accuracy"].values())) if g != "all"]
    cols = [f"all (N={summary['n']})"] + [f"{g} (N={summary['n_per_group'][g]})" for g in groups]
    width = max(16, *(len(c) for c in cols)) + 2
    lines = [f"{'stage':<24}" + "".join(f"{c:>{width}}" for c in cols)]
    lines.append("-" * len(lines[0]))
    for key, label in STAGES:
        if key in summary["accuracy"]:
            row = summary["accuracy"][key]
            lines.append(f"{label:<24}" + "".join(f"{_cell(row[g]) + '%':>{width}}" for g in ["all", *groups]))
    lines.append("")
    lines.append(f"held-out accuracy over {len(seeds)} seeds ({', '.join(map(str, seeds))}): mean ± sample standard "
                 f"deviation; each seed draws its own videos, tiny model, warm-up, pairs and training")
    for method, s in summary["gain_points"].items():
        per = ", ".join(f"{v:+.1f}" for v in s["values"])
        lines.append(f"{method.upper()} vs before: {s['mean']:+.1f} ± {s['sd']:.1f} points "
                     f"(min {s['min']:+.1f}, max {s['max']:+.1f}; per seed: {per})")
    if summary.get("pairs"):
        lines.append(f"RRPO pairs per seed: {', '.join(str(v) for v in summary['pairs']['values'])}")
    if time_s is not None:
        lines.append(f"time: {time_s:.0f} s wall for {len(seeds)} runs; {summary.get('versions', '')}")
    return "\n".join(lines)


def run_seeds(out_dir: str | Path, recipe: str = "tiny_demo", overrides: list[str] | None = None,
              seeds: int = 3) -> dict:
    """Run the demo once per seed into ``out_dir/seed-<s>/``; write and return the summary.

    ``out_dir/results.json`` holds the summary and each seed's run folder; ``out_dir/demo.png`` the accuracy
    per stage and group with the spread over seeds.
    """
    import time

    from savi_plugin.demo.plots import plot_seeds
    from savi_plugin.data.paths import run_folder
    from savi_plugin.demo.run import check_demo_recipe, run_demo
    from savi_plugin.demo.settings import load_settings, split_overrides
    from savi_plugin.config.values import to_dict
    from savi_plugin.recipe import load_recipe, recipe_identity, resolve_recipe_path

    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    wall0 = time.time()
    out = Path(out_dir)
    own, recipe_overrides = split_overrides(overrides)
    fixed = next((o for o in recipe_overrides if o.partition("=")[0].strip() == "generate.seed"), None)
    if fixed is not None:  # each run's generate.seed is its seed: the override would be replaced, yet recorded
        from savi_plugin.errors import ConfigError

        raise ConfigError("generate.seed", f"override {fixed!r}: --seeds sets each run's generate.seed and "
                                           f"train.seed to its seed (train.seed .. +N-1); set train.seed to choose "
                                           f"where they start")
    settings = load_settings(own)  # checked before the first run starts
    cfg = load_recipe(recipe, recipe_overrides)
    check_demo_recipe(cfg, out)
    base = cfg.seed
    config = {"resolved": recipe_identity(cfg), "settings": to_dict(settings)}  # by content, as run_demo's
    steps = {"seed-*": "savi demo", "results.json": OWN, "demo.png": OWN}  # a demo folder per seed, the summary
    with claim(out, command="savi demo --seeds", config=config, folder=True, output_name="--out",
               what="demo folder", inputs={"the recipe": resolve_recipe_path(recipe)}, steps=steps) as claimed:
        claimed.write_mark()
        per_seed = {}
        with run_folder(out):  # the seeds' runs move with it as one folder
            for s in range(base, base + seeds):
                per_seed[s] = run_demo(out / f"seed-{s}", recipe, [*(overrides or []), *seed_overrides(s)])
        summary = summarize(per_seed)
        summary["time_s"] = time.time() - wall0
        summary["runs"] = {str(s): f"seed-{s}" for s in per_seed}  # relative to this folder
        summary["plot"] = "demo.png"
        plot_seeds(out / "demo.png", summary)
        write_json(out / "results.json", summary, indent=1)
    return summary

"""``savi demo``: the whole RRPO loop on a laptop CPU, offline, in a few minutes.

1. synthetic videos with known answers (train and held-out eval sets) and a tiny random LLaVA-OneVision;
2. a short supervised warm-up (demo only: see :mod:`savi_plugin.pipeline.warmup`);
3. RRPO pairs from the model's own errors on perturbed videos (the RRPO generator);
4. RRPO training with LoRA, and DPO on the same pairs beside it;
5. held-out accuracy before and after, a table, and a PNG (reward margins per step, accuracy per stage).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from savi_plugin.recipe import load_recipe

log = logging.getLogger(__name__)


def _margins(summary: dict) -> list[tuple[int, float]]:
    """``rewards/margins`` per logged step, from the trainer's ``train_report.json``."""
    history = json.loads(Path(summary["report"]).read_text()).get("log_history", [])
    return [(int(h["step"]), float(h["rewards/margins"])) for h in history if "rewards/margins" in h]


def run_demo(out_dir: str | Path, recipe: str = "tiny_demo", overrides: list[str] | None = None) -> dict:
    """Run the demo into ``out_dir`` and return the results (also written to ``out_dir/results.json``)."""
    from savi_plugin.models import load_backend
    from savi_plugin.models.tiny import build_tiny_model
    from savi_plugin.pipeline.mcq_eval import mcq_accuracy
    from savi_plugin.pipeline.plots import plot_demo
    from savi_plugin.pipeline.steps import generate_step, train_step
    from savi_plugin.pipeline.warmup import mcq_target, supervised_warmup
    from savi_plugin.video import read_frames
    from savi_plugin.video.synthetic import make_synthetic_dataset

    started = time.time()
    cfg = load_recipe(recipe, overrides)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed = int(cfg.get("train", {}).get("seed", 0))
    frames = int(cfg["model"].get("num_frames", 4))
    demo = cfg.get("demo", {})
    data = cfg.get("data", {})
    timings: dict[str, float] = {}

    def lap(name: str, t0: float) -> None:
        timings[name] = round(time.time() - t0, 1)
        log.info("%s done in %.1fs", name, timings[name])

    t0 = time.time()
    train_set = make_synthetic_dataset(out / "videos" / "train", int(data.get("synthetic_videos") or 120), seed=seed)
    eval_set = make_synthetic_dataset(out / "videos" / "eval", int(data.get("synthetic_eval_videos") or 60),
                                      seed=seed + 1000)
    base = build_tiny_model(out / "models" / "random", "llava_onevision", seed=seed)
    train_videos = [read_frames(s.video, frames).frames for s in train_set]
    eval_videos = [read_frames(s.video, frames).frames for s in eval_set]
    lap("data and tiny model", t0)

    t0 = time.time()
    ev = cfg.get("eval", {})
    eval_kw = {"batch_size": int(ev.get("batch_size", 16)), "max_new_tokens": int(ev.get("max_new_tokens", 8))}
    lm = load_backend(base, backend=cfg["model"].get("backend"), num_frames=frames)
    random_acc = mcq_accuracy(lm, eval_videos, eval_set, desc="eval: random model", **eval_kw)
    warm = supervised_warmup(
        lm, train_videos, [s.mcq_prompt() for s in train_set],
        [mcq_target(s.options, s.answer_index) for s in train_set],
        steps=int(demo.get("warmup_steps", 60)), lr=float(demo.get("warmup_lr", 3e-3)), seed=seed,
        out_dir=out / "models" / "warm",
    )
    before = mcq_accuracy(lm, eval_videos, eval_set, desc="eval: before", **eval_kw)
    log.info("held-out accuracy: random model %.3f, after warm-up %.3f", random_acc["accuracy"], before["accuracy"])
    del lm
    lap("warm-up and eval before", t0)

    t0 = time.time()
    pairs = out / "data" / "rrpo_pairs.jsonl"
    gen_report = generate_step(cfg, model=warm, inputs=Path(train_set[0].video).parent / "samples.jsonl",
                               output=pairs)
    lap("RRPO pair generation", t0)

    results: dict = {"random": random_acc, "before": before, "generation": gen_report}
    methods = ["rrpo"] + (["dpo"] if demo.get("compare_dpo", True) else [])
    curves: dict[str, list] = {}
    for method in methods:
        t0 = time.time()
        summary = train_step(cfg, model=warm, data=pairs, output_dir=out / method, loss_type=method)
        lm = load_backend(warm, backend=cfg["model"].get("backend"), num_frames=frames,
                          adapter=summary["adapter"])
        results[method] = mcq_accuracy(lm, eval_videos, eval_set, desc=f"eval: after {method.upper()}", **eval_kw)
        results[method]["train"] = summary
        curves[method.upper()] = _margins(summary)
        log.info("held-out accuracy after %s: %.3f", method.upper(), results[method]["accuracy"])
        del lm
        lap(f"{method.upper()} training and eval", t0)

    accuracy = {"before": before["accuracy"], **{m.upper(): results[m]["accuracy"] for m in methods}}
    plot = plot_demo(out / "demo.png", curves, accuracy)
    results.update(timings=timings, seconds=round(time.time() - started, 1), plot=str(plot), out_dir=str(out))
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    return results


def format_table(results: dict) -> str:
    """The before/after table ``savi demo`` prints."""
    rows = [("random init", results["random"]), ("after warm-up (before)", results["before"])]
    rows += [(f"after {m.upper()}", results[m]) for m in ("rrpo", "dpo") if m in results]
    tasks = sorted(results["before"]["per_task"])
    header = f"{'stage':<24}{'accuracy':>9}  " + "  ".join(f"{t[:12]:>12}" for t in tasks)
    lines = [header, "-" * len(header)]
    for name, r in rows:
        lines.append(f"{name:<24}{100 * r['accuracy']:>8.1f}%  "
                     + "  ".join(f"{100 * r['per_task'].get(t, 0):>11.1f}%" for t in tasks))
    gen = results.get("generation", {})
    lines.append("")
    lines.append(f"RRPO pairs from the model's errors on perturbed videos: {gen.get('counts', {}).get('pairs', '?')}; "
                 f"time: {results.get('seconds')} s; plot: {results.get('plot')}")
    return "\n".join(lines)

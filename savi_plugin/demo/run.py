"""``savi demo``: the whole RRPO loop on a laptop CPU, offline, in a few minutes.

1. the demo's world (:mod:`savi_plugin.demo.world`): warm-up videos that teach a language prior (the shape
   word predicts the colour), and disjoint self-alignment and held-out videos where the prior fails half the time;
   a tiny random LLaVA-OneVision (``tiny://``);
2. a short supervised warm-up (demo only: :mod:`savi_plugin.demo.warmup`) that leaves the shortcut;
3. RRPO pairs from the warm model's own errors on perturbed self-alignment videos (the ``rrpo`` generator);
4. RRPO training with LoRA, and DPO on the same pairs beside it;
5. held-out accuracy per stage and group with standard errors, the table, and ``demo.png``.

The recipe (``tiny_demo``) is an ordinary one: the demo builds its videos in the run folder and hands the
pipeline's steps (:mod:`savi_plugin.pipeline.steps`) that recipe with the self-alignment set's ``samples.jsonl`` as
the generation input. The demo's own settings (set sizes, warm-up, DPO beside RRPO) are
:class:`~savi_plugin.demo.settings.DemoSettings`.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path

from savi_plugin.data.outputs import claim, write_json
from savi_plugin.data.paths import paths_for_file, run_folder
from savi_plugin.data.readers import read_records
from savi_plugin.config.values import to_dict
from savi_plugin.recipe import load_recipe, recipe_identity

log = logging.getLogger(__name__)


def _margins(summary: dict) -> list[tuple[int, float]]:
    """``rewards/margins`` per logged step, from the trainer's ``train_report.json``."""
    history = json.loads(Path(summary["report"]).read_text()).get("log_history", [])
    return [(int(h["step"]), float(h["rewards/margins"])) for h in history if "rewards/margins" in h]


def _check_disjoint(*sets) -> None:
    """Refuse to report held-out numbers if two sets share a drawn video."""
    seen: dict[str, str] = {}
    for samples in sets:
        for s in samples:
            other = seen.setdefault(s.facts["fingerprint"], s.id)
            if other != s.id:
                raise RuntimeError(f"demo sets are not disjoint: {s.id} draws the same video as {other}")


def _pairs_by_group(pairs_file: Path, samples) -> dict[str, int]:
    """How many pairs came from each report group (pair ids are ``<sample id>-rrpo-<k>``)."""
    from savi_plugin.demo.world import group_of

    groups = {s.id: group_of(s) for s in samples}
    counts: Counter = Counter()
    if pairs_file.exists() and pairs_file.stat().st_size:  # a run that made no pair leaves an empty file
        for _, record in read_records(pairs_file):
            counts[groups.get(record.id.rsplit("-rrpo-", 1)[0], "?")] += 1
    return dict(sorted(counts.items()))


def _versions() -> str:
    import torch
    import transformers

    return f"torch {torch.__version__}, transformers {transformers.__version__}"


def check_demo_frames(cfg) -> None:
    """Refuse frame counts above the frames of the clips the demo draws (:data:`~savi_plugin.demo.world.CLIP_FRAMES`):
    every item would be ``too_few_frames`` and the demo would end, after its warm-up, blaming the model.

    Raises:
        ConfigError: at the recipe key (``model.num_frames``, ``train.num_frames``).
    """
    from savi_plugin.config.values import ConfigError
    from savi_plugin.demo.world import CLIP_FRAMES

    for key, value in (("model.num_frames", cfg.model.num_frames), ("train.num_frames", cfg.train.get("num_frames"))):
        if isinstance(value, int) and value > CLIP_FRAMES:
            raise ConfigError(key, f"{value} is more than the {CLIP_FRAMES} frames of each clip the demo draws "
                                   f"(frames are never repeated to fill a clip): give at most {CLIP_FRAMES}",
                              cfg.source)


def check_demo_recipe(cfg, out: Path) -> None:
    """What the demo refuses of its recipe before its folder is claimed (``savi demo``, ``--seeds`` too): frame
    counts the clips lack (:func:`check_demo_frames`), and a train step this machine cannot run
    (:func:`~savi_plugin.training.arguments.check_trainable_here`: ``train.bf16`` without a GPU ...)."""
    from savi_plugin.training.arguments import check_trainable_here

    check_demo_frames(cfg)
    check_trainable_here(cfg, out / "rrpo")


def demo_steps(demo) -> dict:
    """What the demo writes in its folder (:func:`savi_plugin.data.outputs.claim`'s ``steps``): its videos and
    warm-up model (its own step products), the tiny model, the pairs, a training run per method, the results and
    the plot; ``demo``: its :class:`~savi_plugin.demo.settings.DemoSettings`."""
    from savi_plugin.data.outputs import OWN
    from savi_plugin.demo.world import KINDS

    methods = ["rrpo"] + (["dpo"] if demo.compare_dpo else [])
    return {"videos": {kind: "savi demo" for kind in KINDS},
            "models": {"tiny": OWN, "warm": "savi demo"}, "data": {"rrpo_pairs.jsonl": "savi generate"},
            **{method: "savi train" for method in methods}, "results.json": OWN, "demo.png": OWN}


def run_demo(out_dir: str | Path, recipe: str = "tiny_demo", overrides: list[str] | None = None) -> dict:
    """Run the demo into ``out_dir`` and return the results (also written to ``out_dir/results.json``).

    ``overrides``: ``key.path=value`` arguments; those under ``demo.`` set the demo's own settings
    (:mod:`savi_plugin.demo.settings`), the others override the recipe, which is an ordinary one.
    ``out_dir`` is claimed first (:func:`savi_plugin.data.outputs.claim`): new, or a demo folder of the same
    resolved recipe (by content) and settings; a folder holding the user's files is refused before anything is written.
    Each step resumes inside it: the videos and the warm-up model are kept once made
    (:func:`savi_plugin.data.outputs.step_product`), generation finishes its records, training its checkpoints."""
    from savi_plugin.demo.settings import load_settings, split_overrides
    from savi_plugin.recipe import resolve_recipe_path

    wall0, cpu0 = time.time(), time.process_time()
    own, recipe_overrides = split_overrides(overrides)
    settings = load_settings(own)
    cfg = load_recipe(recipe, recipe_overrides)
    out = Path(out_dir)
    check_demo_recipe(cfg, out)
    # the recipe by what it resolves to (recipe_identity), not as typed: the same demo from another working folder,
    # or moved whole, continues; the demo's own settings by value
    config = {"resolved": recipe_identity(cfg), "settings": to_dict(settings)}
    with claim(out, command="savi demo", config=config, folder=True, output_name="--out", what="demo folder",
               inputs={"the recipe": resolve_recipe_path(recipe)}, steps=demo_steps(settings)) as claimed:
        claimed.write_mark()
        with run_folder(out):  # every path its files store to its own files is relative: it moves whole
            return _run(cfg, settings, out, wall0, cpu0)


def _run(cfg, demo, out: Path, wall0: float, cpu0: float) -> dict:
    """:func:`run_demo` once ``out`` is claimed (new, or a demo folder of the same recipe); ``demo``: its
    :class:`~savi_plugin.demo.settings.DemoSettings`."""
    import torch

    from savi_plugin.demo.mcq_eval import mcq_accuracy
    from savi_plugin.models.tiny import resolve_model_path
    from savi_plugin.demo.plots import plot_demo
    from savi_plugin.demo.warmup import supervised_warmup
    from savi_plugin.data.identity import content_identity, model_identity
    from savi_plugin.data.outputs import step_product
    from savi_plugin.demo.world import group_of, world_set
    from savi_plugin.models import load_backend
    from savi_plugin.pipeline.steps import generate_step, train_step
    from savi_plugin.video import read_frames

    seed = cfg.seed
    frames = cfg.model.num_frames
    backend = cfg.model.backend
    timings: dict[str, float] = {}

    def lap(name: str, t0: float) -> None:
        timings[name] = round(time.time() - t0, 1)
        log.info("%s done in %.1fs", name, timings[name])

    t0 = time.time()
    sizes = {"warmup": demo.warmup_videos, "align": demo.align_videos, "heldout": demo.heldout_videos}
    sets = {kind: world_set(out / "videos" / kind, kind, n, seed=seed) for kind, n in sizes.items()}
    _check_disjoint(*sets.values())
    base = resolve_model_path(cfg.model.path, out, seed=seed)
    decoded = {kind: [read_frames(s.video, frames).frames for s in samples] for kind, samples in sets.items()}
    warm_set, heldout = sets["warmup"], sets["heldout"]
    lap("data and tiny model", t0)

    t0 = time.time()
    ev = cfg.eval
    eval_kw = {"batch_size": ev.batch_size, "max_new_tokens": ev.max_new_tokens or 8,
               "group": group_of}
    warm = out / "models" / "warm"

    def warm_up(tmp: Path) -> None:
        supervised_warmup(load_backend(base, backend=backend, num_frames=frames), decoded["warmup"],
                          [s.mcq_prompt() for s in warm_set], [s.answer for s in warm_set],
                          steps=demo.warmup_steps, lr=demo.warmup_lr, seed=seed, out_dir=tmp)

    # made once and kept: the pairs and adapters were made from these weights, and a warm-up is not bit for bit
    # the same on another thread count
    warm_config = {"steps": demo.warmup_steps, "lr": demo.warmup_lr, "seed": seed, "backend": backend,
                   "num_frames": frames, "identity": {"model": model_identity(base),
                                                      "videos": content_identity(out / "videos" / "warmup")}}
    if step_product(warm, command="savi demo", config=warm_config, make=warm_up, what="the demo's warm-up model"):
        log.info("%s: the warm-up model of this run, kept", warm)
    lm = load_backend(warm, backend=backend, num_frames=frames)
    before = mcq_accuracy(lm, decoded["heldout"], heldout, desc="eval: before", **eval_kw)
    log.info("held-out accuracy after warm-up: %.3f", before["accuracy"])
    del lm
    lap("warm-up and eval before", t0)

    t0 = time.time()
    pairs = out / "data" / "rrpo_pairs.jsonl"
    gen_report = generate_step(cfg, model=warm, inputs=out / "videos" / "align" / "samples.jsonl", output=pairs)
    lap("RRPO pair generation", t0)
    if not gen_report["counts"]["pairs"]:  # the warm model erred on no video: nothing to prefer, nothing to train
        from savi_plugin.errors import RunError

        raise RunError(f"{pairs}: the warmed-up model made no error on the {demo.align_videos} alignment video(s) "
                       f"(demo.align_videos), so RRPO found no pair to train on; this folder keeps the videos and "
                       f"warm-up model of these settings: run with a larger demo.align_videos (or other "
                       f"demo.warmup_* settings) into another --out")

    results: dict = {"before": before, "generation": gen_report,
                     "pairs_by_group": _pairs_by_group(pairs, sets["align"]), "sets": sizes}
    methods = ["rrpo"] + (["dpo"] if demo.compare_dpo else [])
    curves: dict[str, list] = {}
    for method in methods:
        t0 = time.time()
        summary = train_step(cfg, model=warm, data=pairs, output_dir=out / method, loss_type=method,
                             print_logs=False)  # the table and demo.png show the margins
        lm = load_backend(warm, backend=backend, num_frames=frames, adapter=summary["adapter"])
        results[method] = mcq_accuracy(lm, decoded["heldout"], heldout, desc=f"eval: after {method.upper()}",
                                       **eval_kw)
        results[method]["train"] = summary
        curves[method.upper()] = _margins(summary)
        log.info("held-out accuracy after %s: %.3f", method.upper(), results[method]["accuracy"])
        del lm
        lap(f"{method.upper()} training and eval", t0)

    accuracy = {"before": before, **{m.upper(): results[m] for m in methods}}
    plot = plot_demo(out / "demo.png", curves, accuracy)
    results.update(timings=timings, plot=str(plot), out_dir=str(out), versions=_versions(),
                   time={"wall_s": time.time() - wall0, "cpu_s": time.process_time() - cpu0,
                         "threads": torch.get_num_threads()})
    stored = paths_for_file(results, out / "results.json")  # paths relative to the run folder (data.paths)
    write_json(out / "results.json", stored, indent=1)
    return results

"""``savi align``: iterative self-alignment, generate -> train -> eval, N times, in one run folder.

Iteration i generates pairs with model_i, trains a LoRA adapter on them (the reference is model_i itself,
through the disabled adapter), merges the adapter into model_{i+1}, and evaluates model_{i+1}. This is the
loop of VideoSAVi (arXiv 2412.00624, "iterations") and of iterative DPO in LLaVA-OneVision.

``manifest.json`` records every finished step; a re-run of the same command skips them, so a killed run
resumes where it stopped, and each step resumes inside itself: generation skips finished records, training
continues from the last complete checkpoint of the iteration's ``train`` folder. The manifest also holds the
recipe; a re-run with another recipe, model or backend in the same folder is refused, naming what changed
(:mod:`savi_plugin.data.fingerprint`; ``align.iterations`` may grow). The ``eval`` section and
``align.eval_every_iteration`` are not part of that identity: no generation, training or merge result depends
on them. Each iteration's eval entry stores the eval configuration it was made with
(:func:`savi_plugin.pipeline.evaluate.eval_config`); a re-run whose eval configuration differs re-does exactly
the eval steps whose stored configuration differs (and ``eval_base`` likewise), replacing their folders whole,
and keeps every pair, adapter and merged model. One ``savi align`` at a time works in a run folder
(:class:`~savi_plugin.data.outputs.OutputLock`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from savi_plugin.data.files import read_json
from savi_plugin.data.fingerprint import check_same_config
from savi_plugin.data.identity import files_identity, input_identity, model_identity
from savi_plugin.data.kept import seal
from savi_plugin.data.outputs import OWN, claim, replace_folder, write_json
from savi_plugin.data.paths import path_for_file, path_from_file, paths_for_file, run_folder
from savi_plugin.data.watched import WatchedFiles
from savi_plugin.recipe import OUTPUT_KEYS, recipe_for_file

log = logging.getLogger(__name__)


class Manifest:
    """``run_dir/manifest.json``: what each iteration produced. Written atomically after every step."""

    def __init__(self, run_dir: Path, recipe: dict):
        self.path = run_dir / "manifest.json"
        if self.path.exists():
            self.data = _unsealed(self.path, read_json(self.path))
        else:
            self.data = {"recipe": recipe, "iterations": []}

    def iteration(self, i: int) -> dict:
        while len(self.data["iterations"]) <= i:
            self.data["iterations"].append({"iteration": len(self.data["iterations"])})
        return self.data["iterations"][i]

    def stored(self, value):
        """A path as the manifest stores it (relative to its folder, or absolute; :mod:`savi_plugin.data.paths`).

        A value naming nothing on disk (a hub id) is stored as given; so are non-strings. Dicts (step
        summaries) have every string that names an existing path converted.
        """
        if isinstance(value, (str, Path)) and str(value) and os.path.exists(value):
            return path_for_file(value, self.path)
        return paths_for_file(value, self.path)

    def resolved(self, value: str) -> str:
        """The path a stored value names, from any working folder (a hub id comes back as stored)."""
        candidate = path_from_file(value, self.path)
        return str(candidate) if candidate.exists() else value

    def save(self) -> None:
        from savi_plugin.launch import current

        if not current().is_main:  # under a launcher rank 0 writes the manifest
            return
        write_json(self.path, seal(self.data), indent=1)


def _unsealed(path: Path, data) -> dict:
    """A manifest's steps as :meth:`Manifest.save` sealed them (:func:`savi_plugin.data.kept.seal`): every kept
    step is used again on the strength of what the manifest records of it (the identities its checks compare, the
    results it reports), so one edited by hand is refused. A manifest without a seal (written by an earlier savi)
    is taken as it is, with a warning, and sealed on its next save.

    Raises:
        RunError: the manifest is not a JSON object, or changed after savi align wrote it.
    """
    from savi_plugin.errors import RunError

    remedy = "put it back, or start over with a new --out"
    if not isinstance(data, dict) or not isinstance(data.get("iterations", []), list):
        raise RunError(f"{path}: not a savi align manifest (a JSON object with a list of iterations): {remedy}")
    if "sha256" not in data:
        log.warning("%s: holds no seal (written by an earlier savi): its steps are taken as recorded", path)
        return data
    if seal(data)["sha256"] != data["sha256"]:
        raise RunError(f"{path}: changed after savi align wrote it (the steps it records are not the run's): "
                       f"{remedy}")
    return {k: v for k, v in data.items() if k != "sha256"}


#: the command our mark of a merged model folder (``iter_<i>/model``) names
MERGE_COMMAND = "savi align merge"


def merge_adapter(model_path: str | Path, adapter_dir: str | Path, out_dir: str | Path, backend: str | None) -> Path:
    """Fold a LoRA adapter into the weights and save a full checkpoint (the next iteration's model)."""
    from savi_plugin.models import load_backend

    lm = load_backend(model_path, backend=backend, adapter=adapter_dir)
    merged = lm.model.merge_and_unload()
    out_dir = Path(out_dir)
    with claim(out_dir, command=MERGE_COMMAND, folder=True, replace_ours=True, output_name="merged model folder",
               inputs={"the model": model_path, "the adapter": adapter_dir}, lock_beside=True) as claimed:
        with replace_folder(out_dir) as tmp:  # a kill while saving leaves the previous folder (or none)
            merged.save_pretrained(tmp)
            lm.processor.save_pretrained(tmp)
        claimed.write_mark()
    return out_dir


def generation_source(recipe, required: bool = True) -> tuple[str, Path | None]:
    """``(recipe key, path)`` of the generation input: ``data.qa`` for rrpo, ``data.videos`` (else ``data.qa``)
    for the others; the path is None when the recipe sets neither and ``required`` is false (a dry run).

    Raises:
        ConfigError: the recipe names no input, or one that does not exist (``required``).
    """
    from savi_plugin.config.values import ConfigError

    data, generator = recipe.data, recipe.generate.generator
    key, source = ("qa", data.qa) if generator == "rrpo" or not data.videos else ("videos", data.videos)
    if not source:
        key = "qa" if generator == "rrpo" else "videos"
        if required:
            raise ConfigError(f"data.{key}", f"required by the {generator} generator", recipe.source)
        return f"data.{key}", None
    if required and not os.path.lexists(source):  # before the claim: the key is named, the folder not begun
        raise ConfigError(f"data.{key}", f"{source} does not exist (the {generator} generator's input)",
                          recipe.source)
    if required and generation_needs(recipe) == "file" and os.path.isdir(source):
        raise ConfigError(f"data.{key}", f"{source} is a folder; the {generator} generator reads a file: "
                                         f"{QA_MANIFEST}", recipe.source)
    return f"data.{key}", Path(source)


#: what the RRPO generator's input is (its questions and answers come from it; a folder of videos holds none)
QA_MANIFEST = "a video-QA JSONL manifest with ground truth, one object a line: video, question, answer"


def generation_needs(recipe) -> str:
    """What the generation input must be, as a dry run notes it (:func:`savi_plugin.pipeline.dry_run._where`)
    and the run refuses it (:func:`generation_source`): ``"file"`` for rrpo (a QA manifest), else ``"file or
    folder"`` (a folder of videos or a manifest)."""
    return "file" if recipe.generate.generator == "rrpo" else "file or folder"


def resolve_model(recipe, run_dir: Path) -> str:
    """The model to start from: a path or hub id as given; a ``tiny://`` address is built in the run folder
    (:func:`savi_plugin.models.tiny.resolve_model_path`)."""
    from savi_plugin.models.tiny import resolve_model_path

    return resolve_model_path(recipe.model.path, run_dir, seed=recipe.seed)


def run_align(recipe, run_dir: str | Path, iterations: int | None = None, evaluate=None) -> dict:
    """Run (or resume) the loop.

    Args:
        recipe: a checked :class:`~savi_plugin.config.sections.Recipe` (:func:`savi_plugin.recipe.load_recipe`).
        run_dir: the run folder; everything goes here.
        iterations: overrides ``align.iterations``.
        evaluate: ``f(recipe, model_path, out_dir, base=first_model) -> dict`` for the eval step; default runs
            lmms-eval with the recipe's tasks and compares with the first model on the same items
            (:func:`savi_plugin.pipeline.evaluate.evaluate_step`).
    """
    if evaluate is None:
        from savi_plugin.pipeline.evaluate import evaluate_step as evaluate
    from savi_plugin.launch import current
    from savi_plugin.pipeline.ranks import join_process_group

    run_dir = Path(run_dir)
    _, source = generation_source(recipe)  # a recipe with no generation input is refused before the claim
    inputs = recipe_inputs(recipe)
    # each video's signature is kept as its identity read it: a video changed in any iteration stops the run
    # (data/watched.py), so no iteration generates or trains on another version than the run records
    watch = WatchedFiles("a video the recipe's input names")
    identity = {name: _identity(name, path, watch) for name, path in inputs.items()  # a data root is read
                if name not in ("data.data_root", "eval.data_root")}  # through what the run names in it
    videos = _manifest_videos(source, recipe.data.data_root)
    identity["videos"] = files_identity(videos, watch=watch) if videos is not None else None
    # the eval data root's files, as the run's eval configuration read them (eval_config): every eval step (each
    # iteration's, eval_base) checks them before and after lmms-eval runs (savi_video_command), so the iterations
    # and the base they are paired with are scored on the same data
    eval_watch = WatchedFiles("a file of the eval data root (eval.data_root)")
    # the recipe with its paths stored by the rule (relative to the run folder or absolute), so the same run from
    # another working folder, or the folder moved whole, is the same configuration
    config = {"recipe": recipe_for_file(recipe, run_dir / "manifest.json"), "identity": identity}
    join_process_group()  # under a launcher: generation shards, training runs on every rank (pipeline/ranks.py)
    with claim(run_dir, config=config, **align_output_claim(recipe, videos)) as claimed, \
            watch, eval_watch:
        if current().is_main:  # rank 0 locks and marks the folder; the other ranks check it
            claimed.write_mark()
        with run_folder(run_dir):  # every path its files store to its own files is relative: it moves whole
            return _run_locked(recipe, run_dir, iterations, evaluate, eval_watch)


def align_output_claim(recipe, videos: list[str] | None = None) -> dict:
    """How ``savi align`` claims its run folder (:func:`savi_plugin.data.outputs.claim`'s arguments, less the
    configuration), asked by the run and, through :func:`savi_plugin.data.outputs.check_claim`, by its dry run;
    ``videos``: those the generation manifest names (read here when not given). Records (made from the recipe
    alone before the first result: an error before it removes them with the folder): the manifest and the tiny
    model a ``tiny://`` address builds; each step's results: its own folder."""
    if videos is None:
        _, source = generation_source(recipe, required=False)
        videos = _manifest_videos(source, recipe.data.data_root) if source is not None else None
    return dict(command="savi align", folder=True, inputs=recipe_inputs(recipe), output_name="--out",
                what="align run folder", ignore=tuple(f"recipe.{k}" for k in RESUMABLE_RECIPE_KEYS),
                input_files={"a video the manifest names": videos or ()}, steps=align_steps(),
                records=("manifest.json", "models"))


def align_steps() -> dict:
    """What ``savi align`` writes in its run folder (:func:`savi_plugin.data.outputs.claim`'s ``steps``): per
    iteration its pairs (one file, or a shard per rank), training run, merged model and evaluation; the base
    model's evaluation, the manifest, and a ``tiny://`` model with its synthetic eval data."""
    from savi_plugin.pipeline.evaluate import EVAL_COMMAND

    generated = ["savi generate", "savi generate merge"]  # one process's pairs, or its ranks' shards merged
    iteration = {"pairs.jsonl": generated, "pairs.shard-*.jsonl": "savi generate", "train": "savi train",
                 "model": MERGE_COMMAND, "eval": EVAL_COMMAND}
    return {"iter_[0-9]*": iteration, "eval_base": EVAL_COMMAND, "manifest.json": OWN, "models": {"tiny": OWN},
            "eval_data": OWN, "hf_home": OWN}


def recipe_inputs(recipe) -> dict[str, Path]:
    """Every local file or folder the recipe makes the run read, by recipe key (the run folder may hold none)."""
    found: dict[str, Path] = {}
    if recipe.source and os.path.exists(recipe.source):
        found["the recipe"] = Path(recipe.source)
    candidates = {"model.path": recipe.model.path, "data.qa": recipe.data.qa, "data.videos": recipe.data.videos,
                  "data.pairs": recipe.data.pairs, "data.data_root": recipe.data.data_root,
                  "eval.data_root": getattr(recipe.eval, "data_root", None),
                  "reference_model": getattr(recipe, "reference_model", None)}
    for key, value in candidates.items():
        if isinstance(value, (str, Path)) and str(value) and "://" not in str(value) and os.path.exists(value):
            found[key] = Path(value)
    return found


def _manifest_videos(source: Path, data_root) -> list[str] | None:
    """The videos a manifest names, None when ``source`` is not a file (a folder input's identity covers its files
    already). Their identity is part of the run's: a video replaced at the same path makes a later iteration
    another run's data, as in ``savi generate``; and they are inputs no output may be or hold."""
    from savi_plugin.generators.inputs import load_inputs

    if not source.is_file():
        return None
    return [item.video for item in load_inputs(source, data_root)]


def _identity(key: str, path: Path, watch: WatchedFiles | None = None):
    """A model by its files (:func:`model_identity`), a data file or video folder by content (``watch`` keeps the
    signature of each video of a folder)."""
    if key in ("model.path", "reference_model"):
        return model_identity(path)
    return input_identity(path, watch=watch if key == "data.videos" else None)


#: recipe keys that may change when a run folder is resumed: where the recipe was read from, more iterations, and
#: the eval step's settings (no generation, training or merge result depends on them; each eval entry stores its
#: own, :func:`savi_plugin.pipeline.evaluate.eval_config`)
RESUMABLE_RECIPE_KEYS = ("_source", "source", "align.iterations", "align.eval_every_iteration", "eval",
                         *OUTPUT_KEYS)  # each iteration trains into its own folder: the recipe's output_dir is unused


def _run_locked(recipe, run_dir: Path, iterations: int | None, evaluate, eval_watch: WatchedFiles) -> dict:
    from savi_plugin.pipeline.ranks import check_processes, main_first, on_main
    from savi_plugin.pipeline.steps import generate_step, train_step
    from savi_plugin.training.run import last_complete_checkpoint

    from savi_plugin.pipeline.evaluate import eval_config

    stored_recipe = recipe_for_file(recipe, run_dir / "manifest.json")  # paths by the rule, as the mark's
    manifest = Manifest(run_dir, stored_recipe)
    check_same_config(manifest.data.get("recipe"), stored_recipe, output=run_dir, stored_at=manifest.path,
                      ignore=RESUMABLE_RECIPE_KEYS, remedy="re-run with the recipe of this folder, or use a new --out")
    n = iterations or recipe.align.iterations
    begun = [i for i, it in enumerate(manifest.data.get("iterations", [])) if "data_report" in it]
    if begun and begun[-1] >= n:  # what it holds past them would be reported and handed back as this run's
        from savi_plugin.data.fingerprint import ConfigMismatchError

        raise ConfigMismatchError(f"{run_dir}: holds {begun[-1] + 1} iteration(s), more than the {n} asked for "
                                  f"(align.iterations or --iterations): a run is extended, never shortened; ask for "
                                  f"{begun[-1] + 1} or more, or use a new --out")
    evaluation = eval_config(recipe, run_dir, watch=eval_watch)
    _date_old_evals(manifest, stored_recipe, evaluation)
    manifest.data["recipe"] = stored_recipe  # the resumable keys as this run uses them
    manifest.save()  # the recipe is on disk before the first step starts
    backend = recipe.model.backend
    for i, it in enumerate(manifest.data["iterations"]):  # before any work: one line, nothing started
        check_processes(it, run_dir)
    model = main_first(lambda: resolve_model(recipe, run_dir))
    inputs = generation_source(recipe)[1]
    base_model = model
    # a kept result compared with the base model (vs_base) stands only while the base's evaluation does
    compared = recipe.align.eval_every_iteration and any("vs_base" in (it.get("eval") or {})
                                                          for it in manifest.data["iterations"])
    base_kept = not compared or on_main(lambda: _base_eval_kept(run_dir, base_model, evaluation))
    for i in range(n):
        it = manifest.iteration(i)
        folder = run_dir / f"iter_{i}"
        it.setdefault("model", manifest.stored(model))
        check_processes(it, run_dir)
        if "data_report" in it:  # kept from an earlier run: still what its run made, or the run is not the same
            _check_kept_pairs(path_from_file(it["data"], manifest.path), i, it["data_report"])
        if "data_report" not in it:
            pairs = folder / "pairs.jsonl"
            manifest.save()  # the number of processes this iteration started with
            report = generate_step(recipe, model=model, inputs=inputs, output=pairs, seed=recipe.generate.seed + i)
            report = on_main(lambda: merged_shards(pairs)) or report  # each rank wrote its shard
            if not report.get("complete", True):  # items to retry: the step is not done, training would refuse it
                from savi_plugin.errors import RunError

                raise RunError(f"{pairs}: {report['counts'].get('items_to_retry')} item(s) failed for a transient "
                               f"reason (see {report.get('report')}); re-run the same savi align to retry them")
            if not report.get("counts", {}).get("pairs", 1):
                from savi_plugin.errors import RunError

                reasons = ", ".join(f"{n} {r}" for r, n in report["counts"].get("by_reason", {}).items())
                raise RunError(f"{pairs}: generation made no preference pair from "
                               f"{report['counts'].get('items_done')} item(s) (candidates: {reasons or 'none'}; "
                               f"see {report.get('report')}); training needs pairs")
            it.update(data=manifest.stored(pairs), data_report=manifest.stored(report))
            manifest.save()
        if "adapter" not in it:
            resume = last_complete_checkpoint(folder / "train") is not None  # a run killed during training
            summary = train_step(recipe, model=model, data=manifest.resolved(it["data"]), output_dir=folder / "train",
                                 resume=resume)
            it.update(adapter=manifest.stored(summary["adapter"]), train=manifest.stored(summary),
                      adapter_identity=on_main(lambda: model_identity(summary["adapter"])))
            manifest.save()
        elif it.get("adapter_identity") is not None:  # kept: still the adapter this iteration trained and merged
            on_main(lambda: _check_kept_model(path_from_file(it["adapter"], manifest.path), it["adapter_identity"],
                                              i, "adapter"))
        if "next_model" not in it:
            it["next_model"] = on_main(lambda: manifest.stored(merge_adapter(
                model, manifest.resolved(it["adapter"]), folder / "model", backend)))
            it["next_model_identity"] = on_main(lambda: model_identity(manifest.resolved(it["next_model"])))
            manifest.save()
        elif it.get("next_model_identity") is not None:  # kept: still the weights this iteration merged
            on_main(lambda: _check_kept_model(path_from_file(it["next_model"], manifest.path),
                                              it["next_model_identity"], i))
        model = manifest.resolved(it["next_model"])
        if recipe.align.eval_every_iteration and ("eval" not in it or it.get("eval_config") != evaluation or not
                                                  on_main(lambda: _eval_kept(it, folder / "eval", evaluation,
                                                                             base_kept))):
            if "eval" in it and it.get("eval_config") != evaluation:
                log.info("iteration %d: the eval configuration differs from the stored one; evaluating again", i)
            it.pop("eval", None)
            it.pop("eval_config", None)
            manifest.save()  # no entry names a result of another eval configuration while the step runs
            it["eval"] = on_main(lambda: manifest.stored(_evaluate_fresh(evaluate, recipe, model, folder / "eval",
                                                                         base_model, evaluation)))
            it["eval_config"] = evaluation
            manifest.save()
    return manifest.data


def _check_kept_pairs(pairs: Path, iteration: int, stored: dict | None = None) -> None:
    """Refuse to continue a run whose kept iteration's pairs changed since that iteration made them (a line removed,
    the file edited: :func:`~savi_plugin.data.provenance.run_problem`; or extended or regenerated with its report,
    by a ``savi generate`` run by hand into the run folder: the content the iteration's report ``stored`` in the
    manifest vouched for): its training used them as they were, so the run would report pairs and results it no
    longer holds.

    Raises:
        RunError: naming the file and what its report says.
    """
    from savi_plugin.data.provenance import content_changed, run_problem
    from savi_plugin.errors import RunError

    problem = "it is gone" if not os.path.isfile(pairs) else run_problem(pairs)
    if problem is None and isinstance(stored, dict) and content_changed(pairs, stored):
        problem = (f"it is not the file iteration {iteration} made (its content changed since, with its report: "
                   f"another command wrote it)")
    if problem:
        raise RunError(f"{pairs}: {problem}; iteration {iteration} of this run was made from the pairs as they "
                       f"were: put the file back, or start over with a new --out")


def _check_kept_model(model: Path, stored: dict, iteration: int, what: str = "merged model") -> None:
    """Refuse to continue a run whose kept iteration's merged model (or ``what``: its adapter, retrained by a
    ``savi train --resume`` by hand) changed since that iteration wrote it (weights copied over it, a file removed),
    compared by content (:func:`~savi_plugin.data.identity.model_identity`): the next iteration would generate and
    train from other weights than the run records, and its numbers would be reported as this run's.

    Raises:
        RunError: naming the folder and the files that differ.
    """
    from savi_plugin.data.identity import identity_differences, same_identity
    from savi_plugin.errors import RunError

    now = model_identity(model) if model.is_dir() else None
    if not same_identity(stored, now):
        change = "it is gone" if now is None else f"its files differ: {identity_differences(stored, now) or 'content'}"
        raise RunError(f"{model}: iteration {iteration}'s {what} changed since this run wrote it ({change}); the "
                       f"run would go on from other weights than it records: put it back, or start over with a new "
                       f"--out")


def _base_eval_kept(run_dir: Path, base_model, evaluation: dict) -> bool:
    """:func:`savi_plugin.pipeline.evaluate.base_eval_kept`, with a note when it is gone: every iteration result
    compared with it is evaluated again (the first re-makes it)."""
    from savi_plugin.pipeline.evaluate import base_eval_kept

    kept = base_eval_kept(run_dir, base_model, evaluation)
    if not kept:
        log.warning("%s: holds no evaluation of the base model with this eval configuration (removed?); the "
                    "iterations compared with it are evaluated again", run_dir / "eval_base")
    return kept


def _eval_kept(it: dict, eval_dir: Path, evaluation: dict, base_kept: bool) -> bool:
    """Whether a kept iteration's eval result (its entry in the manifest, of eval configuration ``evaluation``) still
    stands on its folder: ``eval_dir`` carries our mark of that configuration with the files it was finished with,
    and, for a result compared with the base model, ``eval_base`` stands too (``base_kept``). A folder removed (or
    its mark) is evaluated again, with a note; one whose files changed is refused by the output layer, naming it
    (as when it is replaced: a file someone put there is never removed).

    Raises:
        ForeignOutputError: ``eval_dir`` changed since the eval step wrote it.
    """
    from savi_plugin.data.outputs import check_claim, read_mark
    from savi_plugin.pipeline.evaluate import EVAL_COMMAND

    mark = read_mark(eval_dir, True) if eval_dir.is_dir() else None
    if mark is None or mark.get("command") != EVAL_COMMAND or (mark.get("config") or {}).get("eval") != evaluation:
        log.warning("%s: holds no result of iteration %s's evaluation (removed?); evaluating it again", eval_dir,
                    it.get("iteration"))
        return False
    check_claim(eval_dir, command=EVAL_COMMAND, folder=True, replace_ours=True, output_name="eval folder",
                lock_beside=True)
    return base_kept or "vs_base" not in (it.get("eval") or {})


def _evaluate_fresh(evaluate, recipe, model, out_dir: Path, base_model, evaluation: dict) -> dict:
    """Run the eval step into ``out_dir``, replacing a previous eval folder whole (through the output layer: it
    must carry our mark of this step; a file someone else put there is refused, never removed)."""
    from savi_plugin.pipeline.evaluate import fresh_eval_folder

    with fresh_eval_folder(out_dir, evaluation, inputs={"the model": model}) as tmp:
        results = evaluate(recipe, model, tmp, base=base_model)
    return results


def _date_old_evals(manifest: Manifest, stored_recipe: dict, evaluation: dict) -> None:
    """Eval entries written without their eval configuration (a manifest of an earlier version, whose whole recipe
    was compared) were made with the stored recipe's eval section: they keep ``evaluation`` when that section is
    this run's, and are evaluated again otherwise."""
    from savi_plugin.data.fingerprint import config_changes

    stored = (manifest.data.get("recipe") or {}).get("eval")
    same = stored is not None and not config_changes({"eval": stored}, {"eval": stored_recipe["eval"]})
    for it in manifest.data["iterations"]:
        if "eval" in it and "eval_config" not in it and same:
            it["eval_config"] = evaluation


def merged_shards(pairs: Path) -> dict | None:
    """Merge the iteration's generation shards (one per rank) into ``pairs`` and return the combined run report
    (the shards' counts summed, the merge's own report under ``merged``); None when one process wrote ``pairs``."""
    from savi_plugin.generators.merge import merge_shards
    from savi_plugin.generators.runner import find_shards

    shards = find_shards(pairs)
    if not shards:
        return None
    merged = merge_shards(shards, pairs)
    return {**merged.get("run", {}), "merged": {k: v for k, v in merged.items() if k != "run"}}

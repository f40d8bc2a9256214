"""The eval step of a recipe: the real lmms-eval CLI with our tasks and the ``savi_video`` model.

Runs ``python -m lmms_eval`` in a subprocess (as users do, so the entry-point registration is exercised),
then reads the results JSON lmms-eval writes and returns ``{task: {metric: value}}``. Given the base model, it
also evaluates that once per run folder (``eval_base/``, kept) and adds ``vs_base``: per task the change over the
base model on the same items with its paired bootstrap 95% interval (:func:`savi_plugin.eval.suite.compare_runs`,
the comparison ``savi eval suite`` reports).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

from savi_plugin.eval.command import lmms_eval_command, savi_video_args
from savi_plugin.eval.results import overall_counts

log = logging.getLogger(__name__)


def read_lmms_eval_results(output_path: str | Path) -> dict:
    """The newest ``*_results.json`` under ``output_path``: ``{task: {metric: value}}`` (stderr dropped), and
    ``overall``: the run's unparsed / missing_video / bad_video counts."""
    files = sorted(Path(output_path).rglob("*_results.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise FileNotFoundError(f"{output_path}: lmms-eval wrote no *_results.json")
    data = json.loads(files[-1].read_text())
    out = {}
    for task, metrics in {**data.get("results", {}), **data.get("groups", {})}.items():
        out[task] = {k.split(",")[0]: v for k, v in metrics.items()
                     if "," in k and "_stderr" not in k and isinstance(v, (int, float))}
    out["overall"] = overall_counts(data)
    return out


#: characters lmms-eval's ``--model_args`` parser reads as syntax (``k=v,k=v``, quotes and JSON brackets)
MODEL_ARGS_SYNTAX = set(",=\"'{}[]")


@contextmanager
def model_args_paths(*paths: str | Path | None):
    """Paths that are safe inside ``--model_args``: a path holding a comma, a quote, ``=`` or a bracket is
    replaced, for the duration of the call, by a symbolic link to it in a fresh temporary folder."""
    with tempfile.TemporaryDirectory(prefix="savi-model-args-") as links:
        out = []
        for n, path in enumerate(paths):
            if path is not None and MODEL_ARGS_SYNTAX & set(str(path)):
                link = Path(links) / f"path{n}"
                link.symlink_to(Path(path).resolve(), target_is_directory=Path(path).is_dir())
                if MODEL_ARGS_SYNTAX & set(str(link)):
                    raise ValueError(f"{path}: lmms-eval's --model_args cannot carry this path (it holds one of "
                                     f"{''.join(sorted(MODEL_ARGS_SYNTAX))}), nor can the temporary folder {links}")
                path = link
            out.append(path)
        yield out


def eval_command(recipe, model: str | Path, out_dir: str | Path, adapter: str | Path | None = None) -> list[str]:
    """The lmms-eval command line of the recipe's eval step (``eval`` section; frames default to the model's)."""
    ev = recipe.eval
    return lmms_eval_command(savi_video_args(
        model, list(ev.tasks), Path(out_dir) / "lmms_eval", num_frames=ev.num_frames or recipe.model.num_frames,
        adapter=adapter, limit=ev.limit, batch_size=ev.batch_size, max_new_tokens=ev.max_new_tokens,
        dtype=recipe.model.dtype) + ["--log_samples"])


def evaluate_step(recipe, model: str | Path, out_dir: str | Path, adapter: str | Path | None = None, *,
                  base: str | Path | None = None) -> dict:
    """Evaluate ``model`` (+ ``adapter``) on the recipe's ``eval.tasks``; returns ``{task: {metric: value}}``, and,
    with ``base`` (the model the run started from), ``vs_base``: ``{task: {n, base, aligned, delta, low, high}}``
    over the same items (the base is evaluated once, into ``<run folder>/eval_base``).

    The data come from ``eval.data_root`` (the ``SAVI_DATA_ROOT`` layout) when set. For the demo's tiny recipe
    without a data root, :func:`savi_plugin.demo.models.offline_eval_root` builds a small synthetic
    MVBench-format set in the run folder so the loop runs offline.
    """
    run_dir = Path(out_dir).parent.parent
    results = _lmms_eval(recipe, model, Path(out_dir), run_dir, adapter)
    if base is not None:
        from savi_plugin.eval.results import read_run
        from savi_plugin.eval.suite import compare_runs

        base_dir = run_dir / "eval_base"
        if not (base_dir / "results.json").is_file():
            _lmms_eval(recipe, base, base_dir, run_dir)
        deltas = compare_runs(read_run(base_dir / "lmms_eval"), read_run(Path(out_dir) / "lmms_eval"),
                              list(recipe.eval.tasks))
        results["vs_base"] = {task: delta.to_dict() for task, delta in deltas.items()}
        (Path(out_dir) / "results.json").write_text(json.dumps(results, indent=1))
    return results


def _lmms_eval(recipe, model: str | Path, out_dir: Path, run_dir: Path, adapter: str | Path | None = None) -> dict:
    """One lmms-eval run of the recipe's eval into ``out_dir`` (``results.json`` beside lmms-eval's output)."""
    from savi_plugin.demo.models import offline_eval_root
    from savi_plugin.eval.fixtures import offline_env

    out_dir.mkdir(parents=True, exist_ok=True)
    data_root = recipe.eval.data_root
    env = dict(os.environ)
    offline_root = offline_eval_root(recipe, run_dir)
    if offline_root is not None:
        data_root = offline_root
        env = offline_env(data_root, run_dir / "hf_home")
    elif data_root is not None:
        env["SAVI_DATA_ROOT"] = str(data_root)
    with model_args_paths(model, adapter) as (model_arg, adapter_arg):  # a comma in a run folder's path
        command = eval_command(recipe, model_arg, out_dir, adapter_arg)
        log.info("running: %s", " ".join(map(str, command)))
        with open(out_dir / "lmms_eval.log", "w") as logfile:
            code = subprocess.call(command, env=env, stdout=logfile, stderr=subprocess.STDOUT)
    if code != 0:
        raise RuntimeError(f"lmms-eval failed with exit code {code}; see {out_dir / 'lmms_eval.log'}")
    results = read_lmms_eval_results(out_dir / "lmms_eval")
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    return results

"""The eval step of a recipe: the real lmms-eval CLI with our tasks and the ``savi_video`` model.

Runs ``python -m lmms_eval`` in a subprocess (as users do, so the entry-point registration is exercised),
then reads the results JSON lmms-eval writes and returns ``{task: {metric: value}}``. Given the base model, it
also evaluates that once per run folder (``eval_base/``, kept) and adds ``vs_base``: per task the change over the
base model on the same items with its paired bootstrap 95% interval (:func:`savi_plugin.eval.suite.compare_runs`,
the comparison ``savi eval suite`` reports).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from savi_plugin.data.outputs import write_json
from savi_plugin.eval.command import (
    lmms_eval_command,
    misread,
    run_judged,
    savi_video_args,
    savi_video_command,
)
from savi_plugin.eval.results import overall_counts, read_json_object

log = logging.getLogger(__name__)


def read_lmms_eval_results(output_path: str | Path) -> dict:
    """The newest ``*_results.json`` under ``output_path``: ``{task: {metric: value}}`` (stderr dropped), and
    ``overall``: the run's unparsed / missing_video / bad_video counts."""
    files = sorted(Path(output_path).rglob("*_results.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise FileNotFoundError(f"{output_path}: lmms-eval wrote no *_results.json")
    data = read_json_object(files[-1])
    out = {}
    for task, metrics in {**data.get("results", {}), **data.get("groups", {})}.items():
        out[task] = {k.split(",")[0]: v for k, v in metrics.items()
                     if "," in k and "_stderr" not in k and isinstance(v, (int, float))}
    out["overall"] = overall_counts(data)
    return out


def _eval_settings(recipe) -> dict:
    """:func:`savi_plugin.eval.command.savi_video_args`' keywords for the recipe's eval section (frames default to
    the model's)."""
    ev = recipe.eval
    return {"num_frames": ev.num_frames or recipe.model.num_frames, "limit": ev.limit, "batch_size": ev.batch_size,
            "max_new_tokens": ev.max_new_tokens, "dtype": recipe.model.dtype, "extra_args": ["--log_samples"]}


def eval_command(recipe, model: str | Path, out_dir: str | Path, adapter: str | Path | None = None) -> list[str]:
    """The eval step's lmms-eval command line as a dry run shows it: the paths as given, except that a path
    lmms-eval would misread is shown as the temporary link the run passes instead (:func:`savi_video_command`)."""
    shown = {"@MODEL@": model, "@ADAPTER@": adapter, "@OUTPUT@": Path(out_dir) / "lmms_eval"}
    shown = {key: f"<temporary link to {str(path)!r}>" if misread(path) else str(path) for key, path in shown.items()}
    settings = _eval_settings(recipe)
    extra = settings.pop("extra_args")
    command = lmms_eval_command(savi_video_args("@MODEL@", list(recipe.eval.tasks), "@OUTPUT@",
                                                adapter="@ADAPTER@" if adapter else None, **settings) + extra)
    for placeholder, path in shown.items():
        command = [arg.replace(placeholder, path) for arg in command]
    return command


def evaluate_step(recipe, model: str | Path, out_dir: str | Path, adapter: str | Path | None = None, *,
                  base: str | Path | None = None) -> dict:
    """Evaluate ``model`` (+ ``adapter``) on the recipe's ``eval.tasks``; returns ``{task: {metric: value}}``, and,
    with ``base`` (the model the run started from), ``vs_base``: ``{task: {n, base, aligned, delta, low, high}}``
    over the same items (the base is evaluated once, into ``<run folder>/eval_base``).

    The data come from ``eval.data_root`` (the ``SAVI_DATA_ROOT`` layout) when set. For a ``tiny://`` model
    without a data root, :func:`savi_plugin.eval.fixtures.offline_eval_root` builds a small synthetic
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
        write_json(Path(out_dir) / "results.json", results, indent=1)
    return results


def _lmms_eval(recipe, model: str | Path, out_dir: Path, run_dir: Path, adapter: str | Path | None = None) -> dict:
    """One lmms-eval run of the recipe's eval into ``out_dir`` (``results.json`` beside lmms-eval's output)."""
    from savi_plugin.eval.fixtures import offline_env, offline_eval_root

    out_dir.mkdir(parents=True, exist_ok=True)
    data_root = recipe.eval.data_root
    env = dict(os.environ)
    offline_root = offline_eval_root(recipe, run_dir)
    if offline_root is not None:
        data_root = offline_root
        env = offline_env(data_root, run_dir / "hf_home")
    elif data_root is not None:
        env["SAVI_DATA_ROOT"] = str(data_root)
    with savi_video_command(model, list(recipe.eval.tasks), out_dir / "lmms_eval", adapter=adapter,
                            **_eval_settings(recipe)) as command:
        log.info("running: %s", " ".join(map(str, command)))
        # judged by the results file: lmms-eval exits 0 on every error (EvalRunError: one line)
        run_judged(command, env=env, output_path=out_dir / "lmms_eval", tasks=list(recipe.eval.tasks),
                   log_path=out_dir / "lmms_eval.log")
    results = read_lmms_eval_results(out_dir / "lmms_eval")
    write_json(out_dir / "results.json", results, indent=1)
    return results

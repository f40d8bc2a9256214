"""The eval step of a recipe: the real lmms-eval CLI with our tasks and the ``savi_video`` model.

Runs ``python -m lmms_eval`` in a subprocess (as users do, so the entry-point registration is exercised),
then reads the results JSON lmms-eval writes and returns ``{task: {metric: value}}``. Given the base model, it
also evaluates that once per run folder (``eval_base/``, kept) and adds ``vs_base``: per task the change over the
base model on the same items with its paired bootstrap 95% interval (:func:`savi_plugin.eval.suite.compare_runs`,
the comparison ``savi eval suite`` reports).

What an eval result depends on beyond the model is :func:`eval_config` (the recipe's eval section as the step uses
it, and the identity of its data); each eval folder carries it in our output mark, and ``eval_base`` is evaluated
again when its mark holds another one (:func:`fresh_eval_folder` replaces such a folder whole).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from savi_plugin.data.outputs import claim, read_mark, remove_failed_log, replace_folder, write_json
from savi_plugin.data.watched import WatchedFiles
from savi_plugin.data.paths import absolute_path
from savi_plugin.eval.command import (
    EvalRunError,
    lmms_eval_command,
    misread,
    run_judged,
    savi_video_args,
    savi_video_command,
)
from savi_plugin.eval.results import overall_counts, read_json_object

log = logging.getLogger(__name__)


#: the record of a kept base evaluation (:mod:`savi_plugin.data.kept`) in ``eval_base``
KEPT = "kept.json"


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


#: the command our mark of an eval folder names (``iter_<i>/eval``, ``eval_base``)
EVAL_COMMAND = "savi align eval"


def eval_data(recipe, identity: bool = True, watch: WatchedFiles | None = None) -> dict:
    """Where the eval data come from, and their identity when cheap: ``{"source": "data_root", "path", "identity"}``
    (:func:`savi_plugin.data.identity.folder_identity`: each file's name, size and edges; ``watch`` keeps their
    signatures as it read them), ``{"source": "synthetic"}`` for a ``tiny://`` model without a data root
    (:func:`savi_plugin.eval.fixtures.offline_eval_root`, a pure function of the tasks), else ``{"source": "hub"}``."""
    from savi_plugin.data.identity import folder_identity
    from savi_plugin.models.tiny import is_tiny

    root = recipe.eval.data_root
    if root is not None:
        found = {"source": "data_root", "path": absolute_path(root)}
        return {**found, "identity": folder_identity(root, watch=watch)} if identity else found
    return {"source": "synthetic" if is_tiny(recipe.model.path) else "hub"}


def check_eval_data(recipe) -> None:
    """Refuse, before any step, a recipe whose eval data cannot be had here (:func:`savi_plugin.eval.hub_check.
    eval_data_env` with the environment the eval step will have: ``SAVI_DATA_ROOT`` set for a data root or the
    synthetic set of a ``tiny://`` model).

    Raises:
        BuiltinDataError, EvalDataUnavailableError: one line naming the task(s) and the recipe keys that help.
    """
    from savi_plugin.eval.hub_check import eval_data_env

    env = dict(os.environ)
    data = eval_data(recipe, identity=False)
    if data["source"] != "hub":
        env["SAVI_DATA_ROOT"] = data.get("path", "synthetic")
    eval_data_env(list(recipe.eval.tasks), env, advice=(
        "set eval.data_root=<folder> (a copy in the SAVI_DATA_ROOT layout of eval_tasks/README.md; "
        "`savi eval fixture DIR` writes a small synthetic one), or align.eval_every_iteration=false"))


def eval_config(recipe, run_dir: str | Path | None = None, watch: WatchedFiles | None = None) -> dict:
    """What an eval result of ``savi align`` depends on besides the model it evaluates: the tasks and every
    setting passed to lmms-eval (:func:`_eval_settings`, frames resolved), and the data (:func:`eval_data`; ``watch``
    keeps the signatures of the data root's files as their identity read them)."""
    import json

    settings = _eval_settings(recipe)
    settings.pop("extra_args")
    return json.loads(json.dumps({"tasks": list(recipe.eval.tasks), **settings,
                                  "data": eval_data(recipe, watch=watch)},
                                 default=str))  # as the manifest and the mark store it


@contextlib.contextmanager
def fresh_eval_folder(out_dir: str | Path, config: dict, inputs: dict | None = None) -> Iterator[Path]:
    """A temporary folder that becomes ``out_dir`` when the block succeeds, replacing a previous eval result whole
    (none of its files stays beside the new ones); the folder carries our mark with ``config``. Claimed through the
    output layer: a folder holding files savi did not write there is refused, never removed."""
    out_dir = Path(out_dir)
    with claim(out_dir, command=EVAL_COMMAND, config={"eval": config}, folder=True, replace_ours=True,
               output_name="eval folder", inputs=inputs or {}, lock_beside=True) as claimed:
        with replace_folder(out_dir) as tmp:
            try:
                yield tmp
            except EvalRunError as exc:  # the temporary folder goes; lmms-eval's log stays where the error says
                raise exc.log_kept(tmp, out_dir) from None
        claimed.write_mark()
    remove_failed_log(out_dir)  # an earlier failure's log: this configuration's result is now there


def stored_eval_config(out_dir: str | Path) -> dict | None:
    """The eval configuration our mark on ``out_dir`` holds (None: no finished eval result there)."""
    mark = read_mark(Path(out_dir), True)
    if mark is None or mark.get("command") != EVAL_COMMAND or not (Path(out_dir) / "results.json").is_file():
        return None
    return (mark.get("config") or {}).get("eval")


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
    if base is not None:
        from savi_plugin.data.kept import write_kept

        base_dir = run_dir / "eval_base"
        config = eval_config(recipe, run_dir)
        kept = base_eval_kept(run_dir, base, config)
    results = _lmms_eval(recipe, model, Path(out_dir), run_dir, adapter)
    if base is not None:
        from savi_plugin.eval.results import read_run
        from savi_plugin.eval.suite import compare_runs

        if not kept:
            slot = _base_slot(base, config)
            with fresh_eval_folder(base_dir, config, inputs={"the model": base}) as tmp:
                _lmms_eval(recipe, base, tmp, run_dir)
                write_kept(tmp / KEPT, {}, slot=slot, sources={"lmms-eval output": (tmp / "lmms_eval", "folder")})
        deltas = compare_runs(read_run(base_dir / "lmms_eval"), read_run(Path(out_dir) / "lmms_eval"),
                              list(recipe.eval.tasks))
        results["vs_base"] = {task: delta.to_dict() for task, delta in deltas.items()}
        write_json(Path(out_dir) / "results.json", results, indent=1)
    return results


def _base_slot(base: str | Path, config: dict) -> dict:
    """What the base model's kept evaluation is made for (:mod:`savi_plugin.data.kept`): the eval configuration and
    the base model's identity, by content."""
    from savi_plugin.data.identity import model_identity

    return {"eval": config, "model": model_identity(base)}


def base_eval_kept(run_dir: str | Path, base: str | Path, config: dict) -> bool:
    """Whether ``run_dir/eval_base`` holds the evaluation of ``base`` with eval configuration ``config``, as it was
    made (the next eval step, and a re-run of a finished run, use it again); False when it holds none of that
    configuration (never made, removed, or made with another): it is evaluated again.

    Raises:
        RunError: one there changed since it was made, or is another model's (naming it,
            :func:`savi_plugin.data.kept.read_kept`).
    """
    from savi_plugin.data.kept import read_kept

    base_dir = Path(run_dir) / "eval_base"
    if stored_eval_config(base_dir) != config:
        return False
    read_kept(base_dir / KEPT, slot=_base_slot(base, config), written_by="savi align",
              remedy=f"remove {base_dir} to evaluate the base model again")
    return True


def _lmms_eval(recipe, model: str | Path, out_dir: Path, run_dir: Path, adapter: str | Path | None = None) -> dict:
    """One lmms-eval run of the recipe's eval into ``out_dir`` (``results.json`` beside lmms-eval's output)."""
    from savi_plugin.eval.fixtures import offline_env, offline_eval_root
    from savi_plugin.launch import child_env

    out_dir.mkdir(parents=True, exist_ok=True)
    data_root = recipe.eval.data_root
    env = child_env()  # a one-process lmms-eval, not a member of this job's rendezvous
    offline_root = offline_eval_root(recipe, run_dir)
    if offline_root is not None:
        data_root = offline_root
        env = offline_env(data_root, run_dir / "hf_home", base=env)
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

"""``savi eval suite``: a base model and its adapters on a paper's benchmarks, with Δ and its paired interval.

One suite is one output folder::

    OUT/.savi-output.json          # the output layer's mark: what was asked (tasks, models, limit, frames,
                                   # generation), checked on resume; a folder with other files is refused
    OUT/suite.json                 # the same plan, for reading
    OUT/runs/<label>/lmms_eval/    # each model's lmms-eval output (results JSON + --log_samples), kept
    OUT/runs/<label>/done.json     # written when that model's run finished: a resumed suite skips it
    OUT/card.json                  # the eval card (:mod:`savi_plugin.eval.card`)
    OUT/table.json, OUT/table.md   # per benchmark and adapter: base, aligned, Δ, paired bootstrap 95% interval
    OUT/delta.png                  # Δ with its interval per benchmark

lmms-eval's CLI evaluates one ``--model``/``--model_args`` per process and ``savi_video`` holds one model with at
most one adapter, so the suite runs lmms-eval once per model (base first), every run on the same tasks, items and
settings; the comparison pairs their per-item scores (``--log_samples``) by task and ``doc_id``. A killed suite
continues from the first model without ``done.json``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from savi_plugin.data.files import file_problem, read_document
from savi_plugin.data.identity import check_adapter, input_identity, model_identity
from savi_plugin.data.kept import write_kept
from savi_plugin.data.watched import WatchedFiles
from savi_plugin.data.outputs import (KEPT, OWN, atomic_path, claim, disk_error, remove_failed_log, remove_tree,
                                      start_child, write_json, write_text)
from savi_plugin.data.paths import name_for_file, path_for_file
from savi_plugin.environment import item_limits
from savi_plugin.eval.hub_check import eval_data_env
from savi_plugin.eval.builtin_tasks import BUILTINS
from savi_plugin.eval.card import CARD, build_card, card_for_file
from savi_plugin.eval.command import (EvalRunError, last_error, log_disk_sign, results_problem, run_failure,
                                     savi_video_command, stopped_with_us)
from savi_plugin.eval.compare import Delta, compare_usable
from savi_plugin.eval.results import read_run, unusable_items
from savi_plugin.shape import Count, ListOf, Name, Nullable, Number, Record
from savi_plugin.untrusted import shown

#: The papers' benchmark lists -> the task that runs each here (None: not offered by savi-plugin yet).
#: RRPO (arXiv 2504.12083) Table 2; VideoSAVi (arXiv 2412.00624) Tables 1-2, through lmms-eval 0.7.3's protocol.
#: Where savi-plugin has no task of its own, lmms-eval's built-in task runs unchanged
#: (:data:`savi_plugin.eval.builtin_tasks.BUILTINS` says which one and why).
SUITES: dict[str, dict[str, str | None]] = {
    "rrpo": {"mvbench": "savi_mvbench_rrpo", "tvbench": BUILTINS["tvbench"].task,
             "tempcompass": BUILTINS["tempcompass"].task, "videohallucer": "savi_videohallucer_official",
             "vidhalluc": "savi_vidhalluc", "videomme": BUILTINS["videomme"].task, "mlvu": BUILTINS["mlvu"].task,
             "longvideobench": BUILTINS["longvideobench"].task},
    "videosavi": {"mvbench": "savi_mvbench_lmms", "perceptiontest": "savi_perceptiontest_lmms",
                  "egoschema": "savi_egoschema_lmms", "nextqa": BUILTINS["nextqa"].task,
                  "longvideobench": BUILTINS["longvideobench"].task, "tempcompass": BUILTINS["tempcompass"].task},
}
BASE = "base"


class SuiteError(ValueError):
    """A suite that cannot run or resume as asked (one line)."""


def suite_tasks(spec: str) -> tuple[list[str], list[str]]:
    """``rrpo``, ``videosavi`` or a comma-separated task list -> (tasks to run, benchmarks of the suite not offered)."""
    if spec in SUITES:
        tasks = [t for t in SUITES[spec].values() if t]
        return tasks, [b for b, t in SUITES[spec].items() if t is None]
    tasks = [t.strip() for t in spec.split(",") if t.strip()]
    if not tasks:
        raise SuiteError(f"suite {spec!r}: name one of {', '.join(SUITES)} or a comma-separated task list")
    twice = sorted({t for t in tasks if tasks.count(t) > 1})
    if twice:  # one comparison per task: a second run of it would be a second row for the same comparison
        from savi_plugin.errors import ConfigurationError

        raise ConfigurationError(f"savi eval suite: {spec!r}: {', '.join(twice)} listed more than once; list each "
                                 "task once")
    return tasks, []


def adapter_labels(adapters: list[str]) -> dict[str, str]:
    """label -> adapter path: the adapter folder's name (made unique with ``-2``, ``-3`` ...).

    Raises:
        ConfigurationError: one adapter folder given twice (the same folder by its device and inode, however it
            is spelt or linked; a path that is no folder here, a hub id, by its resolved path): it would be
            evaluated twice under two labels, one comparison shown as two.
    """
    from savi_plugin.errors import ConfigurationError

    labels: dict[str, str] = {}
    given: dict[tuple, str] = {}
    for path in adapters:
        try:
            stat = os.stat(path)
            same: tuple = (stat.st_dev, stat.st_ino)
        except OSError:
            same = (os.path.realpath(path),)
        if same in given:
            raise ConfigurationError(f"savi eval suite: --adapter {shown(path)} is the adapter folder --adapter "
                                     f"{shown(given[same])} names: the same adapter given twice; give each adapter "
                                     "once")
        given[same] = path
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).resolve().name) or "adapter"
        label, n = base, 1
        while label in labels or label == BASE:
            n += 1
            label = f"{base}-{n}"
        labels[label] = path
    return labels


@dataclass(frozen=True)
class SuitePlan:
    """What one suite runs: checked against ``suite.json`` when a folder is resumed."""

    model: str
    adapters: dict[str, str]
    tasks: list[str]
    num_frames: int
    limit: float | None = None
    batch_size: int = 1
    dtype: str = "float32"
    device: str | None = None
    gen_kwargs: str | None = None
    data_root: str | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def models(self) -> dict[str, str | None]:
        return {BASE: None, **self.adapters}

    def for_file(self, holder: str | Path) -> dict:
        """:meth:`to_dict` as the file ``holder`` stores it (``suite.json``, the folder's mark): the model, the
        adapters and the data root by the one rule for stored paths (:mod:`savi_plugin.data.paths`; a hub id
        as given), so they name the same folders from any working folder."""
        out = self.to_dict()
        out["model"] = name_for_file(self.model, holder)
        out["adapters"] = {label: path_for_file(path, holder) for label, path in self.adapters.items()}
        if self.data_root is not None:
            out["data_root"] = path_for_file(self.data_root, holder)
        return out


def _stream(command: list[str], env: dict, log_path: Path, label: str, progress) -> int:
    """Run lmms-eval with its output in ``log_path``; its per-item progress bar (``savi_video generate``) is shown
    as this suite's progress line. A full disk while logging names the log (not "a file")."""
    with open(log_path, "wb") as log, start_child(command, env=env, stdout=subprocess.PIPE,
                                                  stderr=subprocess.STDOUT) as proc, stopped_with_us(proc):
        pending, last = b"", None
        for chunk in iter(lambda: proc.stdout.read1(4096), b""):
            try:
                log.write(chunk)
            except OSError as exc:
                proc.kill()
                raise (disk_error(exc, log_path) or exc) from None
            pending += chunk
            *parts, pending = re.split(rb"[\r\n]", pending)
            for part in parts:
                match = re.search(rb"savi_video generate:\s*(\d+)%\|.*?\|\s*(\d+)/(\d+)", part)
                if match and progress is not None and match.groups()[1:] != last:
                    last = match.groups()[1:]
                    progress(label, int(match.group(2)), int(match.group(3)))
        return proc.wait()


def _print_progress(label: str, done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    print(f"\r{label}: items {done}/{total} [{'#' * filled}{'.' * (width - filled)}]", end="" if done < total else "\n",
          file=sys.stderr, flush=True)


#: the plan's settings that decide a run's numbers, stored in each run's ``done.json`` and compared when it is kept
RUN_SETTINGS = ("tasks", "num_frames", "limit", "dtype", "gen_kwargs")


def run_settings(plan: SuitePlan, label: str | None = None) -> dict:
    """The :data:`RUN_SETTINGS` of ``plan`` and (``label`` given) what the run of ``label`` evaluates, by content:
    the model's and the adapter's identities (:func:`~savi_plugin.data.identity.model_identity`), so a run copied
    in from a suite of another model or another adapter under the same label is not kept as this one's."""
    settings = {key: getattr(plan, key) for key in RUN_SETTINGS}
    if label is not None:
        adapter = plan.models().get(label)
        settings["identity"] = json.loads(json.dumps({"model": model_identity(plan.model),
                                                      "adapter": model_identity(adapter) if adapter else None}))
    return settings


def _kept_slot(plan: SuitePlan, label: str) -> dict:
    """What a kept run of ``label`` is made for (:mod:`savi_plugin.data.kept`): the label and the plan's settings
    and identities (:func:`run_settings`)."""
    return {"label": label, "settings": run_settings(plan, label)}


def _check_kept(folder: Path, label: str, plan: SuitePlan) -> None:
    """Refuse a kept run that is not this suite's run of ``label`` (:func:`savi_plugin.data.kept.read_kept`):
    ``done.json`` edited, the folder moved, swapped or copied in from a suite of other settings, another model or
    another adapter, or lmms-eval's files in it changed or gone since it finished (an edited samples line changed a
    Δ while lmms-eval's own results file still said otherwise). The suite keeps a run whole or runs it again."""
    from savi_plugin.data.kept import read_kept

    read_kept(folder / "done.json", slot=_kept_slot(plan, label), written_by="savi eval suite",
              remedy=f"remove {folder} to evaluate {label} again")


def run_model(plan: SuitePlan, label: str, out: Path, env: dict, progress=_print_progress) -> Path:
    """One model's lmms-eval run (skipped when ``runs/<label>/done.json`` exists); returns its output folder.
    A run is counted done only when none of the files the suite's identity read (the model's, the adapters', the
    data root's: held by :func:`run_suite`'s watches) changed before it ended: lmms-eval reads them in its own
    process, so :func:`~savi_plugin.eval.command.savi_video_command` checks them before the run starts and after it
    ends."""
    folder = out / "runs" / label
    done = folder / "done.json"
    if done.is_file():
        print(f"{label}: kept from an earlier run ({folder})", file=sys.stderr)
        _check_kept(folder, label, plan)
        return folder / "lmms_eval"
    if (folder / "lmms_eval").exists():  # a killed run: its partial output must not mix with the new one
        remove_tree(folder / "lmms_eval")
    extra = ["--log_samples"] + (["--gen_kwargs", plan.gen_kwargs] if plan.gen_kwargs else [])
    with savi_video_command(plan.model, plan.tasks, folder / "lmms_eval", adapter=plan.models()[label],
                            extra_args=extra, num_frames=plan.num_frames, limit=plan.limit,
                            batch_size=plan.batch_size, device=plan.device, dtype=plan.dtype) as command:
        print(f"{label}: " + " ".join(command), file=sys.stderr)
        start = time.time()
        code = _stream(command, env, folder / "lmms_eval.log", label, progress)
    # judged by its results file: lmms-eval exits 0 on every error
    problem = results_problem(folder / "lmms_eval", plan.tasks, start, log_disk_sign(folder / "lmms_eval.log"))
    if code != 0 or problem:  # lmms-eval's exit status 2 (a configuration error) is savi's 2: run_failure
        cause = last_error(folder / "lmms_eval.log")
        raise run_failure(code, f"{label}: evaluation did not finish{f' (exit status {code})' if code else ''}: "
                                f"{problem or 'lmms-eval failed'}{f'; lmms-eval said: {cause}' if cause else ''}",
                          folder / "lmms_eval.log", retry_hint=" (re-run the same command to continue the suite)")
    read_run(folder / "lmms_eval")  # results and samples are there before the run counts as done
    adapter = plan.models()[label]
    write_kept(done, {"label": label, "adapter": path_for_file(adapter, done) if adapter else None},
               slot=_kept_slot(plan, label), sources={"lmms-eval output": (folder / "lmms_eval", "folder")})
    return folder / "lmms_eval"


def _plan_inputs(plan: SuitePlan) -> dict[str, str]:
    """The local files and folders a suite reads (its ``--out`` may be none of them, nor inside one)."""
    found = {"the model": plan.model, "the data root": plan.data_root}
    found.update({f"adapter {label}": path for label, path in plan.adapters.items()})
    return {name: path for name, path in found.items() if path and os.path.exists(path)}


def compare_runs(base_run, run, tasks: list[str], label: str = "aligned") -> dict[str, Delta]:
    """Per task: the paired comparison of ``run``'s item scores with ``base_run``'s (the same items, or
    :class:`SuiteError`), over the items whose video was usable in both runs; the others are left out and counted
    (:func:`~savi_plugin.eval.compare.compare_usable`; a task with none left has no Δ). The one place every
    reported Δ is computed (``savi eval suite``, ``savi align``'s eval step)."""
    out = {}
    for task in tasks:
        base, aligned = base_run.item_scores(task), run.item_scores(task)
        if set(base) != set(aligned):
            raise SuiteError(f"{task}: {label} scored other items than the base model ({len(aligned)} vs "
                             f"{len(base)}); the runs are not paired")
        out[task] = compare_usable(base, aligned, unusable_items(base_run, task) | unusable_items(run, task))
    return out


def comparison_rows(base_run, runs: dict, tasks: list[str]) -> list[dict]:
    """Per task and adapter (the shape :data:`ROW`): the paired comparison of the adapter's items with the base
    model's, and how many of those items had no usable video in each run (scored 0 by the task:
    :func:`unusable_items`); ``excluded`` counts the items either run had none for, so it lies between the larger
    of the two counts and their sum."""
    deltas = {label: compare_runs(base_run, run, tasks, label) for label, run in runs.items()}
    rows = []
    for task in tasks:
        items = set(base_run.item_scores(task))  # every adapter's run scored these (compare_runs)
        no_video_base = len(unusable_items(base_run, task) & items)
        rows += [{"task": task, "adapter": label, **deltas[label][task].to_dict(), "no_video_base": no_video_base,
                  "no_video_aligned": len(unusable_items(runs[label], task) & items)} for label in runs]
    return rows


def markdown_cell(value: object) -> str:
    """``value`` as the text of one Markdown table cell: ``\\`` and ``|`` escaped, and every character that ends a
    line (``str.splitlines``' separators) or is a control character written as its ``\\n``/``\\xNN`` escape, so a
    name read from a file (a task in a ``table.json``) cannot end its cell or its row."""
    import unicodedata

    out = []
    for char in str(value):
        if char in "\\|":
            out.append("\\" + char)
        elif unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def markdown_row(cells: list) -> str:
    """One Markdown table row, each cell through :func:`markdown_cell` (the one writer of the suite's tables:
    ``table.md``, ``savi eval suite``'s and ``savi eval compare``'s output)."""
    return "| " + " | ".join(markdown_cell(c) for c in cells) + " |"


def format_table(rows: list[dict], missing: list[str], unfinished: dict[str, str] | None = None) -> str:
    """The Markdown table (accuracy in percent points; Δ = aligned - base with its paired bootstrap 95% interval)."""
    lines = [markdown_row(["task", "adapter", "items compared", "left out: no usable video (base / aligned)", "base",
                           "aligned", "Δ", "95% CI of Δ (paired bootstrap)"]), "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        left = f"{r.get('excluded', 0)} ({r.get('no_video_base', 0)} / {r.get('no_video_aligned', 0)})"
        if not r["n"]:
            lines.append(markdown_row([r["task"], r["adapter"], 0, left, "-", "-", "no usable video", "-"]))
            continue
        lines.append(markdown_row([r["task"], r["adapter"], r["n"], left, f"{r['base']:.2f}", f"{r['aligned']:.2f}",
                                   f"{r['delta']:+.2f}", f"[{r['low']:+.2f}, {r['high']:+.2f}]"]))
    if any(r.get("excluded") or r.get("no_video_base") or r.get("no_video_aligned") for r in rows):
        lines.append("")
        lines.append("Items with no usable video in either run (missing, undecodable, fewer frames than num_frames, "
                     "over a decode budget, longer than the context) are scored 0 by the task whatever the model: "
                     "they are left out of the comparison and counted above; a task with none left has no Δ (not "
                     "a result). See each run's lmms_eval.log.")
    if missing:
        lines.append("")
        lines.append(f"Not run (no savi-plugin task yet): {', '.join(missing)}.")
    for label, path in (unfinished or {}).items():
        lines.append("")
        lines.append(f"Adapter {label} ({path}): its training run had not finished; its top-level adapter is not "
                     f"that run's result.")
    return "\n".join(lines) + "\n"


def plot_deltas(rows: list[dict], path: Path) -> Path:
    """A PNG of Δ with its 95% interval per task (one marker per adapter)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["n"]]  # a task with no usable item has no Δ to draw
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    adapters = list(dict.fromkeys(r["adapter"] for r in rows))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(tasks) + 2), 3.5))
    width = 0.8 / max(len(adapters), 1)
    for k, adapter in enumerate(adapters):
        mine = [r for r in rows if r["adapter"] == adapter]
        xs = [tasks.index(r["task"]) - 0.4 + width * (k + 0.5) for r in mine]
        ys = [r["delta"] for r in mine]
        err = [[r["delta"] - r["low"] for r in mine], [r["high"] - r["delta"] for r in mine]]
        ax.errorbar(xs, ys, yerr=err, fmt="o", capsize=4, label=adapter)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xticks(range(len(tasks)), tasks, rotation=20, ha="right")
    ax.set_ylabel("Δ accuracy vs base (points)")
    ax.set_title("aligned - base, paired bootstrap 95% CI")
    ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path


def run_suite(plan: SuitePlan, out: str | Path, *, env: dict | None = None, missing: list[str] = (),
              progress=_print_progress) -> dict:
    """Run (or continue) the suite in ``out``; writes the card, the table (JSON, Markdown) and the PNG."""
    out = Path(out)
    env = dict(os.environ if env is None else env)
    if plan.data_root:
        env["SAVI_DATA_ROOT"] = str(Path(plan.data_root).resolve())
    env = eval_data_env(plan.tasks, env)  # data that cannot be had: one line before any folder or model
    for adapter in plan.adapters.values():  # another base, a torn record, damaged weights: one line before
        check_adapter(adapter, plan.model)  # lmms-eval runs (where it would end as "did not finish", exit 1)
    # what the model, adapters and data are by content: a run kept from an earlier suite is theirs only if
    # unchanged; the files are watched while the suite runs, so every run reads what the identity says
    watch, data_watch = WatchedFiles("a file of a model the suite evaluates"), WatchedFiles("a file of the data root")
    identity = {"model": model_identity(plan.model, watch=watch),
                **{f"adapter {label}": model_identity(path, watch=watch) for label, path in plan.adapters.items()},
                "data root": input_identity(plan.data_root, watch=data_watch) if plan.data_root else None}
    # the decode caps decide which items count as bad videos in a kept run
    config = {**plan.for_file(out / "suite.json"), "identity": identity, "limits": item_limits()}
    # the output layer: a new folder, or this suite's own (same plan) to continue it; locked while it runs
    # the paths as spelled are not compared (the identities above are): the suite continues from another working
    # folder, or with another spelling of the same files
    with claim(out, command="savi eval suite", config=config, folder=True,
               inputs=_plan_inputs(plan), ignore=("model", "adapters", "data_root"),
               output_name="--out", what="suite folder", steps=suite_steps(plan)) as claimed, watch, data_watch:
        claimed.write_mark()
        write_json(out / "suite.json", plan.for_file(out / "suite.json"), indent=1)
        try:
            table = _run_claimed(plan, out, env, missing, progress)
        except EvalRunError as exc:  # a new folder undone (a configuration error, exit 2) takes lmms-eval's log
            raise (exc.log_kept(out, out) if claimed.undoes(type(exc)) else exc) from None  # with it: kept beside
    remove_failed_log(out)  # an earlier failure's log: this suite has finished
    return table


#: what a suite derives from its runs, written last: removed while a run is evaluated again, so a stopped suite
#: leaves no table of runs it no longer holds (``savi eval compare`` then finds no table, not an old one)
DERIVED_FILES = ("table.json", "table.md", "card.json", "delta.png")


def suite_steps(plan: SuitePlan) -> dict:
    """What a suite writes in its folder (:func:`savi_plugin.data.outputs.claim`'s ``steps``): per model its
    lmms-eval run, log and kept record (:func:`run_model`), its plan and what it derives from the runs."""
    run = {"lmms_eval": OWN, "lmms_eval.log": OWN, "done.json": KEPT}
    return {"runs": {label: run for label in plan.models()}, "suite.json": OWN,
            **{name: OWN for name in DERIVED_FILES}}


def _run_claimed(plan: SuitePlan, out: Path, env: dict, missing, progress) -> dict:
    if any(not (out / "runs" / label / "done.json").is_file() for label in plan.models()):
        for name in DERIVED_FILES:
            (out / name).unlink(missing_ok=True)
    folders = {label: run_model(plan, label, out, env, progress) for label in plan.models()}
    runs = {label: read_run(folder) for label, folder in folders.items()}
    base = runs.pop(BASE)
    card = build_card(base, plan.tasks, model=plan.model, adapters=plan.adapters, num_frames=plan.num_frames,
                      limit=plan.limit, gen_kwargs=plan.gen_kwargs)
    rows = comparison_rows(base, runs, plan.tasks)
    table = {"rows": rows, "missing": list(missing), "card": card}
    # paths as each file stores them (savi_plugin.data.paths' rule); the table returned keeps the caller's
    write_json(out / "card.json", card_for_file(card, out / "card.json"), indent=1)
    write_json(out / "table.json", {**table, "card": card_for_file(card, out / "table.json")}, indent=1)
    unfinished = {label: entry["path"] for label, entry in card["adapters"].items() if entry.get("unfinished")}
    write_text(out / "table.md", format_table(rows, list(missing), unfinished))
    if any(r["n"] for r in rows):
        plot_deltas(rows, out / "delta.png")
    return table


#: a score's range: accuracy in percent points (every per-item score is 0 or 100); Δ and its bounds lie within
#: ``±(high - low)`` of it
SCORE_RANGE = (0.0, 100.0)
_SCORE = Nullable(Number(*SCORE_RANGE, "accuracy in percent points"))
_CHANGE = Nullable(Number(SCORE_RANGE[0] - SCORE_RANGE[1], SCORE_RANGE[1] - SCORE_RANGE[0],
                          "a change of accuracy in percent points"))
#: One row of ``table.json``, as :func:`comparison_rows` writes it: the task and adapter it compares,
#: :class:`~savi_plugin.eval.compare.Delta`'s fields (null where no item was usable), and how many of the compared
#: items had no usable video in each run. A table written before items were left out has no ``excluded`` (0).
ROW = Record("a table row", {
    "task": Name(), "adapter": Name(),
    **{name: (Count() if name in ("n", "excluded") else _SCORE if name in ("base", "aligned") else _CHANGE)
       for name in Delta.__dataclass_fields__},
    "no_video_base": Count(), "no_video_aligned": Count(),
}, optional=frozenset({"excluded"}))
#: ``table.json`` as :func:`run_suite` writes it, every key at every depth: the rows, the tasks a named suite left
#: out (no savi-plugin task yet) and the card (:data:`savi_plugin.eval.card.CARD`). :func:`read_table` reads a table
#: of this shape only, then checks the rules between its fields.
TABLE = Record("a suite table", {"rows": ListOf(ROW), "missing": ListOf(Name()), "card": CARD})


def read_table(path: str | Path) -> dict:
    """A suite's ``table.json`` (given the file or its suite folder), read through the untrusted-input boundary
    (:func:`savi_plugin.untrusted.load_json`), checked whole against :data:`TABLE` (the shape :func:`run_suite`
    writes, every key at every depth) and then by the rules between its fields that every table a suite writes
    holds (:func:`table_problem`).

    Raises:
        SuiteError: one line naming the file (and line, or field) and what is wrong with it.
    """
    from savi_plugin.untrusted import load_json

    path = Path(path)
    if path.is_dir() and not (path.name == "table.json" and not os.path.lexists(path / "table.json")):
        path = path / "table.json"  # a suite folder (a folder named table.json holding none is named as a folder)
    problem = file_problem(path, "suite table")  # a FIFO or folder is named as what it is, never opened
    if problem == "file not found":
        raise SuiteError(f"{path}: no suite table here (savi eval suite writes table.json)")
    if problem is not None:
        raise SuiteError(f"{path}: {problem}")

    def refuse(message: str, line: int | None = None) -> SuiteError:
        return SuiteError(f"{path}{f':{line}' if line else ''}: {message} (not a table savi eval suite wrote)")

    try:
        table = load_json(read_document(path), str(path), refuse)
    except OSError as exc:
        raise SuiteError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(table, dict):
        raise refuse(f"a JSON {type(table).__name__}, not an object")
    problem = TABLE.problem(table, "")
    if problem:
        raise refuse(problem)
    for row in table["rows"]:
        row.setdefault("excluded", 0)  # a table written before items were left out
    problem = table_problem(table)
    if problem:
        raise refuse(problem)
    beside = _card_beside(path, table["card"])
    if beside:
        raise SuiteError(beside)
    return table


def _card_beside(table_path: Path, card: dict) -> str | None:
    """What is wrong with the ``card.json`` the suite wrote beside ``table_path`` with the same card (the folder's
    card, the one a reader of the folder sees), or None when it holds that card or is not there (a table copied
    alone): a card edited in one file and not the other describes two runs."""
    from savi_plugin.untrusted import load_json

    beside = table_path.parent / "card.json"
    if not os.path.isfile(beside):
        return None

    def refuse(message: str, line: int | None = None) -> SuiteError:
        return SuiteError(f"{beside}{f':{line}' if line else ''}: {message} (not a card savi eval suite wrote)")

    try:  # the document caps as for the table (DocumentTooLarge: exit 2)
        other = load_json(read_document(beside), str(beside), refuse)
    except OSError as exc:
        return f"{beside}: cannot be read ({exc.strerror or exc})"
    if other == card:
        return None
    keys = sorted(set(other) | set(card)) if isinstance(other, dict) else []
    differ = next((k for k in keys if other.get(k) != card.get(k)), None)
    return (f"{beside}: card.{differ} differs from {table_path.name}'s card.{differ}: the suite writes one card to "
            f"both, so one of them was edited" if differ else
            f"{beside}: not the card {table_path.name} holds: the suite writes one card to both, so one was edited")


def table_problem(table: dict) -> str | None:
    """What is wrong between the fields of a table of the shape :data:`TABLE` whose rows all hold ``excluded``
    (``field: message``), or None. Each
    rule is one :func:`run_suite` keeps by how it computes the table:

    - the rows: exactly one per task of the card's ``suite_tasks`` and adapter of its ``adapters`` (:func:`comparison_rows`
      writes one for each, no other), names no two of which read alike (:func:`~savi_plugin.untrusted.sameness`);
    - ``missing``: the tasks a named suite left out, never one it ran;
    - each row's numbers (:func:`row_problem`) and its items against the card (:func:`card_limit_problem`);
    - the rows of one task: every adapter's run is paired with the same base run on the same items, so each holds
      the same items (``n + excluded``) and the same ``no_video_base``;
    - the rows of one adapter's leaf tasks hold at most the card's ``items`` (:func:`items_total_problem`).
    """
    rows, card = table["rows"], table["card"]
    names = {"task": card["suite_tasks"], "adapter": list(card["adapters"])}
    for where, known in (("card.suite_tasks", names["task"]), ("card.adapters", names["adapter"])):
        for i, name in enumerate(known):
            same = next((s for other in known[:i] if (s := _sameness(name, other))), None)
            if same:
                at = f"{where}[{i}]" if where.endswith("suite_tasks") else f"{where}: {shown(name)}"
                return f"{at}: {shown(name)} {same}: one name given twice"
    seen: dict[tuple[str, str], int] = {}
    for n, row in enumerate(rows):
        for key, known in names.items():
            problem = _name_problem(row[key], known, f"card.{'suite_tasks' if key == 'task' else 'adapters'}")
            if problem:
                return f"rows[{n}].{key}: {problem}"
        key = (row["task"], row["adapter"])
        if key in seen:  # two results for one comparison: neither can be shown as the table's
            return (f"rows[{n}]: task {row['task']!r} with adapter {row['adapter']!r} is given twice (first at "
                    f"rows[{seen[key]}])")
        seen[key] = n
        problem = row_problem(row) or card_limit_problem(row, card)
        if problem:
            return f"rows[{n}].{problem}"
    # ``missing``: the tasks the suite left out (no savi-plugin task yet), never one it ran: a task named there and
    # in the card's task list (so with its rows) is a table that says both
    for i, task in enumerate(table["missing"]):
        ran = next((n for n, row in enumerate(rows) if row["task"] == task), None)
        if ran is not None or task in names["task"]:
            where = f"rows[{ran}] holds its result" if ran is not None else "card.suite_tasks names it as run"
            return (f"missing[{i}]: task {shown(task)} is listed as not run, yet {where}; a suite lists a task as "
                    f"run or as missing, never both")
    absent = [(task, label) for task in names["task"] for label in names["adapter"] if (task, label) not in seen]
    if absent:  # a result left out would read as "not run" (every cell '-')
        counts = f"{len(names['task'])} task(s) x {len(names['adapter'])} adapter(s)"
        if not rows:
            return f"rows: no row at all, though its card names {counts}; a suite writes one row for each"
        return (f"rows: no row for task {absent[0][0]!r} with adapter {absent[0][1]!r} ({len(absent)} of the "
                f"card's {counts} missing; a suite writes one row for each)")
    return paired_rows_problem(rows) or items_total_problem(rows, card)


def paired_rows_problem(rows: list[dict]) -> str | None:
    """What is wrong between the rows of one task (``field: message``), or None: every adapter's run of a task
    scored the items the base run scored (:func:`compare_runs` refuses others), so each of its rows holds the same
    items (``n + excluded``) and counts the same items with no usable video in the base run (``no_video_base``)."""
    first: dict[str, int] = {}
    for n, row in enumerate(rows):
        m = first.setdefault(row["task"], n)
        other = rows[m]
        for field, value in (("n", lambda r: r["n"] + r["excluded"]),
                             ("no_video_base", lambda r: r["no_video_base"])):
            if value(row) != value(other):
                what = "items (n + excluded)" if field == "n" else "items with no usable video in the base run"
                return (f"rows[{n}].{field}: {value(row)} {what} for task {shown(row['task'])}, yet rows[{m}] "
                        f"(adapter {shown(other['adapter'])}) has {value(other)}; every adapter is compared with "
                        f"the one base run on the same items")
    return None


def _sameness(name: str, other: str) -> str | None:
    from savi_plugin.untrusted import sameness

    return sameness(name, other, repr(other))


def _name_problem(name: str, known: list[str], where: str) -> str | None:
    """What is wrong with a task or adapter name of a row (a :class:`~savi_plugin.shape.Name` by :data:`ROW`), or
    None: not one of ``known``, the card's names -- named when it reads as one of them
    (:func:`~savi_plugin.untrusted.sameness`: a Cyrillic ``а`` in ``savi_mvbench_аction_antonym``)."""
    if name in known:
        return None
    alike = next((same for other in known if (same := _sameness(name, other))), None)
    return f"{shown(name)} is not one of {where} " + (f"(it {alike})" if alike else shown(known))


#: how far a stored Δ may be from ``aligned - base`` and still agree: the two decimals every report prints (a table
#: whose numbers were rounded to them still reads; Δ 5 with base = aligned does not)
DELTA_TOLERANCE = 0.01


def row_problem(row: dict) -> str | None:
    """What is wrong between the numbers of one table row of the shape :data:`ROW` (``field: message``), or None:
    ``excluded`` counts the items with no usable video in either run, so it is at least each run's count
    (``no_video_base``, ``no_video_aligned``) and at most their sum; with ``n`` above 0 the scores ``base`` and
    ``aligned`` are means of ``n`` item scores of 0 or 100, ``delta`` is ``aligned - base`` and lies in
    ``[low, high]`` (each to :data:`DELTA_TOLERANCE`), and ``low <= high``; with ``n`` 0 (no usable item) the
    numbers are absent (null)."""
    excluded, base, aligned = row["excluded"], row["no_video_base"], row["no_video_aligned"]
    if not max(base, aligned) <= excluded <= base + aligned:  # the union of the two runs' unusable items
        return (f"excluded: {excluded} items left out, yet {base} had no usable video in the base run and "
                f"{aligned} in the aligned run (an item is left out when either run had no usable video for it: "
                f"{max(base, aligned)} to {base + aligned} items)")
    if row["n"] == 0:
        given = [k for k in ("base", "aligned", "delta", "low", "high") if row[k] is not None]
        return f"{given[0]}: set although n is 0 (no usable item, no score)" if given else None
    missing = [k for k in ("base", "aligned", "delta", "low", "high") if row[k] is None]
    if missing:
        return f"{missing[0]}: null although n is {row['n']} (a comparison over {row['n']} items has its numbers)"
    if abs(row["delta"] - (row["aligned"] - row["base"])) > DELTA_TOLERANCE:
        return (f"delta: {row['delta']!r} is not aligned - base ({row['aligned']!r} - {row['base']!r} = "
                f"{row['aligned'] - row['base']!r})")
    if row["low"] > row["high"]:
        return f"low: {row['low']!r} is above high ({row['high']!r})"
    # the percentile bootstrap interval of a paired mean holds the mean itself (the resampled means lie on both
    # sides of it: :func:`~savi_plugin.eval.compare.paired_bootstrap`)
    if not row["low"] - DELTA_TOLERANCE <= row["delta"] <= row["high"] + DELTA_TOLERANCE:
        return (f"delta: {row['delta']!r} is outside its own 95% interval [{row['low']!r}, {row['high']!r}] (a "
                f"bootstrap interval of the paired mean holds the mean)")
    # every item scores 0 or 100 (:data:`savi_plugin.eval.results.ITEM_SCORES`), so a mean over n items is 100 k / n
    for key in ("base", "aligned"):
        right = row[key] * row["n"] / 100
        if abs(right - round(right)) > DELTA_TOLERANCE * row["n"] / 100 + 1e-9:
            return (f"{key}: {row[key]!r} is no accuracy over n={row['n']} items (each scores 0 or 100: "
                    f"100 k / {row['n']} for a whole k)")
    # a paired difference is -100 only for an item the base model answered right and the aligned one wrong (+100
    # the other way round); with no such item no resampled mean lies below (above) 0
    n = row["n"]
    right_base, right_aligned = round(row["base"] * n / 100), round(row["aligned"] * n / 100)
    if min(right_base, n - right_aligned) == 0 and row["low"] < -DELTA_TOLERANCE:
        return (f"low: {row['low']!r} is below 0, yet no item can have lost its score (base {row['base']!r}, aligned "
                f"{row['aligned']!r} over n={n}: no paired difference is negative)")
    if min(right_aligned, n - right_base) == 0 and row["high"] > DELTA_TOLERANCE:
        return (f"high: {row['high']!r} is above 0, yet no item can have gained a score (base {row['base']!r}, "
                f"aligned {row['aligned']!r} over n={n}: no paired difference is positive)")
    return None


def card_limit_problem(row: dict, card: dict) -> str | None:
    """What is wrong with a row's item count against its table's card (``field: message``), or None: ``n`` plus
    ``excluded`` (the row's items) is at most the card's ``limit`` per leaf task times its leaf tasks (one for a
    row of a leaf task of ``card.tasks``, else all of them; lmms-eval's ``--limit`` of 1 or more caps each task's
    documents, below 1 is a fraction), and
    at most ``card.items`` (the documents the base model's run logged)."""
    items = row["n"] + row["excluded"]
    limit, leaves, logged = card["limit"], card["tasks"], card["items"]
    if limit is not None and limit >= 1:
        count = 1 if row["task"] in leaves else len(leaves)  # a leaf task's row: its own documents only
        cap = int(limit) * count
        if items > cap:
            return (f"n: {row['n']} items (with {row['excluded']} excluded) is above what the card's limit allows "
                    f"({int(limit)} per task x {count} task(s) = {cap})")
    if items > logged:
        return f"n: {row['n']} items (with {row['excluded']} excluded) is above the card's items ({logged})"
    return None


def items_total_problem(rows: list[dict], card: dict) -> str | None:
    """What is wrong with the rows' items taken together (``field: message``), or None: one adapter's rows of the
    card's leaf tasks (``card.tasks``; a group's row repeats its leaves' items) hold at most ``card.items``, the
    documents the base model's run logged over all of them."""
    logged, leaves = card["items"], card["tasks"]
    by_adapter: dict[str, list[int]] = {}
    for n, row in enumerate(rows):
        if row["task"] in leaves:
            by_adapter.setdefault(row["adapter"], []).append(n)
    for label, at in by_adapter.items():
        total = sum(rows[n]["n"] + rows[n]["excluded"] for n in at)
        if total > logged:
            return (f"rows: the rows of adapter {shown(label)} hold {total} items together (rows "
                    f"{', '.join(map(str, at))}), above the card's items ({logged}), the documents its base run logged")
    return None


def delta_of(row: dict) -> Delta:
    return Delta(**{k: row[k] for k in Delta.__dataclass_fields__})


def unusable_rows(table: dict) -> list[str]:
    """``task (adapter)`` of each row of ``table`` with no usable item: no Δ, not a result."""
    return [f"{r['task']} ({r['adapter']})" for r in table["rows"] if not r["n"]]

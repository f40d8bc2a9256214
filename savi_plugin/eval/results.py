"""What an lmms-eval run wrote, read back: the counts every result carries next to accuracy, summed over the run,
and the per-item scores of ``--log_samples`` (for paired comparisons, :mod:`savi_plugin.eval.compare`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from savi_plugin.errors import RunError
from savi_plugin.data.files import read_document
from savi_plugin.untrusted import load_json, shown

#: Samples scored wrong for a reason other than a wrong answer (metrics of every savi_ task).
COUNTS = ("unparsed", "missing_video", "bad_video", "control_token_in_text")
#: The per-document ``accuracy`` a savi task's ``process_results`` logs (``score`` of its dict): 0 or 100 percent
#: points (:func:`savi_plugin.eval.task.process_mcq`, ``videohallucer.process_results``,
#: ``vidhalluc.process_results``); each of :data:`COUNTS` is 0 or 1.
ITEM_SCORES = (0, 100)
SCORED_METRICS = ("accuracy", "accuracy_all")


def overall_counts(results_json: dict) -> dict[str, int]:
    """``{count: total}`` over the run's top-level tasks (groups count once, not again through their subtasks).

    Args:
        results_json: lmms-eval's ``*_results.json`` content (``results``, ``groups``, ``group_subtasks``).
    """
    results = {**results_json.get("results", {}), **results_json.get("groups", {})}
    inside = {sub for subs in results_json.get("group_subtasks", {}).values() for sub in subs}
    totals = dict.fromkeys(COUNTS, 0)
    for task, metrics in results.items():
        if task in inside:
            continue
        for count in COUNTS:
            value = metrics.get(f"{count},none")
            if isinstance(value, (int, float)):
                totals[count] += int(value)
    return totals


class ResultsFileError(RunError):
    """A file of an lmms-eval run that cannot be read back (torn, not JSON, not the shape lmms-eval writes);
    ``str()`` is one line naming the file (and line)."""


def _error(path: Path, what: str = "object"):
    def error(message: str, line: int | None = None) -> ResultsFileError:
        return ResultsFileError(f"{path}{f':{line}' if line else ''}: {message} (not a {what} lmms-eval wrote; "
                                f"remove the run's folder to evaluate it again)")
    return error


def read_json_object(path: str | Path, what: str = "results file") -> dict:
    """A JSON object from ``path`` through the untrusted-input boundary (:func:`savi_plugin.untrusted.load_json`),
    or :class:`ResultsFileError` naming the file."""
    path = Path(path)
    try:
        data = load_json(read_document(path), str(path), _error(path, what))
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise _error(path, what)(f"a JSON {type(data).__name__}, not an object")
    return data


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def sample_problem(sample: dict, savi_task: bool) -> str | None:
    """What is wrong with one logged sample (``field: message``), or None: its ``doc_id`` is a whole number >= 0
    (lmms-eval's index of the document); for a savi task (``savi_task``; not an lmms-eval built-in, whose own
    verdict :func:`~savi_plugin.eval.builtin_tasks.sample_score` reads), the values its ``process_results``
    writes: :data:`SCORED_METRICS`' score in :data:`ITEM_SCORES`, a ``group_size`` >= 1, each of :data:`COUNTS`
    0 or 1. A value outside them (a score of 1.0) is no score of the task, and would move a Δ."""
    doc_id = sample.get("doc_id")
    if not _whole(doc_id) or doc_id < 0:
        return f"doc_id: {shown(doc_id)} is not a whole number >= 0 (lmms-eval's index of the document)"
    if not savi_task:
        return None
    for metric in SCORED_METRICS:
        if metric not in sample:
            continue
        value = sample[metric]
        field = metric
        if isinstance(value, dict):
            size = value.get("group_size", 1)
            if not _whole(size) or size < 1:
                return f"{metric}.group_size: {shown(size)} is not a whole number >= 1"
            value, field = value.get("score"), f"{metric}.score"
        if isinstance(value, bool) or value not in ITEM_SCORES:
            return (f"{field}: {shown(value)} is not {' or '.join(map(str, ITEM_SCORES))} (the percent points the "
                    f"task's process_results writes for one document)")
    for count in COUNTS:
        if count in sample and (not _whole(sample[count]) or sample[count] not in (0, 1)):
            return f"{count}: {shown(sample[count])} is not 0 or 1 (the task counts a document once)"
    return None


def _jsonl(path: Path, task: str | None = None) -> list[dict]:
    """lmms-eval's ``--log_samples`` file of ``task``: one JSON object per line, read by the readers' rule
    (:func:`savi_plugin.data.readers.parse_line`: bounded per line), each sample checked by
    :func:`sample_problem`, each ``doc_id`` once. A bad line is refused naming ``file:line`` (and, for a document
    given twice, the line of its first): a score is never computed over the samples that happen to parse, nor
    taken from whichever of two lines comes last."""
    from savi_plugin.data.readers import iter_lines, parse_line
    from savi_plugin.eval.builtin_tasks import LEAVES

    error = _error(path, "samples file")
    savi_task = task not in LEAVES
    out = []
    first: dict[int, int] = {}
    for n, raw, ended in iter_lines(path):
        if raw is not None and not raw.strip():
            continue
        sample, problem = parse_line(path, n, raw, ended)
        if problem is not None:
            raise error(problem.message, n)
        if not isinstance(sample, dict):
            raise error(f"a JSON {type(sample).__name__}, not an object", n)
        problem = sample_problem(sample, savi_task)
        if problem:
            raise error(problem, n)
        doc_id = sample["doc_id"]
        if doc_id in first:
            raise error(f"doc_id {doc_id} is given twice (first at line {first[doc_id]}): lmms-eval logs a document "
                        f"once", n)
        first[doc_id] = n
        out.append(sample)
    return out


@dataclass(frozen=True)
class LmmsEvalRun:
    """One finished lmms-eval run read back: its ``*_results.json`` and its ``--log_samples`` files.

    Attributes:
        results: the ``*_results.json`` content.
        samples: leaf task -> its logged samples (``doc_id``, ``input``, ``target``, the metrics' values).
    """

    results: dict
    samples: dict[str, list[dict]]

    def leaves(self, task: str) -> list[str]:
        """The leaf tasks of ``task``: its subtasks for a group (recursively), else itself."""
        subs = self.results.get("group_subtasks", {}).get(task)
        if not subs:
            return [task]
        return [leaf for sub in subs for leaf in self.leaves(sub)]

    def item_scores(self, task: str, metric: str = "accuracy") -> dict[str, float]:
        """``{"<leaf task>/<doc_id>": score}`` over every logged sample of ``task`` (a group: all its subtasks).

        The score is the metric's per-sample value: a number, or the ``score`` of a dict (the savi tasks'
        ``accuracy``); for an lmms-eval built-in task, its own per-sample verdict as 0 or 100
        (:func:`savi_plugin.eval.builtin_tasks.sample_score`). Every sample counts, whatever the task's own
        aggregation leaves out (lmms-eval's MVBench drops empty answers from its denominator; here they score 0),
        so the mean is the accuracy over all items.

        Where the benchmark's item is several documents (a VideoHallucer pair, a VidHalluc binary-QA question
        over its clips), the dict carries ``group`` and ``group_size``: the item ``"<leaf task>/<group>"`` scores
        the full score only when all ``group_size`` documents do, else 0; a group with fewer documents logged
        (``--limit`` cut it) is left out, as the task's own pair figures leave it out.
        """
        from savi_plugin.eval.builtin_tasks import LEAVES, sample_score

        scores: dict[str, float] = {}
        groups: dict[str, tuple[int, list[float]]] = {}
        for leaf in self.leaves(task):
            if leaf not in self.samples:
                raise FileNotFoundError(f"lmms-eval logged no samples for task {leaf!r} (run with --log_samples)")
            if leaf in LEAVES:
                scores.update({f"{leaf}/{s['doc_id']}": sample_score(leaf, s) for s in self.samples[leaf]})
                continue
            for sample in self.samples[leaf]:
                value = sample.get(metric)
                group = value.get("group") if isinstance(value, dict) else None
                if isinstance(value, dict):
                    value = value.get("score")
                if not isinstance(value, (int, float)):
                    raise ValueError(f"task {leaf!r} doc {sample.get('doc_id')}: no numeric per-sample {metric!r}")
                if group is None:
                    scores[f"{leaf}/{sample['doc_id']}"] = float(value)
                else:
                    size = int(sample[metric].get("group_size", 1))
                    groups.setdefault(f"{leaf}/{group}", (size, []))[1].append(float(value))
        for key, (size, values) in groups.items():
            if len(values) == size:
                scores[key] = min(values)
        return scores


def _unusable(sample: dict) -> bool:
    """Whether a logged sample is one the model could not use (:func:`savi_plugin.eval.bad_videos.unusable_counts`)."""
    return any(bool(sample.get(count)) for count in ("missing_video", "bad_video", "control_token_in_text"))


def unusable_items(run: LmmsEvalRun, task: str, metric: str = "accuracy") -> set[str]:
    """The items of ``task`` (ids as :meth:`LmmsEvalRun.item_scores` names them: ``"<leaf>/<doc_id>"``, or
    ``"<leaf>/<group>"`` for a multi-document item) of which a logged sample had no usable video (its
    ``missing_video`` or ``bad_video`` is 1: a missing, undecodable, too short or over-budget clip, or one that
    does not fit the context; the savi tasks score such a sample 0 and count it). Empty for a task that logs
    neither: lmms-eval's own tasks (the built-ins) score the empty answer ``savi_video`` gives for such a clip as a
    wrong answer and do not mark it."""
    items = set()
    for leaf in run.leaves(task):
        for sample in run.samples.get(leaf, []):
            if _unusable(sample):
                value = sample.get(metric)
                group = value.get("group") if isinstance(value, dict) else None
                items.add(f"{leaf}/{sample.get('doc_id') if group is None else group}")
    return items


def read_run(output_path: str | Path) -> LmmsEvalRun:
    """The newest ``*_results.json`` under ``output_path`` and the ``*_samples_<task>.jsonl`` beside it."""
    files = sorted(Path(output_path).rglob("*_results.json"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise FileNotFoundError(f"{output_path}: lmms-eval wrote no *_results.json")
    newest = files[-1]
    stamp = newest.name[: -len("_results.json")]
    samples = {}
    for path in newest.parent.glob(f"{stamp}_samples_*.jsonl"):
        task = path.name[len(f"{stamp}_samples_"): -len(".jsonl")]
        samples[task] = _jsonl(path, task)
    return LmmsEvalRun(read_json_object(newest), samples)

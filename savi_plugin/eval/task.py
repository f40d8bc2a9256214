"""The lmms-eval task class and the doc functions our task YAMLs (``eval_tasks/``) name.

``SaviVideoTask`` is lmms-eval's ``ConfigurableTask`` with one change: where the data comes from.
With ``SAVI_DATA_ROOT`` set it reads the benchmark's JSON/parquet and videos from that folder (see
:mod:`savi_plugin.eval.data`); otherwise it defers to lmms-eval's own hub download, with the same
dataset ids as lmms-eval's built-in tasks. Either way each doc gains these fields:

* ``savi_video``: the resolved video path (the first candidate when none exists);
* ``savi_video_found``: whether it exists. A missing video is logged (once per task, with a count and
  the first path) and scored as a wrong answer, counted in the ``missing_video`` metric;
* ``savi_benchmark``, ``savi_protocol`` and ``savi_num_frames``: the benchmark, the task's evaluation protocol
  (``metadata.protocol``, see :mod:`savi_plugin.eval.protocols`) and its frame count, which the ``savi_video``
  model uses (with the protocol's system prompt and reply pre-fill);
* ``savi_frames``: the protocol's frame rule (``uniform`` or ``midpoints``, :mod:`savi_plugin.video.sampling`);
* ``savi_bound``: ``[start, end]`` seconds to sample when ``savi_video`` is a full source video of an MVBench
  bounded subtask and the protocol applies bounds; None otherwise (a pre-trimmed clip, a record without
  ``start``/``end``, a protocol without bounds). See :func:`savi_plugin.eval.data.locate_video`.

The task YAMLs use ``class: !function savi_plugin.eval.task.SaviVideoTask``, so lmms-eval builds
these tasks for "simple" models (``savi_video`` and lmms-eval's simple video models; dual models
with ``--force_simple``). Metrics per task: ``accuracy`` (percent, the papers' unit,
by the protocol's own grading rule), and the counts of samples scored wrong for a reason other than a wrong
answer: ``unparsed`` (the answer names no option), ``missing_video`` (no file), ``bad_video`` (a file the
model could not decode) and ``control_token_in_text`` (a question or option holding the model's control tokens,
a control character or a bidi override: refused unread). Groups report the accuracy over all their samples and the summed counts.
"""

from __future__ import annotations

import copy
from typing import Any

from lmms_eval.api.task import ConfigurableTask
from loguru import (
    logger as log,  # lmms-eval's logger, so our messages follow its --verbosity
)

from savi_plugin.data.choices import LETTERS, parse_choice
from savi_plugin.eval import benchmarks, data
from savi_plugin.eval.answers import format_mcq
from savi_plugin.eval.bad_videos import unusable_counts
from savi_plugin.eval.protocols import Protocol


class SaviVideoTask(ConfigurableTask):
    """A video multiple-choice task that loads from ``$SAVI_DATA_ROOT`` or the hub.

    The YAML's ``metadata`` names the benchmark: ``{benchmark: mvbench|egoschema|perceptiontest,
    subtask: <MVBench subtask>, protocol: savi|lmms|official|rrpo}``; everything else is an ordinary
    lmms-eval task config.
    """

    def __init__(self, data_dir=None, cache_dir=None, download_mode=None, config: dict | None = None,
                 model_name: str | None = None) -> None:
        config = dict(config or {})
        config.pop("class", None)  # the python-task marker is not a TaskConfig field
        meta = config.get("metadata") or {}
        if "benchmark" not in meta:
            raise ValueError(f"task {config.get('task')!r}: metadata.benchmark is required "
                             f"(one of {', '.join(benchmarks.registered())})")
        try:
            self.benchmark = benchmarks.get(meta["benchmark"])
        except benchmarks.BenchmarkError as exc:
            raise ValueError(f"task {config.get('task')!r}: metadata.benchmark: {exc}") from None
        self.spec = self.benchmark.spec
        self.subtask = meta.get("subtask")
        try:
            self.protocol = self.benchmark.protocol(meta.get("protocol", "savi"))
        except ValueError as exc:
            raise ValueError(f"task {config.get('task')!r}: metadata.protocol: {exc}") from None
        self.data_source = "hub"
        super().__init__(data_dir=data_dir, cache_dir=cache_dir, download_mode=download_mode, config=config,
                         model_name=model_name)

    def download(self, dataset_kwargs: dict | None = None) -> None:
        """Load the split from ``$SAVI_DATA_ROOT`` when set, else through lmms-eval's hub download.

        Data that cannot be used (:class:`~savi_plugin.eval.data.EvalDataError`: a bad record, a question given
        twice, a video leaving the data root, data that cannot be had; an annotation file above a document cap,
        :class:`~savi_plugin.errors.DocumentTooLarge`) is a configuration error: it ends lmms-eval's process with its
        one line (:data:`~savi_plugin.eval.command.DATA_ERROR_PREFIX`, then ``file:record:field: message``) and exit
        status 2 (:func:`~savi_plugin.eval.settings.exits_as_configuration_error`), where lmms-eval would print a
        traceback and carry on with exit status 0."""
        from savi_plugin.errors import DocumentTooLarge
        from savi_plugin.eval.command import DATA_ERROR_PREFIX
        from savi_plugin.eval.settings import SettingError, exits_as_configuration_error

        with exits_as_configuration_error():
            try:
                self._load(dataset_kwargs)
            except (data.EvalDataError, DocumentTooLarge) as exc:
                raise SettingError(f"{DATA_ERROR_PREFIX}{exc}") from None

    def _load(self, dataset_kwargs: dict | None) -> None:
        import datasets

        root = data.data_root()
        split = self.config.test_split or self.config.validation_split
        origins: dict[str, list[data.RecordOrigin]] = {}  # split -> each doc's file, record and video field
        if root is not None:
            self.data_source = str(root)
            origins[split] = []
            records = data.load_local_records(root, self.spec, self.config.dataset_name, split, origins[split])
            self.dataset = datasets.DatasetDict({split: datasets.Dataset.from_list(records)})
            if self.config.process_docs is not None:  # may drop or reorder docs: named by task/split, position
                self.dataset[split] = self.config.process_docs(self.dataset[split])
                origins.clear()
            base = data.video_base(self.spec, root)
        elif self.spec.local_only:
            raise data.EvalDataError(
                f"{self.config.dataset_path}:{self.config.dataset_name}", None, None,
                f"task {self.config.task}: {self.spec.name} is read from its official annotation files only; set "
                f"{data.DATA_ROOT_ENV} to a folder holding {self.spec.name}/ in the layout of eval_tasks/README.md, "
                f"or write a small synthetic one with `savi eval fixture DIR --benchmark {self.spec.name}` and set "
                f"{data.DATA_ROOT_ENV}=DIR")
        else:
            # lmms-eval pops cache_dir from the kwargs it is given; keep the config's copy intact.
            kwargs = copy.deepcopy(dataset_kwargs) if dataset_kwargs is not None else None
            cache_dir = (kwargs or {}).get("cache_dir")
            try:
                super().download(kwargs)
            except Exception as exc:  # noqa: BLE001 - offline, no cache, a hub error: one line, no chained traces
                first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
                raise data.EvalDataError(
                    f"{self.config.dataset_path}:{self.config.dataset_name}", None, None,
                    f"task {self.config.task}: its data could not be loaded from the hub ({type(exc).__name__}"
                    f"{': ' + first[:200] if first else ''}); set {data.DATA_ROOT_ENV} to a folder with the "
                    f"benchmark in the layout of eval_tasks/README.md, or write a small synthetic one with "
                    f"`savi eval fixture DIR` and set {data.DATA_ROOT_ENV}=DIR") from None
            for name in self.dataset:
                data.validate_records(self.dataset[name].to_list(), self.spec,
                                      f"{self.config.dataset_path}:{self.config.dataset_name}/{name}")
            base = data.video_base(self.spec, None, cache_dir)
        self.dataset = datasets.DatasetDict({
            name: self._attach_videos(ds, base, name, root, origins.get(name)) for name, ds in self.dataset.items()
        })
        self.dataset_no_image = self.dataset

    def _attach_videos(self, ds, base, split_name: str, root=None, origins: list[data.RecordOrigin] | None = None):
        # Under SAVI_DATA_ROOT no doc may name a video outside it (EvalDataError at the record's file, record and
        # video field; at task/split and position where the docs are not the file's records as read)
        origins = origins or [(f"{self.config.task}/{split_name}", i, None) for i in range(len(ds))]
        located = [data.locate_video(self.spec, doc, base, self.subtask, root=root, bounds=self.protocol.bounds,
                                     source=source, record=record, field=field)
                   for doc, (source, record, field) in zip(ds, origins, strict=True)]
        missing = [v.path for v in located if not v.found]
        if missing:
            log.error("{} ({}): {} of {} videos not found under {}, e.g. {}; these samples are scored wrong and "
                      "counted in missing_video", self.config.task, split_name, len(missing), len(located), base,
                      missing[0])
        bounded = sum(v.bound is not None for v in located)
        if bounded:
            log.info("{} ({}): {} of {} videos are full source videos, sampled within the records' start/end",
                     self.config.task, split_name, bounded, len(located))
        n = len(located)
        ds = ds.add_column("savi_video", [v.path for v in located])
        ds = ds.add_column("savi_video_found", [v.found for v in located])
        ds = ds.add_column("savi_benchmark", [self.spec.name] * n)
        ds = ds.add_column("savi_protocol", [self.protocol.name] * n)
        ds = ds.add_column("savi_num_frames", [self.protocol.num_frames] * n)
        ds = ds.add_column("savi_frames", [self.protocol.frames] * n)
        return ds.add_column("savi_bound", [v.bound for v in located])


# ---------------------------------------------------------------------------- doc functions (YAML)
def doc_to_visual(doc: dict) -> list[str]:
    """``[video path]``; logs a clear error when the file is missing (the model then fails on it)."""
    if not doc.get("savi_video_found", True):
        log.error("video not found: {} (the sample is scored wrong)", doc["savi_video"])
    return [doc["savi_video"]]


def _spec(doc: dict) -> data.BenchmarkSpec:
    return benchmarks.get(doc["savi_benchmark"]).spec


def _protocol(doc: dict, benchmark: str | None = None) -> Protocol:
    return benchmarks.get(doc.get("savi_benchmark", benchmark)).protocol(doc.get("savi_protocol", "savi"))


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The prompt in the doc's benchmark and protocol: question, lettered options (``(A) ...`` or ``A. ...``,
    the protocol's layout), then the instruction (``lmms_eval_specific_kwargs``' ``post_prompt``, else the
    protocol's)."""
    kwargs = lmms_eval_specific_kwargs or {}
    proto = _protocol(doc)
    return format_mcq(doc["question"], _spec(doc).options(doc), pre_prompt=kwargs.get("pre_prompt", ""),
                      post_prompt=kwargs.get("post_prompt", proto.post_prompt), layout=proto.layout)


def doc_to_target(doc: dict) -> str:
    """The correct option's letter."""
    return LETTERS[_spec(doc).target(doc)]


def process_mcq(spec: data.BenchmarkSpec, doc: dict, response: str) -> dict[str, Any]:
    """Per-sample metrics for one response, graded by the task's protocol.

    Returns:
        ``accuracy``: a dict with ``score`` (0 or 100: percent points, so lmms-eval's CLT stderr is in
        the same unit as the aggregate), ``pred`` (the option the careful parser reads, None when unparsed; the
        score follows the protocol's own rule, which for ``savi`` is that parser), ``answered`` (the response is
        not empty), ``target`` (option index) and ``id``; ``missing_video``, ``bad_video``,
        ``control_token_in_text`` (:func:`~savi_plugin.eval.bad_videos.unusable_counts`) and ``unparsed``: 0/1, at
        most one of them 1.
    """
    target = spec.target(doc)
    unusable = unusable_counts(doc)
    correct, parsed, pred = False, True, None
    if not any(unusable.values()):
        options = spec.options(doc)
        correct, parsed = _protocol(doc, spec.name).grade(response, options, target)
        pred = parse_choice(response, options).index
    return {
        "accuracy": {"score": 100.0 * correct, "pred": pred, "answered": bool(response), "target": target,
                     "id": spec.record_id(doc)},
        **unusable,
        "unparsed": int(not parsed),
    }


def process_results(doc: dict, results: list[str]) -> dict[str, Any]:
    """lmms-eval's ``process_results`` of every multiple-choice savi task: :func:`process_mcq` on the reply."""
    return process_mcq(_spec(doc), doc, results[0])


def process_results_all_items(doc: dict, results: list[str]) -> dict[str, Any]:
    """:func:`process_results` plus ``accuracy_all``: for tasks whose ``accuracy`` follows a reference that leaves
    some items out of its denominator (lmms-eval's MVBench drops empty answers, so a failed video can only raise
    it), the accuracy over every item, failures scored wrong, reported beside it."""
    out = process_results(doc, results)
    out["accuracy_all"] = out["accuracy"]
    return out


def aggregate_accuracy(items: list[dict]) -> float:
    """Accuracy in percent over the scored samples (unparsed answers, missing and bad videos count as wrong)."""
    if not items:
        return 0.0
    return sum(item["score"] for item in items) / len(items)


def aggregate_accuracy_answered(items: list[dict]) -> float:
    """Accuracy in percent over the samples with a non-empty answer: lmms-eval's MVBench rule
    (``mvbench_aggregate_results``), used by the ``lmms`` protocol only."""
    answered = [item for item in items if item["answered"]]
    return sum(item["score"] for item in answered) / len(answered) if answered else 0.0


def aggregate_count(items: list[int]) -> int:
    """How many samples had the condition (``missing_video`` / ``bad_video`` / ``unparsed``)."""
    return int(sum(items))


def group_sum(values: list[float], sizes: list[int], weight_by_size: bool = False) -> int:
    """A group's count: the sum of its subtasks' counts (lmms-eval's group aggregation signature)."""
    return int(sum(values))

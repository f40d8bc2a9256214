"""The lmms-eval task class and the doc functions our task YAMLs (``eval_tasks/``) name.

``SaviVideoTask`` is lmms-eval's ``ConfigurableTask`` with one change: where the data comes from.
With ``SAVI_DATA_ROOT`` set it reads the benchmark's JSON/parquet and videos from that folder (see
:mod:`savi_plugin.eval.data`); otherwise it defers to lmms-eval's own hub download, with the same
dataset ids as lmms-eval's built-in tasks. Either way each doc gains two fields:

* ``savi_video``: the resolved video path (the first candidate when none exists);
* ``savi_video_found``: whether it exists. A missing video is logged (once per task, with a count and
  the first path) and scored as a wrong answer, counted in the ``missing_video`` metric.

The task YAMLs use ``class: !function savi_plugin.eval.task.SaviVideoTask``, so lmms-eval builds
these tasks for "simple" models (``savi_video`` and lmms-eval's simple video models; dual models
with ``--force_simple``). Metrics per task: ``accuracy`` (percent, the papers' unit),
``missing_video`` and ``unparsed`` (counts of samples scored wrong for those reasons).
"""

from __future__ import annotations

import copy
from typing import Any

from lmms_eval.api.task import ConfigurableTask
from loguru import (
    logger as log,  # lmms-eval's logger, so our messages follow its --verbosity
)

from savi_plugin.eval import data
from savi_plugin.eval.answers import extract_choice, format_mcq, score

DEFAULT_POST_PROMPT = "\nAnswer with the option's letter from the given choices directly."


class SaviVideoTask(ConfigurableTask):
    """A video multiple-choice task that loads from ``$SAVI_DATA_ROOT`` or the hub.

    The YAML's ``metadata`` names the benchmark: ``{benchmark: mvbench|egoschema|perceptiontest,
    subtask: <MVBench subtask>}``; everything else is an ordinary lmms-eval task config.
    """

    def __init__(self, data_dir=None, cache_dir=None, download_mode=None, config: dict | None = None,
                 model_name: str | None = None) -> None:
        config = dict(config or {})
        config.pop("class", None)  # the python-task marker is not a TaskConfig field
        meta = config.get("metadata") or {}
        if "benchmark" not in meta:
            raise ValueError(f"task {config.get('task')!r}: metadata.benchmark is required "
                             f"(one of {', '.join(data.BENCHMARKS)})")
        self.spec = data.benchmark(meta["benchmark"])
        self.subtask = meta.get("subtask")
        self.data_source = "hub"
        super().__init__(data_dir=data_dir, cache_dir=cache_dir, download_mode=download_mode, config=config,
                         model_name=model_name)

    def download(self, dataset_kwargs: dict | None = None) -> None:
        """Load the split from ``$SAVI_DATA_ROOT`` when set, else through lmms-eval's hub download."""
        import datasets

        root = data.data_root()
        split = self.config.test_split or self.config.validation_split
        if root is not None:
            self.data_source = str(root)
            records = data.load_local_records(root, self.spec, self.config.dataset_name, split)
            self.dataset = datasets.DatasetDict({split: datasets.Dataset.from_list(records)})
            if self.config.process_docs is not None:
                self.dataset[split] = self.config.process_docs(self.dataset[split])
            base = data.video_base(self.spec, root)
        else:
            # lmms-eval pops cache_dir from the kwargs it is given; keep the config's copy intact.
            kwargs = copy.deepcopy(dataset_kwargs) if dataset_kwargs is not None else None
            cache_dir = (kwargs or {}).get("cache_dir")
            super().download(kwargs)
            for name in self.dataset:
                data.validate_records(self.dataset[name].to_list(), self.spec,
                                      f"{self.config.dataset_path}:{self.config.dataset_name}/{name}")
            base = data.video_base(self.spec, None, cache_dir)
        self.dataset = datasets.DatasetDict({
            name: self._attach_videos(ds, base, name, root) for name, ds in self.dataset.items()
        })
        self.dataset_no_image = self.dataset

    def _attach_videos(self, ds, base, split_name: str, root=None):
        # Under SAVI_DATA_ROOT no doc may name a video outside it (EvalDataError: task/split, record, video).
        resolved = [data.resolve_video(self.spec, doc, base, self.subtask, root=root,
                                       source=f"{self.config.task}/{split_name}", record=i) for i, doc in enumerate(ds)]
        missing = [path for path, found in resolved if not found]
        if missing:
            log.error("{} ({}): {} of {} videos not found under {}, e.g. {}; these samples are scored wrong and "
                      "counted in missing_video", self.config.task, split_name, len(missing), len(resolved), base,
                      missing[0])
        ds = ds.add_column("savi_video", [path for path, _ in resolved])
        return ds.add_column("savi_video_found", [found for _, found in resolved])


# ---------------------------------------------------------------------------- doc functions (YAML)
def doc_to_visual(doc: dict) -> list[str]:
    """``[video path]``; logs a clear error when the file is missing (the model then fails on it)."""
    if not doc.get("savi_video_found", True):
        log.error("video not found: {} (the sample is scored wrong)", doc["savi_video"])
    return [doc["savi_video"]]


def _prompt(spec: data.BenchmarkSpec, doc: dict, kwargs: dict | None, style: str) -> str:
    kwargs = kwargs or {}
    return format_mcq(doc["question"], spec.options(doc), pre_prompt=kwargs.get("pre_prompt", ""),
                      post_prompt=kwargs.get("post_prompt", DEFAULT_POST_PROMPT), style=style)


def mvbench_doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """MVBench prompt: ``Question: ...\\nOptions:\\n(A) ...`` + instruction (MVBench's option format)."""
    return _prompt(data.BENCHMARKS["mvbench"], doc, lmms_eval_specific_kwargs, "paren")


def egoschema_doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """EgoSchema prompt: question, ``A. ...`` .. ``E. ...``, instruction."""
    return _prompt(data.BENCHMARKS["egoschema"], doc, lmms_eval_specific_kwargs, "dot")


def perceptiontest_doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """PerceptionTest prompt: question, ``A. ...`` .. ``C. ...``, instruction."""
    return _prompt(data.BENCHMARKS["perceptiontest"], doc, lmms_eval_specific_kwargs, "dot")


def _target_letter(spec: data.BenchmarkSpec, doc: dict) -> str:
    return "ABCDEFGHIJ"[spec.target(doc)]


def mvbench_doc_to_target(doc: dict) -> str:
    return _target_letter(data.BENCHMARKS["mvbench"], doc)


def egoschema_doc_to_target(doc: dict) -> str:
    return _target_letter(data.BENCHMARKS["egoschema"], doc)


def perceptiontest_doc_to_target(doc: dict) -> str:
    return _target_letter(data.BENCHMARKS["perceptiontest"], doc)


def process_mcq(spec: data.BenchmarkSpec, doc: dict, response: str) -> dict[str, Any]:
    """Per-sample metrics for one response.

    Returns:
        ``accuracy``: a dict with ``score`` (0 or 100: percent points, so lmms-eval's CLT stderr is in
        the same unit as the aggregate), ``pred``/``target`` (option indices; ``pred`` None when
        unparsed) and ``id``; ``missing_video`` and ``unparsed``: 0/1.
    """
    target = spec.target(doc)
    found = bool(doc.get("savi_video_found", True))
    pred = extract_choice(response, spec.options(doc)) if found else None
    return {
        "accuracy": {"score": 100.0 * score(pred, target), "pred": pred, "target": target, "id": spec.record_id(doc)},
        "missing_video": int(not found),
        "unparsed": int(found and pred is None),
    }


def mvbench_process_results(doc: dict, results: list[str]) -> dict[str, Any]:
    return process_mcq(data.BENCHMARKS["mvbench"], doc, results[0])


def egoschema_process_results(doc: dict, results: list[str]) -> dict[str, Any]:
    return process_mcq(data.BENCHMARKS["egoschema"], doc, results[0])


def perceptiontest_process_results(doc: dict, results: list[str]) -> dict[str, Any]:
    return process_mcq(data.BENCHMARKS["perceptiontest"], doc, results[0])


def aggregate_accuracy(items: list[dict]) -> float:
    """Accuracy in percent over the scored samples (missing videos and unparsed answers count as wrong)."""
    if not items:
        return 0.0
    return sum(item["score"] for item in items) / len(items)


def aggregate_count(items: list[int]) -> int:
    """How many samples had the condition (``missing_video`` / ``unparsed``)."""
    return int(sum(items))

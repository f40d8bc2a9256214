"""lmms-eval 0.7.3's own tasks for the papers' benchmarks: where each reads its data, and how one logged sample of
it counts as right or wrong.

RRPO (arXiv 2504.12083, Table 2) reports MVBench, TVBench, TempCompass, VideoHallucer, VidHalluc, VideoMME, MLVU and
LongVideoBench; VideoSAVi (arXiv 2412.00624, Tables 1-2) MVBench, PerceptionTest, EgoSchema, NExT-QA, LongVideoBench
and TempCompass. lmms-eval ships a task for all of them except VideoHallucer and VidHalluc. :data:`BUILTINS` names,
per benchmark, the built-in task (or group) that gives the papers' number, with the facts of its YAML
(``dataset_path``, ``dataset_name`` per leaf task, split, ``dataset_kwargs.cache_dir``) and of its ``utils.py``
(the folder under ``$HF_HOME/<cache_dir>`` its ``doc_to_visual`` reads, and the per-sample key its
``process_results`` logs). ``tests/eval/test_builtin_tasks.py`` checks these facts against the installed YAMLs and
runs every task through the real lmms-eval CLI.

The built-in tasks run unchanged: their ``doc_to_text`` prompts, their ``process_results`` scores. What we add is
:func:`sample_score`, which reads each built-in's own per-sample verdict out of ``--log_samples`` as 0 or 100 so a
suite can pair base and aligned item by item (:mod:`savi_plugin.eval.compare`); it re-grades nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from savi_plugin.eval.data import MVBENCH_VIDEO_FOLDERS

#: lmms-eval 0.7.3 ``tasks/tvbench/tvbench.yaml``'s subtasks (config = the name after ``tvbench_``).
TVBENCH_SUBTASKS = ("action_antonym", "action_count", "action_localization", "action_sequence",
                    "egocentric_sequence", "moving_direction", "object_count", "object_shuffle", "scene_transition",
                    "unexpected_action")


def _dict_field(key: str, field_name: str) -> Callable[[dict], bool]:
    return lambda sample: bool(sample[key][field_name])


def _dict_equal(key: str, left: str, right: str) -> Callable[[dict], bool]:
    return lambda sample: sample[key][left] == sample[key][right]


def _egoschema_right(sample: dict) -> bool:
    score = sample["score"]  # {"pred": option index or -1, "ground_truth": the record's answer, an index string}
    return str(score["pred"]) == str(score["ground_truth"])  # egoschema/utils.py egoschema_aggregate_score's rule


@dataclass(frozen=True)
class Builtin:
    """One benchmark's lmms-eval built-in task, as this plugin runs it.

    Attributes:
        benchmark: the papers' name for it (a suite's key).
        task: the lmms-eval task or group a suite runs.
        dataset_path: the YAML's ``dataset_path`` (a hub dataset id).
        configs: leaf task -> the YAML's ``dataset_name`` (None: the dataset's only config).
        split: the YAML's ``test_split``.
        cache_dir: the YAML's ``dataset_kwargs.cache_dir``: the videos' folder under ``$HF_HOME``.
        video_folder: where ``doc_to_visual`` looks inside ``$HF_HOME/<cache_dir>`` (``{sub}``: the leaf's config).
        metric: the per-sample key ``process_results`` returns (logged in ``--log_samples``).
        right: a logged sample -> whether the built-in scored it right (its own verdict, read, not recomputed).
        why: why this task (and not a sibling) gives the papers' number.
        judge: the task falls back on an OpenAI judge for answers its rules cannot match.
    """

    benchmark: str
    task: str
    dataset_path: str
    configs: dict[str, str | None]
    split: str
    cache_dir: str
    video_folder: str
    metric: str
    right: Callable[[dict], bool] = field(repr=False)
    why: str
    judge: bool = False

    def video_dir(self, leaf: str) -> str:
        """The folder, relative to ``$HF_HOME``, holding ``leaf``'s videos."""
        sub = self.configs[leaf]
        folder = self.video_folder.format(sub=MVBENCH_VIDEO_FOLDERS.get(sub, sub) if self.benchmark == "mvbench"
                                          else sub)
        return f"{self.cache_dir}/{folder}".rstrip("/")


BUILTINS: dict[str, Builtin] = {b.benchmark: b for b in (
    Builtin("mvbench", "mvbench", "OpenGVLab/MVBench", {f"mvbench_{s}": s for s in MVBENCH_VIDEO_FOLDERS}, "train",
            "mvbench_video", "{sub}", "mvbench_accuracy", _dict_field("mvbench_accuracy", "score"),
            "the group of all 20 subtasks, as both papers report MVBench (lmms-eval's number leaves empty answers "
            "out of its denominator; the suite's per-item mean counts them wrong)"),
    Builtin("tvbench", "tvbench", "FunAILab/TVBench", {f"tvbench_{s}": s for s in TVBENCH_SUBTASKS}, "train",
            "tvbench", "video/{sub}", "tvbench_acc", lambda s: float(s["tvbench_acc"]) == 1.0,
            "the group of all 10 subtasks (RRPO's TVBench column is the average over TVBench's tasks)"),
    Builtin("tempcompass", "tempcompass_multi_choice", "lmms-eval/TempCompass",
            {"tempcompass_multi_choice": "multi-choice"}, "test", "tempcompass", "videos", "avg_accuracy",
            lambda s: s["avg_accuracy"]["rating"] == 1,
            "the multiple-choice format: a letter answer is graded by the task's rules alone; yes/no and caption "
            "matching fall back on the judge more often and captioning always needs it", judge=True),
    Builtin("videomme", "videomme", "lmms-eval/Video-MME", {"videomme": None}, "test", "videomme", "data",
            "videomme_perception_score", _dict_field("videomme_perception_score", "score"),
            "without subtitles, the setting RRPO's VideoMME column reports"),
    Builtin("mlvu", "mlvu_dev", "sy1998/MLVU_dev", {"mlvu_dev": None}, "test", "mlvu", "", "mlvu_percetion_score",
            _dict_equal("mlvu_percetion_score", "pred_answer", "answer"),
            "MLVU's multiple-choice dev set (M-Avg), the split with public answers; MLVU_Test's answers are hidden"),
    Builtin("longvideobench", "longvideobench_val_v", "longvideobench/LongVideoBench",
            {"longvideobench_val_v": None}, "validation", "datasets/longvideobench", "videos", "lvb_acc",
            _dict_equal("lvb_acc", "parsed_pred", "answer"),
            "the validation set with video frames only (no interleaved subtitles), as both papers report it"),
    Builtin("nextqa", "nextqa_mc_test", "lmms-eval/NExTQA", {"nextqa_mc_test": "MC"}, "test", "nextqa", "NExTVideo",
            "exact_match", lambda s: bool(s["exact_match"]),
            "NExT-QA's multiple-choice test set, the task VideoSAVi's eval.sh runs"),
    Builtin("perceptiontest", "perceptiontest_val_mc", "lmms-eval/PerceptionTest_Val",
            {"perceptiontest_val_mc": "mc_question_val"}, "validation", "perceptiontest_val", "videos", "accuracy",
            _dict_field("accuracy", "correct"),
            "the multiple-choice validation set (the test set's answers are hidden), VideoSAVi's eval.sh task"),
    Builtin("egoschema", "egoschema_subset", "lmms-eval/egoschema", {"egoschema_subset": "Subset"}, "test",
            "egoschema", "videos", "score", _egoschema_right,
            "the 500-question subset with public answers, VideoSAVi's eval.sh task (the full set is scored only by "
            "a remote server)"),
)}

#: every leaf task of every built-in -> its :class:`Builtin`
LEAVES: dict[str, Builtin] = {leaf: b for b in BUILTINS.values() for leaf in b.configs}


def builtin_of(task: str) -> Builtin | None:
    """The :class:`Builtin` a task or group name belongs to (``mvbench``, ``mvbench_action_antonym`` ...)."""
    if task in LEAVES:
        return LEAVES[task]
    return next((b for b in BUILTINS.values() if b.task == task), None)


def leaves_of(task: str) -> list[str]:
    """The leaf tasks lmms-eval evaluates for ``task`` (a group: all its subtasks; unknown: empty)."""
    builtin = builtin_of(task)
    if builtin is None:
        return []
    return [task] if task in builtin.configs else list(builtin.configs)


def sample_score(leaf: str, sample: dict) -> float:
    """100.0 when the built-in ``leaf`` task scored this ``--log_samples`` line right, else 0.0.

    Raises:
        ValueError: the line lacks the task's per-sample verdict (naming task, doc and key).
    """
    builtin = LEAVES[leaf]
    try:
        return 100.0 if builtin.right(sample) else 0.0
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"task {leaf!r} doc {sample.get('doc_id')}: no per-sample {builtin.metric!r} verdict "
                         f"in the logged sample ({type(exc).__name__}: {exc})") from None

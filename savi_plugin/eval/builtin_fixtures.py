"""Small offline copies of the papers' benchmarks in the format of lmms-eval 0.7.3's own tasks.

:func:`build_builtin_fixture` writes, under an ``HF_HOME`` folder, what a user's Hugging Face home holds after one
online run of a built-in task: the prepared dataset in the ``datasets`` cache (:mod:`savi_plugin.eval.hf_cache`,
the columns the task's ``utils.py`` reads) and the videos in ``$HF_HOME/<cache_dir>/...`` where its
``doc_to_visual`` looks. With ``HF_HOME`` set to that folder and ``HF_HUB_OFFLINE=1``/``HF_DATASETS_OFFLINE=1``,
``lmms-eval --tasks videomme ...`` runs the built-in task unchanged: lmms-eval skips its video download because the
folder exists, ``datasets`` reloads the cached copy, and the task's own ``doc_to_text`` and ``process_results``
prompt and score. The questions and videos come from :func:`savi_plugin.video.synthetic.render_sample`, so every
record's right answer is known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from savi_plugin.eval.builtin_tasks import BUILTINS, Builtin
from savi_plugin.eval.hf_cache import write_cached_split

#: the synthetic question kinds, cycled over a fixture's records
_KINDS = ("moving_direction", "appearance_order", "counting", "color_change", "object_color")
_EXTRA = ("none of the other options", "it cannot be told from the video")
_LETTERS = "ABCDE"
#: Video-MME's category columns take values from lmms-eval's ``videomme/utils.py`` lists (its aggregation indexes them)
_VIDEOMME = {"duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
             "task_type": "Temporal Perception"}
#: MLVU dev's task types (``mlvu/utils.py`` ``mlvu_aggregate_results_dev``)
_MLVU_TYPES = ("order", "count", "plotQA", "ego", "needle", "anomaly_reco", "topic_reasoning")
#: TempCompass's dimensions (``tempcompass_mc.yaml``'s ``<dim>_accuracy`` metrics)
_TEMPCOMPASS_DIMS = ("direction", "order", "speed", "action", "attribute_change")


@dataclass
class Item:
    """One synthetic question: its video frames, question, options and the right option's index."""

    frames: np.ndarray
    question: str
    options: list[str]
    answer: int


@dataclass
class BuiltinFixture:
    """What :func:`build_builtin_fixture` wrote.

    Attributes:
        hf_home: the ``HF_HOME`` folder.
        records: leaf task -> its records, in file (``doc_id``) order.
        questions: leaf task -> each record's question text (what the built-in's prompt must contain).
        options: leaf task -> each record's option texts.
        answers: leaf task -> each record's right option letter.
        videos: leaf task -> each record's video file.
    """

    hf_home: Path
    records: dict[str, list[dict]] = field(default_factory=dict)
    questions: dict[str, list[str]] = field(default_factory=dict)
    options: dict[str, list[list[str]]] = field(default_factory=dict)
    answers: dict[str, list[str]] = field(default_factory=dict)
    videos: dict[str, list[Path]] = field(default_factory=dict)


def _items(n: int, seed: int, size: int, num_frames: int, n_options: int) -> list[Item]:
    """``n`` synthetic questions with exactly ``n_options`` options (extra wrong options added, or wrong ones
    dropped, keeping the right one)."""
    from savi_plugin.video.synthetic import render_sample

    items = []
    for i in range(n):
        frames, question, options, answer, _ = render_sample(np.random.default_rng([seed, i]), _KINDS[i % 5],
                                                             size=size, num_frames=num_frames)
        right, options = options[answer], list(options)
        while len(options) > n_options:  # drop wrong options from the end
            options.pop(next(j for j in range(len(options) - 1, -1, -1) if options[j] != right))
        for extra in _EXTRA[: n_options - len(options)]:  # add wrong ones at a place that depends on the record
            options.insert((i + len(options)) % (len(options) + 1), extra)
        answer = options.index(right)
        items.append(Item(frames, question, options, answer))
    return items


def _records(builtin: Builtin, items: list[Item], stem: str) -> tuple[list[dict], list[str]]:
    """The records in the task's own columns and each record's video path under its video folder."""
    records, videos = [], []
    for i, it in enumerate(items):
        name = f"{stem}_{i:04d}"
        letter = _LETTERS[it.answer]
        if builtin.benchmark in ("mvbench", "tvbench"):
            # OpenGVLab/MVBench json/<sub>.json, FunAILab/TVBench: video, question, candidates, answer (text)
            rec = {"video": f"{name}.mp4", "question": it.question, "candidates": it.options,
                   "answer": it.options[it.answer]}
        elif builtin.benchmark == "tempcompass":
            # lmms-eval/TempCompass multi-choice: the options inside the question, answer "A. <text>"
            lines = [f"{_LETTERS[j]}. {o}" for j, o in enumerate(it.options)]
            rec = {"video_id": name, "question": "\n".join([it.question, *lines]), "answer": lines[it.answer],
                   "dim": _TEMPCOMPASS_DIMS[i % len(_TEMPCOMPASS_DIMS)]}
        elif builtin.benchmark == "videomme":
            # lmms-eval/Video-MME: options "A. <text>", answer letter, category columns
            rec = {"video_id": f"{i + 1:03d}", "videoID": name, "question_id": f"{name}-1", "question": it.question,
                   "options": [f"{_LETTERS[j]}. {o}" for j, o in enumerate(it.options)], "answer": letter,
                   "url": "", **_VIDEOMME}
        elif builtin.benchmark == "mlvu":
            # sy1998/MLVU_dev: the options "(A) <text>" inside the question, answer letter
            lines = [f"({_LETTERS[j]}) {o}" for j, o in enumerate(it.options)]
            rec = {"video_name": f"{name}.mp4", "duration": 1.0, "question": "\n".join([it.question, *lines]),
                   "candidates": it.options, "answer": letter, "task_type": _MLVU_TYPES[i % len(_MLVU_TYPES)],
                   "question_id": f"{name}-1"}
        elif builtin.benchmark == "longvideobench":
            # longvideobench/LongVideoBench: option0..option4 ("N/A" past the last), correct_choice index
            rec = {"video_id": name, "video_path": f"{name}.mp4", "subtitle_path": f"{name}_en.json",
                   "question": it.question, "correct_choice": it.answer, "id": f"{name}_0", "duration": 1.0,
                   "duration_group": 15, "question_category": "S2E", "starting_timestamp_for_subtitles": 0.0,
                   **{f"option{j}": (it.options[j] if j < len(it.options) else "N/A") for j in range(5)}}
        elif builtin.benchmark == "nextqa":
            # lmms-eval/NExTQA MC: a0..a4, answer index, the video id
            rec = {"video": name, "frame_count": 8, "width": 32, "height": 32, "question": it.question,
                   "answer": it.answer, "qid": i, "type": "TN",
                   **{f"a{j}": o for j, o in enumerate(it.options)}}
        elif builtin.benchmark == "perceptiontest":
            # lmms-eval/PerceptionTest_Val mc_question_val: three options, answer_id as a string
            rec = {"video_name": name, "question": it.question, "question_id": str(i), "options": it.options,
                   "answer_id": str(it.answer), "area": "physics", "reasoning": "descriptive", "tag": ["motion"]}
        elif builtin.benchmark == "egoschema":
            # lmms-eval/egoschema Subset: five "A. <text>" options, answer the index as a string
            rec = {"question_idx": f"{name}-q", "question": it.question, "video_idx": name,
                   "option": [f"{_LETTERS[j]}. {o}" for j, o in enumerate(it.options)], "answer": str(it.answer)}
        else:
            raise KeyError(builtin.benchmark)
        records.append(rec)
        videos.append(f"{name}.mp4")
    return records, videos


#: options per question in each benchmark's data
_N_OPTIONS = {"mvbench": 4, "tvbench": 4, "tempcompass": 4, "videomme": 4, "mlvu": 4, "longvideobench": 4,
              "nextqa": 5, "perceptiontest": 3, "egoschema": 5}


def build_builtin_fixture(hf_home: str | Path, benchmarks: tuple[str, ...] = tuple(BUILTINS), n: int = 2, *,
                          seed: int = 0, size: int = 32, num_frames: int = 8) -> BuiltinFixture:
    """Write ``n`` records per leaf task of each of ``benchmarks`` (keys of :data:`BUILTINS`) under ``hf_home``.

    Args:
        hf_home: the folder to use as ``HF_HOME`` (created; other files in it are left alone).
        benchmarks: which built-ins (all by default; a group gets every subtask, as lmms-eval loads them all).
        n: records per leaf task.
        seed: the synthetic videos' seed (the fixture is a pure function of its arguments).
        size, num_frames: synthetic clip size in pixels (even) and length.
    """
    from savi_plugin.eval.hf_cache import datasets_cache_dir
    from savi_plugin.video.synthetic import write_mp4

    hf_home = Path(hf_home)
    cache = datasets_cache_dir({"HF_HOME": str(hf_home)})
    out = BuiltinFixture(hf_home)
    for k, name in enumerate(benchmarks):
        builtin = BUILTINS[name]
        for m, (leaf, config) in enumerate(builtin.configs.items()):
            items = _items(n, seed * 100_003 + k * 1000 + m, size, num_frames, _N_OPTIONS[name])
            records, videos = _records(builtin, items, f"{leaf}_{seed}")
            folder = hf_home / builtin.video_dir(leaf)
            for item, video in zip(items, videos):
                write_mp4(folder / video, item.frames, fps=8)
            write_cached_split(cache, builtin.dataset_path, config, builtin.split, records)
            out.records[leaf] = records
            out.questions[leaf] = [it.question for it in items]
            out.options[leaf] = [it.options for it in items]
            out.answers[leaf] = [_LETTERS[it.answer] for it in items]
            out.videos[leaf] = [folder / v for v in videos]
    return out

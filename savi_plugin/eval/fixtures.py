"""Small local copies of MVBench, EgoSchema, PerceptionTest, VideoHallucer and VidHalluc built from synthetic
videos.

Each fixture uses the benchmark's real record format (the fields lmms-eval's and our task code read
from the hub data) and the ``SAVI_DATA_ROOT`` layout documented in :mod:`savi_plugin.eval.data`, so
``SAVI_DATA_ROOT=<root> lmms-eval --tasks savi_mvbench ...`` runs on it exactly as on the real data.
The questions come from :func:`savi_plugin.video.synthetic.make_synthetic_dataset`, so the answers are
known by construction and a model's score can be checked exactly.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from savi_plugin.constants import LETTERS
from savi_plugin.data.outputs import remove_stale_temps, temp_folder, write_json, write_jsonl
from savi_plugin.eval.data import (
    BENCHMARKS,
    MVBENCH_FRAME_FOLDER_FPS,
    MVBENCH_FULL_VIDEO_FOLDERS,
    MVBENCH_SUBTASKS,
    MVBENCH_VIDEO_FOLDERS,
)
from savi_plugin.models.tiny import is_tiny

#: Benchmarks with a synthetic fixture: the built-in three and the two hallucination benchmarks.
FIXTURE_BENCHMARKS = (*BENCHMARKS, "videohallucer", "vidhalluc")

#: The synthetic question type used for each MVBench subtask's fixture (cycled where no close match).
_SYNTHETIC_FOR_MVBENCH = {
    "moving_direction": "moving_direction", "action_sequence": "appearance_order",
    "character_order": "appearance_order", "action_count": "counting", "moving_count": "counting",
    "state_change": "color_change", "moving_attribute": "object_color", "object_existence": "counting",
}
_FALLBACK_TASKS = ("moving_direction", "appearance_order", "counting", "color_change", "object_color")
_EXTRA_OPTION = "none of the other options"
#: Frame rate of the synthetic clips and full videos (frame folders use MVBench's 3 fps).
_CLIP_FPS = 8
#: Full videos of bounded subtasks: a grey lead of 8, 12 or 16 frames (by record), the question's clip, 6 grey frames.
_LEAD, _TAIL, _GREY = (8, 12, 16), 6, 128


@dataclass
class Fixture:
    """What :func:`build_fixture` wrote.

    Attributes:
        root: the ``SAVI_DATA_ROOT`` folder.
        benchmark: ``mvbench`` / ``egoschema`` / ``perceptiontest``.
        records: lmms-eval task name -> the records written, in file order.
        answers: lmms-eval task name -> index of the correct option of each record, in file order.
        files: every file written.
    """

    root: Path
    benchmark: str
    records: dict[str, list[dict]] = field(default_factory=dict)
    answers: dict[str, list[int]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def offline_env(data_root: str | Path, hf_home: str | Path, base: dict | None = None) -> dict[str, str]:
    """Environment for running ``lmms-eval`` on a local data root with every hub access switched off.

    Args:
        data_root: the ``SAVI_DATA_ROOT`` folder.
        hf_home: an ``HF_HOME`` to use (lmms-eval writes caches there; nothing is downloaded).
        base: the environment to start from (default: ``os.environ``).
    """
    import os

    env = dict(os.environ if base is None else base)
    env.update({"SAVI_DATA_ROOT": str(data_root), "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    return env


def _synthetic(tmp: Path, n: int, seed: int, tasks: tuple[str, ...], size: int, num_frames: int):
    from savi_plugin.video.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(tmp, n, seed=seed, tasks=tasks, size=size, num_frames=num_frames)


def _place(src: str, dst: Path, fixture: Fixture) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(src, dst)
    fixture.files.append(dst)


def _write_json(path: Path, records: list[dict], fixture: Fixture) -> None:
    write_json(path, records, indent=1)
    fixture.files.append(path)


def _write_parquet(path: Path, records: list[dict], fixture: Fixture) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records), path)
    fixture.files.append(path)


def build_fixture(root: str | Path, benchmark: str, n: int = 4, *, seed: int = 0,
                  subtasks: tuple[str, ...] = MVBENCH_SUBTASKS, size: int = 32, num_frames: int = 8,
                  annotation_format: str = "parquet") -> Fixture:
    """Write a small ``benchmark`` dataset under ``root`` in the ``SAVI_DATA_ROOT`` layout.

    Args:
        root: the data root (created); other benchmarks' folders in it are left alone.
        benchmark: ``mvbench``, ``egoschema``, ``perceptiontest``, ``videohallucer`` or ``vidhalluc``.
        n: records per task (for MVBench: per subtask; VideoHallucer: pairs per subset; VidHalluc: items per part,
            a binary-QA item being one question over two clips).
        seed: synthetic-video seed; the fixture is a pure function of its arguments.
        subtasks: MVBench only: which subtask files to write (all 20 by default, so the
            ``savi_mvbench`` group loads). The bounded subtasks (``action_sequence`` ...) get records with
            ``start``/``end``, full videos in the official folders and trimmed clips for even records only
            (see :func:`_mvbench_bounded`).
        size, num_frames: synthetic clip size in pixels (even) and length.
        annotation_format: EgoSchema / PerceptionTest only: ``parquet`` (as on the hub), ``json`` or ``jsonl``.

    Returns:
        A :class:`Fixture` with the records and correct answers per lmms-eval task name.
    """
    if benchmark not in FIXTURE_BENCHMARKS:
        raise KeyError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(FIXTURE_BENCHMARKS)}")
    root = Path(root)
    fixture = Fixture(root=root, benchmark=benchmark)
    # built beside the root (same file system: files are moved in by one rename; a full disk names the root;
    # what a killed run left there is removed by the next)
    remove_stale_temps(root)
    with temp_folder(root) as tmp:
        if benchmark == "mvbench":
            _mvbench(fixture, Path(tmp), n, seed, subtasks, size, num_frames)
        elif benchmark == "egoschema":
            _egoschema(fixture, Path(tmp), n, seed, size, num_frames, annotation_format)
        elif benchmark == "videohallucer":
            _videohallucer(fixture, Path(tmp), n, seed, size, num_frames)
        elif benchmark == "vidhalluc":
            _vidhalluc(fixture, Path(tmp), n, seed, size, num_frames)
        else:
            _perceptiontest(fixture, Path(tmp), n, seed, size, num_frames, annotation_format)
    return fixture


def _mvbench(fixture: Fixture, tmp: Path, n: int, seed: int, subtasks, size: int, num_frames: int) -> None:
    base = fixture.root / "mvbench"
    for k, sub in enumerate(subtasks):
        if sub not in MVBENCH_VIDEO_FOLDERS:
            raise KeyError(f"unknown MVBench subtask {sub!r}")
        kind = _SYNTHETIC_FOR_MVBENCH.get(sub, _FALLBACK_TASKS[k % len(_FALLBACK_TASKS)])
        if sub in MVBENCH_FULL_VIDEO_FOLDERS:
            _mvbench_bounded(fixture, sub, kind, n, seed * 1000 + k, size, num_frames)
            continue
        samples = _synthetic(tmp / sub, n, seed * 1000 + k, (kind,), size, num_frames)
        records = []
        for i, s in enumerate(samples):
            name = f"{sub}_{seed}_{i:04d}.mp4"
            _place(s.video, base / "video" / MVBENCH_VIDEO_FOLDERS[sub] / name, fixture)
            # MVBench's JSON: video (relative to the source folder), question, candidates, answer (text)
            records.append({"video": name, "question": s.question, "candidates": list(s.options), "answer": s.answer})
        _write_json(base / "json" / f"{sub}.json", records, fixture)
        fixture.records[f"savi_mvbench_{sub}"] = records
        fixture.answers[f"savi_mvbench_{sub}"] = [s.answer_index for s in samples]


def _mvbench_bounded(fixture: Fixture, sub: str, kind: str, n: int, seed: int, size: int, num_frames: int) -> None:
    """A bounded subtask as the official evaluation reads it: every record has ``start``/``end`` and a full video
    in the official folder (the clip inside grey lead and tail frames; TVQA: a folder of frames at 3 fps); the
    trimmed clip in lmms-eval's segment folder exists for even records only, so both resolutions are exercised.
    """
    import numpy as np

    from savi_plugin.video.synthetic import render_sample, write_mp4

    base = fixture.root / "mvbench" / "video"
    frames_folder = sub == "episodic_reasoning"
    fps = MVBENCH_FRAME_FOLDER_FPS if frames_folder else _CLIP_FPS
    records, answers = [], []
    for i in range(n):
        clip, question, options, answer, _ = render_sample(np.random.default_rng([seed, i]), kind, size=size,
                                                           num_frames=num_frames)
        lead = _LEAD[i % len(_LEAD)]
        full = np.concatenate([np.full((lead, *clip.shape[1:]), _GREY, np.uint8), clip,
                               np.full((_TAIL, *clip.shape[1:]), _GREY, np.uint8)])
        video = f"{sub}_{seed}_{i:04d}" + ("" if frames_folder else ".mp4")
        # the clip's frames, in seconds: frame numbers start at 1 in frame folders, at 0 in videos
        first = lead + 1 if frames_folder else lead
        start, end = round(first / fps, 4), round((first + num_frames - 1) / fps, 4)
        for folder, frames in [(MVBENCH_FULL_VIDEO_FOLDERS[sub], full)] + ([(MVBENCH_VIDEO_FOLDERS[sub], clip)]
                                                                          if i % 2 == 0 else []):
            if frames_folder:
                fixture.files.extend(_write_frame_folder(base / folder / video, frames))
            else:
                write_mp4(base / folder / video, frames, fps=_CLIP_FPS)
                fixture.files.append(base / folder / video)
        records.append({"video": video, "question": question, "candidates": list(options),
                        "answer": options[answer], "start": start, "end": end})
        answers.append(answer)
    _write_json(fixture.root / "mvbench" / "json" / f"{sub}.json", records, fixture)
    fixture.records[f"savi_mvbench_{sub}"] = records
    fixture.answers[f"savi_mvbench_{sub}"] = answers


def _write_frame_folder(folder: Path, frames) -> list[Path]:
    """Frames as ``00001.jpg``, ``00002.jpg`` ... (TVQA ``frames_fps3_hq``'s naming); returns the files."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"{number:05d}.jpg" for number in range(1, len(frames) + 1)]
    for path, frame in zip(files, frames):
        Image.fromarray(frame).save(path, quality=95)
    return files


def _write_table(folder: Path, stem: str, records: list[dict], fmt: str, fixture: Fixture) -> None:
    if fmt == "parquet":
        _write_parquet(folder / f"{stem}.parquet", records, fixture)
    elif fmt == "json":
        _write_json(folder / f"{stem}.json", records, fixture)
    elif fmt == "jsonl":
        path = folder / f"{stem}.jsonl"
        write_jsonl(path, records)
        fixture.files.append(path)
    else:
        raise ValueError(f"unknown annotation_format {fmt!r}; choose parquet, json or jsonl")


def _egoschema(fixture: Fixture, tmp: Path, n: int, seed: int, size: int, num_frames: int, fmt: str) -> None:
    base = fixture.root / "egoschema"
    samples = _synthetic(tmp, n, seed, _FALLBACK_TASKS, size, num_frames)
    records, answers = [], []
    for i, s in enumerate(samples):
        video_idx = f"ego{seed:03d}{i:05d}"
        _place(s.video, base / "videos" / f"{video_idx}.mp4", fixture)
        # EgoSchema has five options; the synthetic questions have four, so add one wrong option at a
        # position that depends on the sample, keeping the answer where it is relative to the others.
        options = list(s.options)
        options.insert((i * 3 + seed) % 5, _EXTRA_OPTION)
        answer = options.index(s.answer)
        # lmms-lab/egoschema stores options as "A. text" and the answer as the index string.
        records.append({"question_idx": f"q{seed:03d}{i:05d}", "question": s.question, "video_idx": video_idx,
                        "option": [f"{LETTERS[j]}. {o}" for j, o in enumerate(options)], "answer": str(answer)})
        answers.append(answer)
    _write_table(base / "Subset", "test-00000-of-00001", records, fmt, fixture)
    fixture.records["savi_egoschema"] = records
    fixture.answers["savi_egoschema"] = answers


def _perceptiontest(fixture: Fixture, tmp: Path, n: int, seed: int, size: int, num_frames: int, fmt: str) -> None:
    base = fixture.root / "perceptiontest"
    samples = _synthetic(tmp, n, seed, _FALLBACK_TASKS, size, num_frames)
    records, answers = [], []
    for i, s in enumerate(samples):
        video_name = f"video_{seed}{i:05d}"
        _place(s.video, base / "videos" / f"{video_name}.mp4", fixture)
        # Perception Test has three options: drop one wrong option (which one depends on the sample).
        wrong = [j for j in range(len(s.options)) if j != s.answer_index]
        drop = wrong[(i + seed) % len(wrong)]
        options = [o for j, o in enumerate(s.options) if j != drop]
        answer = options.index(s.answer)
        records.append({"video_name": video_name, "question": s.question, "question_id": str(i), "options": options,
                        "answer_id": str(answer), "area": "physics" if i % 2 else "memory",
                        "reasoning": "descriptive", "tag": [s.task]})
        answers.append(answer)
    _write_table(base / "mc_question_val", "validation-00000-of-00001", records, fmt, fixture)
    fixture.records["savi_perceptiontest"] = records
    fixture.answers["savi_perceptiontest"] = answers


def _videohallucer(fixture: Fixture, tmp: Path, n: int, seed: int, size: int, num_frames: int) -> None:
    """Each subset's official file (a list of ``{basic, hallucination, type}`` pairs) and its ``videos/``: the basic
    question asks about the synthetic question's right option (``yes``), the hallucinated one about a wrong option
    (``no``); ``semantic_detail`` pairs use two different videos, ``fact_detect`` pairs answer ``no`` twice."""
    from savi_plugin.eval.videohallucer import SUBSETS

    base = fixture.root / "videohallucer"
    for k, subset in enumerate(SUBSETS):
        two_videos = subset == "semantic_detail"
        samples = _synthetic(tmp / subset, n * (2 if two_videos else 1), seed * 1000 + k, _FALLBACK_TASKS, size,
                             num_frames)
        pairs, answers = [], []
        for i in range(n):
            s = samples[2 * i] if two_videos else samples[i]
            other = samples[2 * i + 1] if two_videos else s
            names = [f"{subset}_{seed}_{i:04d}{tag}.mp4" for tag in (("_a", "_b") if two_videos else ("",))]
            for sample, name in zip((s, other) if two_videos else (s,), names):
                _place(sample.video, base / subset / "videos" / name, fixture)
            wrong = s.options[(s.answer_index + 1) % len(s.options)]
            basic_answer = "no" if subset == "fact_detect" else "yes"
            pairs.append({"basic": {"video": names[0], "question": f"{s.question} Is it {s.answer}?",
                                    "answer": basic_answer},
                          "hallucination": {"video": names[-1], "question": f"{s.question} Is it {wrong}?",
                                            "answer": "no"},
                          "type": subset})
            answers += [basic_answer, "no"]
        _write_json(base / subset / f"{subset}.json", pairs, fixture)
        fixture.records[f"savi_videohallucer_{subset}"] = pairs
        fixture.answers[f"savi_videohallucer_{subset}"] = answers


def _vidhalluc(fixture: Fixture, tmp: Path, n: int, seed: int, size: int, num_frames: int) -> None:
    """The four official files (``ach_binaryqa.json``, ``ach_mcq.json``, ``tsh.json``, ``sth.json``) and their clips
    under ``data/ACH``, ``data/TSH``, ``data/STH``, with answers known by construction."""
    base = fixture.root / "vidhalluc"
    samples = _synthetic(tmp, 5 * n, seed, _FALLBACK_TASKS, size, num_frames)
    letters = "ABCD"
    bqa, mcq, tsh, sth = {}, {}, {}, {}
    for i in range(n):
        a, b, c, d, e = samples[5 * i: 5 * i + 5]
        clips = [f"vh{seed}_{i:04d}_clip_{j}" for j in (1, 2)]
        for sample, clip in zip((a, b), clips):
            _place(sample.video, base / "data" / "ACH" / f"{clip}.mp4", fixture)
        # the question names clip 1's answer: right for clip 1; for clip 2, right only if its answer is the same
        bqa[str(i)] = [{"q": f"{a.question} Is it {a.answer}?",
                        "a": {clips[0]: "Yes", clips[1]: "Yes" if b.answer == a.answer else "No"}}]
        mcq[str(i)] = {clips[0]: {"Question": a.question, "Choices": dict(zip(letters, a.options)),
                                  "Correct Answer": letters[a.answer_index]}}
        video = f"tsh{seed}_{i:04d}"
        _place(c.video, base / "data" / "TSH" / f"{video}.mp4", fixture)
        order = "AB" if i % 2 == 0 else "BA"
        tsh[str(i)] = {"video": video, "Question": f"Action A: {c.answer}. Action B: {d.answer}. ",
                       "Correct Answer": order}
        scene = f"sth{seed}_{i:04d}"
        _place(e.video, base / "data" / "STH" / f"{scene}.mp4", fixture)
        change = i % 2 == 1
        sth[scene] = {"Scene change": "Yes" if change else "No",
                      "Locations": "from a kitchen to a garden." if change else "None"}
    for part, content in (("ach_binaryqa", bqa), ("ach_mcq", mcq), ("tsh", tsh), ("sth", sth)):
        write_json(base / f"{part}.json", content, indent=1)
        fixture.files.append(base / f"{part}.json")
        fixture.records[f"savi_vidhalluc_{part}"] = [{key: value} for key, value in content.items()]


def offline_eval_root(recipe, run_dir: str | Path) -> Path | None:
    """For a ``tiny://`` recipe with no ``eval.data_root``: a small synthetic eval data root in ``run_dir``
    (``eval_data``), written and kept like a ``savi eval fixture`` folder (:mod:`savi_plugin.eval.fixture_folder`):
    each benchmark the recipe's tasks need is built once, one added to the tasks later is built then, and a file
    changed or added there since is refused naming it, so every evaluation of a run reads the same data.

    Returns None for every other recipe (the eval step then uses the recipe's data root or the hub).

    Raises:
        RunError: the folder holds a file the fixture did not write, or one it wrote changed since.
    """
    from savi_plugin.data.outputs import remove_tree
    from savi_plugin.errors import RunError
    from savi_plugin.data.outputs import FIXTURE_MARK_NAME
    from savi_plugin.eval.fixture_folder import FixtureFolder, FixtureFolderError

    if recipe.eval.data_root is not None or not is_tiny(recipe.model.path):
        return None
    root = Path(run_dir) / "eval_data"
    if (root / ".built").is_file() and not (root / FIXTURE_MARK_NAME).exists():  # an earlier savi's, with no record
        remove_tree(root)  # of its files: built again (a pure function of its arguments, so the same data)
    try:
        with FixtureFolder(root).claim() as folder:
            for name in sorted({t.removeprefix("savi_").split("_")[0] for t in recipe.eval.tasks}):
                if name not in folder.written:
                    folder.begin(name)
                    folder.done(name, build_fixture(folder.root, name, 2, seed=1).files)
    except FixtureFolderError as exc:
        raise RunError(f"{exc} (the synthetic eval data of this run: remove {root} to build it again)") from None
    return root

"""The demo's synthetic world: warm-up videos that teach a language prior, held-out videos that break it.

RRPO (arXiv 2504.12083, Sec. 1) is motivated by answers that come from language cues instead of the video.
The demo stages that failure on purpose, with two MVBench-style tasks:

* ``object_color`` ("What is the color of the circle?") carries the **prior**: in the warm-up set the shape's
  colour always follows :data:`PRIOR` (circles red, squares green, triangles blue) and the subject is hidden
  behind a grey occluder (RRPO's occluder, Fig. 2), so the shape word in the question is the only way to the
  answer; the warm-up teaches the model to answer from the word;
* ``color_change`` ("What color does the square turn into?") is drawn in plain sight with random colours, so
  the warm-up also teaches the model to read colour from frames;
* ``shape_color`` ("What is the color of the shape?", warm-up only) asks the ``object_color`` question without
  naming the shape, about a visible subject of random colour: the warm model can read a subject's colour for this
  question form, but for a named shape it answers from the word. RRPO's pairs then have a visual route to move to.

In the self-alignment set (RRPO's video-QA input: the two named-shape questions) and the held-out set (the
``object_color`` question) every subject is visible, and half of the ``object_color`` videos show another colour
than the prior (``prior fails``; the prior's colour is always one of the options), half follow it
(``prior holds``). Every video has its own position, size and background: the
three sets share no video (:func:`fingerprint` of the drawn frames). Deterministic under ``seed``.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path

import numpy as np

from savi_plugin.data.outputs import write_jsonl
from savi_plugin.video.synthetic import COLORS, SHAPES, SyntheticSample, draw_shape, write_mp4

#: the warm-up world's colour of each shape: the language prior that the shape word carries
PRIOR = {"circle": "red", "square": "green", "triangle": "blue"}
#: the task whose answer follows the prior in the warm-up set
PRIOR_TASK = "object_color"
TASKS = ("object_color", "color_change", "shape_color")
KINDS = ("warmup", "align", "heldout")
#: the tasks of each set: the warm-up asks all three; self-alignment the named-shape ones; held-out the prior's
TASKS_OF = {"warmup": TASKS, "align": TASKS[:2], "heldout": (PRIOR_TASK,)}


def group_of(sample: SyntheticSample) -> str:
    """The report group of a sample: its task, split by whether the prior holds where one applies."""
    if "prior" in sample.facts:
        return f"{sample.task}: prior {sample.facts['prior']}"
    return sample.task


def fingerprint(frames: np.ndarray) -> str:
    """A hash of the drawn frames (before encoding): equal videos have equal fingerprints."""
    return hashlib.sha1(np.ascontiguousarray(frames).tobytes()).hexdigest()[:16]


def _options(rng: np.random.Generator, correct: str, must: list[str], k: int = 4) -> tuple[list[str], int]:
    """``k`` colour options: the answer, the ``must`` distractors, then random colours, shuffled."""
    picked = [correct] + [m for m in must if m != correct]
    rest = [c for c in COLORS if c not in picked]
    picked += [str(c) for c in rng.choice(rest, size=k - len(picked), replace=False)]
    options = [picked[i] for i in rng.permutation(len(picked))]
    return options, options.index(correct)


def _occlude(frame: np.ndarray, cx: float, cy: float, r: float) -> None:
    """A grey box over the subject: the frame no longer shows its colour."""
    h, w, _ = frame.shape
    frame[max(0, int(cy - r - 3)):min(h, int(cy + r + 4)), max(0, int(cx - r - 3)):min(w, int(cx + r + 4))] = 128


#: frames of each clip the demo draws (at 8 fps: 2 seconds)
CLIP_FRAMES = 16


def render(rng: np.random.Generator, task: str, kind: str, index: int, *, size: int = 64,
           num_frames: int = CLIP_FRAMES):
    """Draw one video of ``kind`` (see the module docstring); return ``(frames, question, options, answer_index,
    facts)``. In the self-alignment and held-out sets the prior fails on odd ``index``."""
    frames = np.full((num_frames, size, size, 3), int(rng.integers(5, 45)), dtype=np.uint8)
    shape = str(rng.choice(SHAPES))
    r = float(rng.uniform(size / 7, size / 5))
    cx, cy = (float(v) for v in rng.uniform(r + 2, size - r - 2, size=2))
    facts: dict = {"shape": shape}
    if task == PRIOR_TASK:
        holds = kind == "warmup" or index % 2 == 0
        color = PRIOR[shape] if holds else str(rng.choice([c for c in COLORS if c != PRIOR[shape]]))
        for t in range(num_frames):
            draw_shape(frames[t], shape, COLORS[color], cx, cy, r)
            if kind == "warmup":
                _occlude(frames[t], cx, cy, r)
        options, idx = _options(rng, color, [PRIOR[shape]])
        facts.update(color=color, prior="holds" if holds else "fails")
        return frames, f"What is the color of the {shape}?", options, idx, facts
    if task == "color_change":
        before, after = (str(c) for c in rng.choice(list(COLORS), size=2, replace=False))
        for t in range(num_frames):
            draw_shape(frames[t], shape, COLORS[before if t < num_frames // 2 else after], cx, cy, r)
        options, idx = _options(rng, after, [before])
        facts.update(before=before, after=after)
        return frames, f"What color does the {shape} turn into?", options, idx, facts
    if task == "shape_color":
        color = str(rng.choice(list(COLORS)))
        for t in range(num_frames):
            draw_shape(frames[t], shape, COLORS[color], cx, cy, r)
        options, idx = _options(rng, color, [])
        facts.update(color=color)
        return frames, "What is the color of the shape?", options, idx, facts
    raise ValueError(f"unknown demo task {task!r}; choose one of {', '.join(TASKS)}")


def make_world_set(out_dir: str | Path, kind: str, n_videos: int, seed: int = 0, *, size: int = 64,
                   num_frames: int = CLIP_FRAMES, fps: int = 8, tasks: tuple[str, ...] | None = None
                   ) -> list[SyntheticSample]:
    """Write ``n_videos`` mp4 files and ``samples.jsonl`` (an RRPO video-QA manifest) to ``out_dir``.

    Args:
        out_dir: destination folder (created).
        kind: ``warmup``, ``align`` or ``heldout`` (see the module docstring); each kind draws from its own
            random stream.
        n_videos: number of videos; the tasks alternate.
        tasks: the tasks to cycle through (default: :data:`TASKS_OF` ``[kind]``).
        seed: every video is a pure function of ``(seed, kind, index)``.

    Returns:
        The samples (video paths absolute; the manifest stores them relative to its own folder), each with
        ``facts["fingerprint"]``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    tasks = tasks or TASKS_OF[kind]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n_videos):
        task = tasks[i % len(tasks)]
        rng = np.random.default_rng([seed, KINDS.index(kind), i])
        frames, question, options, idx, facts = render(rng, task, kind, i // len(tasks), size=size,
                                                       num_frames=num_frames)
        facts["fingerprint"] = fingerprint(frames)
        video = out_dir / f"{kind}_{i:05d}.mp4"
        write_mp4(video, frames, fps=fps)
        samples.append(SyntheticSample(f"{kind}-{seed}-{i}", video.name, task, question, options, idx,
                                       options[idx], facts))
    write_jsonl(out_dir / "samples.jsonl", (asdict(s) for s in samples))
    for s in samples:
        s.video = str(out_dir / s.video)
    return samples


def world_set(out_dir: str | Path, kind: str, n_videos: int, seed: int = 0) -> list[SyntheticSample]:
    """The demo's set of ``kind`` in ``out_dir``: made once by :func:`make_world_set` and kept
    (:func:`savi_plugin.data.outputs.step_product`: a re-run of the same demo finds the videos its later steps read,
    and refuses a set whose files changed), read back from its ``samples.jsonl``.

    Returns:
        The samples, video paths absolute.
    """
    from savi_plugin.data.outputs import step_product
    from savi_plugin.data.readers import iter_json_objects

    out_dir = Path(out_dir)
    config = {"kind": kind, "videos": n_videos, "seed": seed, "frames": CLIP_FRAMES}
    step_product(out_dir, command="savi demo", config=config, what=f"the demo's {kind} videos",
                 make=lambda tmp: make_world_set(tmp, kind, n_videos, seed=seed))
    samples = []
    manifest = out_dir / "samples.jsonl"  # as made: step_product checked every file's content
    for _, obj in iter_json_objects(manifest, array=False):
        sample = SyntheticSample(**obj)
        sample.video = str(out_dir / sample.video)
        samples.append(sample)
    return samples

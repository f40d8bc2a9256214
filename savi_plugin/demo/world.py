"""The demo's synthetic world: videos whose warm-up data teach a language prior that held-out videos break.

RRPO (arXiv 2504.12083, Sec. 1) is motivated by errors that come from over-reliance on language cues instead
of the video. The demo builds such a shortcut on purpose:

* **warm-up set** (the "pretraining world"): in every ``object_color`` video the shape's colour follows a
  fixed prior (:data:`PRIOR`: circles are red, squares green, triangles blue), so the shape word in the
  question alone predicts the answer. ``color_change`` videos use random colours, so the model does learn to
  read colour from frames, just not for the question the prior answers;
* **self-alignment set** (RRPO's video-QA input) and **held-out set**: half of the ``object_color`` videos
  show the shape in another colour (``prior: fails``), the other half follow the prior (``prior: holds``).

A model that answers from the shape word is right on ``holds`` and wrong on ``fails``. Every video is drawn
with its own position, size and background (all three sets are disjoint, which :func:`fingerprint` checks).
Deterministic under ``seed``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from savi_plugin.video.synthetic import COLORS, SHAPES, SyntheticSample, draw_shape, write_mp4

#: the warm-up world's colour for each shape: the language prior the shape word carries
PRIOR = {"circle": "red", "square": "green", "triangle": "blue"}
KINDS = ("warmup", "align", "heldout")
NAME_SHAPE = True
HIDE = True


def group_of(sample: SyntheticSample) -> str:
    """The report group of a sample: its task, split by whether the prior holds where one applies."""
    if "prior" in sample.facts:
        return f"{sample.task}: prior {sample.facts['prior']}"
    return sample.task


def _options(rng: np.random.Generator, correct: str, must: list[str], k: int = 4) -> tuple[list[str], int]:
    """``k`` colour options: the answer, the ``must`` distractors (the prior's answer), then random colours."""
    picked = [correct] + [m for m in must if m != correct]
    rest = [c for c in COLORS if c not in picked]
    picked += [str(c) for c in rng.choice(rest, size=k - len(picked), replace=False)]
    order = rng.permutation(len(picked))
    options = [picked[i] for i in order]
    return options, options.index(correct)


def _occlude(frame: np.ndarray, cx: float, cy: float, r: float) -> None:
    """A grey box over the subject (RRPO's occluder, Fig. 2): the frame no longer shows its colour."""
    h, w, _ = frame.shape
    y0, y1 = max(0, int(cy - r - 3)), min(h, int(cy + r + 4))
    x0, x1 = max(0, int(cx - r - 3)), min(w, int(cx + r + 4))
    frame[y0:y1, x0:x1] = 128


def _canvas(rng: np.random.Generator, num_frames: int, size: int) -> np.ndarray:
    level = int(rng.integers(5, 45))
    return np.full((num_frames, size, size, 3), level, dtype=np.uint8)


def render(rng: np.random.Generator, task: str, kind: str, index: int, *, size: int = 64, num_frames: int = 16,
           prior_task: str = "color_change"):
    """Draw one video; return ``(frames, question, options, answer_index, facts)``.

    The answer of ``prior_task`` follows :data:`PRIOR` in the warm-up set; elsewhere it breaks the prior on
    odd ``index``. The other task's colours are drawn at random.
    """
    frames = _canvas(rng, num_frames, size)
    shape = str(rng.choice(SHAPES))
    r = float(rng.uniform(size / 7, size / 5))
    cx, cy = (float(v) for v in rng.uniform(r + 2, size - r - 2, size=2))
    facts: dict = {"shape": shape}
    answer = None
    if task == prior_task:
        holds = kind == "warmup" or index % 2 == 0
        answer = PRIOR[shape] if holds else str(rng.choice([c for c in COLORS if c != PRIOR[shape]]))
        facts["prior"] = "holds" if holds else "fails"
    hidden = answer is not None and kind == "warmup" and HIDE
    if task == "object_color":
        color = answer or str(rng.choice(list(COLORS)))
        for t in range(num_frames):
            draw_shape(frames[t], shape, COLORS[color], cx, cy, r)
            if hidden:
                _occlude(frames[t], cx, cy, r)
        options, idx = _options(rng, color, [PRIOR[shape]])
        facts["color"] = color
        question = f"What is the color of the {shape}?" if NAME_SHAPE else "What color is the shape?"
        return frames, question, options, idx, facts
    if task == "color_change":
        after = answer or str(rng.choice(list(COLORS)))
        before = str(rng.choice([c for c in COLORS if c != after]))
        for t in range(num_frames):
            draw_shape(frames[t], shape, COLORS[before if t < num_frames // 2 else after], cx, cy, r)
            if hidden and t >= num_frames // 2:
                _occlude(frames[t], cx, cy, r)
        options, idx = _options(rng, after, [PRIOR[shape], before])
        facts.update(before=before, after=after)
        return frames, f"What color does the {shape} turn into?", options, idx, facts
    raise ValueError(f"unknown demo task {task!r}; choose object_color or color_change")


def make_world_set(out_dir: str | Path, kind: str, n_videos: int, seed: int = 0, *, size: int = 64,
                   num_frames: int = 16, fps: int = 8, prior_task: str = "color_change",
                   tasks: tuple[str, ...] = ("object_color", "color_change")) -> list[SyntheticSample]:
    """Write ``n_videos`` mp4 files and ``samples.jsonl`` (an RRPO video-QA manifest) to ``out_dir``.

    Args:
        out_dir: destination folder (created).
        kind: ``warmup``, ``align`` or ``heldout`` (see the module docstring); each kind has its own
            random stream, so the sets never share a video.
        n_videos: number of videos; tasks alternate ``object_color``, ``color_change``.
        seed: every video is a pure function of ``(seed, kind, index)``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n_videos):
        task = tasks[i % len(tasks)]
        rng = np.random.default_rng([seed, KINDS.index(kind), i])
        frames, question, options, idx, facts = render(rng, task, kind, i // len(tasks), size=size, num_frames=num_frames,
                                                         prior_task=prior_task)
        facts["fingerprint"] = fingerprint(frames)
        video = out_dir / f"{kind}_{i:05d}.mp4"
        write_mp4(video, frames, fps=fps)
        samples.append(SyntheticSample(f"{kind}-{seed}-{i}", video.name, task, question, options, idx,
                                       options[idx], facts))
    with open(out_dir / "samples.jsonl", "w", encoding="utf-8") as fh:
        for s in samples:
            fh.write(json.dumps(asdict(s)) + "\n")
    for s in samples:
        s.video = str(out_dir / s.video)
    return samples


def fingerprint(frames: np.ndarray) -> str:
    """A hash of the drawn frames (before encoding): equal videos have equal fingerprints."""
    return hashlib.sha1(np.ascontiguousarray(frames).tobytes()).hexdigest()[:16]

"""Small real mp4 videos with known ground truth, and MVBench-style multiple-choice questions.

Coloured shapes move, appear, disappear, change colour. Each video comes with one question whose
answer is known by construction (direction, order, count, colour), so tests, fixtures and the demo
can score a model without any human label or download. Deterministic under ``seed``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from savi_plugin.constants import LETTERS
from savi_plugin.data.outputs import atomic_path, write_jsonl
from savi_plugin.data.paths import path_for_file, path_from_file

COLORS = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = ("left", "right", "up", "down")
#: task name (MVBench-like) -> what the question asks about
TASKS = ("moving_direction", "appearance_order", "counting", "color_change", "object_color")


@dataclass
class SyntheticSample:
    """One synthetic video and its question.

    Attributes:
        id: unique id (``synth-<seed>-<index>``).
        video: path of the mp4 file.
        task: one of :data:`TASKS`.
        question: the question text (no options).
        options: answer options, MVBench's ``candidates``.
        answer_index: index of the correct option.
        answer: the correct option's text.
        facts: the ground truth the video was drawn from (for captions and critiques).
    """

    id: str
    video: str
    task: str
    question: str
    options: list[str]
    answer_index: int
    answer: str
    facts: dict = field(default_factory=dict)

    @property
    def answer_letter(self) -> str:
        return LETTERS[self.answer_index]

    def mcq_prompt(self) -> str:
        """The MVBench-style prompt: question, lettered options, instruction."""
        lines = [f"Question: {self.question}", "Options:"]
        lines += [f"({LETTERS[i]}) {opt}" for i, opt in enumerate(self.options)]
        lines.append("Only give the best option.")
        return "\n".join(lines)


def draw_shape(canvas: np.ndarray, shape: str, color: tuple[int, int, int], cx: float, cy: float, r: float) -> None:
    """Paint ``shape`` (circle, square or upward triangle) of radius ``r`` centred at ``(cx, cy)`` in place."""
    h, w, _ = canvas.shape
    yy, xx = np.mgrid[0:h, 0:w]
    if shape == "circle":
        mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    elif shape == "square":
        mask = (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= r)
    else:  # triangle pointing up
        mask = (yy <= cy + r) & (yy >= cy - r) & (np.abs(xx - cx) <= (yy - (cy - r)) / 2)
    canvas[mask] = color


def write_mp4(path: str | Path, frames: np.ndarray, fps: int = 8) -> None:
    """Write uint8 RGB frames ``(T, H, W, 3)`` to an H.264 mp4 with PyAV (dimensions must be even)."""
    import av

    path = Path(path)
    with atomic_path(path, suffix=".mp4") as tmp, av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "preset": "ultrafast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _options(rng: np.random.Generator, correct: str, pool: list[str], k: int = 4) -> tuple[list[str], int]:
    others = [p for p in pool if p != correct]
    picked = list(rng.choice(others, size=min(k - 1, len(others)), replace=False))
    options = picked + [correct]
    rng.shuffle(options)
    return [str(o) for o in options], options.index(correct)


def render_sample(rng: np.random.Generator, task: str, size: int = 64, num_frames: int = 16):
    """Draw one video for ``task``; return ``(frames, question, options, answer_index, facts)``."""
    frames = np.full((num_frames, size, size, 3), 20, dtype=np.uint8)
    r = size / 8
    color_names = list(COLORS)
    if task == "moving_direction":
        shape, color = str(rng.choice(SHAPES)), str(rng.choice(color_names))
        direction = str(rng.choice(DIRECTIONS))
        start, end = size * 0.2, size * 0.8
        for t in range(num_frames):
            a = start + (end - start) * t / max(num_frames - 1, 1)
            b = size / 2
            cx, cy = {"right": (a, b), "left": (size - a, b), "down": (b, a), "up": (b, size - a)}[direction]
            draw_shape(frames[t], shape, COLORS[color], cx, cy, r)
        question = f"In which direction does the {color} {shape} move?"
        options, idx = _options(rng, direction, list(DIRECTIONS))
        facts = {"shape": shape, "color": color, "direction": direction}
    elif task == "appearance_order":
        picks = rng.choice(color_names, size=3, replace=False)
        shape = str(rng.choice(SHAPES))
        slots = [(size * 0.25, size * 0.3), (size * 0.75, size * 0.3), (size * 0.5, size * 0.72)]
        for k, c in enumerate(picks):
            for t in range(k * num_frames // 3, num_frames):
                draw_shape(frames[t], shape, COLORS[str(c)], *slots[k], r)
        question = f"Which {shape} appears first?"
        correct = f"the {picks[0]} {shape}"
        options, idx = _options(rng, correct, [f"the {c} {shape}" for c in color_names])
        facts = {"order": [str(c) for c in picks], "shape": shape}
    elif task == "counting":
        n = int(rng.integers(1, 5))
        color, shape = str(rng.choice(color_names)), str(rng.choice(SHAPES))
        slots = [(size * 0.25, size * 0.25), (size * 0.75, size * 0.25), (size * 0.25, size * 0.75), (size * 0.75, size * 0.75)]
        for k in range(n):
            for t in range(k * num_frames // (n + 1), num_frames):
                draw_shape(frames[t], shape, COLORS[color], *slots[k], r)
        question = f"How many {color} {shape}s appear in the video?"
        options, idx = _options(rng, str(n), ["1", "2", "3", "4"])
        facts = {"count": n, "shape": shape, "color": color}
    elif task == "color_change":
        before, after = (str(c) for c in rng.choice(color_names, size=2, replace=False))
        shape = str(rng.choice(SHAPES))
        for t in range(num_frames):
            draw_shape(frames[t], shape, COLORS[before if t < num_frames // 2 else after], size / 2, size / 2, r * 1.5)
        question = f"What color does the {shape} turn into?"
        options, idx = _options(rng, after, color_names)
        facts = {"shape": shape, "before": before, "after": after}
    elif task == "object_color":
        color, shape = str(rng.choice(color_names)), str(rng.choice(SHAPES))
        for t in range(num_frames):
            draw_shape(frames[t], shape, COLORS[color], size / 2, size / 2, r * 1.5)
        question = f"What is the color of the {shape}?"
        options, idx = _options(rng, color, color_names)
        facts = {"shape": shape, "color": color}
    else:
        raise ValueError(f"unknown synthetic task {task!r}; choose one of {', '.join(TASKS)}")
    return frames, question, options, idx, facts


def make_synthetic_dataset(out_dir: str | Path, n_videos: int, seed: int = 0, *, tasks: tuple[str, ...] = TASKS,
                           size: int = 64, num_frames: int = 16, fps: int = 8) -> list[SyntheticSample]:
    """Write ``n_videos`` mp4 files (tasks cycled in order) and ``samples.jsonl`` to ``out_dir``.

    Args:
        out_dir: destination folder (created).
        n_videos: number of videos.
        seed: every video and question is a pure function of ``(seed, index)``.
        tasks: the task types to cycle through.
        size: frame width and height in pixels (even).
        num_frames, fps: length of each clip.

    Returns:
        The samples, in order. Existing videos with the same name are overwritten.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n_videos):
        rng = np.random.default_rng([seed, i])
        task = tasks[i % len(tasks)]
        frames, question, options, idx, facts = render_sample(rng, task, size=size, num_frames=num_frames)
        video = out_dir / f"synth_{seed}_{i:05d}.mp4"
        write_mp4(video, frames, fps=fps)
        samples.append(SyntheticSample(f"synth-{seed}-{i}", str(video), task, question, options, idx, options[idx], facts))
    manifest = out_dir / "samples.jsonl"
    # video paths relative to the manifest's folder
    write_jsonl(manifest, ({**asdict(s), "video": path_for_file(s.video, manifest)} for s in samples))
    return samples


def load_synthetic_samples(path: str | Path) -> list[SyntheticSample]:
    """Read a ``samples.jsonl`` written by :func:`make_synthetic_dataset` (video paths resolved against its folder)."""
    from savi_plugin.data.readers import iter_json_objects

    rows = [row for _, row in iter_json_objects(path)]  # the readers' rule: a bad line raises naming file:line
    return [SyntheticSample(**{**row, "video": str(path_from_file(row["video"], path))}) for row in rows]

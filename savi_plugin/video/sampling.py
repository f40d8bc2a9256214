"""Which frames of a video to decode: the frame rules of the evaluation references, as pure functions.

Frames are numbered ``first_idx .. max_frame``: a video file's frames are ``0 .. len - 1``; MVBench's frame
folders (TVQA ``frames_fps3_hq``, files ``00001.jpg`` ...) are ``1 .. number of files``.

The rules (:data:`SAMPLING_RULES`):

* ``uniform``: ``linspace`` over the frames, rounded, first and last included (lmms-eval's video models, our
  generators and, by default, training; VideoSAVi, arXiv 2412.00624, evaluates through lmms-eval).
* ``interval``: frame ``int(i * T / n)`` for ``i < n`` (``T`` frames, ``n`` taken): the start of each of ``n``
  equal intervals, the last frame never included. RRPO's training data loader (pritamqu/RRPO
  ``train_llavavideo.py``, ``LazySupervisedDataset.__pos_neg_getitem__``, lines 1294-1296, under the run
  scripts' ``--force_sample True``); the RRPO recipes train with it (``data.frame_rule: interval``).
* ``midpoints``: the middle of each of ``n`` equal segments, MVBench's ``get_index`` (OpenGVLab/Ask-Anything
  ``video_chat2/mvbench.ipynb``; the same function in pritamqu/RRPO ``eval/mvbench/mvbench.py``).
* ``lmms_<family>``: the frames lmms-eval 0.7.3's own model wrapper for that family takes
  (:func:`lmms_eval_indices`), for the tasks that reproduce lmms-eval's numbers.

A ``bound`` ``(start, end)`` in seconds (MVBench records' ``start``/``end``) restricts either rule to the frames
from ``round(start * fps)`` to ``round(end * fps)``, clipped to the video, as ``get_index`` does. A bound that is
not two finite numbers with ``0 <= start <= end``, or that starts after the video's last frame, raises
:class:`BoundError`; one that ends after the video's last frame is clipped to it, and a zero-length one
(``start == end``) selects the frame at that time (both as in the references).
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

#: lmms-eval 0.7.3's frame samplers, per model wrapper (``lmms_eval/models/simple/<file>.py``): the frames
#: lmms-eval's own model for that family takes from a video file (:func:`lmms_eval_indices`).
LMMS_EVAL_RULES = ("lmms_llava_vid", "lmms_llava_onevision", "lmms_qwen2_vl", "lmms_internvl2")
#: Frame rules :func:`select_frames` knows.
SAMPLING_RULES = ("uniform", "midpoints", "interval", *LMMS_EVAL_RULES)

#: ``get_index``'s stand-in bound when a record has none: ``(-100000, 100000)`` seconds, so the range is clipped
#: to ``first_idx .. max_frame`` (for any video shorter than 100000 s).
_UNBOUNDED = (-100000, 100000)
#: Frame numbers from here on (2**53, ~3.5 million years at 80 fps) are past the end of any video; a bound
#: reaching them starts outside the video or ends after its last frame.
_FRAME_NUMBER_LIMIT = 2.0 ** 53


class BoundError(ValueError):
    """A ``(start, end)`` bound that is malformed or selects no frame of the video.

    ``field``: ``start`` or ``end`` when one value is at fault, else None.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def format_bound(bound) -> str:
    """``(start, end) s`` for messages."""
    try:
        return f"({bound[0]!r}, {bound[1]!r}) s"
    except (TypeError, IndexError, KeyError):
        return repr(bound)


def check_bound(bound) -> tuple[float, float] | None:
    """``bound`` as ``(start, end)`` floats, or None; :class:`BoundError` unless ``0 <= start <= end``, both finite.

    Booleans and strings are not numbers here (JSON ``true`` or ``"3.5"`` in a record is a mistake).
    """
    if bound is None:
        return None
    if isinstance(bound, (str, bytes)) or not hasattr(bound, "__len__") or len(bound) != 2:
        raise BoundError(f"bound {bound!r}: expected (start, end) in seconds")
    start, end = bound
    for name, value in (("start", start), ("end", end)):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise BoundError(f"bound {format_bound(bound)}: {name} is not a number", name)
        if not math.isfinite(value):
            raise BoundError(f"bound {format_bound(bound)}: {name} is not finite", name)
        if value < 0:
            raise BoundError(f"bound {format_bound(bound)}: {name} is negative", name)
    if end < start:
        raise BoundError(f"bound {format_bound(bound)}: end is before start", "end")
    return float(start), float(end)


def _rounded_range(bound, fps: float, max_frame: int, first_idx: int) -> tuple[int, int]:
    """``get_index``'s ``(start_idx, end_idx)``, unchecked (``start_idx > end_idx`` when nothing is left)."""
    checked = check_bound(bound)
    if checked is not None and not (fps > 0 and math.isfinite(fps)):
        raise BoundError(f"bound {format_bound(bound)}: the video declares no frame rate ({fps!r}), "
                         f"so seconds cannot be turned into frames")
    start, end = checked if checked is not None else _UNBOUNDED
    if not start * fps < _FRAME_NUMBER_LIMIT:  # past the end of any video (and beyond int64 and round(inf))
        raise _outside(bound, fps, max_frame, first_idx)
    end_idx = round(end * fps) if end * fps < _FRAME_NUMBER_LIMIT else max_frame
    return max(first_idx, round(start * fps)), min(end_idx, max_frame)


def _outside(bound, fps: float, max_frame: int, first_idx: int) -> BoundError:
    span = f"frames {first_idx}..{max_frame} at {fps:g} fps"
    if bound is None or max_frame < first_idx:
        return BoundError(f"the video has no frames ({span})")
    return BoundError(f"bound {format_bound(bound)} is outside the video ({span}, "
                      f"{(max_frame - first_idx + 1) / fps:.3f} s)")


def bound_range(bound, fps: float, max_frame: int, first_idx: int = 0) -> tuple[int, int]:
    """``(start_idx, end_idx)``: the first and last frame numbers ``bound`` covers (``get_index``'s rounding).

    ``start_idx = max(first_idx, round(start * fps))`` and ``end_idx = min(round(end * fps), max_frame)`` with
    Python's ``round`` (half to even), as in ``video_chat2/mvbench.ipynb``. Without a bound, the whole video.

    Raises:
        BoundError: the bound is malformed, the frame rate is not positive, or no frame is left (the bound
            starts after the video's last frame, or the video has no frames).
    """
    start_idx, end_idx = _rounded_range(bound, fps, max_frame, first_idx)
    if start_idx > end_idx:
        raise _outside(bound, fps, max_frame, first_idx)
    return start_idx, end_idx


def midpoint_indices(num_segments: int, fps: float, max_frame: int, bound=None, first_idx: int = 0) -> np.ndarray:
    """MVBench's ``get_index(bound, fps, max_frame, first_idx)``: the midpoint of each of ``num_segments`` segments.

    ``seg = (end_idx - start_idx) / num_segments``; frame ``i`` is ``int(start_idx + seg / 2 + np.round(seg * i))``
    (numpy's round, half to even; ``int`` truncates toward zero), with ``start_idx``/``end_idx`` rounded as in
    :func:`bound_range`. Segments shorter than a frame repeat frames, as in the reference. The references call it
    with ``max_frame = len(video) - 1`` and ``first_idx = 0`` for video files, and with ``max_frame = number of
    files`` and ``first_idx = 1`` (fps 3) for frame folders. A bound starting one frame past the end gives
    ``start_idx = max_frame + 1 > end_idx``: a small negative segment, and ``get_index`` returns the last frames in
    reverse order (e.g. the last frame 8 times, then the one before it 8 times), which the references read; so
    do we. Where ``get_index`` returns frames outside ``first_idx .. max_frame`` (a bound starting further past the
    end; a video with no frames), which the references then fail to read, this raises :class:`BoundError`.
    """
    if num_segments <= 0:
        raise ValueError("num_frames must be positive")
    start_idx, end_idx = _rounded_range(bound, fps, max_frame, first_idx)
    seg_size = float(end_idx - start_idx) / num_segments
    offsets = np.round(seg_size * np.arange(num_segments, dtype=np.float64))
    indices = (start_idx + (seg_size / 2) + offsets).astype(np.int64)
    if indices.min() < first_idx or indices.max() > max_frame:
        raise _outside(bound, fps, max_frame, first_idx)
    return indices


def uniform_indices(total_frames: int, num_frames: int) -> np.ndarray:
    """``num_frames`` indices spread uniformly over ``[0, total_frames)``, first and last included.

    When the video is shorter than ``num_frames`` every frame is returned once (no repetition, so a
    2-frame clip is not silently stretched into 32 copies).
    """
    if total_frames <= 0:
        raise ValueError("total_frames must be positive")
    if num_frames <= 0:
        raise ValueError("num_frames must be positive")
    if total_frames <= num_frames:
        return np.arange(total_frames, dtype=np.int64)
    return np.round(np.linspace(0, total_frames - 1, num_frames)).astype(np.int64)


def interval_indices(total_frames: int, num_frames: int) -> np.ndarray:
    """``[int(total_frames / num_frames * i) for i in range(num_frames)]``: RRPO's training frames.

    pritamqu/RRPO ``train_llavavideo.py`` lines 1294-1296 (``interval = len(frame_idx) / float(num_sample)``;
    ``frame_idx = [int(interval * i) for i in range(num_sample)]``): the first frame of each of ``num_frames``
    equal intervals; 300 frames, 16 taken: 0, 18, 37, ..., 281 (``uniform`` takes 0, 20, ..., 299). Computed in
    float64 in the reference's order (the interval first, then the product, truncated), so that where the
    product of a rounded interval falls just below a whole number the same frame is taken (30 frames, 22 taken:
    the 12th is frame 14, where whole-number arithmetic gives 15). A video shorter than ``num_frames`` repeats frames, as the reference does (the
    trainer refuses such videos before decoding: ``too_few_frames``).
    """
    if total_frames <= 0:
        raise ValueError("total_frames must be positive")
    if num_frames <= 0:
        raise ValueError("num_frames must be positive")
    interval = float(total_frames) / float(num_frames)
    return (interval * np.arange(num_frames, dtype=np.float64)).astype(np.int64)


def fps_indices(total_frames: int, video_fps: float, sample_fps: float, max_frames: int | None) -> np.ndarray:
    """Indices at ``sample_fps`` frames per second; if more than ``max_frames``, uniform over the cap."""
    if sample_fps <= 0:
        raise ValueError("fps must be positive")
    step = max(video_fps / sample_fps, 1.0)
    idx = np.unique(np.floor(np.arange(0, total_frames, step)).astype(np.int64))
    if max_frames is not None and len(idx) > max_frames:
        idx = uniform_indices(total_frames, max_frames)
    return idx


def lmms_eval_indices(rule: str, total_frames: int, num_frames: int, video_fps: float) -> np.ndarray:
    """The frame indices lmms-eval 0.7.3's wrapper for a model family takes from a ``total_frames`` video file.

    * ``lmms_llava_onevision`` (``llava_onevision.py`` ``load_video``): ``np.linspace(0, n - 1, k, dtype=int)``,
      truncated toward zero (not rounded), repeating frames when the clip has fewer than ``k``.
    * ``lmms_llava_vid`` (``llava_vid.py`` ``load_video``, defaults ``video_fps=1``, ``force_sample=False``): one
      frame per second (every ``round(avg_fps / 1)``-th frame from 0); only when that gives more than ``k``,
      ``np.linspace(0, n - 1, k, dtype=int)``. A clip shorter than ``k`` seconds gives fewer than ``k`` frames.
    * ``lmms_qwen2_vl`` (``qwen2_vl.py`` ``generate_until``): ``np.unique(np.linspace(0, n - 1, k, dtype=int))``:
      no repeats, so a short clip gives fewer than ``k`` frames. (lmms-eval applies it to the frames
      ``qwen_vl_utils.process_vision_info`` decoded at its own fps; here to all the video's frames.)
    * ``lmms_internvl2`` (``internvl2.py`` ``get_index`` with no bound, ``max_frame = n - 1``): the midpoints of
      ``k`` equal segments, ``int(seg / 2 + np.round(seg * i))`` with ``seg = (n - 1) / k``.
    """
    if total_frames <= 0:
        raise ValueError("total_frames must be positive")
    if num_frames <= 0:
        raise ValueError("num_frames must be positive")
    linspace = np.linspace(0, total_frames - 1, num_frames, dtype=int)
    if rule == "lmms_llava_onevision":
        return linspace.astype(np.int64)
    if rule == "lmms_qwen2_vl":
        return np.unique(linspace).astype(np.int64)
    if rule == "lmms_llava_vid":
        step = max(1, round(video_fps / 1))  # the reference's range() step; 0 (fps < 0.5) would fail there
        every_second = np.arange(0, total_frames, step, dtype=np.int64)
        return linspace.astype(np.int64) if len(every_second) > num_frames else every_second
    if rule == "lmms_internvl2":
        return midpoint_indices(num_frames, video_fps, total_frames - 1)
    raise ValueError(f"unknown lmms-eval frame rule {rule!r}; choose one of {', '.join(LMMS_EVAL_RULES)}")


def select_frames(sampling: str, num_frames: int, *, fps: float, max_frame: int, first_idx: int = 0, bound=None,
                  sample_fps: float | None = None, max_frames: int | None = None) -> np.ndarray:
    """Frame numbers (``first_idx .. max_frame``) to decode under the rule ``sampling``.

    Args:
        sampling: ``uniform``, ``midpoints`` or ``interval`` (:data:`SAMPLING_RULES`).
        num_frames: frames (``uniform``; fewer when the range is shorter; ``interval``) or segments
            (``midpoints``).
        fps: the video's frame rate, which places ``bound`` (seconds) on frames.
        max_frame, first_idx: the numbers of the last and first frame.
        bound: ``(start, end)`` seconds, or None for the whole video.
        sample_fps, max_frames: ``uniform`` only: sample at ``sample_fps`` frames per second instead of
            ``num_frames``, at most ``max_frames`` (see :func:`fps_indices`).
    """
    if sampling not in SAMPLING_RULES:
        raise ValueError(f"unknown frame sampling {sampling!r}; choose one of {', '.join(SAMPLING_RULES)}")
    if sampling in LMMS_EVAL_RULES:
        if sample_fps is not None or bound is not None:
            raise ValueError(f"frame sampling {sampling!r} takes a number of frames over the whole clip "
                             f"(no fps, no bound), as lmms-eval does")
        return first_idx + lmms_eval_indices(sampling, max_frame - first_idx + 1, num_frames, fps)
    if sampling == "midpoints":
        if sample_fps is not None:
            raise ValueError("frame sampling 'midpoints' takes a number of frames, not fps")
        return midpoint_indices(num_segments=num_frames, fps=fps, max_frame=max_frame, bound=bound,
                                first_idx=first_idx)
    if num_frames <= 0:
        raise ValueError("num_frames must be positive")
    start_idx, end_idx = (first_idx, max_frame) if bound is None else bound_range(bound, fps, max_frame, first_idx)
    if end_idx < start_idx:
        raise BoundError(f"the video has no frames (frames {first_idx}..{max_frame})")
    count = end_idx - start_idx + 1
    if sample_fps is not None:
        if sampling == "interval":
            raise ValueError("frame sampling 'interval' takes a number of frames, not fps")
        return start_idx + fps_indices(count, fps, sample_fps, max_frames)
    if sampling == "interval":
        return start_idx + interval_indices(count, num_frames)
    return start_idx + uniform_indices(count, num_frames)

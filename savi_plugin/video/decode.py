"""Decode a fixed number of frames from a video file, with decord (default) or PyAV.

VideoSAVi samples 32 frames per video (arXiv 2412.00624); RRPO trains with 16 or 32 uniform frames
(arXiv 2504.12083). Uniform sampling uses ``linspace(0, n-1, k)`` rounded, the convention of
lmms-eval's video models, so the frames we train on are the frames lmms-eval evaluates on.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("decord", "pyav")

#: Largest frame :func:`read_frames` decodes, in pixels (width x height). 4096 x 4096 covers 4K UHD and DCI 4K
#: sources; no video LM consumes more than a few hundred pixels per side. Larger frames are refused from the
#: stream's declared size, before anything is decoded: a 2 MB file can declare 16000 x 16000 frames, 768 MB
#: each as RGB, gigabytes for a handful of sampled frames. Raise it per call (``max_pixels``) or for a whole
#: job (``$SAVI_MAX_FRAME_PIXELS``).
MAX_FRAME_PIXELS = 4096 * 4096
MAX_PIXELS_ENV = "SAVI_MAX_FRAME_PIXELS"


class VideoDecodeError(RuntimeError):
    """A video could not be decoded. The message names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: cannot decode video: {reason}")


@dataclass
class DecodedVideo:
    """Frames sampled from one video.

    Attributes:
        frames: uint8 array ``(T, H, W, 3)``, RGB.
        timestamps: presentation time of each frame in seconds, ``(T,)``.
        indices: index of each frame in the decoded stream, ``(T,)``.
        fps: the stream's average frame rate.
        total_frames: number of frames in the stream.
        path: the file.
    """

    frames: np.ndarray
    timestamps: np.ndarray
    indices: np.ndarray
    fps: float
    total_frames: int
    path: str


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


def fps_indices(total_frames: int, video_fps: float, sample_fps: float, max_frames: int | None) -> np.ndarray:
    """Indices at ``sample_fps`` frames per second; if more than ``max_frames``, uniform over the cap."""
    if sample_fps <= 0:
        raise ValueError("fps must be positive")
    step = max(video_fps / sample_fps, 1.0)
    idx = np.unique(np.floor(np.arange(0, total_frames, step)).astype(np.int64))
    if max_frames is not None and len(idx) > max_frames:
        idx = uniform_indices(total_frames, max_frames)
    return idx


def default_backend() -> str:
    """``decord`` when importable, else ``pyav``."""
    try:
        import decord  # noqa: F401
    except ImportError:
        return "pyav"
    return "decord"


def frame_pixel_cap(max_pixels: int | None = None) -> int:
    """The frame-size cap in pixels: ``max_pixels``, else ``$SAVI_MAX_FRAME_PIXELS``, else :data:`MAX_FRAME_PIXELS`."""
    if max_pixels is not None:
        return int(max_pixels)
    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not value:
        return MAX_FRAME_PIXELS
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"${MAX_PIXELS_ENV}={value!r}: expected an integer number of pixels") from None


def declared_frame_size(path: str | Path) -> tuple[int, int] | None:
    """``(width, height)`` of the first video stream as the container declares it, without decoding a frame.

    None when FFmpeg (through PyAV) cannot open the file or names no size; the decoder then reports its own
    error. Opening only reads headers (a 16000 x 16000 file probes in ~40 MB).
    """
    try:
        import av

        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            ctx = container.streams.video[0].codec_context
            return (int(ctx.width or 0), int(ctx.height or 0)) if ctx.width and ctx.height else None
    except Exception:  # not a video, truncated header, PyAV missing: the decoder names the problem
        return None


def probe_video(path: str | Path, *, max_pixels: int | None = None) -> tuple[int, int, int]:
    """Check that ``path`` is a video :func:`read_frames` can start on, reading headers only.

    Returns ``(width, height, frames)``; ``frames`` is the container's frame count, 0 when it declares none
    (Matroska/WebM usually do not).

    For load-time checks (the training dataset) that must not decode every video: a missing, empty or
    non-video file, a file without a video stream (e.g. 0 frames), a header torn off by truncation, and
    frames above the pixel cap are found here. A file damaged after its header is only found when decoded.

    Raises:
        VideoDecodeError: naming the file and the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoDecodeError(path, "file not found" if not path.exists() else "not a regular file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")
    try:
        import av

        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(path, "no video stream")
            ctx = container.streams.video[0].codec_context
            width, height = int(ctx.width or 0), int(ctx.height or 0)
            frames = int(container.streams.video[0].frames or 0)
    except VideoDecodeError:
        raise
    except Exception as exc:  # FFmpeg's error names the problem (invalid data, end of file, ...)
        raise VideoDecodeError(path, f"{type(exc).__name__}: {exc}".strip()) from exc
    if width <= 0 or height <= 0:
        raise VideoDecodeError(path, "the video stream declares no frame size")
    cap = frame_pixel_cap(max_pixels)
    if width * height > cap:
        raise VideoDecodeError(path, f"frames are {width}x{height} = {width * height} pixels, above the cap of {cap} "
                                     f"(raise max_pixels or ${MAX_PIXELS_ENV} if this is intended)")
    return width, height, frames


def read_frames(path: str | Path, num_frames: int = 32, *, fps: float | None = None,
                max_frames: int | None = None, backend: str | None = None,
                max_pixels: int | None = None) -> DecodedVideo:
    """Decode frames from ``path``.

    Args:
        path: a video file readable by FFmpeg.
        num_frames: frames sampled uniformly over the whole video (ignored when ``fps`` is set).
        fps: sample at this many frames per second instead.
        max_frames: with ``fps``, the cap; above it, ``max_frames`` uniform frames are used.
        backend: ``"decord"`` or ``"pyav"``; default decord, PyAV when decord is not installed.
        max_pixels: refuse frames larger than this many pixels (see :data:`MAX_FRAME_PIXELS`); default
            ``$SAVI_MAX_FRAME_PIXELS`` or 4096 x 4096.

    Raises:
        VideoDecodeError: missing, empty, truncated or non-video file, or frames above the pixel cap,
            naming the file.
    """
    path = Path(path)
    backend = backend or default_backend()
    if backend not in BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if not path.exists():
        raise VideoDecodeError(path, "file not found")
    if not path.is_file():
        raise VideoDecodeError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)")
    cap = frame_pixel_cap(max_pixels)
    size = declared_frame_size(path)
    if size is not None and size[0] * size[1] > cap:
        raise VideoDecodeError(path, f"frames are {size[0]}x{size[1]} = {size[0] * size[1]} pixels, above the cap of "
                                     f"{cap} (refused before decoding; raise max_pixels or ${MAX_PIXELS_ENV} "
                                     f"if this is intended)")
    try:
        if backend == "decord":
            return _read_decord(path, num_frames, fps, max_frames)
        return _read_pyav(path, num_frames, fps, max_frames)
    except VideoDecodeError:
        raise
    except Exception as exc:  # the decoders raise many types; the user needs the file and the reason
        raise VideoDecodeError(path, f"{type(exc).__name__}: {exc}".strip()) from exc


def _pick(total: int, video_fps: float, num_frames: int, fps: float | None, max_frames: int | None) -> np.ndarray:
    if fps is not None:
        return fps_indices(total, video_fps, fps, max_frames)
    return uniform_indices(total, num_frames)


def _read_decord(path: Path, num_frames: int, fps: float | None, max_frames: int | None) -> DecodedVideo:
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    total = len(reader)
    if total == 0:
        raise VideoDecodeError(path, "no frames")
    video_fps = float(reader.get_avg_fps() or 0.0) or 1.0
    idx = _pick(total, video_fps, num_frames, fps, max_frames)
    frames = reader.get_batch(idx.tolist()).asnumpy()
    stamps = np.asarray([reader.get_frame_timestamp(int(i))[0] for i in idx], dtype=np.float64)
    return DecodedVideo(np.ascontiguousarray(frames, dtype=np.uint8), stamps, idx, video_fps, total, str(path))


def _read_pyav(path: Path, num_frames: int, fps: float | None, max_frames: int | None) -> DecodedVideo:
    import av

    def selected(wanted: set[int]) -> tuple[int, dict[int, tuple[np.ndarray, float | None]], float]:
        """One sequential decode: count every frame, convert only the wanted ones (bounded memory)."""
        kept: dict[int, tuple[np.ndarray, float | None]] = {}
        count = 0
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(path, "no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or 0) or 1.0
            for frame in container.decode(stream):
                if count in wanted:
                    kept[count] = (frame.to_ndarray(format="rgb24"), frame.time)
                count += 1
        return count, kept, rate

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoDecodeError(path, "no video stream")
        header_total = int(container.streams.video[0].frames or 0)
        video_fps = float(container.streams.video[0].average_rate or 0) or 1.0
    total, kept = header_total, {}
    if header_total > 0:
        idx = _pick(header_total, video_fps, num_frames, fps, max_frames)
        total, kept, video_fps = selected(set(idx.tolist()))
    if total != header_total or header_total == 0:
        # The header's frame count was missing or wrong (common): decode once to count, then select.
        if total == 0:
            total, _, video_fps = selected(set())
        if total == 0:
            raise VideoDecodeError(path, "no frames")
        idx = _pick(total, video_fps, num_frames, fps, max_frames)
        total, kept, video_fps = selected(set(idx.tolist()))
    frames = np.stack([kept[i][0] for i in idx]).astype(np.uint8)
    stamps = np.asarray([kept[i][1] if kept[i][1] is not None else i / video_fps for i in idx], dtype=np.float64)
    return DecodedVideo(frames, stamps, idx, video_fps, total, str(path))

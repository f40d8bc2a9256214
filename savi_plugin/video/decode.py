"""Decode a fixed number of frames from a video file, with PyAV (default) or decord (the ``decord`` extra).

VideoSAVi samples 32 frames per video (arXiv 2412.00624); RRPO trains with 16 or 32 frames
(arXiv 2504.12083). Uniform sampling, the default, uses ``linspace(0, n-1, k)`` rounded, the convention of
lmms-eval's video models, so the frames we train on are the frames lmms-eval evaluates on. MVBench's
segment midpoints with ``start``/``end`` bounds, and RRPO's training rule ``int(i * T / n)`` (``interval``),
are the other rules (:mod:`savi_plugin.video.sampling`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from savi_plugin.constants import DEFAULT_NUM_FRAMES
from savi_plugin.data.watched import check_unchanged
from savi_plugin.environment import format_bytes
from savi_plugin.errors import InputError
from savi_plugin.video.sampling import (  # noqa: F401 - uniform_indices/fps_indices are part of this module's API
    SAMPLING_RULES,
    BoundError,
    check_bound,
    format_bound,
    fps_indices,
    select_frames,
    uniform_indices,
)

log = logging.getLogger(__name__)

BACKENDS = ("decord", "pyav")

#: Largest frame :func:`read_frames` decodes, in pixels (width x height). 4096 x 4096 covers 4K UHD and DCI 4K
#: sources; no video LM consumes more than a few hundred pixels per side. Larger frames are refused from the
#: stream's declared size, before anything is decoded: a 2 MB file can declare 16000 x 16000 frames, 768 MB
#: each as RGB, gigabytes for a handful of sampled frames. The header is not trusted either: a stream may
#: declare 64 x 64 and carry larger frames, so every JPEG-coded packet's own frame size is read before it is
#: decoded (MJPEG frames are independent images of any size), and every decoded frame is checked before it
#: is converted. Raise it per call (``max_pixels``) or for a whole job (``$SAVI_MAX_FRAME_PIXELS``).
MAX_FRAME_PIXELS = 4096 * 4096
MAX_PIXELS_ENV = "SAVI_MAX_FRAME_PIXELS"
#: The pixel cap bounds one frame; memory is bounded per clip and per batch, in decoded bytes (RGB uint8): a clip's
#: sampled frames may take at most ``$SAVI_MAX_DECODED_BYTES`` (default 2 GiB: 64 frames of 3840 x 2160, 1.48 GiB,
#: fit; 48 frames of 4000 x 4000, 2.15 GiB, do not), checked from the header before decoding and again while
#: decoding; a batch of clips at most ``$SAVI_MAX_BATCH_DECODED_BYTES`` (default 8 GiB), estimated from the
#: headers before the batch is decoded (:mod:`savi_plugin.environment` declares both).
CLIP_BYTES_ENV = "SAVI_MAX_DECODED_BYTES"
BATCH_BYTES_ENV = "SAVI_MAX_BATCH_DECODED_BYTES"


class VideoDecodeError(InputError):
    """A video could not be decoded. The message names the file and the reason.

    ``final``: trying the other decoder cannot help (the file is missing, not a regular file, or its frames
    are above the pixel cap). ``skip_reason``: the reason a job counts the item under
    (:func:`savi_plugin.errors.reason_of`): ``missing_video`` for a file that is not there (or a broken link),
    else None (the caller's default, ``decode_error``).
    """

    def __init__(self, path: str | Path, reason: str, *, final: bool = False, skip_reason: str | None = None):
        self.path, self.reason, self.final, self.skip_reason = str(path), reason, final, skip_reason
        super().__init__(f"{path}: cannot decode video: {reason}")


def path_problem(path: str | Path) -> str | None:
    """Why ``path`` is not a readable video file -- what it is instead -- or None for a regular file
    (:func:`savi_plugin.data.files.file_problem`).

    A FIFO or a device would block or stream forever if opened, so it is named and never opened.
    """
    from savi_plugin.data.files import file_problem

    return file_problem(path, "video file")


def _cap_error(path: Path, width: int, height: int, cap: int, source: str) -> VideoDecodeError:
    return VideoDecodeError(path, f"frames are {width}x{height} = {width * height} pixels, above the cap of {cap} "
                                  f"({source}; raise max_pixels or ${MAX_PIXELS_ENV} if this is intended)", final=True)


#: JPEG start-of-frame markers (baseline, extended, progressive, lossless, arithmetic-coded)
_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
#: codecs whose packets are JPEG images, each with its own frame size
JPEG_CODECS = ("mjpeg", "mjpegb", "jpegls", "ljpeg")


def jpeg_frame_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a JPEG image's start-of-frame segment, without decoding; None if absent."""
    i = 2 if data[:2] == b"\xff\xd8" else -1
    while 0 <= i < len(data) - 9:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SOF_MARKERS:
            height, width = int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
            return width, height
        if marker == 0xDA:  # start of scan: no frame header before it
            return None
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def check_packet_sizes(path: str | Path, max_pixels: int | None = None) -> None:
    """Read (demux, never decode) every packet of a JPEG-coded video stream and refuse a frame above the cap.

    The stream header's size says nothing about an MJPEG stream's frames: each packet is a JPEG image with its
    own size. Other codecs are left to the per-frame check of the decoder. Reading packets costs file I/O only.
    """
    import av

    cap = frame_pixel_cap(max_pixels)
    path = Path(path)
    with av.open(str(path)) as container:
        if not container.streams.video:
            return
        stream = container.streams.video[0]
        if stream.codec_context.name not in JPEG_CODECS:
            return
        for packet in container.demux(stream):
            size = jpeg_frame_size(bytes(packet)) if packet.size else None
            if size is not None and size[0] * size[1] > cap:
                raise _cap_error(path, *size, cap, "a frame's own size, larger than the stream header declares; "
                                                   "refused before decoding")


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


def default_backend() -> str:
    """``pyav`` (a dependency); decord, the ``decord`` extra, decodes only when asked for (``backend="decord"``)."""
    return "pyav"


def decord_installed() -> bool:
    """Whether decord imports (the ``decord`` extra)."""
    try:
        import decord  # noqa: F401
    except ImportError:
        return False
    return True


def frame_pixel_cap(max_pixels: int | None = None) -> int:
    """The frame-size cap in pixels: ``max_pixels``, else ``$SAVI_MAX_FRAME_PIXELS``, else :data:`MAX_FRAME_PIXELS`.

    Raises:
        ConfigError: a bad ``$SAVI_MAX_FRAME_PIXELS`` (:mod:`savi_plugin.environment`): a configuration error
        that stops the job, never a failure of the video being decoded.
    """
    if max_pixels is not None:
        return int(max_pixels)
    from savi_plugin.environment import env_value

    return int(env_value(MAX_PIXELS_ENV))


def decoded_bytes_budget(max_bytes: int | None = None, *, batch: bool = False) -> int:
    """The decoded-bytes budget of one clip (``$SAVI_MAX_DECODED_BYTES``, default 2 GiB) or of one batch of clips
    (``batch=True``: ``$SAVI_MAX_BATCH_DECODED_BYTES``, default 8 GiB); ``max_bytes`` overrides it."""
    if max_bytes is not None:
        return int(max_bytes)
    from savi_plugin.environment import env_value

    return int(env_value(BATCH_BYTES_ENV if batch else CLIP_BYTES_ENV))


def decoded_bytes(frames: int, width: int, height: int) -> int:
    """Bytes of ``frames`` RGB uint8 frames of ``width x height`` (what :func:`read_frames` returns)."""
    return int(frames) * int(width) * int(height) * 3


def frames_in_budget(budget: int) -> int:
    """The most frames a clip of the smallest size (1x1 pixels) may sample within ``budget`` decoded bytes: a
    larger count fails on every clip, so it is a configuration error (:class:`savi_plugin.config.values.FrameCount`)."""
    return int(budget) // decoded_bytes(1, 1, 1)


def check_clip_budget(path: str | Path, frames: int, width: int, height: int, budget: int | None = None) -> None:
    """Refuse (a final :class:`VideoDecodeError`) a clip whose ``frames`` decoded frames would exceed the
    per-clip budget, from its declared size, before any frame is decoded."""
    budget = decoded_bytes_budget(budget)
    need = decoded_bytes(frames, width, height)
    if need > budget:
        raise VideoDecodeError(path, f"{frames} frames of {width}x{height} decode to {format_bytes(need)}, above the "
                                     f"per-clip budget of {format_bytes(budget)} (${CLIP_BYTES_ENV}; sample fewer frames or "
                                     f"raise it if this is intended)", final=True)


def estimate_clip_bytes(path: str | Path, frames: int) -> int:
    """Decoded bytes of ``frames`` frames of ``path`` from its header (0 when the header names no size, or when
    ``path`` is not a regular file: a FIFO is never opened, :func:`read_frames` names what it is)."""
    if path_problem(path) is not None:
        return 0
    stream = declared_stream(path)
    return decoded_bytes(frames_to_decode(frames, stream[2]), *stream[:2]) if stream else 0


def batch_budget_message(count: int, first: str | Path, need: int, frames: int, budget: int, copies: int = 1,
                         copies_key: str = "copies") -> str:
    """The one-line refusal of a batch of ``count`` clips (``first`` the first or largest) that decodes to
    ``need`` bytes, above the per-batch ``budget``; ``copies`` clips of each held at once, set by ``copies_key``."""
    held = f", held {copies} times ({copies_key})" if copies > 1 else ""
    remedy = f"the batch size or {copies_key}" if copies > 1 else "the batch size"
    return (f"a batch of {count} videos from {first} decodes to {format_bytes(need)} ({frames} frames each{held}), "
            f"above the per-batch budget of {format_bytes(budget)} (${BATCH_BYTES_ENV}); lower {remedy} or raise the "
            f"budget")


def batch_bytes(sizes: list[int], clip_budget: int | None = None) -> int:
    """Decoded bytes of a batch whose clips decode to ``sizes``, not counting a clip above the per-clip budget
    (it is refused on its own when decoded and never joins the batch's memory)."""
    clip_budget = decoded_bytes_budget(clip_budget)
    return sum(s for s in sizes if s <= clip_budget)


def check_batch_budget(paths: list[str | Path], frames: int, budget: int | None = None,
                       key: str = "batch_size", copies: int = 1, copies_key: str | None = None) -> None:
    """Refuse a batch whose clips would decode to more than the per-batch budget, estimated from the headers
    before any clip is decoded. A clip alone above the per-clip budget is left to :func:`read_frames` (an input
    failure of that clip); the batch is the job's configuration (its batch size, recipe key ``key``), so this is
    a configuration error: the job stops with nothing marked for the batch.

    Args:
        copies: clips of each video's size held at once while the batch is processed (an RRPO batch holds the
            original and one perturbed copy per draw), set by the option ``copies_key``.

    Raises:
        ConfigError: naming the batch's first video, the estimate and both remedies.
    """
    from savi_plugin.errors import ConfigError

    budget = decoded_bytes_budget(budget, batch=True)
    need = batch_bytes([estimate_clip_bytes(p, frames) for p in paths]) * copies
    if need > budget:
        raise ConfigError(key, batch_budget_message(len(paths), paths[0], need, frames, budget, copies,
                                                    copies_key or "copies"))


def declared_stream(path: str | Path) -> tuple[int, int, int] | None:
    """``(width, height, frames)`` of the first video stream as the container declares them, without decoding a
    frame (``frames`` 0 when it declares no count, as Matroska/WebM usually do).

    None when FFmpeg (through PyAV) cannot open the file or names no size; the decoder then reports its own
    error. Opening only reads headers (a 16000 x 16000 file probes in ~40 MB).
    """
    try:
        import av

        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            ctx = stream.codec_context
            if not (ctx.width and ctx.height):
                return None
            return int(ctx.width), int(ctx.height), max(int(stream.frames or 0), 0)
    except Exception:  # not a video, truncated header, PyAV missing: the decoder names the problem
        return None


def declared_frame_size(path: str | Path) -> tuple[int, int] | None:
    """``(width, height)`` of :func:`declared_stream`."""
    stream = declared_stream(path)
    return stream[:2] if stream else None


def frames_to_decode(requested: int, declared: int) -> int:
    """How many frames a call asking for ``requested`` can decode from a stream declaring ``declared`` (0: no
    count declared): never more than the stream holds, since frames are never repeated to pad a clip (a clip with
    fewer frames is ``too_few_frames``, not over a memory budget). A header that understates its count is caught
    while decoding (the picked frames are checked again)."""
    return min(requested, declared) if declared > 0 else requested


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
    problem = path_problem(path)
    if problem:
        from savi_plugin.data.files import names_nothing

        missing = names_nothing(problem)
        raise VideoDecodeError(path, problem, final=True, skip_reason="missing_video" if missing else None)
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)", final=True)
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
        raise _cap_error(path, width, height, cap, "the stream header's size")
    return width, height, frames


def read_frames(path: str | Path, num_frames: int = DEFAULT_NUM_FRAMES, *, fps: float | None = None,
                max_frames: int | None = None, backend: str | None = None,
                max_pixels: int | None = None, sampling: str = "uniform", bound=None,
                max_bytes: int | None = None) -> DecodedVideo:
    """Decode frames from ``path``.

    Args:
        path: a video file readable by FFmpeg.
        num_frames: frames sampled uniformly over the whole video (ignored when ``fps`` is set), or the
            number of segments for ``sampling="midpoints"``.
        fps: sample at this many frames per second instead (``uniform`` only).
        max_frames: with ``fps``, the cap; above it, ``max_frames`` uniform frames are used.
        sampling: the frame rule, ``uniform``, ``midpoints`` (MVBench's segment midpoints) or ``interval``
            (RRPO's training frames, ``int(i * T / n)``); see
            :mod:`savi_plugin.video.sampling`.
        bound: ``(start, end)`` in seconds: sample only the frames from ``round(start * fps)`` to
            ``round(end * fps)`` (the video's frame rate), clipped to the video's last frame.
        backend: ``"pyav"`` (default) or ``"decord"`` (the ``decord`` extra). When the
            chosen decoder fails, the other one is tried before giving up (decord cannot read some files
            PyAV can, and the other way round); the error names both failures.
        max_pixels: refuse frames larger than this many pixels (see :data:`MAX_FRAME_PIXELS`); default
            ``$SAVI_MAX_FRAME_PIXELS`` or 4096 x 4096.
        max_bytes: refuse a clip whose sampled frames decode to more bytes (RGB) than this; default
            ``$SAVI_MAX_DECODED_BYTES`` or 2 GiB. Checked from the header before decoding.

    Raises:
        VideoDecodeError: missing, empty, truncated or non-video file, frames above the pixel cap, or a
            bound that is malformed or outside the video, naming the file (and the bound).
        InputChangedError: the file is an input of a running job that changed since the job took its identity
            (:func:`savi_plugin.data.watched.check_unchanged`); the job stops.
        ConfigError: an unknown or uninstalled backend, an unknown frame rule, ``fps`` with ``midpoints`` or
            ``interval``, or a bad ``SAVI_*`` budget variable (configuration errors: the caller's job stops; the
            video is not at fault).
    """
    from savi_plugin.errors import ConfigError  # the call's settings, not the video, are wrong

    path = Path(path)
    backend = backend or default_backend()
    if backend not in BACKENDS:
        raise ConfigError("", f"unknown video backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "decord" and not decord_installed():
        raise ConfigError("", "video backend 'decord' is not installed: pip install 'savi-plugin[decord]' "
                              "(or use pyav)")
    if sampling not in SAMPLING_RULES:
        raise ConfigError("", f"unknown frame sampling {sampling!r}; choose one of {', '.join(SAMPLING_RULES)}")
    if sampling != "uniform" and fps is not None:
        raise ConfigError("", f"frame sampling {sampling!r} takes a number of frames, not fps")
    try:
        video = _read_file(path, num_frames, fps, max_frames, backend, max_pixels, sampling, bound, max_bytes)
    except Exception:
        check_unchanged(path)  # a file replaced while it was read is an input that changed, not a bad video
        raise
    check_unchanged(path)  # the frames are the file's whose identity the job took at its start
    return video


def _read_file(path: Path, num_frames: int, fps, max_frames, backend: str, max_pixels, sampling: str, bound,
               max_bytes) -> DecodedVideo:
    """:func:`read_frames` once its settings are checked."""
    try:
        bound = check_bound(bound)
    except BoundError as exc:
        raise VideoDecodeError(path, str(exc), final=True) from None
    problem = path_problem(path)
    if problem:
        from savi_plugin.data.files import names_nothing

        missing = names_nothing(problem)
        raise VideoDecodeError(path, problem, final=True, skip_reason="missing_video" if missing else None)
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "file is empty (0 bytes)", final=True)
    cap = frame_pixel_cap(max_pixels)
    budget = decoded_bytes_budget(max_bytes)
    stream = declared_stream(path)
    size = stream[:2] if stream else None
    if size is not None and size[0] * size[1] > cap:
        raise _cap_error(path, *size, cap, "the stream header's size; refused before decoding")
    if size is not None and fps is None:  # uniform or midpoints: num_frames frames, or all a shorter clip has
        check_clip_budget(path, frames_to_decode(num_frames, stream[2]), *size, budget)
    pick = _picker(path, num_frames, fps, max_frames, sampling, bound, size, budget)
    order = [backend] + [b for b in BACKENDS if b != backend and (b != "decord" or decord_installed())]
    failures: list[str] = []
    last: Exception | None = None
    for name in order:
        try:
            if name == "decord":
                check_packet_sizes(path, cap)  # decord decodes whole frames with no size hook
                return _read_decord(path, pick)
            return _read_pyav(path, pick, cap, budget)
        except VideoDecodeError as exc:
            if exc.final:
                raise
            failures.append(f"{name}: {exc.reason}")
            last = exc
        except Exception as exc:  # the decoders raise many types; the user needs the file and the reason
            failures.append(f"{name}: {type(exc).__name__}: {exc}".strip())
            last = exc
        if len(failures) < len(order):
            log.warning("%s: %s failed (%s); trying %s", path, name, failures[-1], order[len(failures)])
    raise VideoDecodeError(path, "; ".join(failures)) from last


def _picker(path: Path, num_frames: int, fps: float | None, max_frames: int | None, sampling: str, bound,
            size: tuple[int, int] | None = None, budget: int | None = None):
    """``pick(total_frames, declared_fps) -> indices`` for one call of :func:`read_frames`.

    A stream that declares no frame rate is sampled as if at 1 fps, except that a bound in seconds cannot be
    placed on it (an error). A bound outside the video is an error naming the file and the bound. The picked
    frames' decoded bytes (at the declared ``size``) must fit ``budget`` (:func:`check_clip_budget`).
    """

    def pick(total: int, declared_fps: float) -> np.ndarray:
        if bound is not None and not declared_fps > 0:
            raise VideoDecodeError(path, f"bound {format_bound(bound)}: the video declares no frame rate, so "
                                         f"seconds cannot be placed on its frames", final=True)
        try:
            idx = select_frames(sampling, num_frames, fps=declared_fps or 1.0, max_frame=total - 1, bound=bound,
                                sample_fps=fps, max_frames=max_frames)
        except BoundError as exc:
            raise VideoDecodeError(path, str(exc), final=True) from None
        if size is not None:
            check_clip_budget(path, len(idx), *size, budget)
        return idx

    return pick


def _read_decord(path: Path, pick) -> DecodedVideo:
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    total = len(reader)
    if total == 0:
        raise VideoDecodeError(path, "no frames")
    declared_fps = float(reader.get_avg_fps() or 0.0)
    video_fps = declared_fps or 1.0
    idx = pick(total, declared_fps)
    frames = reader.get_batch(idx.tolist()).asnumpy()
    stamps = np.asarray([reader.get_frame_timestamp(int(i))[0] for i in idx], dtype=np.float64)
    return DecodedVideo(np.ascontiguousarray(frames, dtype=np.uint8), stamps, idx, video_fps, total, str(path))


def _read_pyav(path: Path, pick, cap: int | None = None, budget: int | None = None) -> DecodedVideo:
    import av

    cap = frame_pixel_cap(cap)
    budget = decoded_bytes_budget(budget)

    def selected(wanted: set[int]) -> tuple[int, dict[int, tuple[np.ndarray, float | None]], float]:
        """One sequential decode: count every frame, convert only the wanted ones (bounded memory).

        A JPEG packet's frame size is read before the packet is decoded, and every decoded frame's size is
        checked before anything else is done with it: a frame above the cap stops the decode.
        """
        kept: dict[int, tuple[np.ndarray, float | None]] = {}
        count = kept_bytes = 0
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(path, "no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or 0) or 1.0
            jpeg = stream.codec_context.name in JPEG_CODECS
            for packet in container.demux(stream):
                if jpeg and packet.size:
                    size = jpeg_frame_size(bytes(packet))
                    if size is not None and size[0] * size[1] > cap:
                        raise _cap_error(path, *size, cap, "a frame's own size, larger than the stream header "
                                                           "declares; refused before decoding")
                for frame in packet.decode():
                    if frame.width * frame.height > cap:
                        raise _cap_error(path, frame.width, frame.height, cap, "a decoded frame's size, larger "
                                                                               "than the stream header declares")
                    if count in wanted:
                        kept_bytes += decoded_bytes(1, frame.width, frame.height)
                        if kept_bytes > budget:  # frames larger than the header declared: stop converting
                            raise VideoDecodeError(path, f"decoded frames exceed the per-clip budget of "
                                                         f"{format_bytes(budget)} (${CLIP_BYTES_ENV})", final=True)
                        kept[count] = (frame.to_ndarray(format="rgb24"), frame.time)
                    count += 1
        return count, kept, rate

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise VideoDecodeError(path, "no video stream")
        header_total = int(container.streams.video[0].frames or 0)
        declared_fps = float(container.streams.video[0].average_rate or 0)
    video_fps = declared_fps or 1.0
    total, kept, idx = header_total, {}, None
    if header_total > 0:
        try:
            idx = pick(header_total, declared_fps)
        except VideoDecodeError:  # judged on the header's count, which may be wrong: decided on the true count below
            idx = None
        if idx is not None:
            total, kept, video_fps = selected(set(idx.tolist()))
    if idx is None or total != header_total:
        # The header's frame count was missing or wrong (common): decode once to count, then select.
        if idx is None:
            total, _, video_fps = selected(set())
        if total == 0:
            raise VideoDecodeError(path, "no frames")
        idx = pick(total, declared_fps)
        total, kept, video_fps = selected(set(idx.tolist()))
    frames = np.stack([kept[i][0] for i in idx]).astype(np.uint8)
    stamps = np.asarray([kept[i][1] if kept[i][1] is not None else i / video_fps for i in idx], dtype=np.float64)
    return DecodedVideo(frames, stamps, idx, video_fps, total, str(path))

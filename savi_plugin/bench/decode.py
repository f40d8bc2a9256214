"""Video decoding throughput: decord against PyAV through :func:`savi_plugin.video.read_frames`.

    savi bench decode      # 300 frames, 224x224, 30 fps, GOP 250 and 30; uniform 16 / 32 frames and all frames
    python benchmarks/decode.py --frames 600 --size 336

A synthetic clip (a moving shape over per-pixel noise, H.264 through PyAV; keyframe interval libx264's
default or ``--keyframe-interval``) is written once; then each backend reads it the way the pipeline does --
a uniform sample of ``k`` frames, and every frame -- ``--repeats`` times. The time of a read includes opening
the file, seeking and colour conversion to RGB (everything ``read_frames`` does); the median is reported.
``frames/s`` counts the frames *returned*. How the two differ: decord's ``get_batch`` can seek to the keyframe
before each wanted frame, while our PyAV reader decodes the clip sequentially and converts only the wanted
frames; so the keyframe interval decides how much a sparse sample can skip.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from savi_plugin.bench.measure import median, ratio
from savi_plugin.bench.options import EVEN_SIZE, add_options, listed
from savi_plugin.config.values import AtLeast, ConfigError, NonNegative, checked

BACKENDS = ("decord", "pyav")


def time_reads(path: Path, backend: str, num_frames: int, repeats: int) -> tuple[float, int]:
    """Median seconds of ``read_frames(path, num_frames, backend=backend)`` over ``repeats`` runs (+1 warm-up)."""
    from savi_plugin.video import read_frames

    read_frames(path, num_frames, backend=backend)  # warm-up: library init, file cache
    times, count = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        video = read_frames(path, num_frames, backend=backend)
        times.append(time.perf_counter() - start)
        count = len(video.frames)
    return median(times), count


def run(args) -> dict:
    """Write the clip(s), time every (keyframe interval, sample size, backend); return the results (also printed)."""
    from savi_plugin.bench.fixtures import work_folder

    beyond = sorted(k for k in args.samples if k > args.frames)
    if beyond:
        raise ConfigError("--samples", f"{beyond[0]} is more than the clip's {args.frames} frames (--frames): a "
                                       f"uniform sample reads at most every frame, which is measured anyway")
    check_decodable(args.frames, args.size)
    available = []
    for backend in BACKENDS:
        try:
            __import__("decord" if backend == "decord" else "av")
            available.append(backend)
        except ImportError:
            print(f"  {backend}: not installed, skipped")
    with work_folder(args.work_dir, "decode") as work:
        return {"clips": [_run_clip(work, gop, available, args) for gop in args.keyframe_interval]}


def check_decodable(frames: int, size: int) -> None:
    """Refuse, before a clip is written, a ``--size`` whose frames the decoder's pixel cap refuses
    (``$SAVI_MAX_FRAME_PIXELS``) and a ``--frames`` whose every-frame read is above the per-clip decode budget
    (``$SAVI_MAX_DECODED_BYTES``): the benchmark reads every frame, so it would encode the clip, then fail on it.

    Raises:
        ConfigError: at the flag, naming the cap and its variable.
    """
    from savi_plugin.environment import env_value

    pixels = env_value("SAVI_MAX_FRAME_PIXELS")
    if size * size > pixels:
        raise ConfigError("--size", f"{size}x{size} frames are above the decoder's cap of {pixels} pixels "
                                    f"($SAVI_MAX_FRAME_PIXELS): a smaller --size, or raise the cap")
    budget = env_value("SAVI_MAX_DECODED_BYTES")
    if frames * size * size * 3 > budget:
        raise ConfigError("--frames", f"{frames} frames of {size}x{size} decode to {frames * size * size * 3} bytes, "
                                      f"above the per-clip budget of {budget} ($SAVI_MAX_DECODED_BYTES; the "
                                      f"benchmark reads every frame): fewer --frames or a smaller --size")


def _run_clip(work: Path, gop: int, available: list[str], args) -> dict:
    from savi_plugin.bench.fixtures import make_video

    path, _ = make_video(work, num_frames=args.frames, size=args.size, noise=args.noise, fps=args.fps,
                         keyframe_interval=gop or None)
    where = f"keyframe every {gop} frames" if gop else "libx264 default GOP (250)"
    print(f"Video decoding, {args.frames} frames {args.size}x{args.size} at {args.fps} fps, {where}, "
          f"{path.stat().st_size / 1024:.0f} KiB; read_frames(), median of {args.repeats} reads")
    print(f"  {'frames read':>11}  " + "  ".join(f"{b + ' frames/s':>16}" for b in available)
          + ("   decord / pyav" if len(available) == 2 else ""))
    rows = []
    for k in sorted({*args.samples, args.frames}):
        row = {"frames": k}
        for backend in available:
            seconds, count = time_reads(path, backend, k, args.repeats)
            row[backend] = {"seconds": seconds, "frames": count, "frames_per_s": count / seconds}
        if len(available) == 2:
            row["ratio_decord_over_pyav"] = ratio(row["decord"]["frames_per_s"], row["pyav"]["frames_per_s"])
        rows.append(row)
        label = "all" if k == args.frames else f"uniform {k}"
        cells = "  ".join(f"{row[b]['frames_per_s']:16.1f}" for b in available)
        extra = f"   {row['ratio_decord_over_pyav']:.2f}x" if len(available) == 2 else ""
        print(f"  {label:>11}  {cells}{extra}")
    return {"video": str(path), "keyframe_interval": gop, "rows": rows}


@dataclass(frozen=True)
class DecodeOptions:
    """The options of ``savi bench decode`` (one flag each, :mod:`savi_plugin.bench.options`)."""

    frames: int = checked(300, AtLeast(1), help="length of the synthetic clip")
    size: int = checked(224, *EVEN_SIZE, help="frame width and height (even)")
    fps: int = checked(30, AtLeast(1), help="frame rate of the clip")
    noise: float = checked(8.0, NonNegative(), help="per-pixel noise std (gives the codec content)")
    keyframe_interval: list[int] = listed([0, 30], AtLeast(0),
                                          help="H.264 GOP(s) in frames, one clip each (0: libx264's default, 250)")
    samples: list[int] = listed([16, 32], AtLeast(1), help="uniform sample sizes to read")
    repeats: int = checked(5, AtLeast(1), help="timed reads per cell (median reported)")
    work_dir: str | None = checked(None, help="where the clip is written (default: a new temporary folder)")


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The parser of :class:`DecodeOptions` (added to ``parser`` when given)."""
    return add_options(parser or argparse.ArgumentParser(description=__doc__.split("\n\n")[0]), DecodeOptions)


def main(argv=None) -> int:
    run(build_parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

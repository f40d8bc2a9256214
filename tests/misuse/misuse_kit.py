"""Builders shared by the misuse suite: real videos that lie or break in specific ways, preference files, and
the ``savi`` command run in-process (``main(argv)``) or as its own process."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------------ videos
def gray_jpeg(width: int, height: int) -> bytes:
    """A valid baseline grayscale JPEG of uniform mid-grey, 2 bits per 8x8 block (DC diff 0, then EOB).

    A 16000 x 16000 frame is 2 MB of JPEG and 256 M pixels once decoded: a decompression bomb in a video.
    """
    def segment(marker: int, payload: bytes) -> bytes:
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload

    one_code = bytes([1] + [0] * 15)  # a single 1-bit Huffman code, for symbol 0 (DC: size 0; AC: EOB)
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    scan = b"\x00" * (2 * blocks // 8) + (bytes([0xFF >> (2 * blocks % 8)]) if 2 * blocks % 8 else b"")
    return (b"\xff\xd8" + segment(0xDB, b"\x00" + b"\x01" * 64)
            + segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
            + segment(0xC4, b"\x00" + one_code + b"\x00" + b"\x10" + one_code + b"\x00")
            + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + scan + b"\xff\xd9")


def write_mjpeg(path: Path, width: int, height: int, frames: int = 2,
                sizes: list[tuple[int, int]] | None = None) -> Path:
    """An MJPEG Matroska file muxed without re-encoding. The header declares ``width x height``; the frames are
    ``sizes`` (default: all ``width x height``) -- a file can declare 64 x 64 and carry 12000 x 12000 frames."""
    import av

    sizes = sizes or [(width, height)] * frames
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("mjpeg", rate=8)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
        for i, size in enumerate(sizes):
            packet = av.Packet(gray_jpeg(*size))
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, i, i, Fraction(1, 8)
            container.mux(packet)
    return path


def write_zero_frame_mp4(path: Path) -> Path:
    """An mp4 with an H.264 video stream header and no frame at all."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        container.start_encoding()
    return path


def clip(path: Path, size: int = 32, frames: int = 8, seed: int = 0, width: int | None = None) -> Path:
    """A real H.264 mp4 of moving shapes (``size`` x ``size``, or ``width`` x ``size``)."""
    from savi_plugin.video.synthetic import render_sample, write_mp4

    data = render_sample(np.random.default_rng(seed), "moving_direction", size=max(size, width or 0),
                         num_frames=frames)[0]
    if width is not None:
        data = np.ascontiguousarray(data[:, :size, :width])
    write_mp4(path, data)
    return path


def damaged_after_header(path: Path, source: Path) -> Path:
    """``source`` with its coded frames overwritten: the header probes fine, every decoder fails on the data."""
    data = bytearray(source.read_bytes())
    start = data.find(b"mdat") + 8
    end = data.find(b"moov") if data.find(b"moov") > start else len(data)
    data[start:end] = b"\xff" * (end - start)
    path.write_bytes(bytes(data))
    return path


def png_named_mp4(path: Path, size: int = 32) -> Path:
    """A PNG image with an .mp4 name: it opens as a one-frame "video"."""
    from PIL import Image

    Image.fromarray(np.full((size, size, 3), 127, np.uint8)).save(path, format="PNG")
    return path


# ------------------------------------------------------------------------------------------------ data
def pair(pid: str, video: str | Path, answer: str = "red", wrong: str = "blue", **extra) -> dict:
    """A valid, tagged preference pair about ``video``."""
    return {"id": pid, "video": str(video), "question": "What colour is the shape?",
            "chosen": f"The shape is {answer}.", "rejected": f"The shape is {wrong}.",
            "chosen_tagged": f"The shape is <MASK>{answer}</MASK>.",
            "rejected_tagged": f"The shape is <MASK>{wrong}</MASK>.", **extra}


def qa_item(qid: str, video: str | Path, **extra) -> dict:
    """A multiple-choice video-QA manifest line (rrpo input)."""
    return {"id": qid, "video": str(video), "question": "Which way does the shape move?",
            "options": ["left", "right", "up", "down"], "answer": "left", **extra}


# ------------------------------------------------------------------------------------------------ the CLI
def savi(capsys, *argv: str) -> tuple[int, str, str]:
    """``savi ARGV`` in-process: ``(exit code, stdout, stderr)``."""
    from savi_plugin.cli import main

    capsys.readouterr()
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(err: str, *fragments: str) -> str:
    """The stderr of a refused command: an ``error:`` line naming every fragment, and no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def savi_process(*argv: str, cwd: Path | None = None, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """``python -m savi_plugin ARGV`` as its own process (stdout/stderr piped)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "savi_plugin", *map(str, argv)], cwd=cwd, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


HOLD_LOCK = """
import logging, sys, time
from savi_plugin.data import outputs
logging.basicConfig(level=logging.WARNING)
outputs.state.LOCK_CHECK_SECONDS = float(sys.argv[3])
lock = outputs.OutputLock(sys.argv[1], folder=sys.argv[2] == "folder").acquire()
print("locked", flush=True)
time.sleep(120)
"""


def hold_lock(path: Path, folder: bool, check_seconds: float = 2.0) -> subprocess.Popen:
    """Another process holding ``path``'s output lock until killed (waits until it holds it); it checks its lock
    files every ``check_seconds`` (:meth:`~savi_plugin.data.outputs.OutputLock.check`)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path), "folder" if folder else "file",
                             str(check_seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc

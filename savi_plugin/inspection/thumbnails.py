"""Frame thumbnails for the inspection site: the frames a pair's video gives at the generator's frame count,
and for RRPO pairs the perturbed frames the model answered from, rebuilt from the record's
``meta.perturbation`` (:func:`savi_plugin.video.perturb.replay_perturbations`).

Decoded frames are cached per video (an LRU of a few clips), and a video's thumbnails are written once and shared
by every pair that names it, so a site over many pairs of few videos decodes each video once.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from savi_plugin.video.decode import VideoDecodeError, read_frames
from savi_plugin.video.perturb import replay_perturbations


@dataclass
class Thumbs:
    """Relative paths of a pair's thumbnails (``frames``: sampled; ``perturbed``: what the model saw), or why
    there are none (``problem``)."""

    frames: list[str]
    perturbed: list[str]
    problem: str = ""
    perturb_problem: str = ""


def shown(count: int, limit: int) -> list[int]:
    """Indices of at most ``limit`` of ``count`` frames, evenly spread, first and last included."""
    if limit <= 0 or count <= 0:
        return []
    if count <= limit:
        return list(range(count))
    return sorted({int(round(i * (count - 1) / (limit - 1))) for i in range(limit)}) if limit > 1 else [0]


class ThumbnailWriter:
    """Writes JPEG thumbnails under ``root/thumbs`` (``width`` pixels wide) and returns their site paths."""

    def __init__(self, root: Path, *, limit: int = 8, width: int = 160, cache: int = 16):
        self.root, self.limit, self.width = root, limit, width
        self._decoded: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._cache = cache
        self._written: dict[str, list[str]] = {}
        self._failed: dict[str, str] = {}  # videos that failed to decode, by name: tried once

    def _frames(self, video: Path, num_frames: int) -> np.ndarray:
        key = (str(video), num_frames)
        if key in self._decoded:
            self._decoded.move_to_end(key)
            return self._decoded[key]
        frames = read_frames(video, num_frames).frames
        self._decoded[key] = frames
        if len(self._decoded) > self._cache:
            self._decoded.popitem(last=False)
        return frames

    def _write(self, name: str, frames: np.ndarray) -> list[str]:
        from PIL import Image

        if name in self._written:
            return self._written[name]
        folder = self.root / "thumbs" / name[:2]
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in shown(len(frames), self.limit):
            image = Image.fromarray(frames[i])
            height = max(1, round(image.height * self.width / image.width))
            image.resize((self.width, height)).save(folder / f"{name}-{i}.jpg", quality=80)
            paths.append(f"thumbs/{name[:2]}/{name}-{i}.jpg")
        self._written[name] = paths
        return paths

    def for_pair(self, video: Path | None, num_frames: int, perturbation: list | None, pair_key: str) -> Thumbs:
        """Thumbnails of ``video`` at ``num_frames`` frames and, given the record's perturbation, of the perturbed
        frames; a missing or undecodable video gives none, with the reason."""
        if self.limit <= 0:
            return Thumbs([], [])
        if video is None or not video.is_file():  # what it is (a folder, a FIFO, a broken link), never opened
            from savi_plugin.data.files import file_problem

            if video is None:
                return Thumbs([], [], problem="video not given")
            problem = file_problem(video, "video file")
            return Thumbs([], [], problem=f"video {'not found' if problem == 'file not found' else problem}: {video}")
        stat = video.stat()
        name = hashlib.sha1(f"{os.path.realpath(video)}|{stat.st_size}|{stat.st_mtime_ns}|{num_frames}".encode()
                            ).hexdigest()[:16]
        if name in self._written and not perturbation:  # this video's thumbnails exist: nothing to decode
            return Thumbs(self._written[name], [])
        if name in self._failed:
            return Thumbs([], [], problem=self._failed[name])
        try:
            frames = self._frames(video, num_frames)
        except VideoDecodeError as exc:
            self._failed[name] = str(exc)
            return Thumbs([], [], problem=str(exc))
        thumbs = Thumbs(self._write(name, frames), [])
        if perturbation:
            try:
                thumbs.perturbed = self._write(f"{name}p{pair_key}", replay_perturbations(frames, perturbation))
            except ValueError as exc:
                thumbs.perturb_problem = str(exc)
        return thumbs

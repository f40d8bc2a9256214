"""A video stored as a folder of frame images (MVBench's TVQA ``frames_fps3_hq/<clip>/00001.jpg`` ...): which files
are its frames, in which order.

The references (OpenGVLab/Ask-Anything ``video_chat2/mvbench.ipynb``, pritamqu/RRPO ``eval/mvbench/mvbench.py``)
count the folder's entries (``len(os.listdir)``) and open ``{k:05d}.jpg`` for frame ``k = 1 .. N``. Here the
frames are the image files (:data:`IMAGE_SUFFIXES`) in numeric order, so:

* files that are no frames are left out: other suffixes (``Thumbs.db``, ``notes.txt``) and hidden files (macOS
  ``._00001.jpg`` resource forks, which carry an image suffix but hold no image);
* ``1.jpg, 2.jpg, ..., 10.jpg`` are in the order of their numbers, not of their names (``10.jpg`` is not frame 2);
* numbered frames with a gap (``00001.jpg, 00003.jpg``) are refused naming the first missing number: counting the
  files would place every later frame at the wrong time, and the references fail on such a folder too;
* an entry with an image suffix that is no regular file (a folder ``00002.jpg``, a broken symlink) is refused,
  naming it.
"""

from __future__ import annotations

import re
from pathlib import Path

from savi_plugin.video.decode import VideoDecodeError, path_problem

#: File suffixes read as frames (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def _numeric_order(path: Path) -> list:
    """``"frame10.jpg"`` -> ``["frame", 10, ".jpg"]``: names compared by their numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def frame_files(folder: str | Path) -> list[Path]:
    """The frame images of ``folder`` in frame order (module docstring).

    Raises:
        VideoDecodeError: no frame images, an image entry that is no regular file, or numbered frames with a gap;
            naming the folder and the entry.
    """
    folder = Path(folder)
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
                   key=_numeric_order)
    if not files:
        raise VideoDecodeError(folder, "directory holds no image frames", final=True)
    for file in files:
        problem = path_problem(file)
        if problem:
            raise VideoDecodeError(folder, f"frame {file.name} {problem.replace('video file', 'image file')}", final=True)
    if all(p.stem.isdigit() for p in files):
        numbers = [int(p.stem) for p in files]
        expected = range(numbers[0], numbers[0] + len(numbers))
        missing = next((n for n, k in zip(expected, numbers) if n != k), None)
        if missing is not None:
            width = len(files[0].stem)
            raise VideoDecodeError(folder, f"frames are numbered with a gap: {missing:0{width}d} is missing between "
                                           f"{files[0].name} and {files[-1].name} (frame k is the k-th file, so a "
                                           f"gap would shift every later frame's time)", final=True)
    return files

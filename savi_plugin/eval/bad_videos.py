"""Videos that exist but could not be decoded, as seen by this process's ``savi_video`` model.

The model records each path it fails to decode (damaged file, not a video, unsupported codec); the task's
``process_results`` then counts that document as ``bad_video`` instead of ``unparsed``. lmms-eval calls
``process_results`` in the process that generated the answer (each rank scores its own documents), so a
process-local record is enough.
"""

from __future__ import annotations

_BAD: set[str] = set()


def mark_bad(path: str) -> None:
    """Record that ``path`` could not be decoded."""
    _BAD.add(str(path))


def is_bad(path: str) -> bool:
    """Whether ``path`` failed to decode in this process."""
    return str(path) in _BAD

"""Documents the ``savi_video`` model could not use, as seen by this process: videos that exist but could not be
decoded, and documents whose text holds the model's control tokens.

The model records each path it fails to decode (damaged file, not a video, unsupported codec), and each document
whose prompt it refused for control tokens (:class:`~savi_plugin.models.backends.tokens.ControlTextError`); the
task's ``process_results`` then counts that document as ``bad_video`` or ``control_token_in_text`` instead of
``unparsed``. lmms-eval calls ``process_results`` in the process that generated the answer (each rank scores its
own documents), so a process-local record is enough.
"""

from __future__ import annotations

import hashlib
import json

_BAD: set[str] = set()
_CONTROL_TEXT: set[str] = set()


def mark_bad(path: str) -> None:
    """Record that ``path`` could not be decoded."""
    _BAD.add(str(path))


def is_bad(path: str) -> bool:
    """Whether ``path`` failed to decode in this process."""
    return str(path) in _BAD


def _doc_key(doc: dict) -> str:
    """A document by its content (the model and ``process_results`` hold equal copies of one dataset row)."""
    text = json.dumps(doc, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def mark_control_text(doc: dict) -> None:
    """Record that ``doc``'s prompt was refused: its text holds the model's control tokens."""
    _CONTROL_TEXT.add(_doc_key(doc))


def has_control_text(doc: dict) -> bool:
    """Whether ``doc``'s prompt was refused for control tokens in this process."""
    return bool(_CONTROL_TEXT) and _doc_key(doc) in _CONTROL_TEXT


def unusable_counts(doc: dict) -> dict[str, int]:
    """The counts every savi task logs for a document the model could not use: ``missing_video`` (no file),
    ``bad_video`` (a file the model could not decode, or too long for its context) and ``control_token_in_text``
    (a question or option holding the model's control tokens, a control character or a bidi override), at most
    one of them 1; such a document is scored
    0 and left out of paired comparisons (:func:`savi_plugin.eval.results.unusable_items`)."""
    found = bool(doc.get("savi_video_found", True))
    bad = found and is_bad(doc.get("savi_video", ""))
    control = found and not bad and has_control_text(doc)
    return {"missing_video": int(not found), "bad_video": int(bad), "control_token_in_text": int(control)}

"""Parse what a model writes in VideoSAVi's stages: question lists, critiques, revisions.

Models format lists in every way there is (numbered, bulleted, ``Q1:``, JSON, several questions on one
line), so :func:`parse_questions` accepts all of them and then keeps only text that reads like a
question. Anything it cannot read gives an empty list, which the generator counts as an unparseable
output and skips.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

from savi_plugin.generators.text import normalize_words, normalized_edit_distance

# "1.", "1)", "(1)", "Q1:", "Q1.", "Question 1:", "-", "*", "•", "1 -"
_ITEM_PREFIX = re.compile(
    r"^\s*(?:(?:[-*•·]+)|(?:\(?\d{1,2}[.):]?\)?(?:\s*[-–:])?)|(?:q(?:uestion)?\s*\d{1,2}\s*[.:)\-–]?))\s*",
    re.IGNORECASE,
)
_INLINE_NUMBER = re.compile(r"(?:(?<=\s)|^)(?:\(?\d{1,2}[.)]|Q\d{1,2}[:.])\s+")
_HEADER = re.compile(r"^\s*(?:here are|sure|okay|the following|questions?\s*:?\s*$)", re.IGNORECASE)


def _from_json(text: str) -> list[str] | None:
    """Questions from a JSON list / object anywhere in ``text``, or None if there is no usable JSON."""
    for opener, closer in (("[", "]"), ("{", "}")):
        start, end = text.find(opener), text.rfind(closer)
        if start < 0 or end <= start:
            continue
        try:
            data: Any = json.loads(text[start:end + 1])
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            data = next((v for k, v in data.items() if isinstance(v, list) and "question" in k.lower()), None)
        if not isinstance(data, list):
            continue
        out = []
        for item in data:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict):
                value = next((v for k, v in item.items() if k.lower() in ("question", "q", "text")), None)
                if isinstance(value, str):
                    out.append(value)
        return out
    return None


def _clean(candidate: str) -> str:
    candidate = _ITEM_PREFIX.sub("", candidate, count=1).strip()
    candidate = candidate.replace("**", "").replace("__", "").strip()  # markdown bold
    candidate = candidate.strip("\"'` ").strip()
    # "Spatial: Where is ...?" / "(temporal) What ...?" labels in front of the question.
    candidate = re.sub(r"^\(?(?:spatial|temporal)\)?\s*[:\-–]\s*", "", candidate, flags=re.IGNORECASE)
    return candidate.strip()


def _looks_like_question(text: str, min_words: int, max_words: int) -> bool:
    words = text.split()
    if not min_words <= len(words) <= max_words:
        return False
    return text.endswith("?") and sum(c.isalpha() for c in text) >= 0.6 * len(text.replace(" ", ""))


def parse_questions(text: str, *, max_questions: int | None = None, min_words: int = 3, max_words: int = 60,
                    duplicate_threshold: float = 0.2, seen: Sequence[str] = ()) -> list[str]:
    """Extract distinct questions from a model's question-generation output.

    Accepts JSON (a list of strings or of ``{"question": ...}`` objects, or ``{"questions": [...]}``),
    numbered or bulleted lists (``1.``, ``1)``, ``(1)``, ``Q1:``, ``Question 1:``, ``-``, ``*``, ``•``),
    several numbered questions on one line, and plain lines. A kept item must end with ``?``, have
    ``min_words`` to ``max_words`` words and be mostly letters.

    Args:
        text: the model's output.
        max_questions: keep at most this many (the first ones).
        min_words, max_words: length bounds of a question.
        duplicate_threshold: a question whose word-level normalised edit distance to an earlier one (or to
            one in ``seen``) is at most this value is a duplicate and dropped (0 drops exact repeats only).
        seen: questions already kept (from another prompt for the same video) that new ones must not repeat.

    Returns:
        The questions in order of appearance; empty when nothing parses.
    """
    candidates = _from_json(text)
    if candidates is None:
        candidates = []
        for line in text.splitlines():
            if not line.strip() or _HEADER.match(line):
                continue
            parts = [p for p in _INLINE_NUMBER.split(line) if p.strip()]
            if len(parts) <= 1:
                # Several un-numbered questions on one line: split after each "?".
                parts = [p for p in re.split(r"(?<=\?)\s+", line) if p.strip()]
            candidates.extend(parts)
    kept: list[str] = []
    previous = [q for q in seen]
    for candidate in candidates:
        question = _clean(candidate)
        if not _looks_like_question(question, min_words, max_words):
            continue
        norm = " ".join(normalize_words(question))
        if any(norm == " ".join(normalize_words(p)) or normalized_edit_distance(question, p) <= duplicate_threshold
               for p in previous):
            continue
        kept.append(question)
        previous.append(question)
        if max_questions is not None and len(kept) >= max_questions:
            break
    return kept


def critique_finds_error(critique: str, no_error_patterns: Sequence[str], *, min_words: int = 2) -> bool | None:
    """Whether a critique names at least one error.

    Returns:
        False if it matches a "no error" pattern (searched case-insensitively from its start), None if it is
        unreadable (fewer than ``min_words`` words that are mostly letters), True otherwise.
    """
    text = critique.strip()
    for pattern in no_error_patterns:
        if re.search(pattern, text, flags=re.IGNORECASE):
            return False
    words = text.split()
    letters = sum(c.isalpha() for c in text)
    if len(words) < min_words or letters < 0.5 * len(text.replace(" ", "")):
        return None
    return True


_REVISION_LABEL = re.compile(
    r"^\s*(?:\*\*)?(?:revised|corrected|final|improved)?\s*(?:answer|response|revision)\s*(?:\*\*)?\s*:\s*(?:\*\*)?",
    re.IGNORECASE,
)


def clean_revision(text: str) -> str:
    """The revised answer without a ``Revised answer:`` style label or wrapping quotes."""
    text = _REVISION_LABEL.sub("", text.strip(), count=1).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text

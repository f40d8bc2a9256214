"""Pure text helpers shared by the generators: normalisation, word tokens, edit distance."""

from __future__ import annotations

import re
import string

_WORD = re.compile(r"\w+|[^\w\s]")
_ARTICLES = {"a", "an", "the"}
_PUNCT = str.maketrans("", "", string.punctuation)


def tokens_with_spans(text: str) -> list[tuple[str, int, int]]:
    """Words and single punctuation marks of ``text`` with their ``(start, end)`` character offsets."""
    return [(m.group(0), m.start(), m.end()) for m in _WORD.finditer(text)]


def normalize_answer(text: str) -> str:
    """SQuAD-style normalisation: lower case, no punctuation, no articles, single spaces."""
    words = text.lower().translate(_PUNCT).split()
    return " ".join(w for w in words if w not in _ARTICLES)


def normalize_words(text: str) -> list[str]:
    """Lower-cased word tokens without punctuation (for edit distance and duplicate detection)."""
    return text.lower().translate(_PUNCT).split()


def levenshtein(a: list[str] | str, b: list[str] | str) -> int:
    """Edit distance (insertions, deletions, substitutions) between two sequences."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def normalized_edit_distance(a: str, b: str) -> float:
    """Word-level edit distance divided by the longer length: 0 = same words, 1 = nothing shared.

    Words (not characters) because a revision that changes one word of a 60-word answer is "nearly the
    same answer" whatever the word's length, and word-level distance is cheap on long answers.
    """
    wa, wb = normalize_words(a), normalize_words(b)
    longest = max(len(wa), len(wb))
    if longest == 0:
        return 0.0
    return levenshtein(wa, wb) / longest


def word_count(text: str) -> int:
    return len(text.split())

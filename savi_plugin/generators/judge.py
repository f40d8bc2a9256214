"""Is the model's answer correct? Multiple choice by option letter or option text; yes/no; short; long.

RRPO (arXiv 2504.12083, Fig. 2 of the paper / ``docs/assets/self-alignment.png``) keeps a response as
non-preferred only when it is *wrong*. Wrongly calling a correct answer "wrong" creates a harmful pair
(the ground truth preferred over an equally correct answer), while wrongly calling a wrong answer
"correct" only loses a pair, so every rule below leans towards "correct" when in doubt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from savi_plugin.generators.text import contains_phrase, normalize_answer, token_f1, word_count

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Judgement:
    """The verdict on one answer.

    Attributes:
        correct: whether the answer counts as correct.
        kind: ``mcq``, ``yes_no``, ``short`` or ``long`` (which rule judged it).
        predicted: for ``mcq``, the index of the option the answer picks (None if it picks none).
        method: how the verdict was reached (``letter``, ``option_text``, ``unmapped``, ``yes_no``,
            ``exact``, ``contains``, ``f1``, ``empty``).
        score: token F1 for ``long`` answers, else 1.0/0.0.
    """

    correct: bool
    kind: str
    predicted: int | None
    method: str
    score: float


def _letter_patterns(n: int) -> list[re.Pattern]:
    letters = LETTERS[:n]
    cls = f"[{letters}]"
    return [
        re.compile(rf"^\s*\(?({cls})\)?\s*[.:)]?\s*$"),                       # "B", "(B)", "B."
        re.compile(rf"^\s*\(({cls})\)"),                                      # "(B) red circle"
        re.compile(rf"^\s*({cls})\s*[.:)]\s"),                                # "B. red", "B) red", "B: red"
        # "answer is (B)", "Option: B." -- the letter in parentheses or followed by punctuation/end, so the
        # article in "the answer is a red circle" / "Answer: A red circle" is not read as option A.
        re.compile(rf"\b(?i:answer|option|choice)\s*(?:(?i:is)|:)?\s*(?:\(({cls})\)|({cls})(?=\s*$|[.,:;!)]))"),
    ]


def match_option(answer: str, options: Sequence[str]) -> tuple[int | None, str]:
    """The option an answer picks, by its letter first and then by its text.

    Letters: a bare ``B`` / ``(B)`` / ``B.``, a leading ``(B) ...`` / ``B. ...``, ``answer is B`` /
    ``Option: (B)``, or exactly one distinct parenthesised letter anywhere. Text: the normalised answer
    equals one option's normalised text, or exactly one option occurs in it as whole words (when one
    option's text contains another's, e.g. "red" and "dark red", the longer match wins).

    Returns:
        ``(index, method)``; ``(None, "unmapped")`` when the answer picks no single option.
    """
    if not options:
        return None, "unmapped"
    n = min(len(options), len(LETTERS))
    for pattern in _letter_patterns(n):
        m = pattern.search(answer)
        if m:
            letter = next(g for g in m.groups() if g)
            return LETTERS.index(letter), "letter"
    paren = set(re.findall(rf"\(([{LETTERS[:n]}])\)", answer))
    if len(paren) == 1:
        return LETTERS.index(paren.pop()), "letter"

    norm = normalize_answer(answer)
    opts = [normalize_answer(o) for o in options]
    for i, o in enumerate(opts):
        if o and norm == o:
            return i, "option_text"
    found = [i for i, o in enumerate(opts) if contains_phrase(norm, o)]
    # Drop matches that are part of a longer matching option ("red" inside "dark red").
    found = [i for i in found if not any(j != i and contains_phrase(opts[j], opts[i]) and opts[j] != opts[i]
                                         for j in found)]
    if len(found) == 1:
        return found[0], "option_text"
    return None, "unmapped"


def yes_no(text: str) -> str | None:
    """The first ``yes`` or ``no`` word of ``text`` (lower case), or None."""
    m = re.search(r"\b(yes|no)\b", text.lower())
    return m.group(1) if m else None


def judge_answer(answer: str, ground_truth: str, *, options: Sequence[str] | None = None,
                 answer_index: int | None = None, short_answer_words: int = 5,
                 f1_threshold: float = 0.5) -> Judgement:
    """Judge ``answer`` against the ground truth.

    Args:
        answer: the model's answer.
        ground_truth: the correct answer text (for MCQ, the correct option's text).
        options: MCQ options; with them the answer is judged by the option it picks (letter or text).
        answer_index: index of the correct option (derived from ``ground_truth`` if None).
        short_answer_words: ground truths with at most this many words are "short": correct if the
            normalised answer equals the ground truth or contains it as whole words.
        f1_threshold: longer ("long", open-ended) answers are correct when their token F1 with the
            ground truth reaches this value (SQuAD F1; a heuristic, documented as such).
    """
    if not answer.strip():
        kind = "mcq" if options else "short"
        return Judgement(False, kind, None, "empty", 0.0)
    if options:
        if answer_index is None:
            norm_gt = normalize_answer(ground_truth)
            matches = [i for i, o in enumerate(options) if normalize_answer(o) == norm_gt]
            if len(matches) != 1:
                raise ValueError(f"ground truth {ground_truth!r} is not exactly one of the options {list(options)}")
            answer_index = matches[0]
        picked, method = match_option(answer, options)
        return Judgement(picked == answer_index, "mcq", picked, method, float(picked == answer_index))
    truth = yes_no(ground_truth)
    if truth is not None and normalize_answer(ground_truth) in ("yes", "no"):
        said = yes_no(answer)
        return Judgement(said == truth, "yes_no", None, "yes_no", float(said == truth))
    norm_gt, norm_answer = normalize_answer(ground_truth), normalize_answer(answer)
    if word_count(ground_truth) <= short_answer_words:
        if norm_answer == norm_gt:
            return Judgement(True, "short", None, "exact", 1.0)
        if contains_phrase(norm_answer, norm_gt):
            return Judgement(True, "short", None, "contains", 1.0)
        return Judgement(False, "short", None, "exact", 0.0)
    score = token_f1(answer, ground_truth)
    return Judgement(score >= f1_threshold, "long", None, "f1", score)

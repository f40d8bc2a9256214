"""Tag the phrases where a preferred and a non-preferred response differ (``<MASK> ... </MASK>``).

RRPO (arXiv 2504.12083; pritamqu/RRPO ``docs/DATA.md``) puts its sub-sequence reward on the differing
phrases only. The authors tag "mcq, binary qa, and short answers" with a regex-style rule and "open-ended
long responses" with a strong LLM and a two-turn prompt (first: list the key differences or say "None";
second: rewrite the sentence with them). Here:

- :func:`rule_tag` is the rule route. Two rules (:data:`TAG_RULES`):

  * ``figure`` (default): the tags of the authors' own examples, ``docs/assets/data.png``. It is the
    ``difflib`` rule below with three changes the figure shows: an option label is never a phrase (the
    figure bolds ``close``/``open`` and ``closing``/``opening`` in ``(D) Pretending to close something ...``
    vs ``(H) Pretending to open ...``, not ``D``/``H``: the diff runs over the option texts, after the label);
    a replaced span loses the function words at its edges while a content word remains on both sides
    (``riding on``/``fishing from`` -> ``riding``/``fishing``, as bolded); and a replaced span with no
    content word on either side is dropped (``features``/``shows``, words that frame a video description,
    not bolded) unless it is the pair's only phrase. Content and function words are the judge's
    (:mod:`savi_plugin.generators.content`). What the figure bolds that no rule reproduces: the full stop in
    ``field.``/``beach.`` (a phrase here never includes punctuation).
  * ``difflib``: exactly the official code's difflib tagging on word sequences: the RRPO repository's only
    tagging code (``videochat2``'s ``diff_lib.get_diff_signs``, used with
  ``min_match_size=1``) runs ``difflib.SequenceMatcher`` over the two responses and gives a phrase id to
  every ``replace`` span only; insertions and deletions get none. So a pair whose responses differ only by
  an insertion or a deletion has no phrase, and the official preprocessing rejects it (``sum(signs) > 0``
  on each side); :func:`rule_tag` returns None for it. The official code diffs token ids of the policy's
  tokenizer; we diff words and punctuation marks (:func:`~savi_plugin.generators.text.tokens_with_spans`),
  so a phrase never ends inside a word and the tags do not depend on the tokenizer.
  ``widen=True`` is our extension (not the authors'): an insertion or deletion is widened by one
  neighbouring matching word so both sides get a phrase for it (``"red"`` vs ``"red circle"``).
- :func:`check_model_tagging` validates what a model returned for the LLM route: its tags must strip to
  exactly the original response and mark at least one phrase; otherwise the caller falls back to
  :func:`rule_tag` (counted in the run report).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from savi_plugin.data.options import OPTION_LABEL
from savi_plugin.data.tags import CLOSE_TAG, OPEN_TAG, TagError, parse_tags
from savi_plugin.generators.content import FRAME_WORDS, FUNCTION_WORDS
from savi_plugin.generators.text import tokens_with_spans

#: :func:`rule_tag`'s rules: ``figure`` (the authors' examples, the default) and ``difflib`` (the official code)
TAG_RULES = ("figure", "difflib")
_LEADING_LABEL = re.compile(rf"^\s*{OPTION_LABEL}")


@dataclass(frozen=True)
class TaggedPair:
    """``chosen`` and ``rejected`` with their differing phrases tagged, and how they were tagged."""

    chosen_tagged: str
    rejected_tagged: str
    method: str


def wrap_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """Insert ``<MASK>``/``</MASK>`` around each ``(start, end)`` character span (sorted, disjoint)."""
    out, cursor = [], 0
    for start, end in spans:
        out += [text[cursor:start], OPEN_TAG, text[start:end], CLOSE_TAG]
        cursor = end
    out.append(text[cursor:])
    return "".join(out)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge overlapping or touching token ranges ``[i, j)``."""
    merged: list[list[int]] = []
    for i, j in sorted(ranges):
        if merged and i <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], j)
        else:
            merged.append([i, j])
    return [(i, j) for i, j in merged]


def diff_ranges(a: list[str], b: list[str], *, widen: bool = False
                ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Token ranges ``[i, j)`` of ``a`` and of ``b`` that differ (exact word comparison, as the official
    code compares token ids).

    Args:
        a, b: the two token sequences.
        widen: False (the official rule): only ``replace`` spans, in pairs, so both lists have the same
            length. True: insertions and deletions too, each widened by one neighbouring matching token on
            both sides (``"red"`` vs ``"red circle"`` gives ``red`` and ``red circle``).
    """
    ra: list[tuple[int, int]] = []
    rb: list[tuple[int, int]] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal" or (op != "replace" and not widen):
            continue
        if i1 == i2 or j1 == j2:  # one side empty: borrow a neighbouring shared token
            if i1 > 0 and j1 > 0:
                i1, j1 = i1 - 1, j1 - 1
            elif i2 < len(a) and j2 < len(b):
                i2, j2 = i2 + 1, j2 + 1
        if i2 > i1:
            ra.append((i1, i2))
        if j2 > j1:
            rb.append((j1, j2))
    if not widen:
        return ra, rb
    return _merge(ra), _merge(rb)


def label_end(text: str) -> int:
    """Where a leading option label (``(D)``, ``[D]``, ``D.``, ``D)``, ``D:``) ends in ``text``; 0 without one."""
    m = _LEADING_LABEL.match(text)
    return m.end() if m else 0


def _incidental(words: list[str]) -> bool:
    """No content word: only function words and words that frame a video description."""
    return all(w.lower() in FUNCTION_WORDS or w.lower() in FRAME_WORDS or not w[:1].isalnum() for w in words)


def _trim(words: list[str], i: int, j: int) -> tuple[int, int]:
    """``[i, j)`` without function words (or punctuation) at either edge; unchanged if nothing would remain."""
    a, b = i, j
    while a < b and _incidental([words[a]]) and words[a].lower() not in FRAME_WORDS:
        a += 1
    while b > a and _incidental([words[b - 1]]) and words[b - 1].lower() not in FRAME_WORDS:
        b -= 1
    return (a, b) if b > a else (i, j)


def figure_ranges(a: list[str], b: list[str], ra: list[tuple[int, int]], rb: list[tuple[int, int]]
                  ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The ``figure`` rule on paired replaced spans: edges trimmed of function words where content remains on
    both sides; spans with no content word on either side dropped, unless that would leave no phrase."""
    kept_a, kept_b, incidental = [], [], []
    for (i1, i2), (j1, j2) in zip(ra, rb):
        if _incidental(a[i1:i2]) and _incidental(b[j1:j2]):
            incidental.append(((i1, i2), (j1, j2)))
            continue
        ti, tj = _trim(a, i1, i2), _trim(b, j1, j2)
        if not (_incidental(a[ti[0]:ti[1]]) or _incidental(b[tj[0]:tj[1]])):
            (i1, i2), (j1, j2) = ti, tj
        kept_a.append((i1, i2))
        kept_b.append((j1, j2))
    if not kept_a:  # only incidental differences: keep them rather than lose the pair
        kept_a, kept_b = [x for x, _ in incidental], [y for _, y in incidental]
    return kept_a, kept_b


def rule_tag(chosen: str, rejected: str, *, widen: bool = False, rule: str = "figure") -> TaggedPair | None:
    """Tag the differing phrases of two responses by a word-level diff.

    Args:
        chosen: the preferred response (RRPO: the ground truth).
        rejected: the non-preferred response (RRPO: the model's wrong answer).
        widen: see :func:`diff_ranges`; False is the official rule (replaced spans only).
        rule: ``figure`` (default) or ``difflib`` (:data:`TAG_RULES`, see the module docstring).

    Returns:
        A :class:`TaggedPair` (method ``"rule"``), or None when no span is replaced (the responses differ only
        by insertions or deletions: the official preprocessing rejects such a pair; under ``figure``, also when
        they differ only in the option label). With ``widen``, a side left without a phrase (the responses
        differ only in spacing) is tagged whole, so both sides always carry a phrase.
    """
    if rule not in TAG_RULES:
        raise ValueError(f"tag rule must be one of {', '.join(TAG_RULES)}, got {rule!r}")
    ta, tb = tokens_with_spans(chosen), tokens_with_spans(rejected)
    if rule == "figure":  # the option labels are not compared: the diff runs over the option texts
        ea, eb = label_end(chosen), label_end(rejected)
        if ea and eb:
            ta, tb = [t for t in ta if t[1] >= ea], [t for t in tb if t[1] >= eb]
    wa, wb = [t for t, _, _ in ta], [t for t, _, _ in tb]
    ra, rb = diff_ranges(wa, wb, widen=widen)
    if rule == "figure" and not widen:
        ra, rb = figure_ranges(wa, wb, ra, rb)
    if not widen and not ra:
        return None

    def to_chars(tokens, ranges, text):
        spans = [(tokens[i][1], tokens[j - 1][2]) for i, j in ranges]
        if not spans and text.strip():
            stripped_start = len(text) - len(text.lstrip())
            spans = [(stripped_start, len(text.rstrip()))]
        return spans

    return TaggedPair(wrap_spans(chosen, to_chars(ta, ra, chosen)),
                      wrap_spans(rejected, to_chars(tb, rb, rejected)), "rule")


def clean_model_rewrite(text: str) -> str:
    """Strip what a model adds around a rewrite: a ``Sentence 1:`` / ``Revised sentence:`` label, quotes."""
    import re

    text = text.strip()
    text = re.sub(r"^\s*(?:revised\s+)?(?:sentence\s*\d*|rewrite|rewritten sentence|answer)\s*:\s*", "", text,
                  flags=re.IGNORECASE)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


def check_model_tagging(original: str, rewrite: str) -> str | None:
    """Accept a model's tagged rewrite of ``original`` only if it is ``original`` plus valid tags.

    Returns:
        The tagged string, or None when the tags are malformed, mark nothing, or the model changed the text.
    """
    rewrite = clean_model_rewrite(rewrite)
    try:
        parsed = parse_tags(rewrite)
    except TagError:
        return None
    # Exact text (not just the same words): the record validator and the token alignment need it.
    if not parsed.spans or parsed.text.strip() != original.strip():
        return None
    return rewrite


def says_no_difference(text: str) -> bool:
    """Whether the first-turn answer is RRPO's "None" (no key difference)."""
    return text.strip().strip(".\"'").lower() in ("none", "no difference", "no differences")

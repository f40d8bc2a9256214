"""Per-token phrase ids for RRPO, from ``<MASK>`` tags and the tokenizer's character offsets.

RRPO (Sarkar et al., arXiv 2504.12083) puts its refined reward on the tokens of the tagged phrases only.
Token ``i`` of a response gets phrase id ``k`` (1-based) when its characters overlap the ``k``-th tagged
phrase, and ``0`` otherwise. The official code instead adds ``<MASK>``/``</MASK>`` as special tokens,
tokenizes the tagged text, drops the tag tokens and then tries to line the result up with the untagged
tokenization (giving up, with all ids 0, when the lengths differ). Here the tokenizer only sees the
untagged text, and membership comes from ``return_offsets_mapping``, so the ids are always aligned with the
exact tokens that are trained on and nothing depends on how a tokenizer splits the tags.

A token that contains only part of a phrase (a phrase that splits a word, e.g. ``"un<MASK>tie</MASK>d"``)
is in the phrase: the reward must see every token whose probability the differing text changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from savi_plugin.data.tags import parse_tags
from savi_plugin.models.backends.tokens import tokenize_response


class NoTaggedPhraseError(ValueError):
    """A response that RRPO needs tagged has no ``<MASK>`` phrase (report or count it; never replace it)."""


class PhraseAlignmentError(ValueError):
    """A tagged phrase covers no token of the tokenized response (the tokenizer dropped its characters)."""


def phrase_ids_from_offsets(offsets: Sequence[Sequence[int]], spans: Sequence[Sequence[int]]) -> list[int]:
    """Assign each token the (1-based) id of the tagged phrase its characters overlap, else 0.

    Args:
        offsets: one ``(start, end)`` half-open character range per token, into the untagged response
            (a fast tokenizer's ``offset_mapping``). A token with an empty range (``start == end``: a
            whitespace token under ``trim_offsets``, or an added BOS) is in a phrase only if that position
            lies strictly inside the phrase.
        spans: the phrase spans from :func:`savi_plugin.data.tags.parse_tags`, half-open, in order,
            non-overlapping.

    Returns:
        ``list[int]`` of the same length as ``offsets``. A token that overlaps two phrases (two phrases
        inside one token, e.g. ``"<MASK>a</MASK><MASK>b</MASK>"`` tokenized as ``"ab"``) gets the first
        one; only the total over phrases enters the RRPO loss, so the choice does not change it.
    """
    ids: list[int] = []
    for start, end in offsets:
        phrase = 0
        for k, (span_start, span_end) in enumerate(spans, start=1):
            if end > start:
                inside = start < span_end and end > span_start
            else:
                # A zero-width token: a whitespace token whose offsets were trimmed (ByteLevel
                # trim_offsets) or a token the post-processor added. It belongs to a phrase only when it
                # sits strictly inside it, so "Two men" keeps the space token between its words.
                inside = span_start < start < span_end
            if inside:
                phrase = k
                break
        ids.append(phrase)
    return ids


def tagged_phrase_ids(plain: str, tagged: str, offsets: Sequence[Sequence[int]]) -> list[int]:
    """Phrase ids for the tokens of ``plain`` (``offsets`` index it) from the ``<MASK>`` spans of ``tagged``.

    The untagged ``tagged`` text equals ``plain`` up to surrounding whitespace (``validate_record`` checks it);
    the spans are shifted by the difference in leading whitespace so they index ``plain``.

    Raises:
        TagError: the tags are malformed (from :func:`parse_tags`).
        PhraseAlignmentError: a phrase covers no token (the tokenizer dropped its characters). A phrase that
            shares its only token with the phrase before it is not an error (the first id wins).
    """
    parsed = parse_tags(tagged)
    shift = (len(plain) - len(plain.lstrip())) - (len(parsed.text) - len(parsed.text.lstrip()))
    spans = [(start + shift, end + shift) for start, end in parsed.spans]
    ids = phrase_ids_from_offsets(offsets, spans)
    for k, (start, end) in enumerate(spans, start=1):
        if k not in ids and not any(s < end and e > start for s, e in offsets):
            raise PhraseAlignmentError(f"tagged phrase {k} {plain[start:end]!r} covers no token")
    return ids


def phrase_ids_for_response(tokenizer, tagged_response: str, end_of_turn: str = "") -> tuple[list[int], list[int]]:
    """Tokenize a tagged response the way the backends do, and give each token its phrase id.

    The untagged response plus ``end_of_turn`` is tokenized by the one rule
    (:func:`savi_plugin.models.backends.tokens.tokenize_response`), so the ids line up with the trained tokens;
    the ids come from :func:`tagged_phrase_ids`, as the training dataset's do.

    Args:
        tokenizer: a *fast* Hugging Face tokenizer (``PreTrainedTokenizerFast``); offsets need it.
        tagged_response: the response with its differing phrases wrapped in ``<MASK> ... </MASK>``.
        end_of_turn: text the chat template appends after a response (e.g. ``"<|im_end|>\\n"``); it is
            tokenized with the response and is never in a phrase.

    Returns:
        ``(input_ids, phrase_ids)``, two lists of equal length.

    Raises:
        TagError, PhraseAlignmentError: from :func:`tagged_phrase_ids`.
        NoTaggedPhraseError: the response has no tagged phrase.
        TypeError: the tokenizer is not a fast tokenizer.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"phrase ids need a fast tokenizer with offset mappings; got {type(tokenizer).__name__}")
    parsed = parse_tags(tagged_response)
    if not parsed.spans:
        raise NoTaggedPhraseError(f"response has no <MASK> ... </MASK> phrase: {tagged_response[:80]!r}")
    input_ids, offsets = tokenize_response(tokenizer, parsed.text, end_of_turn)
    return input_ids, tagged_phrase_ids(parsed.text, tagged_response, offsets)

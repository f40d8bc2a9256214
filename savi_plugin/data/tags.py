"""``<MASK> ... </MASK>`` phrase tags: parse a tagged response into plain text plus character spans.

RRPO (Sarkar et al., arXiv 2504.12083) tags the phrases where the preferred and the non-preferred response
differ, e.g. ``"The dog <MASK>opens</MASK> the door."``, and puts its refined reward on those phrases only.
The official code turns the tags into extra special tokens and strips them again at the token level; here
the tags are parsed on the *string* so that the tokenizer only ever sees the untagged text and phrase
membership is decided from character offsets (see ``savi_plugin.training.phrase_ids``).

Whitespace rule (what a user writing tags expects): whitespace directly *inside* a tag, as in
``"a <MASK> red </MASK> ball"``, is formatting, not content. It is never part of a phrase span, and it is
kept in the text only where it is needed to keep two words apart (``"a<MASK> red</MASK>"`` -> ``"a red"``);
otherwise it is dropped, so ``"a <MASK> red </MASK> ball"`` and ``"a <MASK>red</MASK> ball"`` both give
``"a red ball"`` with the span covering ``"red"``. Whitespace outside the tags is never touched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPEN_TAG = "<MASK>"
CLOSE_TAG = "</MASK>"

# Anything that looks like a mask tag, in any case and with stray spaces: exact tags are accepted,
# near-misses ("<mask>", "< /MASK>") are errors rather than text that silently stays in the response.
_TAG_LIKE = re.compile(r"<\s*/?\s*mask\s*>", re.IGNORECASE)


class TagError(ValueError):
    """A tagged string is malformed: unbalanced, nested, empty or misspelled ``<MASK>`` tags."""


@dataclass(frozen=True)
class TaggedText:
    """The result of :func:`parse_tags`.

    Attributes:
        text: the response with every tag removed (what the tokenizer sees).
        spans: one ``(start, end)`` half-open character range into ``text`` per tagged phrase, in order;
            phrase ``k`` (1-based, as in the phrase ids) is ``text[spans[k-1][0]:spans[k-1][1]]``.
            Spans never start or end with whitespace and never overlap.
    """

    text: str
    spans: tuple[tuple[int, int], ...]

    @property
    def phrases(self) -> tuple[str, ...]:
        """The tagged phrases as strings, in order."""
        return tuple(self.text[start:end] for start, end in self.spans)


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def parse_tags(tagged: str) -> TaggedText:
    """Split a ``<MASK>``-tagged string into its untagged text and the character span of each phrase.

    Args:
        tagged: a response in which the differing phrases are wrapped in ``<MASK>`` and ``</MASK>``
            (exact spelling, upper case, as in the RRPO data). Tags may not nest and must balance.

    Returns:
        :class:`TaggedText` with the untagged ``text`` and one span per phrase (see the module docstring for
        how whitespace next to a tag is handled). A string without tags gives ``spans == ()``.

    Raises:
        TagError: on a misspelled tag, an opening tag inside an open phrase (nesting), a closing tag with
            no open phrase, a phrase left open at the end, or an empty phrase. The message names the
            character position in ``tagged``.
    """
    if not isinstance(tagged, str):
        raise TypeError(f"parse_tags expects a str, got {type(tagged).__name__}")
    pieces: list[str] = []  # output text so far, as pieces
    out_len = 0
    spans: list[tuple[int, int]] = []
    cursor = 0
    open_at: int | None = None  # position of the currently open <MASK> in `tagged`

    def emit(piece: str) -> None:
        nonlocal out_len
        if piece:
            pieces.append(piece)
            out_len += len(piece)

    def last_char() -> str:
        return pieces[-1][-1] if pieces else ""

    for match in _TAG_LIKE.finditer(tagged):
        tag, pos = match.group(0), match.start()
        if tag not in (OPEN_TAG, CLOSE_TAG):
            raise TagError(f"malformed tag {tag!r} at character {pos}: use exactly {OPEN_TAG} and {CLOSE_TAG}")
        between = tagged[cursor:pos]
        if tag == OPEN_TAG:
            if open_at is not None:
                raise TagError(f"nested {OPEN_TAG} at character {pos}: the phrase opened at character "
                               f"{open_at} is not closed yet")
            emit(between)
            open_at = pos
        else:
            if open_at is None:
                raise TagError(f"{CLOSE_TAG} at character {pos} has no matching {OPEN_TAG}")
            core = between.strip()
            if not core:
                raise TagError(f"empty phrase: {OPEN_TAG} at character {open_at} and {CLOSE_TAG} at "
                               f"character {pos} enclose no text")
            lead = between[: len(between) - len(between.lstrip())]
            trail = between[len(between.rstrip()):]
            # Leading whitespace inside the tag survives only if it separates two words.
            if lead and _is_word_char(last_char()) and _is_word_char(core[0]):
                emit(lead)
            start = out_len
            emit(core)
            spans.append((start, out_len))
            # Trailing whitespace inside the tag survives only if a word follows directly after the tag.
            after = tagged[match.end(): match.end() + 1]
            if trail and _is_word_char(core[-1]) and after and _is_word_char(after):
                emit(trail)
            open_at = None
        cursor = match.end()
    if open_at is not None:
        raise TagError(f"{OPEN_TAG} at character {open_at} is never closed")
    emit(tagged[cursor:])
    return TaggedText(text="".join(pieces), spans=tuple(spans))


def strip_tags(tagged: str) -> str:
    """The untagged text of ``tagged`` (same validation and whitespace rule as :func:`parse_tags`)."""
    return parse_tags(tagged).text


def count_phrases(tagged: str) -> int:
    """The number of tagged phrases in ``tagged`` (raises :class:`TagError` if the tags are malformed)."""
    return len(parse_tags(tagged).spans)

"""The rule tagger equals the official code's difflib tagging on word sequences (replaced spans only);
the widening of insertions and deletions is an option."""

from __future__ import annotations

import difflib

import pytest

from savi_plugin.data import validate_record
from savi_plugin.data.tags import parse_tags
from savi_plugin.generators.tagging import rule_tag
from savi_plugin.generators.text import tokens_with_spans

EXAMPLES = [
    ("The video features a group of people playing soccer on a sandy field.",
     "The video shows a group of people playing volleyball on a sandy beach."),
    ("The animal that is biting the man's nose in the video is a goose.",
     "The animal that is biting the man's nose in the video is a dog."),
    ("The man in the yellow shirt is seen riding on a boat in the video.",
     "The man in the yellow shirt is seen fishing from a boat in the video."),
    ("(D) Pretending to close something without actually closing it",
     "(H) Pretending to open something without actually opening it"),
    ("(B) red circle", "(C) blue circle"),
    ("yes", "No, it does not."),
    ("the red circle moves left and then stops", "the red square moves quickly right"),
    ("A man opens the door.", "A man opens the big door slowly."),  # insertions only
]


def official_phrases(a: str, b: str) -> tuple[list[str], list[str]]:
    """The official rule, written out independently: difflib over the word sequences; each ``replace``
    opcode is one phrase on each side; ``insert``/``delete`` give none."""
    wa = [t for t, _, _ in tokens_with_spans(a)]
    wb = [t for t, _, _ in tokens_with_spans(b)]
    pa, pb = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, wa, wb, autojunk=False).get_opcodes():
        if op == "replace":
            pa.append(wa[i1:i2])
            pb.append(wb[j1:j2])
    return pa, pb


def words(phrases) -> list[list[str]]:
    return [[t for t, _, _ in tokens_with_spans(p)] for p in phrases]


@pytest.mark.parametrize("chosen, rejected", EXAMPLES)
def test_rule_tag_equals_official_difflib(chosen, rejected):
    expected = official_phrases(chosen, rejected)
    pair = rule_tag(chosen, rejected)
    if not expected[0]:
        assert pair is None  # nothing replaced: the official preprocessing rejects the pair
        return
    record = validate_record({"id": "x", "video": "v.mp4", "question": "q", "chosen": chosen, "rejected": rejected,
                              "chosen_tagged": pair.chosen_tagged, "rejected_tagged": pair.rejected_tagged})
    got = (words(parse_tags(record.chosen_tagged).phrases), words(parse_tags(record.rejected_tagged).phrases))
    assert got == expected


def test_no_widening_by_default_and_widening_as_an_option():
    chosen, rejected = "A man opens the door.", "A man opens the big door slowly."
    assert rule_tag(chosen, rejected) is None
    pair = rule_tag(chosen, rejected, widen=True)
    assert parse_tags(pair.chosen_tagged).phrases == ("the door",)
    assert parse_tags(pair.rejected_tagged).phrases == ("the big door slowly",)
    # a replacement next to an insertion: by default only the replaced word
    pair = rule_tag("the red circle moves left", "the blue circle moves quickly left")
    assert (parse_tags(pair.chosen_tagged).phrases, parse_tags(pair.rejected_tagged).phrases) == (("red",), ("blue",))

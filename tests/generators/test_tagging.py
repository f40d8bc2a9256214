"""The rule tagger: ``figure`` (default) tags the authors' own examples (``docs/assets/data.png`` of
pritamqu/RRPO) as the figure bolds them; ``difflib`` equals the official code's difflib tagging on word sequences
(replaced spans only); the widening of insertions and deletions is an option."""

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
    pair = rule_tag(chosen, rejected, rule="difflib")
    if not expected[0]:
        assert pair is None  # nothing replaced: the official preprocessing rejects the pair
        return
    record = validate_record({"id": "x", "video": "v.mp4", "question": "q", "chosen": chosen, "rejected": rejected,
                              "chosen_tagged": pair.chosen_tagged, "rejected_tagged": pair.rejected_tagged})
    got = (words(parse_tags(record.chosen_tagged).phrases), words(parse_tags(record.rejected_tagged).phrases))
    assert got == expected


def test_no_widening_by_default_and_widening_as_an_option():
    chosen, rejected = "A man opens the door.", "A man opens the big door slowly."
    assert rule_tag(chosen, rejected) is None and rule_tag(chosen, rejected, rule="difflib") is None
    pair = rule_tag(chosen, rejected, widen=True)
    assert parse_tags(pair.chosen_tagged).phrases == ("the door",)
    assert parse_tags(pair.rejected_tagged).phrases == ("the big door slowly",)
    # a replacement next to an insertion: by default only the replaced word
    pair = rule_tag("the red circle moves left", "the blue circle moves quickly left")
    assert (parse_tags(pair.chosen_tagged).phrases, parse_tags(pair.rejected_tagged).phrases) == (("red",), ("blue",))


#: data.png's four examples and the words the figure sets in bold (read off the image; its full stops after
#: "field"/"beach" are bold too, which no word-level rule reproduces: a phrase never includes punctuation)
FIGURE = [
    ("(D) Pretending to close something without actually closing it",
     "(H) Pretending to open something without actually opening it",
     ["close", "closing"], ["open", "opening"]),
    ("The video features a group of people playing soccer on a sandy field.",
     "The video shows a group of people playing volleyball on a sandy beach.",
     ["soccer", "field"], ["volleyball", "beach"]),
    ("The animal that is biting the man's nose in the video is a goose.",
     "The animal that is biting the man's nose in the video is a dog.",
     ["goose"], ["dog"]),
    ("The man in the yellow shirt is seen riding on a boat in the video.",
     "The man in the yellow shirt is seen fishing from a boat in the video.",
     ["riding"], ["fishing"]),
]


@pytest.mark.parametrize("chosen, rejected, bold_chosen, bold_rejected", FIGURE)
def test_default_rule_tags_the_figures_examples_as_the_figure_bolds_them(chosen, rejected, bold_chosen,
                                                                         bold_rejected):
    pair = rule_tag(chosen, rejected)
    assert list(parse_tags(pair.chosen_tagged).phrases) == bold_chosen
    assert list(parse_tags(pair.rejected_tagged).phrases) == bold_rejected
    # the official difflib rule differs exactly where the issue says: option letters, framing words, prepositions
    official = rule_tag(chosen, rejected, rule="difflib")
    assert official.chosen_tagged != pair.chosen_tagged or bold_chosen == ["goose"]


@pytest.mark.parametrize("chosen, rejected, phrases", [
    ("(B) red circle", "(C) blue circle", (("red",), ("blue",))),  # the option text, not the letter
    ("B. two", "D. three", (("two",), ("three",))),
    ("The ball is on the box.", "The ball is under the box.", (("on",), ("under",))),  # a relation is content
    ("It is in the box.", "It is on the box.", (("in",), ("on",))),  # only function words: kept, the only phrase
    ("The clip shows a dog.", "The video features a cat.", (("dog",), ("cat",))),
])
def test_figure_rule_cases(chosen, rejected, phrases):
    pair = rule_tag(chosen, rejected)
    assert (parse_tags(pair.chosen_tagged).phrases, parse_tags(pair.rejected_tagged).phrases) == phrases


def test_an_option_letter_is_never_a_phrase_alone():
    assert rule_tag("(B)", "(C)") is None  # nothing but the letter differs: no phrase, the pair is skipped
    assert rule_tag("(B) red circle", "(C) red circle") is None
    assert parse_tags(rule_tag("(B)", "(C)", rule="difflib").chosen_tagged).phrases == ("B",)
    with pytest.raises(ValueError, match="tag rule must be one of figure, difflib"):
        rule_tag("a", "b", rule="regex")


def test_the_rrpo_generator_takes_the_rule_by_name():
    from savi_plugin.generators.runner import resolve_generator

    assert resolve_generator("rrpo", {}).config.tag_rule == "figure"
    assert resolve_generator("rrpo", {"tag_rule": "difflib"}).config.tag_rule == "difflib"
    with pytest.raises(ValueError, match="tag_rule"):
        resolve_generator("rrpo", {"tag_rule": "letters"})

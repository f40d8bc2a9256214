"""The word table the parser reads paraphrases and translations through (savi_plugin.data.lexicon)."""

from __future__ import annotations

import pytest

from savi_plugin.data.lexicon import concepts, negated, stem


@pytest.mark.parametrize("words", [("close", "closes", "closing", "closed"), ("ride", "rides", "riding"),
                                   ("bike", "bikes"), ("run", "runs", "running"), ("fall", "falls", "fell")])
def test_a_words_inflections_share_one_stem(words):
    assert len({stem(w) for w in words}) == 1, {w: stem(w) for w in words}


@pytest.mark.parametrize("same", [("He shuts it", "He closes it"), ("a kid", "a child", "ein Kind", "un niño", "孩子"),
                                  ("the vehicle", "the car", "el coche", "das Auto", "машина", "汽车", "자동차"),
                                  ("cycling", "a bike", "en bicicleta", "自行车"), ("the lady", "the woman", "女人"),
                                  ("It stays still", "It does not rotate", "It doesn't move"),
                                  ("counter-clockwise", "anticlockwise", "逆时针")])
def test_synonyms_and_translations_name_one_concept(same):
    found = [concepts(text) for text in same]
    assert all(f == found[0] for f in found), dict(zip(same, found))


def test_a_kind_keeps_its_own_identity():
    assert concepts("carrots") == {"carrot", "vegetabl"}
    assert concepts("bananas") != concepts("apples")


@pytest.mark.parametrize("word", ["call", "called", "court", "files", "filled", "please", "pose", "tape", "kind",
                                  "sale", "sort", "place", "lit", "van", "met", "den"])
def test_english_words_are_not_read_as_the_foreign_words_they_resemble(word):
    assert concepts(word) == {stem(word)}, concepts(word)


@pytest.mark.parametrize("clause, expected", [
    ("He does not open it", True), ("Il n'ouvre pas la porte", True), ("Er öffnet sie nicht", True),
    ("Он не открывает", True), ("他没有开门", True), ("開けません", True), ("열지 않습니다", True),
    ("It doesn't move", False),  # a concept of its own: still
    ("He opens it", False), ("Il ouvre la porte", False), ("他开门", False),
])
def test_negation_in_every_language_of_the_table(clause, expected):
    assert negated(clause) is expected


@pytest.mark.parametrize("text", ["看到了", "明白", "字母", "一组", "비디오에서", "에서 있습니다", "阴影"])
def test_common_words_that_contain_a_table_character_name_nothing(text):
    assert concepts(text) == set(), concepts(text)

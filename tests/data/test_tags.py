"""<MASK> tag parsing: untagged text, phrase spans, whitespace next to tags, and clear errors."""

import pytest

from savi_plugin.data.tags import TagError, count_phrases, parse_tags, strip_tags


def phrases(tagged):
    parsed = parse_tags(tagged)
    return parsed.text, [parsed.text[s:e] for s, e in parsed.spans]


def test_simple_phrase():
    parsed = parse_tags("a <MASK>red</MASK> ball")
    assert parsed.text == "a red ball"
    assert parsed.spans == ((2, 5),)
    assert parsed.phrases == ("red",)


@pytest.mark.parametrize("tagged", [
    "a <MASK>red</MASK> ball",
    "a <MASK> red </MASK> ball",
    "a <MASK> red</MASK> ball",
    "a <MASK>red </MASK> ball",
    "a<MASK> red </MASK>ball",
    "a <MASK>\tred\n</MASK> ball",
])
def test_whitespace_inside_tags_is_formatting(tagged):
    assert phrases(tagged) == ("a red ball", ["red"])


def test_whitespace_kept_only_between_words_and_punctuation_untouched():
    assert phrases("The dog<MASK> opens</MASK> the door.") == ("The dog opens the door.", ["opens"])
    assert phrases("It is <MASK>red </MASK>.") == ("It is red.", ["red"])
    assert phrases("(<MASK> yes </MASK>)") == ("(yes)", ["yes"])
    # whitespace outside tags is never touched, even doubled
    assert phrases("a  <MASK>b</MASK>  c") == ("a  b  c", ["b"])


def test_tags_at_start_and_end_and_several_phrases():
    text, found = phrases("<MASK>Two</MASK> men are <MASK>fishing on a boat</MASK>, not <MASK>swimming</MASK>")
    assert text == "Two men are fishing on a boat, not swimming"
    assert found == ["Two", "fishing on a boat", "swimming"]
    assert count_phrases("<MASK>A</MASK> and <MASK>B</MASK>") == 2


def test_phrase_inside_a_word_and_adjacent_phrases():
    assert phrases("un<MASK>tie</MASK>d") == ("untied", ["tie"])
    parsed = parse_tags("<MASK>a</MASK><MASK>b</MASK>")
    assert parsed.text == "ab" and parsed.spans == ((0, 1), (1, 2))


def test_no_tags_and_strip():
    assert parse_tags("plain answer.").spans == ()
    assert count_phrases("plain answer.") == 0
    assert strip_tags("The answer is <MASK>(B)</MASK>.") == "The answer is (B)."
    assert strip_tags("") == ""


def test_multiline_phrase_keeps_inner_whitespace():
    assert phrases("x <MASK>two\nlines</MASK> y") == ("x two\nlines y", ["two\nlines"])


@pytest.mark.parametrize("tagged, message", [
    ("a <MASK>red ball", "<MASK> at character 2 is never closed"),
    ("a red</MASK> ball", "</MASK> at character 5 has no matching <MASK>"),
    ("<MASK>a <MASK>b</MASK></MASK>", "nested <MASK> at character 8"),
    ("a <MASK>  </MASK> b", "empty phrase"),
    ("a <mask>red</mask> b", "malformed tag '<mask>' at character 2"),
    ("a <MASK>red< /MASK> b", "malformed tag '< /MASK>' at character 11"),
])
def test_malformed_tags_raise_with_position(tagged, message):
    with pytest.raises(TagError, match=message.replace("(", r"\(")):
        parse_tags(tagged)
    assert issubclass(TagError, ValueError)


def test_non_string_input():
    with pytest.raises(TypeError):
        parse_tags(None)

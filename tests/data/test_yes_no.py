"""The careful yes/no reader: the forms models write are read, and a reply naming neither or both is unparsed."""

import pytest

from savi_plugin.data.yes_no import parse_yes_no, yes_no_answer

READ = [
    ("Yes", "yes"), ("no", "no"), ("yes.", "yes"), ("NO!", "no"), ("Yes, there is a baby in the video.", "yes"),
    ("No, there is no doll.", "no"), ("**No**", "no"), ('"Yes"', "yes"), ("(no)", "no"), ("Assistant: yes", "yes"),
    ("Answer: No", "no"), ("yes<|im_end|>", "yes"), ("No</s>", "no"), ("Nope", "no"), ("Yeah, it does.", "yes"),
    ("The answer is no.", "no"), ("I would say yes.", "yes"), ("答案是否", "no"), ("Yes, so no problem here.", "yes"),
    ("  yes  ", "yes"), ("Yes - the man holds it.", "yes"),
]
UNPARSED = [
    ("", "empty"), ("   ", "empty"), ("There is a doll.", "none"), ("There is no doll in the video.", "none"),
    ("No idea.", "none"), ("No doubt it is red.", "none"), ("I cannot tell.", "none"), ("yesterday", "none"),
    ("Yes and no", "both"), ("yes or no", "both"), ("Yes/No", "both"), ("Yes. Wait, no.", "both"),
    ("No. Actually, yes.", "both"), ("Yes, but the answer is no.", "both"),
]


@pytest.mark.parametrize("text,answer", READ)
def test_reads_the_answer(text, answer):
    assert yes_no_answer(text) == answer


@pytest.mark.parametrize("text,method", UNPARSED)
def test_never_guesses(text, method):
    assert parse_yes_no(text).answer is None
    assert parse_yes_no(text).method == method


def test_not_a_string_is_unparsed():
    assert parse_yes_no(None).answer is None  # type: ignore[arg-type]

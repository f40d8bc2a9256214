"""Answer extraction for the multiple-choice video benchmarks: the forms models produce, and the
strings that must NOT be read as an answer (never a random or first-capital-letter guess)."""

import pytest

from savi_plugin.eval.answers import (
    extract_choice,
    format_mcq,
    format_options,
    option_letters,
    score,
    strip_option_prefix,
)

OPTIONS = ["the red circle", "the dog", "the blue square", "the green triangle", "none of the other options"]


@pytest.mark.parametrize("response, expected", [
    # letters in their common forms
    ("B", 1), ("(B)", 1), ("B.", 1), ("B)", 1), ("[B]", 1), ("  C  ", 2),
    ("Answer: B", 1), ("answer:B", 1), ("The answer is B", 1), ("The answer is B.", 1),
    ("The answer is (D) the green triangle.", 3), ("The correct option is C", 2), ("Best option: (B", 1),
    ("Best option:(E) none", 4),
    ("(C) the dog", None),  # the label contradicts the text after it (the dog is B): no option
    ("B. the dog", 1), ("E: none of the other options", 4),
    ("I think it is A.", 0), ("I think it's C", 2), ("I choose (D).", 3),
    ("The video shows a shape moving, so (B) is right.", 1),
    ("A\nBecause the circle is red.", 0), ("**C**", 2), ("<think>maybe A? or B?</think> D", 3),
    # lower case
    ("b", 1), ("(c)", 2), ("c) the blue square", 2), ("the answer is c", 2), ("answer: e", 4), ("The answer is b.", 1),
    # option text only
    ("the dog", 1), ("The Dog.", 1), ("dog", 1), ("I believe it shows the blue square moving", 2),
    ("green triangle", 3),
])
def test_extracts_the_chosen_option(response, expected):
    assert extract_choice(response, OPTIONS) == expected


@pytest.mark.parametrize("response", [
    "", "   ", "I see nothing", "I don't know",
    "A or B",                     # two options named
    "It is A or B.",
    "Option B and option C",      # ambiguous statement
    "I think so",                 # "I" is a capital letter but not an option
    "A large shape moves left",   # sentence-initial article "A" is not an answer
    "bearefter syvis A",          # a stray trailing capital (what a random model emits) is not an answer
    "The answer is F",            # F is not an option here
])
def test_unparseable_or_ambiguous_is_none(response):
    assert extract_choice(response, OPTIONS) is None


def test_none_is_scored_wrong_never_guessed():
    assert score(None, 0) == 0 and score(0, 0) == 1 and score(1, 0) == 0
    # the same unparseable response always gives None (no randomness)
    assert {extract_choice("no idea at all", OPTIONS) for _ in range(20)} == {None}


def test_letters_outside_the_option_range_are_ignored():
    three = ["left", "right", "up"]
    assert extract_choice("D", three) is None
    assert extract_choice("(C)", three) == 2
    assert extract_choice("The answer is D", three) is None


def test_option_text_prefers_the_longest_containing_option():
    options = ["red", "red and blue", "green"]
    assert extract_choice("it is red and blue", options) == 1
    assert extract_choice("red", options) == 0
    assert extract_choice("red or green", options) is None  # two unrelated options


def test_options_that_already_carry_labels():
    # lmms-lab/egoschema stores options as "A. text"
    labelled = ["A. c cleans the floor", "B. c cooks dinner", "C. c reads a book"]
    assert strip_option_prefix(labelled[1]) == "c cooks dinner"
    assert strip_option_prefix("B. text", "C") == "B. text"  # only the matching label is removed
    assert extract_choice("c cooks dinner", labelled) == 1
    assert format_options(labelled, "dot") == "A. c cleans the floor\nB. c cooks dinner\nC. c reads a book"


def test_prompt_format():
    prompt = format_mcq("Which way?", ["left", "right"], post_prompt="\nOnly give the best option.")
    assert prompt == "Question: Which way?\nOptions:\n(A) left\n(B) right\nOnly give the best option."
    assert option_letters(3) == "ABC"
    with pytest.raises(ValueError):
        option_letters(0)
    with pytest.raises(ValueError):
        extract_choice("A", [])


@pytest.mark.parametrize("response, expected", [
    # the forms of issue "Evaluation parity", each read as a careful grader reads it
    ("B, because the dog runs", 1), ("B is the correct answer", 1), ("Looking at the options, B is correct", 1),
    ("I'd say B", 1), ("答案是B", 1), ("选项B", 1), ("Option 2", 1),
    ("Probably B, but it could be D", 1),  # a pick with a weaker alternative: the pick (not the last letter)
    ("Maybe B, or it could be D", None), ("B or D", None),  # hedged between two options: never a guess
])
def test_issue_forms(response, expected):
    assert extract_choice(response, OPTIONS) == expected


def test_false_positives_are_unparsed():
    assert extract_choice("There is no correct option.", ["yes", "no"]) is None
    assert extract_choice("No.", ["yes", "no"]) == 1
    ego = ["c cleans the kitchen counter with a cloth and then puts the dishes into the sink",
           "c cleans the kitchen counter with a sponge before cooking", "c reads a book"]
    assert extract_choice("c cleans the kitchen counter with a cloth and then puts", ego) == 0  # cut by the limit
    assert extract_choice("c cleans the kitchen counter with a", ego) is None  # the beginning of two options

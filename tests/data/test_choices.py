"""The one multiple-choice parser (savi_plugin.data.choices) on a corpus of model answers graded by hand
(tests/fixtures/mcq_answer_corpus.json: clean letters, explanations, CJK, option numbers, hedges, negations,
option text, false positives, EgoSchema options cut by the token limit, markdown, lower case, number options,
JSON and ``<answer>`` tags, a repeated prompt, self-corrections, a label contradicting its text, EgoSchema's
subject ``C``, refusals around yes/no options, options that are letters, ordinals),
and the agreement of the references' own extractors on the same corpus (lmms-eval 0.7.3's MVBench, EgoSchema
and PerceptionTest rules; the official MVBench notebook's and RRPO's ``check_ans``)."""

from __future__ import annotations

import json
import random

import pytest
from lmms_eval.tasks.egoschema.utils import parse_multi_choice_response
from lmms_eval.tasks.mvbench.utils import mcq_acc

from savi_plugin.data.choices import LETTERS, parse_choice
from savi_plugin.eval.protocols import grade_official_mvbench, grade_rrpo_mvbench
from tests.builders import FIXTURES

CORPUS = json.loads((FIXTURES / "mcq_answer_corpus.json").read_text())


def _ours(response: str, options: list[str]) -> set[str]:
    index = parse_choice(response, options).index
    return set() if index is None else {LETTERS[index]}


def _lmms_mvbench(response: str, options: list[str]) -> set[str]:
    return {LETTERS[i] for i in range(len(options)) if mcq_acc(LETTERS[i], response)}


def _lmms_egoschema(response: str, options: list[str]) -> set[str]:
    letters = LETTERS[:len(options)]
    random.seed(0)  # lmms-eval picks a random option when nothing parses
    parsed, _ = parse_multi_choice_response(response, list(letters), dict(zip(letters, options)))
    return {parsed} & set(letters)


def _lmms_perceptiontest(response: str, options: list[str]) -> set[str]:
    import re

    match = re.search(r"\b([A-D])\b", response.strip())
    return {match.group(1)} & set(LETTERS[:len(options)]) if match else set()


def _by_grader(grade):
    return lambda response, options: {LETTERS[i] for i in range(len(options)) if grade(response, options, i)[0]}


EXTRACTORS = {
    "savi (data.choices)": _ours,
    "lmms-eval mvbench": _lmms_mvbench,
    "lmms-eval egoschema": _lmms_egoschema,
    "lmms-eval perceptiontest": _lmms_perceptiontest,
    "official mvbench check_ans": _by_grader(grade_official_mvbench),
    "rrpo check_ans": _by_grader(grade_rrpo_mvbench),
}


def agreement(extract) -> float:
    """Fraction of the corpus where the extractor reads exactly the hand-graded option (or nothing for unparsed)."""
    hits = sum(extract(row["response"], row["options"]) == ({row["expected"]} if row["expected"] else set())
               for row in CORPUS)
    return hits / len(CORPUS)


def test_corpus_is_large_and_varied():
    assert len(CORPUS) >= 150
    assert sum(row["expected"] is None for row in CORPUS) >= 30  # unparsed cases, false-positive traps included
    assert len({json.dumps(row["options"]) for row in CORPUS}) >= 6


@pytest.mark.parametrize("row", CORPUS, ids=lambda row: row["response"][:40] or "<empty>")
def test_each_answer_is_read_as_graded(row):
    assert _ours(row["response"], row["options"]) == ({row["expected"]} if row["expected"] else set())


def test_references_agree_less_than_the_careful_parser():
    scores = {name: agreement(extract) for name, extract in EXTRACTORS.items()}
    print("\n".join(f"{name}: {100 * score:.1f}%" for name, score in scores.items()))
    assert scores["savi (data.choices)"] == 1.0
    assert all(score < 0.9 for name, score in scores.items() if name != "savi (data.choices)")


# ------------------------------------------------------------------------------------------ generated classes
FIVE = ["The man opens the door.", "The man closes the window.", "The woman sits down.", "The dog runs away.",
        "The cat sleeps on the sofa."]
#: each class of reply that names one option, as a template of its label (``{L}``) or its position (``{N}``)
NAMING = {
    "quoted": ["'{L}'", '"{L}"', "<{L}>", "{{{L}}}", "“{L}”", "‘{L}’", "「{L}」", "The answer is '{L}'.",
               'Answer: "{L}"', "I choose <{L}>."],
    "chat remnants": ["{L}<|endoftext|>", "{L}<|im_end|>", "{L}</s>", "Assistant: {L}", "ASSISTANT: ({L})",
                      "GPT: {L}.", "<|im_start|>assistant\n{L}", "[/INST] {L}", "Assistant:\n{L}<|eot_id|>"],
    "ans": ["Ans: {L}", "Ans. {L}", "ans - {L}", "ANS: ({L})"],
    "ordinals": ["the {N}", "{N} option", "The answer is the {N} one.", "I'd pick the {N} choice."],
    "languages": ["La respuesta es {L}", "La respuesta correcta es la opción {L}.", "La réponse est {L}.",
                  "C'est l'option {L}.", "Die Antwort ist {L}.", "Die richtige Antwort lautet {L}.",
                  "A resposta é {L}.", "A resposta correta é a alternativa {L}.", "La risposta è {L}.",
                  "Ответ: {L}", "Правильный ответ — {L}.", "答えは{L}です。", "正解：{L}", "{L}です",
                  "정답은 {L}입니다.", "{L}입니다", "답: {L}"],
    "chinese": ["选{L}", "应该选{L}。", "正确答案是{L}", "我选择{L}", "{L}选项最合适", "答：{L}", "{L}是正确的"],
}
SUFFIX = {1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 5: "5th"}
NAMING_CASES = [(cls, t, k) for cls, templates in NAMING.items() for t in templates for k in range(len(FIVE))
                if not (cls == "quoted" and LETTERS[k] in "AI" and t in ("'{L}'", "‘{L}’"))]


@pytest.mark.parametrize("cls, template, k", NAMING_CASES)
def test_every_class_of_naming_reply_reads_its_option(cls, template, k):
    reply = template.format(L=LETTERS[k], N=SUFFIX[k + 1])
    assert parse_choice(reply, FIVE).index == k, (cls, reply)


@pytest.mark.parametrize("reply", ["B C", "(A)(C)", "A, D.", "[B] [E]", "B/D", "(C) (D)", "'B' 'C'",
                                   "B<|endoftext|> C", "Assistant: A C"])
def test_a_reply_of_several_labels_names_no_option(reply):
    choice = parse_choice(reply, FIVE)
    assert choice.index is None and choice.method == "ambiguous", (reply, choice)


@pytest.mark.parametrize("reply, expected", [
    ("He closed it.", 1), ("closing", 1), ("It opened.", 0),        # one word sets the option apart
    ("He did not close it.", None), ("The door", None),              # negated; shared words only
    ("Es la B", 1), ("The answer: <b>B</b>", 1),
    ("The word 'a' is not an option", None),                        # lower-case quoted letter in running text
])
def test_short_paraphrases_and_markup(reply, expected):
    options = ["The man opens the door.", "The man closes the door.", "The man paints the door."]
    assert parse_choice(reply, options).index == expected, reply


#: replies that discuss several options and then commit to one, as templates of the picked label ``{L}`` and two
#: others ``{X}``, ``{Y}``
COMMITTING = [
    "The man is at the door, i.e., {L}.", "He is clearly moving away — {L}.", "The motion matches the video, which "
    "corresponds to {L}.", "Option {X} would need another person. Option {Y} is unlikely. So the answer is ({L}).",
    "At first {X} seems right, because the door is visible. However nothing opens it. So the answer is {L}.",
    "Between {X} and {L}, {L} is correct.", "Options {X} and {L} are close, but the correct one is {L}.",
    "{X} and {Y} can be ruled out; the answer is {L}.", "Not {X} or {Y} — it's {L}.",
    "The correct answer is ~~{X}~~ {L}.", "{X} is tempting. Therefore {L}.",
    "Options {X} and {Y} do not match.\n\nAnswer: {L}", "<option>{L}</option>", "=> {L}", "Opt. {L}",
    "Options {X} and {L} are plausible, but {L} is the best answer.",
    "{X}. Oops, I miscounted — it is {L}.", "{X}. The man\n\nHmm, I was mistaken. Looking again: {L}",
    "Option {X}: ❌\nOption {L}: ✅\nOption {Y}: ❌", "{X}) one - too few.\n{L}) two - correct.\n{Y}) three - no.",
    "{X}) one - possible.\n{L}) two - possible.\n{Y}) three - no.\nSo the answer is {L}.",
]
#: replies that take their pick back or offer two, as templates
NOT_COMMITTING = [
    "{L} — actually, let me reconsider. It could be {X} or {L}; I can't tell.", "{L}. Oops, I miscounted.",
    "{L}) one - too few.\n{X}) two - possible.\n{Y}) three - possible.", "{L}. Walking: No.\n{X}. Running: No.",
    "{L}. Wait, actually I'm not sure.", "{L} — no, sorry, I can't tell.", "Possibly {L}, but {X} is just as likely.",
    "Either the first or the second option.", "So it is {L} or {X}.", "{X} and {L} are both plausible.",
    "{L}. Hmm, or maybe not.", "The answer is {L}. On second thought, I retract that.", "答案是{L}或者{X}。",
    "{L}? {X}?", "Neither the first nor the third.", "The answer is {L}. The answer is {X}.",
    "Let's analyze each option. Option {L} says \"the man opens the door\". This does not seem to",
]


def _three(k: int) -> dict[str, str]:
    return {"L": LETTERS[k], "X": LETTERS[(k + 1) % 5], "Y": LETTERS[(k + 2) % 5]}


@pytest.mark.parametrize("template, k", [(t, k) for t in COMMITTING for k in range(5) if LETTERS[k] not in "AI"])
def test_a_reply_that_concludes_with_one_option_is_that_option(template, k):
    reply = template.format(**_three(k))
    assert parse_choice(reply, FIVE).index == k, reply


@pytest.mark.parametrize("template, k", [(t, k) for t in NOT_COMMITTING for k in range(5)])
def test_a_reply_that_takes_back_or_splits_its_pick_names_none(template, k):
    reply = template.format(**_three(k))
    assert parse_choice(reply, FIVE).index is None, reply


def test_an_echoed_question_and_instruction_before_the_pick_are_set_aside():
    reply = ("What does the man do?\n" + "\n".join(f"{c}. {o}" for c, o in zip(LETTERS, FIVE))
             + "\nAnswer with the option's letter from the given choices directly.\nC")
    assert parse_choice(reply, FIVE).index == 2


@pytest.mark.parametrize("reply, options, expected", [
    ("<output>\n<choice>C</choice>\n<rationale>He waves.</rationale>\n</output>", ["x", "y", "z"], 2),  # other tags
    ("### Final answer\n> **B**", ["x", "y", "z"], 1),                # a markdown quote
    ("<think>\nShe drives away. So no.\n</think>", ["Yes", "No"], 1),  # nothing but reasoning: its conclusion
    ("La respuesta correcta es la C.", ["x", "y", "z"], 2), ("Die Antwort ist die B.", ["x", "y", "z"], 1),
    ("CCCCCCCCCCCCCCCC", ["x", "y", "z"], 2), ("Not A, not B, definitely C.", ["x", "y", "z"], 2),
    ("Absolutely, she waves.", ["Yes", "No"], 0), ("Not at all. It never enters.", ["Yes", "No"], 1),
    ("Absolutely not.", ["Yes", "No"], 1), ("Of course.", ["Yes", "No"], 0),
    ("He seems puzzled.", ["He is angry", "He is confused"], 1), ("The cop.", ["The child", "The police officer"], 1),
    ("It decelerates until it stops.", ["Speeding up", "Slowing down", "Constant speed"], 1),
    ("The shot gets wider as the camera pulls back.", ["The camera zooms in", "The camera zooms out"], 1),
    ("Both move at an equal pace.", ["Faster", "Slower", "The same speed"], 2),
    ("About twenty people.", ["10", "20", "30"], 1), ("Roughly twenty-five.", ["15", "25", "35"], 1),
    ("Approximately two and a half meters.", ["1.5 meters", "2 meters", "2.5 meters"], 2),
    ("There are 3 red balls and 2 blue balls, so in total 5 balls.", ["3", "4", "5"], 2),
    ("Could be A or C given the weather, but the leaves make me lean toward C.", ["x", "y", "z"], 2),
    ("Either B or C could be true, but since he is cuffed, B is the most likely answer.", ["x", "y", "z"], 1),
    ("A and C are both correct, but the main setting is Paris: A.", ["Paris", "London", "Rome"], 0),
    ("B or C, but I'm not sure which answer.", ["x", "y", "z"], None),
    ("A. Left - no\nB. Right", ["Left", "Right"], None),                # "Right" is B's text, not a verdict
    ("A. Left: no\nB. Right: yes", ["Left", "Right"], 1), ("Both", ["Running", "Jumping", "Both running and jumping"], 2),
    ("The woman wearing red", ["The man in the blue shirt", "The man in the red shirt", "The woman in the blue shirt",
                               "The woman in the red shirt"], 3),
    ("The woman wearing blue jeans", ["The man in the blue shirt", "The man in the red shirt", "The woman in the "
                                      "blue shirt", "The woman in the red shirt"], None),  # two words of its own
    ("It points up, then to the right. So the final direction is right.", ["Left", "Right", "Up"], 1),
    ("So 3 or 4.", ["3", "4", "5"], None), ("The man opens the door, or maybe the window.",
                                            ["The man opens the door", "The woman opens the window"], None),
    ("He hides the gift without opening it.", ["He opens the gift", "He hides the gift"], 1),  # "without" negates its own clause
    ("The jersey has the letter D printed on it.", ["D", "E", "A", "C", "B"], 0),
    ("The 1st option.", ["0", "1", "2", "3"], 0),        # an ordinal is a position, even among number options
    ("Option 2", ["0", "1", "2", "3"], None),           # the second option, or the one whose text is 2
    ("Option 3 (Bathroom)", ["Kitchen", "Bathroom", "Garage"], None),  # the position and the text disagree
    ("In the first frame, C holds a knife. In the second frame, C", ["C cuts bread", "C eats bread", "C runs"], None),
])
def test_letter_and_number_options(reply, options, expected):
    assert parse_choice(reply, options).index == expected


# ------------------------------------------------------------------------------------------ blind corpora
#: corpora written blind (their authors never saw the parser, its tests or docs; rules first, labels by hand,
#: frozen by sha256 before any parser ran): C, 420 answers (first look 92.9%), D, 400 answers (first look 87.5%),
#: E, 400 answers (sha256 c0114a69..., first look 91.2%: 365 agree, 2 wrong options, 23 missed, 10 credited where
#: the grader credits none; the parser with the lexicon rule of C/D's round, before E was read: 92.5%, 2 wrong,
#: 17 missed, 11 credited where none), F, 400 answers (sha256 0f0bd692...): first look 354/400 = 88.5% (5 wrong
#: options, 4 credited where none), then used for tuning. All were then used to find classes the parser missed, so
#: they are regression corpora now, not held-out ones. G, 300 answers (sha256 e3e74697...) written to the
#: distribution of real evaluation logs, is held out: nobody working on the parser read it; it was scored twice,
#: after E's round (295/300, 0 wrong options, 1 credited where none) and after F's (297/300, 0 and 0), and is kept
#: here so that later rounds cannot lose what it measured. Pass 24 (rules written for its own blind corpus, below)
#: reads 298/300: the third of G's then unread answers, an echoed instruction with the answer after it on its line;
#: G's unread answers were printed while checking that pass, so G is no longer wholly unread.
BLIND = {"mcq_blind_corpus_c.jsonl": 420 / 420, "mcq_blind_corpus_d.jsonl": 400 / 400,
         "mcq_blind_corpus_e.jsonl": 400 / 400, "mcq_blind_corpus_f.jsonl": 393 / 400,
         "mcq_blind_corpus_g.jsonl": 298 / 300}


@pytest.mark.parametrize("name", sorted(BLIND))
def test_blind_corpora_never_a_wrong_option_and_agreement_kept(name):
    items = [json.loads(line) for line in (FIXTURES / name).read_text(encoding="utf-8").splitlines() if line]
    agree, wrong = 0, []
    for item in items:
        index = parse_choice(item["response"], item["options"]).index
        got = None if index is None else LETTERS[index]
        agree += got == item["expected"]
        if got is not None and got != item["expected"]:  # a wrong option, or a pick where a grader sees none
            wrong.append((item["id"], item["response"][:60], item["expected"], got))
    print(f"{name}: {agree}/{len(items)} read as graded")
    assert wrong == []
    assert agree / len(items) >= BLIND[name], f"{agree}/{len(items)}"


#: pass 24: 112 answers to one five-option question written blind with their labels (the file's header says by whom),
#: one label retracted by its author. Scored before this pass's parser work: 104/112 read as labelled, 0 wrong picks;
#: after it ("Letter B.", an echoed instruction and its answer, "I would choose A over B", "Answer is 2", "I'm torn
#: between A and B; I'll say A.", "(B) or (C)? (C)."): 110/112, 0 wrong picks.
P24 = json.loads((FIXTURES / "mcq_blind_corpus_p24.json").read_text(encoding="utf-8"))
#: answers the tester reads as one option that the parser leaves unparsed, and why that is the right call here
P24_UNREAD = {
    "p24a33": "'The cat (A) is not present; I see a dog.': without the question it is ambiguous: for 'which animal "
              "appears?' it is B, for 'which one is not present?' it is A; the parser does not know the question",
    "p24b03": "'A cat and a dog both appear, but the question asks about the first: a cat.': it states two options "
              "as present and settles on one by what the question asks, with no answer cue before 'a cat'; a pick "
              "after 'but' is read only at an answer cue (answer, pick, best, final ...), so that a reply that goes on "
              "describing after 'but' is not taken for a pick",
}


def test_blind_corpus_p24_never_a_wrong_pick_and_read_rate_kept():
    options, items = P24["options"], P24["items"]
    assert len(items) == 112 and set(P24_UNREAD) <= {item["id"] for item in items}
    agree, wrong, unread = 0, [], []
    for item in items:
        index = parse_choice(item["response"], options).index
        got = None if index is None else LETTERS[index]
        agree += got == item["expected"]
        if got is not None and got != item["expected"]:  # a wrong pick is worse than an unparsed answer
            wrong.append((item["id"], item["response"], item["expected"], got))
        if got != item["expected"] and got is None:
            unread.append(item["id"])
    print(f"mcq_blind_corpus_p24.json: {agree}/{len(items)} read as labelled")
    assert wrong == []
    assert sorted(unread) == sorted(P24_UNREAD)  # each unparsed answer is one the parser is meant to leave
    assert agree == len(items) - len(P24_UNREAD) == 110


#: pass 24's rules beside the replies they must leave alone: a letter seen in the video, an instruction whose
#: example letter is no answer, an option passed over, a hedge or a question left open, a number that may be a count
@pytest.mark.parametrize("reply, options, expected", [
    ("Letter B.", FIVE, 1), ("letter c", FIVE, 2), ("Letter B is written on the wall.", FIVE, None),
    ("The letter B is on the sign.", FIVE, None),
    ("Answer with the option's letter from the given choices directly. A", FIVE, 0),
    ("Only give the best option. Best option: (D", FIVE, 3),
    ("Answer with the option's letter, e.g. A.", FIVE, None), ("Answer with the option's letter directly.", FIVE, None),
    ("I would choose A over B.", FIVE, 0), ("I would choose B over A.", FIVE, 1), ("I'd pick C rather than D.", FIVE, 2),
    ("A over B", FIVE, None),
    ("I'm torn between A and B; I'll say A.", FIVE, 0), ("B or D. My final answer is D.", FIVE, 3),
    ("I'm torn between A and B.", FIVE, None), ("I'm torn between A and B. Maybe B.", FIVE, None),
    ("B or D; I would say D, but maybe B.", FIVE, None),
    ("(B) or (C)? (C).", FIVE, 2), ("B or C? C", FIVE, 2), ("B or C? Maybe C.", FIVE, None),
    ("A or B? Not sure.", FIVE, None), ("Is it A or B? Neither: C.", FIVE, None),
    ("Answer is 2", FIVE, 1), ("The answer: 3.", FIVE, 2), ("Answer is 7", FIVE, None), ("2", FIVE, None),
    ("Answer is 2", ["one", "two", "three"], 1), ("Answer is 2", ["two", "three", "one"], 0),   # the count, not the place
    ("Answer is 2", ["none", "a few", "many"], None), ("Answer is 2", ["one dog", "a cat", "a bird"], None),
])
def test_pass_24_rules_and_their_traps(reply, options, expected):
    assert parse_choice(reply, options).index == expected, reply


# ------------------------------------------------------------------------------------------ generated: negated labels
ANIMALS = ["a cat", "a dog", "a red car", "the man is running", "none of the above"]
#: every way of negating a label that choice_labels' negation rule set names, as templates of the label ``{L}`` (and
#: of a second label ``{M}`` negated with it)
NEGATIONS = ["not {L}", "never {L}", "no longer {L}", "it isn't {L}", "it's not {L}", "it wasn't {L}", "it cannot be {L}",
             "it can't be {L}", "it is not option {L}", "I would rule out {L}", "I exclude {L}", "I'd eliminate {L}",
             "I would not pick {L}", "I wouldn't pick {L}", "I wouldn't choose {L}", "I would never choose {L}",
             "I would never select {L}", "I wouldn't say {L}", "I would not go with {L}", "I don't think it's {L}",
             "I would not choose {L} over the others", "{L} does not appear", "{L} doesn't occur", "{L} does not show up",
             "{L} never happens", "{L} isn't shown", "({L}) is not present", "{L} wasn't seen", "{L} aren't there",
             "{L} cannot be right", "{L} can't be it", "{L} is absent", "{L} is missing", "{L} is wrong",
             "{L} is incorrect", "{L} can be ruled out", "{L} is no longer visible", "option {L} does not happen",
             "the cat ({L}) does not appear", "{L} and {M} don't appear", "{M}, {L} are wrong", "{L} or {M} isn't shown"]
#: where the negation stands: the start of the reply, its middle, after a clause
PLACES = ["{N}.", "Looking at the video, {N}, as far as I can tell.", "I watched it twice and {N}."]
#: a positive pick of another label beside the negation (none; after it; before it; a contrast)
PICKS = ["{R}", "{R} The answer is {P}.", "The answer is {P}; {r}", "{R} I'd say {P}.", "{R} {P} is correct.",
         "{R0}; {P} does."]


@pytest.mark.parametrize("negation", NEGATIONS)
@pytest.mark.parametrize("place", PLACES)
def test_a_negated_label_is_never_picked(negation, place):
    """Every negation of a label, at every place in the reply, for every label: the label is never credited; a pick
    of another label stated beside it is that label (``"A does not appear; B does."`` is B)."""
    for k, label in enumerate(LETTERS[:5]):
        other = LETTERS[(k + 1) % 5]
        said = place.format(N=negation.format(L=label, M=LETTERS[(k + 3) % 5]))
        said = said[0].upper() + said[1:]
        own = said if said.startswith(("I ", "I'")) else said[0].lower() + said[1:]
        for pick in PICKS:
            reply = pick.format(R=said, r=own, R0=said.rstrip("."), P=other)
            expected = None if pick == "{R}" else LETTERS.index(other)
            assert parse_choice(reply, ANIMALS).index == expected, reply


@pytest.mark.parametrize("reply, expected", [
    ("The cat (A) does not appear; I see a dog.", None), ("B does not appear in the video.", None),
    ("I wouldn't pick A.", None), ("I would never choose A.", None), ("I would not choose A over B.", None),
    ("It is not A.", None), ("A is not present.", None), ("A does not appear; B does.", 1),
    ("A does not appear, but B does.", 1), ("I would choose A over B.", 0), ("Not sure, but I'd pick A.", 0),
    ("I don't know, A.", 0), ("A man doesn't run; the answer is C.", 2),
    ("A and B don't appear.", None), ("Options A and B are absent.", None), ("A or B isn't shown.", None),
    ("A and B do not appear; C does.", 2), ("B, C and D are wrong, so the answer is A.", 0),
    ("I pick B, and C is wrong.", 1),
    # the replay tester's other negations in other words (R2, new cases): each read as the label it rejects before
    ("The answer cannot be A.", None), ("I don't think it's A.", None), ("I do not believe the answer is B.", None),
    ("Unlikely to be C.", None), ("A? No.", None), ("A would be wrong.", None), ("It's not likely to be A.", None),
    ("I doubt it's A; B.", 1), ("A? No. B.", 1), ("Is it A? No, it is B.", 1), ("B? Yes.", 1),
    ("It is likely A.", 0), ("Likely B.", 1),
])
def test_negations_a_replay_tester_read(reply, expected):
    """The replies a blind replay tester found credited although they negate the label, lists of labels negated
    together, and picks that a negation beside them leaves standing."""
    assert parse_choice(reply, ANIMALS).index == expected, reply


# ------------------------------------------------------------------------------------------ generated: every notation
#: the ways a reply writes one label, as templates of the label (``{L}``) and its lower case (``{l}``)
NOTATIONS = ["{L}", "({L})", "{L}.", "{L})", "[{L}]", '"{L}"', "`{L}`", "«{L}»", "【{L}】", "<{L}>", "{{{L}}}",
             "**{L}**", "\\boxed{{{L}}}", "$\\boxed{{{L}}}$", "### Final Answer\n\\boxed{{{L}}}", "{l}", "({l})",
             "Answer: {L}", "The answer is {L}.", "Best option: ({L})", "Final answer: {L}", '{{"answer": "{L}"}}',
             "<answer>{L}</answer>", "- {L}", "{L}<|im_end|>", "ASSISTANT: {L}", "Answer: {L}\n\nQuestion: Which "
             "one?\nAnswer: E", "{L}<|im_end|><|im_start|>user\nAnd now?<|im_end|><|im_start|>assistant\nE",
             "{L} {L} {L} {L}", "{l}, {l}, {l}"]


@pytest.mark.parametrize("n", [2, 3, 4, 5])
@pytest.mark.parametrize("notation", NOTATIONS)
def test_every_notation_names_its_label_for_every_option_count(notation, n):
    options = FIVE[:n]
    for k in range(n):
        reply = notation.format(L=LETTERS[k], l=LETTERS[k].lower())
        assert parse_choice(reply, options).index == k, (reply, n)
    beyond = notation.format(L=LETTERS[n], l=LETTERS[n].lower())  # a label the question does not have
    assert parse_choice(beyond, options).index is None, (beyond, n)


#: "the answer is X" and "I choose X" in the languages the parser reads, and look-alike Cyrillic capitals
ANSWER_IS = ["La respuesta es {L}", "La respuesta correcta es la opción {L}.", "La réponse est {L}.", "Réponse : {L}",
             "Die Antwort ist {L}.", "Antwort: ({L})", "A resposta é {L}.", "A resposta correta é a letra {L}.",
             "La risposta è {L}.", "Het antwoord is {L}.", "Ответ: {L}", "Правильный ответ — {L}.", "答えは{L}です。",
             "正解：{L}", "정답은 {L}입니다.", "정답: {L}", "答案是{L}", "答案：{L}", "الإجابة هي {L}", "उत्तर: {L}",
             "Cevap: {L}", "Đáp án là {L}", "Jawabannya adalah {L}", "Odpowiedź: {L}", "Svaret är {L}",
             "Je choisis {L}.", "Ich wähle {L}.", "Eu escolho a {L}.", "Elijo la {L}.", "Scelgo {L}.", "Выбираю {L}",
             "我选{L}", "I'd lean towards {L}.", "My best guess is {L}.", "I guess... {L}?", "I would go with {L}."]
CYRILLIC = {"A": "А", "B": "В", "C": "С", "E": "Е"}


@pytest.mark.parametrize("template", ANSWER_IS)
def test_every_language_states_every_label(template):
    for k in range(5):
        reply = template.format(L=LETTERS[k])
        assert parse_choice(reply, FIVE).index == k, reply
        if LETTERS[k] in CYRILLIC and "{L}" in template and ("Ответ" in template or "Выбираю" in template):
            lookalike = template.format(L=CYRILLIC[LETTERS[k]])
            assert parse_choice(lookalike, FIVE).index == k, lookalike


#: replies that give two options, as templates of two different labels
TWO_OPTIONS = ["{X} or {Y}", "{X} and {Y}", "({X})({Y})", "{X}/{Y}", "{X}, {Y}", "{X}\n{Y}", "Answer: {X}. Answer: {Y}.",
               "{X}\nThe correct answer is {Y}.", '{{"answer": ["{X}", "{Y}"]}}', "Either {X} or {Y}",
               "- [x] {X}\n- [x] {Y}", "The answer is ({X}).\n\nTherefore, the answer is ({Y}).", "Answer: {X}, {Y}",
               "答案是{X}或{Y}", "Answer: {X} (see above). So the correct choice is {Y}."]


@pytest.mark.parametrize("template", TWO_OPTIONS)
def test_two_options_are_never_credited(template):
    for x in range(5):
        for y in range(5):
            if x != y:
                reply = template.format(X=LETTERS[x], Y=LETTERS[y])
                assert parse_choice(reply, FIVE).index is None, reply


#: a label with a description: of its own option (credited) or of another (a contradiction)
DESCRIBED = ["{L}. {text}", "Answer: {L}, {text}", "The answer is {L}: {text}", "({L}) {text}"]


@pytest.mark.parametrize("template", DESCRIBED)
def test_a_label_with_another_options_text_is_a_contradiction(template):
    options = ["Picking up the cup", "Putting down the cup", "Pouring water into the cup", "Washing the cup"]
    for k in range(4):
        for j in range(4):
            reply = template.format(L=LETTERS[k], text=options[j].lower())
            assert parse_choice(reply, options).index == (k if j == k else None), reply


def test_a_marked_list_chooses_the_one_marked():
    options = ["Basketball", "Soccer", "Tennis", "Volleyball"]
    for k in range(4):
        boxes = "\n".join(f"- [{'x' if i == k else ' '}] {LETTERS[i]}" for i in range(4))
        verdicts = "\n".join(f"({LETTERS[i]}) {o} - {'yes' if i == k else 'no'}" for i, o in enumerate(options))
        assert parse_choice(boxes, options).index == k, boxes
        assert parse_choice(verdicts, options).index == k, verdicts


# ------------------------------------------------------------------------------------------ generated: content
DOOR = ["the man opens the door", "the man closes the door", "the man knocks on the door", "the man locks the door"]
#: each option of DOOR said in nine languages
DOOR_SAID = {
    0: ["El hombre abre la puerta.", "L'homme ouvre la porte.", "Der Mann öffnet die Tür.", "O homem abre a porta.",
        "L'uomo apre la porta.", "Мужчина открывает дверь.", "男人打开了门。", "男性がドアを開けます。", "남자가 문을 엽니다."],
    1: ["El hombre cierra la puerta.", "L'homme ferme la porte.", "Der Mann schließt die Tür.", "O homem fecha a porta.",
        "L'uomo chiude la porta.", "Мужчина закрывает дверь.", "男人关上了门。", "男性がドアを閉めます。", "남자가 문을 닫습니다."],
    2: ["El hombre golpea la puerta.", "L'homme frappe à la porte.", "Der Mann klopft an die Tür.",
        "O homem bate na porta.", "L'uomo bussa alla porta.", "Мужчина стучит в дверь.", "男人在敲门。",
        "男性がドアをノックします。", "남자가 문을 두드립니다."],
    3: ["El hombre cierra la puerta con llave.", "L'homme verrouille la porte.", "Der Mann schließt die Tür ab.",
        "O homem tranca a porta.", "L'uomo chiude a chiave la porta.", "Мужчина запирает дверь.", "男人把门锁上了。",
        "男性がドアに鍵をかけます。", "남자가 문을 잠급니다."],
}
#: the first option denied in the same languages: no option
DOOR_DENIED = ["El hombre no abre la puerta.", "L'homme n'ouvre pas la porte.", "Der Mann öffnet die Tür nicht.",
               "O homem não abre a porta.", "L'uomo non apre la porta.", "Мужчина не открывает дверь.", "男人没有开门。",
               "男性はドアを開けません。", "남자는 문을 열지 않습니다."]


@pytest.mark.parametrize("k", range(4))
def test_an_option_said_in_another_language_is_that_option(k):
    for reply in DOOR_SAID[k]:
        assert parse_choice(reply, DOOR).index == k, reply


@pytest.mark.parametrize("reply", DOOR_DENIED)
def test_an_option_denied_in_another_language_is_no_option(reply):
    assert parse_choice(reply, DOOR).index is None


#: English words for each option's action, and for its subject
VERBS = {0: ["opens", "is opening", "opened"], 1: ["shuts", "closes", "is shutting", "closed"],
         2: ["knocks on", "taps on", "is knocking on", "raps his knuckles on"], 3: ["locks", "is locking"]}


@pytest.mark.parametrize("k", range(4))
def test_a_paraphrase_is_its_option_and_a_changed_one_is_none(k):
    for verb in VERBS[k]:
        for subject in ("He", "The man", "The guy", "A gentleman"):
            assert parse_choice(f"{subject} {verb} the door.", DOOR).index == k, (subject, verb)
        assert parse_choice(f"The woman {verb} the door.", DOOR).index is None, verb    # another subject
        assert parse_choice(f"He {verb} the window.", DOOR).index is None, verb         # another object
        assert parse_choice(f"Nobody {verb} the door.", DOOR).index is None, verb       # denied


def test_events_told_in_order_choose_the_option_with_that_order():
    options = ["He opens the door, then turns on the light", "He turns on the light, then opens the door",
               "He opens the door and leaves"]
    for reply, expected in [("First he opens the door and after that he switches the light on.", 0),
                            ("He switches the light on and then opens the door.", 1),
                            ("He turns on the light after opening the door.", 0),
                            ("After turning on the light, he opens the door.", 1),
                            ("He opens the door before turning on the light.", 0)]:
        assert parse_choice(reply, options).index == expected, reply


@pytest.mark.parametrize("reply", ["counter-clockwise", "Counter clockwise.", "anti-clockwise", "anticlockwise",
                                   "It spins counter-clockwise.", "It turns anti clockwise."])
def test_counter_clockwise_is_never_clockwise(reply):
    assert parse_choice(reply, ["clockwise", "counterclockwise", "it does not rotate"]).index == 1
    assert parse_choice(reply, ["clockwise", "counter-clockwise", "it does not rotate"]).index == 1


@pytest.mark.parametrize("reply, expected", [
    (word, 0) for word in ("Yes.", "Yeah", "Sí.", "Oui", "Ja, er läuft.", "Да", "是的", "はい", "네", "Evet")] + [
    (word, 1) for word in ("No, he doesn't.", "Nope.", "Non.", "Nein.", "Não", "Нет", "不是", "いいえ", "아니요")] + [
    ("No idea.", None), ("Sure, please upload the video.", None), ("Yes and no.", None)])
def test_a_yes_or_a_no_in_any_language(reply, expected):
    assert parse_choice(reply, ["Yes", "No"]).index == expected


@pytest.mark.parametrize("reply, expected", [
    ("drei", 2), ("Hay tres personas.", 2), ("Il y a trois personnes.", 2), ("三个人", 2), ("三人です。", 2),
    ("I count 2 men and 1 woman, so 3.", 2), ("Not 2, it's 3.", 2), ("There are 3 people in 2 rooms", None),
    ("2 or 3? So 3.", 2), ("3 or maybe 4", None)])
def test_a_count_in_words_of_any_language_or_concluded(reply, expected):
    assert parse_choice(reply, ["1", "2", "3", "4", "5"]).index == expected


def test_a_label_closing_a_description_and_words_that_are_english_too():
    cup = ["Picking up the cup", "Putting down the cup", "Pouring water into the cup", "Washing the cup"]
    for k in range(4):
        assert parse_choice(f"At the end the cup is placed on the table. {LETTERS[k]}", cup).index == k
    assert parse_choice("Pouring", cup).index == 2          # "pour" is English, not French "pour"
    assert parse_choice("The person is washing and then pouring.", cup).index is None


@pytest.mark.parametrize("reply, expected", [
    ("In the room", None), ("In the living room, near the sofa", 2), ("bedroom", 3), ("en la cocina", None),
    ("It goes to the left.", None), ("It is somewhere inside.", None)])
def test_a_word_too_general_does_not_stand_for_an_option(reply, expected):
    assert parse_choice(reply, ["in the kitchen", "in the garden", "in the living room", "in the bedroom"]).index == expected


def test_an_answer_someone_might_give_is_not_a_statement():
    for k in range(5):
        other = LETTERS[(k + 2) % 5]
        reply = f"Some might say the answer is {other}, but the answer is {LETTERS[k]}."
        assert parse_choice(reply, FIVE).index == k, reply
        reply = f"One could argue the answer is {other}. However, the answer is {LETTERS[k]}."
        assert parse_choice(reply, FIVE).index == k, reply


#: corpus H, written blind and frozen before the parser ran on it (pass 24): the parser's two wrong picks on it, as
#: measured then, each a reply whose first letter is not its answer
H = json.loads((FIXTURES / "mcq_blind_corpus_h.json").read_text(encoding="utf-8"))
H_WRONG = {
    "h065": "'A is the answer I would have picked at first, but ... I'm confident it's B.': read as A, its opening",
    "h308": "'C fries eggs.' (EgoSchema, C the camera wearer): read as the letter C; the human credits E, 'C fries eggs'",
}


def _h_scores(pick, corpus: dict = H) -> dict:
    """How a parser ``pick(reply, options) -> set of letters`` agrees with a corpus' human labels (corpus H unless
    told; one letter is a pick; none, or several, is no pick)."""
    agree, wrong, picked_none = 0, set(), 0
    for item in corpus["items"]:
        letters, expected = pick(item["answer"], item["options"]), item["expected"]
        got = LETTERS.index(next(iter(letters))) if len(letters) == 1 else None
        agree += got == expected
        if got is not None and expected is not None and got != expected:
            wrong.add(item["id"])
        picked_none += expected is None and got is not None
    return {"agree": agree, "wrong": wrong, "picked_where_none": picked_none}


def _corpus_floors(corpus: dict, name: str, size: int, no_credit: int, *, agree: int, wrong: set,
                   picked_where_none: int, ahead_by: int) -> None:
    """A frozen blind corpus' regression floor: its size and no-credit count as frozen, ours exactly at the recorded
    agreement, wrong picks and no-credit picks, and ahead of both lmms-eval scorers by at least ``ahead_by``."""
    assert len(corpus["items"]) == size and sum(item["expected"] is None for item in corpus["items"]) == no_credit
    ours, mvbench, egoschema = (_h_scores(f, corpus) for f in (_ours, _lmms_mvbench, _lmms_egoschema))
    for who, s in [("savi", ours), ("lmms-eval mvbench", mvbench), ("lmms-eval egoschema", egoschema)]:
        print(f"corpus {name}, {who}: agrees {s['agree']}/{size}, wrong picks {len(s['wrong'])}, "
              f"credits {s['picked_where_none']}/{no_credit} replies that credit none")
    assert ours["wrong"] == wrong
    assert ours["picked_where_none"] == picked_where_none
    assert ours["agree"] == agree
    assert ours["agree"] > max(mvbench["agree"], egoschema["agree"]) + ahead_by


def test_blind_corpus_h_agrees_with_its_grader_more_than_lmms_eval_s_own_parsers():
    """Corpus H (310 replies, 45 a grader credits no option): ours never credits a reply the grader credits none of,
    its wrong picks are the two measured when it was frozen, and it agrees with the grader on 275 of 310 replies,
    where lmms-eval's own MVBench and EgoSchema scorers, run on the same replies, agree on far fewer (they pick on
    a hedge, and EgoSchema's picks at random where it reads nothing)."""
    _corpus_floors(H, "H", 310, 45, agree=275, wrong=set(H_WRONG), picked_where_none=0, ahead_by=100)


COUNTS = ["1 time", "2 times", "3 times", "4 times"]
SHAPES = ["a cube", "a sphere", "a cone", "a pyramid"]
LETTER_OPTIONS = ["D", "B", "A", "C"]


#: corpus I's wrong picks and picks where a grader credits none, as general rules, each beside replies it must leave
#: alone: a position counted from the end; a reply that scores every option; a hedge between two options; a letter
#: whose stated content is another option
@pytest.mark.parametrize("reply, options, expected", [
    ("I'd go with the second-to-last option.", FIVE, 3), ("second last one", FIVE, 3), ("Penultimate.", FIVE, 3),
    ("The penultimate choice", SHAPES, 2), ("It's the option just before the last one.", SHAPES, 2),
    ("third from the end", FIVE, 2), ("The last option.", FIVE, 4), ("The second-to-last one", ["x", "y"], 0),
    ("The dog barks on the second-to-last day of the trip.", FIVE, None),  # no option named
    ("Not the penultimate option.", FIVE, None),
    ("(A) 0.05 (B) 0.15 (C) 0.6 (D) 0.2", SHAPES, 2), ("A=20% B=10% C=5% D=65%", SHAPES, 3),
    ("a cube: 0.1\na sphere: 0.8\na cone: 0.05\na pyramid: 0.05", SHAPES, 1), ("A: 3/10, B: 9/10, C: 1/10, D: 2/10", SHAPES, 1),
    ("Scores: A ✗ B ✗ C ✓ D ✗", SHAPES, 2), ("1 time: no, 2 times: yes, 3 times: no, 4 times: no", COUNTS, 1),
    ("| Option | Correct? |\n|---|---|\n| A | no |\n| B | no |\n| C | no |\n| D | yes |", SHAPES, 3),
    ("| Option | Shape | Match |\n|---|---|---|\n| A | a cube | ✅ |\n| B | a sphere | ❌ |\n| C | a cone | ❌ |\n| D | a pyramid | ❌ |",
     SHAPES, 0),
    ("A: 0.4, B: 0.4, C: 0.1, D: 0.1", SHAPES, None),  # a tie at the top
    ("A: possible, B: possible, C: unlikely, D: unlikely", SHAPES, None),  # no option said to be the answer
    ("A ✓ B ✓ C ✗ D ✗", SHAPES, None), ("A: 0.1, B: 0.7, C: 0.1, D: 0.1 -> C", SHAPES, None),  # its conclusion disagrees
    ("A: 0.1, B: 0.7", SHAPES, None),  # not every option scored: read by the other rules, here none
    ("A: 1, B: 2, C: 3, D: 4", COUNTS, None),  # the options listed, not scored
    ("| Option | Shape | Match |\n|---|---|---|\n| A | a cone | yes |\n| B | a sphere | no |\n| C | a cube | no |\n| D | a pyramid | no |",
     SHAPES, None),  # the table's texts are not its labels' options
    ("Between 1 and 2 times.", COUNTS, None), ("somewhere between a cone or a pyramid", SHAPES, None),
    ("3 times, between the first and the last frame.", COUNTS, 2),
    ("The card shows the letter C, so the answer is (D).", LETTER_OPTIONS, 3),  # content C is option D: they agree
    ("The card shows the letter C, so the answer is (C).", LETTER_OPTIONS, None),  # (C) is the option "A"
    ("The card shows the letter B. Answer: A", LETTER_OPTIONS, None),
])
def test_positions_from_the_end_scored_options_hedges_and_letters_against_content(reply, options, expected):
    assert parse_choice(reply, options).index == expected, parse_choice(reply, options)


#: corpus I's unread forms read by general rules, each beside near-misses that must stay unread: letters drawn another
#: way (circled, mathematical, fullwidth, enclosed emoji), an answer letter with a diacritic, roman option numbers,
#: quotes escaped by double serialisation, a one-column answer table, a list marking one option correct, and an
#: elimination that leaves exactly one option
EGO = ["C cuts wood", "C paints a wall", "C and the man build a shelf", "C reads a manual", "C cleans tools"]


@pytest.mark.parametrize("reply, options, expected", [
    ("Ⓓ", FIVE, 3), ("The answer is ⓒ.", FIVE, 2), ("𝐄", FIVE, 4), ("Answer: 𝑩", FIVE, 1), ("𝙲.", FIVE, 2),
    ("Ｄ", FIVE, 3), ("🅐", FIVE, 0), ("Answer: 🅳", FIVE, 3), ("🅲\ufe0f", FIVE, 2), ("Ⓖ", FIVE, None),  # G of five
    ("𝐁𝐞𝐬𝐭 𝐠𝐮𝐞𝐬𝐬", FIVE, None), ("la 2ª vez", FIVE, None),  # letters inside a word, an ordinal indicator
    ("Answer: É", FIVE, 4), ("Final answer: D\u0301", FIVE, 3), ("Answer: à", FIVE, None), ("É.", FIVE, None),
    ("Option IV", FIVE, 3), ("(iii)", FIVE, 2), ("Answer: ii", FIVE, 1), ("II", FIVE, 1),
    ("choice (v).", FIVE, None), ("Answer: I", FIVE, None),  # one-letter numerals are letters too: out of range
    ("(iv)", SHAPES[:3], None), ("Option I think fits", FIVE, None), ("not option iii", FIVE, None),
    ("II", ["I", "II", "V", "X"], 1), ("Option II", ["I", "II", "V", "X"], 1),  # options that are numerals: their text
    ('\\"D\\"', FIVE, 3), ("\"{\\\"answer\\\": \\\"B\\\"}\"", FIVE, 1),
    ("| Final answer |\n|---|\n| C |", FIVE, 2), ("| Answer |\n|---|\n| C |\n| D |", FIVE, None),
    ("- (A) a cube: has corners\n- (B) a sphere: **correct**\n- (C) a cone: has a tip", SHAPES[:3], 1),
    ("- (A) a cube: correct\n- (B) a sphere: likely\n- (C) a cone: has a tip", SHAPES[:3], None),
    ("Not A, B, D or E.", FIVE, 2), ("Not A, B or D.", SHAPES, 2), ("Not A, B, D or E.", SHAPES, None),
    ("Neither A nor C.", SHAPES[:3], None),  # two set aside of three: graders split on it
    ("Rule out A (no door), C (no woman), D (no dog), E (no cat). Only B remains.", FIVE, 1),
    ("Not A or B.", FIVE, None), ("Not A or B. Maybe D.", FIVE, 3),  # a weak pick stands
    ("None of the last two.", SHAPES[:3], 0), ("Neither of the first two.", SHAPES[:3], 2),
    ("Neither of the first two.", SHAPES, None),
    ("The options given are A, B, C and D. From the video, C.", SHAPES, 2), ("The choices are A, B, C and D.", SHAPES, None),
    ("3", COUNTS, 2), ("5", COUNTS, None), ("2", ["3 times", "2 times", "1 time"], 1),  # "2 times", the second too
    ("2", ["2 times", "3 times", "4 times"], None),  # the second option or "2 times"? the two readings differ
    ("I first thought A, but the door stays shut. Final: D", FIVE, 3), ("Final: C", EGO, 2),
    ("Final: B or D", FIVE, None), ("The final scene is B.", FIVE, 1), ("In the final frame C is gone.", EGO, None),
    ("Q: What does C do first?\nA: C reads a manual", EGO, 3), ("Q: Which shape rolls?\nA: a cone", SHAPES, 2),
    ("Q: Which shape rolls?\nA: a cube or a cone", SHAPES, None), ("Q: Which shape rolls?\nA: D", SHAPES, 3),
    ("The options are a cube, a sphere, a cone and a pyramid. I pick a cone.", SHAPES, 2),
    ("Options: a cube, a sphere, a cone, a pyramid. I pick a cube or a cone.", SHAPES, None),
])
def test_drawn_letters_roman_numbers_escaped_quotes_tables_and_eliminations(reply, options, expected):
    assert parse_choice(reply, options).index == expected, parse_choice(reply, options)


#: corpus I, written blind and frozen before the parser ran on it (its fixture's ``about`` says by whom and how)
I = json.loads((FIXTURES / "mcq_blind_corpus_i.json").read_text(encoding="utf-8"))


def test_blind_corpus_i_agrees_with_its_grader_more_than_lmms_eval_s_own_parsers():
    """Corpus I (318 replies, 53 a grader credits no option), measured blind, before any rule was written for it:
    ours agrees with the grader on 232 of 318 replies, picks a wrong option on 2 (i050 "The second-to-last option is
    correct." read as the last; i069 "A: 0.1, B: 0.7, C: 0.15, D: 0.05" read as A), credits 2 replies the grader
    credits none of (i146 "Between 2 and 3 times.", a hedge; i151 "The person draws the letter A, so the answer is
    (A).", whose letter and content disagree) and leaves 82 unread; lmms-eval's own scorers on the 265 replies with
    a credit: MVBench mcq_acc 92 agree / 63 wrong, EgoSchema 124 agree / 141 wrong.

    The numbers asserted below are after rules written while reading corpus I's misses (positions from the end,
    scored options, hedges, drawn letters, roman numerals, eliminations ...): 271 agree, 0 wrong, 0 credited where
    none, 47 unread. They were tuned on I, so they are a regression floor, not a blind measurement; the 232 above is
    I's blind one. Left unread on purpose: translations and synonyms outside the lexicon, typos (no fuzzy matching),
    an elimination of option texts that leaves one of three (graders split on it, corpus F reads none), counts and
    times in other formats, replies that quote the question's labels before picking by content."""
    _corpus_floors(I, "I", 318, 53, agree=271, wrong=set(), picked_where_none=0, ahead_by=80)


@pytest.mark.parametrize("reply", [
    "I would never, ever pick C.", "I refuse to pick D.", "I decline to choose A.", "I reject B.",
    "A is the wrong answer.", "C is an incorrect choice.", "B? Certainly not.", "D? Never.", "A? Absolutely not.",
    "I would not, really, choose B.",
    # pass 25 R4 #15, #49: a verdict after the label's punctuation, or before it
    "A: no.", "A - no.", "A, no.", "A. No.", "B — no.", "C: definitely not.", "B, definitely not",
    "C would be a mistake.", "C is a trap.", "Wrong: C.", "Incorrect: B", "Option B: incorrect.",
    # pass 26 R5 #38, #40: other punctuation and verdicts
    "A; no.", "A is a poor fit.", "D would be a bad pick.", "Nope: A.", "Not it: B.", "Reject: B", "A dog? Nope.",
    "C? Nah.", "C — no way.", "(B) is a poor choice.",
    # pass 26 R6 #32, #34, #36, #38
    "A is the worst option.", "a dog is a poor fit.", "B (not this one).", "D? Hardly.", "B (wrong).",
    "C is the least likely.", "B is a terrible answer."])
def test_a_reply_that_only_rejects_an_option_picks_nothing(reply):
    """Pass 25 R3 #2, #6: the rejected option was scored as the answer ("I would never, ever pick C." -> C,
    "A is the wrong answer." -> A, "B? Certainly not." -> B): a negation of a label takes it out, whatever words
    stand between."""
    assert parse_choice(reply, ["a cat", "a dog", "a bird", "a fish"]).index is None


@pytest.mark.parametrize("reply, expected", [
    ("A is the wrong answer; B is the right one.", 1), ("B? Definitely.", 1), ("A is the answer.", 0),
    ("I refuse to pick A: it is clearly B.", 1), ("The answer is C, never D.", 2), ("Answer: B. Not A.", 1),
    ("B. No other option fits.", 1), ("B, no doubt.", 1), ("A? No, B.", 1), ("B. No, wait, it is C.", 2),
    ("B is a good fit.", 1), ("Answer: B; no doubt.", 1), ("B; not A.", 1), ("No, A.", 0), ("No way, it is C.", 2),
    ("A bird? Nah. A dog.", 1), ("B (no doubt).", 1), ("B (not A).", 1), ("B (not C or D).", 1),
    ("A is the best option.", 0), ("a dog is a poor fit. A cat.", 0)])
def test_a_pick_beside_a_rejected_option_is_still_read(reply, expected):
    assert parse_choice(reply, ["a cat", "a dog", "a bird", "a fish"]).index == expected


#: corpus J, written blind and frozen before the parser ran on it (its fixture's ``about`` says by whom and how)
J = json.loads((FIXTURES / "mcq_blind_corpus_j.json").read_text(encoding="utf-8"))


def test_blind_corpus_j_agrees_with_its_grader_more_than_lmms_eval_s_own_parsers():
    """Corpus J (400 replies, 99 a grader credits no option), measured blind, before any rule was written for it:
    ours agrees with the grader on 352 of 400 replies, picks a wrong option on 1 (j239 "a) cat b) dog c) rabbit d)
    hamster -> b)" read as its first label), credits 7 replies the grader credits none of (a hedge with "or", a JSON
    answer cut before its value, "A. B. C. D.", "B then A", "B (walking), and later D (sitting).", "(a) no.", "A cat?
    No way.") and leaves 40 unread; lmms-eval's own scorers on the 301 replies with a credit: MVBench mcq_acc 139
    agree / 64 wrong, EgoSchema 152 agree / 149 wrong.

    The numbers asserted below are after rules written while reading corpus J's misses: 366 agree, 0 wrong, 1
    credited where none (j193, two labelled events), 33 unread -- a regression floor, not a blind measurement.
    Left unread on purpose: typos, times and units written otherwise ("0:45" for "00:45", "15 s"), replies whose
    letters narrate a sequence, renumbered option lists in roman numerals."""
    _corpus_floors(J, "J", 400, 99, agree=366, wrong=set(), picked_where_none=1, ahead_by=150)


DRAWER = ["Opening a drawer", "Closing a drawer", "Wiping the table", "Picking up a cup"]
PETS = ["A cat", "A dog", "A rabbit", "A hamster"]
ROOMS = ["Kitchen", "Bedroom", "Garage", "Office"]


#: corpus J's forms, each beside near-misses that must read otherwise
@pytest.mark.parametrize("reply, options, expected", [
    ("Definitely B", DRAWER, 1), ("Clearly C.", DRAWER, 2), ("Definitely not B", DRAWER, None),
    ("\ufeffA", DRAWER, 0), ("\u200bB", DRAWER, 1), ("《D》", DRAWER, 3),
    ("A. B. C. D.", DRAWER, None), ("B then A", PETS, None), ("B. Then the man leaves.", DRAWER, 1),
    ("(a) no.", DRAWER, None), ("(B) wrong.", DRAWER, None), ("(b) no.", ["yes", "no"], 1),
    ('{"reasoning": "The hand goes to the cat first.", "answer": "', PETS, None), ('{"answer": "B"}', PETS, 1),
    ('{"answer": ["A", "C"]}', PETS, None),
    ("A cat? No way.", PETS, None), ("A cat? No way. It is clearly a dog.", PETS, 1), ("A cat. No doubt.", PETS, 0),
    ("It looks like a bedroom or a living room.", ROOMS, None), ("Bedroom or garage?", ROOMS, None),
    ("The kitchen, not the bedroom or the garage.", ROOMS, 0), ("Bedroom.", ROOMS, 1),
    ("A - no; B - no; C - yes; D - no", DRAWER, 2), ("A - yes; B - yes; C - no; D - no", DRAWER, None),
    ("Option A: incorrect. Option B: incorrect. Option C: correct. Option D: incorrect.", DRAWER, 2),
    ("a) cat b) dog c) rabbit d) hamster -> b)", PETS, 1), ("a) cat b) dog", PETS, None), ("a) cat", PETS, 0),
    ("(1) Opening a drawer (2) Closing a drawer (3) Wiping the table (4) Picking up a cup\nThe answer is (2).", DRAWER, 1),
    ("1) cat 2) dog 3) rabbit 4) hamster. Answer: 3", PETS, 2),
])
def test_corpus_j_forms_and_their_near_misses(reply, options, expected):
    assert parse_choice(reply, options).index == expected, parse_choice(reply, options)

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

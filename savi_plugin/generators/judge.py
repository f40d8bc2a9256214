"""Is the model's answer wrong? RRPO keeps a response as non-preferred only when it is.

RRPO (arXiv 2504.12083; ``docs/assets/self-alignment.png`` of pritamqu/RRPO: perturbed video -> LVLM ->
"Correct?" -> No -> selection) pairs the ground truth with the model's answer only when that answer is
wrong. The authors do not say how they decided "correct?" for open-ended answers (not public); their
training examples (``docs/assets/data.png``) show what counts as wrong: an answer that keeps the
ground truth's wording and replaces one content phrase (soccer/field -> volleyball/beach, goose -> dog,
riding -> fishing). Those are exactly the pairs the refined reward is for, so the rules below call such an
answer wrong however much of the wording it shares.

Two judges:

- the **rule judge** (:func:`judge_answer`, the default):

  * multiple choice: the option the answer chooses, read by the project's one parser
    (:func:`savi_plugin.data.choices.parse_choice`); an answer that chooses no option is wrong;
  * yes/no ground truths: the answer read by :func:`savi_plugin.data.yes_no.parse_yes_no` (neither or both: wrong);
  * other open-ended answers: content words compared as sets of stems (:mod:`~savi_plugin.generators.content`:
    wording, inflection and order do not matter; negation does). A short ground truth (at most
    ``short_answer_words`` words) is the answer itself: the answer is wrong when it lacks one of its content
    words. A longer one is wrong when the answer *replaces* content (a content word of the ground truth is
    missing and the answer has one the ground truth lacks) or negates differently. An answer that only
    omits or only adds detail is not called wrong: calling a correct answer wrong creates a harmful pair
    (the ground truth preferred over an equally correct answer), missing a wrong one only loses a pair.
    Synonyms (``sofa``/``couch``) are beyond a rule; the model judge handles them.

- the **model judge** (:class:`ModelJudge`), for open-ended answers when the generator's ``judge_model``
  option names a local Hugging Face causal LM (or ``policy``, the video model itself, only when asked). Its
  prompt is ``judge_answer`` in ``prompts/rrpo.yaml``; a reply that says neither "correct" nor "wrong" leaves
  the rule judge's verdict in place (counted as ``model_unparsed``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from savi_plugin.data.choices import parse_choice
from savi_plugin.data.yes_no import yes_no_answer
from savi_plugin.generators.content import content_difference, content_stems, negations
from savi_plugin.generators.prompts import render
from savi_plugin.generators.text import normalize_answer, word_count
from savi_plugin.untrusted import one_line


@dataclass(frozen=True)
class Judgement:
    """The verdict on one answer.

    Attributes:
        correct: whether the answer counts as correct.
        kind: ``mcq``, ``yes_no``, ``short`` or ``long`` (which rule judged it).
        predicted: for ``mcq``, the index of the option the answer chooses (None if it chooses none).
        method: how the verdict was reached: the choice parser's method for ``mcq`` (``letter``,
            ``option_text``, ``unparsed``, ``ambiguous`` ...), ``yes_no``, ``content``, ``negation``,
            ``empty``, or ``model`` / ``model_unparsed`` for the model judge.
        score: 1.0 correct, 0.0 wrong.
        missing: content stems of the ground truth the answer lacks (open-ended answers).
        extra: content stems of the answer the ground truth lacks (open-ended answers).
    """

    correct: bool
    kind: str
    predicted: int | None
    method: str
    score: float
    missing: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "method": self.method, "predicted": self.predicted,
                               "score": self.score}
        if self.kind in ("short", "long"):
            out.update(missing=list(self.missing), extra=list(self.extra))
        return out


def _verdict(correct: bool, kind: str, method: str, predicted: int | None = None, missing=(), extra=()):
    return Judgement(correct, kind, predicted, method, float(correct), tuple(missing), tuple(extra))


def judge_answer(answer: str, ground_truth: str, *, options: Sequence[str] | None = None,
                 answer_index: int | None = None, short_answer_words: int = 5) -> Judgement:
    """Judge ``answer`` against the ground truth by rule (see the module docstring).

    Args:
        answer: the model's answer.
        ground_truth: the correct answer text (for MCQ, the correct option's text).
        options: MCQ options; with them the answer is judged by the option it chooses.
        answer_index: index of the correct option (derived from ``ground_truth`` if None).
        short_answer_words: ground truths with at most this many words are "short": the answer must contain
            each of their content words.
    """
    kind = "mcq" if options else ("yes_no" if normalize_answer(ground_truth) in ("yes", "no") else
                                  "short" if word_count(ground_truth) <= short_answer_words else "long")
    if not answer.strip():
        return _verdict(False, kind, "empty")
    if options:
        if answer_index is None:
            norm_gt = normalize_answer(ground_truth)
            matches = [i for i, o in enumerate(options) if normalize_answer(o) == norm_gt]
            if len(matches) != 1:
                raise ValueError(f"ground truth {ground_truth!r} is not exactly one of the options {list(options)}")
            answer_index = matches[0]
        choice = parse_choice(answer, list(options))
        return _verdict(choice.index == answer_index, "mcq", choice.method, choice.index)
    if kind == "yes_no":
        return _verdict(yes_no_answer(answer) == normalize_answer(ground_truth), "yes_no", "yes_no")
    missing, extra = content_difference(answer, ground_truth)
    if (negations(answer) > 0) != (negations(ground_truth) > 0):
        return _verdict(False, kind, "negation", None, missing, extra)
    if kind == "short" or not content_stems(ground_truth):
        wrong = bool(missing)
    else:
        wrong = bool(missing) and bool(extra)
    return _verdict(not wrong, kind, "content", None, missing, extra)


_VERDICT = re.compile(r"\b(not\s+(?:correct|right|wrong|incorrect)|incorrect|wrong|correct|right|yes|no)\b")


def parse_verdict(reply: str) -> bool | None:
    """A judge model's reply as True (correct), False (wrong) or None (neither said)."""
    m = _VERDICT.search(reply.lower())
    if not m:
        return None
    word = m.group(1)
    if word.startswith("not"):
        return word.split()[-1] in ("wrong", "incorrect")
    return word in ("correct", "right", "yes")


class ModelJudge:
    """Judges open-ended answers with a text LM (any object with ``generate_text``; see
    :class:`savi_plugin.generators.textlm.TextLM`).

    Args:
        lm: the judge model.
        prompts: the generator's prompts (uses ``judge_answer``, fields ``question``, ``ground_truth``, ``answer``).
        max_new_tokens: reply length (one word is asked for).
    """

    def __init__(self, lm, prompts: Mapping[str, Any], *, max_new_tokens: int = 8):
        self.lm, self.prompts, self.max_new_tokens = lm, prompts, max_new_tokens

    def judge(self, cases: Sequence[tuple[str, str, str, Judgement]], *, batch_size: int = 8,
              seed: int = 0) -> list[Judgement]:
        """Judge ``(question, answer, ground_truth, rule_judgement)`` cases; returns one Judgement each."""
        # each value fills a one-line slot ("Ground truth: ..."): its line breaks are shown escaped, so neither
        # the data nor the answer can start a line of the prompt (a forged "Answer: ..." or reply instruction)
        conversations = [[{"role": "user", "content": render(self.prompts, "judge_answer", question=one_line(q),
                                                             ground_truth=one_line(g), answer=one_line(a))}]
                         for q, a, g, _ in cases]
        replies: list[str] = []
        step = max(1, batch_size)
        for c, start in enumerate(range(0, len(conversations), step)):
            replies += self.lm.generate_text(conversations[start:start + step], max_new_tokens=self.max_new_tokens,
                                             do_sample=False, seed=(seed + c) % (2**63))
        out = []
        for (_, _, _, rule), reply in zip(cases, replies):
            verdict = parse_verdict(reply)
            if verdict is None:
                out.append(Judgement(rule.correct, rule.kind, None, "model_unparsed", rule.score, rule.missing,
                                     rule.extra))
            else:
                out.append(Judgement(verdict, rule.kind, None, "model", float(verdict), rule.missing, rule.extra))
        return out

"""The yes/no answer of a reply to a yes-no question, read carefully: never a guess.

Video hallucination benchmarks (VideoHallucer, Wang et al., arXiv 2406.16338; VidHalluc, Li et al., CVPR 2025)
ask yes-no questions. Their official scripts credit a reply when the expected word occurs anywhere in it
(VideoHallucer ``cal_score``: ``\\b(yes)\\b``, any case), so ``"Yes and no."`` is right whatever the answer; those
rules are reproduced by the benchmarks' ``official`` protocols. This reader is the project's own rule for yes/no
replies, in the spirit of :func:`savi_plugin.data.choices.parse_choice`: it reads the answer a grader would read
and refuses what names neither or both.

Read as an answer:

* the reply's first word, ``Yes``/``No`` (any case, quoted, bold, after ``Answer:`` or a chat role, before
  ``.``, ``,``, ``!`` or more text): ``"Yes, there is a baby."``, ``"**No**"``, ``"Assistant: yes"``;
* a stated verdict anywhere: ``the answer is no``, ``my answer: yes``, ``I would say yes``, ``答案是否``/``是``.

Unparsed (``None``, scored wrong and counted): no verdict (``"There is a doll."``, ``""``), both (``"Yes and no"``,
``"Yes or no"``, ``"Yes. Wait, no."``, a reply opening with one word whose verdict names the other), and ``no`` not used
as an answer (``"No idea."``, ``"No doubt it is."``, ``"There is no doll"`` with no verdict word first).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: A chat role, answer label or stop-token remnant before the verdict.
_LEAD = re.compile(r"^(?:\s|[\"'`*_(\[{<「『]|(?:assistant|answer|final answer|ans|a|response|reply|output)\s*[:：]"
                   r"|<\|[^|>]*\|>)+", re.IGNORECASE)
#: ``no`` opening an idiom, not an answer.
_NO_IDIOM = re.compile(r"^no\s+(?:idea|doubt|clue|way|matter|one|longer|more|need|problem|comment|information|"
                       r"video|frames?|image|answer|mention|evidence)\b", re.IGNORECASE)
_FIRST = re.compile(r"^(yes|no|yeah|yep|nope)\b(?![-'])", re.IGNORECASE)
_BOTH = re.compile(r"^(?:yes|no)\s*(?:and|or|/|,\s*(?:and|or))\s*(?:yes|no)\b", re.IGNORECASE)
_VERDICT = re.compile(r"(?:\banswer(?:\s+is|\s*[:：])|\bi\s+(?:would|'d)\s+say|\bi\s+(?:think|believe))\s*"
                      r"[\"'*(]*\s*(yes|no)\b(?!\s+(?:idea|doubt|one|clue))", re.IGNORECASE)
_CHINESE = re.compile(r"答案[是为：:]\s*(是|否|对|不是|不对)")
_RETRACT = re.compile(r"\b(?:wait|actually|correction|on second thought)\b[\s,.:;!-]*(?:the answer is\s*)?(yes|no)\b",
                      re.IGNORECASE)
_CANON = {"yes": "yes", "yeah": "yes", "yep": "yes", "no": "no", "nope": "no",
          "是": "yes", "对": "yes", "否": "no", "不是": "no", "不对": "no"}


@dataclass(frozen=True)
class YesNo:
    """One reply read: ``answer`` is ``"yes"``, ``"no"`` or None (unparsed); ``method`` says which rule read it
    (``first_word``, ``verdict``, or why it is unparsed: ``empty``, ``none``, ``both``)."""

    answer: str | None
    method: str


def parse_yes_no(text: str) -> YesNo:
    """The yes/no answer of ``text`` (see the module docstring); None when it names neither or both."""
    if not isinstance(text, str) or not text.strip():
        return YesNo(None, "empty")
    body = re.sub(r"<\|[^|>]*\|>|</s>|<eos>", " ", text).strip()
    body = _LEAD.sub("", body)
    verdicts = [_CANON[m.group(1).lower()] for m in _VERDICT.finditer(body)]
    verdicts += [_CANON[m.group(1)] for m in _CHINESE.finditer(body)]
    retracted = [_CANON[m.group(1).lower()] for m in _RETRACT.finditer(body)]
    first = None
    if _BOTH.match(body):
        return YesNo(None, "both")
    match = _FIRST.match(body)
    if match and not _NO_IDIOM.match(body):
        first = _CANON[match.group(1).lower()]
    said = ([first] if first else []) + verdicts + retracted
    if not said:
        return YesNo(None, "none")
    if len(set(said)) > 1:
        return YesNo(None, "both")
    return YesNo(said[0], "first_word" if first else "verdict")


def yes_no_answer(text: str) -> str | None:
    """``"yes"``, ``"no"`` or None: :func:`parse_yes_no`'s answer."""
    return parse_yes_no(text).answer

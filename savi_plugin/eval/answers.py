"""Multiple-choice prompts for the video QA benchmarks, and the scoring of a parsed answer.

VideoSAVi (arXiv 2412.00624, Sec. 4) reports plain accuracy on MVBench, EgoSchema and PerceptionTest
through lmms-eval's built-in tasks; RRPO (arXiv 2504.12083, Sec. 5) reports MVBench among its video
benchmarks. The model sees the question and lettered options and must name one option.

Answers are read by the project's one parser, :func:`savi_plugin.data.choices.parse_choice`
(re-exported here as :func:`extract_choice`): it never picks an option at random and prefers
"unparsed" to a false match. The prompt layouts of each protocol (ours, lmms-eval's, the official
MVBench notebook's, RRPO's) are built by :func:`format_mcq` from a :class:`PromptFormat`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from savi_plugin.data.choices import (  # noqa: F401  (re-exported: the eval layer's names for the parser)
    LETTERS,
    Choice,
    extract_choice,
    option_letters,
    parse_choice,
    strip_option_prefix,
)


@dataclass(frozen=True)
class PromptFormat:
    """The layout of a multiple-choice prompt:
    ``system + question_label + question + options_header + lines + options_end + post_prompt``.

    Attributes:
        question_label: text before the question (``"Question: "``, lmms-eval MVBench's ``"Question:"``).
        strip_question: strip whitespace around the question text.
        options_header: text between the question and the first option line.
        option_line: one option line; ``{letter}`` and ``{text}`` (the option without a label already in
            the data) or ``{raw}`` (the option exactly as stored, e.g. EgoSchema's ``"A. text"``).
        options_end: text after the last option line.
        system: text before everything (the official MVBench system prompt).
        strip_end: right-strip the question and options block (the MVBench notebook's ``qa_template``).
    """

    question_label: str = "Question: "
    strip_question: bool = True
    options_header: str = "\nOptions:\n"
    option_line: str = "({letter}) {text}"
    options_end: str = ""
    system: str = ""
    strip_end: bool = False


def format_options(options: Sequence[str], style: str = "paren") -> str:
    """Lettered option lines: ``"paren"`` -> ``"(A) text"`` (MVBench), ``"dot"`` -> ``"A. text"``
    (EgoSchema / PerceptionTest); labels already present in the data (``"A. x"``) are not doubled."""
    line = "({letter}) {text}" if style == "paren" else "{letter}. {text}"
    return _option_lines(options, line)


def _option_lines(options: Sequence[str], line: str) -> str:
    letters = option_letters(len(options))
    return "\n".join(line.format(letter=letter, text=strip_option_prefix(option, letter), raw=option)
                     for letter, option in zip(letters, options))


def format_mcq(question: str, options: Sequence[str], *, pre_prompt: str = "", post_prompt: str = "",
               style: str = "paren", layout: PromptFormat | None = None) -> str:
    """The full multiple-choice prompt.

    Args:
        question: the question text.
        options: the option texts in order.
        pre_prompt, post_prompt: text before the question (after ``layout.system``) / after the options.
        style: with the default layout, ``"paren"`` (``(A) text``) or ``"dot"`` (``A. text``) option lines.
        layout: the protocol's :class:`PromptFormat`; default ``Question: ...\nOptions:\n`` + ``style`` lines.
    """
    if layout is None:
        layout = PromptFormat(option_line="({letter}) {text}" if style == "paren" else "{letter}. {text}")
    text = question.strip() if layout.strip_question else question
    body = f"{layout.question_label}{text}{layout.options_header}{_option_lines(options, layout.option_line)}"
    if layout.strip_end:
        body = body.rstrip()
    return f"{layout.system}{pre_prompt}{body}{layout.options_end}{post_prompt}"


def score(pred_index: int | None, target_index: int) -> int:
    """1 if the extracted choice is the target, else 0 (an unparsed response is wrong)."""
    return int(pred_index is not None and pred_index == target_index)

"""Multiple-choice prompts and answer extraction for the video QA benchmarks.

VideoSAVi (arXiv 2412.00624, Sec. 4) and RRPO (arXiv 2504.12083, Sec. 5) report plain accuracy on
MVBench, EgoSchema and PerceptionTest: the model sees the question and lettered options and must
name one option. These pure functions turn a free-form response into an option index.

The rules are deliberately conservative. A response counts as choosing option ``k`` only if it
names it in one of the forms models actually produce: ``"B"``, ``"(B)"``, ``"B."``, ``"B) ..."``,
``"Answer: B"``, ``"The answer is B"``, ``"Best option: (B)"``, ``"I think it is B."``, or the
option's text itself. A capital letter that merely occurs in a sentence (``"A dog runs"``,
``"I see"``) is not an answer, and a response naming two different options is ambiguous. When
nothing matches, :func:`extract_choice` returns ``None`` and the sample is scored wrong; we never
pick an option at random (lmms-eval's EgoSchema/NExT-QA parsers do, which adds noise to the score).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

LETTERS = string.ascii_uppercase

# "A. text", "A) text", "(A) text", "A: text", "[A] text" at the start of an option string.
_PREFIX = re.compile(r"^\s*(?:\(([A-Z])\)|\[([A-Z])\]|([A-Z])[.):])\s*")
# Reasoning blocks some models emit before the answer.
_THINK = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.IGNORECASE | re.DOTALL)


def option_letters(n: int) -> str:
    """The letters for ``n`` options (``"ABCDE"`` for five)."""
    if not 1 <= n <= len(LETTERS):
        raise ValueError(f"cannot letter {n} options (1..{len(LETTERS)} supported)")
    return LETTERS[:n]


def strip_option_prefix(option: str, letter: str | None = None) -> str:
    """Remove a leading option label (``"A. "``, ``"(A) "``, ``"A) "``) from an option string.

    Args:
        option: an option as stored in the dataset (some datasets store ``"A. text"``).
        letter: if given, only a label with this letter is removed (so an option whose text
            legitimately starts with a capital and a period is left alone).
    """
    m = _PREFIX.match(option)
    if not m:
        return option.strip()
    found = next(g for g in m.groups() if g)
    if letter is not None and found != letter:
        return option.strip()
    return option[m.end():].strip()


def format_options(options: Sequence[str], style: str = "paren") -> str:
    """Lettered option lines.

    Args:
        options: option texts; labels already present in the data (``"A. x"``) are not doubled.
        style: ``"paren"`` -> ``"(A) text"`` (MVBench's format), ``"dot"`` -> ``"A. text"``
            (EgoSchema / PerceptionTest format in lmms-eval).
    """
    letters = option_letters(len(options))
    lines = []
    for letter, option in zip(letters, options):
        text = strip_option_prefix(option, letter)
        lines.append(f"({letter}) {text}" if style == "paren" else f"{letter}. {text}")
    return "\n".join(lines)


def format_mcq(question: str, options: Sequence[str], *, pre_prompt: str = "", post_prompt: str = "",
               style: str = "paren", question_label: str = "Question: ", options_label: str = "Options:\n") -> str:
    """The full multiple-choice prompt: ``pre_prompt``, question, lettered options, ``post_prompt``.

    Args:
        question: the question text.
        options: the option texts (see :func:`format_options`).
        pre_prompt, post_prompt: text before the question / after the options (the instruction).
        style: option label style, see :func:`format_options`.
        question_label, options_label: headers before the question and the option block.
    """
    body = f"{question_label}{question.strip()}\n{options_label}{format_options(options, style)}"
    return f"{pre_prompt}{body}{post_prompt}"


def _normalize(text: str) -> str:
    """Lower case, punctuation to spaces, articles dropped, whitespace collapsed."""
    text = text.lower()
    text = re.sub(r"[^\w\s]", " ", text)
    words = [w for w in text.split() if w not in ("a", "an", "the")]
    return " ".join(words)


def _unique(found: list[str]) -> str | None:
    """The single distinct letter in ``found``, or None when empty or ambiguous."""
    distinct = set(found)
    return found[0] if len(distinct) == 1 else None


def _letter_patterns(letters: str) -> tuple[list[re.Pattern], list[re.Pattern]]:
    """Answer forms as ``(strong, weak)`` pattern lists; in each pattern the letter is the one
    non-empty group. Strong forms are tried before the option text, weak forms after it."""
    up = f"[{letters}]"
    low = f"[{letters.lower()}]"
    anycase = f"[{letters}{letters.lower()}]"
    closed = r"(?=\s*[.,;:!?)\]]|\s*$)"  # the letter ends the sentence or the response
    strong = [
        # the whole response (or its first line) is a label: "B", "(B)", "B.", "b", "(b)", "B)"
        re.compile(rf"^\s*[(\[]?({anycase})[)\].:]?\s*(?:\n|$)"),
        # explicit statements: "Answer: B", "the answer is (B)", "Best option: (b)", "correct option is B"
        re.compile(rf"(?i:\b(?:answer|option|choice)\b(?:\s+is|\s+would\s+be|\s+should\s+be)?\s*[:\-]?\s*"
                   rf"(?:option\s+|choice\s+)?)(?:\(({anycase})\)|\[({anycase})\]|[(\[]?({up})\b(?![\'\u2019\w])|({low}){closed})"),
        # the response starts with a label and then explains: "B. the dog", "(C) the dog", "c) the dog"
        re.compile(rf"^\s*(?:\(({anycase})\)|\[({anycase})\]|({anycase})[.):])(?:\s|$)"),
    ]
    weak = [
        # "I think it is A.", "it's B", "I choose (C)": an upper-case letter after a verb, closing the sentence
        re.compile(rf"\b(?:is|be|it's|choose|pick|select)\s+(?:\(({up})\)|({up})){closed}"),
        # a bracketed upper-case label anywhere: "... so (B) is right"
        re.compile(rf"\(({up})\)"),
    ]
    return strong, weak


def _find_letter(patterns: list[re.Pattern], text: str, letters: str) -> tuple[bool, int | None]:
    """``(matched, index)``: whether any pattern matched, and the index if the match is unambiguous."""
    for pattern in patterns:
        found = [next(g for g in m.groups() if g).upper() for m in pattern.finditer(text)]
        if found:
            letter = _unique(found)
            return True, (None if letter is None else letters.index(letter))
    return False, None


def extract_choice(response: str, options: Sequence[str]) -> int | None:
    """The index of the option a free-form ``response`` chooses, or None if it names none clearly.

    Order: strong letter forms ("B", "(B)", "B.", "Answer: B", "The answer is B", "B) text"), then
    the option text stated exactly, then weak letter forms ("I think it is B.", "(B)" mid-sentence),
    then the option text contained in a longer sentence. The first rule that matches decides; if it
    matches two different options the response is ambiguous and nothing is chosen.

    Args:
        response: the model's generated text.
        options: the options shown to the model, in order (labels like ``"A. "`` are ignored).

    Returns:
        ``0..len(options)-1``, or ``None`` when the response names no option clearly. ``None``
        must be scored as wrong (see :func:`score`), never replaced by a random guess.
    """
    if not options:
        raise ValueError("extract_choice needs at least one option")
    text = _THINK.sub(" ", response or "").replace("*", "").strip()  # drop reasoning and **bold**
    if not text:
        return None
    letters = option_letters(len(options))
    strong, weak = _letter_patterns(letters)
    matched, index = _find_letter(strong, text, letters)
    if matched:
        return index
    exact = match_option_text(text, options, exact_only=True)
    if exact is not None:
        return exact
    matched, index = _find_letter(weak, text, letters)
    if matched:
        return index
    return match_option_text(text, options)


def match_option_text(response: str, options: Sequence[str], *, exact_only: bool = False) -> int | None:
    """The option whose text the response states, or None.

    First an exact match after normalisation (case, punctuation, articles); then (unless
    ``exact_only``) containment as whole words, where an option wins only if every other contained
    option is part of it (so ``"red and blue"`` beats ``"red"`` when the response says
    ``"red and blue"``).
    """
    norm = _normalize(response)
    texts = [_normalize(strip_option_prefix(o, letter)) for letter, o in zip(option_letters(len(options)), options)]
    exact = [i for i, t in enumerate(texts) if t and t == norm]
    if len(exact) == 1:
        return exact[0]
    if exact_only:
        return None
    padded = f" {norm} "
    contained = [i for i, t in enumerate(texts) if t and f" {t} " in padded]
    if not contained:
        return None
    longest = max(contained, key=lambda i: len(texts[i]))
    if all(f" {texts[i]} " in f" {texts[longest]} " for i in contained):
        return longest
    return None


def score(pred_index: int | None, target_index: int) -> int:
    """1 if the extracted choice is the target, else 0 (an unparsed response is wrong)."""
    return int(pred_index is not None and pred_index == target_index)

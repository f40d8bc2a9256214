"""Option labels and the text normalisation every multiple-choice rule shares.

:data:`LETTERS` labels options in order; :func:`strip_option_prefix` removes a label already stored in an
option (EgoSchema's ``"A. text"``); :func:`normalize` puts answer and option texts in one form (case,
punctuation, articles, number words); :class:`Choice` is what a parser returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from savi_plugin.constants import LETTERS

_ARTICLES = {"a", "an", "the"}

# "A. text", "A) text", "(A) text", "A: text", "[A] text" at the start of an option string.
OPTION_LABEL = r"(?:\(([A-Z])\)|\[([A-Z])\]|([A-Z])[.):])"
"""An option label as a regex: ``(A)``, ``[A]``, ``A.``, ``A)``, ``A:`` (the letter in one of three groups)."""
_OPTION_LABEL = re.compile(rf"^\s*{OPTION_LABEL}\s*")


@dataclass(frozen=True)
class Choice:
    """The option an answer chooses.

    Attributes:
        index: ``0..len(options)-1``, or None when the answer chooses no single option.
        method: the rule that decided (``letter``, ``number``, ``option_text``, ``option_prefix``,
            ``option_words``), or why nothing was chosen (``empty``, ``echo``, ``ambiguous``,
            ``contradiction``, ``negated``, ``out_of_range``, ``unparsed``).
    """

    index: int | None
    method: str


def option_letters(n: int) -> str:
    """The labels of ``n`` options (``"ABCDE"`` for five)."""
    if not 1 <= n <= len(LETTERS):
        raise ValueError(f"cannot label {n} options (1..{len(LETTERS)} supported)")
    return LETTERS[:n]


def option_label(option: str) -> str | None:
    """The letter of the label an option string starts with (``"B. text"`` -> ``B``), or None."""
    m = _OPTION_LABEL.match(option)
    return next(g for g in m.groups() if g) if m else None


def strip_option_prefix(option: str, letter: str | None = None) -> str:
    """Remove a leading option label (``"A. "``, ``"(A) "``, ``"A) "``) from an option string.

    Args:
        option: an option as stored in the dataset (some datasets store ``"A. text"``).
        letter: if given, only a label with this letter is removed (so an option whose text
            legitimately starts with a capital and a period is left alone).
    """
    found = option_label(option)
    if found is None or letter is not None and found != letter:
        return option.strip()
    return option[_OPTION_LABEL.match(option).end():].strip()


_NUMBER_WORDS = {w: str(i) for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven",
                                                     "eight", "nine", "ten"))} | {"once": "1", "twice": "2", "thrice": "3"}
#: number words of Spanish, French, German, Portuguese, Italian and Russian from 2 (their "one" is also "a")
_NUMBER_WORDS |= {w: str(i) for i, words in enumerate((
    (), (), "dos deux zwei dois duas два две", "tres trois drei três tre три", "cuatro quatre vier quatro quattro четыре",
    "cinco cinq fünf cinque пять", "seis sechs шесть", "siete sept sieben sete sette семь",
    "ocho huit acht oito otto восемь", "nueve neuf neun nove девять", "diez dix zehn dez dieci десять"))
    for w in (words.split() if words else ())}
_NUMBER_WORDS |= {w: str(i) for i, w in enumerate(("eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                                                      "seventeen", "eighteen", "nineteen"), start=11)}
_TENS = {w: 10 * i for i, w in enumerate(("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"),
                                         start=2)}
_NUMBER_WORDS |= {w: str(n) for w, n in _TENS.items()} | {"hundred": "100", "dozen": "12"}
#: ``twenty-five`` and ``two and a half`` as digits (``25``, ``2.5``)
_COMPOUND = re.compile(r"\b(" + "|".join(_TENS) + r")[\s-]+(one|two|three|four|five|six|seven|eight|nine)\b")
_HALF = re.compile(r"(?<![\d.])\b(\d+|" + "|".join(w for w, d in _NUMBER_WORDS.items() if d.isdigit() and w.isascii())
                   + r")\s+and\s+(?:a\s+|one\s+)?half\b")
#: a Chinese or Japanese numeral counting something (``三个人``, ``三人``, ``两只``), read as its digits
_CJK_COUNT = re.compile(r"([二三四五六七八九十两兩])(?=[个個人名位只隻辆輛本つ匹台次张張件]|$|[\s。，、.,!?！？])")
_CJK_DIGITS = {c: str(i) for i, c in enumerate("〇一二三四五六七八九十", start=0)} | {"两": "2", "兩": "2"}


#: a prefix joined by a hyphen (``non-stop``, ``counter-clockwise``), and ``counter clockwise`` / ``anti-clockwise``,
#: which is one word: not ``clockwise``
_JOINED = re.compile(r"\b(?:(counter|anti)[\s-]*(clockwise)|(non|anti|counter)-(?=\w))")


@lru_cache(maxsize=8192)
def normalize(text: str) -> str:
    """Lower case, punctuation to spaces, articles dropped, number words as digits, whitespace collapsed."""
    text = text.lower()
    if not text.isascii():
        text = _CJK_COUNT.sub(lambda m: f" {_CJK_DIGITS[m.group(1)]} ", text)
    if "-" in text or "clockwise" in text:
        text = _JOINED.sub(lambda m: "counterclockwise" if m.group(2) else m.group(3), text)
    if " and " in text or "ty" in text:
        text = _COMPOUND.sub(lambda m: str(_TENS[m.group(1)] + int(_NUMBER_WORDS[m.group(2)])), text)
        text = _HALF.sub(lambda m: f"{_NUMBER_WORDS.get(m.group(1), m.group(1))}.5", text)
    words = re.sub(r"[^\w\s']", " ", text).replace("'", "").split()
    return " ".join(_NUMBER_WORDS.get(w, w) for w in words if w not in _ARTICLES)


def begins(said: list[str], option: list[str]) -> bool:
    """Whether the words ``said`` are the beginning of the words ``option`` (or all of them), the last one
    possibly cut mid-word: an answer or an echoed line stopped by the token limit."""
    if not said or len(said) > len(option):
        return False
    return option[:len(said) - 1] == said[:-1] and option[len(said) - 1].startswith(said[-1])

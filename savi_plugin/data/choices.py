"""The one multiple-choice answer parser of the project: which option does a free-form answer choose?

Used wherever a model's answer to a lettered question is graded: the evaluation tasks
(:mod:`savi_plugin.eval.answers`) and the answer judge of the preference-data generators. It lives in
the lowest layer (``data``) so that every layer above may import it.

API:

* :func:`parse_choice` -> :class:`Choice` ``(index, method)``: ``index`` is ``0..len(options)-1`` or
  None; ``method`` says which rule decided (``letter``, ``number``, ``option_text``, ``option_prefix``,
  ``option_words``)
  or, for None, why nothing was chosen (``empty``, ``ambiguous``, ``out_of_range``, ``unparsed``).
* :func:`extract_choice`: the index alone.
* :data:`LETTERS`, :func:`option_letters`, :func:`strip_option_prefix`: option labels.

It reads an answer the way a careful human grader does, and when in doubt it answers "unparsed"
rather than guess (a random or first-letter fallback, as in lmms-eval's EgoSchema/NExT-QA parsers,
adds noise to a score; a false match makes a wrong answer count as right):

1. **Claims**: statements that pick an option by its label. ``"B"``, ``"(B)"``, ``"B. text"``,
   ``"B, because ..."``, ``"Answer: B"``, ``"The answer is (B)"``, ``"Best option:(B"``, ``"B is the
   correct answer"``, ``"Looking at the options, B is correct"``, ``"I'd say B"``, ``"I choose C"``,
   ``"so B."``, ``"答案是B"``, ``"选项B"``, ``"Option 2"`` / ``"the second option"`` (by position).
   Hedged claims (``"probably B"``, ``"could be D"``, ``"B or D"``) are claims too, so an answer that
   hedges between two options (``"Probably B, but it could be D"``) is ``ambiguous``. A negated label
   (``"not A"``, ``"A is wrong"``, ``"rule out C"``) is removed from the claims. A claim that names a
   letter beyond the options (``"The answer is F"`` with five options) is ``out_of_range``.
2. **Mentions**, only when there is no claim: a parenthesised ``(B)`` or ``it is B.`` in a sentence;
   two different mentioned options are ``ambiguous``.
3. **Option text**: the answer states an option's text (case, punctuation and articles ignored);
   an option contained in a longer answer counts only when no other option is (a longer option that
   contains a shorter one wins), it is not negated (``"not the dog"``), and, for a one-word option
   (``"no"``, ``"left"``, ``"3"``), only where a grader reads it as the answer (the whole answer, its
   first word, or after ``"answer is"``), so ``"There is no correct option."`` does not choose ``"no"``.
4. **Option prefix**: an answer cut short by the generation limit (EgoSchema's long options under a
   16-token limit) is the beginning of exactly one option, at least :data:`MIN_PREFIX_WORDS` words long.
5. **Option words**: a paraphrase that carries every content word setting one option apart from the
   others (at least two), none of another option's, and no negation (``"He closes the window"``).

Capital ``A`` and ``I`` are English words, so in running text they count as labels only when the
sentence makes them one (``"A."``, ``"(A)"``, ``"A because"``, ``"A, ..."``, or followed by option
A's own text); ``"A man runs"`` and ``"I think so"`` name no option. Lower-case letters count only in
the same closed forms (``"b"``, ``"(b)"``, ``"answer: b."``), so ``"the answer is a dog"`` is read by
its text.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

LETTERS = string.ascii_uppercase
"""Option labels in order: option ``i`` is ``LETTERS[i]``."""

MIN_PREFIX_WORDS = 5
"""An answer cut short must carry at least this many words of one option's text to match it."""

_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
_ARTICLES = {"a", "an", "the"}
_NEGATORS = {"not", "no", "never", "neither", "nor", "isn't", "isnt", "aren't", "arent", "wasn't", "wasnt",
             "doesn't", "doesnt", "don't", "dont", "cannot", "can't", "cant", "without"}

# "A. text", "A) text", "(A) text", "A: text", "[A] text" at the start of an option string.
_OPTION_LABEL = re.compile(r"^\s*(?:\(([A-Z])\)|\[([A-Z])\]|([A-Z])[.):])\s*")
# Reasoning blocks some models emit before the answer, and markdown emphasis.
_THINK = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.IGNORECASE | re.DOTALL)
_MARKUP = re.compile(r"[*_`#]+")


@dataclass(frozen=True)
class Choice:
    """The option an answer chooses.

    Attributes:
        index: ``0..len(options)-1``, or None when the answer chooses no single option.
        method: the rule that decided (``letter``, ``number``, ``option_text``, ``option_prefix``,
            ``option_words``),
            or why nothing was chosen (``empty``, ``ambiguous``, ``out_of_range``, ``unparsed``).
    """

    index: int | None
    method: str


def option_letters(n: int) -> str:
    """The labels of ``n`` options (``"ABCDE"`` for five)."""
    if not 1 <= n <= len(LETTERS):
        raise ValueError(f"cannot label {n} options (1..{len(LETTERS)} supported)")
    return LETTERS[:n]


def strip_option_prefix(option: str, letter: str | None = None) -> str:
    """Remove a leading option label (``"A. "``, ``"(A) "``, ``"A) "``) from an option string.

    Args:
        option: an option as stored in the dataset (some datasets store ``"A. text"``).
        letter: if given, only a label with this letter is removed (so an option whose text
            legitimately starts with a capital and a period is left alone).
    """
    m = _OPTION_LABEL.match(option)
    if not m:
        return option.strip()
    found = next(g for g in m.groups() if g)
    if letter is not None and found != letter:
        return option.strip()
    return option[m.end():].strip()


_NUMBER_WORDS = {w: str(i) for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven",
                                                     "eight", "nine", "ten"))} | {"once": "1", "twice": "2", "thrice": "3"}


def normalize(text: str) -> str:
    """Lower case, punctuation to spaces, articles dropped, number words as digits, whitespace collapsed."""
    words = re.sub(r"[^\w\s']", " ", text.lower()).replace("'", "").split()
    return " ".join(_NUMBER_WORDS.get(w, w) for w in words if w not in _ARTICLES)


# ------------------------------------------------------------------------------------------ letters
_L = r"(?<![A-Za-z0-9'’])"              # nothing word-like before the label
_CLOSED = r"(?=\s*(?:[.,;:!?)\]}」）。，]|$))"  # the label ends a clause or the answer
_CONNECTIVE = (r"(?=\s+(?:because|since|as|is|was|would|should|seems|appears|looks|fits|matches|best|"
               r"correct|right|and|or|but|-|–|—)\b)")
_OPEN = r"[(\[（]"
_CLOSE = r"[)\]）]"


def _label(letters: str) -> str:
    """One option label in running text, as a named group ``l`` (see the module docstring)."""
    upper = f"[{letters}]"
    lower = f"[{letters.lower()}]"
    # Capitals that are not English words may be followed by any word ("answer is B based on ...").
    bare = f"[{letters.replace('A', '').replace('I', '')}]" if letters.replace("A", "").replace("I", "") else None
    forms = [rf"{_OPEN}\s*(?P<l>[{letters}{letters.lower()}])\s*{_CLOSE}",            # (B) (b) [B]
             rf"{_OPEN}(?P<l>{upper})(?![A-Za-z0-9])",                                   # "(B" after a prefill
             rf"(?P<l>{upper}){_CLOSED}", rf"(?P<l>{upper.replace('I', '')}){_CONNECTIVE}",
             rf"(?P<l>{lower}){_CLOSED}"]
    if bare:
        forms.append(rf"(?P<l>{bare})(?![A-Za-z0-9'’])")
    return "(?:" + "|".join(f"(?:{_L}{f})".replace("?P<l>", f"?P<l{k}>") for k, f in enumerate(forms)) + ")"


def _rename(pattern: str, n: int) -> str:
    """``pattern`` with its label groups renamed apart (``l0`` -> ``l<n>_0``), to combine it with others."""
    return re.sub(r"\?P<l(\d*)>", lambda m: f"?P<l{n}_{m.group(1)}>", pattern)


@lru_cache(maxsize=4)
def _claim_patterns(letters: str) -> tuple[list[re.Pattern], list[re.Pattern], list[re.Pattern]]:
    """``(claims, negations, mentions)``: regexes whose ``l*`` groups hold a label."""
    lab = _label(letters)
    anycase = f"[{letters}{letters.lower()}]"
    cue = (r"(?:answer|option|choice|letter)\s*(?:(?:is|(?:would|should|will|must|might|may|could)\s+be)\s*[:：-]?"
           r"|=|:|-|：|\n)\s*"
           r"(?:probably\s+|likely\s+|definitely\s+|clearly\s+)?(?:option\s+|choice\s+|letter\s+)?")
    verbs = (r"(?:I(?:'d|’d|\s+would|\s+will|'ll)?\s+(?:say|choose|pick|select|go\s+with|guess|answer)|"
             r"I\s+(?:think|believe)(?:\s+(?:it's|it\s+is|it’s|the\s+answer\s+is))?|"
             r"(?:choose|pick|select|go\s+with)|my\s+(?:answer|choice|pick)\s+(?:is|would\s+be)|"
             r"(?:so|thus|therefore|hence)(?:\s+(?:it's|it\s+is|the\s+answer\s+is))?|"
             r"(?:probably|likely|maybe|perhaps|possibly)|(?:could|might|may)\s+(?:also\s+)?be)\s*:?\s*"
             r"(?:option\s+|choice\s+)?")
    verdict = (r"(?=\s+(?:is|seems|appears|looks|would\s+be|should\s+be)\s+(?:to\s+be\s+)?(?:the\s+)?(?:most\s+)?"
               r"(?:correct|right|best|true|accurate|answer|likely|plausible|appropriate|suitable)\b)")
    claim_sources = [
        (rf"^\s*(?:(?:option|choice|answer|best\s+option)\s*[:：]?\s*)?{_OPEN}?\s*(?P<l>{anycase})\s*{_CLOSE}?"
        r"\s*[.:：]?\s*(?:\n|$)"),                                                  # the whole (first line): "B", "(B)"
        rf"^\s*{_OPEN}\s*(?P<l>{anycase})\s*{_CLOSE}",                              # "(B) text"
        rf"^\s*(?P<l>{anycase})\s*(?:[.:)：,]|\s+-|\s*–|\s*—)",                      # "B. text", "B, because", "b) x"
        rf"^\s*{_rename(lab, 1)}",                                                  # "B because", "C is right"
        rf"^\s*{_OPEN}?(?:option|choice)\s+{_rename(lab, 9)}",                        # "Option B: he closes it"
        cue + _rename(lab, 2),                                                      # "answer is B", "Option: (C)"
        verbs + _rename(lab, 3),                                                    # "I'd say B", "so C."
        rf"(?:option\s+|choice\s+)?{_rename(lab, 4)}{verdict}",                     # "B is the correct answer"
        (rf"{_rename(lab, 5)}\s*(?:or|/|and|&|,)\s*(?:option\s+)?{_OPEN}?\s*(?P<l6>[{letters}])"
         r"(?![A-Za-z0-9'’])"),                                                      # "B or D", "B and C", "B, C"
        rf"(?:答案|选项|選項|选择|選擇|应选|應選|选|選)\s*(?:是|为|為|应该是|應該是)?\s*[:：]?\s*[(（]?\s*(?P<l7>{anycase})(?![A-Za-z])",
        rf"(?<![A-Za-z])(?P<l8>[{letters}])\s*(?:是正确|是對|是对|正确|正確|选项正确)",
    ]
    negation_sources = [
        (rf"\b(?:not|n't|isn't|never|neither|nor|except|exclude|excluding|eliminate|rule\s+out|ruling\s+out)\s+"
        rf"(?:option\s+|choice\s+)?{lab}"),
        (rf"(?:option\s+|choice\s+)?{lab}(?=\s+(?:is|seems|appears|looks)\s+(?:not|wrong|incorrect|false|"
        rf"unlikely|implausible|impossible|ruled\s+out)\b)"),
        rf"(?:option\s+|choice\s+)?{lab}(?=\s+(?:and|,)\s+(?:option\s+)?[{letters}]\s+are\s+(?:not|wrong|incorrect))",
        rf"(?<=\band\s)(?:option\s+)?{lab}(?=\s+are\s+(?:not|wrong|incorrect))",
        rf"不是\s*(?P<l>{anycase})(?![A-Za-z])",
    ]
    mention_sources = [
        rf"{_OPEN}\s*(?P<l>[{letters}])\s*{_CLOSE}",                                # "(B)" anywhere
        rf"\b(?:is|it's|it’s|be)\s+{_OPEN}?(?P<l>[{letters}]){_CLOSED}",            # "it is B."
    ]
    claims = [re.compile(s) for s in claim_sources]
    negations = [re.compile(s) for s in negation_sources]
    mentions = [re.compile(s) for s in mention_sources]
    return claims, negations, mentions


def _letters_found(patterns: list[re.Pattern], text: str) -> list[str]:
    found = []
    for pattern in patterns:
        for m in pattern.finditer(text):
            for name, value in m.groupdict().items():
                if name.startswith("l") and value:
                    found.append(value.upper())
    return found


def _case_insensitive_cues(text: str) -> str:
    """The answer with the cue words in lower case, so one pattern serves "Answer", "ANSWER" and "answer"."""
    return re.sub(r"(?i)\b(answer|option|choice|letter|best option|probably|likely|maybe|perhaps|possibly|"
                  r"so|thus|therefore|hence|could|might|may|be|is|choose|pick|select|go with|say|not|or|"
                  r"correct|right|wrong|incorrect|my|it's|it is)\b", lambda m: m.group(0).lower(), text)


def _by_letter(text: str, letters: str, all_letters: str) -> Choice | None:
    """The choice made by a label (claims, then mentions), or None when no label names an option."""
    claims, negations, mentions = _claim_patterns(all_letters)
    claimed = _letters_found(claims, text)
    if claimed:
        negated = set(_letters_found(negations, text))
        kept = {c for c in claimed if c not in negated} or set(claimed)
        if len(kept) > 1:
            return Choice(None, "ambiguous")
        letter = kept.pop()
        if letter not in letters:
            return Choice(None, "out_of_range")
        return Choice(letters.index(letter), "letter")
    mentioned = set(_letters_found(mentions, text)) - set(_letters_found(negations, text))
    mentioned &= set(letters)
    if len(mentioned) == 1:
        return Choice(letters.index(mentioned.pop()), "letter")
    if len(mentioned) > 1:
        return Choice(None, "ambiguous")
    return None


# ------------------------------------------------------------------------------------------ numbers
_NUMBER = re.compile(r"(?i)\b(?:option|choice)\s*(?:number\s*|no\.?\s*|#\s*)?[(\[]?(\d{1,2})[)\]]?(?![\d.]\d)"
                     r"|\b(?:the\s+)?(" + "|".join(_ORDINALS) + r")\s+(?:option|choice|one|answer)\b")


def _by_number(text: str, options: Sequence[str]) -> Choice | None:
    """``"Option 2"`` / ``"the second option"``: options counted from 1, unless the options are numbers."""
    found = set()
    for m in _NUMBER.finditer(text):
        found.add(int(m.group(1)) - 1 if m.group(1) else _ORDINALS.index(m.group(2).lower()))
    if not found:
        return None
    if len(found) > 1:
        return Choice(None, "ambiguous")
    index = found.pop()
    texts = [strip_option_prefix(o).strip() for o in options]
    if str(index + 1) in texts and texts.index(str(index + 1)) != index:
        return Choice(None, "ambiguous")  # "option 2" may be the second option or the one whose text is "2"
    return Choice(index, "number") if 0 <= index < len(options) else Choice(None, "out_of_range")


# ------------------------------------------------------------------------------------------ option text
def _negated(words: list[str], start: int) -> bool:
    """Whether one of the three words before ``words[start]`` negates it."""
    return any(w in _NEGATORS or w.endswith("nt") and w[:-2] in {"is", "are", "was", "does", "do", "did"}
               for w in words[max(0, start - 3):start])


def _occurrences(words: list[str], phrase: list[str]) -> list[int]:
    n = len(phrase)
    return [i for i in range(len(words) - n + 1) if words[i:i + n] == phrase]


_TEXT_CUE = re.compile(r"(?:answer|option|choice)\s+(?:is|would be|should be)$|^(?:it is|its|it s)$")


def _by_text(text: str, options: Sequence[str], letters: str) -> Choice | None:
    """The option whose text the answer states (see rule 3 of the module docstring)."""
    norm = normalize(text)
    texts = [normalize(strip_option_prefix(o, letter)) for letter, o in zip(letters, options)]
    exact = [i for i, t in enumerate(texts) if t and t == norm]
    if len(exact) == 1:
        return Choice(exact[0], "option_text")
    if len(exact) > 1:
        return Choice(None, "ambiguous")
    words = norm.split()
    clause_ends, count = set(), 0
    for clause in re.split(r"[.,;:!?\n。，]+", text):
        count += len(normalize(clause).split())
        clause_ends.add(count - 1)
    present, stated = set(), set()  # options the answer names at all / names as its answer
    for i, t in enumerate(texts):
        phrase = t.split()
        for start in _occurrences(words, phrase) if phrase else ():
            if _negated(words, start):
                continue
            present.add(i)
            if len(phrase) > 1 or _short_option_stated(words, start, clause_ends):
                stated.add(i)
    if not stated:
        return None
    longest = max(stated, key=lambda i: len(texts[i]))
    if all(f" {texts[i]} " in f" {texts[longest]} " for i in present):
        return Choice(longest, "option_text")
    return Choice(None, "ambiguous")  # "red or green"; "There are 3 people in 2 rooms"


def _short_option_stated(words: list[str], start: int, clause_ends: set[int]) -> bool:
    """A one-word option counts where a grader reads it as the answer: the first word, the last word of a
    clause (``"It moves to the left."``; ``clause_ends`` holds those word positions), after an answer cue, the last word after ``is``/``are`` (``"the count is 3"``), or the only number in the
    answer (``"There are 3 people."``)."""
    before = " ".join(words[max(0, start - 3):start])
    if _TEXT_CUE.search(before) or _TEXT_CUE.search(" ".join(words[max(0, start - 2):start])):
        return True
    if words[start].isdigit():  # a number counts only as the answer's only number: "There are 3 people."
        return sum(w.isdigit() and not _negated(words, i) for i, w in enumerate(words)) == 1
    if start == 0 or start in clause_ends:
        return True
    return start == len(words) - 1 and words[start - 1] in {"is", "are", "was", "be"}


def _by_prefix(text: str, options: Sequence[str], letters: str) -> Choice | None:
    """An answer cut short: the beginning of exactly one option's text (the last word may be cut too)."""
    words = normalize(text).split()
    if len(words) < MIN_PREFIX_WORDS:
        return None
    texts = [normalize(strip_option_prefix(o, letter)).split() for letter, o in zip(letters, options)]

    def starts(option: list[str]) -> bool:
        if len(option) <= len(words):
            return False
        head, last = words[:-1], words[-1]
        return option[:len(head)] == head and option[len(head)].startswith(last)

    found = [i for i, t in enumerate(texts) if starts(t)]
    if len(found) == 1:
        return Choice(found[0], "option_prefix")
    return Choice(None, "ambiguous") if found else None


_STOPWORDS = {"a", "an", "the", "is", "are", "was", "were", "be", "in", "on", "of", "to", "and", "or", "it", "its",
              "this", "that", "he", "she", "they", "his", "her", "their", "with", "at", "by", "for", "from", "video",
              "person", "someone", "answer", "option", "correct", "i", "think"}


def _stem(word: str) -> str:
    """A crude stem: ``closes``/``closing``/``closed`` -> ``clos``, ``running`` -> ``run``."""
    for suffix in ("ing", "es", "ed", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            return word[:-1] if len(word) > 2 and word[-1] == word[-2] and word[-1] not in "aeiouls" else word
    return word


def _content(text: str) -> set[str]:
    return {_stem(w) for w in normalize(text).split() if w not in _STOPWORDS}


def _by_content_words(text: str, options: Sequence[str], letters: str) -> Choice | None:
    """A paraphrase that carries every word that sets one option apart (``"He closes the window"`` for
    ``"The man closes the window."``): at least two such words, none of another option's, no negation."""
    words = normalize(text).split()
    if any(w in _NEGATORS or w in {"none", "neither"} for w in words):
        return None
    said = _content(text)
    sets = [_content(strip_option_prefix(o, letter)) for letter, o in zip(letters, options)]
    own = [t - set().union(*(u for j, u in enumerate(sets) if j != i)) for i, t in enumerate(sets)]
    found = [i for i, d in enumerate(own) if len(d) >= 2 and d <= said]
    touched = [i for i, d in enumerate(own) if d & said]
    if len(found) == 1 and touched == found:
        return Choice(found[0], "option_words")
    return None


def _label_stripped(text: str) -> str:
    return re.sub(r"^\s*(?:answer|best option|option)\s*[:：]\s*", "", text, flags=re.IGNORECASE)


# ------------------------------------------------------------------------------------------ entry points
def parse_choice(response: str, options: Sequence[str]) -> Choice:
    """The option a free-form ``response`` chooses, and how that was decided (module docstring).

    Args:
        response: the model's answer (reasoning in ``<think>`` blocks and markdown are ignored).
        options: the options shown to the model, in order (labels already in the data, ``"A. x"``,
            are ignored when matching text).

    Returns:
        A :class:`Choice`. ``index`` None must be graded as "unparsed" (wrong), never replaced by a
        guess.
    """
    if not options:
        raise ValueError("parse_choice needs at least one option")
    letters = option_letters(len(options))
    text = _MARKUP.sub("", _THINK.sub(" ", response or "")).strip()
    if not text:
        return Choice(None, "empty")
    cued = _case_insensitive_cues(text)
    # An answer that is exactly one option's text is that option, even when it starts like a label.
    norm = normalize(text)
    exact = [i for i, (letter, o) in enumerate(zip(letters, options)) if normalize(strip_option_prefix(o, letter)) == norm]
    if len(exact) == 1 and len(norm) > 1:
        return Choice(exact[0], "option_text")
    prefix = _by_prefix(text, options, letters)  # "C prepares vegetables by ..." is option text, not label C
    if prefix is not None and prefix.index is not None:
        return prefix
    for rule in (lambda: _by_letter(cued, letters, LETTERS), lambda: _by_number(cued, options),
                 lambda: _by_text(_label_stripped(text), options, letters),
                 lambda: _by_prefix(_label_stripped(text), options, letters),
                 lambda: _by_content_words(_label_stripped(text), options, letters)):
        choice = rule()
        if choice is not None:
            return choice
    return Choice(None, "unparsed")


def extract_choice(response: str, options: Sequence[str]) -> int | None:
    """The index of the option ``response`` chooses, or None (see :func:`parse_choice`)."""
    return parse_choice(response, options).index

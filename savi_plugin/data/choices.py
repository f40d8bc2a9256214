"""The one multiple-choice answer parser of the project: which option does a free-form answer choose?

Used wherever a model's answer to a lettered question is graded: the evaluation tasks
(:mod:`savi_plugin.eval.answers`) and the answer judge of the preference-data generators. It lives in
the lowest layer (``data``) so that every layer above may import it.

API:

* :func:`parse_choice` -> :class:`Choice` ``(index, method)``: ``index`` is ``0..len(options)-1`` or
  None; ``method`` says which rule decided (``letter``, ``number``, ``option_text``, ``option_prefix``,
  ``option_meaning``, ``option_order``, ``scored``)
  or, for None, why nothing was chosen (``empty``, ``ambiguous``, ``contradiction``, ``out_of_range``,
  ``retracted``, ``unparsed``).
* :func:`extract_choice`: the index alone.
* :data:`LETTERS`, :func:`option_letters`, :func:`strip_option_prefix`: option labels.

It reads an answer the way a careful human grader does, and when in doubt it answers "unparsed"
rather than guess (a random or first-letter fallback, as in lmms-eval's EgoSchema/NExT-QA parsers,
adds noise to a score; a false match makes a wrong answer count as right). First the parts that are not
the answer are set aside (:mod:`savi_plugin.data.answer_text`: reasoning blocks, markdown, JSON keys and
``<answer>`` tags, a repeated prompt — a reply that only repeats it is ``echo``; an answer written after the
repeated instruction on its line, ``"Answer with the option's letter ... directly. A"``, is kept — and everything before
a self-correction such as ``"B. Wait, actually E."`` or ``"My previous answer (A) was wrong"``, a new turn the
model went on with after answering). A pick taken back by a correction (``"C -- actually, let me reconsider ... I
can't tell"``, ``"B. Oops, I miscounted"``) counts only where the correction names one option itself; a reply that
goes through the options one line each (``"A) Three - too few\nB) Four - possible"``) is read at its separate
conclusion, else at its one line marked right, never at its first label. Then:

0. **A label with its text**: ``"(B) text"`` / ``"B. text"`` whose text is another option's
   (``"D. left"`` where ``left`` is C) is a ``contradiction``, and so is a short reply whose words beside the label
   describe another option (``"Answer: A, a travel vlog."``, ``"The answer is B. There are 4 people."`` where 4 is
   C, ``"B. The person picks the cup up"``); options that are letters themselves
   (MVBench character_order) are read by their text where the reply is no label. A marked list of the options
   (``"- [x] C"``, ``"(B) text - yes"``) is the option marked, and a reply that scores every option
   (``"A: 0.1, B: 0.7, C: 0.2"``, a table of ``Yes``/``No`` or ticks) is the one option scored highest.
1. **Claims**: statements that pick an option by its label. ``"B"``, ``"(B)"``, ``"B. text"``,
   ``"B, because ..."``, ``"Answer: B"``, ``"The answer is (B)"``, ``"Best option:(B"``, ``"B is the
   correct answer"``, ``"Looking at the options, B is correct"``, ``"I'd say B"``, ``"I choose C"``,
   ``"so B."``, ``"答案是B"``, ``"选项B"``, ``"Letter B."``, ``"I would choose A over B"`` (the option passed over is
   not claimed), ``"Option 2"`` / ``"the second option"`` (by position), and a reply that is only ``"Answer is 2"``
   where no option states a number or a quantity (else the 2 may be a count: ``"two"``, ``"a few"``).
   Hedged claims (``"maybe B"``, ``"could be D"``, ``"B or D"``) are claims too, so an answer that
   hedges between two options (``"Maybe B, or it could be D"``) is ``ambiguous``; a pick with a weaker
   alternative after ``but`` (``"Probably B, but it could be D"``) is the pick. A negated label
   (``"not A"``, ``"A is wrong"``, ``"rule out C"``, ``"I wouldn't pick A"``, ``"B does not appear"``: the one rule
   set of :mod:`~savi_plugin.data.choice_labels` names every form) is removed from the claims, whatever else the reply
   says (only negated labels: ``negated``); a pick beside it stands (``"A does not appear; B does."`` is B). JSON (``{"answer": "C"}``) and ``我认为是C`` are claims, and so are the answer cues of other
   languages (``"La respuesta es B"``, ``"Ответ: B"``, ``"答えはC"``, ``"정답은 D입니다"``, ``"Bです"``) and ordinals
   (``"the 3rd one"``, ``"1st option"``, ``"the one in the middle"``, ``"the second-to-last option"``,
   ``"Option III"``); a list of negated labels that leaves one option (``"Not A, B, C or D."`` of five) is that option. A reply that is only labels naming several
   options (``"B C"``, ``"(A)(C)"``, ``"B\\nC"``, ``"A. B. C. D."``, ``"B then A"``) is ``ambiguous``, and so are two
   different labels stated outright without a correction between them (``"Answer: B. Answer: C."``, ``"A\\nThe correct answer is C."``); one label
   stated outright beside others only listed (``"Answer: B\\nOptions considered: A, C"``) is that label. A reply that
   weighs several labels and then commits to one in its last clause (``"I'm torn between A and B; I'll say A."``,
   ``"... so the answer is B."``) or answers its own question with one label (``"(B) or (C)? (C)."``) is that label,
   unless the commitment hedges (``"B or C? Maybe C."``). A claim
   that names a letter beyond the options (``"The answer is F"`` with five options) is ``out_of_range``.
2. **Mentions**, only when there is no claim: a parenthesised ``(B)`` or ``it is B.`` in a sentence;
   two different mentioned options are ``ambiguous``.
3. **Option text**: the answer states an option's text (case, punctuation and articles ignored);
   an option contained in a longer answer counts only when no other option is (a longer option that
   contains a shorter one wins), it is not negated (``"not the dog"``), and, for a one-word option
   (``"no"``, ``"left"``, ``"3"``), only where a grader reads it as the answer (the whole answer, its
   first word standing alone, or after ``"answer is"``), so ``"There is no correct option."``, ``"No idea."``
   and a refusal (``"Yes, I can help. Please provide the video."``) do not choose ``"no"``/``"yes"``.
   An option stated and rejected in the next clause (``"A cat? No way."``) is not stated, and a short reply that
   offers two possibilities with a bare ``or`` (``"It looks like a bedroom or a living room."``) is ``ambiguous``.
4. **Option prefix**: an answer cut short by the generation limit (EgoSchema's long options under a
   16-token limit) is the beginning of exactly one option, at least :data:`MIN_PREFIX_WORDS` words long
   (:data:`MIN_CUT_PREFIX_WORDS` when it stops mid-sentence).
5. **Option meaning**: a paraphrase or translation of one option's content, read through
   :mod:`savi_plugin.data.lexicon` (synonyms, kinds, the common words of video questions in nine languages):
   the answer names words that set exactly one option apart (all of them, ``"He shuts the door."``; at least half
   with few words of its own, ``"There's a kid playing with a kite."``; or it says nothing that is not that
   option's, ``"A dog."`` for ``"a woman walking a dog"``), in clauses that are not negated (``"The man doesn't
   open the door; he knocks on it."`` is the knocking), with the option's subject and setting if it names any
   (``"The woman knocks"`` and ``"He opens the window"`` are not ``"the man opens the door"``). Reasoning that
   names several options is read at its conclusion (``"..., so she turned back because her friend called"``).
6. **Option order**: options that tell the same events in different orders are told apart by the order the
   answer tells them (``"First he opens the door and after that he switches the light on"``).

Capital ``A`` and ``I`` are English words (and so is ``C`` where options begin with it: EgoSchema's camera
wearer, ``"C throws the clothes"``), so in running text they count as labels only when the
sentence makes them one (``"A."``, ``"(A)"``, ``"A because"``, ``"A, ..."``, or followed by option
A's own text); ``"A man runs"`` and ``"I think so"`` name no option. Lower-case letters count only in
the same closed forms (``"b"``, ``"(b)"``, ``"answer: b."``), so ``"the answer is a dog"`` is read by
its text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

from savi_plugin.data.answer_text import (
    after_correction,
    after_retraction,
    last_correction,
    clean,
    drop_prompt_echo,
    first_word_stands_alone,
    is_non_answer,
)
from savi_plugin.data.choice_labels import (
    POOR_ANSWER,
    REJECTION,
    by_letter,
    by_number,
    case_insensitive_cues,
    concludes,
)
from savi_plugin.data.lexicon import GENERIC, NO, PARTICLES, YES, concepts, negated, read
from savi_plugin.data.options import (
    LETTERS,
    Choice,
    begins,
    normalize,
    option_letters,
    strip_option_prefix,
)

MIN_PREFIX_WORDS = 5
"""An answer cut short must carry at least this many words of one option's text to match it."""
MAX_NAMED_WORDS = 4
"""An answer that only names words of one option (``"A dog."``) chooses it when at most this many words set the
option apart (a short option, not one of EgoSchema's long summaries, which a partial answer does not state)."""
MIN_CUT_PREFIX_WORDS = 2
"""... or this many when it ends mid-sentence (no final ``.``/``!``/``?``), as a reply cut by the token limit does."""

_NEGATORS = {"not", "no", "never", "neither", "nor", "nobody", "noone", "nothing", "none", "isn't", "isnt", "aren't", "arent", "wasn't", "wasnt",
             "doesn't", "doesnt", "don't", "dont", "cannot", "can't", "cant", "without"}


# ------------------------------------------------------------------------------------------ option text
def _negated(words: list[str], start: int, clause_ends: set[int] = frozenset()) -> bool:
    """Whether one of the three words before ``words[start]`` in its clause negates it (``"Not 2, it's 3"``: 3 is
    not negated; ``clause_ends`` holds the positions of the last words of clauses)."""
    lo = max([start - 3, *(p + 1 for p in clause_ends if p < start)], default=0)
    return any(w in _NEGATORS or w.endswith("nt") and w[:-2] in {"is", "are", "was", "does", "do", "did"}
               for w in words[max(0, lo):start])


def _occurrences(words: list[str], phrase: list[str]) -> list[int]:
    n = len(phrase)
    return [i for i in range(len(words) - n + 1) if words[i:i + n] == phrase]


#: a prefix written apart that turns a word into another: ``counter-clockwise``, ``anti clockwise``, ``non-stop``
_COUNTER = frozenset({"counter", "anti", "non"})
_TEXT_CUE = re.compile(r"(?:answer|option|choice)\s+(?:is|would be|should be)$|^(?:it is|its|it s)$")


def _by_text(text: str, options: Sequence[str], letters: str) -> Choice | None:
    """The option whose text the answer states (see rule 3 of the module docstring); where the whole answer names
    several, the one its conclusion states (``"... pointing to the right. So the final direction is right."``)."""
    choice = _text_stated(text, options, letters)
    if choice is not None and choice.method == "ambiguous":
        last = None
        for last in _CONCLUDING.finditer(text):
            pass
        if last is not None and text[last.end():].strip():
            concluded = _text_stated(text[last.end():], options, letters)
            if concluded is not None and concluded.index is not None:
                return concluded
    return choice


#: a hedge between two values: ``"Between 2 and 3 times."``, ``"somewhere between the cup and the bowl"``
_BETWEEN = re.compile(r"(?i)\bbetween\s+(?P<a>[^,.;!?\n]+?)\s+(?:and|or)\s+(?P<b>[^,.;!?\n]+?)\s*(?=[,.;!?\n]|$)")


def _hedged_between(text: str, texts: list[str]) -> bool:
    """Whether ``text`` hedges between two options (:data:`_BETWEEN`), each side the beginning of one option's text,
    where no option itself says ``between``."""
    if any("between" in t.split() for t in texts):
        return False
    for m in _BETWEEN.finditer(text):
        sides = [[i for i, t in enumerate(texts) if begins(normalize(m[side]).split(), t.split())] for side in "ab"]
        if all(len(found) == 1 for found in sides) and sides[0] != sides[1]:
            return True
    return False


def _text_stated(text: str, options: Sequence[str], letters: str) -> Choice | None:
    """:func:`_by_text` on one stretch of text."""
    norm = normalize(text)
    texts = [normalize(strip_option_prefix(o, letter)) for letter, o in zip(letters, options)]
    if _hedged_between(text, texts):
        return Choice(None, "ambiguous")
    exact = [i for i, t in enumerate(texts) if t and t == norm]
    if len(exact) == 1:
        return Choice(exact[0], "option_text")
    if len(exact) > 1:
        return Choice(None, "ambiguous")
    words = norm.split()
    answer_like = (not is_non_answer(text), first_word_stands_alone(text))
    clause_ends, count = set(), 0
    for clause in re.split(r"[.,;:!?\n。，]+", text):
        count += len(normalize(clause).split())
        clause_ends.add(count - 1)
    present, stated = set(), set()  # options the answer names at all / names as its answer
    for i, t in enumerate(texts):
        phrase = t.split()
        for start in _occurrences(words, phrase) if phrase else ():
            if _negated(words, start, clause_ends) or start and words[start - 1] in _COUNTER:
                continue  # "not the dog"; "counter-clockwise" is not "clockwise"
            present.add(i)
            if len(phrase) > 1 or _short_option_stated(words, start, clause_ends, answer_like):
                stated.add(i)
    if not stated:
        return None
    longest = max(stated, key=lambda i: len(texts[i]))
    present = {i for i in present if not texts[i].isdigit()} | stated  # "2 men and 1 woman, so 3": counts, not picks
    if all(f" {texts[i]} " in f" {texts[longest]} " for i in present):
        if len(words) > len(texts[longest].split()) and _names_another(text, texts[longest].split(), options, letters, longest):
            return Choice(None, "ambiguous")  # "The woman is cooking while talking on the phone"
        return Choice(longest, "option_text")
    return Choice(None, "ambiguous")  # "red or green"; "There are 3 people in 2 rooms"


def _names_another(text: str, phrase: list[str], options: Sequence[str], letters: str, index: int) -> bool:
    """Whether the sentence of an answer that states one option's text also names what sets another option apart
    (``"The woman is cooking while talking on the phone"``)."""
    _, own, cjk = _option_meanings(tuple(strip_option_prefix(o, letter) for letter, o in zip(letters, options)))
    for sentence in re.split(r"[.!?\n。！？]+", text):
        words = normalize(sentence).split()
        starts = set(_occurrences(words, phrase))
        if not starts:
            continue
        rest = [w for k, w in enumerate(words) if not any(s <= k < s + len(phrase) for s in starts)]
        named = _clause_meanings(" ".join(rest), cjk)
        if any(d & named for j, d in enumerate(own) if j != index):
            return True
    return False


_CONCLUDING_WORDS = frozenset({"so", "therefore", "thus", "hence", "total", "altogether", "overall"})


def _short_option_stated(words: list[str], start: int, clause_ends: set[int],
                         answer_like: tuple[bool, bool] = (True, True)) -> bool:
    """A one-word option counts where a grader reads it as the answer: after an answer cue, and, in an answer
    that is not a refusal or a reply to something else (``answer_like[0]``, see :mod:`~savi_plugin.data.answer_text`),
    the first word when it stands alone (``answer_like[1]``: ``"No, ..."``, not ``"No idea"``), the last word of a clause (``"It moves to the left."``; ``clause_ends`` holds
    those word positions), the last word after ``is``/``are`` (``"the count is 3"``), or the only number in the
    answer (``"There are 3 people."``)."""
    before = " ".join(words[max(0, start - 3):start])
    if _TEXT_CUE.search(before) or _TEXT_CUE.search(" ".join(words[max(0, start - 2):start])):
        return True
    if not answer_like[0]:
        return False
    if words[start].isdigit():  # a number counts only as the answer's only number: "There are 3 people.", or
        clause = max((e for e in clause_ends if e < start), default=-1) + 1  # "..., so in total 5 balls."
        concluded = (start >= len(words) - 2 and _CONCLUDING_WORDS & set(words[clause:start])  # "..., so 3."
                     and sum(w.isdigit() for w in words[clause:]) == 1)  # not "So 3 or 4."
        return bool(concluded) or sum(w.isdigit() and not _negated(words, i, clause_ends)
                                      for i, w in enumerate(words)) == 1
    if start in clause_ends:
        return True
    if start == 0:
        return answer_like[1]
    return start == len(words) - 1 and words[start - 1] in {"is", "are", "was", "be"}


#: a yes or a no said as a phrase (``"Not at all."``, ``"Of course."``) or an adverb standing alone (``"Absolutely,"``)
_YES_NO_PHRASE = re.compile(r"(?i)\s*(?:(?P<no>not\s+at\s+all|no\s+way|of\s+course\s+not|(?:absolutely|definitely|certainly)"
                            r"\s+not|never)|of\s+course)\s*(?:[.,!;:]|$)")
_SURE = frozenset({"absolutely", "definitely", "certainly", "indeed", "affirmative"})


def _by_yes_no(text: str, options: Sequence[str], letters: str) -> Choice | None:
    """Options ``yes`` and ``no``: an answer that is, or opens with, a yes or a no in any language of
    :mod:`~savi_plugin.data.lexicon` (``"Nope."``, ``"Sí."``, ``"Нет"``, ``"はい"``, ``"是的，他在跑。"``)."""
    texts = [normalize(strip_option_prefix(o, letter)) for letter, o in zip(letters, options)]
    if "yes" not in texts or "no" not in texts or is_non_answer(text):
        return None
    phrase = _YES_NO_PHRASE.match(text)
    if phrase is not None:
        return Choice(texts.index("no" if phrase.group("no") else "yes"), "option_text")
    m = re.match(r"\s*([^\W\d_]+)\s*(?:[.,!;:，。！、]|$)", text)
    if m is None:
        return None
    word = unicodedata.normalize("NFC", m.group(1).lower())
    if word in _SURE:
        word = "yes"
    said = {"yes"} if word in YES else {"no"} if word in NO else set()
    return Choice(texts.index(said.pop()), "option_text") if said else None


def _by_prefix(text: str, options: Sequence[str], letters: str) -> Choice | None:
    """An answer cut short: the beginning of exactly one option's text (the last word may be cut too)."""
    words = normalize(text).split()
    cut = not re.search(r"[.!?。]\s*$", text)  # a reply stopped by the token limit ends mid-sentence
    if len(words) < (MIN_CUT_PREFIX_WORDS if cut else MIN_PREFIX_WORDS):
        return None
    texts = [normalize(strip_option_prefix(o, letter)).split() for letter, o in zip(letters, options)]

    found = [i for i, t in enumerate(texts) if len(t) > len(words) and begins(words, t)]
    if len(found) == 1:
        return Choice(found[0], "option_prefix")
    return Choice(None, "ambiguous") if found else None


#: who does it: an answer names them by a pronoun (``"He shuts the door"``)
_SUBJECTS = frozenset({"man", "woman", "child", "person", "c", "boy", "girl", "baby"})


#: clause boundaries: negation is read per clause (``"He doesn't open the door; he knocks."``)
_CLAUSE = re.compile(r"[.;,!?\n。，；！？、]+|(?i:\b(?:but|however|instead|rather|whereas)\b)|(?=\b[Ww]ithout\b)")
#: an answer that says it cannot tell picks nothing, whatever it names
_UNSURE = re.compile(r"(?i)\b(?:unclear|not\s+clear|hard\s+to\s+(?:tell|say)|impossible\s+to|can(?:no|')?t\s+(?:see|tell))\b")
_HAN_OPTION = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")


_PARTICLES_ANY = PARTICLES | {f"~{p}" for p in PARTICLES}


@lru_cache(maxsize=256)
def _option_meanings(texts: tuple[str, ...]) -> tuple[list[set[str]], list[set[str]], list[str]]:
    """``(concepts, own, cjk)`` of each option: its concepts (:func:`~savi_plugin.data.lexicon.concepts`), those no
    other option has, and its text where it is written in Chinese, Japanese or Korean (found inside an answer)."""
    cjk = [re.sub(r"[\s\W]+", "", t) if _HAN_OPTION.search(t) else "" for t in texts]
    sets = [_clause_meanings(t, cjk) for t in texts]
    own = [t - set().union(*(u for j, u in enumerate(sets) if j != i)) for i, t in enumerate(sets)]
    own = [d - _PARTICLES_ANY or d for d in own]  # "in" tells options apart only where nothing else does
    kept = set().union(*own)
    sets = [{c for c in t if c.lstrip("~") not in PARTICLES or c in kept} for t in sets]
    return sets, own, cjk


def _clause_meanings(text: str, cjk: Sequence[str]) -> set[str]:
    """The concepts ``text`` names, clause by clause; those of a negated clause marked ``~`` (``"The person does not
    leave the room"`` names ``~leav``, ``~room``: an option saying the same, not one saying the opposite)."""
    named: set[str] = set()
    for clause in _CLAUSE.split(text):
        if clause and not clause.isspace():
            said, denies = read(clause)
            found = said | {f"<{c}>" for c in cjk if c and c in clause}
            named |= {f"~{c}" for c in found} if denies else found
    return named


def _by_meaning(text: str, options: Sequence[str], letters: str) -> Choice | None:
    """A paraphrase or translation of one option's content (rule 5 of the module docstring): read through
    :mod:`~savi_plugin.data.lexicon`, the answer's affirmed clauses name words that set exactly one option apart,
    at least half of them (or all the answer says belongs to that option: ``"A dog."`` for ``"a woman walking a
    dog"``), and no negated clause names them."""
    if is_non_answer(text) or _UNSURE.search(text) or text.rstrip().endswith(("?", "？")):
        return None
    choice = _meaning(text, options, letters)
    if choice is not None and choice.method == "ambiguous":  # reasoning that ends "..., so she turned back because ..."
        last = None
        for last in _CONCLUDING.finditer(text):
            pass
        if last is not None and text[last.end():].strip():
            concluded = _meaning(text[last.end():], options, letters)
            if concluded is not None and concluded.index is not None:
                return concluded
    return choice


#: where a reasoning states its conclusion (``"so"``, ``"I pick"`` after the options listed)
_CONCLUDING = re.compile(r"(?i)\b(?:so|therefore|thus|hence|in\s+conclusion|which\s+means|this\s+means|"
                         r"I\s+(?:pick|choose|select)|I(?:'ll|\s+will)\s+(?:pick|choose|go\s+with))\b")


def _meaning(text: str, options: Sequence[str], letters: str) -> Choice | None:
    """:func:`_by_meaning` on one stretch of text."""
    sets, own, cjk = _option_meanings(tuple(strip_option_prefix(o, letter) for letter, o in zip(letters, options)))
    kept = set().union(*own)
    affirmed = {c for c in _clause_meanings(text, cjk) if c.lstrip("~") not in PARTICLES or c in kept}
    denied = {c[1:] for c in affirmed if c.startswith("~")}
    touched = [i for i, d in enumerate(own) if d & affirmed]
    if len(touched) > 1:  # "C is cooking food in the kitchen": all of "C prepares a meal", one word of "C cleans the kitchen"
        whole = [i for i in touched if len(own[i]) >= 2 and own[i] <= affirmed]
        if len(whole) != 1 or any(2 * len(own[j] & affirmed) >= len(own[j]) for j in touched if j != whole[0]):
            return Choice(None, "ambiguous")
        touched = whole
    if not touched:
        return _combination(affirmed, sets)
    i = touched[0]
    hit = own[i] & affirmed
    subjects = sets[i] & _SUBJECTS
    if subjects and affirmed & _SUBJECTS and not affirmed & subjects:
        return None  # "The man is reading a book" is not "The woman is reading a book"
    if own[i] & denied or _labelled_otherwise(text, letters, i):
        return None
    setting = sets[i] - own[i] - _SUBJECTS  # what the option shares with others: "door" in "the man opens the door"
    stated = {c for c in affirmed if not c.startswith("~")}
    if setting and not setting & (stated | denied) and stated - sets[i]:
        return None  # "He opens the window" is not "the man opens the door"
    full = own[i] <= affirmed  # every word that sets it apart: "He shuts the door."
    most = (2 * len(hit) >= len(own[i]) and len(affirmed - sets[i]) < len(hit)  # "There's a kid playing with a kite."
            and hit - GENERIC)
    only = affirmed <= sets[i] and len(own[i]) <= MAX_NAMED_WORDS and hit - GENERIC  # "A dog." for "a woman walking a dog"
    return Choice(i, "option_meaning") if full or most or only else None


def _combination(affirmed: set[str], sets: list[set[str]]) -> Choice | None:
    """Options told apart only by a combination of shared words (``"The woman wearing red"`` among the man/woman in
    the blue/red shirt; ``"Running away from the stop"``): the one option whose concepts hold all of the two or more
    option words the answer says, where the answer says at most one word no option has."""
    if any(c.startswith("~") for c in affirmed):
        return None
    known = set().union(*sets)
    said = affirmed & known
    holders = [i for i, t in enumerate(sets) if said <= t]
    if len(said) >= 2 and len(holders) == 1 and len(affirmed - known) <= 1:
        return Choice(holders[0], "option_meaning")
    return None


def _labelled_otherwise(text: str, letters: str, index: int) -> bool:
    """Whether the answer opens with another option's label (``"(C) ..."``, ``"C. ..."``, ``"C C unpacks ..."``)."""
    m = re.match(r"\s*(?:[(\[]([A-Z])[)\]]|([A-Z])[.:)]|([A-Z])\s+(?=\3\b))", text)
    label = m and next(g for g in m.groups() if g)
    return bool(label) and label in letters and label != letters[index]


#: where a sentence moves on to the next event: ``then``, ``after that``, ``before``; ``after`` reverses the order
#: (``"He turns on the light after opening the door"``)
_NEXT_EVENT = re.compile(r"(?i)(?:,\s*|\s+)(?:and\s+)?(?:then|afterwards?|after\s+that|next|later|subsequently|"
                         r"followed\s+by|before)\b|;|(?P<after>(?:,\s*|\s+)after\b)")
_LEADING_AFTER = re.compile(r"(?i)^\s*after\s+([^,]+),(.*)$", re.DOTALL)


def _events(text: str) -> list[str]:
    """The events ``text`` tells, in the order they happen."""
    m = _LEADING_AFTER.match(text)
    if m:  # "After X, Y"
        return [m.group(1), *_events(m.group(2))]
    parts, order, pos = [], [], 0
    for m in _NEXT_EVENT.finditer(text):
        parts.append(text[pos:m.start()])
        order.append(bool(m.group("after")))
        pos = m.end()
    parts.append(text[pos:])
    events = [parts[0]]
    for reverse, part in zip(order, parts[1:]):
        events = [*events[:-1], part, events[-1]] if reverse else [*events, part]
    return [e for e in events if e.strip()]


def _by_order(text: str, options: Sequence[str], letters: str) -> Choice | None:
    """Options that tell the same events in different orders (``"He opens the door, then turns on the light"`` /
    ``"He turns on the light, then opens the door"``): the one whose events the answer tells in the same order,
    each event named by a word that sets it apart from the option's other events."""
    if is_non_answer(text) or _UNSURE.search(text):
        return None
    told = [concepts(e) for e in _events(text)]
    if len(told) < 2 or any(negated(e) for e in _events(text)):
        return None
    told_by = {i: [concepts(e) for e in _events(strip_option_prefix(o, letter))]
               for i, (letter, o) in enumerate(zip(letters, options))}
    told_by = {i: events for i, events in told_by.items() if len(events) == len(told)}
    if not told_by:
        return None
    found = []
    for i, events in told_by.items():
        apart = [e - set().union(*(f for j, f in enumerate(events) if j != k)) for k, e in enumerate(events)]
        if all(a & t for a, t in zip(apart, told)) and not all(a & t for a, t in zip(apart, reversed(told))):
            found.append(i)
    return Choice(found[0], "option_order") if len(found) == 1 else None


def _label_stripped(text: str) -> str:
    return re.sub(r"^\s*(?:(?:the\s+)?(?:correct\s+|best\s+)?(?:answer|option)(?:\s+is)?|best option)\s*[:：]?\s*", "",
                  text, flags=re.IGNORECASE)


# ------------------------------------------------------------------------------------------ entry points
def parse_choice(response: str, options: Sequence[str]) -> Choice:
    """The option a free-form ``response`` chooses, and how that was decided (module docstring).

    Args:
        response: the model's answer (reasoning in ``<think>`` blocks, markdown, a repeated prompt are
            ignored; see :mod:`savi_plugin.data.answer_text`).
        options: the options shown to the model, in order (labels already in the data, ``"A. x"``,
            are ignored when matching text).

    Returns:
        A :class:`Choice`. ``index`` None must be graded as "unparsed" (wrong), never replaced by a
        guess.
    """
    if not options:
        raise ValueError("parse_choice needs at least one option")
    letters = option_letters(len(options))
    text = clean(response)
    if not text:
        return Choice(None, "empty")
    text = _table_rows(text, options, letters)
    if isinstance(text, Choice):
        return text
    marked = _marked_option(text, options, letters)
    if marked is not None:
        return marked
    scored = _scored_options(text, options, letters)
    if scored is not None:
        return scored
    answer = drop_prompt_echo(text, options, letters)
    if not answer:
        return Choice(None, "echo")  # the reply only repeats the prompt
    listed = _option_list(answer, options, letters)
    if listed is not None:
        return listed
    cue = last_correction(answer)
    corrected = after_correction(answer, cue)
    if corrected is not None and is_non_answer(corrected):
        return Choice(None, "retracted")  # "A. Wait, actually I'm not sure."
    if corrected is not None:
        choice = _read(corrected, options, letters)
        if choice.index is not None:
            return choice
    if cue is not None and _CLAUSE_START.search(answer[:cue.start()]) and (
            not re.fullmatch(r"(?i)actually\s*", cue.group(0)) or re.search(r"(?i)\bno\s*[,.!]?\s*$", answer[:cue.start()])):
        if _read(answer[:cue.start()], options, letters).index is not None:
            return Choice(None, "retracted")  # "C -- actually, let me reconsider ... can't tell": the pick is taken back
    retracted = after_retraction(answer)
    if retracted is not None and "no" not in {normalize(strip_option_prefix(o, c)) for c, o in zip(letters, options)}:
        choice = _read(retracted, options, letters) if retracted else Choice(None, "retracted")
        return choice if choice.index is not None else Choice(None, "retracted")
    return _read(answer, options, letters)


#: where a correction cue starts a clause (``"B. Oops"``, ``"C -- actually,"``), not inside one (``"he actually runs"``);
#: a bare ``"actually"`` that goes on describing (``"A. Actually the man then closes ..."``) takes back only after a ``no``
_CLAUSE_START = re.compile(r"(?:^|[.!?;:,\n…—–-]|\s-)\s*(?:(?:hmm+|no|oh|ah|but)[\s,.!]*)?$", re.IGNORECASE)

#: one line of a per-option list: ``"A) Three - too few"``, ``"B. Running: No."``, ``"Option C: ..."``
_LIST_LINE = re.compile(r"\s*(?:[-•*]\s*)?(?:(?i:option|choice)\s+)?[(\[]?(?P<label>[A-Z])(?:[)\].:]|\s+[-–—:])\s*(?P<text>\S.*)?")
_GOOD = re.compile(r"(?i)\b(?:yes|correct|right|true|possible|plausible|likely|matches|fits|consistent)\b|[✓✔✅☑]")
_BAD = re.compile(r"(?i)\b(?:no|not|incorrect|wrong|false|unlikely|impossible|too\s+(?:few|many|much|little|short|long))\b|n't|[✗✘❌]")


#: a list line's whole verdict saying its option is the answer: ``": correct"``, ``"- yes"``, ``"✅"``
_MARKED_RIGHT = re.compile(r"(?i)[\s:=–—-]*(?:correct|yes|right|true|the\s+answer|[✓✔✅☑])[\s.!]*")


def _option_list(text: str, options: Sequence[str], letters: str) -> Choice | None:
    """A reply that goes through the options one line each (``"A) Three - too few\nB) Four - possible\n..."``): its
    first label is no answer. It is read at its other lines (a concluding statement), else at the one line marked
    as right while every other line is marked wrong, or whose whole verdict is ``correct`` (or a tick) where no
    other line sounds right; else it picks nothing. None when the reply is no such list."""
    lines = text.split("\n")
    listed = [(i, m) for i, m in ((i, _LIST_LINE.fullmatch(line)) for i, line in enumerate(lines)) if m is not None]
    labels = [m.group("label") for _, m in listed]
    if len(listed) < 2 or len(set(labels)) != len(labels) or not set(labels) <= set(letters):
        return None
    at = {i for i, _ in listed}
    rest = "\n".join(line for i, line in enumerate(lines) if i not in at).strip()
    if rest:
        choice = _read(rest, options, letters)
        if choice.index is not None:
            return choice
    verdicts = {}  # each line's words beside its option's own text ("B. Right: yes" -> ": yes")
    for _, m in listed:
        own = strip_option_prefix(options[letters.index(m.group("label"))], m.group("label")).strip()
        said = m.group("text") or ""
        verdicts[m.group("label")] = re.sub(re.escape(own), " ", said, flags=re.IGNORECASE) if own else said
    good = [c for c, v in verdicts.items() if _GOOD.search(v) and not _BAD.search(v)]
    bad = [c for c, v in verdicts.items() if _BAD.search(v) and not _GOOD.search(v)]
    if len(good) == 1 and len(good) + len(bad) == len(listed):
        return Choice(letters.index(good[0]), "letter")
    marked = [c for c, v in verdicts.items() if _MARKED_RIGHT.fullmatch(v)]  # "(B) the bottle: **correct**"
    if len(marked) == 1 and len(good) == 1 and good == marked:
        return Choice(letters.index(marked[0]), "letter")
    return Choice(None, "unparsed")


#: one line of a marked list of options: a checkbox (``[x] C``), a verdict (``(B) text - yes``) or a tick (``B ✓``)
_MARKED_LINE = re.compile(r"\s*(?:[-•]\s*)?(?:\[(?P<box>[ xX✓✔✗✘])\]\s*)?(?:(?i:option|choice)\s+)?[(\[]?(?P<label>[A-Z])[)\].:]?(?:\s+(?P<text>.*?))??"
                          r"(?:(?:\s*[-–—:=(]\s*|\s+|(?<=[.:)\]]))(?i:(?P<verdict>yes|no|true|false|correct|incorrect|wrong|right))\)?)?"
                          r"\s*(?P<tick>[✓✔✅☑✗✘❌☐])?\s*[.]?\s*")
_POSITIVE = {"x", "✓", "✔", "✅", "☑", "yes", "true", "correct", "right"}


def _marked_option(text: str, options: Sequence[str], letters: str) -> Choice | None:
    """A reply that lists options and marks each (``- [ ] A / - [x] C``, ``(A) text - no / (B) text - yes``): the one
    option marked as the answer; several marked are ``ambiguous``. None when the reply is no such list."""
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) < 2:
        return None
    picked, seen = set(), set()
    for line in lines:
        m = _MARKED_LINE.fullmatch(line)
        if m is None or m.group("label") not in letters or m.group("label") in seen:
            return None
        verdict = m.group("verdict")
        if verdict and normalize(verdict) == normalize(strip_option_prefix(options[letters.index(m.group("label"))],
                                                                           m.group("label"))):
            verdict = None  # "B. Right" where option B is "Right": its text, not a verdict
        mark = (m.group("box") or verdict or m.group("tick") or "").lower()
        if not mark.strip() and m.group("box") is None:
            return None  # a line without a mark: not a marked list
        seen.add(m.group("label"))
        if mark in _POSITIVE:
            picked.add(m.group("label"))
    if len(picked) > 1:
        return Choice(None, "ambiguous")
    return Choice(letters.index(picked.pop()), "letter") if picked else Choice(None, "unparsed")


#: a score given to one option: a number (``0.7``, ``70%``, ``7/10``), a tick or a cross, or a verdict word
_SCORE = (r"(?P<v>\d{1,3}(?:\.\d+)?\s*%?(?:\s*/\s*10{1,2})?|[✓✔✅☑✗✘❌]\ufe0f?|(?i:most\s+likely|not\s+likely|likely|unlikely|yes|no|"
          r"correct|incorrect|wrong|right|true|false|partially|partly|possible|plausible|implausible|impossible))")
#: an option scored by its label: ``A: 0.1``, ``B=0.7``, ``(C) 15%``, ``D ✅``
_LABEL_SCORE = re.compile(r"(?<![A-Za-z0-9'’])(?:(?i:option|choice)\s+)?[(\[]?(?P<k>[A-Z])[)\]]?\s*(?:[:=]|->|→|\s[-–—])?\s*"
                          + _SCORE + r"(?=\s|[,;|]|\.(?!\d)|$)")
#: rank of a verdict word: 2 for the answer, 1 for a possibility, 0 for a rejection
_VERDICT_RANK = {**dict.fromkeys(("most likely", "likely", "yes", "correct", "right", "true", "✓", "✔", "✅", "☑"), 2),
                 **dict.fromkeys(("possible", "plausible", "partially", "partly"), 1)}
#: what may stand beside the scores: a heading (``Confidence:``, ``| Option | Plausible |``) and a concluding label
_SCORE_HEADING = frozenset({"confidence", "confidences", "probability", "probabilities", "score", "scores", "rating",
                            "ratings", "likelihood", "likelihoods", "option", "options", "plausible", "correct",
                            "matches", "answer", "verdict", "description", "choice"})


#: a reply of label scores only (``"A: 0.1, B: 0.7"``): scoring some options, it chooses none of them
_SCORES_ONLY = re.compile(r"\s*(?:" + _LABEL_SCORE.pattern + r"[\s,;]*){2,}")


def _table_rows(text: str, options: Sequence[str], letters: str) -> str | Choice:
    """A markdown table as plain lines: each row ``key: value`` (its first cell and its last), the heading and rule
    rows dropped; a one-column table as its heading and cell (``| Answer |\n|---|\n| D |`` -> ``Answer: D``). A
    middle cell must be the row's option's own text (``| B | Closing the box | Yes |``): one that is another
    option's text is a ``contradiction``; one that says something else leaves ``text`` unchanged, as does a reply
    that is no table."""
    lines = [line.strip() for line in text.strip().split("\n")]
    if len(lines) < 3 or not all(line.startswith("|") and line.endswith("|") for line in lines) \
            or not re.fullmatch(r"[|\s:-]+", lines[1]):
        return text
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    heading = [c.strip() for c in lines[0].strip("|").split("|")]
    if len(heading) == 1 and len(rows) == 1 and len(rows[0]) == 1:
        return f"{heading[0]}: {rows[0][0]}"
    texts = [normalize(strip_option_prefix(o, c)) for c, o in zip(letters, options)]
    for cells in rows:
        key = cells[0].strip("()[] ")
        if len(cells) < 2 or len(cells) != len(heading):
            return text
        for middle in cells[1:-1]:
            said = normalize(middle)
            if len(key) != 1 or key not in letters or said != texts[letters.index(key)]:
                return Choice(None, "contradiction") if len(key) == 1 and key in letters and said in texts else text
    return "\n".join(f"{cells[0]}: {cells[-1]}" for cells in rows)


def _scored_options(text: str, options: Sequence[str], letters: str) -> Choice | None:
    """A reply that scores every option once, by its label or its text (``"A: 0.1, B: 0.7, C: 0.15, D: 0.05"``,
    ``"the apple: 0.2\nthe phone: 0.7"``, ``"A ❌ B ❌ C ✅"``, a table of ``Yes``/``No`` or ticks): the one option scored
    highest; a tie at the top, or verdicts none of which is an answer (``likely``, ``yes``, a tick), is
    ``ambiguous``. A concluding label beside the scores (``"... → D"``) must be that option (else ``contradiction``);
    anything else beside them makes the reply no such list (None), and so do options that are letters themselves."""
    texts = [normalize(strip_option_prefix(o, c)) for c, o in zip(letters, options)]
    if any(len(t) <= 1 and t.isalpha() for t in texts):
        return None
    scores: dict[int, str] = {}
    spans = []
    for m in _LABEL_SCORE.finditer(text):
        if m["k"] not in letters or letters.index(m["k"]) in scores:
            return None
        scores[letters.index(m["k"])] = m["v"]
        spans.append(m.span())
    if not scores:  # by the options' text, one to a line or a comma: "the apple: 0.2", "3: likely"
        for m in re.finditer(r"(?m)(?:^|(?<=[,;]))[ \t]*(?P<key>[^\n,;:=]+?)[ \t]*[:=][ \t]*" + _SCORE + r"[ \t]*(?=[,;]|$)", text):
            key = normalize(m["key"])
            if key not in texts or texts.count(key) > 1 or texts.index(key) in scores:
                return None
            scores[texts.index(key)] = m["v"]
            spans.append(m.span())
    if len(scores) != len(options) or len(options) < 2:
        return Choice(None, "unparsed") if len(scores) >= 2 and _SCORES_ONLY.fullmatch(text) else None
    rest = list(text)
    for a, b in spans:
        rest[a:b] = " " * (b - a)
    rest = "".join(rest)
    concluded = re.findall(r"(?<![A-Za-z])[A-Z](?![A-Za-z])", rest)
    words = [w for w in normalize(re.sub(r"(?<![A-Za-z])[A-Z](?![A-Za-z])", " ", rest)).split()]
    if any(w not in _SCORE_HEADING for w in words) or len(set(concluded)) > 1:
        return None
    values = [scores[i].strip().lower().replace("\ufe0f", "") for i in range(len(options))]
    if any(normalize(v) and normalize(v).split() == t.split()[:len(normalize(v).split())] for v, t in zip(values, texts)):
        return Choice(None, "echo")  # "A: 2, B: 3, C: 4" where the options are 2, 3, 4: the options listed, not scored
    numbers = [re.match(r"[\d.]+", v) for v in values]
    if all(numbers):
        ranks = [float(n.group(0)) for n in numbers]
    elif not any(numbers):
        ranks = [_VERDICT_RANK.get(re.sub(r"\s+", " ", v), 0) for v in values]
        if max(ranks) < 2:
            return Choice(None, "ambiguous")  # "A: possible, B: unlikely": no option is said to be the answer
    else:
        return None
    top = [i for i, r in enumerate(ranks) if r == max(ranks)]
    if len(top) > 1:
        return Choice(None, "ambiguous")
    if concluded and (concluded[0] not in letters or letters.index(concluded[0]) != top[0]):
        return Choice(None, "contradiction")
    return Choice(top[0], "scored")


def _word_letters(options: Sequence[str], letters: str) -> str:
    """Capitals that are words in this question: ``A``, ``I``, and any label that begins an option's text as a
    word (EgoSchema's ``"C picks up the knife"``: C is the camera wearer)."""
    starts = {strip_option_prefix(o, letter).split(" ", 1)[0] for letter, o in zip(letters, options)}
    return "AI" + "".join(c for c in LETTERS if c in starts and c not in "AI")


#: a label where options are letters themselves: ``"(A)"``, ``"answer is A"``, ``"option A"``
_LABEL_OF_LETTER_OPTION = re.compile(r"[(\[]([A-Z])[)\]]|(?i:\b(?:answer|option|choice)\s*(?:is\s*)?[:：]?\s*)([A-Z])\b")


def _single_letter_options(text: str, options: Sequence[str], letters: str) -> Choice | None:
    """Options that are letters themselves (MVBench character_order): a reply of one letter is the option with
    that text when it is no label here, and ambiguous when it is both a label and another option's text."""
    texts = [strip_option_prefix(o, letter).strip().upper() for letter, o in zip(letters, options)]
    named = set(re.findall(r"\b[Ll]etters?\b(?:[^.\n]{0,40}?\b(?:is|was|reads|shows))?\s+['\"]?([A-Z])\b", text))
    if len(named) == 1 and all(len(t) == 1 for t in texts) and named <= set(texts):
        index = texts.index(named.pop())  # "The jersey has the letter D on it."
        labels = {letters.index(c) for pair in _LABEL_OF_LETTER_OPTION.findall(text) for c in pair if c and c in letters}
        if labels - {index}:  # "The person draws the letter A, so the answer is (A).": (A) is another option
            return Choice(None, "contradiction")
        return Choice(index, "option_text")
    reply = re.sub(r"[\s.()\[\]]", "", text).upper()
    if len(reply) != 1 or reply not in texts:
        return None
    as_text = texts.index(reply)
    if reply in letters and letters.index(reply) != as_text:
        return Choice(None, "ambiguous")
    return Choice(as_text, "option_text")


#: a label at the start of the answer and the text after it on the same line: ``"(B) text"``, ``"C. text"``, ``"C text"``
_LEADING_LABEL = re.compile(r"\s*(?:answer\s*[:：]\s*)?[(\[]?([A-Za-z])[)\]]?\s*[.:)]?\s+([^\n]+)")
_EXPLICIT_LABEL = re.compile(r"\s*(?:answer\s*[:：]\s*)?(?:[(\[]([A-Za-z])[)\]]|([A-Z])[.:)])\s+[^\n]+")


#: a later line that states the answer outright: ``Answer: B``, ``The answer is (B)``, ``Best option: B``
_EXPLICIT_CLAIM = re.compile(r"(?im)^\s*(?:(?:the\s+)?(?:correct\s+|final\s+)?answer(?:\s+is)?|best\s+option)\s*[:：]?"
                             r"\s*\(?([A-Za-z])\)?\s*[.)]?\s*$")


def _states(said: list[str], option: list[str]) -> bool:
    """Whether the words after a label state ``option``: all of it, or (cut short) its first words."""
    return said == option or (len(said) >= MIN_CUT_PREFIX_WORDS and option[:len(said)] == said)


def _contradicted(text: str, options: Sequence[str], letters: str, choice: Choice) -> bool:
    """``"D. left"`` where ``left`` is option C's text: the label and the text attached to it disagree."""
    m = _LEADING_LABEL.match(text)
    if m is None or m.group(1).upper() != letters[choice.index]:
        return False
    said = normalize(m.group(2)).split()
    if not said:
        return False
    texts = [normalize(strip_option_prefix(o, letter)).split() for letter, o in zip(letters, options)]

    own = texts[choice.index]
    return not _states(said, own) and said != own[:len(said)] and any(
        _states(said, t) for i, t in enumerate(texts) if i != choice.index)


#: words of a reply that weighs options, corrects itself or relates events (``"Some might think ..., but"``,
#: ``"After the water boils, ..."``, ``"C is right"``): its other content is not a description of its pick
_DISCUSSES = re.compile(r"(?i)\b(?:but|however|although|though|might|may|could|would|some|think|thought|instead|rather|"
                        r"go\s+with|go\s+for|choose|pick|select|say|guess|believe|lean|"
                        r"whereas|unlike|not|except|hmm|wait|actually|second|after|before|then|once|when|while|until|"
                        r"right|correct|wrong|best|true|false)\b|n't")
MAX_DESCRIPTION_WORDS = 25
"""The text beside a label is compared with the options (``"B. The person picks the cup up"``) up to this length; a
longer reply is reasoning, which discusses other options."""


def _described_otherwise(text: str, options: Sequence[str], letters: str, choice: Choice) -> bool:
    """``"Answer: A, a travel vlog."`` where the travel vlog is B; ``"The answer is B. There are 4 people."`` where
    4 is option C: a short reply whose words beside the label state another option (by its text, its number, or
    a paraphrase: :func:`_by_meaning`) contradicts its label."""
    if all(re.fullmatch(r"[A-Za-z]", strip_option_prefix(o, c).strip()) for c, o in zip(letters, options)):
        return False  # options that are letters themselves
    rest = re.sub(rf"[(\[]?(?<![A-Za-z'’])[{letters}](?![A-Za-z'’])[)\]]?", " ", text)
    if choice.method == "number":  # "Option 3 (Bathroom)" where Bathroom is option B
        rest = re.sub(r"(?i)\b(?:option|choice)\s*(?:number\s*|no\.?\s*|#\s*)?\d{1,2}\b", " ", rest)
    rest = re.sub(r"(?i)\b(?:(?:so|thus|therefore|hence)\s+)?(?:the\s+)?(?:correct\s+|final\s+|best\s+|right\s+)?"
                  r"(?:answer|option|choice|letter)(?:\s+(?:is|would\s+be|should\s+be))?\s*[:：]?", " ", rest)
    rest = rest.strip(" \t\n.,;:!-–—()")
    if not rest or len(rest.split()) > MAX_DESCRIPTION_WORDS or _WALKTHROUGH.search(rest) or _DISCUSSES.search(rest):
        return False
    for rule in (_by_text, _by_meaning):
        found = rule(rest, options, letters)
        if found is not None and found.index is not None:
            return found.index != choice.index
    return False


def _label_with_own_text(text: str, options: Sequence[str], letters: str) -> Choice | None:
    """``"C C is using the phone as a timer..."``: a leading label followed by its own option's text (whole, or
    cut short) is that option, also where the label is a word (EgoSchema's ``C``)."""
    m = _LEADING_LABEL.match(text)
    if m is None or m.group(1).upper() not in letters:
        return None
    index = letters.index(m.group(1).upper())
    said = normalize(m.group(2)).split()
    own = normalize(strip_option_prefix(options[index], letters[index])).split()
    if said and _states(said, own):
        later = _EXPLICIT_CLAIM.findall(text[m.end():])  # "(C) text of C\nAnswer: B": which one is meant?
        if any(letter.upper() != letters[index] for letter in later):
            return Choice(None, "ambiguous")
        return Choice(index, "letter")
    return None


#: a reply of labels only: ``"B C"``, ``"(A)(C)"``, ``"A, D."``, ``"[B] [E]"``, ``"A. B. C. D."``, ``"B then A"``
_LABELS_ONLY = re.compile(r"\s*(?:[(\[]?\s*[A-Z]\s*[)\]]?\s*[,;/&?.]?\s*(?:then\s+)?){2,}[.]?\s*")


def _several_labels(text: str, options: Sequence[str], letters: str) -> Choice | None:
    """A first line that is nothing but two or more different labels names several options: ``ambiguous``."""
    first = text.split("\n", 1)[0]
    named = set(re.findall(r"[A-Z]", first))
    single_letter_options = all(re.fullmatch(r"[A-Za-z]", strip_option_prefix(o, c).strip()) for c, o in zip(letters, options))
    if _LABELS_ONLY.fullmatch(first) and len(named) > 1 and named <= set(letters) and not single_letter_options:
        return Choice(None, "ambiguous")
    return None


#: a reply that walks through the options (``"Let's analyze each option. Option A says ..."``): the option texts it
#: quotes are not picks
_WALKTHROUGH = re.compile(r"(?i)\b(?:analy[sz]e|consider|look\s+at|go\s+through|examine|check)\s+(?:each|every|all|the)\s+"
                          r"(?:of\s+the\s+)?options?\b|\boption\s+[A-Z]\s+(?:says|states|describes|mentions)\b")


#: a hedge or two options settled after ``but``: ``"Could be A or C ..., but ... I lean toward C"``, ``"A and C are both
#: correct, but the main setting is Paris: A"``, ``"A red car drives past first, but my answer is blue"``
_SETTLED = re.compile(r"(?i)\b(?:but|however)\b,?\s*(?P<rest>(?:(?!\b(?:but|however)\b).)*?\b(?:answer|lean(?:s|ing)?|"
                      r"most\s+likely|best|main|go(?:ing)?\s+with|choose|pick|final)\b(?:(?!\b(?:but|however)\b).)*)$",
                      re.DOTALL)
_OPEN_QUESTION = re.compile(r"(?i)\b(?:maybe|perhaps|possibly|could|might|may|if|some|someone|would|or|either|both|"
                            r"not\s+sure|unsure)\b")


#: a second possibility offered beside the one stated: ``"..., or maybe the window"``
_OR_MAYBE = re.compile(r"(?i)\bor\s+(?:maybe|perhaps|possibly|probably)\b|\bor\s+(?:it\s+)?(?:might|could|may)\s+(?:be|have)\b")


#: a reply that offers a second possibility with a bare ``or`` in one short sentence: ``"It looks like a bedroom or a
#: living room."`` (not ``"or rather"``, a correction, nor ``"whether or not"``, nor after a negation:
#: ``"The kitchen, not the bedroom or the garage."``)
_OR_OTHER = re.compile(r"(?i)^(?![^.!?;\n]*(?:\b(?:not|no|never|neither|nor|without)\b|n['’]t\b))"
                       r"[^.!?;\n]*\w\s+or\s+(?!rather\b|else\b|not\b|so\b|more\s+precisely\b)\w[^.!?;\n]*[.!]?\s*$")
MAX_HEDGE_WORDS = 15
"""A reply of at most this many words that offers two possibilities with ``or`` (:data:`_OR_OTHER`) chooses neither."""
#: a verdict said alone after a stated option: ``"A cat? No way."`` (the one list labels are rejected by too)
_REJECTION = re.compile(rf"(?i){REJECTION}")


#: a clause that states an option's text and a verdict on it as an answer: ``"a dog is a poor fit"``, ``"the cat is
#: wrong"`` -- not a statement about the video (``"the cat is not present"``: which may be what the question asks)
_JUDGED = re.compile(r"(?i)^\s*(?P<subject>.+?)\s+(?:is|was|would\s+be|seems|looks)\s+(?:(?:clearly|definitely|also)\s+)?"
                     r"(?:the\s+|an?\s+)?(?:wrong|incorrect|false|ruled\s+out|excluded|eliminated|mistaken?|trap|"
                     rf"distractor|{POOR_ANSWER}|not\s+(?:the\s+)?(?:answer|correct|right|it))\b")


def _without_rejected(text: str, options: Sequence[str], letters: str) -> str:
    """``text`` without an option's text that the next clause rejects on its own (``"A cat? No way. It's a dog."`` ->
    ``"It's a dog."``): stating an option to reject it is no pick of it."""
    texts = {normalize(strip_option_prefix(o, letter)) for letter, o in zip(letters, options)}
    if any(_REJECTION.fullmatch(t) for t in texts):
        return text  # options "yes" / "no": a "no" is an answer
    parts = re.split(r"([?.!;:,]+|\s[-–—]\s)", text)
    words = [i for i, part in enumerate(parts) if i % 2 == 0 and part.strip()]  # the clauses, between separators
    drop = set()
    for this, following in zip(words, words[1:]):
        if normalize(parts[this]) in texts and _REJECTION.fullmatch(normalize(parts[following])):
            drop.update(range(this, following + 2))
    for this in words:  # "a dog is a poor fit", "the cat would be wrong"
        judged = _JUDGED.match(parts[this])
        if judged and normalize(judged["subject"]) in texts:
            drop.update((this, this + 1))
    return "".join(part for i, part in enumerate(parts) if i not in drop)


def _read(text: str, options: Sequence[str], letters: str) -> Choice:
    """:func:`parse_choice` on the answer's own text (echo and corrections already set aside); an answer that weighs
    two options and then settles after ``but`` is read at what it settles on."""
    choice = _read_all(text, options, letters)
    if choice.method == "ambiguous" and (settled := _SETTLED.search(text)) and not _OPEN_QUESTION.search(settled["rest"]):
        after = _read_all(settled["rest"], options, letters)
        if after.index is not None:
            return after
    return choice


def _read_all(text: str, options: Sequence[str], letters: str) -> Choice:
    for rule in (_single_letter_options, _several_labels, _label_with_own_text):
        choice = rule(text, options, letters)
        if choice is not None:
            return choice
    labelled = _EXPLICIT_LABEL.match(text)  # "(A) text" / "A. text": the label and its text must agree
    label = (labelled.group(1) or labelled.group(2)).upper() if labelled else ""
    if label and label in letters:
        choice = Choice(letters.index(label), "letter")
        if _contradicted(text, options, letters, choice):
            return Choice(None, "contradiction")
    cued = case_insensitive_cues(text)
    # An answer that is exactly one option's text is that option, even when it starts like a label.
    norm = normalize(text)
    exact = [i for i, (letter, o) in enumerate(zip(letters, options)) if normalize(strip_option_prefix(o, letter)) == norm]
    if len(exact) == 1 and len(norm) > 1:
        return Choice(exact[0], "option_text")
    if norm in ("both", "neither", "all", "all of them", "both of them"):  # "Both" for "Both running and jumping"
        opening = [i for i, (letter, o) in enumerate(zip(letters, options))
                   if normalize(strip_option_prefix(o, letter)).split()[:1] == norm.split()[:1]]
        if len(opening) == 1:
            return Choice(opening[0], "option_text")
    plain = _without_rejected(_label_stripped(text), options, letters)
    # "C prepares vegetables by ..." is option text, not label C
    for candidate in (_without_rejected(text, options, letters), plain):
        prefix = _by_prefix(candidate, options, letters)
        if prefix is not None and prefix.index is not None:
            return prefix
    words = _word_letters(options, letters)
    walkthrough = _WALKTHROUGH.search(text) is not None
    for rule in (lambda: by_letter(cued, letters, LETTERS, words), lambda: by_number(cued, options),
                 lambda: _by_text(plain, options, letters),
                 lambda: _by_yes_no(_label_stripped(text), options, letters),
                 lambda: _by_prefix(plain, options, letters),
                 lambda: _by_meaning(plain, options, letters),
                 lambda: _by_order(plain, options, letters)):
        choice = rule()
        if choice is not None and choice.method in ("option_text", "option_meaning") and (
                _OR_MAYBE.search(text) or _OR_OTHER.match(text) and len(text.split()) <= MAX_HEDGE_WORDS
                and not any(" or " in f" {normalize(o)} " for o in options)):
            return Choice(None, "ambiguous")  # "The door, or maybe the window."; "a bedroom or a living room"
        if choice is not None and walkthrough and choice.method != "letter":
            return Choice(None, "unparsed")  # "Let's analyze each option. Option A says ..." picks nothing yet
        if choice is not None:
            if choice.index is not None and choice.method in ("letter", "number") and (
                    _contradicted(text, options, letters, choice) or _described_otherwise(text, options, letters, choice)):
                return Choice(None, "contradiction")
            if choice.index is not None and walkthrough and not concludes(text):
                return Choice(None, "unparsed")  # "Let's analyze each option. (A) text: ..." cut before concluding
            return choice
    return Choice(None, "unparsed")


def extract_choice(response: str, options: Sequence[str]) -> int | None:
    """The index of the option ``response`` chooses, or None (see :func:`parse_choice`)."""
    return parse_choice(response, options).index


def duplicate_options(options: Sequence[str]) -> tuple[int, int] | None:
    """Positions ``(i, j)`` of the first two options that are the same text once Unicode-normalised and
    case-folded (:func:`savi_plugin.untrusted.equality_key`: full-width forms, zero-width characters, spacing and
    look-alike letters of another script do not make two options different), or None. With two equal options the ground truth is ambiguous: an
    answer naming the text chooses both; every reader of options refuses such a question."""
    from savi_plugin.untrusted import equality_key, has_latin

    latin = has_latin(*map(str, options))
    seen: dict[str, int] = {}
    for j, option in enumerate(options):
        key = equality_key(str(option), latin).casefold()
        if key in seen:
            return seen[key], j
        seen[key] = j
    return None


def duplicate_options_message(options: Sequence[str], pair: tuple[int, int]) -> str:
    """The one-line refusal of :func:`duplicate_options`' finding."""
    i, j = pair
    return (f"options {LETTERS[i] if i < len(LETTERS) else i} and {LETTERS[j] if j < len(LETTERS) else j} are the "
            f"same text after Unicode normalisation and look-alike folding ({options[i]!r} and {options[j]!r}): the ground truth is "
            f"ambiguous")


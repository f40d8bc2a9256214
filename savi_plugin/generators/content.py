"""Content words of an answer: what a judge compares when it asks "does this answer say something else?".

An open-ended answer is wrong when it replaces a *content* phrase of the ground truth (``soccer`` ->
``volleyball``, ``goose`` -> ``dog``, ``riding`` -> ``fishing``: the three open-ended examples of RRPO's
``docs/assets/data.png``), not when it words the same content differently. So the comparison ignores:

- function words and the words that frame a video description (``the video shows / features / depicts``,
  ``is seen``, ``in the clip``): :data:`FRAME_WORDS`;
- inflection: :func:`stem` maps ``riding``/``rides``/``ride`` and ``played``/``plays``/``playing`` to one stem;
- order: answers are compared as sets of stems.

Negation is content: ``"is not riding"`` differs from ``"is riding"`` (:func:`negations`).
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

#: Function words, auxiliaries, pronouns and plain prepositions. Words that locate or order things in space
#: or time (up, down, left, right, above, below, over, under, before, after, first, then) and numbers
#: ("one") are content: a wrong direction or order is exactly the error RRPO's perturbations provoke.
FUNCTION_WORDS = frozenset("""
a an the this that these those there here it its it's they them their theirs he him his she her hers we us our
you your i me my mine ones some any each every all both either neither such which who whom whose what when
where why how whether than also too very just only even still yet so as of in on at to from by with without
into onto across through during while near next around about off out
and or but nor if because since until unless although though is are was were be been being am do does did doing
done has have had having can could will would shall should may might must let lets get gets got getting
""".split())

#: Words that frame a description of a video rather than say what is in it.
FRAME_WORDS = frozenset("""
video videos clip clips footage scene scenes frame frames shot shots shows show showing shown showcases showcase
showcasing features feature featuring featured depicts depict depicting depicted displays display displaying
displayed presents present presenting presented contains contain containing captures capture capturing captured
see sees seen seeing saw visible appears appear appearing observed observe observes viewer image picture
""".split())

NEGATIONS = frozenset({"not", "no", "never", "none", "nobody", "nothing", "neither", "nor", "n't", "without"})

_IRREGULAR = {"men": "man", "women": "woman", "children": "child", "people": "person", "persons": "person",
              "geese": "goose", "mice": "mouse", "feet": "foot", "teeth": "tooth", "rode": "ride",
              "ran": "run", "sat": "sit", "ate": "eat", "went": "go", "gone": "go", "goes": "go", "does": "do",
              "took": "take",
              "taken": "take", "held": "hold", "threw": "throw", "thrown": "throw", "wore": "wear",
              "worn": "wear", "fell": "fall", "fallen": "fall", "swam": "swim", "drove": "drive",
              "driven": "drive", "caught": "catch", "stood": "stand"}


def stem(word: str) -> str:
    """A light suffix-stripping stem: ``riding``/``rides``/``ride`` -> ``rid``; ``boxes`` -> ``box``."""
    w = word.lower()
    if w in _IRREGULAR:
        w = _IRREGULAR[w]
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 4 and w.endswith(("ches", "shes", "xes", "sses", "zes")):
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    for suffix in ("ing", "ed"):
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            w = w[: -len(suffix)]
            if len(w) > 2 and w[-1] == w[-2] and w[-1] not in "lsz":  # running -> run, stopped -> stop
                w = w[:-1]
            break
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    if len(w) > 3 and w.endswith("y") and w[-2] not in "aeiou":  # carry / carries / carried
        w = w[:-1] + "i"
    return w


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` (``"isn't"`` gives ``is`` and ``n't``)."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"(\w)n't\b", r"\1 n't", text)
    return [m.group(0) if m.group(0) != "n't" else "n't" for m in re.finditer(r"n't|" + _WORD.pattern, text)]


def content_stems(text: str) -> list[str]:
    """The stems of the content words of ``text``, in order (function, framing and negation words dropped)."""
    return [stem(w) for w in words(text)
            if w not in FUNCTION_WORDS and w not in FRAME_WORDS and w not in NEGATIONS]


def negations(text: str) -> int:
    """How many negation words ``text`` has."""
    return sum(1 for w in words(text) if w in NEGATIONS)


def content_difference(answer: str, ground_truth: str) -> tuple[list[str], list[str]]:
    """``(missing, extra)``: ground-truth content stems absent from the answer, and the answer's content stems
    absent from the ground truth (each in order of appearance, without repeats). A ground truth made only of
    function words (``"out"``, ``"in it"``) is compared on all its words."""
    a, g = content_stems(answer), content_stems(ground_truth)
    if not g:
        a = [stem(w) for w in words(answer) if w not in ("a", "an", "the")]
        g = [stem(w) for w in words(ground_truth) if w not in ("a", "an", "the")]
    sa, sg = set(a), set(g)
    missing = list(dict.fromkeys(s for s in g if s not in sa))
    extra = list(dict.fromkeys(s for s in a if s not in sg))
    return missing, extra

"""How an answer names an option by its label or position: ``"B"``, ``"(B)"``, ``"the answer is B"``,
``"I'd say B"``, ``"答案是B"``, ``{"answer": "B"}`` (after :mod:`savi_plugin.data.answer_text`), ``"Option 2"``,
``"the second option"``, ``"the last one"``; negated labels (``"not A"``) and hedges (``"B or D"``).

Rules 1 and 2 of :mod:`savi_plugin.data.choices` (its docstring describes what counts as a claim).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from savi_plugin.data.options import Choice, normalize, strip_option_prefix

_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


# ------------------------------------------------------------------------------------------ letters
_L = r"(?<![A-Za-z0-9'’\u00c0-\u024f])"              # nothing word-like before the label
_CLOSED = r"(?=\s*(?:[.,;:!?)\]}」）。，]|$))"  # the label ends a clause or the answer
_CONNECTIVE = (r"(?=\s+(?:because|since|as|is|was|would|should|seems|appears|looks|fits|matches|best|"
               r"correct|right|and|or|but|-|–|—)\b)")
_OPEN = r"[(\[（]"
_CLOSE = r"[)\]）]"


#: a pick preferred to another: ``"I would choose A over B"``, ``"I'd pick C rather than D"``
_PREFERRED = r"(?=\s+(?:over|rather\s+than|instead\s+of)\s+(?:option\s+)?[(\[]?[A-Z](?![A-Za-z0-9]))"


def _label(letters: str, words: str = "AI") -> str:
    """One option label in running text, as a named group ``l`` (see the module docstring).

    ``words``: capitals that are words here (``A``, ``I``; EgoSchema's ``C``, the camera wearer, when options
    begin with it), which count as labels only in closed forms (``"C."``, ``"(C)"``).
    """
    upper = f"[{letters}]"
    lower = f"[{letters.lower()}]"
    # Capitals that are not words may be followed by any word ("answer is B based on ...").
    plain = "".join(c for c in letters if c not in words)
    bare = f"[{plain}]" if plain else None
    connective = "".join(c for c in letters if c not in words.replace("A", ""))
    forms = [rf"{_OPEN}\s*(?P<l>[{letters}{letters.lower()}])\s*{_CLOSE}",            # (B) (b) [B]
             rf"{_OPEN}(?P<l>{upper})(?![A-Za-z0-9])",                                   # "(B" after a prefill
             rf"(?P<l>{upper}){_CLOSED}", rf"(?P<l>[{connective}]){_CONNECTIVE}" if connective else r"(?!x)x",
             rf"(?P<l>{lower}){_CLOSED}"]
    if bare:
        forms.append(rf"(?P<l>{bare})(?![A-Za-z0-9'’\u00c0-\u024f])")
    return "(?:" + "|".join(f"(?:{_L}{f})".replace("?P<l>", f"?P<l{k}>") for k, f in enumerate(forms)) + ")"


def _rename(pattern: str, n: int) -> str:
    """``pattern`` with its label groups renamed apart (``l0`` -> ``l<n>_0``), to combine it with others."""
    return re.sub(r"\?P<l(\d*)>", lambda m: f"?P<l{n}_{m.group(1)}>", pattern)


#: How English negates a label: the one rule set every negated label is found by (:func:`by_letter` takes such a
#: label out of the claims; a wrong pick is worse than none, so any negation of a label counts, whatever else the
#: reply says). Two forms:
#:
#: * a negator before the label, at most a verb of choosing between (``_NEGATOR`` then ``_CHOOSING``): ``"not A"``,
#:   ``"never B"``, ``"it isn't C"``, ``"it cannot be D"``, ``"no longer A"``, ``"rule out B"``, ``"excluding C"``,
#:   ``"I wouldn't pick A"``, ``"I would never, ever choose B"``, ``"I would not say C"``, ``"I don't think it's D"``,
#:   ``"I refuse to pick A"``, ``"I reject B"``;
#: * the label, alone or in a list of labels, as the subject of a negated verb or of a verdict against it
#:   (:func:`_negated_verb`): ``"A does not appear"``, ``"B doesn't occur"``, ``"C never happens"``, ``"(A) isn't
#:   shown"``, ``"B cannot be right"``, ``"C is absent"``, ``"D is missing"``, ``"A is wrong"``, ``"B can be ruled
#:   out"``, ``"A is the wrong answer"``, ``"B? Certainly not."``, ``"A and B don't appear"``, ``"B, C and D are
#:   wrong"``, ``"A or B isn't shown"``. A list joined by
#:   ``and`` takes a plural verb (``"I pick B, and C is wrong"`` negates C alone). A label that is a word here
#:   (EgoSchema's ``C``) is negated by a verdict only a label takes (``_LABEL_VERDICT``) or after ``"option"``.
_NEGATOR = (r"(?:(?:(?<![A-Za-z])(?i:not|never|no\s+longer|neither|nor|cannot|except|exclud(?:e|es|ed|ing)|"
            r"eliminat(?:e|es|ed|ing)|rul(?:e|es|ed|ing)\s+out|doubt(?:s|ed)?|hardly|(?:un|not\s+)likely(?:\s+to)?|"
            r"(?:refus|declin)(?:e|es|ed|ing)\s+to|reject(?:s|ed|ing)?|avoid(?:s|ed|ing)?)\b"
            r"|(?i:n['’]t)\b)(?:\s*,?\s*(?i:ever|really|at\s+all)\b\s*,?)?)")  # "I would never, ever pick C"
_CHOOSING = (r"(?:(?i:be|pick|choose|select|say|answer|go\s+(?:with|for)|(?:(?:think|believe|say)\s+)?(?:that\s+)?"
             r"(?:it['’]s|it\s+is|it\s+would\s+be|the\s+answer\s+is))\s+)?")
#: a verdict on an option as an answer (``"a poor fit"``, ``"the worst option"``): labels here, option texts in
#: :mod:`~savi_plugin.data.choices`
POOR_ANSWER = (r"(?:poor|bad|weak|terrible|awful|wrong)\s+(?:fit|choice|match|option|pick|answer)|"
               r"(?:worst|least\s+likely)(?:\s+(?:fit|choice|match|option|pick|answer|one))?")
#: a rejection said on its own (``"A? No way."``, ``"C: nope."``, ``"A cat? Nah."``): labels here, option texts in
#: :mod:`~savi_plugin.data.choices`
REJECTION = (r"(?:(?:certainly|definitely|absolutely|surely|of\s+course)\s+)?"
             r"(?:no(?:\s+way)?|nope|nah|hardly|not(?:\s+(?:at\s+all|really))?|never|wrong|incorrect|false)")
_VERDICT = (r"not|never|no\s+longer|wrong|incorrect|false|unlikely|implausible|impossible|absent|missing|ruled\s+out|out|"
            rf"excluded|eliminated|mistaken?|trap|distractor|{POOR_ANSWER}")


def _negated_verb(be: str, aux: str) -> str:
    """A negated verb or a verdict against its subject, whose own verbs are ``be`` (``"is"``, ``"seems"``) and
    ``aux`` (``"does"``, ``"has"``): the singular or the plural ones."""
    return (rf"(?:\s*(?:[?:,.;]|\s[-–—])\s*(?i:{REJECTION})\b(?=\s*(?:[.!,;)]|$))"  # a verdict alone, not "B. Not A."
            rf"|\s+(?i:(?:{be}|(?:would|could|must|should|might|may)\s+be)\s+"  # "A? No.", "B: certainly not."
            rf"(?:(?:to\s+be|also|clearly|definitely|both|all)\s+)?(?:(?:the|an?)\s+)?(?:{_VERDICT})\b"
            rf"|(?:(?:{aux}|did|could|would|should|must)n|can|won)['’]t\b"
            rf"|(?:{aux}|did|can|could|will|would|should|must)\s+not\b|cannot\b|never\b|no\s+longer\b"
            r"|(?:can|could|should|must|may)\s+be\s+(?:ruled\s+out|eliminated|excluded|dismissed|discarded)\b))")


#: a verdict only a label takes (``"C is wrong"``, ``"C does not match"``): it negates also a label that is a word
#: here (EgoSchema's ``C``, the camera wearer, who may well ``"never use scissors"``)
_LABEL_VERDICT = (r"\s+(?i:(?:is|are|was|were)\s+(?:(?:both|also|clearly|definitely)\s+)?(?:wrong|incorrect|false|"
                  r"ruled\s+out|excluded|eliminated)\b|(?:do|does|did)\s+not\s+(?:match|fit|apply)\b"
                  r"|(?:can|could|should|must|may)\s+be\s+(?:ruled\s+out|eliminated|excluded|dismissed|discarded)\b)")
_NEGATED_ANY = _negated_verb("is|are|was|were|seems?|appears?|looks?", "is|are|was|were|does|do|has|have")
_NEGATED_PLURAL = _negated_verb("are|were|seem|appear|look", "are|were|do|have")


@lru_cache(maxsize=16)
def _claim_patterns(letters: str, words: str = "AI") -> tuple[list[re.Pattern], list[re.Pattern], list[re.Pattern]]:
    """``(claims, negations, mentions)``: regexes whose ``l*`` groups hold a label (``words``: see :func:`_label`)."""
    lab = _label(letters, words)
    anycase = f"[{letters}{letters.lower()}]"
    cue = (r"(?:answer|option|choice|letter|summary|final)\s*(?:(?:is|(?:would|should|will|must|might|may|could)\s+be)\s*[:：-]?"
           r"|=|:|-|：|\n)\s*"
           r"(?:probably\s+|likely\s+|definitely\s+|clearly\s+)?(?:option\s+|choice\s+|letter\s+)?"
           r"(?:(?:la|el|le|lo|die|der|das|o|a)\s+(?=[A-Z]\b))?")  # "La respuesta correcta es la D"
    verbs = (r"(?:I(?:'d|’d|\s+would|\s+will|'ll)?\s+(?:say|choose|pick|select|go\s+with|guess|answer)|"
             r"I\s+(?:think|believe)(?:\s+(?:it's|it\s+is|it’s|the\s+answer\s+is))?|"
             r"(?:choose|pick|select|go\s+(?:with|for))|my\s+(?:(?:best\s+|final\s+)?(?:answer|choice|pick|guess))\s+(?:is|would\s+be)|"
             r"I\s+guess|lean(?:s|ing)?\s+(?:towards?|to)|"
             r"(?:so|thus|therefore|hence)(?:\s+(?:it's|it\s+is|the\s+answer\s+is))?|"
             r"(?i:probably|likely|maybe|perhaps|possibly|definitely|certainly|surely|clearly)|(?:could|might|may)\s+(?:also\s+)?be)(?:\s*(?:\.{2,}|…))?\s*:?\s*"
             r"(?:option\s+|choice\s+)?")
    verdict = (r"(?=\s+(?:is|seems|appears|looks|would\s+be|should\s+be)\s+(?:to\s+be\s+)?(?:the\s+)?(?:most\s+)?"
               r"(?:just\s+as\s+|equally\s+|also\s+|as\s+)?"
               r"(?:correct|right|best|true|accurate|answer|likely|plausible|possible|appropriate|suitable)\b)")
    subjectless = "".join(c for c in letters if c in "AI" or c not in words) or "_"  # EgoSchema's C is a subject
    subject = "".join(c for c in letters if c == "A" or c not in words) or "_"  # "I don't": the pronoun
    listed = rf"(?:option\s+)?{_OPEN}?[{letters}]{_CLOSE}?(?![A-Za-z0-9'’\u00c0-\u024f])"  # a later label of a list
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
        (rf"{_rename(lab, 5)}\s*\??\s*(?:or|/|and|&|,|或者|或|还是|還是|和)\s*(?:option\s+)?{_OPEN}?\s*(?P<l6>[{letters}])"
         r"(?![A-Za-z0-9'’\u00c0-\u024f])"),                                                      # "B or D", "B and C", "B, C"
        (rf"(?:答案|答|选项|選項|选择|選擇|应选|應選|选|選)\s*(?:是|为|為|应该是|應該是)?\s*[:：]?\s*[(（]?\s*"
         rf"(?P<l7>{anycase})(?![A-Za-z])"),
        (rf"(?<![A-Za-z])(?P<l8>[{letters}])\s*(?:选项|選項)?\s*(?:是正确|是對|是对|正确|正確|最合适|最合適|最佳|最符合|"
         r"です|だ|が正解|が正しい|입니다|이다|가\s*정답|이\s*정답|가\s*맞)"),
        rf"(?:认为|認為|觉得|覺得|应该|應該|我选|我選)\s*(?:是|选|選)?\s*[:：]?\s*[(（]?\s*(?P<l10>{anycase})(?![A-Za-z])",
        rf"{_L}(?:option\s+|choice\s+)?(?P<l11>[{letters}]){verdict}",              # "C is the correct answer"
        cue + rf"{_L}(?P<l12>[{letters}])(?=\s+(?:because|since|as|based)\b)",      # "answer is C because"
        (rf"\b(?:option|choice)\s+(?P<l13>[{letters}])(?![A-Za-z0-9'’\u00c0-\u024f])"            # "option C best fits", not
         r"(?!\s*[:：]|\s+(?:says|states|describes|mentions|suggests|shows|claims|is\s+about|refers|would|requires|"
         r"implies|talks))"),                                                      # "Option A says ..."
        (rf"(?:(?:[,;:—–]|\s-)\s*(?:option\s+)?{_OPEN}?(?P<l20>[{subjectless}])"  # "..., B." at the end; not
         rf"|(?:\bi\.e\.,?|\bcorresponds?\s+to|\bmatch(?:es)?|\bwhich\s+is|\bthat\s+is)\s*"  # "..., C" (a subject)
         rf"(?:option\s+)?{_OPEN}?(?P<l14>[{letters}])){_CLOSE}?\s*[.!]?\s*$"),        # "..., i.e., B." at the end
        rf"\b(?:correct|right|best)\s+one\s+(?:is|would\s+be)\s*:?\s*{_OPEN}?(?P<l15>[{letters}])(?![A-Za-z0-9'’\u00c0-\u024f])",
        rf"(?P<l16>[{letters}])\s*(?:或者|或|还是|還是)\s*(?P<l17>[{letters}])(?![A-Za-z])",      # "A或者D"
        (rf"(?:(?<=[^\W\d_][^\W\d_][.!?。])\s+|\n\s*)[(\[]?(?P<l19>[{letters}])[)\]]?\s*[.!]?\s*$"),  # "... table. B"
        (rf"{_L}(?:option\s+|choice\s+)?(?P<l18>[{letters}])(?=\s+(?:fits|matches|describes|captures|works)\s+"
         r"(?:the\s+(?:video|scene|clip)\s+)?(?:best|better|most)\b)"),                 # "B fits best"
        rf"^\s*letter\s+{_OPEN}?\s*(?P<l21>{anycase})\s*{_CLOSE}?{_CLOSED}",             # "Letter B."
        verbs + rf"{_L}(?P<l22>[{letters}]){_PREFERRED}",                                   # "I would choose A over B"
        (rf"(?:[;,]\s*(?:but\s+)?|\bbut\s+)(?:option\s+)?{_OPEN}?{_L}(?P<l23>[{subject}]){_CLOSE}?\s+"  # "A does not
         r"(?:does|do|did|is|was|appears|shows)\s*[.!]?\s*$"),                                # appear; B does."
    ]
    negation_sources = [
        (rf"{_NEGATOR}\s+{_CHOOSING}(?:option\s+|choice\s+)?(?:{lab}|{_OPEN}?(?P<l12>[{letters}])"
         r"(?![A-Za-z0-9'’\u00c0-\u024f]))"),                           # "not A", "I wouldn't pick A over B"
        (rf"(?:(?:options?|choices?)\s+{_OPEN}?(?P<l13>[{letters}])|{_OPEN}?(?:{lab}|{_L}(?P<l11>[{subject}])))"
         rf"{_CLOSE}?(?={_NEGATED_ANY}"
         rf"|(?:\s*(?:,\s*and|,|and|&)\s*{listed})+{_NEGATED_PLURAL}|(?:\s*(?:,\s*or|,|or|nor|/)\s*{listed})+{_NEGATED_ANY})"),  # "A and B don't appear"
        rf"{_OPEN}?{_L}(?P<l14>[{letters}]){_CLOSE}?(?={_LABEL_VERDICT})",                 # EgoSchema's "C is wrong"
        rf"{_L}(?P<l17>[{letters}])\s*(?=\((?i:not|never|wrong|incorrect)\b(?![^)]*(?<![A-Za-z])[A-Z](?![A-Za-z]))[^)]*\))",
        # "B (not this one)"; not "B (not A)"
        (rf"{_L}{_OPEN}\s*(?P<l16>{anycase})\s*{_CLOSE}\s+(?i:no|nope|never|wrong|incorrect|false)\b"
         r"(?=\s*(?:[.!,;)]|$))"),                                                        # "(a) no.", "(B) wrong"
        rf"不是\s*(?P<l>{anycase})(?![A-Za-z])",
        (rf"(?<![A-Za-z])(?i:wrong|incorrect|false|not\s+(?:correct|it)|nope|reject(?:ed)?|eliminated?|excluded?|"
         rf"ruled\s+out)\s*[:：]\s*(?:option\s+)?{_OPEN}?(?P<l15>[{letters}])"
         r"(?![A-Za-z0-9'’\u00c0-\u024f])"),                                             # "Wrong: C", "Incorrect: B"
        (rf"\b(?:not|neither)\s+(?:option\s+)?[{letters}]\s*(?:,|or|nor|and)\s*(?:option\s+)?"
         rf"(?P<l9>[{letters}])(?![A-Za-z0-9'’\u00c0-\u024f])"),                                  # "not A or B": B too
        rf"(?<=[{letters}])\s+(?:over|rather\s+than|instead\s+of)\s+(?:option\s+)?{_OPEN}?(?P<l10>[{letters}])(?![A-Za-z0-9])",
    ]
    mention_sources = [
        rf"{_OPEN}\s*(?P<l>[{letters}])\s*{_CLOSE}",                                # "(B)" anywhere
        rf"\b(?:is|it's|it’s|be)\s+{_OPEN}?(?P<l>[{letters}]){_CLOSED}",            # "it is B."
    ]
    claims = [re.compile(s) for s in claim_sources]
    negations = [re.compile(s) for s in negation_sources]
    mentions = [re.compile(s) for s in mention_sources]
    return claims, negations, mentions


def _letters_at(patterns: list[re.Pattern], text: str) -> list[tuple[int, str]]:
    """``(position, label)`` of every label the patterns find, in text order."""
    found = []
    for pattern in patterns:
        for m in pattern.finditer(text):
            for name, value in m.groupdict().items():
                if name.startswith("l") and value:
                    found.append((m.start(name), value.upper()))
    return sorted(set(found))


def _letters_found(patterns: list[re.Pattern], text: str) -> list[str]:
    return [letter for _, letter in _letters_at(patterns, text)]


#: answer and option cues in Spanish, French, German, Portuguese, Italian, Dutch, Russian, Japanese and Korean, read
#: as the English cue (``"La respuesta es B"`` -> ``"answer is B"``, ``"Ответ: B"`` -> ``"answer: B"``)
_FOREIGN_CUES = [(re.compile(p, re.IGNORECASE), english) for p, english in (
    (r"\b(?:(?:a|la|le|el|die|der|l')\s+)?(?:letra|lettre|lettera|buchstaben?)\b", "letter"),
    (r"(?:الإجابة|الاجابة|الجواب)(?:\s+(?:الصحيحة|الصحيح))?\s*(?:هي|هو)", "answer is "),
    (r"(?:الإجابة|الاجابة|الجواب)(?=\s*[:：])", "answer"),
    (r"(?:सही\s+)?(?:उत्तर|जवाब)\s*(?:है\s*)?(?=[:：]?\s*[(\[]?[A-Ea-e]\b)", "answer: "),
    (r"\b(?:do[ğg]ru\s+)?(?:cevap|yan[ıi]t)\w*\s*(?=[:：]?\s*[(\[]?[A-Ea-e]\b)", "answer: "),
    (r"(?<=[A-E])['’](?:d[ıi]r|t[ıi]r)\b", ""),
    (r"(?:đáp\s+án|câu\s+trả\s+lời)(?:\s+đúng)?\s+là", "answer is"),
    (r"\bjawaban(?:nya)?(?:\s+yang\s+(?:benar|tepat))?\s+(?:adalah|ialah)", "answer is"),
    (r"\b(?:poprawna\s+)?odpowied[źz]\s+(?:to|brzmi)\b", "answer is"),
    (r"\bodpov[ěe]ď\s+je\b|\br[ăa]spunsul(?:\s+corect)?\s+este\b|\bvastaus\s+on\b", "answer is"),
    (r"\b(?:det\s+(?:rätta|riktige|rigtige)\s+)?svar(?:et)?\s+(?:är|er)\b", "answer is"),
    (r"απάντηση\s+(?:είναι)?|התשובה\s+(?:היא|הנכונה\s+היא)|คำตอบ(?:คือ|ที่ถูกต้องคือ)", "answer is "),
    (r"\b(?:odpowied[źz]|odpov[ěe]ď|svar(?:et)?|jawaban|vastaus|válasz|r[ăa]spuns(?:ul)?)\b|відповідь", "answer"),
    (r"\b(?:la\s+)?(?:respuesta|contestaci[oó]n)(?:\s+(?:correcta|final))?\s+(?:es|ser[ií]a)\b", "answer is"),
    (r"\b(?:la\s+)?(?:bonne\s+)?r[ée]ponse(?:\s+(?:correcte|finale))?\s+(?:est|serait)\b", "answer is"),
    (r"\b(?:die\s+)?(?:richtige\s+|korrekte\s+)?antwort\s+(?:ist|lautet|w[äa]re)\b", "answer is"),
    (r"\b(?:a\s+)?resposta(?:\s+(?:correta|certa|final))?\s+(?:[ée]|seria)(?=\s|$)", "answer is"),
    (r"\b(?:la\s+)?risposta(?:\s+(?:corretta|giusta))?\s+(?:[èe]|sarebbe)(?=\s|$)", "answer is"),
    (r"\b(?:het\s+)?(?:juiste\s+)?antwoord\s+is\b", "answer is"),
    (r"(?:правильный\s+)?ответ\s*(?:это|—|–|-)\s*", "answer is "),
    (r"(?:правильный\s+)?ответ(?=\s*[:：])", "answer"),
    (r"\b(?:respuesta|r[ée]ponse|antwort|resposta|risposta|antwoord)\b", "answer"),
    (r"(?:答え|正解|回答|解答)\s*は", "answer is "),
    (r"(?:答え|正解|回答|解答)(?=\s*[:：])", "answer"),
    (r"(?:정답|답변|답)\s*(?:은|는)", "answer is "),
    (r"(?:정답|답변|답)(?=\s*[:：])", "answer"),
    (r"\b(?:opci[oó]n|opç[ãa]o|opzione|alternativa)\b", "option"),
    (r"вариант|選択肢|선택지|보기", "option "),
    (r"\b(?:je\s+(?:choisis|prends|dirais)|j'opte\s+pour|ich\s+(?:w[äa]hle|nehme|sage)|ich\s+entscheide\s+mich\s+f[üu]r|"
     r"(?:eu\s+)?escolho|(?:yo\s+)?(?:elijo|escojo)|me\s+quedo\s+con|(?:io\s+)?scelgo|ik\s+kies|(?:я\s+)?выбираю|"
     r"мой\s+выбор\s*(?:—|-|:)?)(?:\s+(?:la|le|l'|el|a|o|die|den|het))?(?=\s)", "I choose"),
    (r"\bc'est\s+(?:l'option\s+|la\s+)?", "it is "),
    (r"\bes\s+la\s+", "it is "),
    (r"\bist\s+(?:option\s+)?", "is "),
)]


#: the word every foreign cue written in ASCII needs (an ASCII answer with none of them has no foreign cue; the
#: generated tests of every language's cue in tests/data/test_choices.py keep this list complete)
_ASCII_CUE_WORDS = frozenset("""respuesta contestacion reponse antwort resposta risposta antwoord letra lettre lettera
buchstabe buchstaben opcion opcao opzione alternativa est es ist choisis prends dirais opte wahle waehle nehme sage
entscheide escolho elijo escojo quedo scelgo kies cevap cevabi yanit dogru jawaban jawabannya odpowiedz odpoved
raspunsul raspuns vastaus svar svaret valasz""".split())
_ASCII_WORD = re.compile(r"[a-z]+")


def english_cues(text: str) -> str:
    """The answer with foreign answer/option cues replaced by the English ones the claim patterns read."""
    if text.isascii() and _ASCII_CUE_WORDS.isdisjoint(_ASCII_WORD.findall(text.lower())):
        return text
    for pattern, english in _FOREIGN_CUES:
        text = pattern.sub(english, text)
    return text


def case_insensitive_cues(text: str) -> str:
    """The answer with the cue words in English and in lower case, so one pattern serves "Answer", "ANSWER",
    "answer" and "Respuesta"."""
    text = english_cues(text)
    return re.sub(r"(?i)\b(answer|option|choice|letter|final|best option|probably|likely|maybe|perhaps|possibly|"
                  r"so|thus|therefore|hence|could|might|may|be|is|choose|pick|select|go with|say|not|or|"
                  r"correct|right|wrong|incorrect|my|it's|it is)\b", lambda m: m.group(0).lower(), text)


_WEAK = re.compile(r"(?i)\b(?:maybe|perhaps|possibly|could|might|may)\b")
_BUT = re.compile(r"(?i)\b(?:but|though|although|however|yet)\b")


def _only_statement(text: str, statements: set[str]) -> str | None:
    """The one label stated outright, where the other labels are only listed or discussed (``"Answer: B\nOptions
    considered: A, C"``), not offered beside it (``"B or C"``) nor hedged (``"Answer: B, but it could be C"``)."""
    if len(statements) != 1:
        return None
    letter = next(iter(statements))
    paired = re.search(rf"(?<![A-Za-z]){letter}{_PAIRED}[A-Z](?![A-Za-z])|(?<![A-Za-z])[A-Z]{_PAIRED}{letter}(?![A-Za-z])",
                       text)
    said = [m.end() for m in re.finditer(rf"(?<![A-Za-z]){letter}(?![A-Za-z])", text)]
    hedged_after = _WEAK.search(text, said[0]) if said else _WEAK.search(text)  # "Answer: B. Maybe C."
    return None if paired or hedged_after else letter


def _main_pick(text: str, claims: list[tuple[int, str]]) -> str | None:
    """In ``"Probably B, but it could be D"`` the answer is B: the first of two claims, stated without a weak
    hedge, and the second only offered as a possibility after ``but``/``though``. None otherwise."""
    first, second = claims[0], next(c for c in claims if c[1] != claims[0][1])
    if any(letter not in (first[1], second[1]) for _, letter in claims):
        return None
    start = text.rfind("\n", 0, first[0]) + 1
    if _WEAK.search(text[start:first[0]]):
        return None
    between, after = text[first[0] + 1:second[0]], text[second[0] + 1:second[0] + 40]
    hedged = _WEAK.search(between) or re.match(r"\W*(?:is|seems)\s+(?:also\s+)?(?:possible|plausible|likely)", after)
    restated = any(at > second[0] and letter == first[1] for at, letter in claims)  # "B (also possibly C, but B fits)"
    return first[1] if hedged and (_BUT.search(between) or restated) else None


#: a comparison that names candidates without choosing: ``"Between A and C, ..."``, ``"Options A and B are close"``,
#: or the labels listed: ``"The options given are A, B, C and D."``
_COMPARISON = re.compile(r"(?i)(?<!torn\s)\bbetween\s+(?:options?\s+)?[A-Z]\s+and\s+(?:option\s+)?[A-Z]\b,?"
                         r"|\b(?:the\s+)?(?:options|choices)\s+(?:given\s+|listed\s+|here\s+|shown\s+)?(?:are|were)\s*:?\s*"
                         r"[A-Z](?:\s*(?:,|and|&)\s*(?:and\s+)?[A-Z])+\b"
                         r"|\b(?:options?\s+)?[A-Z]\s+and\s+(?:option\s+)?[A-Z]\s+(?:are|seem|look)\s+"
                         r"(?:very\s+|both\s+)?(?:close|similar|plausible|possible|tempting|reasonable)\b")
#: a conclusion: the last sentence states the pick after reasoning that discussed other options
_CONCLUSION = re.compile(r"(?i)\b(?:so|thus|therefore|hence|overall|in\s+conclusion|final(?:ly)?|"
                         r"(?:the\s+)?(?:correct|final|best|right)\s+(?:answer|option|choice|one|summary))\b"
                         r"|^\s*(?:final\s+)?answer\s*[:：]")


def concludes(text: str) -> bool:
    """Whether the answer states a conclusion (``"so"``, ``"the answer is"``, ``"Final answer:"``) anywhere."""
    return _CONCLUSION.search(text) is not None


#: options eliminated as a list: ``"Options A, B and D can be ruled out"``, ``"A, C do not match"``
_ELIMINATED = re.compile(r"(?:\boptions?\s+)?\b[A-Z](?:\s*(?:,|and|&|, and)\s*(?:option\s+)?[A-Z]\b)+(?=\s+(?:"
                         r"(?:can|could|should|must|may)\s+be\s+(?:ruled\s+out|eliminated|excluded|dismissed|discarded)|"
                         r"(?:are|were)\s+(?:all\s+|both\s+)?(?:ruled\s+out|eliminated|excluded|wrong|incorrect|not\s+\w+)|"
                         r"(?:do|did)\s+not\s+(?:match|fit|apply))\b)")
_REMAINING = re.compile(r"(?i)\b(?:the\s+)?(?:remaining|only\s+(?:one|option)\s+left|last\s+one\s+left)\b"
                        r"|\b(?:remains|is\s+left)\s*[.!]?\s*$")
#: labels negated as a list: ``"Not A, B, C or D."``, ``"neither A nor B"``, ``"Eliminate A (no ball), B (no food)"``
_NEGATED_LIST = re.compile(r"(?i:\b(?:not|neither|eliminat(?:e|es|ed|ing)|exclud(?:e|es|ed|ing)|rul(?:e|es|ed|ing)\s+out)\b)"
                           r"\s+(?:options?\s+)?(?P<list>[(\[]?[A-Z][)\]]?(?:\s*\([^()\n]{0,40}\))?"
                           r"(?:\s*(?:,\s*(?:or\s+|nor\s+|and\s+)?|or|nor|and|&)\s*(?:option\s+)?[(\[]?[A-Z][)\]]?"
                           r"(?:\s*\([^()\n]{0,40}\))?)+)(?![A-Za-z0-9'’])")


def _last_sentence(text: str) -> tuple[int, str]:
    """Where the answer's last sentence starts, and the sentence (a final ``"B."`` belongs to it)."""
    body = text.rstrip(" .!\n")
    cut = max(body.rfind(". "), body.rfind("! "), body.rfind("? "), body.rfind("\n"), body.rfind("。"))
    return cut + 1, text[cut + 1:]


def _concluded(text: str, claimed: list[tuple[int, str]], negated: set[str]) -> str | None:
    """The one option the last sentence concludes with (``"... So the answer is B."``), or None."""
    start, last = _last_sentence(text)
    if not _CONCLUSION.search(last) or _WEAK.search(last):
        return None
    final = {c for at, c in claimed if at >= start and c not in negated}
    return final.pop() if len(final) == 1 else None


#: a last clause that commits to one label after weighing several: ``"I'm torn between A and B; I'll say A."``
_COMMITMENT = re.compile(r"(?i)^\s*(?:(?:so|but|and|then|ultimately|in\s+the\s+end)\s*,?\s+)?"
                         r"(?:I(?:'ll|’ll|\s+will|'d|’d|\s+would)\s+(?:say|go\s+with|choose|pick|select|answer)|"
                         r"I\s+(?:choose|pick|select)|my\s+(?:final\s+)?(?:answer|choice|pick)\s+(?:is|would\s+be))\s*:?\s*"
                         r"(?:option\s+|choice\s+)?[(\[]?(?P<l>[A-Z])[)\]]?\s*[.!]?\s*$")
#: a reply that asks itself which and answers: ``"(B) or (C)? (C)."``: the one label after its last question mark
_ANSWERED_QUESTION = re.compile(r"[?？]\s*[(\[]?(?P<l>[A-Z])[)\]]?\s*[.!]?\s*$")


def _committed(text: str, claimed: list[tuple[int, str]], negated: set[str]) -> str | None:
    """The one of the weighed labels (``claimed``) a reply settles on in its last words: a commitment that ends it
    (``"...; I'll say A."``) or the answer to its own question (``"(B) or (C)? (C)."``); None otherwise."""
    last = re.split(r"[.;!?\n]\s+|\n", text.rstrip(" .!\n"))[-1]
    m = _COMMITMENT.match(last) or _ANSWERED_QUESTION.search(text)
    weighed = {c for _, c in claimed} - negated
    return m["l"] if m and not _WEAK.search(last) and m["l"] in weighed else None


@lru_cache(maxsize=16)
def _statement_pattern(letters: str, words: str) -> re.Pattern:
    """An answer stated outright: a line that is only a label (``"A"``, ``"Final answer: (C)"``) or an answer cue
    and its label (``"the answer is B"``, ``"So the correct choice is D"``)."""
    closed = rf"(?:(?P<w>[{words}])(?=\s*[)\].,;:!?(]|\s*$)|(?P<p>[{''.join(c for c in letters if c not in words) or '_'}])(?![A-Za-z0-9'’\u00c0-\u024f]))"
    return re.compile(
        rf"(?m)^[ \t]*(?:(?:final\s+|correct\s+)?answer\s*(?:is)?\s*[:：]?\s*)?[(\[]?(?P<line>[{letters}])[)\]]?[ \t]*[.]?[ \t]*$"
        rf"|(?:\banswer|\b(?:correct|right|final|best)\s+(?:choice|option|one))\s*(?:is|would\s+be|will\s+be|should\s+be)?"
        rf"\s*[:：]?\s*(?:option\s+|choice\s+|letter\s+)?[(\[]?{closed}")


def stated(text: str, letters: str, words: str = "AI") -> set[str]:
    """The labels the answer states outright (:func:`_statement_pattern`): two different ones, with no correction
    between them (``"Answer: B. Answer: C."``, ``"A\nThe correct answer is C."``), commit to neither."""
    found = set()
    for m in _statement_pattern(letters, words).finditer(text):
        before = text[max(0, m.start() - 40):m.start()]
        before = re.split(r"[.!?\n;,]|\b(?:but|however|yet)\b", before)[-1]
        if not _HYPOTHETICAL.search(before):  # "Some might say the answer is A" asserts nothing
            found.add(m.group("line") or m.group("w") or m.group("p"))
    return found


_HYPOTHETICAL = re.compile(r"(?i)\b(?:if|might|may|could|would|some|someone|whether|suppose|assume)\b")


#: a label offered together with another (``"B or C"``, ``"B/C"``)
_PAIRED = "(?:\\s*(?:or|/|and|&|,|;|或者|或|还是)\\s*(?:option\\s+)?[(\\[]?)"


def by_letter(text: str, letters: str, all_letters: str, words: str = "AI") -> Choice | None:
    """The choice made by a label (claims, then mentions), or None when no label names an option."""
    claims, negations, mentions = _claim_patterns(all_letters, words)
    text = _COMPARISON.sub(lambda m: " " * len(m.group(0)), text)  # same length: positions stay
    claimed = [(at, c) for at, c in _letters_at(claims, text)  # "O homem abre a porta": a word, not label O
               if c in letters or not re.match(r"\s+[^\W\d_A-Z]", text[at + 1:])]
    eliminated = {c for m in _ELIMINATED.finditer(text) for c in re.findall(r"\b[A-Z]\b", m.group(0))}
    listed = {c for m in _NEGATED_LIST.finditer(text) for c in re.findall(r"(?<![A-Za-z])[A-Z](?![A-Za-z])",
                                                                         re.sub(r"\([^()]{2,}\)", " ", m["list"]))}
    if eliminated | listed and not claimed or not set(c for _, c in claimed) - eliminated - listed:
        rest = [c for c in letters if c not in eliminated | listed]
        if eliminated and len(rest) == 1 and _REMAINING.search(text):
            return Choice(letters.index(rest[0]), "letter")  # "A, B and C are wrong, so it is the remaining one"
        only_list = re.fullmatch(r"(?i)\s*(?:it\s*(?:'s|’s|is)\s+)?" + _NEGATED_LIST.pattern + r"\s*[.!]?\s*", text)
        set_aside = listed | eliminated
        if len(rest) == 1 and set_aside <= set(letters) and (
                _REMAINING.search(text) and len(set_aside) >= 2 or len(set_aside) >= 3 and only_list):
            return Choice(letters.index(rest[0]), "letter")  # "Not A, B, C or D." of five: E; not "Neither A nor C." of
            # three, where graders split (one reads B, one reads an answer that names no option)
    if claimed:
        negated = set(_letters_found(negations, text)) | eliminated
        kept = [(at, c) for at, c in claimed if c not in negated]
        if not kept:  # "A is not correct" chooses nothing; "Not A or B -- it's D" chooses D
            mentioned = (set(_letters_found(mentions, text)) - negated) & set(letters)
            return Choice(letters.index(mentioned.pop()), "letter") if len(mentioned) == 1 else Choice(None, "negated")
        statements = stated(text, all_letters, words) - negated
        if len(statements) > 1:
            return Choice(None, "ambiguous")  # "Answer: B. Answer: C."
        if len({c for _, c in kept}) > 1:
            letter = (_concluded(text, kept, negated) or _committed(text, kept, negated) or _main_pick(text, kept)
                      or _only_statement(text, statements))
            if letter is None:
                return Choice(None, "ambiguous")
        else:
            letter = kept[0][1]
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
                     r"|\b(?:the\s+)?(" + "|".join(_ORDINALS + ("last",)) + r")\s+(?:option|choice|one|answer)\b"
                     r"|\b(?:the\s+)?(\d{1,2})(?:st|nd|rd|th)\b(?:\s+(?:option|choice|one|answer)\b|(?=\s*[.!]?\s*$))"
                     r"|\bthe\s+(" + "|".join(_ORDINALS) + r")\s*[.!]?\s*$")


#: a position counted from the end: ``"the second-to-last option"``, ``"second last"``, ``"the penultimate one"``,
#: ``"the one before the last"``, ``"third from the end"`` (group ``k``: how many places before the last one)
_FROM_END = re.compile(r"(?i)\b(?:(?:(?P<k>second|third|fourth)[\s-]*(?:(?:to|from)[\s-]*(?:the[\s-]+)?)?(?:last|end)|"
                       r"penultimate|next[\s-]+to[\s-]+last)(?:\s+(?:option|choice|one|answer)\b|(?=\s*[.!]?\s*$))"
                       r"|(?:one|option|choice)\s+(?:right\s+|just\s+)?before\s+the\s+last(?:\s+(?:one|option|choice))?\b)")

#: an option numbered in roman numerals, I to VIII, in either case: ``"Option III"``, ``"choice iv."``, a reply that
#: is only ``"(ii)"``, ``"Answer: iv"``; the numeral ends its clause (``"Option I think ..."`` is no numeral)
_ROMAN_NUMERALS = ("i", "ii", "iii", "iv", "v", "vi", "vii", "viii")
_ROMAN_FORM = r"(?P<r{}>(?i:viii|vii|vi|iv|v|iii|ii|i))(?=\s*[.,;:!)\]]|\s*$)"
_ROMAN = re.compile(r"(?i:\b(?:option|choice)\s+[(\[]?)" + _ROMAN_FORM.format(1)
                    + r"|^\s*(?i:(?:the\s+)?(?:correct\s+|final\s+)?answer\s*(?:is\s*[:：]?|[:：])\s*)[(\[]?"
                    + _ROMAN_FORM.format(2) + r"[)\]]?\s*[.!]?\s*$"
                    + r"|^\s*[(\[]" + _ROMAN_FORM.format(3) + r"[)\]]\s*[.!]?\s*$"
                    + r"|^\s*(?P<r4>(?:viii|vii|vi|iv|v|iii|ii)|VIII|VII|VI|IV|V|III|II)\s*[.!]?\s*$")
#: options set aside by position: ``"neither of the first two"``, ``"none of the last three"`` (it names one option
#: only where one is left)
_COUNT_WORDS = ("two", "three", "four", "five", "six", "2", "3", "4", "5", "6")
_NONE_OF = re.compile(r"(?i)\b(?:neither|none)\s+of\s+the\s+(?P<end>first|last)\s+(?P<n>" + "|".join(_COUNT_WORDS)
                      + r")(?:\s+(?:options|choices|ones))?\s*[.!]?\s*$")
#: ``"the one in the middle"``, ``"the middle option"``: the middle one of an odd number of options
_MIDDLE = re.compile(r"(?i)\b(?:one|option|choice|answer)\s+in\s+the\s+middle\b|\bthe\s+middle\s+(?:one|option|choice)\b")
#: ``"the first or the second option"``: two positions offered
_ORDINAL_HEDGE = re.compile(r"(?i)\b(" + "|".join(_ORDINALS) + r")\s+or\s+(?:the\s+)?(" + "|".join(_ORDINALS) + r")\b")


#: a reply that is only an answer cue and a number: ``"Answer is 2"``, ``"The answer: 3."``
_ANSWER_NUMBER = re.compile(r"(?i)\s*(?:the\s+)?(?:correct\s+|final\s+|right\s+|best\s+)?answer\s*(?:is|would\s+be|[:：=])?"
                            r"\s*[(\[]?(\d{1,2})[)\]]?\s*[.!]?\s*")
#: words of an option that counts or measures (``"a few"``, ``"several"``): a number in the reply may be that count
_QUANTITIES = frozenset({"few", "several", "many", "multiple", "couple", "pair", "dozen", "some", "lots", "more", "less",
                         "fewer", "most", "once", "twice", "single", "both", "all", "half", "times", "number"})


def _counts(options: Sequence[str]) -> bool:
    """Whether an option states a number or a quantity (:func:`~savi_plugin.data.options.normalize` writes number
    words as digits): then ``"Answer is 2"`` may name that count rather than the second option."""
    words = {w for o in options for w in normalize(strip_option_prefix(o)).split()}
    return any(any(c.isdigit() for c in w) for w in words) or bool(words & _QUANTITIES)


def by_number(text: str, options: Sequence[str]) -> Choice | None:
    """``"Option 2"`` / ``"the second option"`` / ``"the 3rd one"`` / a reply ending ``"the 3rd."``: options counted
    from 1, unless the options are numbers; ``"the second-to-last option"`` / ``"the one before the last"`` counted
    from the end; roman numerals (``"Option III"``, ``"(ii)"``); a reply that is only ``"Answer is 2"`` too, where no
    option states a number or a quantity."""
    found, plain = set(), False
    for m in _FROM_END.finditer(text):  # read first and blanked, so that its "last" is not the last option
        if not re.search(r"(?i)\b(?:not|neither|nor|except)\s+(?:the\s+)?$", text[max(0, m.start() - 12):m.start()]):
            found.add(len(options) - 1 - (_ORDINALS.index(m["k"].lower()) if m["k"] else 1))
        text = text[:m.start()] + " " * (m.end() - m.start()) + text[m.end():]
    texts = [strip_option_prefix(o).strip() for o in options]
    if len(options) <= len(_ROMAN_NUMERALS) and not any(t.lower() in _ROMAN_NUMERALS for t in texts):
        # roman numerals are option numbers only where no option is one and no label is I or V
        for m in _ROMAN.finditer(text):
            before = text[max(0, m.start() - 16):m.start()]
            if not re.search(r"(?i)\b(?:not|neither|nor|except)\s+(?:option\s+|choice\s+)?$", before):
                found.add(_ROMAN_NUMERALS.index(next(g for g in m.groups() if g).lower()))
    for m in _NONE_OF.finditer(text):  # "neither of the first two" of three: the third
        count = _COUNT_WORDS.index(m["n"].lower()) % 5 + 2
        if count == len(options) - 1:
            found.add(count if m["end"].lower() == "first" else 0)
    bare = re.fullmatch(r"\s*(\d{1,2})\s*[.!]?\s*", text)  # "2" of "1 time / 2 times / ...": both readings agree
    if bare:
        n = int(bare.group(1))
        leading = [i for i, o in enumerate(options) if normalize(strip_option_prefix(o)).split()[:1] == [str(n)]]
        if leading == [n - 1]:
            found.add(n - 1)
    answered = _ANSWER_NUMBER.fullmatch(text)
    if answered and not _counts(options):
        found.add(int(answered.group(1)) - 1)
    for m in _ORDINAL_HEDGE.finditer(text):
        found.update(_ORDINALS.index(w.lower()) for w in m.groups())
    for m in _NUMBER.finditer(text):
        if re.search(r"(?i)\b(?:not|neither|nor|except)\s+(?:the\s+)?$", text[max(0, m.start() - 12):m.start()]):
            continue  # "Neither the first nor the third."
        plain = plain or bool(m.group(1))
        digits = m.group(1) or m.group(3)
        if digits:
            found.add(int(digits) - 1)
        else:
            word = (m.group(2) or m.group(4)).lower()
            found.add(len(options) - 1 if word == "last" else _ORDINALS.index(word))
    middle = _MIDDLE.search(text)
    if middle and not re.search(r"(?i)\b(?:not|neither|nor|except)\s+$", text[max(0, middle.start() - 12):middle.start()]):
        if len(options) % 2 == 0:
            return Choice(None, "ambiguous")  # four options have no middle one
        found.add(len(options) // 2)
    if not found:
        return None
    if len(found) > 1:
        return Choice(None, "ambiguous")
    index = found.pop()
    texts = [strip_option_prefix(o).strip() for o in options]
    if plain and str(index + 1) in texts and texts.index(str(index + 1)) != index:
        return Choice(None, "ambiguous")  # "option 2" may be the second option or the one whose text is "2"
    return Choice(index, "number") if 0 <= index < len(options) else Choice(None, "out_of_range")

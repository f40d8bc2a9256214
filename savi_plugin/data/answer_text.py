"""Which part of a free-form answer states the answer: the text :mod:`savi_plugin.data.choices` reads.

Before an answer's option can be read, the parts that are not the answer are set aside, as a careful
grader does when reading it:

* **Reasoning and markup**: ``<think>...</think>`` blocks and markdown emphasis (``**B**``).
* **Structured output**: ``{"answer": "C"}`` / ``{'option': 'A'}`` (JSON or Python-dict style) and
  ``<answer>C</answer>`` are read as ``answer: C``.
* **The prompt echoed back**: a model that repeats ``Question: ...``, ``Options:`` and the option lines before
  (or instead of) answering has not chosen the options it repeats; :func:`drop_prompt_echo` removes the echo
  and what is left is the answer (nothing, for a reply cut off while echoing; ``"A"`` for ``"Answer with the
  option's letter from the given choices directly. A"``).
* **Self-corrections**: in ``"B. Wait, actually E."``, ``"(D) Sorry, I meant (A)."`` or ``"At first I thought
  2, but it is 3."`` the answer is what follows the last correction; :func:`after_correction` returns it.
* **Retractions**: ``"B. Wait, no."`` takes B back; with nothing readable after it (a reply cut by the token
  limit: ``"B. Wait, no, the"``) nothing is chosen; :func:`after_retraction` returns what follows. A correction
  followed by uncertainty (``"A. Wait, actually I'm not sure."``) takes the pick back too.
* **Struck-through text** (``~~A~~ C``) is taken back.
* **Chat remnants**: special tokens a decoder left in (``A<|endoftext|>``, ``</s>``, ``<|im_end|>``, ``[/INST]``)
  and a leading speaker tag (``Assistant: A``, ``GPT: (B)``) are not part of the answer.
* **LaTeX and lists**: ``\\boxed{B}`` is read as ``answer: B``; ``$`` delimiters and a list bullet (``- B``) are not
  part of the answer; Cyrillic and Greek capitals that look like labels (``Ответ: С``) are read as the Latin ones.
* **A new turn**: what the model goes on with after answering (``Answer: B\\n\\nQuestion: ...\\nAnswer: A``,
  ``User: ...``) is not an answer to this question.
* **Quoted labels**: ``'B'``, ``"A"``, ``<D>``, ``{E}``, ``“C”``, ``「B」`` are read as ``(B)`` ...; ``Ans: C`` as
  ``answer: C``.
* **Non-answers**: ``"Yes, I can help with that. Please provide the video."`` is a conversational reply, not the
  option ``yes``; :func:`is_non_answer` says so.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from savi_plugin.data.options import OPTION_LABEL, begins, normalize, strip_option_prefix

_THINK_OPEN = re.compile(r"<think(?:ing)?>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think(?:ing)?>", re.IGNORECASE)
_MARKUP = re.compile(r"[*_`#]+")
_JSON_KEY = re.compile(r"""["'](answer|option|choice|letter)["']\s*:\s*(?:["']([^"'\n]*)["']|([^,}\n]*))""",
                       re.IGNORECASE)
#: characters drawn as nothing (a byte order mark, zero-width spaces and joiners): no part of an answer
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff]")


def _json_value(m: re.Match) -> str:
    """The value of a :data:`_JSON_KEY` match, without the quote a reply cut short leaves (``"answer": "``)."""
    return (m.group(2) if m.group(2) is not None else m.group(3)).strip().strip("\"'")


_ANSWER_TAG = re.compile(r"<(?:answer|option|choice)>(.*?)(?:</(?:answer|option|choice)>|$)", re.IGNORECASE | re.DOTALL)
_JSON_FENCE = re.compile(r"^\s*json\s*\n", re.IGNORECASE)


def _without_reasoning(text: str) -> str:
    """``text`` without ``<think>...</think>`` blocks (each from an opening tag to the first closing tag after it;
    an unclosed one is kept), in one pass: a regex search would rescan the rest of the text for every unclosed
    tag."""
    out, pos = [], 0
    while (opening := _THINK_OPEN.search(text, pos)) and (closing := _THINK_CLOSE.search(text, opening.end())):
        out += [text[pos:opening.start()], " "]
        pos = closing.end()
    return "".join(out) + text[pos:]


#: special tokens of chat templates left in a decoded reply (``<|endoftext|>``, ``</s>``, ``[/INST]``, ...)
_SPECIAL_TOKEN = re.compile(r"<\|[^|<>\s]{1,40}\|>|</?s>|<(?:eos|bos|pad|unk|end_of_turn|start_of_turn|eot)>|"
                            r"\[/?INST\]|<<SYS>>|<</SYS>>", re.IGNORECASE)
#: a speaker tag opening the reply (``Assistant:``, ``### Assistant:``, ``GPT:``, ``<|im_start|>assistant``)
_SPEAKER = re.compile(r"^\s*(?:#+\s*)?(?:assistant|gpt|model|bot|chatbot|response|ai)\s*(?::|：|\n)\s*", re.IGNORECASE)
#: simple HTML formatting, in pairs (``<b>B</b>``) or line breaks, which the quoted-label rule must not read as a
#: label (a lone ``<B>`` is one)
_HTML_TAG = re.compile(r"<(b|i|u|em|strong|span|code|p)>(.*?)</\1>|<br\s*/?>|</?p>", re.IGNORECASE | re.DOTALL)
#: a single letter in quotes or brackets, not inside a word: ``'B'``, ``"A"``, ``<D>``, ``{E}``, ``“C”``, ``「B」``
_QUOTED_LABEL = re.compile(r"(?<![A-Za-z0-9])(?:'|\"|“|”|‘|’|«|<|\{|「|『|【|〈|《)\s*([A-Za-z])\s*"
                           r"(?:'|\"|”|“|’|‘|»|>|\}|」|』|】|〉|》)(?![A-Za-z0-9])")
#: ``Ans: C``, ``Ans. C``, ``ans - C``
_ANS = re.compile(r"(?i)\bans\b(?:\.?\s*[:：-]|\.|\s+is\b)\s*|^\s*(?:=>|->|→|⇒)\s*")
#: ``Opt. C``, ``opt C``
_OPT = re.compile(r"(?i)\bopt\b\.?\s*(?=[(\[]?[A-Z]\b)")


def without_chat_remnants(text: str) -> str:
    """``text`` without special tokens and without a speaker tag at its start."""
    text = _SPECIAL_TOKEN.sub(" ", text)
    previous = None
    while previous != text:  # "### Assistant:\nGPT: B"
        previous, text = text, _SPEAKER.sub("", text, count=1)
    return text


#: markdown strikethrough: ``~~A~~ C`` takes A back
_STRUCK = re.compile(r"~~.*?~~", re.DOTALL)
#: LaTeX: ``\boxed{B}`` is the answer; ``$...$`` math delimiters are not part of it
_BOXED = re.compile(r"\\boxed\s*\{\s*(?:\\text\s*\{)?([^{}]*?)\}?\s*\}")
_MATH = re.compile(r"\$+|\\[()\[\]]")
#: a list bullet opening a line (``- B``, ``• B``); a checkbox is kept (:func:`marked_option`)
_BULLET = re.compile(r"(?m)^[ \t]*[-*•·][ \t]+(?!\[)")
#: Cyrillic and Greek capitals that look like Latin label letters (``Ответ: С``), as a reader sees them (fullwidth
#: letters: :data:`_DRAWN_LETTER`)
_LOOKALIKE = {"А": "A", "В": "B", "С": "C", "Е": "E", "Α": "A", "Β": "B", "Ε": "E"}
_LOOKALIKE_LABEL = re.compile(r"(?<![^\W\d_])[АВСЕΑΒΕ](?![^\W\d_])")
#: a letter drawn another way, standing alone: circled ``Ⓑ``, mathematical ``𝐁`` ``𝘋``, fullwidth ``Ｂ`` (which Unicode's
#: NFKC folds to a Latin letter), and the enclosed letters it does not fold: negative circled ``🅒``, negative squared
#: ``🅱️`` (an emoji variation selector after it dropped)
_DRAWN_LETTER = re.compile(r"(?<!\w)([^\x00-\x7f])\ufe0f?(?!\w)")
_ENCLOSED = {0x1F150: "A", 0x1F170: "A"}  # first code point of each enclosed alphabet NFKC leaves alone


def _latin_letter(m: re.Match) -> str:
    """A drawn letter (:data:`_DRAWN_LETTER`) as the Latin letter it is, else the text unchanged."""
    ch = m.group(1)
    for first in _ENCLOSED:
        if first <= ord(ch) < first + 26:
            return chr(ord("A") + ord(ch) - first)
    folded = unicodedata.normalize("NFKC", ch)
    return folded if len(folded) == 1 and folded.isascii() and folded.isalpha() else m.group(0)


#: a letter with a diacritic given as the answer (``Answer: Á``, ``answer: B\u0301``): the letter, as a reader sees it
_ACCENTED_ANSWER = re.compile(r"(?i:(\banswer\s*(?:is\s*)?[:：]?\s*[(\[]?))([A-Za-z\u00c0-\u024f][\u0300-\u036f]*)"
                              r"(?=[)\]]?\s*[.!]?\s*(?:\n|$))")


def _unaccented(m: re.Match) -> str:
    base = "".join(c for c in unicodedata.normalize("NFD", m.group(2)) if not unicodedata.combining(c))
    return m.group(1) + base if len(base) == 1 and base.isascii() and base.isupper() else m.group(0)


#: a reply written as a question and its answer (``"Q: What shape is it?\nA: cylinder"``): ``A:`` labels the answer,
#: it is no option label
_QA = re.compile(r"\s*Q\s*[:：][^\n]*\?\s*\n\s*A\s*[:：]\s*(?P<a>\S.*)", re.DOTALL)
#: quotes escaped by a reply serialised twice (``\"C\"``, ``"{\"answer\": \"E\"}"``)
_ESCAPED_QUOTE = re.compile(r"\\+([\"'])")
#: the model going on with a turn of its own after answering (``Answer: B\n\nQuestion: ...\nAnswer: A``,
#: ``B\nUser: ...``): only the first answer is the answer to this question
_NEW_TURN = re.compile(r"(?im)^[ \t]*(?:#+[ \t]*)?(?:question|user|human|q)[ \t]*[:：]|<\|im_start\|>\s*user|\[INST\]|"
                       r"<\|start_header_id\|>\s*user")
#: a reply that repeats one label (``"A A A A"``, ``"B, B, B"``): that label
_REPEATED = re.compile(r"\s*[(\[]?([A-Za-z])[)\]]?(?:[\s,.;]+[(\[]?\1[)\]]?)+[\s.]*")


#: a decoding loop of one capital (``"BBBBBBBB"``)
_RUN = re.compile(r"([A-Z])\1{2,}")
#: markup tags other than the answer's (``<output>``, ``<rationale>``) and markdown quote marks (``> **B**``)
_OTHER_TAG = re.compile(r"</?[A-Za-z_][\w-]+\s*/?>")
_QUOTE_MARK = re.compile(r"(?m)^[ \t]*>[ \t]*")


def clean(response: str) -> str:
    """The answer without reasoning blocks, markdown and chat remnants; a reply written as ``Q: ...?`` and ``A: ...``
    as ``answer: ...``; JSON answer keys read as ``answer: ...`` (also serialised twice, its quotes escaped); quoted
    labels as ``(X)``; ``Ans:`` as ``answer:``; letters drawn another way (``Ⓑ``, ``𝐁``, ``🅒``) and an answer letter
    with a diacritic (``Answer: Á``) as Latin letters."""
    text = _without_reasoning(_INVISIBLE.sub("", response or ""))
    if qa := _QA.fullmatch(text):
        text = f"answer: {qa['a']}"
    if not text.strip() and _THINK_CLOSE.search(response or ""):  # only reasoning: its conclusion is the answer
        text = _THINK_CLOSE.sub(" ", _THINK_OPEN.sub(" ", response))
    turn = next((m for m in _NEW_TURN.finditer(text) if text[:m.start()].strip()), None)
    if turn is not None and _ANSWERED.search(_SPECIAL_TOKEN.sub(" ", text[:turn.start()])):
        text = text[:turn.start()]
    text = _BOXED.sub(lambda m: f" answer: {m.group(1)} ", text)
    text = _LOOKALIKE_LABEL.sub(lambda m: _LOOKALIKE[m.group(0)], _MATH.sub(" ", text))
    text = _ACCENTED_ANSWER.sub(_unaccented, _DRAWN_LETTER.sub(_latin_letter, _ESCAPED_QUOTE.sub(r"\1", text)))
    text = without_chat_remnants(_BULLET.sub("", _MARKUP.sub("", _STRUCK.sub(" ", text))))
    text = _HTML_TAG.sub(lambda m: m.group(2) or " ", text)
    text = _QUOTED_LABEL.sub(lambda m: f"({m.group(1)})", text)
    text = _OPT.sub("option ", _ANS.sub("answer: ", text))
    text = _JSON_FENCE.sub("", text)
    text = _ANSWER_TAG.sub(lambda m: f"answer: {m.group(1).strip()}\n", text)
    text = _OTHER_TAG.sub(" ", _QUOTE_MARK.sub("", text))
    keys = list(_JSON_KEY.finditer(text))
    if text.lstrip().startswith("{") and keys and not any(map(_json_value, keys)):
        return ""  # '{"reasoning": "...", "answer": "' cut before its answer: the reasoning is no answer
    text = _JSON_KEY.sub(lambda m: f"{m.group(1).lower()}: {_json_value(m)}", text).strip()
    repeated = _REPEATED.fullmatch(text) or _RUN.fullmatch(text)
    return repeated.group(1) if repeated else text


#: text that already answers (a label or an answer cue) before a new turn
_ANSWERED = re.compile(r"(?i)\b(?:answer|option)\b|(?<![A-Za-z])[(\[]?[A-Z][)\].]?\s*(?:\n|$)")


# ------------------------------------------------------------------------------------------ prompt echo
_QUESTION_LINE = re.compile(r"^\s*question\s*[:：]", re.IGNORECASE)
_OPTIONS_HEADER = re.compile(r"^\s*(?:options?|choices?|candidates?)\s*[:：]?\s*$", re.IGNORECASE)
#: a benchmark's answer instruction repeated back (``Answer with the option's letter from the given choices
#: directly.``, ``Only give the best option.``): its sentence (``rest``: what the line goes on with after it, the
#: answer in ``"... directly. A"``; ``e.g.``/``i.e.`` end no sentence)
_INSTRUCTION_LINE = re.compile(r"^\s*(?:answer\s+with\s+the\s+option|only\s+give\s+the\s+best|please\s+(?:answer|respond|"
                               r"select|choose)\s+with|respond\s+with\s+(?:only\s+)?the\s+(?:letter|option)|"
                               r"select\s+the\s+best\s+(?:answer|option))\b"
                               r"(?:[^\n]*?(?<!\be\.g)(?<!\bi\.e)[.!](?=[ \t])(?P<rest>[^\n]*)|[^\n]*)$", re.IGNORECASE)
_OPTION_LINE = re.compile(rf"^\s*{OPTION_LABEL}\s*(.*?)\s*$")


def _echoes(line: str, letters: str, texts: Sequence[str], last: bool) -> str | None:
    """The label of ``line`` when it repeats an option line (``"(B) text of B"``); on the reply's last line a
    cut-off beginning of the option's text counts too."""
    m = _OPTION_LINE.match(line)
    if not m:
        return None
    letter = next(g for g in m.groups()[:3] if g)
    if letter not in letters:
        return None
    said, option = normalize(m.group(4)).split(), normalize(texts[letters.index(letter)]).split()
    return letter if said == option or (last and begins(said, option)) else None


#: an option's label in a line that lists the options: ``a)``, ``(b)``, ``[C]``, ``(1)``, ``2)``
_INLINE_LABEL = re.compile(r"(?<![A-Za-z0-9])[(\[]?([A-Za-z]|[1-9])[)\]]")


def _after_inline_options(line: str, texts: Sequence[str]) -> str | None:
    """What follows a list of the options on one line, from the first, each label (a letter of either case, or its
    number) followed by its option's own text (``"a) cat b) dog c) rabbit d) hamster -> b)"`` -> ``"b)"``); None where
    the line lists fewer than two options that way."""
    marks = list(_INLINE_LABEL.finditer(line))
    wanted = [normalize(t) for t in texts]
    for k, first in enumerate(marks):
        label = first.group(1)
        if label not in "aA1":
            continue
        run, end = 0, None
        for j, m in enumerate(marks[k:k + len(texts)]):
            position = ord(m.group(1).lower()) - ord("a") if m.group(1).isalpha() else int(m.group(1)) - 1
            if position != j or (m.group(1).isalpha() and m.group(1).isupper() != label.isupper()):
                break
            following = marks[k + j + 1].start() if k + j + 1 < len(marks) else len(line)
            said = line[m.end():following]
            cut = next((m.end() + c.start() for c in re.finditer(r"(?<=\w)\b", said)
                        if normalize(said[:c.start()]) == wanted[j]), None)
            if cut is None:
                break
            run, end = j + 1, cut
        if run >= 2:
            return line[end:].strip().lstrip("-–—>→=:,;.").strip()
    return None


def drop_prompt_echo(text: str, options: Sequence[str], letters: str) -> str:
    """``text`` without a repeated prompt: ``Question: ...`` lines, an ``Options:`` header and the option lines
    it repeats. Option lines count as an echo after such a header (from option A) or as a run of two or more in
    label order from any label (``(A) x`` then ``(B) y``; ``(B) y`` then ``(C) z``: listing options is choosing
    none); a lone ``"(B) text of B"`` is an answer and is kept. A line listing the options from the first, each label
    with its own text, is dropped up to what follows the list (``"a) cat b) dog c) rabbit -> b)"`` -> ``"b)"``)."""
    lines = text.split("\n")
    texts = [strip_option_prefix(o, letter) for o, letter in zip(options, letters)]
    drop: set[int] = set()
    header = False
    for i, line in enumerate(lines):
        if _QUESTION_LINE.match(line):
            drop.add(i)
            header = True  # the question may run over several lines until the options header
            continue
        if _OPTIONS_HEADER.match(line):
            drop.add(i)
            header = True
            continue
        if instruction := _INSTRUCTION_LINE.match(line):
            if instruction["rest"] and instruction["rest"].strip():
                lines[i] = instruction["rest"].strip()  # "Answer with the option's letter ... directly. A": A
            else:
                drop.add(i)
            continue
        if header and i - 1 in drop and not _OPTION_LINE.match(line) and line.strip() and not _answer_line(line):
            drop.add(i)  # a question continued over lines
    run: list[int] = []  # consecutive option lines in label order, from any label ("(B) x" then "(C) y")
    first = None  # the run's first label
    for i, line in enumerate(lines + [""]):
        letter = _echoes(line, letters, texts, last=i == len(lines) - 1) if i < len(lines) else None
        following = letters.index(first) + len(run) if run else len(letters)
        expected = letters[following] if following < len(letters) else None
        if letter is not None and letter == expected:
            run.append(i)
            continue
        if len(run) >= 2 or (run and header and first == letters[0]):
            drop.update(run)
        run, first = ([i], letter) if letter is not None else ([], None)
    for i, line in enumerate(lines):  # every option on one line, in order: "(A) x (B) y (C) z"
        found = re.findall(r"[(\[]([A-Z])[)\]]", line)
        if len(found) >= 2 and "".join(found) == letters[:len(found)] and all(
                normalize(t) in normalize(line) for t in texts[:len(found)]):
            drop.add(i)
        elif (rest := _after_inline_options(line, texts)) is not None:  # "a) cat b) dog c) rabbit -> b)": "b)"
            if rest:
                lines[i] = rest
            else:
                drop.add(i)
    for i in sorted(drop):  # the question, repeated without its "Question:" label, right before its options
        if i > 0 and i - 1 not in drop and lines[i - 1].rstrip().endswith(("?", "？")) and _OPTION_LINE.match(lines[i]):
            drop.add(i - 1)
    if not drop and lines == text.split("\n"):
        return text
    return "\n".join(line for i, line in enumerate(lines) if i not in drop).strip()


def _answer_line(line: str) -> bool:
    return re.search(r"(?i)\b(answer|option|choice)\b|^\s*\(?[A-Z]\)?\s*[.:)]?\s*$", line) is not None


# ------------------------------------------------------------------------------------------ corrections
_CORRECTION = re.compile(
    r"(?i)\b(?:wait|actually|sorry|correction|scratch\s+that|on\s+(?:second|further)\s+thought|"
    r"i\s+mean(?:t)?|let\s+me\s+correct(?:\s+(?:that|myself))?|oops|whoops|my\s+(?:bad|mistake)|"
    r"i\s+(?:was|am|'m|’m)\s+(?:mistaken|wrong)|i\s+(?:miscounted|misread|misspoke)|"
    r"let\s+me\s+(?:reconsider|recount|re-?check|re-?count|look\s+again|think\s+again)|"
    r"(?:my\s+)?(?:previous|earlier|first|initial|last)\s+answer\b[^.;\n]{0,20}?\b(?:was|is)\s+(?:wrong|incorrect|a\s+mistake))"
    r"\b[\s,:;.!\-–—]*"
    r"|(?:\.\.\.|…|[,;?—–])\s*no\s*[,.!]\s*"
    r"|(?<=\w)\s*,?\s*but\s+(?:it(?:'s|’s|\s+is|\s+was)|(?:the\s+)?(?:correct\s+)?answer\s+is|actually)\b\s*")
_THOUGHT = re.compile(r"(?i)\b(?:(?:at\s+)?first|initially|originally)\b[^.\n]*?\bthought\b|\bi\s+thought\b")
_HEDGE = re.compile(r"(?i)\b(?:could|might|may|maybe|perhaps|possibly|probably|or|either|also)\b")


def last_correction(text: str) -> re.Match | None:
    """The answer's last self-correction cue that follows something already said (:func:`after_correction`), or
    None."""
    last = None
    thought = _THOUGHT.search(text)  # the earliest-ending "I thought": a "but" after it may correct
    for m in _CORRECTION.finditer(text):
        if not text[:m.start()].strip():
            continue  # nothing before it to correct ("Actually, B")
        if m.group(0).lower().lstrip(" ,").startswith("but") and not (thought and thought.end() <= m.start()):
            continue
        last = m
    return last


def after_correction(text: str, last: re.Match | None | bool = True) -> str | None:
    """The text after the answer's last self-correction, or None when it corrects nothing.

    A correction follows something already said (``"B. Wait, actually E."``, ``"(D) Sorry, I meant (A)."``,
    ``"D\\nOn second thought, B."``, ``"B... no, A."``, ``"The answer is C. Correction: the answer is A."``);
    ``"..., but it is 3"`` counts only after ``"I thought ..."``. A correction that hedges (``"wait, it could
    also be D"``) is not a replacement answer: None.
    """
    if last is True:  # not given: found here (``last``: :func:`last_correction` of ``text``)
        last = last_correction(text)
    if last is None:
        return None
    rest = text[last.end():].strip()
    if not rest or _HEDGE.search(rest):
        return None
    return rest


_RETRACTION = re.compile(r"(?i)(?:\bwait\b|\bhmm+\b|\.\.\.|…)[\s,.;:!-]*\bno(?:pe)?\s*(?:[,.;:!]|$)"
                         r"|\b(?:or\s+)?maybe\s+not\b|\bnever\s*mind\b|\bi\s+take\s+(?:that|it)\s+back\b|\bi\s+retract\b")


def after_retraction(text: str) -> str | None:
    """The text after the answer's last retraction (``"B. Wait, no."``, ``"B... no, the answer"``: what came before
    is taken back), or None when nothing is taken back. ``"B... no doubt"`` retracts nothing."""
    last = None
    for m in _RETRACTION.finditer(text):
        if text[:m.start()].strip():
            last = m
    return None if last is None else text[last.end():].strip()


# ------------------------------------------------------------------------------------------ non-answers
_NON_ANSWER = re.compile(
    r"(?i)\b(?:please\s+(?:provide|upload|share|send)|i\s+can\s+help|i(?:'m|\s+am)\s+(?:sorry|unable|not\s+able)|"
    r"i\s+(?:cannot|can't|can\s+not)|unable\s+to\s+(?:determine|see|view|watch|tell|answer)|as\s+an\s+ai|"
    r"no\s+video|cannot\s+be\s+determined|can't\s+be\s+determined|not\s+possible\s+to\s+(?:determine|tell)|"
    r"no\s+idea|none\s+of\s+the\s+(?:options|above|choices)|(?:i'm|i\s+am|i’m)\s+(?:not\s+sure|unsure|uncertain)|"
    r"not\s+sure|i\s+(?:don't|do\s+not|don’t)\s+know|(?:can't|cannot|can’t)\s+(?:tell|say|be\s+sure)|"
    r"i\s+retract|take\s+(?:that|it)\s+back|never\s*mind|(?:or\s+)?maybe\s+not)\b")
#: Words that may follow an answer's first word ``yes``/``no`` without a comma (``"No it does not"``); any other
#: word makes it a determiner (``"No option is correct"``, ``"No idea"``).
_SUBJECTS = {"he", "she", "it", "they", "there", "the", "this", "that", "i", "we", "you", "his", "her", "their",
             "its", "c", "both", "none"}


def is_non_answer(text: str) -> bool:
    """Whether the answer is a refusal or conversational reply (``"Please provide the video"``, ``"No idea."``)."""
    return _NON_ANSWER.search(text) is not None


def first_word_stands_alone(text: str) -> bool:
    """Whether the answer's first word is a statement of its own: followed by punctuation, the end, or a
    subject (``"No, he does not."``, ``"Yes."``, ``"No it does not"``), not by a noun it determines
    (``"No option is correct."``)."""
    m = re.match(r"\s*[\w'’]+(\s*[^\w\s]|\s*$|\s+([\w'’]+))", text)
    if m is None:
        return False
    follower = m.group(2)
    return follower is None or follower.lower() in _SUBJECTS

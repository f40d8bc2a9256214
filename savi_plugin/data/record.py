"""The preference-pair record: one JSONL line per (video, question, chosen, rejected).

Shared by both papers: VideoSAVi pairs are (revised answer, initial answer); RRPO pairs are
(ground truth, the model's answer on a perturbed video), with the differing phrases tagged
``<MASK> ... </MASK>`` in ``chosen_tagged`` / ``rejected_tagged``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from savi_plugin.errors import InputError
from savi_plugin.untrusted import (HIDDEN_CONTROLS, equality_key, hidden_control_problem, length_problem,
                                   mixed_script_word, same_text, sameness, shown, shown_name, text_problem,
                                   unknown_name)

REQUIRED_FIELDS = ("id", "video", "question", "chosen", "rejected")
OPTIONAL_STR_FIELDS = ("chosen_tagged", "rejected_tagged", "source")
KNOWN_FIELDS = REQUIRED_FIELDS + OPTIONAL_STR_FIELDS + ("weight", "meta")
#: the range of a pair's ``weight``: relative within a batch (:func:`savi_plugin.losses.base.weighted_mean`), and
#: summed in float32, where 5e-324 is 0 (the pair trains nothing, silently) and 1e308 is infinite (every step
#: skipped); VideoSAVi's CLIP-adjusted weights lie in [1e-6, 1]
MIN_WEIGHT, MAX_WEIGHT = 1e-6, 1e6


class RecordAt(int):
    """A record of a JSON array file: the int is its number in the array (what ids, counts and reports use, as a
    JSONL record's line), ``text_line`` the text line its element starts on (what a location shows)."""

    text_line: int

    def __new__(cls, number: int, text_line: int) -> "RecordAt":
        at = super().__new__(cls, number)
        at.text_line = text_line
        return at

    def __reduce__(self):
        return RecordAt, (int(self), self.text_line)


def shown_line(line: int | None) -> str:
    """A record's place as a location shows it: a JSONL record's line, a JSON array record's text line (with its
    number in the array, as several records may start on one line), ``-`` for none."""
    if isinstance(line, RecordAt):
        return str(line.text_line)
    return "-" if line is None else str(line)


class DataError(InputError):
    """A bad record. ``str()`` is ``file:line:field: message`` so editors and CI can jump to it (the one place a
    record's location is written: :func:`shown_line`)."""

    def __init__(self, file: str, line: int | None, field: str | None, message: str):
        self.file, self.line, self.field, self.message = str(file), line, field, message
        record = f" (record {int(line)} of the array)" if isinstance(line, RecordAt) else ""
        super().__init__(f"{self.where}: {message}{record}")

    @property
    def where(self) -> str:
        """``file:line:field``, the line as :func:`shown_line` shows it."""
        return f"{self.file}:{shown_line(self.line)}:{self.field or '-'}"


def json_kind(value: Any) -> str:
    """What a JSON value is, in JSON's words (``null``, ``an array``), for messages about a user's file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    kinds = ((dict, "an object"), (list, "an array"), (str, "a string"), (int, "a number"), (float, "a number"))
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)


#: the widest integer id read (in bits): an id is a name, and a longer integer is no one's record number
MAX_ID_BITS = 64


def record_id(value: Any, file: str, line: int | None, field: str = "id") -> str:
    """A record's id as savi holds it: the one rule for ids of every format (savi's ``id``, RRPO's ``sample_id``,
    TRL's ``id``). A string is kept; an integer (within :data:`MAX_ID_BITS` bits) is held as its text, and the
    readers of RRPO and TRL remember that it was one, so their writers give it back as an integer. Anything else
    (null, a boolean, a fraction, an array, an object) is refused naming ``field``: never turned into some text."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_ID_BITS:
            raise DataError(file, line, field, f"an integer id must fit in {MAX_ID_BITS} bits; write a longer one "
                                               f"as a string")
        return str(value)
    raise DataError(file, line, field, f"expected a string or an integer, got {json_kind(value)}")


@dataclass
class PreferenceRecord:
    """One preference pair.

    Attributes:
        id: unique id of the pair (resume and merge de-duplicate by it).
        video: path of the video file (absolute, or relative to a data root).
        question: the user turn, without any video placeholder.
        chosen: the preferred response (VideoSAVi: revised answer; RRPO: ground truth).
        rejected: the non-preferred response (VideoSAVi: initial answer; RRPO: the model's error).
        chosen_tagged: ``chosen`` with the differing phrases wrapped in ``<MASK> ... </MASK>``.
        rejected_tagged: the same for ``rejected``.
        source: the generator (or converter) that produced the pair.
        weight: optional per-pair loss weight (finite, > 0; absent = 1), e.g. VideoSAVi's CLIP-adjusted DPO
            (``scorer_mode: weight``); the pairwise losses take a weighted mean over pairs.
        meta: free-form provenance (prompt version, model, frames, seed, perturbation, ...).
    """

    id: str
    video: str
    question: str
    chosen: str
    rejected: str
    chosen_tagged: str | None = None
    rejected_tagged: str | None = None
    source: str = "unknown"
    meta: dict[str, Any] = field(default_factory=dict)
    weight: float | None = None

    @property
    def is_tagged(self) -> bool:
        return self.chosen_tagged is not None and self.rejected_tagged is not None

    def to_json(self) -> dict[str, Any]:
        """The JSON object, without optional fields that are unset."""
        out = asdict(self)
        for key in ("chosen_tagged", "rejected_tagged", "weight"):
            if out[key] is None:
                del out[key]
        return out


def check_encodable(value: Any, file: str, line: int | None, field: str) -> None:
    """Refuse a string that cannot be written as UTF-8: a lone surrogate (JSON ``"\\ud800"`` decodes to one)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DataError(file, line, field, f"contains a lone surrogate {value[exc.start]!r} at character "
                                               f"{exc.start}; not valid Unicode text") from None


def check_plain_text(value: str, file: str, line: int | None, field: str) -> None:
    """Refuse data text holding control markup (``<|im_start|>``, ``<video>``), which a chat template or video
    processor would read as control, or a hidden control character (NUL, a terminal escape, a bidi override):
    :func:`savi_plugin.untrusted.text_problem`. :func:`validate_record` applies it to every string field of a
    record (``id``, ``video`` and ``source`` too: a page of ``savi inspect`` shows each of them)."""
    problem = text_problem(value)
    if problem:
        raise DataError(file, line, field, problem)


#: what :func:`check_free_form` refuses, found in one search: the hidden controls
#: (:func:`savi_plugin.untrusted.hidden_control`) and lone surrogates (:func:`check_encodable`)
_HIDDEN_OR_SURROGATE = re.compile(HIDDEN_CONTROLS.pattern[:-1] + "\ud800-\udfff]")


def _key_part(key: str) -> str:
    """One key of a path as a message names it: ``.name`` for a plain ASCII name, else ``["..."]`` in JSON with
    every non-ASCII character escaped (a key holding U+202E is named, never drawn)."""
    if re.fullmatch(r"[A-Za-z0-9_\-]{1,60}", key):
        return f".{key}"
    return f"[{json.dumps(key[:60])}]" + ("..." if len(key) > 60 else "")


def check_free_form(value: Any, file: str, line: int | None, root: str = "meta") -> None:
    """Refuse a hidden control character or bidi override (:func:`savi_plugin.untrusted.hidden_control_problem`)
    or a lone surrogate (:func:`check_encodable`) in any key or string value of a free-form JSON value -- a record's
    ``meta``, a manifest item's other fields, which generation copies into ``meta`` -- at any depth, naming its
    path from ``root`` (``meta.k``, ``meta.a[0]``, ``meta["k\\u202ey"]``; ``root`` "": from the object's own keys).
    The model markup :func:`check_plain_text` also refuses is allowed here: these texts are never part of a
    prompt, and a converted RRPO file keeps its question's ``<image>\\n`` prefix in ``meta``."""
    def refuse(text: str, where: str, what: str = "") -> None:
        check_encodable(text, file, line, where)
        raise DataError(file, line, where, what + hidden_control_problem(text))

    if isinstance(value, str) and _HIDDEN_OR_SURROGATE.search(value):
        refuse(value, root)
    stack: list[tuple[str, Any]] = [(root, value)] if isinstance(value, (dict, list)) else []
    while stack:  # iterative: the depth is the reader's (untrusted.MAX_DEPTH), not Python's recursion limit
        path, value = stack.pop()
        keyed = isinstance(value, dict)
        for key, inner in (value.items() if keyed else enumerate(value)):
            bad_key = keyed and _HIDDEN_OR_SURROGATE.search(key)
            text = isinstance(inner, str)
            if bad_key or (_HIDDEN_OR_SURROGATE.search(inner) if text else isinstance(inner, (dict, list))):
                where = (path + _key_part(key)).removeprefix(".") if keyed else f"{path}[{key}]"
                if bad_key:
                    refuse(key, where, "the key ")
                if text:
                    refuse(inner, where)
                stack.append((where, inner))


def validate_record(obj: Any, file: str = "<memory>", line: int | None = None) -> PreferenceRecord:
    """Check one decoded JSON object and build a :class:`PreferenceRecord`.

    Args:
        obj: the decoded JSON value of one line.
        file, line: where it came from, used in every error message.

    Raises:
        DataError: naming ``file:line:field`` for the first problem found.
    """
    from savi_plugin.data.tags import TagError, parse_tags

    if not isinstance(obj, dict):
        raise DataError(file, line, None, f"expected a JSON object, got {json_kind(obj)}")
    unknown = sorted(set(obj) - set(KNOWN_FIELDS))
    if unknown:
        raise DataError(file, line, shown_name(unknown[0]), unknown_name(unknown[0], KNOWN_FIELDS, "field"))
    if "id" in obj:
        obj = {**obj, "id": record_id(obj["id"], file, line)}
    for name in REQUIRED_FIELDS:
        if name not in obj:
            raise DataError(file, line, name, "missing required field")
        value = obj[name]
        if not isinstance(value, str):
            raise DataError(file, line, name, f"expected a string, got {type(value).__name__}")
        if length_problem(value):
            raise DataError(file, line, name, length_problem(value))
        if not equality_key(value):
            raise DataError(file, line, name, "must not be empty (or only invisible characters)")
    for name in OPTIONAL_STR_FIELDS:
        if name in obj and obj[name] is not None and not isinstance(obj[name], str):
            raise DataError(file, line, name, f"expected a string, got {type(obj[name]).__name__}")
    for name in (*REQUIRED_FIELDS, *OPTIONAL_STR_FIELDS):
        check_encodable(obj.get(name), file, line, name)
    weight = obj.get("weight")
    if weight is not None:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise DataError(file, line, "weight", f"expected a number, got {type(weight).__name__}")
        if isinstance(weight, int) and abs(weight) > MAX_WEIGHT:  # before float(): 10**400 overflows it
            raise DataError(file, line, "weight", f"must be between {MIN_WEIGHT:g} and {MAX_WEIGHT:g}, got "
                                                  f"{shown(str(weight))}")
        if not math.isfinite(weight) or weight <= 0:
            raise DataError(file, line, "weight", f"must be a finite number > 0, got {weight!r}")
        if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
            raise DataError(file, line, "weight", f"must be between {MIN_WEIGHT:g} and {MAX_WEIGHT:g}, got "
                                                  f"{weight!r}: a pair's loss is weighted in float32, where a "
                                                  f"weight beyond these rounds to 0 or overflows the batch's sum")
    if "meta" in obj and not isinstance(obj["meta"], dict):
        raise DataError(file, line, "meta", f"expected an object, got {type(obj['meta']).__name__}")
    if isinstance(obj.get("meta"), dict):
        check_free_form(obj["meta"], file, line)
    for name in (*REQUIRED_FIELDS, *OPTIONAL_STR_FIELDS):  # every text of the record, ids and paths included:
        if isinstance(obj.get(name), str):  # `savi inspect` shows them all (an id is a page's title and heading)
            check_plain_text(obj[name], file, line, name)
    from savi_plugin.data.paths import stored_path_problem

    if isinstance(obj.get("video"), str) and stored_path_problem(obj["video"]):
        raise DataError(file, line, "video", stored_path_problem(obj["video"]))
    same = sameness(obj["rejected"], obj["chosen"], "chosen")
    if same:
        raise DataError(file, line, "rejected", f"{same}: a pair must differ")
    for name, other in (("chosen", "rejected"), ("rejected", "chosen")):
        mixed = mixed_script_word(obj[name], obj[other])
        if mixed:
            raise DataError(file, line, name, f"{mixed}; write the word in one script")

    tagged = {k: obj.get(k) for k in ("chosen_tagged", "rejected_tagged")}
    if (tagged["chosen_tagged"] is None) != (tagged["rejected_tagged"] is None):
        missing = "chosen_tagged" if tagged["chosen_tagged"] is None else "rejected_tagged"
        raise DataError(file, line, missing, "tagged fields come in pairs: both or neither")
    phrases = {}
    for name, plain in (("chosen_tagged", "chosen"), ("rejected_tagged", "rejected")):
        if tagged[name] is None:
            continue
        try:
            parsed = parse_tags(tagged[name])
        except TagError as exc:
            raise DataError(file, line, name, str(exc)) from None
        if parsed.text.strip() != obj[plain].strip():
            raise DataError(file, line, name, f"without its tags it differs from {plain!r}")
        if not parsed.spans:
            raise DataError(file, line, name, "no <MASK> ... </MASK> phrase tagged")
        phrases[name] = [parsed.text[s:e].strip() for s, e in parsed.spans]
    if phrases and len(phrases["chosen_tagged"]) == len(phrases["rejected_tagged"]) and all(
            same_text(a, b) for a, b in zip(phrases["chosen_tagged"], phrases["rejected_tagged"])):
        raise DataError(file, line, "rejected_tagged", "tagged phrases are identical to chosen's: nothing differs")

    return PreferenceRecord(
        id=obj["id"],
        video=obj["video"],
        question=obj["question"],
        chosen=obj["chosen"],
        rejected=obj["rejected"],
        chosen_tagged=tagged["chosen_tagged"],
        rejected_tagged=tagged["rejected_tagged"],
        source=obj.get("source") or "unknown",
        meta=dict(obj.get("meta") or {}),
        weight=None if weight is None else float(weight),
    )

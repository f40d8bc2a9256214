"""Readers for preference data in our JSONL format, the RRPO release format and TRL's format.

Every reader yields ``(line_number, PreferenceRecord)`` and raises :class:`DataError` naming
``file:line:field`` on the first bad record (``errors="raise"``), or collects the errors and skips the
record (``errors="collect"``) so a validator can report every problem in one pass.

One rule for a bad line, shared with the resuming writer (:mod:`savi_plugin.data.writer`, which skips such a
line and appends after it) and every other reader of JSONL (merge, manifests, diagnostics, provenance, lmms-eval's
samples): lines are read through :func:`iter_lines`, which holds at most :data:`MAX_LINE_BYTES` of one line, and
judged by :func:`parse_line`. A line that is too long, torn, not UTF-8, not JSON (reason ``unreadable_line``) or
not a valid record (``bad_record``) is one problem at its own ``file:line``, and reading goes on with the next
line. ``savi data validate`` therefore counts every valid and every invalid record of a file, wherever the bad
lines are, and lists the problems in line order.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from savi_plugin.data.files import file_problem, read_document
from savi_plugin.data.record import (
    DataError,
    PreferenceRecord,
    RecordAt,
    json_kind,
    record_id,
    shown_line,
    validate_record,
)
from savi_plugin.data.paths import path_from_file
from savi_plugin.untrusted import MAX_RECORD_VALUES, MAX_TEXT_CHARS, duplicate_key_path, equality_key, load_json, shown

FORMATS = ("savi", "rrpo", "trl")
# RRPO's questions start with LLaVA's image placeholder; we keep the question clean and remember the prefix.
_PLACEHOLDERS = ("<image>\n", "<video>\n", "<image>", "<video>")


#: Most bytes one JSONL line may hold. A record's texts are capped at MAX_TEXT_CHARS (64 Ki characters each,
#: :mod:`savi_plugin.untrusted`); at 12 bytes per character in JSON's longest spelling of one (an escaped surrogate
#: pair, ``\ud83d\ude00``) the five texts of a tagged pair take 3.75 MiB. 16 MiB leaves room for ``meta`` and
#: for a diagnostics row's per-token lists, and bounds what one line can make a reader hold: a longer line is one
#: problem at its ``file:line``, skipped in bounded reads, never read whole.
MAX_LINE_BYTES = 16 * 2**20

#: why a line (not a record) could not be read: the reason a skipping reader counts it under
UNREADABLE_LINE = "unreadable_line"
#: a line that is JSON but not a valid record (a wrong or missing field, a duplicate id)
BAD_RECORD = "bad_record"


#: the file names of videos (a folder input's videos are the files with these suffixes)
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".gif")


def iter_lines(path: str | Path, limit: int | None = None) -> Iterator[tuple[int, bytes | None, bool]]:
    """Yield ``(line_number, line, ended)`` for every line of the file ``path``, holding at most ``limit`` bytes
    (default :data:`MAX_LINE_BYTES`).

    ``line`` is the line's bytes without its line feed, or None when it holds more than ``limit`` bytes (its
    bytes are skipped, never held); ``ended`` says whether it ended with a line feed (only the last line of a
    file may not: a run killed while appending leaves such a torn line). Every reader of JSONL reads through it,
    so a video given where records are read is named as one (never parsed into "not UTF-8" lines).
    """
    limit = MAX_LINE_BYTES if limit is None else limit
    if Path(path).suffix.lower() in VIDEO_SUFFIXES and first_byte(Path(path)) not in (b"{", b"["):
        raise DataError(str(path), None, None, "is a video file, not a JSON Lines file of records (videos are named "
                                               "by the records, or given as a folder where a command takes one)")
    with open(path, "rb") as fh:
        number = 0
        while True:
            raw = fh.readline(limit + 1)
            if not raw:
                return
            number += 1
            if raw.endswith(b"\n"):
                yield number, raw[:-1], True
            elif len(raw) <= limit:
                yield number, raw, False  # the last line, with no line feed
            else:  # too long: skip to the end of the line, a block at a time
                ended = False
                while not ended:
                    block = fh.read(1 << 22)
                    if not block:
                        break
                    end = block.find(b"\n")
                    if end >= 0:  # go back to just after the line feed
                        fh.seek(end + 1 - len(block), os.SEEK_CUR)
                        ended = True
                yield number, None, ended


def line_problem(path: str | Path, number: int, message: str, reason: str = UNREADABLE_LINE) -> DataError:
    """A :class:`DataError` at ``file:line`` (no field: the line as a whole) carrying the skip ``reason``."""
    problem = DataError(str(path), number, None, message)
    problem.reason = reason
    return problem


def parse_line(path: str | Path, number: int, raw: bytes | None, ended: bool = True,
               limit: int | None = None) -> tuple[Any, DataError | None]:
    """The JSON value of one line from :func:`iter_lines`, or the problem that makes it unreadable (one rule for
    every reader: too long, not UTF-8, not JSON -- a torn last line said to be one -- or past the untrusted-input
    limits of :func:`savi_plugin.untrusted.load_json`)."""
    if raw is None:
        limit = MAX_LINE_BYTES if limit is None else limit
        return None, line_problem(path, number, f"line too long: more than {limit} bytes (a record's texts are "
                                                f"capped at {MAX_TEXT_CHARS} characters each)")
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # a UTF-16 byte order mark: this line and the next are UTF-16's
        return None, line_problem(path, number, "UTF-16 text (the line starts with a UTF-16 byte order mark); savi "
                                                "reads UTF-8: convert the file (iconv -f UTF-16 -t UTF-8)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, line_problem(path, number, f"not UTF-8 text (byte {exc.start})")
    try:
        return load_json(text, error=lambda message, _=None: line_problem(path, number, message),
                         max_values=MAX_RECORD_VALUES), None
    except DataError as exc:
        if b"\r" in raw.rstrip(b"\r"):  # records joined by carriage returns: JSON Lines ends each with a line feed
            exc = line_problem(path, number, f"lines end in carriage returns alone (old Mac line ends), not line "
                                             f"feeds: JSON Lines ends each record with a line feed; convert the "
                                             f"file (e.g. tr '\\r' '\\n'): {exc.message}")
        elif not ended:  # the last line with no line feed: what a run killed while writing leaves
            exc = line_problem(path, number, f"torn last line (no line feed at its end, as a run killed while "
                                             f"writing leaves it): {exc.message}")
        return None, exc


def first_byte(path: Path) -> bytes:
    """The first byte of ``path`` that is not whitespace (b"" when there is none), read a block at a time."""
    with open(path, "rb") as fh:
        while True:
            block = fh.read(1 << 16)
            if not block:
                return b""
            stripped = block.lstrip()
            if stripped:
                return stripped[:1]


def iter_json_objects(path: str | Path, errors: list[DataError] | None = None, limit: int | None = None,
                      array: bool = True) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_or_record_number, object)`` from a JSONL file or (``array``) a JSON array file.

    Blank lines are skipped. A line that is too long (``limit`` bytes, default :data:`MAX_LINE_BYTES`), not
    UTF-8 or not JSON raises :class:`DataError`, or, when ``errors`` is a list, is appended to it and skipped
    (the next lines are still read). Memory stays bounded by ``limit`` per line, whatever the file holds (a JSON
    array file, ``array``, is one document and is read whole).
    """
    path = Path(path)
    problem = file_problem(path, "data file")  # a folder, FIFO or device is named, never opened
    if problem:
        raise DataError(str(path), None, None, problem)
    if array and first_byte(path) == b"[":  # one JSON array (the RRPO release)
        raw = read_document(path)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(str(path), None, None, f"not UTF-8 text (byte {exc.start})") from None
        # a document refused whole has no records: its ``:N:`` is the text line (as an editor jumps to it), said in
        # the message, since the ``:N:`` of a JSON array file's other messages is the line a record starts on
        try:
            items = load_json(text, str(path), lambda message, line=None: DataError(
                str(path), line, None, message if line is None else f"{message} (text line {line}; the document is "
                                                                      f"refused whole, so no record is counted)"))
        except DataError as exc:
            twice = duplicate_key_path(text)  # a key given twice is named at its record (counted from 1) and field
            if twice is None or len(twice) < 2 or not isinstance(twice[0], int):
                raise
            starts = _element_lines(text)
            at = twice[0] + 1 if len(starts) <= twice[0] else RecordAt(twice[0] + 1, starts[twice[0]])
            raise DataError(str(path), at, ".".join(map(str, twice[1:])),
                            f"{exc.message} (the document is refused whole, so no record is counted)") from None
        starts = _element_lines(text) if isinstance(items, list) else []
        if len(starts) == len(items):
            yield from ((RecordAt(number, line), item) for number, (line, item) in enumerate(zip(starts, items), 1))
        else:
            yield from enumerate(items, start=1)
        return
    first_line = True
    offset: int | None = 0  # the file offset of the line (None past a line too long to be held)
    for number, raw, ended in iter_lines(path, limit):
        at, offset = offset, None if raw is None or offset is None else offset + len(raw) + 1
        if raw is not None and not raw.strip():
            continue
        obj, problem = parse_line(path, number, raw, ended, limit)
        # a first line of a binary file (an image, a video renamed .jsonl): one problem, not one per "line" of it
        if problem is not None and first_line and raw is not None and _binary(path, raw):
            byte = _bad_byte(raw)
            where = f"byte {at + byte} (line {number})" if at is not None else f"line {number}, byte {byte}"
            problem = DataError(str(path), None, None, f"not a text file: {where} is not UTF-8 text; savi reads JSON "
                                                       f"Lines (one JSON record per line), so nothing of it is read")
            if errors is None:
                raise problem
            errors.append(problem)
            return
        if problem is not None and first_line and raw is not None and raw.strip() == b"{":  # as json.dump(indent=) starts
            spanning = _object_over_lines(path, array)
            if spanning is not None:
                raise spanning
        first_line = False
        if problem is None:
            yield number, obj
        elif errors is None:
            raise problem
        else:
            errors.append(problem)


_BLANK = re.compile(r"[ \t\n\r]*")
#: how many of a file's first bytes are looked at for a NUL byte: a binary file's sign (as git judges one)
BINARY_PROBE_BYTES = 8000


def _bad_byte(raw: bytes) -> int:
    """The offset in ``raw`` of its first byte that is not UTF-8 text (len(raw) when all of it is)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return len(raw)


def _binary(path: Path, raw: bytes) -> bool:
    """Whether ``raw``, the first line of ``path``, is of a binary file (an image, a model, a video renamed
    ``.jsonl``): it is not UTF-8 and the file's first :data:`BINARY_PROBE_BYTES` bytes hold a NUL byte, which no
    UTF-8 text holds (UTF-16 text, starting with its byte order mark, is named as such by :func:`parse_line`). A
    text file with a bad byte is judged line by line instead."""
    if _bad_byte(raw) == len(raw) or raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return False
    with open(path, "rb") as fh:
        return b"\0" in fh.read(BINARY_PROBE_BYTES)


def _element_lines(text: str) -> list[int]:
    """The text line each element of the JSON array ``text`` starts on (element by element with
    ``json.JSONDecoder.raw_decode``); [] when ``text`` is not a JSON array."""
    decoder = json.JSONDecoder()
    lines: list[int] = []
    at = _BLANK.match(text).end()
    if not text.startswith("[", at):
        return []
    line, counted = 1, 0
    at = _BLANK.match(text, at + 1).end()
    try:
        while at < len(text) and text[at] != "]":
            line += text.count("\n", counted, at)
            counted = at
            lines.append(line)
            at = _BLANK.match(text, decoder.raw_decode(text, at)[1]).end()
            if text.startswith(",", at):
                at = _BLANK.match(text, at + 1).end()
    except ValueError:
        return []
    return lines


def _require_str(obj: dict, key: str, file: str, line: int) -> str:
    if key not in obj:
        raise DataError(file, line, key, "missing required field")
    if not isinstance(obj[key], str):
        raise DataError(file, line, key, f"expected a string, got {type(obj[key]).__name__}")
    return obj[key]


#: the names one savi field has in a format's records: {format: {savi field: its names, the format's own first}}:
#: RRPO's ``media_path`` (its code) and ``video`` (its docs), and another format's name for the same field that a
#: record may carry as well (savi's ``chosen`` beside RRPO's ``answer``, savi's ``question`` beside TRL's
#: ``prompt``). A record giving two of them is read by :func:`_one_source`: two that differ are refused naming
#: both, never one taken silently (savi's own format has one name per field: it refuses any other field)
ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "savi": {},
    "rrpo": {"video": ("media_path", "video"), "chosen": ("answer", "chosen"), "rejected": ("pred", "rejected")},
    "trl": {"question": ("prompt", "question")},
}


def _one_source(obj: dict, keys: tuple[str, ...], ours: str, file: str, line: int,
                read: Callable[[str], Any] | None = None) -> str:
    """Which of ``keys`` (a format's names for one field of ours, ``ours``: :data:`ALIASES`) the record gives, the
    first when it gives none (to be named missing). Two of them whose values differ (as ``read`` reads a key's
    value: its text; the raw value by default) are refused naming both, never one taken silently; two videos that
    name the same file (a path, resolved against the file's folder) are one value, the first key's."""
    given = [key for key in keys if key in obj]
    value = read or obj.__getitem__
    for other in given[1:]:
        a, b = value(given[0]), value(other)
        same = a == b or (ours == "video" and isinstance(a, str) and isinstance(b, str) and a and b and os.path.abspath(
            path_from_file(a, file)) == os.path.abspath(path_from_file(b, file)))
        if not same:
            raise DataError(file, line, given[0], f"both {given[0]!r} ({shown(a)}) and {other!r} ({shown(b)}) are "
                                                  f"given and differ: each is this format's name for savi's "
                                                  f"{ours!r}; give one")
    return given[0] if given else keys[0]


def rrpo_to_record(obj: Any, file: str, line: int) -> PreferenceRecord:
    """Map one RRPO-release object to a record, keeping what is needed to write it back unchanged.

    RRPO fields: ``question`` (with ``<image>\\n``), ``answer`` (preferred), ``pred`` (non-preferred),
    ``answer_masked``, ``pred_masked``, ``media_path`` (the code) or ``video`` (the docs), ``sample_id``.
    """
    if not isinstance(obj, dict):
        raise DataError(file, line, None, f"expected a JSON object, got {json_kind(obj)}")
    if "sample_id" not in obj:
        raise DataError(file, line, "sample_id", "missing required field")
    sample_id = record_id(obj["sample_id"], file, line, "sample_id")
    video_key = _one_source(obj, ALIASES["rrpo"]["video"], "video", file, line)
    for ours in ("chosen", "rejected"):  # savi's names beside RRPO's: the same text, or refused
        _one_source(obj, ALIASES["rrpo"][ours], ours, file, line)
    question = _require_str(obj, "question", file, line)
    prefix = next((p for p in _PLACEHOLDERS if question.startswith(p)), "")
    known = {"question", "answer", "pred", "answer_masked", "pred_masked", "media_path", "video", "sample_id",
             "weight"}
    extra = {k: v for k, v in obj.items() if k not in known}
    record = {
        "id": sample_id,
        "video": _require_str(obj, video_key, file, line),
        "question": question[len(prefix):],
        "chosen": _require_str(obj, "answer", file, line),
        "rejected": _require_str(obj, "pred", file, line),
        "source": "rrpo-release",
        "meta": {"rrpo": {"video_key": video_key, "question_prefix": prefix,
                          "sample_id_type": type(obj["sample_id"]).__name__, "extra": extra}},
    }
    for ours, theirs in (("chosen_tagged", "answer_masked"), ("rejected_tagged", "pred_masked")):
        if theirs in obj:
            record[ours] = _require_str(obj, theirs, file, line)
    if "weight" in obj:  # a pair's loss weight, carried by record_to_rrpo
        record["weight"] = obj["weight"]
    try:
        return validate_record(record, file, line)
    except DataError as exc:  # name the field as the RRPO file spells it
        theirs = {"id": "sample_id", "video": video_key, "chosen": "answer", "rejected": "pred",
                  "chosen_tagged": "answer_masked", "rejected_tagged": "pred_masked"}
        message = exc.message
        for ours, name in theirs.items():
            message = message.replace(repr(ours), repr(name))
        raise DataError(file, line, theirs.get(exc.field, _extra_field(exc.field, "rrpo")), message) from None


def _written_id(text: str, read_as: Any) -> str | int:
    """A record's id as a format that held it as an integer (``read_as`` "int", remembered in its ``meta`` by
    :func:`~savi_plugin.data.record.record_id`'s readers) gets it back: the integer; else its text."""
    if read_as == "int" and re.fullmatch(r"-?[0-9]{1,20}", text):
        return int(text)
    return text


def record_to_rrpo(record: PreferenceRecord) -> dict[str, Any]:
    """Inverse of :func:`rrpo_to_record` (exact for records that came from the RRPO format)."""
    info = record.meta.get("rrpo", {})
    sample_id = _written_id(record.id, info.get("sample_id_type"))
    out: dict[str, Any] = {
        "question": info.get("question_prefix", "<image>\n") + record.question,
        "answer": record.chosen,
        "pred": record.rejected,
    }
    if record.chosen_tagged is not None:
        out["answer_masked"] = record.chosen_tagged
        out["pred_masked"] = record.rejected_tagged
    out[info.get("video_key", "video")] = record.video
    out["sample_id"] = sample_id
    if record.weight is not None:  # the pair's loss weight: a field of its own, read back by rrpo_to_record
        out["weight"] = record.weight
    out.update(info.get("extra", {}))
    return out


def generated_id(file: str, line: int) -> str:
    """The id savi gives a TRL record that has none: the file's stem and the record's line."""
    return f"{Path(file).stem}-{line}"


_ROLE = {"prompt": "user", "chosen": "assistant", "rejected": "assistant"}


def _message_text(content: Any, file: str, line: int, field: str) -> str:
    """A conversational message's ``content``: a string, or a list of ``{"type": "text", "text": ...}`` parts
    (joined); any other part (an image) is refused naming it: savi's pairs are of one video, named by ``video``."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise DataError(file, line, field, f"expected a string or a list of parts, got {json_kind(content)}")
    texts = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text" or not isinstance(part.get("text"), str):
            what = f"a part of type {kind!r}" if isinstance(kind, str) else f"{json_kind(part)}, not a text part"
            raise DataError(file, line, f"{field}[{i}]", f"{what}: savi reads only text parts "
                                                          f"({{\"type\": \"text\", \"text\": ...}}); the pair's video "
                                                          f"is the record's 'video'")
        texts.append(part["text"])
    return "".join(texts)


def _trl_text(obj: dict, key: str, file: str, line: int) -> str:
    """``obj[key]`` as savi's text: a string (TRL's standard layout), or TRL's conversational layout -- a list of
    ``{"role", "content"}`` messages: the prompt's one user turn, the chosen or rejected one assistant turn. A
    conversation savi's question cannot hold (a system turn, several turns) is refused naming the field."""
    value = obj.get(key)
    if not isinstance(value, list):
        return _require_str(obj, key, file, line)
    role = _ROLE[key]
    for i, message in enumerate(value):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise DataError(file, line, f"{key}[{i}]", "expected a message {\"role\": ..., \"content\": ...} "
                                                       "(TRL's conversational layout)")
    roles = [message["role"] for message in value]
    if roles != [role]:
        raise DataError(file, line, key, f"a conversation of roles {shown(roles)} (TRL's conversational layout): "
                                         f"savi's {'question' if key == 'prompt' else key} holds exactly one "
                                         f"{role} turn, so this record cannot be read without dropping turns")
    return _message_text(value[0]["content"], file, line, f"{key}[0].content")


def trl_to_record(obj: Any, file: str, line: int) -> PreferenceRecord:
    """Map a TRL preference object in its standard layout (``prompt``/``chosen``/``rejected`` strings) or its
    conversational one (lists of ``{"role", "content"}`` messages: :func:`_trl_text`), plus ``video``."""
    if not isinstance(obj, dict):
        raise DataError(file, line, None, f"expected a JSON object, got {json_kind(obj)}")
    extra = {k: v for k, v in obj.items() if k not in {"prompt", "chosen", "rejected", "video", "id", "weight"}}
    conversational = any(isinstance(obj.get(key), list) for key in _ROLE)
    integer_id = isinstance(obj.get("id"), int) and not isinstance(obj.get("id"), bool)
    trl = {**({"extra": extra} if extra else {}), **({"layout": "conversational"} if conversational else {}),
           **({"id_type": "int"} if integer_id else {})}  # an integer id is written back as one (record_to_trl)
    question = _trl_text(obj, "prompt", file, line)
    _one_source(obj, ALIASES["trl"]["question"], "question", file, line,  # savi's name beside TRL's: one text
                lambda key: question if key == "prompt" else obj[key])
    record = {
        "id": record_id(obj["id"], file, line) if "id" in obj else generated_id(file, line),
        "video": _require_str(obj, "video", file, line),
        "question": question,
        "chosen": _trl_text(obj, "chosen", file, line),
        "rejected": _trl_text(obj, "rejected", file, line),
        "source": "trl",
        "meta": {"trl": trl} if trl else {},
        **({"weight": obj["weight"]} if "weight" in obj else {}),  # a pair's loss weight, carried by record_to_trl
    }
    try:
        return validate_record(record, file, line)
    except DataError as exc:  # named as the TRL file spells it: the question is its prompt, meta its own fields
        field = "prompt" if exc.field == "question" else _extra_field(exc.field, "trl")
        raise DataError(file, line, field, exc.message.replace("'question'", "'prompt'")) from None


def _extra_field(field: str | None, fmt: str) -> str | None:
    """A field of ``meta.<fmt>.extra`` (another format's fields kept in meta) as the original file names it:
    ``meta.rrpo.extra.note`` is ``note``, ``meta.trl.extra["k\\u202ey"]`` is ``["k\\u202ey"]``."""
    prefix = f"meta.{fmt}.extra"
    if field and field.startswith(prefix) and field != prefix:
        return field[len(prefix):].removeprefix(".")
    return field


def record_to_trl(record: PreferenceRecord) -> dict[str, Any]:
    """A TRL object, in the standard layout or (a record read from it) the conversational one (the tags and meta
    have no place there and are dropped; a loss weight is a column of its own, ``weight``)."""
    info = record.meta.get("trl", {})
    if info.get("layout") == "conversational":  # read from TRL's conversational layout: written back in it
        texts = {key: [{"role": role, "content": getattr(record, "question" if key == "prompt" else key)}]
                 for key, role in _ROLE.items()}
    else:
        texts = {"prompt": record.question, "chosen": record.chosen, "rejected": record.rejected}
    out = {"id": _written_id(record.id, info.get("id_type")), **texts, "video": record.video}
    if record.weight is not None:
        out["weight"] = record.weight
    out.update(info.get("extra", {}))
    return out


def _wrapped_arrays(obj: Any) -> list[str]:
    """The keys of ``obj`` (an object) holding a non-empty array of objects: records wrapped in an object."""
    if not isinstance(obj, dict):
        return []
    return [key for key, value in obj.items() if isinstance(value, list) and value
            and all(isinstance(item, dict) for item in value)]


def _object_over_lines(path: Path, array: bool) -> DataError | None:
    """The file refused whole when it is one JSON object written over several lines (``{"data": [...]}``
    pretty-printed), instead of one "invalid JSON" problem per text line; None when it is not one object (its lines
    are then judged one by one). Read whole under the caps of every whole document (``DocumentTooLarge`` raised)."""
    from savi_plugin.errors import ConfigurationError

    try:
        obj = load_json(read_document(path).decode("utf-8"), str(path),
                        lambda message, line=None: ValueError(message), strict=False)
    except ConfigurationError:
        raise
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(obj, dict):
        return None
    wrapped = _wrapped_arrays(obj)
    held = f" holding an array of objects under {wrapped[0]!r}, as a wrapper of records would" if wrapped else ""
    shape = "a JSON array of records or one record per line" if array else "one JSON object per line"
    return DataError(str(path), None, None, f"one JSON object written over several lines{held}, not one record per "
                                            f"line: the file must be {shape} (refused whole, so no record is counted)")


_TO_RECORD = {"savi": validate_record, "rrpo": rrpo_to_record, "trl": trl_to_record}


def _wrapper_hint(to_record: Callable[[Any, str, int], PreferenceRecord], obj: Any, file: str, line: int,
                  fmt: str) -> PreferenceRecord:
    """``to_record(obj, file, line)``; a record missing a field it needs while it holds an array of objects
    (``{"data": [...]}``: a file's records wrapped in an object) says so, and what the file must be instead."""
    try:
        return to_record(obj, file, line)
    except DataError as exc:
        wrapped = _wrapped_arrays(obj)
        if exc.message != "missing required field" or not wrapped:
            raise
        raise DataError(file, line, exc.field, f"missing required field; this object holds an array of objects "
                                               f"under {wrapped[0]!r}, as a wrapper of records would: a {fmt} file "
                                               f"is a JSON array of records or one record per line") from None


def no_record(path: str | Path) -> DataError:
    """The refusal of a file that holds no record at all (0 bytes, blank lines only, an empty JSON array): the one
    rule and wording for every reader command (``savi data validate|convert``, ``savi inspect``, ``savi train``, the
    manifest of ``savi generate``), whatever it reads. A file that holds records, none of them good, is not this:
    its records' problems are named instead."""
    return DataError(str(path), None, None, "holds no record (the file is empty, holds only blank lines, or is an "
                                            "empty JSON array): nothing to read")


def read_records(path: str | Path, fmt: str = "savi", errors: str = "raise",
                 collected: list[DataError] | None = None) -> Iterator[tuple[int, PreferenceRecord]]:
    """Yield ``(line, record)`` for every valid record of ``path`` in format ``fmt``.

    Args:
        path: a JSONL file (or a JSON array file, as the RRPO release ships).
        fmt: ``"savi"`` (ours), ``"rrpo"`` or ``"trl"``.
        errors: ``"raise"`` stops at the first bad record; ``"collect"`` appends each
            :class:`DataError` to ``collected`` and skips the record.
        collected: the list that receives the errors with ``errors="collect"``.

    Raises:
        DataError: :func:`no_record` for a file with no record, in either mode (nothing to skip record by record).
    """
    if fmt not in _TO_RECORD:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if errors not in ("raise", "collect"):
        raise ValueError("errors must be 'raise' or 'collect'")
    to_record = _TO_RECORD[fmt]
    seen: dict[str, tuple[str, int, bool]] = {}
    collect = errors == "collect" and collected is not None
    objects = iter_json_objects(path, collected if collect else None)
    before = len(collected) if collect else 0
    try:  # lazily, so problems are listed in line order and one line at a time is held
        first = next(objects, None)
    except DataError as exc:  # the file itself: missing, a folder, a JSON array that does not parse
        if errors == "raise" or collected is None:
            raise
        collected.append(exc)
        return
    if first is None:
        if not collect or len(collected) == before:  # no line at all, not lines that could not be read
            raise no_record(path)
        return
    for line, obj in itertools.chain([first], objects):
        try:
            record = _wrapper_hint(to_record, obj, str(path), line, fmt)
            key = equality_key(record.id)  # ids that read the same are one id (a zero-width space, a look-alike)
            # a TRL record without an id is given one (generated_id): a clash with it names where it came from
            named = not (fmt == "trl" and isinstance(obj, dict) and "id" not in obj)
            if key in seen:
                first, at, first_named = seen[key]
                at_line = shown_line(at)
                given = "" if named else f"; this line has no id, savi names it {record.id}"
                given += "" if first_named else f"; line {at_line} has no id, savi names it {first}"
                raise DataError(str(path), line, "id", f"duplicate id {record.id!r} (first at line {at_line}){given}"
                                if first == record.id else f"id {record.id!r} reads the same as id {first!r} (first at "
                                f"line {at_line}){given}: they differ only by invisible or look-alike characters; ids "
                                f"must be unique")
            seen[key] = (record.id, line, named)
        except DataError as exc:
            if getattr(exc, "reason", None) is None:
                exc.reason = BAD_RECORD
            if errors == "raise":
                raise
            if collected is not None:
                collected.append(exc)
            continue
        yield line, record

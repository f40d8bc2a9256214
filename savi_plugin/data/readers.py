"""Readers for preference data in our JSONL format, the RRPO release format and TRL's format.

Every reader yields ``(line_number, PreferenceRecord)`` and raises :class:`DataError` naming
``file:line:field`` on the first bad record (``errors="raise"``), or collects the errors and skips the
record (``errors="collect"``) so a validator can report every problem in one pass.

One rule for a bad line, shared with the resuming writer (:mod:`savi_plugin.data.writer`, which skips such a
line and appends after it): a line that is not UTF-8, not JSON or not a valid record is one problem at its own
``file:line``, and reading goes on with the next line. ``savi data validate`` therefore counts every valid and
every invalid record of a file, wherever the bad lines are.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from savi_plugin.data.files import file_problem
from savi_plugin.data.record import DataError, PreferenceRecord, validate_record
from savi_plugin.untrusted import load_json

FORMATS = ("savi", "rrpo", "trl")
# RRPO's questions start with LLaVA's image placeholder; we keep the question clean and remember the prefix.
_PLACEHOLDERS = ("<image>\n", "<video>\n", "<image>", "<video>")


def iter_json_objects(path: str | Path, errors: list[DataError] | None = None) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_or_record_number, object)`` from a JSONL file or a JSON array file.

    Blank lines are skipped. A line that is not UTF-8 or not JSON raises :class:`DataError`, or, when ``errors``
    is a list, is appended to it and skipped (the next lines are still read).
    """
    path = Path(path)
    problem = file_problem(path, "data file")  # a folder, FIFO or device is named, never opened
    if problem:
        raise DataError(str(path), None, None, problem)
    raw = path.read_bytes()
    if raw.lstrip()[:1] == b"[":
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(str(path), None, None, f"not UTF-8 text (byte {exc.start})") from None
        items = load_json(text, error=lambda message, line=None: DataError(str(path), line, None, message))
        yield from enumerate(items, start=1)
        return
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            problem = DataError(str(path), number, None, f"not UTF-8 text (byte {exc.start})")
        else:
            try:  # the untrusted-input limits: depth, no NaN/Infinity (savi_plugin/untrusted.py)
                obj = load_json(text, error=lambda message, _=None, n=number: DataError(str(path), n, None, message))
            except DataError as exc:
                problem = exc
            else:
                yield number, obj
                continue
        if errors is None:
            raise problem
        errors.append(problem)


def _require_str(obj: dict, key: str, file: str, line: int) -> str:
    if key not in obj:
        raise DataError(file, line, key, "missing required field")
    if not isinstance(obj[key], str):
        raise DataError(file, line, key, f"expected a string, got {type(obj[key]).__name__}")
    return obj[key]


def rrpo_to_record(obj: Any, file: str, line: int) -> PreferenceRecord:
    """Map one RRPO-release object to a record, keeping what is needed to write it back unchanged.

    RRPO fields: ``question`` (with ``<image>\\n``), ``answer`` (preferred), ``pred`` (non-preferred),
    ``answer_masked``, ``pred_masked``, ``media_path`` (the code) or ``video`` (the docs), ``sample_id``.
    """
    if not isinstance(obj, dict):
        raise DataError(file, line, None, f"expected a JSON object, got {type(obj).__name__}")
    if "sample_id" not in obj:
        raise DataError(file, line, "sample_id", "missing required field")
    if not isinstance(obj["sample_id"], (str, int)) or isinstance(obj["sample_id"], bool):
        raise DataError(file, line, "sample_id", f"expected a string or integer, got {type(obj['sample_id']).__name__}")
    video_key = "media_path" if "media_path" in obj else "video"
    question = _require_str(obj, "question", file, line)
    prefix = next((p for p in _PLACEHOLDERS if question.startswith(p)), "")
    known = {"question", "answer", "pred", "answer_masked", "pred_masked", "media_path", "video", "sample_id"}
    extra = {k: v for k, v in obj.items() if k not in known}
    record = {
        "id": str(obj["sample_id"]),
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
    try:
        return validate_record(record, file, line)
    except DataError as exc:  # name the field as the RRPO file spells it
        theirs = {"id": "sample_id", "video": video_key, "chosen": "answer", "rejected": "pred",
                  "chosen_tagged": "answer_masked", "rejected_tagged": "pred_masked"}
        message = exc.message
        for ours, name in theirs.items():
            message = message.replace(repr(ours), repr(name))
        raise DataError(file, line, theirs.get(exc.field, exc.field), message) from None


def record_to_rrpo(record: PreferenceRecord) -> dict[str, Any]:
    """Inverse of :func:`rrpo_to_record` (exact for records that came from the RRPO format)."""
    info = record.meta.get("rrpo", {})
    sample_id: Any = record.id
    if info.get("sample_id_type") == "int":
        sample_id = int(record.id)
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
    out.update(info.get("extra", {}))
    return out


def trl_to_record(obj: Any, file: str, line: int) -> PreferenceRecord:
    """Map a TRL standard-format object (``prompt``/``chosen``/``rejected`` strings, plus ``video``)."""
    if not isinstance(obj, dict):
        raise DataError(file, line, None, f"expected a JSON object, got {type(obj).__name__}")
    extra = {k: v for k, v in obj.items() if k not in {"prompt", "chosen", "rejected", "video", "id"}}
    record = {
        "id": str(obj.get("id", f"{Path(file).stem}-{line}")),
        "video": _require_str(obj, "video", file, line),
        "question": _require_str(obj, "prompt", file, line),
        "chosen": _require_str(obj, "chosen", file, line),
        "rejected": _require_str(obj, "rejected", file, line),
        "source": "trl",
        "meta": {"trl": {"extra": extra}} if extra else {},
    }
    return validate_record(record, file, line)


def record_to_trl(record: PreferenceRecord) -> dict[str, Any]:
    """A TRL standard-format object (the tags and meta have no place there and are dropped)."""
    out = {"id": record.id, "prompt": record.question, "chosen": record.chosen,
           "rejected": record.rejected, "video": record.video}
    out.update(record.meta.get("trl", {}).get("extra", {}))
    return out


_TO_RECORD = {"savi": validate_record, "rrpo": rrpo_to_record, "trl": trl_to_record}


def read_records(path: str | Path, fmt: str = "savi", errors: str = "raise",
                 collected: list[DataError] | None = None) -> Iterator[tuple[int, PreferenceRecord]]:
    """Yield ``(line, record)`` for every valid record of ``path`` in format ``fmt``.

    Args:
        path: a JSONL file (or a JSON array file, as the RRPO release ships).
        fmt: ``"savi"`` (ours), ``"rrpo"`` or ``"trl"``.
        errors: ``"raise"`` stops at the first bad record; ``"collect"`` appends each
            :class:`DataError` to ``collected`` and skips the record.
        collected: the list that receives the errors with ``errors="collect"``.
    """
    if fmt not in _TO_RECORD:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if errors not in ("raise", "collect"):
        raise ValueError("errors must be 'raise' or 'collect'")
    to_record = _TO_RECORD[fmt]
    seen: dict[str, int] = {}
    try:
        objects = list(iter_json_objects(path, collected if errors == "collect" and collected is not None else None))
    except DataError as exc:
        if errors == "raise" or collected is None:
            raise
        collected.append(exc)
        return
    for line, obj in objects:
        try:
            record = to_record(obj, str(path), line)
            if record.id in seen:
                raise DataError(str(path), line, "id", f"duplicate id {record.id!r} (first at line {seen[record.id]})")
            seen[record.id] = line
        except DataError as exc:
            if errors == "raise":
                raise
            if collected is not None:
                collected.append(exc)
            continue
        yield line, record

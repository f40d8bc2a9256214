"""The one rule for a bad JSONL line, held by every reader of JSONL: generated over readers x bad-line kinds.

A line that is torn, not JSON, not UTF-8, too long (:data:`~savi_plugin.data.readers.MAX_LINE_BYTES`, read with
bounded memory) or not a valid record is one problem at its own ``file:line``; a skipping reader still reads
every line after it, and a strict one (lmms-eval's samples, a benchmark's annotations, a generation manifest)
refuses naming that line. README "One rule for bad JSONL lines".
"""

from __future__ import annotations

import json
import re
import tracemalloc
from pathlib import Path

import pytest

from savi_plugin.data import readers
from savi_plugin.data.record import DataError

GOOD = [{"id": f"ok{i}", "video": "v.mp4", "question": "What moves?", "chosen": "the red ball",
         "rejected": "the blue ball", "source": "test"} for i in range(3)]
SMALL_CAP = 4096  # the cap the generated cases run under (the real one is checked once, below)

#: bad-line kinds: (bytes of the line, or None for a torn last line; what the problem says; a line-level kind)
KINDS = {
    "torn": (b'{"id": "torn", "vid', "invalid JSON", True),
    "not_json": (b"not json", "invalid JSON", True),
    "not_utf8": (b'\xc3\x28{"id": 1}', "not UTF-8 text", True),
    "glued": (json.dumps(GOOD[0]).encode() + json.dumps({**GOOD[0], "id": "g"}).encode(), "invalid JSON", True),
    # records ended by carriage returns alone (old Mac line ends) read as one line: said, not "torn" (pass 15 B #5)
    "cr_ends": (json.dumps(GOOD[0]).encode() + b"\r" + json.dumps({**GOOD[0], "id": "c"}).encode() + b"\r",
                "lines end in carriage returns alone", True),
    # a UTF-16 file's first line (pass 16 B #54: each line was reported, the last as a killed run's torn line)
    "utf16": (b"\xff\xfe" + json.dumps(GOOD[0]).encode("utf-16-le"), "UTF-16 text (the line starts with a UTF-16 byte", True),
    "too_long": (b'{"id": "long", "question": "' + b"a" * SMALL_CAP + b'"}', "line too long: more than 4096", True),
    "torn_last": (None, "torn last line", True),
    "null": (b"null", "", False),
}


def _file(tmp_path: Path, kind: str, suffix: str = ".jsonl") -> tuple[Path, int]:
    """Three good lines around one bad line of ``kind``; returns the file and the bad line's number."""
    bad, _, _ = KINDS[kind]
    good = [json.dumps(r).encode() for r in GOOD]
    path = tmp_path / f"data{suffix}"
    if bad is None:  # a run killed while appending: the last line has no line feed
        path.write_bytes(b"\n".join(good) + b"\n" + json.dumps({**GOOD[0], "id": "cut"}).encode()[:-9])
        return path, 4
    path.write_bytes(b"\n".join([good[0], bad, good[1], good[2]]) + b"\n")
    return path, 2


def _where(text: str) -> int:
    return int(re.match(r"[^:]*:(\d+):", text).group(1))


# Each skipping reader: (valid records or rows, [(line, message)] of the problems it reports).
def _validate(path, tmp_path, capsys):
    from savi_plugin.cli import main

    capsys.readouterr()
    (path.parent / "v.mp4").write_bytes(b"")  # the video every record names: validate checks it is a file
    main(["data", "validate", str(path)])
    out = capsys.readouterr()
    valid = int(re.search(r"(\d+) valid record", out.err).group(1))
    return valid, [(_where(p), p) for p in out.out.splitlines()]


def _read_records(path, tmp_path, capsys):
    problems: list[DataError] = []
    valid = sum(1 for _ in readers.read_records(path, errors="collect", collected=problems))
    return valid, [(p.line, str(p)) for p in problems]


def _convert(path, tmp_path, capsys):
    from savi_plugin.data.convert import convert_file

    skipped: list[DataError] = []
    n = convert_file(path, tmp_path / "out" / "conv.jsonl", "savi", "trl", bad_records="skip", skipped=skipped)
    return n, [(p.line, str(p)) for p in skipped]


def _inspect(path, tmp_path, capsys):
    from savi_plugin.inspection.site import build_site

    summary = build_site(path, tmp_path / "site", frames=0, progress=False)
    data = (tmp_path / "site" / "index-data.js").read_text()
    bad = json.loads(re.search(r"window\.SAVI_BAD=(.*);", data).group(1))
    return summary.pairs, [(_where(where), f"{where}: {message}") for where, message in bad]


def _diagnostics(path, tmp_path, capsys):
    from savi_plugin.inspection.site import read_diagnostics

    problems: list[DataError] = []
    # the good lines as training writes diagnostics rows: each names its step (a row without one is a bad row)
    path.write_bytes(path.read_bytes().replace(b'"source": "test"}', b'"source": "test", "step": 0}'))
    rows = read_diagnostics(path, problems)
    return sum(len(r) for r in rows.values()), [(p.line, str(p)) for p in problems]


def _resuming_writer(path, tmp_path, capsys):
    from savi_plugin.data.writer import existing_ids

    return len(existing_ids(path)), None  # it reports nothing: a resumed run refuses such a file (runner)


SKIPPING = {"validate": _validate, "read_records": _read_records, "convert": _convert, "inspect": _inspect,
            "diagnostics": _diagnostics, "resuming_writer": _resuming_writer}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reader", SKIPPING)
def test_a_bad_line_is_one_problem_and_the_rest_is_read(reader, kind, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(readers, "MAX_LINE_BYTES", SMALL_CAP)
    monkeypatch.chdir(tmp_path)
    path, line = _file(tmp_path, kind)
    valid, problems = SKIPPING[reader](path, tmp_path, capsys)
    assert valid == 3
    if problems is not None:
        assert [n for n, _ in problems] == [line], problems
        assert KINDS[kind][1] in problems[0][1]
        assert "None" not in problems[0][1].split(": ")[0]


def _eval_samples(path):
    from savi_plugin.eval.results import _jsonl

    # the good lines as lmms-eval logs a sample: with its doc_id (which the samples reader checks, once each)
    good = {json.dumps(r).encode(): json.dumps({"doc_id": i, **r}).encode() for i, r in enumerate(GOOD)}
    path.write_bytes(b"\n".join(good.get(line, line) for line in path.read_bytes().split(b"\n")))
    return _jsonl(path)


def _eval_annotations(path):
    from savi_plugin.eval.data import read_annotation_file

    return read_annotation_file(path)


def _manifest(path):
    from savi_plugin.generators.inputs import load_inputs

    return load_inputs(path)


STRICT = {"eval_samples": _eval_samples, "eval_annotations": _eval_annotations, "generation_manifest": _manifest}


@pytest.mark.parametrize("kind", [k for k, (_, _, line_level) in KINDS.items() if line_level])
@pytest.mark.parametrize("reader", STRICT)
def test_a_strict_reader_refuses_naming_the_bad_line(reader, kind, tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "MAX_LINE_BYTES", SMALL_CAP)
    path, line = _file(tmp_path, kind)
    with pytest.raises(Exception) as info:
        STRICT[reader](path)
    assert str(info.value).startswith(f"{path}:{line}:"), str(info.value)
    assert KINDS[kind][1] in str(info.value)


def test_one_huge_line_is_skipped_with_bounded_memory(tmp_path, capsys):
    """A valid record, then one line of 64 MiB of NUL bytes (a sparse file: no disk used): the line is one
    problem, the record counts, and the reader never holds much more than the cap (red team B23)."""
    from savi_plugin.cli import main

    path = tmp_path / "sparse.jsonl"
    (tmp_path / "v.mp4").write_bytes(b"")  # the video every record names: validate checks it is a file
    path.write_bytes(json.dumps(GOOD[0]).encode() + b"\n")
    with open(path, "r+b") as fh:
        fh.truncate(64 * 2**20)
    capsys.readouterr()
    tracemalloc.start()
    try:
        assert main(["data", "validate", str(path)]) == 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out = capsys.readouterr()
    assert out.out.strip() == f"{path}:2:-: line too long: more than {readers.MAX_LINE_BYTES} bytes (a record's " \
                              f"texts are capped at 65536 characters each)"
    assert "1 valid record(s), 1 problem(s)" in out.err
    assert peak < 2 * readers.MAX_LINE_BYTES + 8 * 2**20, peak  # the line read once, and copied once


def test_the_cap_holds_the_largest_valid_record(tmp_path):
    """A text at the text cap, each character in a 6-byte JSON escape, reads as one valid record; five such texts
    of escaped surrogate pairs (12 bytes a character) fit the cap too."""
    from savi_plugin.untrusted import MAX_TEXT_CHARS

    record = {**GOOD[0], "question": "é" * MAX_TEXT_CHARS}
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps(record) + "\n")  # ensure_ascii: \u00e9 for each
    assert path.stat().st_size > 6 * MAX_TEXT_CHARS
    assert [r.id for _, r in readers.read_records(path)] == ["ok0"]
    assert 5 * MAX_TEXT_CHARS * 12 < readers.MAX_LINE_BYTES


def test_problems_are_listed_in_line_order(tmp_path, capsys):
    """Red team B35's file: null, not UTF-8, two records glued on one line, a duplicate id: listed 2, 4, 6, 7."""
    from savi_plugin.cli import main

    g = [json.dumps({**GOOD[0], "id": f"g{i}"}).encode() for i in range(4)]
    path = tmp_path / "p16.jsonl"
    (tmp_path / "v.mp4").write_bytes(b"")  # the video every record names: validate checks it is a file
    path.write_bytes(b"\n".join([g[0], b"null", g[1], b'\xff\xfe{"id": 1}', g[2], g[2] + g[3], g[3], g[0]]) + b"\n")
    capsys.readouterr()
    assert main(["data", "validate", str(path)]) == 1
    out = capsys.readouterr()
    assert [_where(p) for p in out.out.splitlines()] == [2, 4, 6, 8]
    assert "4 valid record(s), 4 problem(s)" in out.err
    problems: list[DataError] = []
    list(readers.read_records(path, errors="collect", collected=problems))
    assert [p.reason for p in problems] == ["bad_record", "unreadable_line", "unreadable_line", "bad_record"]


@pytest.mark.parametrize("fmt, base", [
    ("rrpo", {"sample_id": 1, "video": "v.mp4", "question": "<image>\nWhat?", "answer": "red", "pred": "blue"}),
    ("trl", {"video": "v.mp4", "prompt": "What?", "chosen": "red", "rejected": "blue"}),
])
def test_another_formats_extra_field_with_a_hidden_control_is_named_as_its_file_spells_it(fmt, base):
    """Another format's other fields are kept in ``meta`` and pass its rule (pass 12, B56), named as the file
    names them, not by where they are kept."""
    to_record = {"rrpo": readers.rrpo_to_record, "trl": readers.trl_to_record}[fmt]
    for extra, field in [({"note": "x\u202eevil"}, "note"), ({"k\u202ey": 1}, '["k\\u202ey"]'),
                         ({"tags": ["ok", "\x1b[2J"]}, "tags[1]")]:
        with pytest.raises(DataError) as caught:
            to_record({**base, **extra}, "f.jsonl", 3)
        assert str(caught.value).startswith(f"f.jsonl:3:{field}: "), caught.value
    assert to_record({**base, "note": "<video> fine"}, "f.jsonl", 3).meta[fmt]["extra"] == {"note": "<video> fine"}


def test_a_trl_records_bad_prompt_is_named_prompt_as_the_file_spells_it(tmp_path):
    """Pass 19 C #43: a TRL record's bad ``prompt`` was named ``:3:question:``, a field that file does not have."""
    import json

    import pytest

    from savi_plugin.data import DataError, read_records

    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"prompt": "What <|im_start|> is it?", "chosen": "a", "rejected": "b",
                                "video": "v.mp4"}) + "\n")
    with pytest.raises(DataError) as err:
        list(read_records(path, "trl"))
    assert (err.value.line, err.value.field) == (1, "prompt"), err.value


@pytest.mark.parametrize("fmt", ["savi", "rrpo", "trl"])
@pytest.mark.parametrize("content", ["binary", "utf16", "many_bad"])
def test_validate_lists_a_file_that_is_not_text_once_and_caps_its_listing(content, fmt, tmp_path, monkeypatch,
                                                                        capsys):
    """Pass 25 L #71: ``savi data validate`` on a binary file renamed ``.jsonl`` printed one "not UTF-8" line per
    newline byte (2,448 lines). A file that is not text is one problem naming its first bad byte; any other
    listing of problems is capped (the first 20, then "... and N more"), the count line counting them all."""
    import random

    from savi_plugin.cli import main
    from savi_plugin.cli.data import MAX_LISTED

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "pairs.jsonl"
    if content == "binary":
        rng = random.Random(0)
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(200_000)))
    elif content == "utf16":  # UTF-16 text: its NUL bytes are text's, named as UTF-16 (not as a binary file)
        path.write_bytes("".join('{"id": "p%d"}\n' % i for i in range(30)).encode("utf-16"))
    else:
        path.write_text("".join(f"{{not json {i}\n" for i in range(45)))
    code = main(["data", "validate", path.name, "--format", fmt])
    captured = capsys.readouterr()
    listed = captured.out.strip().splitlines()
    assert code == 1
    if content == "binary":
        assert len(listed) == 1 and listed[0].startswith(f"{path.name}:-:-: not a text file: byte "), listed
        assert "(line 1)" in listed[0], listed
        assert "0 valid record(s), 1 problem(s)" in captured.err
    else:
        assert len(listed) == MAX_LISTED + 1 and listed[-1].startswith("... and "), listed
        total = 45 if content == "many_bad" else int(listed[-1].split()[2]) + MAX_LISTED
        assert listed[-1] == f"... and {total - MAX_LISTED} more problem(s)"
        assert f"{total} problem(s)" in captured.err


#: files with no record at all, as (name, text): each refused by every reader command in the same words
NO_RECORD = {"zero_bytes": ("empty.jsonl", ""), "blank_lines": ("blank.jsonl", "\n  \n\t\n"),
             "empty_array": ("empty.json", "[]\n")}
#: every command that reads a file of records (or of generation items), and its argv for the file ``path``
READER_COMMANDS = {
    "validate": lambda path, tmp, model: ["data", "validate", str(path)],
    "convert": lambda path, tmp, model: ["data", "convert", str(path), str(tmp / "out.jsonl")],
    "inspect": lambda path, tmp, model: ["inspect", str(path), "--out", str(tmp / "site"), "--no-progress"],
    "train": lambda path, tmp, model: ["train", "tiny_demo", "--model", str(model), "--data", str(path),
                                       "--output-dir", str(tmp / "out")],
    "generate": lambda path, tmp, model: ["generate", "--generator", "rrpo", "--model", str(model), "--input",
                                          str(path), "--output", str(tmp / "out.jsonl"), "--no-progress"],
}


@pytest.mark.parametrize("shape", NO_RECORD)
@pytest.mark.parametrize("command", READER_COMMANDS)
def test_a_file_with_no_record_is_refused_by_every_reader_command_in_the_same_words(command, shape, tmp_path,
                                                                                    capsys, tiny_llava_onevision):
    """Pass 25 R4 #42: ``savi inspect`` drew an empty site (exit 0) of a 0-byte, blank or ``[]`` pair file that
    ``savi data validate`` refused (exit 1). One rule (:func:`savi_plugin.data.readers.no_record`): exit 1, the one
    line ``file:-:-: holds no record ...``, nothing written."""
    from savi_plugin.cli import main

    name, text = NO_RECORD[shape]
    path = tmp_path / name
    path.write_text(text)
    code = main(READER_COMMANDS[command](path, tmp_path, tiny_llava_onevision))
    captured = capsys.readouterr()
    said = [line.removeprefix("error: ") for line in (captured.out + captured.err).splitlines()
            if f"{path}:-:-:" in line]
    assert code == 1, (code, captured.err)
    assert said == [str(readers.no_record(path))], captured
    assert "holds no record" in said[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [name], "nothing is written of a file with no record"

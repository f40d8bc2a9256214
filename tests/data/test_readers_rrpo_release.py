"""Reading RRPO's released pairs: records whose ``<MASK>`` tags do not strip to the plain text are skipped
and counted when asked (``--bad-records skip``), as the official code skips them; the default still stops."""

from __future__ import annotations

import json

from savi_plugin.cli import main
from savi_plugin.data import read_records
from savi_plugin.data.convert import convert_file

RELEASE = [
    {"question": "<image>\nWhat is biting the mans nose?", "answer": "It is a goose.", "pred": "It is a dog.",
     "answer_masked": "It is a <MASK> goose </MASK>.", "pred_masked": "It is a <MASK> dog </MASK>.",
     "src": "vidal", "sample_id": 0, "media_path": "v0.mp4"},
    # the tagged answer is not the answer: an LLM rewrote a word while tagging
    {"question": "<image>\nWhat does the man do?", "answer": "He is riding on a boat.",
     "pred": "He is fishing from a boat.", "answer_masked": "He is <MASK> riding </MASK> in a boat.",
     "pred_masked": "He is <MASK> fishing from </MASK> a boat.", "src": "vidal", "sample_id": 1,
     "media_path": "v1.mp4"},
    {"question": "<image>\nWhat sport?", "answer": "soccer", "pred": "volleyball",
     "answer_masked": "<MASK> soccer", "pred_masked": "<MASK> volleyball </MASK>", "src": "x", "sample_id": 2,
     "media_path": "v2.mp4"},
    {"question": "<image>\nWhere?", "answer": "on a field", "pred": "on a beach",
     "answer_masked": "on a <MASK> field </MASK>", "pred_masked": "on a <MASK> beach </MASK>", "src": "x",
     "sample_id": 3, "media_path": "v3.mp4"},
]


def test_convert_skips_and_lists_records_whose_tags_do_not_strip(tmp_path, capsys):
    src = tmp_path / "release.json"
    src.write_text(json.dumps(RELEASE))
    out = tmp_path / "pairs.jsonl"

    assert main(["data", "convert", str(src), str(out), "--from", "rrpo"]) == 1  # the default stops
    err = capsys.readouterr().err
    # a one-line array: every record starts on text line 1, its number in the array said beside it
    assert f"{src}:1:answer_masked: without its tags it differs from 'answer' (record 2 of the array)" in err
    assert not out.exists()

    assert main(["data", "convert", str(src), str(out), "--from", "rrpo", "--bad-records", "skip"]) == 0
    captured = capsys.readouterr()
    assert "wrote 2 record(s)" in captured.out
    assert "skipped 2 bad record(s):" in captured.err
    assert "(record 2 of the array)" in captured.err and "(record 3 of the array)" in captured.err
    assert [r.id for _, r in read_records(out)] == ["0", "3"]

    skipped = []
    assert convert_file(src, tmp_path / "again.json", "rrpo", "rrpo", bad_records="skip", skipped=skipped) == 2
    assert [(e.line, e.field) for e in skipped] == [(2, "answer_masked"), (3, "answer_masked")]
    assert json.loads((tmp_path / "again.json").read_text()) == [RELEASE[0], RELEASE[3]]


def test_a_release_json_above_the_document_cap_is_refused_from_its_size_before_it_is_read(tmp_path, capsys,
                                                                                          monkeypatch):
    """A pair file in RRPO's release format is one JSON document, read whole: its bytes are capped by
    ``$SAVI_MAX_DOCUMENT_BYTES`` (default 256 MiB) like every whole document, as the JSONL reader caps a line."""
    import os

    monkeypatch.chdir(tmp_path)
    with open("big_rrpo.json", "wb") as fh:  # sparse: 300 MiB on paper, nothing on disk
        fh.write(b"[")
        fh.truncate(300 * 2**20)
    assert main(["data", "validate", "--format", "rrpo", "big_rrpo.json"]) == 2  # the variable is what to correct
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: big_rrpo.json: 300.00 MiB, above the 256.00 MiB cap on a document read whole "
                   "($SAVI_MAX_DOCUMENT_BYTES; raise it if the file is meant to be this large)"], err
    # the same cap for every whole document a user gives: a recipe file too
    monkeypatch.setenv("SAVI_MAX_DOCUMENT_BYTES", "1KiB")
    (tmp_path / "r.yaml").write_text("extends: tiny_demo\n" + "# padding\n" * 200)
    assert main(["recipes", "show", os.path.join(".", "r.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: r.yaml: ") and "$SAVI_MAX_DOCUMENT_BYTES" in err[0], err


def test_a_release_array_s_bad_number_is_placed_by_text_line_not_as_a_record(tmp_path, monkeypatch, capsys):
    """Pass 17 B #25: ``r6.json:9:-: NaN ...`` read as the 9th record of a 3-record file; a document that does not
    parse is placed at its text line (as an editor jumps to it, and as the blind corpus expects), and says so."""
    monkeypatch.chdir(tmp_path)
    text = json.dumps(RELEASE[:3], indent=1).replace('"sample_id": 0', '"sample_id": NaN')
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "NaN" in row)
    (tmp_path / "r6.json").write_text(text)
    assert main(["data", "validate", "--format", "rrpo", "r6.json"]) == 1
    out = capsys.readouterr().out
    assert f"r6.json:{line}:-: NaN is not a JSON number" in out, out
    assert f"(text line {line}; the document is refused whole, so no record is counted)" in out, out


def test_records_wrapped_in_an_object_say_so(tmp_path, monkeypatch, capsys):
    """Pass 17 B #26: ``{"data": [...]}`` was read as one record missing ``sample_id``, with no word of the array."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r7.json").write_text(json.dumps({"data": RELEASE}))
    assert main(["data", "validate", "--format", "rrpo", "r7.json"]) == 1
    out = capsys.readouterr().out
    assert ("r7.json:1:sample_id: missing required field; this object holds an array of objects under 'data', as a "
            "wrapper of records would: a rrpo file is a JSON array of records or one record per line") in out, out


import pytest  # noqa: E402


@pytest.mark.parametrize("fmt", ["rrpo", "savi", "trl"])
@pytest.mark.parametrize("shape", ["wrapper", "one_record"])
def test_one_object_over_several_lines_is_refused_whole_in_one_line(tmp_path, monkeypatch, capsys, fmt, shape):
    """Pass 20 B #19: ``{"data": [...]}`` pretty-printed was 31 "invalid JSON" problems, one per text line; a JSON
    object written over several lines is one problem of the file, whatever the format."""
    monkeypatch.chdir(tmp_path)
    obj = {"data": RELEASE[:3]} if shape == "wrapper" else RELEASE[0]
    (tmp_path / "r.json").write_text(json.dumps(obj, indent=1))
    assert main(["data", "validate", "--format", fmt, "r.json"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    problems = [row for row in out if row.startswith("r.json:")]
    assert len(problems) == 1, out
    assert problems[0].startswith("r.json:-:-: one JSON object written over several lines"), out
    assert ("under 'data'" in problems[0]) == (shape == "wrapper"), out


@pytest.mark.parametrize("record", [1, 3])
def test_a_key_twice_in_a_release_record_is_named_at_its_record_and_field(tmp_path, monkeypatch, capsys, record):
    """Left in session 13: a key given twice in one record of a JSON array release named no record."""
    monkeypatch.chdir(tmp_path)
    texts = [json.dumps(r) for r in RELEASE]
    texts[record - 1] = texts[record - 1].replace('"pred": ', '"pred": "x", "pred": ', 1)
    (tmp_path / "d.json").write_text("[\n" + ",\n".join(texts) + "\n]\n")
    assert main(["data", "validate", "--format", "rrpo", "d.json"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"d.json:{record + 1}:pred: key 'pred' appears twice in one object (which value is meant is "
                   f"ambiguous) (the document is refused whole, so no record is counted) (record {record} of the "
                   f"array)"], out  # at the text line the record starts on (one record a line, after the "[")


@pytest.mark.parametrize("command", ["train", "inspect"])
def test_a_bad_record_of_a_json_array_is_named_at_its_text_line_by_every_command(command, tmp_path, caplog,
                                                                                 tiny_llava_onevision):
    """Pass 25 left #4: the readers name a JSON array's record at the text line it starts on, but training's skip
    warning and collator, and ``savi inspect``'s list of bad records, printed its number in the array in the line
    slot. Every message about such a record now uses ``DataError.where``: records 1 and 2 (bad ``pred``) start on
    text lines 4 and 14, never said as lines 1 and 2."""
    import logging

    bad = [{**RELEASE[0], "pred": 5}, {**RELEASE[3], "pred": 5}, RELEASE[3] | {"sample_id": 9}]
    text = "[\n\n\n" + ",\n".join(json.dumps(r, indent=1) for r in bad) + "\n]\n"
    src = tmp_path / "w.json"
    src.write_text(text)
    starts = [n for n, line in enumerate(text.splitlines(), 1) if line == "{"]
    assert starts[:2] == [4, 14]
    caplog.set_level(logging.WARNING)
    if command == "train":  # skipped records are warned about (the first named), then no usable pair is refused
        argv = ["train", "tiny_demo", "--model", str(tiny_llava_onevision), "--data", str(src), "--output-dir",
                str(tmp_path / "out"), "train.bad_records=skip", "train.data_format=rrpo"]
        assert main(argv) == 1
        assert f"first: {src}:4:pred: expected a string" in caplog.text, caplog.text
    else:
        assert main(["inspect", str(src), "--format", "rrpo", "--out", str(tmp_path / "site"), "--no-progress"]) == 0
        data = (tmp_path / "site" / "index-data.js").read_text()
        said = json.loads(data.split("window.SAVI_BAD=", 1)[1].rsplit(";", 1)[0])
        assert [row[0] for row in said] == [f"{src}:4:pred", f"{src}:14:pred"], said

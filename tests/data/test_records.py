"""Preference-data format: validation names file:line:field, conversions are lossless, the writer resumes."""

import json
import subprocess
import sys

import pytest

from savi_plugin.data import DataError, PreferenceRecord, PreferenceWriter, read_records
from savi_plugin.data.convert import convert_file
from tests.builders import write_jsonl

GOOD = {"id": "p1", "video": "v.mp4", "question": "What moves?", "chosen": "the red ball", "rejected": "the blue ball",
        "chosen_tagged": "the <MASK>red</MASK> ball", "rejected_tagged": "the <MASK>blue</MASK> ball",
        "source": "rrpo", "meta": {"seed": 0}}

MALFORMED = [  # (line text, field the error must name)
    ("{not json", "-"),
    ('["a", "list"]', "-"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "id"}), "id"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "video"}), "video"),
    (json.dumps({**GOOD, "question": 3}), "question"),
    (json.dumps({**GOOD, "chosen": ""}), "chosen"),
    (json.dumps({**GOOD, "rejected": "the red ball", "rejected_tagged": None, "chosen_tagged": None}), "rejected"),
    (json.dumps({**GOOD, "chosen_tagged": "the <MASK>red ball"}), "chosen_tagged"),
    (json.dumps({**GOOD, "rejected_tagged": "the <MASK><MASK>blue</MASK></MASK> ball"}), "rejected_tagged"),
    (json.dumps({**GOOD, "chosen_tagged": "the red ball"}), "chosen_tagged"),
    (json.dumps({**GOOD, "chosen_tagged": "the <MASK>green</MASK> ball"}), "chosen_tagged"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "rejected_tagged"}), "rejected_tagged"),
    (json.dumps({**GOOD, "meta": [1, 2]}), "meta"),
    (json.dumps({**GOOD, "extra_field": 1}), "extra_field"),
    (json.dumps({**GOOD, "chosen": "a <MASK>x</MASK> b", "rejected": "a <MASK>x</MASK> c",
                 "chosen_tagged": "a <MASK>x</MASK> b", "rejected_tagged": "a <MASK>x</MASK> c"}), "chosen_tagged"),
]


def test_good_record_roundtrips():
    from savi_plugin.data import validate_record

    record = validate_record(GOOD)
    assert isinstance(record, PreferenceRecord) and record.is_tagged
    assert record.to_json() == GOOD


@pytest.mark.parametrize("line, field", MALFORMED)
def test_malformed_record_names_file_line_field(tmp_path, line, field):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({**GOOD, "id": "ok"}) + "\n\n" + line + "\n")
    with pytest.raises(DataError) as info:
        list(read_records(path))
    assert info.value.line == 3
    assert str(info.value).startswith(f"{path}:3:{field}:")


def test_duplicate_ids_and_non_utf8(tmp_path):
    path = tmp_path / "dup.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n")
    with pytest.raises(DataError, match=r"dup.jsonl:2:id: duplicate id 'p1' \(first at line 1\)"):
        list(read_records(path))
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes(json.dumps(GOOD).encode() + b"\n" + '{"id": "caf\xe9"}'.encode("latin-1") + b"\n")
    with pytest.raises(DataError, match=r"latin1.jsonl:2:-: not UTF-8"):
        list(read_records(bad))


@pytest.mark.parametrize("meta, field", [  # pass 12, B56: README's text rule holds for every string of a pair
    ({"note": "x\u202eevil"}, "meta.note"),
    ({"k\u202ey": 1}, 'meta["k\\u202ey"]'),
    ({"a": {"b": [1, "ok", "\x1b[2J"]}}, "meta.a.b[2]"),
    ({"a": [{"\u2066": "v"}]}, 'meta.a[0]["\\u2066"]'),
    ({"s": "\ud800"}, "meta.s"),
])
def test_a_hidden_control_in_meta_is_refused_at_its_path(meta, field, tmp_path, capsys):
    from savi_plugin.cli import main

    path = tmp_path / "pairs.jsonl"
    write_jsonl(path, [{**GOOD, "id": "ok"}, {**GOOD, "meta": meta}])
    (tmp_path / "v.mp4").write_bytes(b"")  # the video every record names: validate checks it is a file
    assert main(["data", "validate", str(path)]) == 1
    out = "".join(capsys.readouterr())
    assert f"{path}:2:{field}: " in out and "1 valid record(s), 1 problem(s)" in out, out
    assert "\u202e" not in out and "\x1b" not in out and "\u2066" not in out
    # a model's markup stays allowed in meta: a converted RRPO file keeps its question's prefix there
    from savi_plugin.data import validate_record

    assert validate_record({**GOOD, "meta": {"rrpo": {"question_prefix": "<image>\n", "tab": "a\tb"}}})


def test_validate_cli_reports_every_problem(tmp_path):
    path = tmp_path / "mixed.jsonl"
    (tmp_path / "v.mp4").write_bytes(b"")  # the video every record names: validate checks it is a file
    lines = [json.dumps({**GOOD, "id": f"ok{i}"}) for i in range(3)] + [line for line, _ in MALFORMED[2:]]
    path.write_text("\n".join(lines) + "\n")
    out = subprocess.run([sys.executable, "-m", "savi_plugin", "data", "validate", str(path)],
                         capture_output=True, text=True)
    assert out.returncode == 1
    problems = out.stdout.strip().splitlines()
    assert len(problems) == len(MALFORMED) - 2
    assert all(p.startswith(f"{path}:") for p in problems)
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(lines[:3]) + "\n")
    assert subprocess.run([sys.executable, "-m", "savi_plugin", "data", "validate", str(good)]).returncode == 0


RRPO_RELEASE = [
    {"question": "<image>\nWhat is the man doing?", "answer": "The man is fishing by the lake.",
     "pred": "The man is riding a bike by the lake.", "answer_masked": "The man is <MASK>fishing</MASK> by the lake.",
     "pred_masked": "The man is <MASK>riding a bike</MASK> by the lake.", "media_path": "videos/a.mp4", "sample_id": 17},
    {"question": "<image>\nIs the door open?", "answer": "Yes", "pred": "No", "answer_masked": "<MASK>Yes</MASK>",
     "pred_masked": "<MASK>No</MASK>", "video": "videos/b.mp4", "sample_id": "b-2", "dataset": "nextqa"},
]


def test_rrpo_release_converts_to_ours_and_back_without_loss(tmp_path):
    src = tmp_path / "rrpo.json"
    src.write_text(json.dumps(RRPO_RELEASE))
    ours = tmp_path / "ours.jsonl"
    assert convert_file(src, ours, "rrpo", "savi") == 2
    records = [r for _, r in read_records(ours)]
    assert records[0].question == "What is the man doing?" and records[0].video == "videos/a.mp4"
    assert records[0].chosen_tagged == RRPO_RELEASE[0]["answer_masked"]
    back = tmp_path / "back.json"
    convert_file(ours, back, "savi", "rrpo")
    assert json.loads(back.read_text()) == RRPO_RELEASE
    # JSONL flavour of the release, and the CLI
    src_jsonl = tmp_path / "rrpo.jsonl"
    write_jsonl(src_jsonl, RRPO_RELEASE)
    out = tmp_path / "via_cli.jsonl"
    from savi_plugin.cli import main

    assert main(["data", "convert", str(src_jsonl), str(out), "--from", "rrpo", "--to", "savi"]) == 0
    assert [r for _, r in read_records(out)] == records


def test_trl_format_roundtrip(tmp_path):
    trl = [{"prompt": "Describe the video.", "chosen": "A red ball rolls left.", "rejected": "A cat sleeps.",
            "video": "v.mp4", "id": "t1"}]
    src = tmp_path / "trl.jsonl"
    src.write_text(json.dumps(trl[0]) + "\n")
    ours, back = tmp_path / "ours.jsonl", tmp_path / "back.jsonl"
    convert_file(src, ours, "trl", "savi")
    convert_file(ours, back, "savi", "trl")
    assert [json.loads(x) for x in back.read_text().splitlines()] == trl
    src.write_text(json.dumps({"prompt": "x", "chosen": "a", "rejected": "b"}) + "\n")
    with pytest.raises(DataError, match="trl.jsonl:1:video: missing required field"):
        list(read_records(src, "trl"))


def test_writer_resumes_and_cuts_a_truncated_tail(tmp_path):
    from savi_plugin.data import validate_record

    path = tmp_path / "out.jsonl"
    rec = [validate_record({**GOOD, "id": f"r{i}"}) for i in range(4)]
    with PreferenceWriter(path) as w:
        assert w.write(rec[0]) and w.write(rec[1])
        assert not w.write(rec[1])  # same id twice: skipped
    with open(path, "ab") as fh:  # a crash in the middle of a line
        fh.write(b'{"id": "r2", "video": "v.mp')
    with PreferenceWriter(path, fsync=True) as w:
        assert "r0" in w and "r1" in w and "r2" not in w and len(w) == 2
        for r in rec:
            w.write(r)
    lines = path.read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["r0", "r1", "r2", "r3"]


def test_validate_reads_past_bad_lines_and_counts_both(tmp_path, capsys):
    """The reader's rule is the resuming writer's: a bad line (torn, not JSON, not UTF-8, not a record) is one
    problem at its own line, and every line after it is still read and counted."""
    from savi_plugin.cli import main

    path = tmp_path / "pairs.jsonl"
    good = [json.dumps({**GOOD, "id": f"ok{i}"}) for i in range(4)]
    (tmp_path / "v.mp4").write_bytes(b"")  # the video every record names: validate checks it is a file
    path.write_bytes("\n".join([good[0], '{"id": "torn", "vid', good[1], "not json"]).encode() + b"\n\xff\xfe\n"
                     + ("\n".join([good[2], json.dumps({"id": "x"}), good[3]]) + "\n").encode())
    capsys.readouterr()
    assert main(["data", "validate", str(path)]) == 1
    out = capsys.readouterr()
    problems = out.out.strip().splitlines()
    assert sorted(p.split(":")[1] for p in problems) == ["2", "4", "5", "7"]
    assert "4 valid record(s), 4 problem(s)" in out.err

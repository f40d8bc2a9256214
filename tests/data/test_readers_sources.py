"""What the pair readers take from another tool's file, through ``savi data convert`` (pass 25 L): two names of one
field, TRL's conversational layout, the ids savi gives, and where a JSON array's record is placed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from savi_plugin.cli import main
from savi_plugin.data import readers

#: one valid record of each format, its video ``v.mp4`` beside the file
BASE = {
    "savi": {"id": "p1", "video": "v.mp4", "question": "What moves?", "chosen": "the red ball",
             "rejected": "the blue ball"},
    "rrpo": {"sample_id": 1, "video": "v.mp4", "question": "<image>\nWhat moves?", "answer": "the red ball",
             "pred": "the blue ball"},
    "trl": {"id": "p1", "video": "v.mp4", "prompt": "What moves?", "chosen": "the red ball",
            "rejected": "the blue ball"},
}
SUFFIX = {"savi": ".jsonl", "rrpo": ".json", "trl": ".jsonl"}


def _write(path: Path, fmt: str, records: list[dict], indent: int | None = None) -> Path:
    (path.parent / "v.mp4").write_bytes(b"")
    (path.parent / "w.mp4").write_bytes(b"")
    if path.suffix == ".json":
        path.write_text(json.dumps(records, indent=indent))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _convert(src: Path, fmt: str, capsys, to: str = "savi") -> tuple[int, list[str], Path]:
    dst = src.parent / f"out.{to}{SUFFIX[to]}"
    capsys.readouterr()
    code = main(["data", "convert", src.name, dst.name, "--from", fmt, "--to", to])
    return code, capsys.readouterr().err.strip().splitlines(), dst


ALIAS_CASES = [(fmt, ours, names[0], other) for fmt, fields in readers.ALIASES.items()
               for ours, names in fields.items() for other in names[1:]]


def test_every_format_says_its_aliases():
    assert set(readers.ALIASES) == set(readers.FORMATS)
    assert ALIAS_CASES  # RRPO names the video media_path (its code) or video (its docs)


#: per savi field: the value its format's own name gives, the same value as another name may give it (the same file
#: by another path, for a video), and a value that differs
ALIAS_VALUES = {"video": ("v.mp4", None, "w.mp4"), "chosen": ("the red ball", "the red ball", "the green ball"),
                "rejected": ("the blue ball", "the blue ball", "the black ball"),
                "question": ("What moves?", "What moves?", "What stops?")}


@pytest.mark.parametrize("same", [False, True])
@pytest.mark.parametrize("fmt, ours, first, other", ALIAS_CASES)
def test_two_names_of_one_field_are_refused_unless_they_name_the_same(fmt, ours, first, other, same, tmp_path,
                                                                      monkeypatch, capsys):
    """Pass 25 L #13, #65: an RRPO record with both ``video`` and ``media_path`` was read taking ``media_path``, the
    other value lost; TRL's ``prompt`` beat a ``question``, RRPO's ``answer``/``pred`` a ``chosen``/``rejected``.
    Two values for one savi field are refused naming both; the same value twice is one value."""
    monkeypatch.chdir(tmp_path)
    value, same_value, differing = ALIAS_VALUES[ours]
    same_value = str(tmp_path / "v.mp4") if same_value is None else same_value
    record = {k: v for k, v in BASE[fmt].items() if k not in readers.ALIASES[fmt][ours]}
    record[first] = value
    record[other] = same_value if same else differing
    src = _write(tmp_path / "in.jsonl", fmt, [BASE[fmt], {**record, "sample_id": 2, "id": "p2"}])
    code, err, dst = _convert(src, fmt, capsys)
    if same:
        assert code == 0, err
        assert [getattr(r, ours) for _, r in readers.read_records(dst)] == [value, value]
    else:
        assert code == 1 and len(err) == 1, err
        assert err[0].startswith(f"error: {src.name}:2:{first}: ") and repr(other) in err[0], err
        assert repr(value) in err[0] and repr(differing) in err[0], err
        assert not dst.exists()


def _conversation(prompt, chosen="the red ball", rejected="the blue ball"):
    return {"video": "v.mp4", "prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}]}


@pytest.mark.parametrize("content", ["What moves?", [{"type": "text", "text": "What moves?"}],
                                     [{"type": "text", "text": "What "}, {"type": "text", "text": "moves?"}]])
def test_trl_s_conversational_layout_is_read_and_written_back(content, tmp_path, monkeypatch, capsys):
    """Pass 25 L #3: TRL's conversational layout was refused ``expected a string, got list``."""
    monkeypatch.chdir(tmp_path)
    src = _write(tmp_path / "conv.jsonl", "trl", [_conversation([{"role": "user", "content": content}],
                                                                [{"type": "text", "text": "the red ball"}])])
    code, err, dst = _convert(src, "trl", capsys)
    assert code == 0, err
    [(_, record)] = list(readers.read_records(dst))
    assert (record.question, record.chosen, record.rejected) == ("What moves?", "the red ball", "the blue ball")
    code, err, back = _convert(dst, "savi", capsys, to="trl")
    assert code == 0, err
    row = json.loads(back.read_text())
    assert row["prompt"] == [{"role": "user", "content": "What moves?"}]
    assert row["chosen"] == [{"role": "assistant", "content": "the red ball"}]


REFUSED = {  # a conversation savi's one question and two answers cannot hold: (prompt, chosen, field, words)
    "system_turn": ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What?"}], None,
                    "prompt", "'system'"),
    "two_user_turns": ([{"role": "user", "content": "What?"}, {"role": "assistant", "content": "A ball."},
                        {"role": "user", "content": "Which?"}], None, "prompt", "exactly one user turn"),
    "assistant_prompt": ([{"role": "assistant", "content": "What?"}], None, "prompt", "exactly one user turn"),
    "two_answers": ([{"role": "user", "content": "What?"}], [{"role": "assistant", "content": "a"},
                                                              {"role": "assistant", "content": "b"}], "chosen",
                    "exactly one assistant turn"),
    "image_part": ([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What?"}]}], None,
                   "prompt[0].content[0]", "'image'"),
    "not_a_message": (["What?"], None, "prompt[0]", "role"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_conversation_savi_cannot_hold_is_refused_naming_its_field(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    prompt, chosen, field, words = REFUSED[case]
    record = _conversation(prompt)
    if chosen is not None:
        record["chosen"] = chosen
    src = _write(tmp_path / "conv.jsonl", "trl", [record])
    code, err, _ = _convert(src, "trl", capsys)
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith(f"error: conv.jsonl:1:{field}: ") and words in err[0], err


@pytest.mark.parametrize("ids, said", [
    ((None, "coll-1"), "line 1 has no id, savi names it coll-1"),
    (("coll-2", None), "this line has no id, savi names it coll-2"),
    (("x", "x"), None),
])
def test_a_duplicate_of_an_id_savi_gave_says_so(ids, said, tmp_path, monkeypatch, capsys):
    """Pass 25 L #8: ``duplicate id 'coll-1' (first at line 1)`` where line 1 holds no id."""
    monkeypatch.chdir(tmp_path)
    rows = [{k: v for k, v in {**BASE["trl"], "id": i}.items() if v is not None} for i in ids]
    src = _write(tmp_path / "coll.jsonl", "trl", rows)
    code, err, _ = _convert(src, "trl", capsys)
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith("error: coll.jsonl:2:id: duplicate id ") and "(first at line 1)" in err[0], err
    assert (said in err[0]) if said else "has no id" not in err[0], err


@pytest.mark.parametrize("layout", ["pretty", "one_line", "jsonl"])
@pytest.mark.parametrize("fmt", readers.FORMATS)
def test_a_json_array_s_record_is_placed_at_the_line_it_starts_on(fmt, layout, tmp_path, monkeypatch, capsys):
    """Pass 25 L #19: a pretty-printed array's errors said ``pp.json:2:pred`` for its 2nd record (on line 10): the
    location is the text line a record starts on (an array's record number said beside it); JSONL keeps its line."""
    monkeypatch.chdir(tmp_path)
    text_field = {"savi": "chosen", "rrpo": "pred", "trl": "chosen"}[fmt]
    records = [{**BASE[fmt], "id": f"p{i}", "sample_id": i} if fmt == "rrpo" else {**BASE[fmt], "id": f"p{i}"}
               for i in range(3)]
    if fmt == "rrpo":
        records = [{k: v for k, v in r.items() if k != "id"} for r in records]
    records[1][text_field] = 5
    src = _write(tmp_path / ("in.jsonl" if layout == "jsonl" else "in.json"), fmt, records,
                 indent=2 if layout == "pretty" else None)
    code, err, _ = _convert(src, fmt, capsys)
    assert code == 1 and len(err) == 1, err
    if layout == "pretty":
        line = src.read_text().splitlines().index("  {", 1 + src.read_text().splitlines().index("  {")) + 1
        assert line > 2 and err[0].startswith(f"error: {src.name}:{line}:{text_field}: "), err
        assert err[0].endswith("(record 2 of the array)"), err
    elif layout == "one_line":
        assert err[0].startswith(f"error: {src.name}:1:{text_field}: "), err
        assert err[0].endswith("(record 2 of the array)"), err
    else:
        assert err[0].startswith(f"error: {src.name}:2:{text_field}: ") and "of the array" not in err[0], err


#: every JSON type an id may hold, and what savi makes of it: its text (an integer's digits), or None: refused
ID_VALUES = [("p7", "p7"), (7, "7"), (-3, "-3"), (None, None), (True, None), (1.5, None), ([1], None),
             ({"a": 1}, None), (2**70, None)]
ID_FIELD = {"savi": "id", "rrpo": "sample_id", "trl": "id"}


@pytest.mark.parametrize("value, text", ID_VALUES)
@pytest.mark.parametrize("fmt", readers.FORMATS)
def test_one_rule_for_ids_and_they_come_back_as_they_were(fmt, value, text, tmp_path, monkeypatch, capsys):
    """Pass 25 L #58, #64: a TRL id of any JSON type became Python's ``str()`` of it (null -> "None"), and an
    integer id came back as a string after TRL -> savi -> TRL. Every format reads ids by one rule (a string, or an
    integer held as its text), refuses the rest naming file, line and field, and gives an integer back as one."""
    monkeypatch.chdir(tmp_path)
    src = _write(tmp_path / f"in{SUFFIX[fmt]}", fmt, [{**BASE[fmt], ID_FIELD[fmt]: value}])
    code, err, dst = _convert(src, fmt, capsys)
    if text is None:
        assert code == 1 and len(err) == 1, err
        assert err[0].startswith(f"error: {src.name}:1:{ID_FIELD[fmt]}: "), err
        assert not dst.exists()
        return
    assert code == 0, err
    assert [r.id for _, r in readers.read_records(dst)] == [text]
    back = tmp_path / f"back{SUFFIX[fmt]}"
    assert main(["data", "convert", dst.name, back.name, "--from", "savi", "--to", fmt]) == 0
    written = json.loads(back.read_text())
    written = written[0] if isinstance(written, list) else written
    # savi's own format holds ids as text; RRPO and TRL give the id back of the type it was read as
    assert written[ID_FIELD[fmt]] == (text if fmt == "savi" else value)


URLS = ["https://example.com/v.mp4", "http://host/v.mp4", "s3://bucket/v.mp4", "file:///data/v.mp4"]


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("fmt", readers.FORMATS)
def test_a_url_given_as_the_video_is_refused(fmt, url, tmp_path, monkeypatch, capsys):
    """Pass 25 L #47: a URL as the video was shown mangled (``https:/example.com/v.mp4``) and nothing said savi
    reads no URL. It is refused in one line naming file, line and field: savi reads local files only."""
    monkeypatch.chdir(tmp_path)
    field = readers.ALIASES[fmt].get("video", ("video",))[0]
    record = {k: v for k, v in BASE[fmt].items() if k != "video"}
    src = _write(tmp_path / f"in{SUFFIX[fmt]}", fmt, [{**record, field: url}])
    for argv in (["data", "validate", src.name, "--format", fmt], None):
        capsys.readouterr()
        if argv is None:
            code, err, dst = _convert(src, fmt, capsys)
            assert not dst.exists()
        else:
            code = main(argv)
            captured = capsys.readouterr()
            err = [line for line in (captured.out + captured.err).splitlines() if line.startswith(src.name)]
        assert code == 1 and len(err) == 1, err
        assert f"{src.name}:1:{field}: " in err[0] and url in err[0] and "local files only" in err[0], err

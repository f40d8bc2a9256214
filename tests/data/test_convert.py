"""``savi data convert`` keeps every record's video: a stored path is relative to the folder of the file that holds
it (README "Paths, everywhere"), so a conversion into another folder rewrites it for the new file (red team B38).

Generated over where the output lies (same folder, sibling, nested, parent) x the working folder x each pair of
formats, each file holding a video under its folder, one beside it (``..``) and one absolute; a decoy video of
the same relative name lies beside every output, so a path copied verbatim would name another file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from savi_plugin.cli import main
from savi_plugin.data.paths import path_from_file
from savi_plugin.data.readers import read_records, record_to_rrpo, record_to_trl
from savi_plugin.data.record import validate_record

LAYOUTS = {"same": "a/dst", "sibling": "s/dst", "nested": "a/deep/er/dst", "parent": "dst"}
CONVERSIONS = [("savi", "savi"), ("savi", "trl"), ("savi", "rrpo"), ("trl", "savi"), ("rrpo", "savi")]
SUFFIX = {"savi": ".jsonl", "trl": ".jsonl", "rrpo": ".json"}


def _videos(root: Path) -> dict[str, Path]:
    """The stored path of each video in ``a/src.*`` -> the file it names; decoys beside every output."""
    videos = {"vids/x.mp4": root / "a/vids/x.mp4", "../b/y.mp4": root / "b/y.mp4"}
    videos[str(root / "c/z.mp4")] = root / "c/z.mp4"
    for layout in LAYOUTS.values():
        for stored in ("vids/x.mp4", "../b/y.mp4"):
            decoy = (root / layout).parent / stored
            decoy.parent.mkdir(parents=True, exist_ok=True)
            decoy.touch()
    for path in videos.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return videos


def _source(root: Path, fmt: str, videos: dict[str, Path]) -> Path:
    records = [validate_record({"id": f"r{i}", "video": stored, "question": "What moves?", "chosen": "the red ball",
                                "rejected": "the blue ball", "source": "test"}) for i, stored in enumerate(videos)]
    src = root / f"a/src{SUFFIX[fmt]}"
    if fmt == "rrpo":
        src.write_text(json.dumps([record_to_rrpo(r) for r in records]))
    else:
        to = record_to_trl if fmt == "trl" else (lambda r: r.to_json())
        src.write_text("".join(json.dumps(to(r)) + "\n" for r in records))
    return src


@pytest.mark.parametrize("cwd", ["root", "output"])
@pytest.mark.parametrize("src_fmt, dst_fmt", CONVERSIONS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_converted_file_names_the_same_videos(layout, src_fmt, dst_fmt, cwd, tmp_path, monkeypatch, capsys):
    root = tmp_path / "w"
    videos = _videos(root)
    src = _source(root, src_fmt, videos)
    dst = root / (LAYOUTS[layout] + SUFFIX[dst_fmt])
    here = root if cwd == "root" else dst.parent
    monkeypatch.chdir(here)
    assert main(["data", "convert", os.path.relpath(src, here), os.path.relpath(dst, here),
                 "--from", src_fmt, "--to", dst_fmt]) == 0
    got = [r.video for _, r in read_records(dst, dst_fmt)]
    assert [os.path.realpath(path_from_file(v, dst)) for v in got] == [os.path.realpath(p) for p in videos.values()]
    for stored, path, value in zip(videos, videos.values(), got):  # kept when it names the same file from dst,
        same = os.path.abspath(path_from_file(stored, dst)) == os.path.abspath(path)  # else relative when under
        under = dst.parent in path.parents  # dst's folder, else absolute
        want = stored if same else path.relative_to(dst.parent).as_posix() if under else str(path)
        assert value == want, (stored, value)
    if layout == "same":
        assert got == list(videos)


def test_with_a_data_root_relative_paths_are_kept(tmp_path, monkeypatch):
    """Paths read against ``--data-root`` start at the root, not at the file: they are kept as written (those that
    leave the root are bad records: the next test)."""
    root = tmp_path / "w"
    videos = _videos(root)
    src = _source(root, "savi", videos)
    monkeypatch.chdir(root)
    assert main(["data", "convert", str(src), "s/dst.jsonl", "--data-root", "a", "--to", "trl", "--bad-records",
                 "skip"]) == 0
    assert [r.video for _, r in read_records(root / "s/dst.jsonl", "trl")] == ["vids/x.mp4"]
    assert main(["data", "convert", str(src), "s/dst2.jsonl", "--data-root", "missing"]) == 2


@pytest.mark.parametrize("bad_records", ["raise", "skip"])
@pytest.mark.parametrize("escape", ["../outside/v.mp4", "ABSOLUTE", "link/v.mp4"])
def test_with_a_data_root_a_path_leaving_it_is_a_bad_record(escape, bad_records, tmp_path, monkeypatch, capsys):
    """``savi data convert --data-root`` kept every path as written, those leaving the root too (pass 24 H #85),
    where validate, train and inspect under the same root refuse them: each is a bad record, stopped at or skipped
    and counted."""
    import json

    monkeypatch.chdir(tmp_path)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "v.mp4").write_bytes(b"")
    (tmp_path / "root" / "in").mkdir(parents=True)
    (tmp_path / "root" / "in" / "ok.mp4").write_bytes(b"")
    (tmp_path / "root" / "link").symlink_to(tmp_path / "outside")
    video = str(tmp_path / "outside" / "v.mp4") if escape == "ABSOLUTE" else escape
    pairs = [{"id": "ok", "video": "in/ok.mp4", "question": "q?", "chosen": "a red cup", "rejected": "a blue cup"},
             {"id": "out", "video": video, "question": "q?", "chosen": "a red cup", "rejected": "a blue cup"}]
    Path("pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    code = main(["data", "convert", "pairs.jsonl", "out.jsonl", "--data-root", "root", "--to", "trl",
                 "--bad-records", bad_records])
    err = capsys.readouterr().err
    if bad_records == "raise":
        assert code != 0 and "pairs.jsonl:2:video:" in err and "outside the data root" in err, err
        assert not Path("out.jsonl").exists()
    else:
        assert code == 0, err
        assert [r.id for _, r in read_records("out.jsonl", "trl")] == ["ok"]


@pytest.mark.parametrize("fmt", ["rrpo", "trl"])
def test_a_pairs_loss_weight_survives_a_conversion_and_its_round_trip(fmt, tmp_path, monkeypatch):
    """Pass 17 A #18: converting weighted pairs (VideoSAVi's CLIP-adjusted DPO) to RRPO's or TRL's format dropped
    every weight, and the round trip trained each pair at weight 1. The weight is a field of its own there."""
    from savi_plugin.data.convert import convert_file

    monkeypatch.chdir(tmp_path)
    pairs = [{"id": f"p{i}", "video": "v.mp4", "question": "What moves?", "chosen": "the red ball",
              "rejected": "the blue ball", **({"weight": w} if w is not None else {})}
             for i, w in enumerate([2.5, 1e-6, None])]
    Path("w.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    convert_file("w.jsonl", f"w.{fmt}.jsonl", "savi", fmt)
    convert_file(f"w.{fmt}.jsonl", "back.jsonl", fmt, "savi")
    assert [r.weight for _, r in read_records("back.jsonl")] == [2.5, 1e-6, None]


@pytest.mark.parametrize("fmt", ["savi", "rrpo", "trl"])
def test_tags_a_format_has_no_place_for_are_said_dropped(fmt, tmp_path, monkeypatch, caplog):
    """Pass 20 B #49: savi -> trl -> savi lost every ``<MASK>`` tag without a word. A conversion to a format with no
    place for the tags warns, counting the tagged records; one that keeps them says nothing, and keeps them."""
    from savi_plugin.data.convert import TAGGED_FORMATS, convert_file

    monkeypatch.chdir(tmp_path)
    pairs = [{"id": f"p{i}", "video": "v.mp4", "question": "What moves?", "chosen": "the red ball",
              "rejected": "the blue ball", **({"chosen_tagged": "the <MASK> red </MASK> ball",
                                               "rejected_tagged": "the <MASK> blue </MASK> ball"} if i else {})}
             for i in range(3)]
    Path("t.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    with caplog.at_level("WARNING", logger="savi_plugin.data.convert"):
        convert_file("t.jsonl", f"t.{fmt}{SUFFIX[fmt]}", "savi", fmt)
    said = [r.getMessage() for r in caplog.records if "phrase tags" in r.getMessage()]
    back = [r.chosen_tagged for _, r in read_records(f"t.{fmt}{SUFFIX[fmt]}", fmt)]
    if fmt in TAGGED_FORMATS:
        assert said == [] and back == [None, pairs[1]["chosen_tagged"], pairs[2]["chosen_tagged"]], (said, back)
    else:
        assert len(said) == 1 and "2 of 3 record(s) carry <MASK> phrase tags" in said[0], said
        assert back == [None, None, None]


#: how a record stores the model that made it (``meta.model``): under the file's folder, beside it, absolute, a hub id
MODELS = {"under": "models/warm", "beside": "../models/warm", "absolute": "ABSOLUTE", "hub": "org/some-model"}


@pytest.mark.parametrize("stored", MODELS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_converted_file_names_the_same_model(layout, stored, tmp_path, monkeypatch, caplog):
    """Pass 25 L #30: ``video`` was rewritten for the new file but ``meta.model`` copied verbatim, so a relative
    model named another folder from there and training (on a copy without the run report, as ``head`` makes)
    warned falsely that the pairs were made by another model. Training's own comparison holds after conversion."""
    from savi_plugin.data.provenance import record_models
    from savi_plugin.training.run import check_pairs_source

    root = tmp_path / "w"
    videos = _videos(root)
    model = {"under": root / "a/models/warm", "beside": root / "models/warm", "absolute": root / "m/warm"}.get(stored)
    for place in LAYOUTS.values():  # a decoy model of the same relative name beside every output
        for name in ("models/warm", "../models/warm"):
            ((root / place).parent / name).mkdir(parents=True, exist_ok=True)
    if model is not None:
        model.mkdir(parents=True, exist_ok=True)
    name = str(model) if stored == "absolute" else MODELS[stored]
    src = root / "a/src.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "video": v, "question": "What moves?", "chosen": "the red ball",
                                       "rejected": "the blue ball", "meta": {"model": name}}) + "\n"
                           for i, v in enumerate(videos)))
    dst = root / (LAYOUTS[layout] + ".jsonl")
    monkeypatch.chdir(root)
    assert main(["data", "convert", str(src), str(dst)]) == 0
    copy = dst.parent / "small.jsonl"  # as ``head`` makes it: no run report, so training reads each meta.model
    copy.write_text(dst.read_text())
    assert record_models(copy) == record_models(src) == {str(os.path.realpath(model)) if model else name: 3}
    with caplog.at_level("WARNING"):
        check_pairs_source(copy, str(model) if model is not None else name)
    assert not [r for r in caplog.records if "generated by" in r.getMessage()], caplog.text


@pytest.mark.parametrize("to", ["savi", "rrpo", "trl"])
def test_the_records_skipped_are_in_the_report_and_inspect_shows_them(to, tmp_path, monkeypatch, capsys):
    """Pass 25 L #60: ``--bad-records skip`` listed the skipped records only on the terminal; the output's report
    held no count or list, so ``savi inspect`` of the output said "0 skipped". The report lists them (line, reason,
    detail) as a generation report lists its skipped items, with their count, and inspect shows them."""
    from savi_plugin.data.provenance import load_report

    monkeypatch.chdir(tmp_path)
    Path("v.mp4").write_bytes(b"")
    good = {"id": "ok", "video": "v.mp4", "question": "q?", "chosen": "a red cup", "rejected": "a blue cup"}
    lines = [json.dumps(good), "{not json", json.dumps({**good, "id": None}), json.dumps({**good, "id": "u",
                                                                                         "video": "https://h/v.mp4"})]
    Path("pairs.jsonl").write_text("\n".join(lines) + "\n")
    out = "out.json" if to == "rrpo" else "out.jsonl"
    assert main(["data", "convert", "pairs.jsonl", out, "--to", to, "--bad-records", "skip"]) == 0
    report = load_report(f"{out}.report.json")
    assert report["counts"] == {"records": 1, "skipped": 3}
    assert [(s["line"], s["reason"]) for s in report["skipped"]] == [(2, "unreadable_line"), (3, "bad_record"),
                                                                     (4, "bad_record")]
    assert [s["item"].split(":")[2] for s in report["skipped"]] == ["-", "id", "video"]
    capsys.readouterr()
    assert main(["inspect", out, "--format", to, "--out", "site", "--frames", "0", "--no-progress"]) == 0
    assert "3 skipped item(s)" in capsys.readouterr().out

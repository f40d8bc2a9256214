"""A record's video is checked by one rule (:func:`savi_plugin.data.paths.video_file`) wherever it is read:
``savi data validate`` refuses every video training would stop on before its first step (missing, not a file,
outside the data root, white space around the path), at ``file:line:video``, and a path is shown by one rule
(:func:`savi_plugin.untrusted.shown_path`): quoted where a reader could not see all of it. A manifest's id derived
from its video's file name says so where it collides."""

from __future__ import annotations

import os

import pytest

from savi_plugin.cli import main
from tests.builders import write_jsonl

PAIR = {"id": "p", "question": "What moves?", "chosen": "the red ball", "rejected": "the blue ball"}


def _folder(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "a.mp4").write_bytes(b"")
    (tmp_path / "v" / "dir.mp4").mkdir()
    os.symlink(tmp_path / "v" / "gone.mp4", tmp_path / "v" / "broken.mp4")
    (tmp_path / "outside.mp4").write_bytes(b"")


#: a video value -> what the problem line says after ``p.jsonl:1:video: `` (extra validate arguments first)
CASES = {
    "missing": ([], "v/none.mp4", "video file not found: v/none.mp4"),
    "trailing space": ([], "v/a.mp4 ", "path 'v/a.mp4 ' ends with white space"),
    "leading space": ([], " v/a.mp4", "path ' v/a.mp4' starts with white space"),
    "a folder": ([], "v/dir.mp4", "v/dir.mp4: is a directory"),
    "a broken link": ([], "v/broken.mp4", "v/broken.mp4: is a broken symbolic link"),
    "outside the data root": (["--data-root", "v"], "../outside.mp4", "path '../outside.mp4' resolves to"),
    "a missing file with a space inside": ([], "v/a b.mp4", "video file not found: 'v/a b.mp4'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_validate_refuses_every_video_training_would_stop_on(case, tmp_path, capsys, monkeypatch):
    extra, video, said = CASES[case]
    monkeypatch.chdir(tmp_path)
    _folder(tmp_path)
    good = "a.mp4" if extra else "v/a.mp4"  # under the data root, or the file's folder
    write_jsonl(tmp_path / "p.jsonl", [{**PAIR, "video": video}, {**PAIR, "id": "ok", "video": good}])
    capsys.readouterr()
    assert main(["data", "validate", "p.jsonl", *extra]) == 1
    out = capsys.readouterr()
    problems = out.out.strip().splitlines()
    assert len(problems) == 1 and problems[0].startswith(f"p.jsonl:1:video: {said}"), problems
    under = " under v" if extra else ""
    assert out.err == f"1 valid record(s), 1 problem(s) (videos checked to be files{under}, not decoded)\n", out.err


def test_a_manifest_id_derived_from_the_video_name_says_so_where_it_collides(tmp_path):
    from savi_plugin.data.record import DataError
    from savi_plugin.generators.inputs import load_inputs

    _folder(tmp_path)
    write_jsonl(tmp_path / "m.jsonl", [{"video": "v/a.mp4", "question": f"q{i}?", "answer": "x"} for i in range(2)])
    with pytest.raises(DataError) as error:
        load_inputs(tmp_path / "m.jsonl")
    assert str(error.value) == (f"{tmp_path / 'm.jsonl'}:2:id: duplicate id 'a' (first at {tmp_path / 'm.jsonl'}:1); "
                                f"no 'id' is given, so the id is derived from the video file name (a.mp4): give "
                                f"each record an 'id' (two questions on one video need ids of their own)")
    write_jsonl(tmp_path / "m.jsonl", [{"id": "q", "video": "v/a.mp4", "answer": "x"}] * 2)
    with pytest.raises(DataError, match=r"duplicate id 'q' \(first at .*\); ids must be unique$"):
        load_inputs(tmp_path / "m.jsonl")  # an id the manifest gave: no word of deriving

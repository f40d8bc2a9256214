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


#: two manifest records whose ids clash: (first, second) as the manifest holds them, and how the refusal ends
CLASHES = {
    "one video, no ids": ({"video": "v/a.mp4"}, {"video": "./v/a.mp4"},
                          ("; this record has no 'id', so savi names it after its video file ./v/a.mp4; M:1 has no "
                           "'id', so savi names it after its video file v/a.mp4: two questions on one video need ids "
                           "of their own: give each record an 'id'")),
    "two videos of one name, no ids": ({"video": "v/a.mp4"}, {"video": "w/a.mp4"},
                                       ("; this record has no 'id', so savi names it after its video file w/a.mp4; "
                                        "M:1 has no 'id', so savi names it after its video file v/a.mp4: two videos "
                                        "of one file name need ids of their own: give each record an 'id'")),
    "the first derived": ({"video": "v/a.mp4"}, {"id": "a", "video": "w/a.mp4"},
                          ("; M:1 has no 'id', so savi names it after its video file v/a.mp4: give the record at "
                           "M:1 an 'id' of its own")),
    "the second derived": ({"id": "a", "video": "w/a.mp4"}, {"video": "v/a.mp4"},
                           ("; this record has no 'id', so savi names it after its video file v/a.mp4: give this "
                            "record an 'id' of its own")),
    "both given": ({"id": "a", "video": "v/a.mp4"}, {"id": "a", "video": "w/a.mp4"}, "; ids must be unique"),
}


@pytest.mark.parametrize("case", list(CLASHES))
def test_a_manifest_id_derived_from_the_video_name_says_so_where_it_collides(case, tmp_path, monkeypatch):
    """Pass 25 R3 #27: line 2 giving ``"id": "clip"`` was told "no 'id' is given", and two id-less records on two
    videos named clip.mp4 were told "two questions on one video": the refusal says which record's id was derived,
    from which video, and what to do."""
    from savi_plugin.data.record import DataError
    from savi_plugin.generators.inputs import load_inputs

    monkeypatch.chdir(tmp_path)
    _folder(tmp_path)
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "a.mp4").write_bytes(b"")
    first, second, said = CLASHES[case]
    write_jsonl(tmp_path / "m.jsonl", [{**first, "question": "q1?"}, {**second, "question": "q2?"}])
    with pytest.raises(DataError) as error:
        load_inputs("m.jsonl")
    assert str(error.value) == "m.jsonl:2:id: duplicate id 'a' (first at m.jsonl:1)" + said.replace("M:", "m.jsonl:")

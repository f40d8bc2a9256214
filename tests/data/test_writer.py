"""The appender stops when the file it appends to no longer holds what it wrote (cut shorter in place)."""

from __future__ import annotations

import pytest

from savi_plugin.data.outputs import OutputRemovedError
from savi_plugin.data.writer import JsonlAppender, encode_line, line_digest


@pytest.mark.parametrize("cut", [0, 5, -1])
def test_a_file_cut_shorter_under_the_appender_stops_it_before_its_next_line(cut, tmp_path):
    path = tmp_path / "out.jsonl"
    with JsonlAppender(path) as appender:
        appender.write_object({"id": "a"})
        appender.write_object({"id": "b"})
        size = path.stat().st_size
        with open(path, "r+b") as fh:  # in place: the same inode, as `: > out.jsonl` or an editor that keeps it
            fh.truncate(size + cut if cut < 0 else cut)
        with pytest.raises(OutputRemovedError, match=f"was cut from {size} to"):
            appender.check_intact()
        with pytest.raises(OutputRemovedError):
            appender.write_object({"id": "c"})
    assert b'"c"' not in path.read_bytes()


def test_a_reopened_appender_accepts_the_file_as_it_finds_it_and_digests_match_its_lines(tmp_path):
    path = tmp_path / "out.jsonl"
    with JsonlAppender(path) as appender:
        appender.write_object({"id": "a", "text": "é"})
    path.write_bytes(b"")  # emptied between two jobs: the next one starts from what is there
    with JsonlAppender(path) as appender:
        appender.write_object({"id": "b", "text": "é"})
        appender.check_intact()
    assert path.read_bytes() == encode_line({"id": "b", "text": "é"}) + b"\n"
    assert line_digest(path.read_bytes()[:-1]) == line_digest(encode_line({"id": "b", "text": "é"}))


@pytest.mark.parametrize("name", ["out.jsonl.progress.jsonl", "out.jsonl", "diagnostics.jsonl"])
def test_a_hard_link_made_while_the_appender_runs_stops_it_before_its_next_line(name, tmp_path):
    """Pass 21 C #34, #35: ``ln out.jsonl mybackup.jsonl`` during a generation (or training's diagnostics) and the
    job appended 23 more lines through the user's name, exit 0; it stops before its next line instead."""
    import os

    path = tmp_path / name
    with JsonlAppender(path) as appender:
        appender.write_object({"id": "a"})
        os.link(path, tmp_path / "mine.jsonl")
        with pytest.raises(OutputRemovedError, match=r"another name was linked to this file during the run \(2 links"):
            appender.write_object({"id": "b"})
    assert (tmp_path / "mine.jsonl").read_bytes() == encode_line({"id": "a"}) + b"\n"


def test_an_append_to_a_file_made_immutable_mid_run_names_the_file(tmp_path):
    """Pass 26 R6 #80: a progress file made immutable (``chattr +i``) while its job ran stopped the job with
    ``PermissionError: Operation not permitted`` and no file: the cut that undoes a failed append was refused too, and
    its error replaced the append's, which names the file. The file keeps its complete lines."""
    import subprocess

    from savi_plugin.data.writer import JsonlAppender

    path = tmp_path / "p.jsonl"
    with JsonlAppender(path) as out:
        assert out.write_object({"id": "a", "x": 1})
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not available here (not root, or a file system without it)")
        try:
            with pytest.raises(OSError) as info:
                out.write_object({"id": "b", "x": 2})
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    assert info.value.filename == str(path), info.value
    assert path.read_text().splitlines() == [encode_line({"id": "a", "x": 1}).decode()]

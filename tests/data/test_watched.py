"""A job's input files are what their identity says while the job runs (:mod:`savi_plugin.data.watched`).

Generated variants: every way a file changes at the same path ({``cp`` over it, a write in place of the same size
that keeps its modification time, a rename over it, its removal, a file appearing where none was}) is seen by the
one video loader, which stops the job naming the file; an untouched file, a file no running job watches, and a
watch left (its job ended) are read as before. Real mp4 files, real decoding.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from savi_plugin.data.identity import files_identity
from savi_plugin.data.watched import InputChangedError, WatchedFiles, check_unchanged
from savi_plugin.errors import CONFIGURATION, classify
from savi_plugin.video.decode import VideoDecodeError, read_frames


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two different real clips (bytes) of the same frame count."""
    from savi_plugin.video.synthetic import render_sample, write_mp4

    root = tmp_path_factory.mktemp("watched")
    found = []
    for i in range(2):
        frames = render_sample(np.random.default_rng(i), "moving_direction", size=32, num_frames=8)[0]
        write_mp4(root / f"c{i}.mp4", frames)
        found.append((root / f"c{i}.mp4").read_bytes())
    return found


def _cp_over(path: Path, other: bytes):
    path.write_bytes(other)


def _same_size_same_mtime(path: Path, other: bytes):
    """``dd conv=notrunc`` of one byte, then the modification time set back (``touch -r``): only ``ctime`` tells."""
    st = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(st.st_size // 2)
        byte = fh.read(1)
        fh.seek(st.st_size // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _renamed_over(path: Path, other: bytes):
    new = path.with_name("new.tmp")
    new.write_bytes(other)
    os.replace(new, path)


def _removed(path: Path, other: bytes):
    path.unlink()


def _chmod(path: Path, other: bytes):
    path.chmod(0o600)


CHANGES = {"cp over it": (_cp_over, "was written to"),
           # only the change time tells: not said to be "written to" when it may not have been (pass 15 C #15)
           "one byte in the middle, modification time kept": (_same_size_same_mtime, "was changed (its change time "
                                                                                      "moved: written to with its "
                                                                                      "time set back, or its owner "
                                                                                      "or links changed)"),
           "chmod": (_chmod, "had its permissions changed"),
           "renamed over it": (_renamed_over, "was replaced by another file"), "removed": (_removed, "was removed")}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_video_changed_after_its_identity_was_taken_stops_the_job_naming_it(change, clips, tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(clips[0])
    watch = WatchedFiles("a video the manifest names")
    files_identity([video], watch=watch)
    damage, happened = CHANGES[change]
    with watch:
        assert len(read_frames(video, 4).frames) == 4  # untouched: read as before
        damage(video, clips[1])
        with pytest.raises(InputChangedError) as stopped:
            read_frames(video, 4)
    assert str(stopped.value).startswith(f"{video}: a video the manifest names {happened} while the job runs; its "
                                         f"identity was taken at start")
    assert classify(stopped.value) == CONFIGURATION  # a stop of the job, never one item's failure
    if video.exists():
        read_frames(video, 4)  # the watch ended with the job: read as any file


def test_a_file_appearing_where_the_identity_saw_none_stops_the_job(clips, tmp_path):
    video = tmp_path / "late.mp4"
    watch = WatchedFiles("a video the manifest names")
    files_identity([video], watch=watch)  # missing at the start: counted as missing, watched as absent
    with watch:
        with pytest.raises(VideoDecodeError):  # still missing: the item's own failure, as before
            read_frames(video, 4)
        video.write_bytes(clips[0])
        with pytest.raises(InputChangedError, match="appeared while the job runs"):
            read_frames(video, 4)


def test_nested_watches_each_hold_and_a_file_no_job_watches_is_not_checked(clips, tmp_path):
    video, other = tmp_path / "v.mp4", tmp_path / "o.mp4"
    video.write_bytes(clips[0])
    other.write_bytes(clips[0])
    outer, inner = WatchedFiles("a video of the run"), WatchedFiles("a video of the step")
    files_identity([video], watch=outer)
    with outer:
        _cp_over(video, clips[1])
        files_identity([video], watch=inner)  # a step started after the change: its own identity is the new file
        with inner, pytest.raises(InputChangedError, match="a video of the run was written to"):
            read_frames(video, 4)  # the run's identity is the old file: the run stops
        _cp_over(other, clips[1])
        check_unchanged(other)  # not an input of this job
    assert inner.changed() == [] and outer.changed() == [os.path.abspath(video)]
    check_unchanged(video)  # no job runs


def test_the_cli_ends_a_changed_input_with_one_line_and_status_1_saying_what_was_kept(capsys, monkeypatch):
    """Replay 14 A #7: a video replaced before training's first result said "what the job made ... is kept" while
    the output layer had removed the new output; the line says what the command's outputs hold."""
    from savi_plugin.cli import _report
    from savi_plugin.data import outputs

    outputs.reset_command_outputs()
    assert _report(InputChangedError("v.mp4: a video ... changed"), "generate", False) == 1
    assert capsys.readouterr().err == "error: v.mp4: a video ... changed; nothing was written; re-run the command\n"
    monkeypatch.setitem(outputs._ended, "out", "undone")
    assert _report(InputChangedError("v.mp4: a video ... changed"), "train", False) == 1
    assert capsys.readouterr().err == ("error: v.mp4: a video ... changed; nothing was written (the new output out "
                                       "held no result yet and was removed); re-run the command\n")
    monkeypatch.setitem(outputs._ended, "pairs.jsonl", "kept")
    assert _report(InputChangedError("v.mp4: a video ... changed"), "generate", False) == 1
    assert capsys.readouterr().err.startswith("error: v.mp4: a video ... changed; what the job made from it until now "
                                              "is kept: put the file back as it was and re-run the same command")
    outputs.reset_command_outputs()


def test_a_copy_of_a_folder_moved_whole_is_watched_by_its_own_paths(clips, tmp_path):
    """Keys are the paths the job reads by (absolute): a relative spelling of the same file is the same file."""
    video = tmp_path / "v.mp4"
    video.write_bytes(clips[0])
    watch = WatchedFiles()
    files_identity([os.path.relpath(video)], watch=watch)
    with watch:
        shutil.copyfile(tmp_path / "v.mp4", tmp_path / "copy.mp4")  # reading or copying it changes nothing
        check_unchanged(video)
        _cp_over(video, clips[1])
        with pytest.raises(InputChangedError, match="an input file was written to"):
            check_unchanged(video)


def test_the_error_line_starts_a_line_of_its_own_after_an_interrupted_progress_bar(capsys):
    """Replay 14 A #7: the ``error:`` text was glued onto the progress bar's line."""
    from tqdm import tqdm

    from savi_plugin.cli import _report
    from savi_plugin.data import outputs

    outputs.reset_command_outputs()
    bar = tqdm(total=10, desc="training", file=sys.stderr)
    bar.update(3)
    _report(InputChangedError("v.mp4: changed"), "train", False)
    err = capsys.readouterr().err
    assert "\nerror: v.mp4: changed" in err and err.endswith("\n"), repr(err)
    assert bar not in getattr(tqdm, "_instances", ())  # ended


@pytest.mark.parametrize("change", [_cp_over, _same_size_same_mtime, _renamed_over, _removed, "appears"])
def test_a_watched_folder_s_files_are_checked_for_another_process_while_a_job_holds_the_watch(clips, tmp_path,
                                                                                             change):
    """What lmms-eval reads in its own process (a suite's data root) is checked by :func:`check_active` around its
    run: every way a file of the folder changes, and a file appearing in it, names the file while the watch is
    held; nothing is checked once the job left it."""
    from savi_plugin.data.identity import folder_identity
    from savi_plugin.data.watched import check_active

    root = tmp_path / "root"
    (root / "videos").mkdir(parents=True)
    video = root / "videos" / "v.mp4"
    video.write_bytes(clips[0])
    watch = WatchedFiles("a file of the data root")
    folder_identity(root, watch=watch)
    with watch:
        check_active()  # unchanged
        (root / ".savi.lock").write_text("")  # not part of the folder's content (folder_identity's members)
        check_active()
        if change == "appears":
            changed = root / "videos" / "w.mp4"
            changed.write_bytes(clips[1])
        else:
            changed = video
            change(video, clips[1])
        with pytest.raises(InputChangedError, match=f"^{changed}: a file of the data root "):
            check_active()
    check_active()  # the job left the watch

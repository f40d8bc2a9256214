"""Frame rules: MVBench's segment midpoints equal the reference ``get_index`` on a recorded table, and decord
and PyAV decode the same bounded frames of a real video; bad bounds are one-line errors naming file and bound.

``tests/fixtures/mvbench_get_index.json`` holds the reference's own outputs: ``get_index`` of
OpenGVLab/Ask-Anything ``video_chat2/mvbench.ipynb`` (the same method as pritamqu/RRPO
``eval/mvbench/mvbench.py``), run unchanged from a scratch copy outside this repository on every case of the
table (its ``produced_by`` field says how). Nothing in this repository computed those numbers.
"""

import json
import math
import re

import numpy as np
import pytest

from savi_plugin.video import VideoDecodeError, read_frames
from savi_plugin.video.sampling import (
    BoundError,
    bound_range,
    check_bound,
    interval_indices,
    midpoint_indices,
    select_frames,
    uniform_indices,
)
from savi_plugin.video.synthetic import write_mp4
from tests.builders import REPO_ROOT

TABLE = json.loads((REPO_ROOT / "tests/fixtures/mvbench_get_index.json").read_text())
FPS = 25
LENGTH = 40  # frames


def _readable(case: dict) -> bool:
    """The reference's indices can be read: inside first_idx..max_frame (in any order: decord and the frame-folder
    reader open each index)."""
    return all(case["first_idx"] <= i <= case["max_frame"] for i in case["indices"])


def test_midpoints_equal_the_reference_get_index_on_every_case():
    cases = TABLE["cases"]
    assert len(cases) == 1080 and {c["fps"] for c in cases} >= {3, 25, 29.97}
    equal = refused = 0
    for case in cases:
        args = (case["num_segments"], case["fps"], case["max_frame"], case["bound"], case["first_idx"])
        if _readable(case):
            assert midpoint_indices(*args).tolist() == case["indices"], case
            equal += 1
        else:  # the reference returns frames it cannot read (a bound past the end, no frames): we refuse
            with pytest.raises(BoundError, match="outside the video|has no frames"):
                midpoint_indices(*args)
            refused += 1
    assert (equal, refused) == (609, 471)
    # 12 of them start one frame past the end: the reference reads the last frames backwards, and so do we
    backwards = [c for c in cases if _readable(c) and c["indices"] != sorted(c["indices"])]
    assert len(backwards) == 12 and all(c["indices"][0] == c["max_frame"] for c in backwards)
    # the table covers segments shorter than a frame (repeats) and Python's half-to-even round
    assert any(len(set(c["indices"])) < c["num_segments"] and _readable(c) for c in cases)
    assert bound_range((0.1, 1.0), 25, 299) == (2, 25)  # 0.1 * 25 == 2.5 rounds to 2 (half to even)
    assert any(c["bound"] == [0.1, 100.0] and c["fps"] == 25 for c in cases)


def test_midpoint_examples_by_hand():
    # 16 segments over frames 0..299 (a 10 s clip at 30 fps): seg 18.6875, first frame int(9.34375) = 9
    assert midpoint_indices(16, 30.0, 299)[:3].tolist() == [9, 28, 46]
    # a frame folder (first_idx 1, max_frame = number of files, 3 fps) with the bound 2..4 s: frames 6..12,
    # seg 1.5; the last offset np.round(4.5) is 4 (half to even), so int(6 + 0.75 + 4) = 10
    assert midpoint_indices(4, 3, 30, (2, 4), first_idx=1).tolist() == [6, 8, 9, 10]
    # a bound that ends after the video is clipped to the last frame, as in the reference
    assert bound_range((1.0, 99.0), 25, 39) == (25, 39)
    # a zero-length bound selects the frame at that time, repeated (get_index's seg_size 0)
    assert midpoint_indices(4, 25, 99, (2.0, 2.0)).tolist() == [50, 50, 50, 50]


@pytest.mark.parametrize("bound, message", [
    ((3.0, 2.0), "end is before start"),
    ((-1.0, 2.0), "start is negative"), ((math.nan, 2.0), "start is not finite"),
    ((0.0, math.inf), "end is not finite"), (("1", 2.0), "start is not a number"),
    ((True, 2.0), "start is not a number"), ((1.0,), "expected \\(start, end\\)"),
])
def test_malformed_bounds_are_refused(bound, message):
    with pytest.raises(BoundError, match=message):
        check_bound(bound)


def test_uniform_within_a_bound():
    assert select_frames("uniform", 4, fps=25, max_frame=39).tolist() == uniform_indices(40, 4).tolist()
    assert select_frames("uniform", 4, fps=25, max_frame=39, bound=(0.4, 1.0)).tolist() == [10, 15, 20, 25]
    assert select_frames("uniform", 32, fps=25, max_frame=39, bound=(0.4, 0.6)).tolist() == list(range(10, 16))
    with pytest.raises(BoundError, match=r"bound \(2.0, 3.0\) s is outside the video \(frames 0..39 at 25 fps"):
        select_frames("uniform", 4, fps=25, max_frame=39, bound=(2.0, 3.0))


@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory):
    """40 frames at 25 fps; frame k is filled with grey level 6 * k, so a decoded frame names its index."""
    path = tmp_path_factory.mktemp("sampling") / "numbered.mp4"
    frames = np.stack([np.full((32, 48, 3), 6 * k, np.uint8) for k in range(LENGTH)])
    write_mp4(path, frames, fps=FPS)
    return path


def _frame_numbers(frames: np.ndarray) -> list[int]:
    return [round(float(f.mean()) / 6) for f in frames]


@pytest.mark.parametrize("bound", [None, (0.3, 1.2), (1.0, 5.0)])
def test_decord_and_pyav_sample_the_same_midpoints(numbered_video, bound):
    expected = midpoint_indices(16, FPS, LENGTH - 1, bound).tolist()
    videos = [read_frames(numbered_video, 16, sampling="midpoints", bound=bound, backend=b) for b in ("decord", "pyav")]
    for video in videos:
        assert video.indices.tolist() == expected
        assert _frame_numbers(video.frames) == expected  # the decoded pictures are those frames
        assert video.fps == FPS and video.total_frames == LENGTH
    np.testing.assert_allclose(videos[0].timestamps, videos[1].timestamps, atol=1e-3)
    assert np.abs(videos[0].frames.astype(int) - videos[1].frames.astype(int)).max() <= 2
    if bound is not None:
        start, end = bound
        assert all(round(start * FPS) <= i <= min(round(end * FPS), LENGTH - 1) for i in expected)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_uniform_with_a_bound_decodes_inside_it(numbered_video, backend):
    video = read_frames(numbered_video, 4, bound=(0.4, 1.0), backend=backend)
    assert video.indices.tolist() == _frame_numbers(video.frames) == [10, 15, 20, 25]
    assert read_frames(numbered_video, 4, backend=backend).indices.tolist() == [0, 13, 26, 39]  # unchanged default


@pytest.mark.parametrize("backend", ["decord", "pyav"])
@pytest.mark.parametrize("bound, message", [
    ((2.0, 3.0), r"bound \(2.0, 3.0\) s is outside the video \(frames 0..39 at 25 fps, 1.600 s\)"),
    ((1.0, 0.5), r"bound \(1.0, 0.5\) s: end is before start"),
    ((math.nan, 1.0), r"bound \(nan, 1.0\) s: start is not finite"),
    ((-0.5, 1.0), r"bound \(-0.5, 1.0\) s: start is negative"),
])
def test_bad_bound_is_one_line_naming_file_and_bound(numbered_video, backend, bound, message):
    for sampling in ("midpoints", "uniform"):
        with pytest.raises(VideoDecodeError) as info:
            read_frames(numbered_video, 8, sampling=sampling, bound=bound, backend=backend)
        text = str(info.value)
        assert "\n" not in text and text.startswith(f"{numbered_video}: cannot decode video: ")
        assert info.value.final  # the other decoder is not tried: it would place the bound the same way
        assert re.search(message, text), text


def test_rule_arguments_are_checked(numbered_video):
    with pytest.raises(ValueError, match="unknown frame sampling 'middle'"):
        read_frames(numbered_video, 8, sampling="middle")
    with pytest.raises(ValueError, match="'midpoints' takes a number of frames, not fps"):
        read_frames(numbered_video, 8, sampling="midpoints", fps=2.0)


RRPO_TABLE = json.loads((REPO_ROOT / "tests/fixtures/rrpo_train_frame_idx.json").read_text())


def test_interval_rule_equals_the_official_rrpo_training_frames_on_every_case():
    """``interval`` against pritamqu/RRPO ``train_llavavideo.py:1294-1296`` run unchanged outside this repository
    (the fixture's ``produced_by``), including cases where float and whole-number arithmetic disagree."""
    assert "train_llavavideo.py" in RRPO_TABLE["produced_by"]
    for case in RRPO_TABLE["cases"]:
        total, n = case["total_frames"], case["num_frames"]
        assert interval_indices(total, n).tolist() == case["indices"], case
        if total >= n:
            assert select_frames("interval", n, fps=25, max_frame=total - 1).tolist() == case["indices"], case
    first = RRPO_TABLE["cases"][0]
    assert (first["total_frames"], first["num_frames"]) == (300, 16)
    assert first["indices"][:3] == [0, 18, 37] and first["indices"][-1] == 281
    # the other rule, for the record: linspace with the last frame
    assert uniform_indices(300, 16).tolist()[:2] == [0, 20] and uniform_indices(300, 16)[-1] == 299


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_interval_rule_decodes_those_frames(numbered_video, backend):
    video = read_frames(numbered_video, 16, sampling="interval", backend=backend)
    expected = [int(LENGTH / 16.0 * i) for i in range(16)]
    assert video.indices.tolist() == _frame_numbers(video.frames) == expected
    with pytest.raises(ValueError, match="'interval' takes a number of frames, not fps"):
        read_frames(numbered_video, 8, sampling="interval", fps=2.0, backend=backend)

"""Video decoding: decord and PyAV agree; bad files give errors that name the file."""

import numpy as np
import pytest

from savi_plugin.video import VideoDecodeError, read_frames, uniform_indices
from savi_plugin.video.decode import fps_indices
from tests.builders import VIDEO_BACKENDS, needs_decord


def test_uniform_indices_cover_first_and_last():
    assert uniform_indices(100, 5).tolist() == [0, 25, 50, 74, 99]
    assert uniform_indices(3, 32).tolist() == [0, 1, 2]  # short clips are not stretched


def test_fps_indices_respect_cap():
    assert fps_indices(80, 8.0, 1.0, None).tolist() == [0, 8, 16, 24, 32, 40, 48, 56, 64, 72]
    assert len(fps_indices(800, 8.0, 4.0, 32)) == 32


@needs_decord
@pytest.mark.parametrize("num_frames", [4, 8, 16])
def test_decord_and_pyav_decode_same_frames(synthetic_samples, num_frames):
    path = synthetic_samples[0].video
    a = read_frames(path, num_frames, backend="decord")
    b = read_frames(path, num_frames, backend="pyav")
    assert a.frames.shape == b.frames.shape == (num_frames, 64, 64, 3)
    assert a.frames.dtype == np.uint8
    assert a.indices.tolist() == b.indices.tolist()
    np.testing.assert_allclose(a.timestamps, b.timestamps, atol=1e-3)
    assert np.abs(a.frames.astype(int) - b.frames.astype(int)).mean() < 2.0
    assert a.total_frames == b.total_frames == 16


def test_fps_sampling(synthetic_samples):
    video = read_frames(synthetic_samples[0].video, fps=4.0, max_frames=100, backend="pyav")
    assert video.indices.tolist() == [0, 2, 4, 6, 8, 10, 12, 14]
    np.testing.assert_allclose(np.diff(video.timestamps), 0.25, atol=1e-6)


@pytest.mark.parametrize("backend", VIDEO_BACKENDS)
def test_bad_files_name_the_file(tmp_path, synthetic_samples, backend):
    missing = tmp_path / "missing.mp4"
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    good = open(synthetic_samples[0].video, "rb").read()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good[: len(good) // 3])
    for path, reason in [(missing, "not found"), (empty, "empty"), (text, ""), (truncated, "")]:
        with pytest.raises(VideoDecodeError) as info:
            read_frames(path, 8, backend=backend)
        assert str(path) in str(info.value)
        assert reason in str(info.value)

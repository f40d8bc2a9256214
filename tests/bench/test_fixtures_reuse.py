"""Bench work folders reuse what the bench wrote there, and only that."""

from __future__ import annotations


def test_a_clip_replaced_in_the_work_folder_is_written_again_not_timed(tmp_path):
    """Pass 17 A #33: a 16-frame clip copied over the cached 20-frame one was timed and labelled as the bench's."""
    from savi_plugin.bench.fixtures import make_video

    path, _ = make_video(tmp_path, num_frames=20, size=32)
    first = path.read_bytes()
    assert make_video(tmp_path, num_frames=20, size=32)[0].read_bytes() == first  # reused
    path.write_bytes(first[: len(first) // 2])  # someone else's bytes at its name
    assert make_video(tmp_path, num_frames=20, size=32)[0].read_bytes() == first  # written again

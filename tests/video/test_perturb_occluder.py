"""RRPO's default perturbation reproduces ``perturb.png``: a persistent box over the subject on every frame,
then a temporal shuffle; every frame is kept. Checked on real synthetic mp4 files with known object positions."""

from __future__ import annotations

import numpy as np
import pytest

from savi_plugin.video.decode import read_frames
from savi_plugin.video.perturb import (DEFAULT_PERTURBATIONS, OCCLUDER_AREA, OCCLUDER_FILL, apply_perturbations,
                                       parse_spec)
from savi_plugin.video.synthetic import COLORS, draw_shape, write_mp4

SIZE, T = 64, 12


def subject_video(tmp_path, cx: float, cy: float, r: float, name: str, jitter: bool = True):
    """An mp4 with a red square at a known place on a dark background (jittering by a pixel per frame, or
    still), and the subject's pixel mask of every frame."""
    # the background level tells the frames apart (20 + t), uniformly, so it does not attract the box
    frames = (20 + np.arange(T, dtype=np.uint8))[:, None, None, None] * np.ones((1, SIZE, SIZE, 3), np.uint8)
    masks = np.zeros((T, SIZE, SIZE), bool)
    for t in range(T):
        draw_shape(frames[t], "square", COLORS["red"], cx + ((t % 3) - 1 if jitter else 0), cy, r)
        masks[t] = (frames[t] == COLORS["red"]).all(-1)
    path = tmp_path / f"{name}.mp4"
    write_mp4(path, frames, fps=4)
    return path, masks


@pytest.mark.parametrize("cx, cy, jitter", [(32, 32, True), (18, 44, True), (46, 20, True), (44, 42, False)])
def test_default_occluder_hides_the_subject_on_every_frame_and_shuffles(tmp_path, cx, cy, jitter):
    path, masks = subject_video(tmp_path, cx, cy, r=7, name=f"s{cx}_{cy}", jitter=jitter)
    video = read_frames(path, num_frames=T).frames
    assert video.shape == (T, SIZE, SIZE, 3)
    out, applied = apply_perturbations(video, None, np.random.default_rng(3))
    assert [a["name"] for a in applied] == [s["name"] for s in DEFAULT_PERTURBATIONS] == ["occlude", "shuffle"]
    occlude, shuffle = applied
    y0, x0, y1, x1 = occlude["box"]

    # every frame kept, in a different order
    order = shuffle["order"]
    assert out.shape == video.shape and occlude["frames"] == list(range(T))
    assert sorted(order) == list(range(T)) and order != list(range(T))
    outside = np.ones((SIZE, SIZE), bool)
    outside[y0:y1, x0:x1] = False
    for i, src in enumerate(order):
        assert np.array_equal(out[i][outside], video[src][outside])

    # the same region hidden in every frame, with the figure's grey
    assert (out[:, y0:y1, x0:x1] == OCCLUDER_FILL).all()

    # the figure's box: a square of about a third of the frame
    assert abs((y1 - y0) - (x1 - x0)) <= 1
    assert abs((y1 - y0) * (x1 - x0) / SIZE**2 - OCCLUDER_AREA) < 0.02

    # the subject is covered in every frame (its pixels from the drawing, not from the decoded file)
    for t in range(T):
        ys, xs = np.nonzero(masks[t])
        assert ys.min() >= y0 and ys.max() < y1 and xs.min() >= x0 and xs.max() < x1, (t, occlude["box"])


def test_occluder_parameters_by_name(tmp_path):
    path, _ = subject_video(tmp_path, 20, 20, r=5, name="p")
    video = read_frames(path, num_frames=T).frames
    out, applied = apply_perturbations(video, parse_spec("occlude:1;area=0.25;position=center;fill=0"),
                                       np.random.default_rng(0))
    y0, x0, y1, x1 = applied[0]["box"]
    assert (y0, x0, y1, x1) == (16, 16, 48, 48) and (out[:, 16:48, 16:48] == 0).all()
    with pytest.raises(ValueError, match="position must be one of"):
        apply_perturbations(video, [{"name": "occlude", "position": "left"}], np.random.default_rng(0))

"""RRPO's default perturbation reproduces ``perturb.png``: a persistent box over the subject on every frame, sized
relative to the subject so that parts of it stay visible, then a temporal shuffle; every frame is kept. The fixed
31%-of-the-frame box (``size=frame``) hides the subject completely. Checked on real synthetic mp4 files with known
object positions."""

from __future__ import annotations

import numpy as np
import pytest

from savi_plugin.video.decode import read_frames
from savi_plugin.video.perturb import (
    DEFAULT_PERTURBATIONS,
    OCCLUDER_AREA,
    OCCLUDER_FILL,
    OCCLUDER_SUBJECT_AREA,
    apply_perturbations,
    parse_spec,
    subject_extent,
)
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


FRAME_SIZED = [{"name": "occlude", "size": "frame"}, {"name": "shuffle"}]


@pytest.mark.parametrize("cx, cy, jitter", [(32, 32, True), (18, 44, True), (46, 20, True), (44, 42, False)])
def test_frame_sized_occluder_hides_the_subject_on_every_frame_and_shuffles(tmp_path, cx, cy, jitter):
    path, masks = subject_video(tmp_path, cx, cy, r=7, name=f"s{cx}_{cy}", jitter=jitter)
    video = read_frames(path, num_frames=T).frames
    assert video.shape == (T, SIZE, SIZE, 3)
    out, applied = apply_perturbations(video, FRAME_SIZED, np.random.default_rng(3))
    assert [a["name"] for a in applied] == ["occlude", "shuffle"] and applied[0]["size"] == "frame"
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


@pytest.mark.parametrize("cx, cy, jitter", [(32, 32, True), (18, 44, True), (44, 42, False)])
def test_default_occluder_is_sized_to_the_subject_and_leaves_part_of_it_visible(tmp_path, cx, cy, jitter):
    path, masks = subject_video(tmp_path, cx, cy, r=9, name=f"v{cx}_{cy}", jitter=jitter)
    video = read_frames(path, num_frames=T).frames
    out, applied = apply_perturbations(video, None, np.random.default_rng(3))
    assert [a["name"] for a in applied] == [s["name"] for s in DEFAULT_PERTURBATIONS] == ["occlude", "shuffle"]
    occlude, shuffle = applied
    y0, x0, y1, x1 = occlude["box"]
    assert occlude["size"] == "subject" and occlude["subject"] == subject_extent(video)
    ey0, ex0, ey1, ex1 = occlude["subject"]
    # the extent is where the square is (its 18-20 px side, give or take the saliency's tails)
    ys, xs = np.nonzero(masks.any(0))
    assert abs(ey0 - ys.min()) <= 3 and abs(ey1 - 1 - ys.max()) <= 3 and abs(ex0 - xs.min()) <= 3
    # a square of 0.76 of the extent's area, over the subject
    assert abs((y1 - y0) - (x1 - x0)) <= 1
    assert abs((y1 - y0) * (x1 - x0) / ((ey1 - ey0) * (ex1 - ex0)) - OCCLUDER_SUBJECT_AREA) < 0.1
    assert (out[:, y0:y1, x0:x1] == OCCLUDER_FILL).all()
    # on every frame most of the subject is hidden and part of it still shows, as in the figure
    for i, src in enumerate(shuffle["order"]):
        hidden = masks[src][y0:y1, x0:x1].sum() / masks[src].sum()
        assert 0.5 <= hidden < 1.0, (src, hidden, occlude)
        visible = masks[src].copy()
        visible[y0:y1, x0:x1] = False
        assert (out[i][visible] == video[src][visible]).all()


def test_occluder_parameters_by_name(tmp_path):
    path, _ = subject_video(tmp_path, 20, 20, r=5, name="p")
    video = read_frames(path, num_frames=T).frames
    out, applied = apply_perturbations(video, parse_spec("occlude:1;size=frame;area=0.25;position=center;fill=0"),
                                       np.random.default_rng(0))
    y0, x0, y1, x1 = applied[0]["box"]
    assert (y0, x0, y1, x1) == (16, 16, 48, 48) and (out[:, 16:48, 16:48] == 0).all()
    with pytest.raises(ValueError, match="size must be one of subject, frame"):
        apply_perturbations(video, [{"name": "occlude", "size": "huge"}], np.random.default_rng(0))
    with pytest.raises(ValueError, match="position must be one of"):
        apply_perturbations(video, [{"name": "occlude", "position": "left"}], np.random.default_rng(0))

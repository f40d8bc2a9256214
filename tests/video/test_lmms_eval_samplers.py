"""The ``lmms_<family>`` frame rules take the frames lmms-eval 0.7.3's own model wrappers take: checked by running
the wrappers' sampler code (``llava_onevision.py`` ``load_video``, ``llava_vid.py`` ``load_video`` read out of the
file, ``internvl2.py`` ``get_index``) on real video files whose frames carry their own index."""

import ast
from pathlib import Path

import lmms_eval
import numpy as np
import pytest

from savi_plugin.video.decode import read_frames
from savi_plugin.video.sampling import LMMS_EVAL_RULES, select_frames
from savi_plugin.video.synthetic import write_mp4

FPS = 8
STEP = 4  # frame i is grey level STEP * i


def _indexed_video(path: Path, n: int) -> Path:
    frames = np.stack([np.full((32, 32, 3), STEP * i, np.uint8) for i in range(n)])
    write_mp4(path, frames, fps=FPS)
    return path


def _indices(frames) -> list[int]:
    return [round(float(np.asarray(f).mean()) / STEP) for f in frames]


def _llava_vid_load_video():
    """``LlavaVid.load_video`` from lmms-eval's file (the module imports the LLaVA-NeXT package, not installed)."""
    path = Path(lmms_eval.__file__).parent / "models" / "simple" / "llava_vid.py"
    tree = ast.parse(path.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "LlavaVid")
    fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "load_video")
    from decord import VideoReader, cpu

    namespace = {"np": np, "VideoReader": VideoReader, "cpu": cpu}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), str(path), "exec"), namespace)  # noqa: S102 - lmms-eval's own code
    return namespace["load_video"]


def _reference(rule: str, path: Path, n: int, k: int) -> list[int]:
    if rule == "lmms_llava_onevision":
        from lmms_eval.models.simple.llava_onevision import Llava_OneVision

        return _indices(Llava_OneVision.load_video(None, str(path), k))
    if rule == "lmms_llava_vid":
        frames, _, _ = _llava_vid_load_video()(None, str(path), k, 1)  # the wrapper's video_fps=1 default
        return _indices(frames)
    if rule == "lmms_internvl2":
        from lmms_eval.models.simple.internvl2 import get_index

        return get_index(None, float(FPS), n - 1, first_idx=0, num_segments=k).tolist()
    # qwen2_vl.py generate_until (line ~354), inline there: unique(linspace(0, T - 1, max_num_frames, dtype=int))
    return np.unique(np.linspace(0, n - 1, k, dtype=int, endpoint=True)).tolist()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("indexed")
    return {n: _indexed_video(tmp / f"v{n}.mp4", n) for n in (5, 17, 64)}


@pytest.mark.parametrize("rule", LMMS_EVAL_RULES)
def test_rules_equal_lmms_evals_samplers(videos, rule):
    for n, path in videos.items():
        assert _indices(read_frames(path, n, sampling="uniform").frames) == list(range(n))  # the index coding holds
        for k in (4, 16, 32):
            ours = select_frames(rule, k, fps=FPS, max_frame=n - 1).tolist()
            assert ours == _reference(rule, path, n, k), (rule, n, k)
            assert _indices(read_frames(path, k, sampling=rule).frames) == ours, (rule, n, k)


def test_short_clips_give_fewer_frames_and_truncation_differs_from_rounding():
    # llava_vid: a 5 s clip at 8 fps gives 5 frames (one a second) for k=16; qwen2_vl drops repeats
    assert select_frames("lmms_llava_vid", 16, fps=8, max_frame=39).tolist() == [0, 8, 16, 24, 32]
    assert len(select_frames("lmms_qwen2_vl", 16, fps=8, max_frame=4)) == 5
    assert len(select_frames("lmms_llava_onevision", 16, fps=8, max_frame=4)) == 16  # repeats, as the reference
    ours_rounded = select_frames("uniform", 32, fps=8, max_frame=99)
    truncated = select_frames("lmms_llava_onevision", 32, fps=8, max_frame=99)
    assert (ours_rounded != truncated).sum() > 5

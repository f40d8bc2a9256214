"""Generation with the video prefix prefilled once: equal greedy outputs, one vision encoding per video."""

from __future__ import annotations


import numpy as np
import pytest

QUESTIONS = ["What is in the video?", "Describe the motion of the object, step by step, in detail.", "Colour?"]


def _frames(seed: int, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (4, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_vl", "llava_video", "qwen2_5_vl", "qwen3_vl",
                                    "internvl"])
def test_reuse_gives_the_same_greedy_tokens_and_encodes_each_video_once(family, request):
    from savi_plugin.models import load_backend
    from savi_plugin.models.prefix_cache import reuse_video_prefixes

    lm = load_backend(request.getfixturevalue(f"tiny_{family}"), num_frames=4)
    a, b = _frames(1), _frames(2)
    videos = [a, b, a, a, b, b]  # two videos, interleaved, three questions each
    questions = [QUESTIONS[i % 3] for i in range(6)]
    lm.reuse_prefixes = False
    plain = lm.generate(videos, questions, max_new_tokens=12)
    calls = []
    tower = lm.decoder().vision_tower if hasattr(lm.decoder(), "vision_tower") else lm.decoder().visual
    handle = tower.register_forward_hook(lambda *args: calls.append(1))
    lm.reuse_prefixes = True
    try:
        with reuse_video_prefixes(lm) as store:
            first = lm.generate(videos, questions, max_new_tokens=12)
            again = lm.generate([b, a], ["Another question about it?", QUESTIONS[0]], max_new_tokens=12)
    finally:
        handle.remove()
    assert first == plain
    assert any(text for text in plain)  # the comparison is between real outputs
    assert again == [lm.generate([b], ["Another question about it?"], max_new_tokens=12)[0], plain[0]]
    assert store.prefills == 2 and store.reused == 6  # 8 prompts, 2 videos: each prefilled once
    assert len(calls) == 2  # the vision tower ran once per video across both calls
    # without an open block a call still shares the prefix among its own rows, with the same outputs
    lm.prefix_store = None
    reused = lm.generate([a, a], QUESTIONS[:2], max_new_tokens=12)
    lm.reuse_prefixes = False
    assert reused == lm.generate([a, a], QUESTIONS[:2], max_new_tokens=12)

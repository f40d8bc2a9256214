"""A system turn and a pre-filled reply (MVBench's official ``system_llm=True`` and ``answer_prompt="Best option:("``,
OpenGVLab/Ask-Anything ``video_chat2/mvbench.ipynb``) through ``VideoLM.generate``: the prefix-cache and plain paths
give the tokens ``model.generate`` gives on the prompt written by hand, and the first step's logits are those of a
forward over the pre-filled prompt."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from savi_plugin.models.backends.tokens import answer_text

FAMILIES = ["llava_onevision", "qwen2_vl", "llava_video", "qwen2_5_vl", "qwen3_vl", "internvl"]
SYSTEM = "Carefully watch the video. Based on your observations, select the best option."
PREFILL = "Best option:("
QUESTIONS = ["Question: What color is the shape?\nOptions:\n(A) red\n(B) blue\nOnly give the best option.",
             "Question: Where does it move?\nOptions:\n(A) left\n(B) right\n(C) up\nOnly give the best option."]


def _frames(seed: int, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (4, size, size, 3), dtype=np.uint8)


def _by_hand(lm, question: str) -> str:
    """The pre-filled prompt written from the processor's own chat template, without ``VideoLM.prompt``."""
    turns = [{"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
             {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
    return lm.processor.apply_chat_template(turns, add_generation_prompt=True, tokenize=False) + PREFILL


def _until_eos(ids: torch.Tensor, eos: int) -> list[int]:
    ids = ids.tolist()
    return ids[:ids.index(eos) + 1] if eos in ids else ids


@pytest.fixture(params=FAMILIES)
def lm(request):
    from savi_plugin.models import load_backend

    backend = load_backend(request.getfixturevalue(f"tiny_{request.param}"), num_frames=4)
    return backend


def test_the_system_turn_and_prefill_are_where_the_template_puts_them(lm):
    prompt = lm.prompt(QUESTIONS[0], system=SYSTEM, prefill=PREFILL)
    assert prompt == _by_hand(lm, QUESTIONS[0])
    assert prompt.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n")
    assert prompt.endswith(f"{QUESTIONS[0]}<|im_end|>\n<|im_start|>assistant\n{PREFILL}")
    assert "You are a helpful assistant." not in prompt  # the LLaVA-NeXT template's default turn is replaced
    # without them the prompt is what every other caller (generators, training, demo) gets
    assert lm.prompt(QUESTIONS[0]) == lm.processor.apply_chat_template(
        lm.messages(QUESTIONS[0]), add_generation_prompt=True, tokenize=False)
    assert lm.prompt(QUESTIONS[0], system="", prefill="") == lm.prompt(QUESTIONS[0])


def test_prefix_cache_and_plain_paths_equal_generate_on_the_prompt_by_hand(lm):
    from savi_plugin.models import prefix_cache

    a, b = _frames(1), _frames(2)
    videos, questions = [a, b, a], [QUESTIONS[0], QUESTIONS[1], QUESTIONS[1]]
    eos = lm.model.generation_config.eos_token_id
    kwargs = {"max_new_tokens": 10, "do_sample": False, "temperature": None, "top_p": None, "top_k": None,
              "pad_token_id": lm.pad_token_id}
    with prefix_cache.reuse_video_prefixes(lm) as store:
        reused_ids = prefix_cache.generate(lm, videos, questions, kwargs, 10, system=SYSTEM, prefill=PREFILL)
        reused = lm.generate(videos, questions, max_new_tokens=10, system=SYSTEM, prefill=PREFILL)
    assert reused_ids is not None and store.prefills == 2  # the scheme applied: one prefill per video
    lm.reuse_prefixes = False
    plain = lm.generate(videos, questions, max_new_tokens=10, system=SYSTEM, prefill=PREFILL)
    without = lm.generate(videos, questions, max_new_tokens=10)
    by_hand = []
    for frames, question in zip(videos, questions):
        inputs = lm._to_device(dict(lm._process([_by_hand(lm, question)], [frames])))
        out = lm.model.generate(**inputs, **kwargs)
        by_hand.append(out[0, inputs["input_ids"].shape[1]:])
    for row, reference in zip(reused_ids, by_hand):
        assert _until_eos(row, eos) == _until_eos(reference, eos)  # token for token
    texts = [answer_text(lm.tokenizer.decode(t, skip_special_tokens=True)) for t in by_hand]
    assert reused == plain == texts  # the continuation alone, without the pre-fill
    assert any(texts) and not any(t.startswith(PREFILL) for t in texts)
    assert plain != without  # the system turn and pre-fill reached the model


def _first_step_logits(lm, frames, question, **framing) -> torch.Tensor:
    """The logits ``generate`` chose its first token from (the LM head's first call, last position)."""
    seen = []
    handle = lm.lm_head().register_forward_hook(lambda _m, _i, out: seen.append(out[:, -1].detach().clone()))
    try:
        text = lm.generate([frames], [question], max_new_tokens=1, **framing)
    finally:
        handle.remove()
    assert text is not None and seen
    return seen[0][0].float()


@pytest.mark.parametrize("reuse", [True, False])
def test_the_first_token_is_drawn_from_the_prefilled_prompt(lm, reuse):
    frames, question = _frames(3), QUESTIONS[0]
    lm.reuse_prefixes = reuse
    got = _first_step_logits(lm, frames, question, system=SYSTEM, prefill=PREFILL)
    with torch.no_grad():
        inputs = lm._to_device(dict(lm._process([_by_hand(lm, question)], [frames])))
        expected = lm.model(**inputs).logits[0, -1].float()
        bare = lm._to_device(dict(lm._process([lm.prompt(question, system=SYSTEM)], [frames])))
        unfilled = lm.model(**bare).logits[0, -1].float()
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    # the pre-fill moved the distribution: the same prompt without it gives other logits
    assert (expected - unfilled).abs().max() > 1e-2
    assert int(got.argmax()) == int(expected.argmax())

"""The ``llava_video`` backend on a converted LLaVA-NeXT checkpoint: detection, prompts, scores, and LLaVA-NeXT's logits.

The reference logits are the ones recorded with LLaVA-NeXT's own code (see ``tests/models/llava_next/test_proof.py``);
here they are reproduced through the backend from the raw 240x320 frames, so its frame resize is part of the check.
"""

from __future__ import annotations


import pytest
import torch

from savi_plugin.models import detect_backend, load_backend
from savi_plugin.models.llava_next.convert import convert_llava_next
from savi_plugin.training.batch import labelled_inputs
from tests.builders import LLAVA_NEXT_FIXTURE, full_logits_logprobs, llava_next_frames, llava_next_reference

FIXTURE = LLAVA_NEXT_FIXTURE


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    dst = tmp_path_factory.mktemp("llava_video")
    convert_llava_next(str(FIXTURE / "source"), str(dst), vision_config=str(FIXTURE / "source" / "siglip_vision_config.json"))
    return dst


@pytest.fixture(scope="module")
def lm(converted):
    return load_backend(converted, num_frames=2)


@pytest.fixture(scope="module")
def reference():
    return llava_next_reference()


def test_detected_and_loaded_as_llava_video(converted, lm):
    from savi_plugin.models.llava_next.modeling import LlavaVideoForConditionalGeneration
    from savi_plugin.models.llava_next.processing import LlavaVideoProcessor

    assert detect_backend(converted) == "llava_video" == lm.family
    assert isinstance(lm.model, LlavaVideoForConditionalGeneration)
    assert isinstance(lm.processor, LlavaVideoProcessor)
    assert lm.end_of_turn == "<|im_end|>"


def test_backend_reproduces_llava_next_logits_from_raw_frames(lm, reference):
    ref, meta = reference
    assert lm.prompt(meta["question"]) == meta["prompt"].replace("<image>", "<video>")
    inputs = lm.encode([llava_next_frames()], [meta["question"]])
    assert int((inputs["input_ids"] == lm.model.config.video_token_index).sum()) == 420
    with torch.no_grad():
        logits = lm.model(**inputs).logits[0]
    ref_logits = ref["grid.logits"]
    torch.testing.assert_close(logits[:, : ref_logits.shape[1]], ref_logits, rtol=0, atol=1e-4)


def test_response_logprobs_equal_a_manual_forward(lm, response_logprobs):
    videos = [llava_next_frames(1), llava_next_frames(2)]
    questions, responses = ["What is the colour of the moving square?", "Describe the video."], ["red", "The square is red"]
    logps = response_logprobs(lm, videos, questions, responses)
    n_tokens = [len(lm.tokenizer(r + "<|im_end|>", add_special_tokens=False)["input_ids"]) for r in responses]
    assert [len(x) for x in logps] == n_tokens
    manual = torch.stack([x.sum() for x in full_logits_logprobs(lm, videos, questions, responses)])
    torch.testing.assert_close(torch.stack([x.sum() for x in logps]), manual, rtol=0, atol=1e-4)
    alone = response_logprobs(lm, videos[1:], questions[1:], responses[1:])[0]
    torch.testing.assert_close(logps[1], alone, rtol=0, atol=1e-5)  # batching (padding) does not change scores


def test_generate_returns_text(lm):
    answers = lm.generate([llava_next_frames()], ["Describe the video."], max_new_tokens=4)
    assert len(answers) == 1 and isinstance(answers[0], str)


def test_lora_adapter_trains_and_reloads_through_the_backend(converted, tmp_path, response_logprobs):
    """peft LoRA on the language model: gradients flow through the grid-newline video path; the saved adapter reloads."""
    from peft import LoraConfig, get_peft_model

    fresh = load_backend(converted, num_frames=2)
    peft_model = get_peft_model(fresh.model, LoraConfig(r=4, lora_alpha=8, target_modules=r".*language_model.*\.(q_proj|v_proj)"))
    encoded, labels = labelled_inputs(fresh, [llava_next_frames()], ["Describe the video."], ["The square is red"])
    loss = peft_model(**encoded, labels=labels).loss
    loss.backward()
    grads = [p.grad for n, p in peft_model.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.add_(0.05)
    peft_model.save_pretrained(tmp_path / "adapter")
    adapted = load_backend(converted, num_frames=2, adapter=tmp_path / "adapter")
    base = load_backend(converted, num_frames=2)
    args = ([llava_next_frames()], ["Describe the video."], ["The square is red"])
    with torch.no_grad():
        trained = torch.log_softmax(peft_model(**encoded).logits[0, :-1].float(), -1)
    labels = labels[0, 1:]
    expected = trained.gather(-1, labels.clamp(min=0)[:, None]).squeeze(-1)[labels != -100]
    torch.testing.assert_close(response_logprobs(adapted, *args)[0], expected, rtol=0, atol=1e-4)
    assert not torch.allclose(response_logprobs(adapted, *args)[0], response_logprobs(base, *args)[0])

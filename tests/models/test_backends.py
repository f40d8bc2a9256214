"""Backends: a tiny real model, loaded with from_pretrained, generates for a real video and scores responses."""

import pytest
import torch

from savi_plugin.models import detect_backend, load_backend
from savi_plugin.training.batch import labelled_inputs
from savi_plugin.video import read_frames
from tests.builders import full_logits_logprobs

FAMILIES = ["tiny_llava_onevision", "tiny_qwen2_vl"]


@pytest.fixture(scope="module")
def videos(synthetic_samples):
    return [read_frames(s.video, 4).frames for s in synthetic_samples[:2]]


@pytest.mark.parametrize("family", FAMILIES)
def test_generate_and_response_logprobs_match_a_manual_forward(family, videos, request, response_logprobs):
    path = request.getfixturevalue(family)
    lm = load_backend(path, num_frames=4)
    assert lm.family == detect_backend(path) == family.removeprefix("tiny_")
    assert lm.end_of_turn == "<|im_end|>"

    answers = lm.generate(videos, ["What color is it?", "Which way does it move?"], max_new_tokens=5)
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert any(a for a in answers)

    questions = ["What color is it?", "Which way does it move?"]
    responses = ["red", "the blue circle moves left"]
    logps = response_logprobs(lm, videos, questions, responses)
    n_tokens = [len(lm.tokenizer(r + "<|im_end|>", add_special_tokens=False)["input_ids"]) for r in responses]
    assert [len(x) for x in logps] == n_tokens
    manual = torch.stack([x.sum() for x in full_logits_logprobs(lm, videos, questions, responses)])
    torch.testing.assert_close(torch.stack([x.sum() for x in logps]), manual, rtol=0, atol=1e-4)
    assert all((x < 0).all() for x in logps)


def test_batched_scores_equal_one_at_a_time(tiny_llava_onevision, videos, response_logprobs):
    lm = load_backend(tiny_llava_onevision, num_frames=4)
    questions, responses = ["q one", "a much longer second question here"], ["yes", "no it is not"]
    batched = response_logprobs(lm, videos, questions, responses)
    for i in range(2):
        alone = response_logprobs(lm, videos[i:i + 1], questions[i:i + 1], responses[i:i + 1])[0]
        torch.testing.assert_close(batched[i], alone, rtol=0, atol=1e-5)


def test_response_offsets_index_the_response_text(tiny_llava_onevision, videos):
    lm = load_backend(tiny_llava_onevision, num_frames=4)
    response = "the red square, then up!"
    ids, offsets = lm.response_tokens(response)
    inputs, labels = labelled_inputs(lm, videos[:1], ["q"], [response])
    assert inputs["input_ids"][0][labels[0] != -100].tolist() == ids and len(offsets) == len(ids)
    text = response + lm.end_of_turn
    assert "".join(text[a:b] for a, b in offsets) == text


def test_unknown_model_type_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="no backend serves model_type 'bert'"):
        detect_backend(tmp_path)

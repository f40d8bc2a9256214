"""Backends: a tiny real model, loaded with from_pretrained, generates for a real video and scores responses."""

import re

import pytest
import torch

from savi_plugin.models import detect_backend, load_backend
from savi_plugin.training.batch import labelled_inputs
from savi_plugin.video import read_frames
from tests.builders import full_logits_logprobs

FAMILIES = ["tiny_llava_onevision", "tiny_qwen2_vl", "tiny_qwen2_5_vl", "tiny_qwen3_vl", "tiny_internvl"]
#: the backend serving each family (the Qwen-VL generations share one)
BACKEND = {"tiny_qwen2_5_vl": "qwen2_vl", "tiny_qwen3_vl": "qwen2_vl"}


@pytest.fixture(scope="module")
def videos(synthetic_samples):
    return [read_frames(s.video, 4).frames for s in synthetic_samples[:2]]


@pytest.mark.parametrize("family", FAMILIES)
def test_generate_and_response_logprobs_match_a_manual_forward(family, videos, request, response_logprobs):
    path = request.getfixturevalue(family)
    lm = load_backend(path, num_frames=4)
    assert lm.family == detect_backend(path) == BACKEND.get(family, family.removeprefix("tiny_"))
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


@pytest.mark.parametrize("family", FAMILIES)
def test_one_training_step_moves_the_lora_weights_of_the_language_model_only(family, request, synthetic_samples,
                                                                              tmp_path):
    """Each family trains through the real trainer (RRPO, packed rows where the family packs, LoRA on the backend's
    own targets): one optimiser step, a finite loss, LoRA weights inside the language model moved, nothing else."""
    from savi_plugin.training.packing import packing_support
    from savi_plugin.training.trainer import RRPOTrainer
    from tests.builders import lora_policy, preference_config, write_answer_pairs

    backend = lora_policy(request.getfixturevalue(family))
    assert packing_support(backend)[0]
    trainable = {n: p.detach().clone() for n, p in backend.model.named_parameters() if p.requires_grad}
    assert trainable and all("language_model" in n and "lora_" in n for n in trainable)
    frozen = {n: p.detach().clone() for n, p in backend.model.named_parameters() if not p.requires_grad}
    data = write_answer_pairs(tmp_path / "pairs.jsonl", synthetic_samples[:2])
    trainer = RRPOTrainer(backend, preference_config(tmp_path / "out", max_steps=1, per_device_train_batch_size=2,
                                                     gradient_accumulation_steps=1),
                          train_dataset=str(data))
    assert trainer.packing
    result = trainer.train()
    assert result.global_step == 1 and torch.isfinite(torch.tensor(result.training_loss))
    after = dict(backend.model.named_parameters())
    assert any(not torch.equal(after[n], before) for n, before in trainable.items() if "lora_B" in n)
    assert all(torch.equal(after[n], before) for n, before in frozen.items())


def test_qwen_frames_are_one_second_per_temporal_patch(tiny_qwen2_5_vl, tiny_qwen3_vl):
    """Decoded frames carry no time; the backend stamps them at qwen-vl-utils' 2 fps (2 frames per temporal patch =
    1 s), not transformers' 24 fps fallback, under which Qwen2.5-VL's temporal positions collapse to one value."""
    import numpy as np

    from savi_plugin.models.backends.qwen2_vl import FRAME_RATE

    frames = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)  # 4 temporal patches
    lm = load_backend(tiny_qwen2_5_vl, num_frames=8)
    inputs = lm.encode([frames], ["Which way?"])
    assert inputs["second_per_grid_ts"].tolist() == [2 / FRAME_RATE]
    positions, _ = lm.decoder().get_rope_index(inputs["input_ids"], inputs["mm_token_type_ids"],
                                               video_grid_thw=inputs["video_grid_thw"],
                                               second_per_grid_ts=inputs["second_per_grid_ts"],
                                               attention_mask=inputs["attention_mask"])
    video = inputs["input_ids"][0] == lm.model.config.video_token_id
    temporal = positions[0, 0, video].unique()
    step = lm.model.config.vision_config.tokens_per_second  # positions per second
    assert len(temporal) == 4 and (temporal.diff() == step).all()

    lm = load_backend(tiny_qwen3_vl, num_frames=8)
    text = lm.tokenizer.decode(lm.encode([frames], ["Which way?"])["input_ids"][0])
    stamps = [float(t) for t in re.findall(r"<([\d.]+) seconds>", text)]
    assert np.diff(stamps).tolist() == pytest.approx([1.0] * 3)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("height, width", [(3, 64), (1, 64), (64, 3), (3, 3)])
def test_a_frame_1_or_3_pixels_on_a_side_is_read_as_its_rows_not_as_colour_channels(family, height, width, request):
    """Pass 18 B #4: a 64x3 clip's (T, 3, 64, 3) frames were guessed channels-first by the processor: its rows read
    as colours, the model answered a scrambled frame. The backend says the frames are channels-last, so the pixels
    are the ones the same frames give when handed over channels-first, where nothing is guessed."""
    import numpy as np

    lm = load_backend(request.getfixturevalue(family), num_frames=4)
    frames = np.random.default_rng(height * width).integers(0, 256, (4, height, width, 3), dtype=np.uint8)
    ours = lm.encode([frames], ["q"])
    channels_first = np.ascontiguousarray(frames.transpose(0, 3, 1, 2))
    told = lm.processor(text=[lm.prompt("q")], videos=[channels_first], return_tensors="pt", padding=True,
                        padding_side="left", input_data_format="channels_first", **lm.processor_kwargs())
    key = next(k for k in ours if k.startswith("pixel_values"))
    assert torch.equal(ours[key], told[key])


@pytest.mark.parametrize("damage", ["truncated weights", "config that lies"])
def test_a_broken_checkpoint_is_one_line_and_leaves_nothing(damage, tiny_llava_onevision, synthetic_samples, tmp_path,
                                                            monkeypatch, capsys):
    """A checkpoint that cannot be loaded stops the job as a configuration error (exit 2) naming the model, with
    nothing written: restoring the files and re-running is not refused as another run."""
    import json
    import shutil

    from savi_plugin.cli import main
    from savi_plugin.models import load_backend
    from savi_plugin.models.backends.base import ModelLoadError

    model = tmp_path / "model"
    shutil.copytree(tiny_llava_onevision, model)
    if damage == "truncated weights":
        weights = model / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:
        config = json.loads((model / "config.json").read_text())
        config["text_config"]["hidden_size"] = config["text_config"]["hidden_size"] * 2 + 6  # shapes disagree
        (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=rf"^{model}: the model cannot be loaded"):
        load_backend(model)
    monkeypatch.chdir(tmp_path)
    sample = synthetic_samples[0]
    (tmp_path / "qa.jsonl").write_text(json.dumps({"id": "q0", "video": str(sample.video), "question": sample.question,
                                                   "options": sample.options, "answer_index": sample.answer_index}))
    code = main(["generate", "--generator", "rrpo", "--model", "model", "--input", "qa.jsonl", "--output", "p.jsonl",
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: model: the model cannot be loaded"), err
    assert not list(tmp_path.glob("p.jsonl*"))


@pytest.mark.parametrize("backend", [None, "llava_onevision"])
def test_an_adapter_or_training_folder_given_as_the_model_is_named_as_what_it_is(backend, tiny_adapter, tmp_path):
    """Pass 18 A #36: ``savi train --model run`` (a training output folder) with the recipe's backend set ended in
    transformers' "Unrecognized processing class" message; with or without a backend, it is named before loading."""
    from savi_plugin.models import load_backend
    from savi_plugin.models.backends.base import ModelLoadError

    with pytest.raises((ModelLoadError, FileNotFoundError),
                       match=rf"^{tiny_adapter}: .*is an adapter folder \(adapter_config.json\), not a model folder"):
        load_backend(tiny_adapter, backend=backend)


def test_generated_text_becomes_data_text_without_control_characters(tiny_llava_onevision):
    """A random-weight model emits byte tokens of control characters; the decoded answer drops them (and bidi
    overrides), so a generated pair is never refused by the pair check for them."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from savi_plugin.models.backends.tokens import answer_text
    from savi_plugin.untrusted import hidden_control, text_problem

    lm = load_backend(tiny_llava_onevision, num_frames=4)
    ids = lm.tokenizer("\x0cleft\x00 and\u202e right\x1b[2J", add_special_tokens=False)["input_ids"]
    decoded = lm.tokenizer.decode(ids, skip_special_tokens=True)
    assert "\x00" in decoded and text_problem(decoded)  # the tokenizer round-trips them
    assert answer_text(decoded) == "left and right[2J"
    assert answer_text("one\x0ctwo\x1fthree\x85four") == "one two three four"  # whitespace controls: a space

    @settings(max_examples=200, deadline=None)
    @given(st.text(st.characters(codec="utf-8"), max_size=40))
    def every_text(text):
        clean = answer_text(text)
        assert hidden_control(clean) is None and clean == clean.strip()

    every_text()


def test_a_loaded_model_does_not_change_when_its_weight_file_is_overwritten(tiny_llava_onevision, tmp_path):
    """Pass 12 A #13/#14: transformers maps ``model.safetensors`` and CPU tensors read the mapped pages; weights
    overwritten in place (``dd conv=notrunc``) while a job ran changed the model mid-run with no word."""
    import os
    import shutil

    import torch

    from savi_plugin.models import load_backend

    folder = tmp_path / "m"
    shutil.copytree(tiny_llava_onevision, folder)
    lm = load_backend(str(folder))
    before = {n: t.detach().clone() for n, t in lm.model.state_dict().items()}
    weights = folder / "model.safetensors"
    with open(weights, "r+b") as fh:  # the same file, its bytes after the header replaced
        fh.seek(4096)
        fh.write(os.urandom(weights.stat().st_size - 4096 - 16))
    after = lm.model.state_dict()
    assert [n for n in before if not torch.equal(before[n], after[n])] == []

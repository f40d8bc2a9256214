"""Proof: a converted LLaVA-NeXT checkpoint reproduces LLaVA-NeXT's own outputs (fp32 logits to 1e-4).

Fixture ``tests/fixtures/llava_next/`` (see its README):

* ``source/``: a tiny random checkpoint in LLaVA-NeXT's layout, from
  ``savi_plugin.models.llava_next.tiny.build_tiny_llava_next(dir)`` (default spec: Qwen2 LM 2 layers x 64, SigLIP
  tower 3 layers x 32 at 384 px / 14 px patches of which LLaVA-NeXT keeps 2, ``mm_newline_position: grid``,
  ``mm_spatial_pool_mode: bilinear``, bf16 weights, a 293-token byte-level BPE tokenizer, 320 embedding rows).
* ``reference.safetensors``: recorded with LLaVA-NeXT's own code, never copied into this repository.

How ``reference.safetensors`` was made (a throw-away script outside this repository):

1. ``git archive`` of github.com/LLaVA-VL/LLaVA-NeXT at df179663 (2026-04-15) into /tmp/llava-next-src, used via
   ``PYTHONPATH`` (not installed). A separate venv, Python 3.11: torch 2.1.2 (its pin), numpy 1.26.1 (its pin),
   transformers 4.40.2 (its pin is a 4.40.0.dev0 commit) with tokenizers 0.19.1 (4.40.2 requires >= 0.19, so the
   ``tokenizers~=0.15.2`` pin cannot be met), accelerate 0.29.3, einops 0.6.1, pillow, safetensors. No flash-attn,
   deepspeed or bitsandbytes: the inference path does not import them.
2. LLaVA-NeXT's ``build_vision_tower`` sends any *existing path* to its CLIP tower and loads SigLIP with
   ``SigLipVisionModel.from_pretrained(mm_vision_tower)``, so the tiny tower's ``siglip_vision_config.json`` (plus
   random weights, overwritten later) was placed in an offline hub cache (``HF_HUB_OFFLINE=1``,
   ``HF_HUB_CACHE=/tmp/...``) under the real name ``google/siglip-so400m-patch14-384``.
3. The steps of ``llava.model.builder.load_pretrained_model`` for a qwen model, repeated because it refuses float32:
   ``AutoTokenizer.from_pretrained(src)``; ``LlavaQwenForCausalLM.from_pretrained(src, low_cpu_mem_usage=True,
   attn_implementation="eager", torch_dtype=torch.float32)`` (loading info: no missing/unexpected keys; tower
   weights checked equal to the checkpoint's); ``model.resize_token_embeddings(len(tokenizer))`` (-> 293 logits);
   ``image_processor = model.get_vision_tower().image_processor``.
4. Video: ``np.random.default_rng(1234).integers(0, 256, size=(2, 240, 320, 3), dtype=np.uint8)``;
   ``pixel_values = image_processor.preprocess(frames, return_tensors="pt")["pixel_values"]``.
   Prompt: ``conv_templates["qwen_1_5"]`` with user message ``"<image>\\n" + question`` and an empty assistant turn;
   ``input_ids = tokenizer_image_token(prompt, tokenizer, IMAGE_TOKEN_INDEX, return_tensors="pt")``.
5. For ``mm_newline_position`` in ("grid", "one_token") (set on ``model.config``):
   ``model.prepare_inputs_labels_for_multimodal(input_ids, None, None, None, None, [pixel_values], ["video"])`` ->
   ``inputs_embeds``; ``model(input_ids=..., images=[pixel_values], modalities=["video"]).logits`` (equal to
   ``model(inputs_embeds=...)``); ``model.generate(..., do_sample=False, max_new_tokens=6, min_new_tokens=6)``.
   Saved: input ids (with -200), inputs-embeds shape, visual-token count, visual embeddings, logits (fp32),
   generated ids, a 1/8-strided sample of ``pixel_values`` and per-row sums of its integer grey levels
   (``round((pixel_values + 1) * 127.5)``), the frames' sum. Re-running the script gives bit-identical tensors.

LLaVA-NeXT gave 420 visual tokens for the grid layout (2 frames x 14 x (14 + 1): 210 per 384-px frame, as for the
real LLaVA-Video-7B-Qwen2) and 393 for one_token (2 x 196 + 1).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from savi_plugin.models.llava_next.convert import convert_llava_next, load_converted
from savi_plugin.models.llava_next.modeling import num_video_tokens
from savi_plugin.models.llava_next.processing import resize_frames_like_llava_next
from tests.builders import LLAVA_NEXT_FIXTURE, llava_next_frames, llava_next_reference

FIXTURE = LLAVA_NEXT_FIXTURE
SOURCE = FIXTURE / "source"
VISION_CONFIG = SOURCE / "siglip_vision_config.json"
IMAGE_TOKEN_INDEX = -200  # LLaVA-NeXT's in-text image placeholder


@pytest.fixture(scope="module")
def reference():
    return llava_next_reference()


def _convert(tmp_path_factory, newline_position: str) -> Path:
    src = tmp_path_factory.mktemp(f"src_{newline_position}")
    shutil.copytree(SOURCE, src, dirs_exist_ok=True)
    config = json.loads((src / "config.json").read_text())
    config["mm_newline_position"] = newline_position
    (src / "config.json").write_text(json.dumps(config))
    dst = tmp_path_factory.mktemp(f"converted_{newline_position}")
    convert_llava_next(str(src), str(dst), vision_config=str(VISION_CONFIG))
    return dst


@pytest.fixture(scope="module")
def grid_model(tmp_path_factory):
    return load_converted(str(_convert(tmp_path_factory, "grid")))


@pytest.fixture(scope="module")
def one_token_model(tmp_path_factory):
    return load_converted(str(_convert(tmp_path_factory, "one_token")))


def _inputs(processor, meta, frames=None):
    frames = llava_next_frames() if frames is None else frames
    conversation = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": meta["question"]}]}]
    prompt = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    video = resize_frames_like_llava_next(frames, 384, 384)
    return prompt, processor(text=[prompt], videos=[video], return_tensors="pt")


def test_the_video_is_the_recorded_one(reference):
    ref, _ = reference
    assert int(llava_next_frames().astype(np.int64).sum()) == int(ref["frames_sum"])


def test_pixels_match_llava_next_preprocessing(grid_model, reference):
    ref, meta = reference
    _, inputs = _inputs(grid_model[1], meta)
    pixels = inputs["pixel_values_videos"][0]
    assert tuple(pixels.shape) == (2, 3, 384, 384)
    torch.testing.assert_close(pixels[:, :, ::8, ::8], ref["pixel_values_sub"], rtol=0, atol=1e-6)
    # every pixel: LLaVA-NeXT's values are (level / 255 - 0.5) / 0.5, so the integer levels are recoverable exactly
    levels = torch.round((pixels.double() + 1) * 127.5).long()
    assert torch.equal(levels.sum(-1), ref["pixel_levels_row_sums"])


def test_prompt_text_ids_and_visual_token_count_match(grid_model, reference):
    ref, meta = reference
    model, processor = grid_model
    prompt, inputs = _inputs(processor, meta)
    assert prompt == meta["prompt"].replace("<image>", "<video>")
    ids = inputs["input_ids"][0]
    is_video = ids == model.config.video_token_index
    ref_ids = ref["input_ids"]
    assert torch.equal(ids[~is_video], ref_ids[ref_ids != IMAGE_TOKEN_INDEX])
    # the placeholders sit where LLaVA-NeXT splices in the features
    start = int((ref_ids == IMAGE_TOKEN_INDEX).nonzero()[0])
    assert is_video[start : start + int(is_video.sum())].all()
    assert int(is_video.sum()) == int(ref["grid.num_visual_tokens"]) == 420 == num_video_tokens(2, 27, 2, "bilinear", "grid")
    assert list(ref["grid.inputs_embeds_shape"]) == [1, len(ids), model.config.text_config.hidden_size]


def test_grid_visual_embeddings_and_logits_match_llava_next(grid_model, reference):
    ref, meta = reference
    model, processor = grid_model
    _, inputs = _inputs(processor, meta)
    with torch.no_grad():
        features = model.model.get_video_features(inputs["pixel_values_videos"]).pooler_output[0]
        logits = model(**inputs).logits[0]
    torch.testing.assert_close(features, ref["grid.visual_embeds"], rtol=0, atol=1e-4)
    ref_logits = ref["grid.logits"]
    # LLaVA-NeXT's loader trims the embedding to len(tokenizer); ours keeps the checkpoint's rows (+placeholders)
    assert logits.shape[0] == ref_logits.shape[0] and logits.shape[1] >= ref_logits.shape[1]
    torch.testing.assert_close(logits[:, : ref_logits.shape[1]], ref_logits, rtol=0, atol=1e-4)
    assert ref_logits.abs().max() > 1.0  # the comparison is not between near-zero numbers


def test_grid_greedy_generation_matches_llava_next(grid_model, reference):
    ref, meta = reference
    model, processor = grid_model
    _, inputs = _inputs(processor, meta)
    n_llava = ref["grid.logits"].shape[1]
    out = model.generate(
        **inputs, do_sample=False, max_new_tokens=6, min_new_tokens=6,
        suppress_tokens=list(range(n_llava, model.config.text_config.vocab_size)),  # rows LLaVA-NeXT trimmed
        pad_token_id=processor.tokenizer.pad_token_id,
    )
    assert out[0, inputs["input_ids"].shape[1] :].tolist() == ref["grid.generated_ids"].tolist()


def test_one_token_checkpoint_converts_to_plain_onevision_and_matches(one_token_model, reference):
    from transformers import LlavaOnevisionForConditionalGeneration

    ref, meta = reference
    model, processor = one_token_model
    assert type(model) is LlavaOnevisionForConditionalGeneration  # no subclass where the architectures agree
    _, inputs = _inputs(processor, meta)
    n_visual = int((inputs["input_ids"][0] == model.config.video_token_index).sum())
    assert n_visual == int(ref["one_token.num_visual_tokens"]) == 393
    with torch.no_grad():
        logits = model(**inputs).logits[0]
    ref_logits = ref["one_token.logits"]
    torch.testing.assert_close(logits[:, : ref_logits.shape[1]], ref_logits, rtol=0, atol=1e-4)


def test_the_comparison_sees_the_video(grid_model, reference):
    """Swapping the two frames must move the logits far beyond the tolerance, or the proof would prove nothing."""
    ref, meta = reference
    model, processor = grid_model
    _, inputs = _inputs(processor, meta, frames=llava_next_frames()[::-1].copy())
    with torch.no_grad():
        logits = model(**inputs).logits[0]
    ref_logits = ref["grid.logits"]
    assert (logits[-10:, : ref_logits.shape[1]] - ref_logits[-10:]).abs().max() > 1e-2

"""Packed rows' split attention (two causal kernel calls) equals the block-mask path, outputs and gradients.

On each packing family (LLaVA-OneVision, Qwen2-VL with M-RoPE positions, converted LLaVA-Video), in fp32 with
and without gradient checkpointing to 1e-5, and under bf16 autocast to 3e-2 (bf16 keeps 8 mantissa bits: one
rounding step is ~4e-3 relative, and the two paths round different partial sums). The split path must never
hand SDPA an L x L mask.
"""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

from savi_plugin.training import packing as packed_attention
from tests.builders import random_lora_backend, write_jsonl, wrong_option

FP32_TOL = 1e-5
BF16_TOL = 3e-2


def _batch(backend, samples, tmp_path):
    """Two packed pairs of different lengths (so the second row is padded)."""
    from savi_plugin.training.collator import PreferenceCollator
    from savi_plugin.training.dataset import PreferenceDataset

    path = write_jsonl(tmp_path / "pairs.jsonl", [
        {"id": s.id, "video": s.video, "question": s.question,
         "chosen": f"The answer is {s.answer}." + " Indeed." * (3 * i),
         "rejected": f"It is {wrong_option(s, i, rotate=False)}, I think." + " Maybe so." * (2 - i)}
        for i, s in enumerate(samples[:2])])
    dataset = PreferenceDataset(path, backend.tokenizer, backend.end_of_turn, require_tags=False)
    batch = PreferenceCollator(backend, num_frames=4, packing=True)([dataset[0], dataset[1]])
    assert batch.prompt.packed and int(batch.prompt.segments.sum(-1).min()) < batch.prompt.input_ids.shape[1]
    return batch


class _SdpaSpy(torch.overrides.TorchFunctionMode):
    """Records the shape of every tensor mask SDPA is given (None for none or a causal bias object)."""

    def __init__(self):
        super().__init__()
        self.masks = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            mask = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
            self.masks.append(tuple(mask.shape) if type(mask) is torch.Tensor else None)
        return func(*args, **kwargs)

    def square_masks(self, length: int) -> int:
        return sum(1 for m in self.masks if m is not None and m[-2:] == (length, length))


def _run(backend, batch, layout, features, weights, autocast: bool):
    """Hidden states at real positions and the LoRA gradients of a fixed linear function of them."""
    from savi_plugin.training.scoring import decoder_hidden_states

    decoder = backend.decoder()
    backend.model.zero_grad(set_to_none=True)
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.autocast("cpu", enabled=False)
    with context:
        hidden = decoder_hidden_states(decoder, batch.prompt, layout, backend.mm_encoder_outputs(features, batch.prompt))
    real = torch.arange(hidden.shape[1]).view(1, -1) < batch.prompt.segments.sum(-1).view(-1, 1)
    states = hidden.float()[real]
    (states * weights[: states.shape[0]]).mean().backward()
    grads = {n: p.grad.detach().clone() for n, p in backend.model.named_parameters() if p.grad is not None}
    assert grads and all("lora" in n for n in grads)
    return states.detach(), grads


@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_vl", "llava_video", "qwen2_5_vl", "qwen3_vl",
                                    "internvl"])
def test_split_attention_equals_the_block_mask(family, request, synthetic_samples, tmp_path, monkeypatch):
    from savi_plugin.training.packing import RowLayout, block_attention_mask, row_layout

    backend = random_lora_backend(request.getfixturevalue(f"tiny_{family}"), attn_implementation="sdpa")
    decoder = backend.decoder()
    batch = _batch(backend, synthetic_samples, tmp_path)
    length = batch.prompt.input_ids.shape[1]
    split = row_layout(batch.prompt, backend.position_ids(batch.prompt), backend.attention_implementation(), torch.float32)
    assert split.attention_mask.dim() == 2 and "packed_segments" in split.attention_kwargs
    block = RowLayout(block_attention_mask(batch.prompt.segments, length), split.position_ids, True)
    with torch.no_grad():
        features = backend.video_features(batch.prompt.vision)
    weights = torch.randn(int(batch.prompt.segments.sum()), decoder.config.get_text_config().hidden_size,
                          generator=torch.Generator().manual_seed(1))

    calls, masks = [], []
    original_split = packed_attention.split_attention
    monkeypatch.setattr(packed_attention, "split_attention",
                        lambda *a, **k: calls.append(1) or original_split(*a, **k))
    from transformers import AttentionInterface

    packed_attention.register()
    registered = AttentionInterface._global_mapping["savi_packed_sdpa"]

    def recording(module, query, key, value, mask, **kwargs):
        masks.append(mask)
        return registered(module, query, key, value, mask, **kwargs)

    monkeypatch.setitem(AttentionInterface._global_mapping, "savi_packed_sdpa", recording)
    spy = _SdpaSpy()
    layers = decoder.config.get_text_config().num_hidden_layers
    for checkpointing, autocast in ((False, False), (True, False), (True, True)):
        backend.model.train()
        if checkpointing:
            backend.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        calls.clear(), spy.masks.clear()
        with spy:
            out_block, grad_block = _run(backend, batch, block, features, weights, autocast)
        assert spy.square_masks(length) > 0 and not calls  # the reference really is the block mask
        spy.masks.clear(), masks.clear()
        with spy:
            out_split, grad_split = _run(backend, batch, split, features, weights, autocast)
        assert packed_attention.language_model_config(decoder)._attn_implementation == "savi_packed_sdpa"
        assert spy.square_masks(length) == 0  # no L x L mask reaches the kernel
        assert masks and all(m is None for m in masks)  # and transformers built none
        # every layer ran the split; with checkpointing each layer runs again in backward
        assert len(calls) == layers * (2 if checkpointing else 1)
        tol = BF16_TOL if autocast else FP32_TOL
        scale = out_block.abs().max() if autocast else 1.0
        torch.testing.assert_close(out_split, out_block, atol=tol * scale, rtol=tol)
        for name, g in grad_block.items():
            torch.testing.assert_close(grad_split[name], g, atol=tol * (g.abs().max() if autocast else 1.0),
                                       rtol=tol, msg=lambda m, n=name: f"{n}: {m}")


def test_split_attention_kernel_matches_the_block_mask_with_gqa():
    """The kernel alone: grouped-query heads, a plain causal row beside a packed one, padding outputs zero."""
    from savi_plugin.training.packing import block_attention_mask

    generator = torch.Generator().manual_seed(0)
    segments = torch.tensor([[7, 3, 4], [6, 4, 0]])
    length = 15
    q = torch.randn(2, 4, length, 8, generator=generator, requires_grad=True)
    k, v = (torch.randn(2, 2, length, 8, generator=generator, requires_grad=True) for _ in range(2))
    out = packed_attention.split_attention(q, k, v, segments)
    mask = block_attention_mask(segments, length)
    expected = F.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1),
                                              attn_mask=mask).transpose(1, 2)
    real = torch.arange(length).view(1, -1) < segments.sum(-1).view(-1, 1)
    torch.testing.assert_close(out[real], expected[real], atol=FP32_TOL, rtol=FP32_TOL)
    assert out[~real].abs().max() == 0
    grads = torch.autograd.grad(out[real].sum(), (q, k, v))
    expected_grads = torch.autograd.grad(expected[real].sum(), (q, k, v))
    for a, b in zip(grads, expected_grads):
        torch.testing.assert_close(a, b, atol=FP32_TOL, rtol=FP32_TOL)

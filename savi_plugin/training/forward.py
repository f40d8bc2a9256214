"""One preference forward: vision once per pair, one policy pass, one reference pass, response-only stats.

The physical minimum for a preference step is one policy pass over ``prefix + both responses`` (forward and
backward) and one reference forward. This module does exactly that on a batch from
:class:`~savi_plugin.training.collator.PreferenceCollator`:

1. **Vision once.** The frozen vision encoder (+ projector) runs once per pair through the model's own
   ``get_video_features``; its output is handed to the decoder as ``mm_encoder_outputs`` (transformers'
   hook for precomputed multimodal features) for the policy pass *and* the reference pass. When a vision
   part is trainable (its features require grad), the reference computes its own features under
   ``no_grad`` with the adapter disabled, because then they differ.
2. **Policy pass** over the packed rows ``[prefix | chosen | rejected]`` with the block mask and restarted
   positions of :mod:`savi_plugin.training.packing` (or over two unpacked rows per pair).
3. **Reference pass** under ``no_grad`` on the same rows: the same model with its LoRA adapter disabled
   (``reference="adapter"``: a flag, no second copy of the weights), or a separate frozen model
   (``reference="model"``), or none at all (``reference="precomputed"``: statistics come with the batch).
4. **Response-only statistics.** Only the hidden states that predict a response token are gathered; the LM
   head, log-softmax, gather and KL run on them in chunks
   (:func:`savi_plugin.training.token_logprobs.response_token_stats`), never on video or prompt positions.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import Any

import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from savi_plugin.training.packing import (additive_mask, block_attention_mask, gather_response_hidden,
                                          restart_rejected_positions, shifted_for_scoring)
from savi_plugin.training.token_logprobs import ReferenceTokenStats, ResponseTokenStats, response_token_stats

#: Families whose decoders were verified (tests/test_packing.py) to give packed == unpacked log-probs.
PACKING_FAMILIES = ("llava_onevision", "llava_video", "qwen2_vl")
#: Attention implementations that accept an arbitrary 4-D mask.
MASK_ATTENTION = ("sdpa", "eager")


def attention_implementation(backend) -> str:
    """The language model's attention implementation (``sdpa``, ``eager``, ``flash_attention_2`` ...)."""
    config = backend.model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return str(getattr(text, "_attn_implementation", None) or getattr(config, "_attn_implementation", "eager"))


def packing_support(backend) -> tuple[bool, str]:
    """Whether shared-prefix packing can run on this backend, and why not."""
    family = getattr(backend, "family", "?")
    if family not in PACKING_FAMILIES:
        return False, f"model family {family!r} is not verified for packed block masks ({', '.join(PACKING_FAMILIES)})"
    attention = attention_implementation(backend)
    if attention not in MASK_ATTENTION:
        return False, f"attention implementation {attention!r} cannot take a custom 4-D block mask (needs sdpa or eager)"
    return True, ""


@contextlib.contextmanager
def adapter_disabled(model):
    """Run the peft model as its base model (LoRA off): the reference, without a second copy of the weights."""
    if not hasattr(model, "disable_adapter"):
        raise ValueError("reference='adapter' needs a peft (LoRA) model as the policy; apply an adapter, or use "
                         "reference='model' / 'precomputed'")
    with model.disable_adapter():
        yield


def _floating_dtype(module: torch.nn.Module) -> torch.dtype:
    for p in module.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def vision_features(decoder, vision: dict[str, Any]) -> BaseModelOutputWithPooling:
    """Run the model's video encoder (vision tower + projector + pooling) once for the batch's pairs.

    Args:
        decoder: the multimodal backbone (``VideoLM.decoder()``), which owns ``get_video_features``.
        vision: the per-pair vision inputs from the collator (``pixel_values_videos`` and, per family,
            ``video_grid_thw`` ...).
    """
    fn = decoder.get_video_features
    accepted = inspect.signature(fn).parameters
    pixels = vision["pixel_values_videos"]
    if pixels.is_floating_point():
        pixels = pixels.to(_floating_dtype(decoder))
    kwargs = {k: v for k, v in vision.items() if k in accepted and k != "pixel_values_videos"}
    return fn(pixels, return_dict=True, **kwargs)


def vision_is_trainable(decoder) -> bool:
    """Whether any weight outside the language model (vision tower, projector, newline) is trained."""
    return any(p.requires_grad for name, p in decoder.named_parameters() if not name.startswith("language_model."))


def features_for_rows(features: BaseModelOutputWithPooling, row_to_pair: torch.Tensor) -> dict[str, Any]:
    """``mm_encoder_outputs`` for the batch rows: each row gets its pair's video features (no copy when packed)."""
    pooled = features.pooler_output
    order = row_to_pair.tolist()
    if order != list(range(len(order))):
        if torch.is_tensor(pooled):
            pooled = pooled.index_select(0, row_to_pair.to(pooled.device))
        else:
            pooled = tuple(pooled[i] for i in order)
    return {"video": BaseModelOutputWithPooling(pooler_output=pooled)}


def row_position_ids(decoder, batch: dict[str, Any]) -> torch.Tensor:
    """Position ids of the rows as plain sequences: the model's own M-RoPE index when it has one, else 0..n-1."""
    input_ids, attention = batch["input_ids"], batch["attention_mask"]
    get_rope_index = getattr(decoder, "get_rope_index", None)
    if get_rope_index is None:
        return (attention.long().cumsum(-1) - 1).clamp(min=0)
    accepted = inspect.signature(get_rope_index).parameters
    kwargs = {k: v for k, v in batch["row_inputs"].items() if k in accepted}
    row_to_pair = batch["row_to_pair"]
    for k, v in batch["vision"].items():  # per-video entries (grids, seconds per grid) follow the rows
        if k in accepted and torch.is_tensor(v) and k != "pixel_values_videos":
            kwargs[k] = v.index_select(0, row_to_pair.to(v.device))
    positions, _ = get_rope_index(input_ids, attention_mask=attention, **kwargs)
    return positions


@dataclass
class RowLayout:
    """The attention mask and positions of the batch rows (shared by the policy and the reference pass)."""

    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    packed: bool


def row_layout(decoder, batch: dict[str, Any], attention: str, dtype: torch.dtype) -> RowLayout:
    """Block mask + restarted positions for packed rows; the plain 2-D mask and positions otherwise."""
    positions = row_position_ids(decoder, batch)
    packed = bool(batch["packed"])
    if not packed:
        return RowLayout(batch["attention_mask"], positions, False)
    segments = batch["segments"].to(batch["input_ids"].device)
    mask = block_attention_mask(segments, batch["input_ids"].shape[1])
    if attention != "sdpa":  # eager attention adds the mask to its scores
        mask = additive_mask(mask, dtype)
    return RowLayout(mask, restart_rejected_positions(positions, segments), True)


def decoder_hidden_states(decoder, batch: dict[str, Any], layout: RowLayout, mm_encoder_outputs) -> torch.Tensor:
    """Final hidden states ``[N, L, H]`` of the batch rows (no LM head)."""
    out = decoder(input_ids=batch["input_ids"], attention_mask=layout.attention_mask,
                  position_ids=layout.position_ids, mm_encoder_outputs=mm_encoder_outputs, use_cache=False)
    return out.last_hidden_state


@dataclass
class PairStatistics:
    """Token-level statistics of a batch of pairs; ``chosen``/``rejected`` are ``[B, Tc]`` / ``[B, Tr]``.

    Attributes:
        chosen, rejected: :class:`~savi_plugin.training.token_logprobs.ResponseTokenStats` (``mask``,
            ``policy_logps``, ``reference_logps``, ``kl`` -- the KL on the chosen side only).
        chosen_phrase_ids, rejected_phrase_ids: ``[B, T]`` ``<MASK>`` phrase ids (0 = none).
        vision_calls: how many times the vision encoder ran for this batch (1 with a shared encoder).
    """

    chosen: ResponseTokenStats
    rejected: ResponseTokenStats
    chosen_phrase_ids: torch.Tensor
    rejected_phrase_ids: torch.Tensor
    vision_calls: int


def _stored_reference(batch: dict[str, Any], side: str, mask: torch.Tensor) -> ReferenceTokenStats | None:
    key = f"reference_{side}_logps"
    if key not in batch:
        return None

    def packed(name):
        value = batch.get(f"reference_{side}_{name}")
        return None if value is None else value[mask]

    return ReferenceTokenStats(token_logps=batch[key][mask], full_logprobs=packed("full"),
                               topk_logprobs=packed("topk_logprobs"), topk_indices=packed("topk_indices"),
                               tail_logmass=packed("tail"))


def preference_statistics(backend, batch: dict[str, Any], *, reference: str = "adapter", reference_backend=None,
                          compute_kl: bool = True, chunk_size: int = 256,
                          checkpoint_chunks: bool = True) -> PairStatistics:
    """Policy (and reference) per-token log-probs and the chosen-side KL for a collated batch.

    Args:
        backend: the policy ``VideoLM`` (its ``model`` is the peft model being trained).
        batch: a batch from ``PreferenceCollator``, on the model's device.
        reference: ``"adapter"``, ``"model"`` or ``"precomputed"`` (see module docstring).
        reference_backend: the frozen reference ``VideoLM`` for ``reference="model"``.
        compute_kl: compute ``KL(ref || policy)`` per chosen token (RRPO's regulariser; also logged as
            ``kl/chosen``). Needs a reference distribution: not available from precomputed log-probs alone.
        chunk_size: response positions per LM-head call.
        checkpoint_chunks: recompute each LM-head chunk in backward (peak O(chunk x vocab)). Must be off under
            DeepSpeed ZeRO-3: the recomputation runs outside ZeRO's module hooks and would see the LM head's
            empty local shard; without it the backward keeps ``[response tokens, vocab]`` (e.g. 64 x 152k fp32
            = 39 MB per pair), still nothing at video or prompt positions.
    """
    decoder, head = backend.decoder(), backend.lm_head()
    layout = row_layout(decoder, batch, attention_implementation(backend), _floating_dtype(decoder))
    row_to_pair = batch["row_to_pair"]
    trainable_vision = vision_is_trainable(decoder)
    # A frozen vision path runs without autograd: with gradient checkpointing, transformers makes every
    # input embedding require grad (enable_input_require_grads), which would otherwise make frozen features
    # look trainable, re-encode the video for the reference and back-propagate through the frozen tower.
    with contextlib.nullcontext() if trainable_vision else torch.no_grad():
        features = vision_features(decoder, batch["vision"])
    vision_calls = 1
    policy_hidden = decoder_hidden_states(decoder, batch, layout, features_for_rows(features, row_to_pair))

    reference_hidden, reference_head = None, None
    if reference == "adapter":
        with torch.no_grad(), adapter_disabled(backend.model):
            if trainable_vision:  # a trainable vision part: the reference needs its own features
                features = vision_features(decoder, batch["vision"])
                vision_calls += 1
            reference_hidden = decoder_hidden_states(decoder, batch, layout, features_for_rows(features, row_to_pair))
    elif reference == "model":
        if reference_backend is None:
            raise ValueError("reference='model' needs reference_backend")
        with torch.no_grad():
            ref_decoder = reference_backend.decoder()
            ref_features = vision_features(ref_decoder, batch["vision"])
            vision_calls += 1
            reference_hidden = decoder_hidden_states(ref_decoder, batch, layout,
                                                     features_for_rows(ref_features, row_to_pair))
            reference_head = reference_backend.lm_head()
    elif reference != "precomputed":
        raise ValueError(f"unknown reference mode {reference!r}")

    def side(name: str, kl: bool) -> ResponseTokenStats:
        rows, positions = batch[f"{name}_rows"], batch[f"{name}_positions"]
        hidden, labels = shifted_for_scoring(gather_response_hidden(policy_hidden, rows, positions),
                                             batch[f"{name}_targets"])
        ref_hidden = None
        if reference_hidden is not None:
            ref_hidden, _ = shifted_for_scoring(gather_response_hidden(reference_hidden, rows, positions),
                                                batch[f"{name}_targets"])
        stored = _stored_reference(batch, name, batch[f"{name}_targets"] != -100)
        if reference == "precomputed" and stored is None:
            raise ValueError("reference='precomputed' but the batch carries no reference statistics "
                             "(give the collator a ReferenceStore)")
        if kl and stored is not None and stored.full_logprobs is None and stored.topk_logprobs is None:
            kl = False
        return response_token_stats(hidden, head, labels, reference_hidden_states=ref_hidden,
                                    reference_lm_head=reference_head, reference=stored, compute_kl=kl,
                                    chunk_size=chunk_size, checkpoint_chunks=checkpoint_chunks)

    return PairStatistics(side("chosen", compute_kl), side("rejected", False), batch["chosen_phrase_ids"],
                          batch["rejected_phrase_ids"], vision_calls)

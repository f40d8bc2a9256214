"""The one forward of a scoring batch: vision once per video, policy and reference hidden states of the rows.

:func:`savi_plugin.training.scoring.score_responses` calls :func:`batch_hidden_states`; nothing else assembles a
forward. On a batch from :func:`savi_plugin.training.scoring.scoring_batch` (the collator's batches included):

1. **Vision once.** The frozen vision encoder (+ projector) runs once per video through the backend
   (:meth:`VideoLM.video_features`); its output goes to the decoder as ``mm_encoder_outputs`` (transformers'
   hook for precomputed multimodal features, laid out per row by :meth:`VideoLM.mm_encoder_outputs`) for the
   policy pass *and* the reference pass. When a vision part is trainable (:meth:`VideoLM.vision_is_trainable`),
   the reference computes its own features under ``no_grad`` with the adapter disabled, because then they differ.
2. **Policy pass** over the rows: packed ``[prefix | chosen | rejected]`` with the attention and restarted
   positions of :func:`row_layout` (:mod:`savi_plugin.training.packing`), or unpacked rows.
3. **Reference pass** under ``no_grad`` on the same rows: the same model with its LoRA adapter disabled
   (``reference="adapter"``: a flag, no second copy of the weights), or a separate frozen model
   (``reference="model"``), or none (``"precomputed"`` statistics come with the batch; ``"none"``: a
   reference-free loss, or scoring one model).

:func:`row_layout` and :func:`decoder_hidden_states` are the only places the packed row's attention is built and
used.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import torch

from savi_plugin.training.packed_attention import BASES as SPLIT_ATTENTION
from savi_plugin.training.packed_attention import base_implementation, enable_packed_attention
from savi_plugin.training.packing import additive_mask, block_attention_mask, restart_rejected_positions

#: Attention implementations that run packed rows: split attention (sdpa, flash_attention_2) or the block mask (eager).
MASK_ATTENTION = ("sdpa", "eager", "flash_attention_2")
#: Where the reference comes from (see :mod:`savi_plugin.training.reference`); "none" runs no reference.
REFERENCE_SOURCES = ("adapter", "model", "precomputed", "none")


def packing_support(backend) -> tuple[bool, str]:
    """Whether shared-prefix packing can run on this backend, and why not."""
    if not getattr(backend, "supports_packing", False):
        return False, (f"model family {getattr(backend, 'family', '?')!r} does not declare packed rows "
                       f"(VideoLM.supports_packing)")
    attention = base_implementation(backend.attention_implementation())
    if attention not in MASK_ATTENTION:
        return False, f"attention implementation {attention!r} cannot run packed rows (needs {', '.join(MASK_ATTENTION)})"
    return True, ""


@contextlib.contextmanager
def adapter_disabled(model):
    """Run the peft model as its base model (LoRA off): the reference, without a second copy of the weights."""
    if not hasattr(model, "disable_adapter"):
        raise ValueError("reference='adapter' needs a peft (LoRA) model as the policy; apply an adapter, or use "
                         "reference='model' / 'precomputed'")
    with model.disable_adapter():
        yield


@dataclass
class RowLayout:
    """The attention inputs and positions of the batch rows (shared by the policy and the reference pass).

    Attributes:
        attention_mask: the 2-D padding mask, or for packed rows under eager attention the 4-D block mask.
        position_ids: positions (rejected blocks restarted after the prefix when packed).
        packed: whether the rows are ``[prefix | chosen | rejected]``.
        attention_kwargs: extra decoder keyword arguments that reach the attention function: for packed rows
            under sdpa / flash attention, ``packed_segments`` (see :mod:`savi_plugin.training.packed_attention`).
    """

    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    packed: bool
    attention_kwargs: dict = field(default_factory=dict)


def row_layout(batch: dict[str, Any], positions: torch.Tensor, attention: str, dtype: torch.dtype) -> RowLayout:
    """The layout of the batch rows under the language model's attention implementation ``attention``.

    Packed rows get restarted positions and, under sdpa or flash attention, the split attention of
    :mod:`savi_plugin.training.packed_attention` (two causal kernel calls per row, no L x L mask; the 2-D mask
    is all ones, so transformers builds none); under eager attention, the block mask of
    :func:`~savi_plugin.training.packing.block_attention_mask` as additive scores. Unpacked rows: the plain
    2-D mask and ``positions``.
    """
    if not bool(batch["packed"]):
        return RowLayout(batch["attention_mask"], positions, False)
    segments = batch["segments"].to(batch["input_ids"].device)
    positions = restart_rejected_positions(positions, segments)
    attention = base_implementation(attention)
    if attention in SPLIT_ATTENTION:
        return RowLayout(torch.ones_like(batch["attention_mask"]), positions, True, {"packed_segments": segments})
    mask = block_attention_mask(segments, batch["input_ids"].shape[1])
    if attention != "sdpa":  # eager attention adds the mask to its scores
        mask = additive_mask(mask, dtype)
    return RowLayout(mask, positions, True)


def decoder_hidden_states(decoder, batch: dict[str, Any], layout: RowLayout, mm_encoder_outputs) -> torch.Tensor:
    """Final hidden states ``[N, L, H]`` of the batch rows (no LM head)."""
    if "packed_segments" in layout.attention_kwargs and not enable_packed_attention(decoder):
        raise ValueError("packed rows with split attention need the language model on sdpa or flash_attention_2")
    out = decoder(input_ids=batch["input_ids"], attention_mask=layout.attention_mask,
                  position_ids=layout.position_ids, mm_encoder_outputs=mm_encoder_outputs, use_cache=False,
                  **layout.attention_kwargs)
    return out.last_hidden_state


@dataclass
class BatchHiddenStates:
    """Final hidden states ``[N, L, H]`` of the rows, and what produced them.

    Attributes:
        policy: the policy's (with the autograd graph when a gradient is taken).
        reference: the reference's (no gradient), or None (precomputed or no reference).
        reference_head: the separate reference model's LM head, or None (the policy's head serves).
        vision_calls: how many times a vision encoder ran for this batch (1 with a shared encoder).
    """

    policy: torch.Tensor
    reference: torch.Tensor | None
    reference_head: torch.nn.Module | None
    vision_calls: int


def batch_hidden_states(backend, batch: dict[str, Any], *, reference: str = "adapter",
                        reference_backend=None) -> BatchHiddenStates:
    """Run the policy (and the reference) over a scoring batch's rows; see the module docstring.

    Args:
        backend: the policy ``VideoLM``.
        batch: a scoring batch on the model's device.
        reference: one of :data:`REFERENCE_SOURCES`.
        reference_backend: the frozen reference ``VideoLM`` for ``reference="model"``.
    """
    if reference not in REFERENCE_SOURCES:
        raise ValueError(f"unknown reference mode {reference!r}; one of {', '.join(REFERENCE_SOURCES)}")
    if reference == "model" and reference_backend is None:
        raise ValueError("reference='model' needs reference_backend")
    decoder = backend.decoder()
    layout = row_layout(batch, backend.position_ids(batch), backend.attention_implementation(),
                        backend.floating_dtype(decoder))
    trainable_vision = backend.vision_is_trainable()
    # A frozen vision path runs without autograd: with gradient checkpointing, transformers makes every
    # input embedding require grad (enable_input_require_grads), which would otherwise make frozen features
    # look trainable, re-encode the video for the reference and back-propagate through the frozen tower.
    with contextlib.nullcontext() if trainable_vision else torch.no_grad():
        features = backend.video_features(batch["vision"])
    vision_calls = 1
    policy = decoder_hidden_states(decoder, batch, layout, backend.mm_encoder_outputs(features, batch))
    reference_hidden, reference_head = None, None
    if reference == "adapter":
        with torch.no_grad(), adapter_disabled(backend.model):
            if trainable_vision:  # a trainable vision part: the reference needs its own features
                features = backend.video_features(batch["vision"])
                vision_calls += 1
            reference_hidden = decoder_hidden_states(decoder, batch, layout,
                                                     backend.mm_encoder_outputs(features, batch))
    elif reference == "model":
        with torch.no_grad():
            ref_features = reference_backend.video_features(batch["vision"])
            vision_calls += 1
            reference_hidden = decoder_hidden_states(reference_backend.decoder(), batch, layout,
                                                     reference_backend.mm_encoder_outputs(ref_features, batch))
            reference_head = reference_backend.lm_head()
    return BatchHiddenStates(policy, reference_hidden, reference_head, vision_calls)

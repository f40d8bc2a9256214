"""Response-only, chunked per-token log-probs and KL: never ``[sequence x vocab]`` logits.

A video LM scores a few dozen response tokens after thousands of video and prompt tokens. Applying the LM
head to every position (as the official RRPO code does) materialises ``[L, V]`` logits -- about 1 GB in bf16
at 3.4k tokens and V = 152k, several times over for policy/reference and log-softmax/KL temporaries -- to
use perhaps 1% of the rows. Here the caller runs the model to its **final hidden states** (before the LM
head), and these functions

1. select only the positions whose *next* label is a response token (shift-aware: the hidden state at
   ``t`` predicts ``labels[t + 1]``; labels are ``-100`` outside the response),
2. apply the LM head, ``log_softmax``, the gather and the KL to chunks of ``chunk_size`` selected positions,
3. wrap each chunk in non-reentrant activation checkpointing when a gradient is needed, so autograd keeps
   only the chunk's inputs and recomputes its ``[chunk, V]`` tensors during backward.

The extra peak memory is therefore ``O(chunk_size x V)`` in the forward *and* the backward pass, plus
``O(N x H)`` for the ``N`` selected hidden states. Results equal the full-logits path (``log_softmax`` of
``lm_head(h)`` at every position, then gather) up to floating-point summation order.

Assumption: the logits are exactly ``lm_head(h)``. That holds for LLaVA-OneVision / LLaVA-Video / Qwen2-VL
with a Qwen2 language model in transformers (no logit soft-capping or scaling). For a model that transforms
the logits (Gemma-2's ``final_logit_softcapping``, Cohere's ``logit_scale``), pass a callable that applies
the head *and* the transform, e.g. ``lambda h: cap * torch.tanh(model.lm_head(h) / cap)``.

Packed order: wherever a function returns or accepts "packed" per-position values (shape ``[N]`` or
``[N, ...]``), they follow the row-major order of :func:`response_mask` (batch row first, then position);
``torch.split(packed, response_mask(labels).sum(1).tolist())`` gives each sequence's part.

Under DeepSpeed ZeRO-3 pass the ``lm_head`` *module* (its forward hooks gather the partitioned weight); a
raw weight tensor would be the empty local shard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from savi_plugin.losses.rrpo import token_kl_from_logprobs

IGNORE_INDEX = -100
DEFAULT_CHUNK_SIZE = 256

# An LM head: an nn.Linear (or any module / callable mapping [n, H] -> [n, V]) or a bare weight [V, H].
LMHead = nn.Module | Callable[[torch.Tensor], torch.Tensor] | torch.Tensor


@dataclass
class ReferenceTokenStats:
    """Reference-model statistics at the selected response positions, packed (see module docstring).

    Attributes:
        token_logps: ``[N]`` reference log-prob of each target token (what DPO and the RRPO reward need).
        full_logprobs: ``[N, V]`` the reference log-softmax at each position (exact KL), or None.
        topk_logprobs: ``[N, k]`` the ``k`` largest reference log-probs at each position, or None.
        topk_indices: ``[N, k]`` their vocabulary ids, or None.
        tail_logmass: ``[N]`` log of the reference probability outside the top ``k`` (``-inf`` if none), or None.
    """

    token_logps: torch.Tensor
    full_logprobs: torch.Tensor | None = None
    topk_logprobs: torch.Tensor | None = None
    topk_indices: torch.Tensor | None = None
    tail_logmass: torch.Tensor | None = None


@dataclass
class ResponseTokenStats:
    """Per-token statistics of a batch, padded to ``[B, L - 1]`` (zeros where ``mask`` is False).

    Attributes:
        mask: ``[B, L-1]`` bool, True where ``labels[:, 1:]`` is a response token (see :func:`response_mask`).
        policy_logps: ``[B, L-1]`` log pi_theta of the next label (carries the gradient).
        reference_logps: ``[B, L-1]`` log pi_ref of the next label (no gradient), or None without a reference.
        kl: ``[B, L-1]`` ``KL(pi_ref || pi_theta)`` of the next-token distributions (gradient through the
            policy), or None when not requested.
    """

    mask: torch.Tensor
    policy_logps: torch.Tensor
    reference_logps: torch.Tensor | None = None
    kl: torch.Tensor | None = None


def response_mask(labels: torch.Tensor) -> torch.Tensor:
    """``[B, L-1]`` bool: True at hidden position ``t`` when ``labels[:, t + 1]`` is a response token.

    Args:
        labels: ``[B, L]`` target ids, ``-100`` outside the response (prompt, video, padding).
    """
    if labels.dim() != 2:
        raise ValueError(f"labels must be [B, L], got shape {tuple(labels.shape)}")
    return labels[:, 1:] != IGNORE_INDEX


def _head_fn(lm_head: LMHead) -> Callable[[torch.Tensor], torch.Tensor]:
    if isinstance(lm_head, torch.Tensor):
        if lm_head.dim() != 2:
            raise ValueError(f"an lm_head weight must be [V, H], got shape {tuple(lm_head.shape)}")
        return lambda hidden: F.linear(hidden, lm_head)
    if callable(lm_head):
        return lm_head
    raise TypeError(f"lm_head must be an nn.Module, a callable or a [V, H] weight, got {type(lm_head).__name__}")


def _head_needs_grad(lm_head: LMHead) -> bool:
    if isinstance(lm_head, torch.Tensor):
        return lm_head.requires_grad
    if isinstance(lm_head, nn.Module):
        return any(p.requires_grad for p in lm_head.parameters())
    return True  # an opaque callable may close over trainable weights


def _log_softmax_fp32(logits: torch.Tensor) -> torch.Tensor:
    # Half-precision log-softmax over a large vocabulary loses the small differences the losses use.
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return F.log_softmax(logits, dim=-1)


def _select(hidden_states: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if hidden_states.dim() != 3 or hidden_states.shape[:2] != labels.shape:
        raise ValueError(f"hidden_states {tuple(hidden_states.shape)} must be [B, L, H] with [B, L] = labels "
                         f"{tuple(labels.shape)}")
    mask = response_mask(labels)
    return hidden_states[:, :-1][mask], labels[:, 1:][mask], mask


def _unpack(packed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return packed.new_zeros(mask.shape).masked_scatter(mask, packed)


def _topk_kl(policy_logits: torch.Tensor, topk_logprobs: torch.Tensor, topk_indices: torch.Tensor,
             tail_logmass: torch.Tensor) -> torch.Tensor:
    """KL between the (k+1)-bin coarsenings {top-k tokens, everything else} of ref and policy.

    By the data-processing inequality this is a lower bound on the exact KL, equal to it when the reference
    puts no mass outside its top k. Both tail masses are computed with logsumexp, never as ``1 - sum``.
    """
    logits = policy_logits.float() if policy_logits.dtype in (torch.float16, torch.bfloat16) else policy_logits
    lse = logits.logsumexp(-1, keepdim=True)
    policy_topk = logits.gather(-1, topk_indices) - lse
    policy_tail = logits.scatter(-1, topk_indices, float("-inf")).logsumexp(-1) - lse.squeeze(-1)
    ref_topk = topk_logprobs.to(policy_topk.dtype)
    ref_tail = tail_logmass.to(policy_topk.dtype)
    head = token_kl_from_logprobs(ref_topk, policy_topk)
    tail_p = ref_tail.exp()
    tail = torch.where(tail_p > 0, tail_p * (ref_tail - policy_tail), torch.zeros_like(tail_p))
    return head + tail


def _chunk_stats(policy_hidden, targets, reference_hidden, reference_full, topk_logprobs, topk_indices,
                 tail_logmass, *, head, reference_head, compute_kl):
    """Per-position (policy logp, reference logp, kl) for one chunk; every [chunk, V] tensor dies here."""
    policy_logits = head(policy_hidden)
    policy_logprobs = _log_softmax_fp32(policy_logits)
    index = targets.unsqueeze(-1)
    policy_logps = policy_logprobs.gather(-1, index).squeeze(-1)
    reference_logprobs = None
    if reference_hidden is not None:
        with torch.no_grad():
            reference_logprobs = _log_softmax_fp32(reference_head(reference_hidden))
    elif reference_full is not None:
        reference_logprobs = reference_full.to(policy_logprobs.dtype)
    reference_logps = None if reference_logprobs is None else reference_logprobs.gather(-1, index).squeeze(-1)
    kl = None
    if compute_kl:
        if reference_logprobs is not None:
            kl = token_kl_from_logprobs(reference_logprobs.detach(), policy_logprobs)
        else:
            kl = _topk_kl(policy_logits, topk_logprobs, topk_indices, tail_logmass)
    return policy_logps, reference_logps, kl


def response_token_stats(
    hidden_states: torch.Tensor,
    lm_head: LMHead,
    labels: torch.Tensor,
    *,
    reference_hidden_states: torch.Tensor | None = None,
    reference_lm_head: LMHead | None = None,
    reference: ReferenceTokenStats | None = None,
    compute_kl: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    checkpoint_chunks: bool = True,
) -> ResponseTokenStats:
    """Policy log-probs, and optionally reference log-probs and KL(ref || policy), at response tokens only.

    Args:
        hidden_states: ``[B, L, H]`` the policy's final hidden states (the input of its LM head).
        lm_head: the policy's LM head: an ``nn.Linear``, any module/callable ``[n, H] -> [n, V]``, or a
            ``[V, H]`` weight. The logits are assumed to be exactly ``lm_head(h)`` (see module docstring).
        labels: ``[B, L]`` target ids aligned with ``hidden_states``, ``-100`` outside the response.
        reference_hidden_states: ``[B, L, H]`` the reference model's final hidden states for the same
            inputs (e.g. from the policy with its LoRA adapter disabled, under ``no_grad``); exact reference.
        reference_lm_head: the reference's LM head; defaults to ``lm_head`` (LoRA leaves the head alone).
        reference: precomputed :class:`ReferenceTokenStats` for the same positions, packed, instead of
            reference hidden states. ``full_logprobs`` gives the exact KL; top-k fields give the lower-bound
            approximation of ``_topk_kl``.
        compute_kl: also return the per-token KL(pi_ref || pi_theta) (needs a reference with a distribution).
            RRPO needs it on the chosen rows only: call this once for the chosen and once for the rejected
            half rather than computing a KL that is thrown away.
        chunk_size: selected positions per LM-head call; the extra peak memory is ``O(chunk_size x V)``.
        checkpoint_chunks: recompute each chunk in backward instead of keeping its ``[chunk, V]`` tensors
            (only matters when a gradient is being taken).

    Returns:
        :class:`ResponseTokenStats`, padded to ``[B, L-1]`` with zeros at non-response positions.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if reference_hidden_states is not None and reference is not None:
        raise ValueError("give either reference_hidden_states or a precomputed reference, not both")
    policy_hidden, targets, mask = _select(hidden_states, labels)
    count = targets.shape[0]
    reference_selected = None
    if reference_hidden_states is not None:
        if reference_hidden_states.shape != hidden_states.shape:
            raise ValueError(f"reference_hidden_states {tuple(reference_hidden_states.shape)} must match "
                             f"hidden_states {tuple(hidden_states.shape)}")
        reference_selected = reference_hidden_states[:, :-1][mask].detach()
    if reference is not None and reference.token_logps.shape[0] != count:
        raise ValueError(f"precomputed reference has {reference.token_logps.shape[0]} positions, the labels "
                         f"select {count}")
    has_distribution = reference_selected is not None or (reference is not None and (
        reference.full_logprobs is not None or reference.topk_logprobs is not None))
    if compute_kl and not has_distribution:
        raise ValueError("compute_kl needs reference_hidden_states or a precomputed reference with "
                         "full_logprobs or top-k fields")
    head = _head_fn(lm_head)
    reference_head = _head_fn(reference_lm_head if reference_lm_head is not None else lm_head)
    use_checkpoint = checkpoint_chunks and torch.is_grad_enabled() and (
        policy_hidden.requires_grad or _head_needs_grad(lm_head))

    def piece(tensor, start, end):
        return None if tensor is None else tensor[start:end]

    policy_parts, reference_parts, kl_parts = [], [], []
    for start in range(0, count, chunk_size):
        end = min(start + chunk_size, count)
        args = (policy_hidden[start:end], targets[start:end], piece(reference_selected, start, end),
                piece(getattr(reference, "full_logprobs", None), start, end),
                piece(getattr(reference, "topk_logprobs", None), start, end),
                piece(getattr(reference, "topk_indices", None), start, end),
                piece(getattr(reference, "tail_logmass", None), start, end))
        kwargs = {"head": head, "reference_head": reference_head, "compute_kl": compute_kl}
        if use_checkpoint:
            policy_logps, reference_logps, kl = checkpoint(_chunk_stats, *args, use_reentrant=False, **kwargs)
        else:
            policy_logps, reference_logps, kl = _chunk_stats(*args, **kwargs)
        policy_parts.append(policy_logps)
        reference_parts.append(reference_logps)
        kl_parts.append(kl)

    out_dtype = torch.promote_types(hidden_states.dtype, torch.float32)
    if count == 0:
        def zeros():
            return hidden_states.new_zeros(mask.shape, dtype=out_dtype)
        has_reference = reference is not None or reference_selected is not None
        return ResponseTokenStats(mask, zeros(), zeros() if has_reference else None, zeros() if compute_kl else None)
    policy_logps = _unpack(torch.cat(policy_parts), mask)
    if reference is not None:
        reference_logps = _unpack(reference.token_logps.to(policy_logps.dtype), mask)
    elif reference_selected is not None:
        reference_logps = _unpack(torch.cat(reference_parts), mask)
    else:
        reference_logps = None
    kl = _unpack(torch.cat(kl_parts), mask) if compute_kl else None
    return ResponseTokenStats(mask, policy_logps, reference_logps, kl)


def response_token_logprobs(
    hidden_states: torch.Tensor,
    lm_head: LMHead,
    labels: torch.Tensor,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    packed: bool = False,
) -> torch.Tensor:
    """Per-token log-prob of each response token, computed at response positions only.

    Args:
        hidden_states: ``[B, L, H]`` final hidden states (before the LM head).
        lm_head: LM head module / callable / ``[V, H]`` weight (logits assumed to be ``lm_head(h)``).
        labels: ``[B, L]`` target ids, ``-100`` outside the response; ``hidden_states[:, t]`` scores
            ``labels[:, t + 1]``.
        chunk_size: positions per LM-head call (extra peak memory ``O(chunk_size x V)``).
        packed: return ``[N]`` in packed order instead of ``[B, L-1]`` padded with zeros.

    Returns:
        ``[B, L-1]`` (or ``[N]``) log-probs in at least fp32; sum over the last dim for a sequence log-prob.
    """
    stats = response_token_stats(hidden_states, lm_head, labels, chunk_size=chunk_size)
    return stats.policy_logps[stats.mask] if packed else stats.policy_logps


def response_token_kl(
    hidden_states: torch.Tensor,
    lm_head: LMHead,
    labels: torch.Tensor,
    *,
    reference_hidden_states: torch.Tensor | None = None,
    reference_lm_head: LMHead | None = None,
    reference: ReferenceTokenStats | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    packed: bool = False,
) -> torch.Tensor:
    """Per-token ``KL(pi_ref || pi_theta)`` over the full vocabulary, at response positions only.

    Arguments as in :func:`response_token_stats`; one of ``reference_hidden_states`` or ``reference`` is
    required. Returns ``[B, L-1]`` padded with zeros (or ``[N]`` packed); the gradient flows to the policy.
    """
    stats = response_token_stats(hidden_states, lm_head, labels, reference_hidden_states=reference_hidden_states,
                                 reference_lm_head=reference_lm_head, reference=reference, compute_kl=True,
                                 chunk_size=chunk_size)
    return stats.kl[stats.mask] if packed else stats.kl


@torch.no_grad()
def precompute_reference(
    hidden_states: torch.Tensor,
    lm_head: LMHead,
    labels: torch.Tensor,
    *,
    top_k: int | None = None,
    full: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    store_dtype: torch.dtype = torch.float32,
) -> ReferenceTokenStats:
    """Reference statistics to store beside a dataset, so training needs no reference forward pass.

    Args:
        hidden_states: ``[B, L, H]`` the reference model's final hidden states.
        lm_head: the reference's LM head (module / callable / ``[V, H]`` weight).
        labels: ``[B, L]`` target ids, ``-100`` outside the response.
        top_k: also keep the ``k`` largest log-probs per position and the log-mass of the rest (for the
            approximate KL; ``N x k`` values). None: skip.
        full: also keep the full ``[N, V]`` log-softmax (exact KL; ``N x V`` values, e.g. 64 tokens x 152k
            x 4 bytes = 39 MB per response, so usually only for small vocabularies).
        chunk_size: positions per LM-head call.
        store_dtype: dtype of the stored float tensors.

    Returns:
        :class:`ReferenceTokenStats`, packed in the order of :func:`response_mask` (``token_logps`` always).
    """
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    selected, targets, _ = _select(hidden_states, labels)
    head = _head_fn(lm_head)
    token_parts, full_parts, topk_parts, index_parts, tail_parts = [], [], [], [], []
    for start in range(0, targets.shape[0], chunk_size):
        logprobs = _log_softmax_fp32(head(selected[start:start + chunk_size]))
        token_parts.append(logprobs.gather(-1, targets[start:start + chunk_size].unsqueeze(-1)).squeeze(-1))
        if full:
            full_parts.append(logprobs.to(store_dtype))
        if top_k is not None:
            values, indices = logprobs.topk(min(top_k, logprobs.shape[-1]), dim=-1)
            tail = logprobs.scatter(-1, indices, float("-inf")).logsumexp(-1)
            topk_parts.append(values.to(store_dtype))
            index_parts.append(indices)
            tail_parts.append(tail.to(store_dtype))

    def cat(parts, trailing=(), dtype=store_dtype):
        if parts:
            return torch.cat(parts)
        return torch.empty((0, *trailing), dtype=dtype, device=hidden_states.device)

    full_logprobs = None
    if full:
        # An empty selection still needs the vocabulary width for the documented [0, V] shape.
        vocab = full_parts[0].shape[-1] if full_parts else head(hidden_states[0, :1]).shape[-1]
        full_logprobs = cat(full_parts, (vocab,))
    return ReferenceTokenStats(
        token_logps=cat([part.to(store_dtype) for part in token_parts]),
        full_logprobs=full_logprobs,
        topk_logprobs=cat(topk_parts, (top_k,)) if top_k is not None else None,
        topk_indices=cat(index_parts, (top_k,), torch.long) if top_k is not None else None,
        tail_logmass=cat(tail_parts) if top_k is not None else None,
    )

"""Response-only, chunked per-token log-probs and KL: never ``[sequence x vocab]`` logits.

A video LM scores a few dozen response tokens after thousands of video and prompt tokens. Applying the LM
head to every position (as the official RRPO code does) materialises ``[L, V]`` logits -- about 1 GB in bf16
at 3.4k tokens and V = 152k, several times over for policy/reference and log-softmax/KL temporaries -- to
use perhaps 1% of the rows. Here the caller runs the model to its **final hidden states** (before the LM
head), and these functions

1. take only the hidden states that predict a response token, **aligned** with their targets: ``hidden[:, j]``
   predicts ``targets[:, j]`` (the one shift convention of the project: the caller gathers the state at
   ``t - 1`` for the token at ``t``, see :func:`savi_plugin.training.packing.response_positions`); targets are
   ``-100`` on padding,
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
``[N, ...]``), they follow the row-major order of ``targets != -100`` (batch row first, then position);
``torch.split(packed, (targets != -100).sum(1).tolist())`` gives each response's part.

This module is the arithmetic of :func:`savi_plugin.training.scoring.score_responses`, the one scoring path
(trainer, reference precompute, eval log-likelihood); nothing else applies an LM head to score a response.

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
from savi_plugin.models.backends.tokens import IGNORE_INDEX

DEFAULT_CHUNK_SIZE = 256
#: KL directions: RRPO regularises with KL(ref || policy); TDPO's sequential KL is KL(policy || ref).
KL_DIRECTIONS = ("ref||policy", "policy||ref")

# An LM head: an nn.Linear (or any module / callable mapping [n, H] -> [n, V]) or a bare weight [V, H].
LMHead = nn.Module | Callable[[torch.Tensor], torch.Tensor] | torch.Tensor


@dataclass
class ReferenceTokenStats:
    """A model's statistics at the selected response positions, packed (see module docstring).

    Stored by the reference precompute and read back as the reference of a training batch.

    Attributes:
        token_logps: ``[N]`` log-prob of each target token (what DPO and the RRPO reward need).
        full_logprobs: ``[N, V]`` the log-softmax at each position (exact KL), or None.
        topk_logprobs: ``[N, k]`` the ``k`` largest log-probs at each position, or None.
        topk_indices: ``[N, k]`` their vocabulary ids, or None.
        tail_logmass: ``[N]`` log of the probability outside the top ``k`` (``-inf`` if none), or None.
    """

    token_logps: torch.Tensor
    full_logprobs: torch.Tensor | None = None
    topk_logprobs: torch.Tensor | None = None
    topk_indices: torch.Tensor | None = None
    tail_logmass: torch.Tensor | None = None


@dataclass
class ResponseTokenStats:
    """Per-token statistics of a batch of responses, padded to ``[B, T]`` (zeros where ``mask`` is False).

    Attributes:
        mask: ``[B, T]`` bool, True at real response tokens (``targets != -100``).
        policy_logps: ``[B, T]`` log pi_theta of each target token (carries the gradient).
        reference_logps: ``[B, T]`` log pi_ref of each target (no gradient), or None without a reference.
        kl: ``[B, T]`` the per-position KL in the requested direction (gradient through the policy), or None.
        greedy: ``[B, T]`` bool, True where the target is the policy's arg-max, or None when not requested.
        kept: the scored model's own packed statistics (top-k / full) when requested, or None.
    """

    mask: torch.Tensor
    policy_logps: torch.Tensor
    reference_logps: torch.Tensor | None = None
    kl: torch.Tensor | None = None
    greedy: torch.Tensor | None = None
    kept: ReferenceTokenStats | None = None

    def total(self, values: torch.Tensor | None = None, *, normalize: bool = False) -> torch.Tensor:
        """``[B]``: the sum over each response's tokens of ``values`` (default the policy log-probs); the mean
        per token with ``normalize`` (length normalisation; an empty response gives 0)."""
        values = self.policy_logps if values is None else values
        summed = torch.where(self.mask, values, torch.zeros_like(values)).sum(-1)
        return summed / self.mask.sum(-1).clamp(min=1) if normalize else summed


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


def _unpack(packed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return packed.new_zeros(mask.shape).masked_scatter(mask, packed)


def _topk_kl(policy_logits: torch.Tensor, topk_logprobs: torch.Tensor, topk_indices: torch.Tensor,
             tail_logmass: torch.Tensor, direction: str) -> torch.Tensor:
    """KL between the (k+1)-bin coarsenings {top-k tokens of the reference, everything else} of ref and policy.

    By the data-processing inequality this is a lower bound on the exact KL (either direction), equal to it
    when the reference puts no mass outside its top k. Both tail masses are computed with logsumexp, never as
    ``1 - sum``.
    """
    logits = policy_logits.float() if policy_logits.dtype in (torch.float16, torch.bfloat16) else policy_logits
    lse = logits.logsumexp(-1, keepdim=True)
    policy_topk = logits.gather(-1, topk_indices) - lse
    policy_tail = logits.scatter(-1, topk_indices, float("-inf")).logsumexp(-1) - lse.squeeze(-1)
    ref_topk = topk_logprobs.to(policy_topk.dtype)
    ref_tail = tail_logmass.to(policy_topk.dtype)
    if direction == "policy||ref":
        (p_head, p_tail), (q_head, q_tail) = (policy_topk, policy_tail), (ref_topk, ref_tail)
    else:
        (p_head, p_tail), (q_head, q_tail) = (ref_topk, ref_tail), (policy_topk, policy_tail)
    head = token_kl_from_logprobs(p_head, q_head)
    tail_p = p_tail.exp()
    tail = torch.where(tail_p > 0, tail_p * (p_tail - q_tail), torch.zeros_like(tail_p))
    return head + tail


def _chunk_stats(policy_hidden, targets, reference_hidden, reference_full, topk_logprobs, topk_indices,
                 tail_logmass, *, head, reference_head, kl, keep_top_k, keep_full, greedy):
    """Per-position statistics for one chunk; every [chunk, V] tensor dies here."""
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
    position_kl = None
    if kl is not None and reference_logprobs is not None:
        ref = reference_logprobs.detach()
        position_kl = (token_kl_from_logprobs(ref, policy_logprobs) if kl == "ref||policy"
                       else token_kl_from_logprobs(policy_logprobs, ref))
    elif kl is not None:
        position_kl = _topk_kl(policy_logits, topk_logprobs, topk_indices, tail_logmass, kl)
    extra = []
    if greedy:
        extra.append(policy_logits.argmax(-1) == targets)
    if keep_full:
        extra.append(policy_logprobs.detach())
    if keep_top_k is not None:
        values, indices = policy_logprobs.detach().topk(min(keep_top_k, policy_logprobs.shape[-1]), dim=-1)
        extra += [values, indices, policy_logprobs.detach().scatter(-1, indices, float("-inf")).logsumexp(-1)]
    return (policy_logps, reference_logps, position_kl, *extra)


def response_token_stats(
    hidden_states: torch.Tensor,
    lm_head: LMHead,
    targets: torch.Tensor,
    *,
    reference_hidden_states: torch.Tensor | None = None,
    reference_lm_head: LMHead | None = None,
    reference: ReferenceTokenStats | None = None,
    kl: str | None = None,
    greedy: bool = False,
    keep_top_k: int | None = None,
    keep_full: bool = False,
    store_dtype: torch.dtype = torch.float32,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    checkpoint_chunks: bool = True,
) -> ResponseTokenStats:
    """Policy log-probs, and optionally reference log-probs, per-token KL and stored statistics, at response
    tokens only.

    Args:
        hidden_states: ``[B, T, H]`` the hidden states that predict each response token (the input of the LM
            head), aligned with ``targets``: ``hidden_states[:, j]`` predicts ``targets[:, j]``.
        lm_head: the policy's LM head: an ``nn.Linear``, any module/callable ``[n, H] -> [n, V]``, or a
            ``[V, H]`` weight. The logits are assumed to be exactly ``lm_head(h)`` (see module docstring).
        targets: ``[B, T]`` response token ids, ``-100`` on padding.
        reference_hidden_states: ``[B, T, H]`` the reference model's hidden states at the same positions
            (e.g. from the policy with its LoRA adapter disabled, under ``no_grad``); exact reference.
        reference_lm_head: the reference's LM head; defaults to ``lm_head`` (LoRA leaves the head alone).
        reference: precomputed :class:`ReferenceTokenStats` for the same positions, packed, instead of
            reference hidden states. ``full_logprobs`` gives the exact KL; top-k fields give the lower-bound
            approximation of ``_topk_kl``.
        kl: also return the per-token KL, ``"ref||policy"`` (RRPO) or ``"policy||ref"`` (TDPO); needs a
            reference with a distribution.
        greedy: also return whether each target is the policy's arg-max (eval's ``is_greedy``).
        keep_top_k, keep_full: also return the scored model's own top-``k`` log-probs with the log-mass of the
            rest, or its full log-softmax, packed (``kept``; what the reference precompute stores).
        store_dtype: dtype of the kept float tensors.
        chunk_size: selected positions per LM-head call; the extra peak memory is ``O(chunk_size x V)``.
        checkpoint_chunks: recompute each chunk in backward instead of keeping its ``[chunk, V]`` tensors
            (only matters when a gradient is being taken).

    Returns:
        :class:`ResponseTokenStats`, padded to ``[B, T]`` with zeros at padding.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if keep_top_k is not None and keep_top_k < 1:
        raise ValueError(f"keep_top_k must be >= 1 or None, got {keep_top_k}")
    if kl is not None and kl not in KL_DIRECTIONS:
        raise ValueError(f"kl must be one of {', '.join(KL_DIRECTIONS)} or None, got {kl!r}")
    if reference_hidden_states is not None and reference is not None:
        raise ValueError("give either reference_hidden_states or a precomputed reference, not both")
    if hidden_states.dim() != 3 or hidden_states.shape[:2] != targets.shape:
        raise ValueError(f"hidden_states {tuple(hidden_states.shape)} must be [B, T, H] with [B, T] = targets "
                         f"{tuple(targets.shape)}")
    mask = targets != IGNORE_INDEX
    policy_hidden, selected = hidden_states[mask], targets[mask]
    count = selected.shape[0]
    reference_selected = None
    if reference_hidden_states is not None:
        if reference_hidden_states.shape != hidden_states.shape:
            raise ValueError(f"reference_hidden_states {tuple(reference_hidden_states.shape)} must match "
                             f"hidden_states {tuple(hidden_states.shape)}")
        reference_selected = reference_hidden_states[mask].detach()
    if reference is not None and reference.token_logps.shape[0] != count:
        raise ValueError(f"precomputed reference has {reference.token_logps.shape[0]} positions, the targets "
                         f"select {count}")
    has_distribution = reference_selected is not None or (reference is not None and (
        reference.full_logprobs is not None or reference.topk_logprobs is not None))
    if kl is not None and not has_distribution:
        raise ValueError("kl needs reference_hidden_states or a precomputed reference with full_logprobs or "
                         "top-k fields")
    head = _head_fn(lm_head)
    reference_head = _head_fn(reference_lm_head if reference_lm_head is not None else lm_head)
    use_checkpoint = checkpoint_chunks and torch.is_grad_enabled() and (
        policy_hidden.requires_grad or _head_needs_grad(lm_head))

    def piece(tensor, start, end):
        return None if tensor is None else tensor[start:end]

    options = {"head": head, "reference_head": reference_head, "kl": kl, "keep_top_k": keep_top_k,
               "keep_full": keep_full, "greedy": greedy}
    parts: list[tuple] = []
    for start in range(0, count, chunk_size):
        end = min(start + chunk_size, count)
        args = (policy_hidden[start:end], selected[start:end], piece(reference_selected, start, end),
                piece(getattr(reference, "full_logprobs", None), start, end),
                piece(getattr(reference, "topk_logprobs", None), start, end),
                piece(getattr(reference, "topk_indices", None), start, end),
                piece(getattr(reference, "tail_logmass", None), start, end))
        if use_checkpoint:
            parts.append(checkpoint(_chunk_stats, *args, use_reentrant=False, **options))
        else:
            parts.append(_chunk_stats(*args, **options))
    columns = list(zip(*parts)) if parts else []

    def column(i, trailing=(), dtype=None):
        if columns:
            return torch.cat(columns[i])
        return torch.empty((0, *trailing), dtype=dtype or torch.float32, device=hidden_states.device)

    out_dtype = torch.promote_types(hidden_states.dtype, torch.float32)
    policy_logps = _unpack(column(0).to(out_dtype), mask)
    if reference is not None:
        reference_logps = _unpack(reference.token_logps.to(out_dtype), mask)
    elif reference_selected is not None:
        reference_logps = _unpack(column(1).to(out_dtype), mask) if columns else torch.zeros_like(policy_logps)
    else:
        reference_logps = None
    position_kl = (_unpack(column(2).to(out_dtype), mask) if columns else torch.zeros_like(policy_logps)) \
        if kl is not None else None
    i = 3
    greedy_flags = None
    if greedy:
        greedy_flags = torch.zeros(mask.shape, dtype=torch.bool, device=mask.device)
        if columns:
            greedy_flags[mask] = column(i)
        i += 1
    kept = None
    if keep_full or keep_top_k is not None:
        kept = ReferenceTokenStats(token_logps=column(0).to(store_dtype).detach())
        if keep_full:
            vocab = columns[i][0].shape[-1] if columns else head(hidden_states.reshape(-1, hidden_states.shape[-1])[:1]
                                                                 ).shape[-1]
            kept.full_logprobs = column(i, (vocab,)).to(store_dtype)
            i += 1
        if keep_top_k is not None:
            kept.topk_logprobs = column(i, (keep_top_k,)).to(store_dtype)
            kept.topk_indices = column(i + 1, (keep_top_k,), torch.long)
            kept.tail_logmass = column(i + 2).to(store_dtype)
    return ResponseTokenStats(mask, policy_logps, reference_logps, position_kl, greedy_flags, kept)

"""Response-only, chunked per-token log-probs and KL: never ``[sequence x vocab]`` logits.

A video LM scores a few dozen response tokens after thousands of video and prompt tokens. Applying the LM
head to every position (as the official RRPO code does) materialises ``[L, V]`` logits -- about 1 GB in bf16
at 3.4k tokens and V = 152k, several times over for policy/reference and log-softmax/KL temporaries -- to
use perhaps 1% of the rows. Here the caller runs the model to its **final hidden states** (before the LM
head), and these functions

1. take only the hidden states that predict a response token, **aligned** with their targets: ``hidden[:, j]``
   predicts ``targets[:, j]`` (the one shift convention of the project: the caller gathers the state at
   ``t - 1`` for the token at ``t``, see :func:`savi_plugin.training.batch.response_positions`); targets are
   ``-100`` on padding,
2. apply the LM head, ``log_softmax``, the gather and the KL (:func:`token_kl`, the one KL formula) to chunks of
   ``chunk_size`` selected positions,
3. wrap each chunk in non-reentrant activation checkpointing when a gradient is needed, so autograd keeps
   only the chunk's inputs and recomputes its ``[chunk, V]`` tensors during backward.

The extra peak memory is therefore ``O(chunk_size x V)`` in the forward *and* the backward pass, plus
``O(N x H)`` for the ``N`` selected hidden states. Results equal the full-logits path (``log_softmax`` of
``lm_head(h)`` at every position, then gather) up to floating-point summation order.

Assumption: the logits are exactly ``lm_head(h)``. That holds for LLaVA-OneVision / LLaVA-Video / Qwen2-VL
with a Qwen2 language model in transformers (no logit soft-capping or scaling). For a model that transforms
the logits (Gemma-2's ``final_logit_softcapping``, Cohere's ``logit_scale``), pass a callable that applies
the head *and* the transform, e.g. ``lambda h: cap * torch.tanh(model.lm_head(h) / cap)``.

This module is the arithmetic of :func:`savi_plugin.training.scoring.score_responses`, the one scoring path
(trainer, eval log-likelihood); nothing else applies an LM head to score a response.

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

from savi_plugin.constants import KL_DIRECTIONS
from savi_plugin.losses.base import masked_sum
from savi_plugin.models.backends.tokens import IGNORE_INDEX

DEFAULT_CHUNK_SIZE = 256

# An LM head: an nn.Linear (or any module / callable mapping [n, H] -> [n, V]) or a bare weight [V, H].
LMHead = nn.Module | Callable[[torch.Tensor], torch.Tensor] | torch.Tensor


@dataclass
class ResponseTokenStats:
    """Per-token statistics of a batch of responses, padded to ``[B, T]`` (zeros where ``mask`` is False).

    Attributes:
        mask: ``[B, T]`` bool, True at real response tokens (``targets != -100``).
        policy_logps: ``[B, T]`` log pi_theta of each target token (carries the gradient).
        reference_logps: ``[B, T]`` log pi_ref of each target (no gradient), or None without a reference.
        kl: ``[B, T]`` the per-position KL in the requested direction (gradient through the policy), or None.
        greedy: ``[B, T]`` bool, True where the target is the policy's arg-max, or None when not requested.
    """

    mask: torch.Tensor
    policy_logps: torch.Tensor
    reference_logps: torch.Tensor | None = None
    kl: torch.Tensor | None = None
    greedy: torch.Tensor | None = None

    def total(self, values: torch.Tensor | None = None, *, normalize: bool = False) -> torch.Tensor:
        """``[B]``: the sum over each response's tokens of ``values`` (default the policy log-probs); the mean
        per token with ``normalize`` (length normalisation; an empty response gives 0)."""
        summed = masked_sum(self.policy_logps if values is None else values, self.mask)
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


def token_kl(p_logprobs: torch.Tensor, q_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-position ``KL(p || q) = sum_v exp(p_v) * (p_v - q_v)`` over the last dim, from normalised log-probs.

    RRPO's regulariser is ``KL(ref || policy)`` (``p`` = reference; Sarkar et al., arXiv 2504.12083, eq. 6);
    TDPO's sequential KL is ``KL(policy || ref)`` (Zeng et al., arXiv 2404.11999). Vocabulary entries where
    ``p`` is exactly 0 contribute 0 (``xlogy`` convention), so ``-inf`` log-probs never produce ``nan``.
    """
    p_probs = p_logprobs.exp()
    # where p == 0 the term is 0 by convention; torch.where keeps -inf - x from turning into nan.
    diff = torch.where(p_probs > 0, p_logprobs - q_logprobs, torch.zeros_like(q_logprobs))
    return (p_probs * diff).sum(-1)


def _chunk_stats(policy_hidden, targets, reference_hidden, *, head, reference_head, kl, greedy):
    """Per-position statistics for one chunk; every [chunk, V] tensor dies here."""
    policy_logits = head(policy_hidden)
    policy_logprobs = _log_softmax_fp32(policy_logits)
    index = targets.unsqueeze(-1)
    policy_logps = policy_logprobs.gather(-1, index).squeeze(-1)
    reference_logps = position_kl = None
    if reference_hidden is not None:
        with torch.no_grad():
            reference_logprobs = _log_softmax_fp32(reference_head(reference_hidden))
        reference_logps = reference_logprobs.gather(-1, index).squeeze(-1)
        if kl is not None:
            position_kl = (token_kl(reference_logprobs, policy_logprobs) if kl == "ref||policy"
                           else token_kl(policy_logprobs, reference_logprobs))
    extra = (policy_logits.argmax(-1) == targets,) if greedy else ()
    return (policy_logps, reference_logps, position_kl, *extra)


def response_token_stats(
    hidden_states: torch.Tensor,
    lm_head: LMHead,
    targets: torch.Tensor,
    *,
    reference_hidden_states: torch.Tensor | None = None,
    reference_lm_head: LMHead | None = None,
    kl: str | None = None,
    greedy: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    checkpoint_chunks: bool = True,
) -> ResponseTokenStats:
    """Policy log-probs, and optionally reference log-probs and the per-token KL, at response tokens only.

    Args:
        hidden_states: ``[B, T, H]`` the hidden states that predict each response token (the input of the LM
            head), aligned with ``targets``: ``hidden_states[:, j]`` predicts ``targets[:, j]``.
        lm_head: the policy's LM head: an ``nn.Linear``, any module/callable ``[n, H] -> [n, V]``, or a
            ``[V, H]`` weight. The logits are assumed to be exactly ``lm_head(h)`` (see module docstring).
        targets: ``[B, T]`` response token ids, ``-100`` on padding.
        reference_hidden_states: ``[B, T, H]`` the reference model's hidden states at the same positions
            (e.g. from the policy with its LoRA adapter disabled, under ``no_grad``).
        reference_lm_head: the reference's LM head; defaults to ``lm_head`` (LoRA leaves the head alone).
        kl: also return the per-token KL (:func:`token_kl`), ``"ref||policy"`` (RRPO) or ``"policy||ref"``
            (TDPO); needs the reference.
        greedy: also return whether each target is the policy's arg-max (eval's ``is_greedy``).
        chunk_size: selected positions per LM-head call; the extra peak memory is ``O(chunk_size x V)``.
        checkpoint_chunks: recompute each chunk in backward instead of keeping its ``[chunk, V]`` tensors
            (only matters when a gradient is being taken).

    Returns:
        :class:`ResponseTokenStats`, padded to ``[B, T]`` with zeros at padding.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if kl is not None and kl not in KL_DIRECTIONS:
        raise ValueError(f"kl must be one of {', '.join(KL_DIRECTIONS)} or None, got {kl!r}")
    if hidden_states.dim() != 3 or hidden_states.shape[:2] != targets.shape:
        raise ValueError(f"hidden_states {tuple(hidden_states.shape)} must be [B, T, H] with [B, T] = targets "
                         f"{tuple(targets.shape)}")
    if kl is not None and reference_hidden_states is None:
        raise ValueError("kl needs reference_hidden_states")
    mask = targets != IGNORE_INDEX
    policy_hidden, selected = hidden_states[mask], targets[mask]
    count = selected.shape[0]
    reference_selected = None
    if reference_hidden_states is not None:
        if reference_hidden_states.shape != hidden_states.shape:
            raise ValueError(f"reference_hidden_states {tuple(reference_hidden_states.shape)} must match "
                             f"hidden_states {tuple(hidden_states.shape)}")
        reference_selected = reference_hidden_states[mask].detach()
    head = _head_fn(lm_head)
    reference_head = _head_fn(reference_lm_head if reference_lm_head is not None else lm_head)
    use_checkpoint = checkpoint_chunks and torch.is_grad_enabled() and (
        policy_hidden.requires_grad or _head_needs_grad(lm_head))

    options = {"head": head, "reference_head": reference_head, "kl": kl, "greedy": greedy}
    parts: list[tuple] = []
    for start in range(0, count, chunk_size):
        end = min(start + chunk_size, count)
        args = (policy_hidden[start:end], selected[start:end],
                None if reference_selected is None else reference_selected[start:end])
        if use_checkpoint:
            parts.append(checkpoint(_chunk_stats, *args, use_reentrant=False, **options))
        else:
            parts.append(_chunk_stats(*args, **options))
    columns = list(zip(*parts)) if parts else []
    out_dtype = torch.promote_types(hidden_states.dtype, torch.float32)

    def column(i):
        if not columns:
            return torch.zeros(mask.shape, dtype=out_dtype, device=hidden_states.device)
        return _unpack(torch.cat(columns[i]).to(out_dtype), mask)

    policy_logps = column(0)
    reference_logps = column(1) if reference_selected is not None else None
    position_kl = column(2) if kl is not None else None
    greedy_flags = None
    if greedy:
        greedy_flags = torch.zeros(mask.shape, dtype=torch.bool, device=mask.device)
        if columns:
            greedy_flags[mask] = torch.cat(columns[3])
    return ResponseTokenStats(mask, policy_logps, reference_logps, position_kl, greedy_flags)

"""RRPO: refined regularized preference optimisation (Sarkar et al., arXiv 2504.12083, NeurIPS 2025).

The loss of one pair (chosen ``y+``, rejected ``y-``, prompt+video ``x``) is

    L = -log sigma( beta * sum_i [ sum_{t in phrase_i(y+)} (log pi(y+_t) - log ref(y+_t))
                                  - sum_{t in phrase_i(y-)} (log pi(y-_t) - log ref(y-_t)) ] )
        + alpha * sum_{t in y+} KL( ref(. | x, y+_<t) || pi(. | x, y+_<t) )

a sub-sequence-level reward on the tagged phrases where the two responses differ, plus a token-wise
KL regulariser on the preferred response.

Relation to the official code (pritamqu/RRPO, ``losses.py``, class ``RRPO``):

* Only the *total* over phrases enters the sigmoid, so the phrase numbering and the pairing of chosen
  phrase ``i`` with rejected phrase ``i`` do not matter (nor does the number of phrases on each side): the
  argument is ``beta * (sum of the chosen log-ratio over all tagged tokens - same for rejected)``. We compute
  exactly that, without the official per-phrase Python loop (which also ignored the loss mask).
* The KL term is **added** (``+ alpha * KL``), as in the official code; the project page's
  ``-E[log sigma(u) + alpha D_TKL]`` has the sign of the KL wrong.
* KL direction: ``KL(pi_ref || pi_theta) = sum_v p_ref (log p_ref - log p_theta)`` over the full vocabulary.
* The KL is a per-pair **sum** over the chosen tokens (not a mean), as in the paper and the code.
  Difference: the official code sums it over every labelled token, which there includes chat-template
  tokens (``<|im_start|>``, ``\\n``, ``<|im_end|>``) of the prompt. Our token-level :func:`rrpo_loss` sums it
  over the tokens marked by ``chosen_mask`` -- in this plugin the response tokens (plus its end-of-turn
  token), never prompt or template tokens -- so values of ``alpha`` tuned on the official code correspond to a
  slightly weaker regulariser there. :func:`rrpo_loss_from_logits` follows the published layout and sums over
  whatever ``labels`` marks, so it reproduces the official value when given the official labels.
* Log-probs use ``log_softmax`` (the official reference path used ``softmax().log()``, which can give
  ``0 * -inf = nan``), and half-precision logits are upcast to fp32 first.
* Rewards for logging are ``beta * (masked log-ratio sum over the tagged tokens)``, as in the official code.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


class RRPOOutput(NamedTuple):
    """What :func:`rrpo_loss` returns; ``out[:3]`` is the usual ``(losses, chosen_rewards, rejected_rewards)``.

    Attributes:
        losses: ``[B]`` per-pair loss (preference term + ``alpha`` * KL); reduce it yourself.
        chosen_rewards: ``[B]`` ``beta`` * policy-minus-reference log-prob summed over the chosen phrase
            tokens (detached).
        rejected_rewards: ``[B]`` the same over the rejected phrase tokens (detached).
        metrics: detached ``[B]`` tensors: ``kl`` (sum of the per-token KL over the chosen tokens),
            ``preference_loss`` (the ``-log sigma`` term alone), ``chosen_phrase_tokens`` and
            ``rejected_phrase_tokens`` (how many tokens carry the refined reward; a pair with 0 on both sides
            only gets the KL gradient).
    """

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    metrics: dict[str, torch.Tensor]


def token_kl_from_logprobs(reference_logprobs: torch.Tensor, policy_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-position ``KL(ref || policy) = sum_v exp(ref_v) * (ref_v - policy_v)`` over the last dim.

    Args:
        reference_logprobs: ``[..., V]`` normalised reference log-probs (``log_softmax`` output).
        policy_logprobs: ``[..., V]`` normalised policy log-probs.

    Returns:
        ``[...]`` the KL at each position. Vocabulary entries where the reference probability is exactly 0
        contribute 0 (``xlogy`` convention), so ``-inf`` reference log-probs never produce ``nan``.
    """
    ref_probs = reference_logprobs.exp()
    # where p_ref == 0 the term is 0 by convention; torch.where keeps -inf - x from turning into nan.
    diff = torch.where(ref_probs > 0, reference_logprobs - policy_logprobs, torch.zeros_like(policy_logprobs))
    return (ref_probs * diff).sum(-1)


def _masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # where, not multiply: padded entries may hold garbage or -inf, and 0 * inf is nan.
    return torch.where(mask, values, torch.zeros_like(values)).sum(-1)


def rrpo_loss(
    policy_chosen_token_logps: torch.Tensor,
    policy_rejected_token_logps: torch.Tensor,
    reference_chosen_token_logps: torch.Tensor,
    reference_rejected_token_logps: torch.Tensor,
    chosen_phrase_ids: torch.Tensor,
    rejected_phrase_ids: torch.Tensor,
    chosen_token_kl: torch.Tensor,
    chosen_mask: torch.Tensor,
    beta: float,
    alpha: float,
    rejected_mask: torch.Tensor | None = None,
) -> RRPOOutput:
    """RRPO loss (Sarkar et al. 2025) from token-level quantities of padded chosen/rejected responses.

    Shapes: chosen tensors are ``[B, Tc]``, rejected tensors ``[B, Tr]`` (``Tc`` and ``Tr`` may differ;
    row ``b`` of each is pair ``b``). Padding may hold any value; it is excluded by the masks/phrase ids.

    Args:
        policy_chosen_token_logps: ``[B, Tc]`` log pi_theta of each chosen response token.
        policy_rejected_token_logps: ``[B, Tr]`` log pi_theta of each rejected response token.
        reference_chosen_token_logps: ``[B, Tc]`` log pi_ref of each chosen token (no gradient needed).
        reference_rejected_token_logps: ``[B, Tr]`` log pi_ref of each rejected token.
        chosen_phrase_ids: ``[B, Tc]`` int, ``k >= 1`` if the token is in tagged phrase ``k``, ``0`` (or
            any value ``<= 0``, e.g. -100) otherwise; only ``> 0`` vs not matters (see module docstring).
        rejected_phrase_ids: ``[B, Tr]`` the same for the rejected response.
        chosen_token_kl: ``[B, Tc]`` per-token ``KL(pi_ref || pi_theta)`` on the chosen response, over the
            full vocabulary (see :func:`token_kl_from_logprobs`); carries the regulariser's gradient.
        chosen_mask: ``[B, Tc]`` bool, True on the real chosen-response tokens the KL is summed over.
        beta: scale of the refined reward inside the sigmoid (paper: 0.1 for LLaVA-Video), > 0.
        alpha: weight of the token-wise KL regulariser (paper: 0.01 for LLaVA-Video), >= 0.
        rejected_mask: optional ``[B, Tr]`` bool, True on real rejected tokens; ANDed with the phrase ids
            for callers whose padding might carry a positive id.

    Returns:
        :class:`RRPOOutput` ``(losses, chosen_rewards, rejected_rewards, metrics)``.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    for name, tensor in (("policy_rejected_token_logps", policy_rejected_token_logps),
                         ("reference_rejected_token_logps", reference_rejected_token_logps),
                         ("rejected_phrase_ids", rejected_phrase_ids)):
        if tensor.shape != policy_rejected_token_logps.shape or tensor.dim() != 2:
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected "
                             f"{tuple(policy_rejected_token_logps.shape)} [B, Tr]")
    for name, tensor in (("reference_chosen_token_logps", reference_chosen_token_logps),
                         ("chosen_phrase_ids", chosen_phrase_ids), ("chosen_token_kl", chosen_token_kl),
                         ("chosen_mask", chosen_mask)):
        if tensor.shape != policy_chosen_token_logps.shape or tensor.dim() != 2:
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected "
                             f"{tuple(policy_chosen_token_logps.shape)} [B, Tc]")
    if policy_chosen_token_logps.shape[0] != policy_rejected_token_logps.shape[0]:
        raise ValueError("chosen and rejected tensors must have the same batch size")

    chosen_mask = chosen_mask.bool()
    chosen_in_phrase = (chosen_phrase_ids > 0) & chosen_mask
    rejected_in_phrase = rejected_phrase_ids > 0
    if rejected_mask is not None:
        rejected_in_phrase = rejected_in_phrase & rejected_mask.bool()

    chosen_logratio = _masked_sum(policy_chosen_token_logps - reference_chosen_token_logps.detach(),
                                  chosen_in_phrase)
    rejected_logratio = _masked_sum(policy_rejected_token_logps - reference_rejected_token_logps.detach(),
                                    rejected_in_phrase)
    preference_losses = -F.logsigmoid(beta * (chosen_logratio - rejected_logratio))
    kl = _masked_sum(chosen_token_kl, chosen_mask)
    losses = preference_losses + alpha * kl
    metrics = {
        "kl": kl.detach(),
        "preference_loss": preference_losses.detach(),
        "chosen_phrase_tokens": chosen_in_phrase.sum(-1),
        "rejected_phrase_tokens": rejected_in_phrase.sum(-1),
    }
    return RRPOOutput(losses, beta * chosen_logratio.detach(), beta * rejected_logratio.detach(), metrics)


def rrpo_loss_from_logits(
    policy_logits: torch.Tensor,
    reference_logits: torch.Tensor,
    labels: torch.Tensor,
    phrase_ids: torch.Tensor,
    beta: float,
    alpha: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RRPO loss from full logits, in the layout of the published code (a reference implementation).

    This materialises ``[2B, L, V]`` log-probs and is meant for checking against the paper's formulation;
    training uses :mod:`savi_plugin.training.token_logprobs`, which never does.

    Args:
        policy_logits: ``[2B, L, V]``; rows ``[:B]`` are the chosen sequences and rows ``[B:]`` the rejected
            ones of the same pairs (pair ``b`` = rows ``b`` and ``B + b``). Position ``t`` predicts ``labels[t+1]``.
        reference_logits: ``[2B, L, V]`` the same under the reference model (no gradient taken).
        labels: ``[2B, L]`` target token ids, ``-100`` where no loss is taken (prompt, video, padding).
            The KL is summed over every labelled position of the chosen rows.
        phrase_ids: ``[2B, L]`` phrase id of each *label* token (aligned with ``labels``, not shifted);
            ``> 0`` marks tagged tokens. Positions with label ``-100`` are ignored whatever their id.
        beta: refined-reward scale, > 0.
        alpha: KL weight, >= 0.

    Returns:
        ``(losses, chosen_rewards, rejected_rewards)``, each ``[B]``.
    """
    if policy_logits.shape != reference_logits.shape or policy_logits.dim() != 3:
        raise ValueError(f"policy and reference logits must both be [2B, L, V]; got {tuple(policy_logits.shape)} "
                         f"and {tuple(reference_logits.shape)}")
    if labels.shape != policy_logits.shape[:2] or phrase_ids.shape != labels.shape:
        raise ValueError(f"labels {tuple(labels.shape)} and phrase_ids {tuple(phrase_ids.shape)} must be "
                         f"{tuple(policy_logits.shape[:2])}")
    if policy_logits.shape[0] % 2:
        raise ValueError(f"expected 2B rows ([chosen; rejected]), got {policy_logits.shape[0]}")
    pairs = policy_logits.shape[0] // 2

    # Shift: the logits at position t score the label at t+1.
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    token_phrase_ids = torch.where(mask, phrase_ids[:, 1:], torch.zeros_like(phrase_ids[:, 1:]))
    policy_logprobs = F.log_softmax(_at_least_fp32(policy_logits[:, :-1]), dim=-1)
    with torch.no_grad():
        reference_logprobs = F.log_softmax(_at_least_fp32(reference_logits[:, :-1]), dim=-1)
    safe_targets = targets.clamp(min=0).unsqueeze(-1)
    policy_token_logps = policy_logprobs.gather(-1, safe_targets).squeeze(-1)
    reference_token_logps = reference_logprobs.gather(-1, safe_targets).squeeze(-1)
    token_kl = token_kl_from_logprobs(reference_logprobs[:pairs], policy_logprobs[:pairs])

    out = rrpo_loss(
        policy_token_logps[:pairs], policy_token_logps[pairs:],
        reference_token_logps[:pairs], reference_token_logps[pairs:],
        token_phrase_ids[:pairs], token_phrase_ids[pairs:],
        token_kl, mask[:pairs], beta=beta, alpha=alpha, rejected_mask=mask[pairs:],
    )
    return out.losses, out.chosen_rewards, out.rejected_rewards


def _at_least_fp32(tensor: torch.Tensor) -> torch.Tensor:
    # bf16/fp16 log_softmax over 32k-150k entries loses the small differences the loss is made of.
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor

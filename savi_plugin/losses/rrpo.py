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
  over the tokens marked by ``chosen_mask`` -- by default (``kl_scope: response``) the response tokens plus its
  end-of-turn token -- so values of ``alpha`` tuned on the official code correspond to a slightly weaker
  regulariser there. ``kl_scope: official`` adds the KL at the template positions the official preprocessing
  labels (``template_kl``; see :func:`savi_plugin.training.batch.template_side`), which reproduces the
  official value.
* Ablations of the paper by name (Sec. 5, Table 6): ``alpha: 0`` is "w/o KL" (no KL is computed at all), and
  ``reward: sequence`` is "w/o R*": the reward sums the log-ratio over every response token instead of the
  tagged phrases (then no tags are needed).
* Log-probs use ``log_softmax`` (the official reference path used ``softmax().log()``, which can give
  ``0 * -inf = nan``), and half-precision logits are upcast to fp32 first.
* Rewards for logging are ``beta * (masked log-ratio sum over the tagged tokens)``, as in the official code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from savi_plugin.config.values import NonNegative, OneOf, Positive, checked
from savi_plugin.losses.base import LossOutput, PreferenceLoss, Requirements, TokenInputs, masked_sum

class RRPOOutput(NamedTuple):
    """What :func:`rrpo_loss` returns; ``out[:3]`` is the usual ``(losses, chosen_rewards, rejected_rewards)``.

    Attributes:
        losses: ``[B]`` per-pair loss (preference term + ``alpha`` * KL); reduce it yourself.
        chosen_rewards: ``[B]`` ``beta`` * policy-minus-reference log-prob summed over the chosen phrase
            tokens (detached).
        rejected_rewards: ``[B]`` the same over the rejected phrase tokens (detached).
        metrics: detached ``[B]`` tensors: ``kl`` (sum of the per-token KL over the chosen tokens; absent
            without a KL),
            ``preference_loss`` (the ``-log sigma`` term alone), ``chosen_phrase_tokens`` and
            ``rejected_phrase_tokens`` (how many tokens carry the refined reward; a pair with 0 on both sides
            only gets the KL gradient).
    """

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    metrics: dict[str, torch.Tensor]


def rrpo_loss(
    policy_chosen_token_logps: torch.Tensor,
    policy_rejected_token_logps: torch.Tensor,
    reference_chosen_token_logps: torch.Tensor,
    reference_rejected_token_logps: torch.Tensor,
    chosen_phrase_ids: torch.Tensor,
    rejected_phrase_ids: torch.Tensor,
    chosen_token_kl: torch.Tensor | None,
    chosen_mask: torch.Tensor,
    beta: float,
    alpha: float,
    rejected_mask: torch.Tensor | None = None,
    *,
    reward: str = "refined",
    template_kl: torch.Tensor | None = None,
    template_mask: torch.Tensor | None = None,
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
            full vocabulary (see :func:`savi_plugin.training.token_logprobs.token_kl`); carries the regulariser's
            gradient. May be None when ``alpha == 0`` (the "w/o KL" ablation).
        chosen_mask: ``[B, Tc]`` bool, True on the real chosen-response tokens the KL is summed over.
        beta: scale of the refined reward inside the sigmoid (paper: 0.1 for LLaVA-Video), > 0.
        alpha: weight of the token-wise KL regulariser (paper: 0.01 for LLaVA-Video), >= 0.
        rejected_mask: optional ``[B, Tr]`` bool, True on real rejected tokens; ANDed with the phrase ids
            for callers whose padding might carry a positive id. Required for ``reward="sequence"``.
        reward: ``"refined"`` (the paper's R*: tagged phrases only) or ``"sequence"`` (every response token:
            the "w/o R*" ablation; phrase ids are ignored).
        template_kl, template_mask: ``[B, K]`` KL at the chosen sequence's template positions and their mask,
            added to the KL sum (``kl_scope: official``).

    Returns:
        :class:`RRPOOutput` ``(losses, chosen_rewards, rejected_rewards, metrics)``.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if reward not in REWARDS:
        raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {reward!r}")
    if reward == "sequence" and rejected_mask is None:
        raise ValueError("reward='sequence' needs rejected_mask")
    if chosen_token_kl is None and alpha != 0:
        raise ValueError(f"chosen_token_kl is needed for alpha={alpha} (only alpha=0 runs without the KL)")
    for name, tensor in (("policy_rejected_token_logps", policy_rejected_token_logps),
                         ("reference_rejected_token_logps", reference_rejected_token_logps),
                         ("rejected_phrase_ids", rejected_phrase_ids)):
        if tensor.shape != policy_rejected_token_logps.shape or tensor.dim() != 2:
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected "
                             f"{tuple(policy_rejected_token_logps.shape)} [B, Tr]")
    for name, tensor in (("reference_chosen_token_logps", reference_chosen_token_logps),
                         ("chosen_phrase_ids", chosen_phrase_ids), ("chosen_token_kl", chosen_token_kl),
                         ("chosen_mask", chosen_mask)):
        if tensor is None:
            continue
        if tensor.shape != policy_chosen_token_logps.shape or tensor.dim() != 2:
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected "
                             f"{tuple(policy_chosen_token_logps.shape)} [B, Tc]")
    if policy_chosen_token_logps.shape[0] != policy_rejected_token_logps.shape[0]:
        raise ValueError("chosen and rejected tensors must have the same batch size")

    chosen_mask = chosen_mask.bool()
    if reward == "sequence":
        chosen_in_phrase, rejected_in_phrase = chosen_mask, rejected_mask.bool()
    else:
        chosen_in_phrase = (chosen_phrase_ids > 0) & chosen_mask
        rejected_in_phrase = rejected_phrase_ids > 0
        if rejected_mask is not None:
            rejected_in_phrase = rejected_in_phrase & rejected_mask.bool()

    chosen_logratio = masked_sum(policy_chosen_token_logps - reference_chosen_token_logps.detach(),
                                  chosen_in_phrase)
    rejected_logratio = masked_sum(policy_rejected_token_logps - reference_rejected_token_logps.detach(),
                                    rejected_in_phrase)
    preference_losses = -F.logsigmoid(beta * (chosen_logratio - rejected_logratio))
    metrics = {
        "preference_loss": preference_losses.detach(),
        "chosen_phrase_tokens": chosen_in_phrase.sum(-1),
        "rejected_phrase_tokens": rejected_in_phrase.sum(-1),
    }
    losses = preference_losses
    if chosen_token_kl is not None:
        kl = masked_sum(chosen_token_kl, chosen_mask)
        if template_kl is not None:
            kl = kl + masked_sum(template_kl, template_mask.bool())
        metrics["kl"] = kl.detach()
        losses = preference_losses + alpha * kl
    return RRPOOutput(losses, beta * chosen_logratio.detach(), beta * rejected_logratio.detach(), metrics)


REWARDS = ("refined", "sequence")
KL_SCOPES = ("response", "official")


@dataclass(frozen=True)
class RRPOParams:
    """RRPO's hyper-parameters (paper values for LLaVA-Video: beta 0.1, alpha 0.01) and its ablation options."""

    beta: float = checked(0.1, Positive(), help="refined-reward scale inside the sigmoid")
    alpha: float = checked(0.01, NonNegative(), help="token-wise KL weight; 0 = the 'w/o KL' ablation")
    kl_scope: str = checked("response", OneOf(*KL_SCOPES, what="kl_scope"),
                            help="response: the response tokens; official: also the template positions the "
                                 "official preprocessing labels")
    reward: str = checked("refined", OneOf(*REWARDS, what="reward"),
                          help="refined: tagged phrases (R*); sequence: every response token ('w/o R*')")


class RRPO(PreferenceLoss):
    """RRPO (:func:`rrpo_loss`): token-level, a reference, the chosen KL(ref || policy) unless ``alpha == 0``."""

    name = "rrpo"
    Params = RRPOParams

    def requirements(self, params: RRPOParams) -> Requirements:
        with_kl = params.alpha > 0
        return Requirements(level="token", reference=True, kl="ref||policy",
                            kl_sides=("chosen",) if with_kl else (),
                            template_kl=with_kl and params.kl_scope == "official", tags=params.reward == "refined")

    def compute(self, inputs: TokenInputs, params: RRPOParams) -> LossOutput:
        out = rrpo_loss(inputs.policy_chosen, inputs.policy_rejected, inputs.reference_chosen,
                        inputs.reference_rejected, inputs.chosen_phrase_ids, inputs.rejected_phrase_ids,
                        inputs.chosen_kl if params.alpha > 0 else None, inputs.chosen_mask, beta=params.beta,
                        alpha=params.alpha, rejected_mask=inputs.rejected_mask, reward=params.reward,
                        template_kl=inputs.template_kl, template_mask=inputs.template_mask)
        metrics = {k: out.metrics[k].float() for k in ("preference_loss", "chosen_phrase_tokens",
                                                      "rejected_phrase_tokens")}
        return LossOutput(out.losses, out.chosen_rewards, out.rejected_rewards, metrics)


#: the registered object (entry point ``rrpo`` in setup.cfg)
RRPO_LOSS = RRPO()

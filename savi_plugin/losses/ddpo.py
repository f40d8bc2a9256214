"""DDPO: dense direct preference optimisation, one of the baselines of RRPO's loss ablation.

Yu et al., "RLHF-V: Towards Trustworthy MLLMs via Behavior Alignment from Fine-grained Correctional Human
Feedback", CVPR 2024, arXiv 2312.00849 (Sec. 3, "Dense Direct Preference Optimization"); written from the
official training code, thunlp/Muffin ``muffin/train/trainers.py`` (``compute_weighted_logp``, ``dpo_loss``,
``MuffinDPOTrainer.compute_loss``) and ``muffin/train/train_muffin.py`` (``DataCollatorForDPODataset``: the token
weights), not copied from it. RRPO's project page lists "DDPO" in its loss ablation beside DPO, DPA and TDPO, the
fine-grained preference losses for multimodal hallucination; RLHF-V's segment-level DPO is the one of that name
(the RRPO repository holds no DDPO code, so which variant and settings the ablation ran is not public).

DPO with each response's log-likelihood replaced by a weighted one: tokens of the *changed* segments ``y_c``
weigh ``gamma``, the unchanged ``y_u`` weigh 1,

    s(y) = sum_{t in y_u} log p(t) + gamma * sum_{t in y_c} log p(t)            (``average: false``)
    s(y) = s(y) / (|y_u| + gamma * |y_c|)                                        (``average: true``, the paper's
                                                                                   normalised form)
    L = -log sigma( beta * ( [s_pi(y+) - s_ref(y+)] - [s_pi(y-) - s_ref(y-)] ) )

for policy and reference alike. The changed segments are the ``<MASK>`` phrases of the pair (RLHF-V finds them
with difflib over token ids, ``get_diff_ids(min_match_size=3)``; our tags come from the same kind of diff or a
tagger model, see :mod:`savi_plugin.generators.tagging`). Defaults are those of the released training command
(RLHF-V ``readme.md``: ``run_RLHFV.sh ... 1.1 ... 0.1 False True``: ``gamma`` 1.1, ``beta`` 0.1, weighted *sum*,
token weighting on); Muffin's argument defaults differ (``dpo_token_weight`` 3.0, ``dpo_beta`` 0.5).

Rewards for logging: ``beta * (s_pi - s_ref)`` of each response (detached), as the official ``dpo_loss``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from savi_plugin.config.values import Positive, checked
from savi_plugin.losses.base import (
    LossOutput,
    PreferenceLoss,
    Requirements,
    TokenInputs,
)


def dense_scores(token_logps: torch.Tensor, phrase_ids: torch.Tensor, mask: torch.Tensor, gamma: float,
                 average: bool) -> torch.Tensor:
    """``[B]`` weighted log-likelihoods ``s(y)``: weight ``gamma`` on tagged tokens, 1 elsewhere, 0 on padding."""
    mask = mask.to(token_logps.dtype)
    weights = torch.where(phrase_ids > 0, torch.full_like(token_logps, gamma), torch.ones_like(token_logps)) * mask
    total = (token_logps * weights).sum(-1)
    return total / weights.sum(-1).clamp(min=torch.finfo(token_logps.dtype).tiny) if average else total


def ddpo_loss(policy_chosen_token_logps: torch.Tensor, policy_rejected_token_logps: torch.Tensor,
              reference_chosen_token_logps: torch.Tensor, reference_rejected_token_logps: torch.Tensor,
              chosen_phrase_ids: torch.Tensor, rejected_phrase_ids: torch.Tensor, chosen_mask: torch.Tensor,
              rejected_mask: torch.Tensor, beta: float = 0.1, gamma: float = 1.1,
              average: bool = False) -> LossOutput:
    """DDPO per pair from per-token log-probs (``[B, Tc]`` chosen, ``[B, Tr]`` rejected) and phrase ids."""
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    chosen = (dense_scores(policy_chosen_token_logps, chosen_phrase_ids, chosen_mask, gamma, average)
              - dense_scores(reference_chosen_token_logps.detach(), chosen_phrase_ids, chosen_mask, gamma, average))
    rejected = (dense_scores(policy_rejected_token_logps, rejected_phrase_ids, rejected_mask, gamma, average)
                - dense_scores(reference_rejected_token_logps.detach(), rejected_phrase_ids, rejected_mask, gamma,
                               average))
    losses = -F.logsigmoid(beta * (chosen - rejected))
    metrics = {"changed_tokens": ((chosen_phrase_ids > 0) & chosen_mask.bool()).sum(-1).float()}
    return LossOutput(losses, beta * chosen.detach(), beta * rejected.detach(), metrics)


@dataclass(frozen=True)
class DDPOParams:
    """DDPO's ``beta``, the changed-segment weight ``gamma`` and the normalisation (RLHF-V's released command:
    beta 0.1, gamma 1.1, a weighted sum)."""

    beta: float = checked(0.1, Positive(), help="implicit-reward scale")
    gamma: float = checked(1.1, Positive(), help="weight of the tokens of tagged (changed) phrases")
    average: bool = checked(False, help="divide by |y_u| + gamma |y_c| (the paper's normalised form)")


class DDPO(PreferenceLoss):
    """DDPO (:func:`ddpo_loss`): token level (the weights need each token), a reference, phrase tags."""

    name = "ddpo"
    Params = DDPOParams

    def requirements(self, params: DDPOParams) -> Requirements:
        return Requirements(level="token", reference=True, tags=True)

    def compute(self, inputs: TokenInputs, params: DDPOParams) -> LossOutput:
        return ddpo_loss(inputs.policy_chosen, inputs.policy_rejected, inputs.reference_chosen,
                         inputs.reference_rejected, inputs.chosen_phrase_ids, inputs.rejected_phrase_ids,
                         inputs.chosen_mask, inputs.rejected_mask, beta=params.beta, gamma=params.gamma,
                         average=params.average)


#: the registered object (entry point ``ddpo`` in setup.cfg)
DDPO_LOSS = DDPO()

"""TDPO: token-level direct preference optimisation, the loss RRPO's is "modified from".

Zeng et al., "Token-level Direct Preference Optimization", ICML 2024, arXiv 2404.11999, eqs. (19) and (21). With
the summed log-ratios ``m+ = sum_t log pi(y+_t)/ref(y+_t)``, ``m- = ...`` and the sequential KL divergences
``D+ = sum_t KL(pi(. | x, y+_<t) || ref(. | x, y+_<t))``, ``D-`` likewise (policy first, as in the authors' code):

    TDPO1:  L = -log sigma( beta * ( (m+ - m-) - (D- - D+) ) )
    TDPO2:  L = -log sigma( beta * ( (m+ - m-) - alpha * (D- - sg(D+)) ) )      (sg: stop-gradient)

TDPO2 (the paper's recommended variant, ``alpha = 0.5``) is the default. Rewards for logging are
``beta * (m + D)`` of each response, detached, as in the authors' code. RRPO replaces the whole-response margin
by the tagged phrases' and the sequential KL terms by ``alpha * KL(ref || pi)`` on the chosen response
(:mod:`savi_plugin.losses.rrpo`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from savi_plugin.config.values import NonNegative, OneOf, Positive, checked
from savi_plugin.losses.base import LossOutput, PreferenceLoss, Requirements, SequenceInputs


def tdpo_loss(chosen_margin: torch.Tensor, rejected_margin: torch.Tensor, chosen_kl: torch.Tensor,
              rejected_kl: torch.Tensor, beta: float, alpha: float = 0.5,
              variant: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TDPO1 / TDPO2 from ``[B]`` summed log-ratios and summed sequential KL(policy || ref) of each response.

    Returns:
        ``(losses, chosen_rewards, rejected_rewards)``, each ``[B]``.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if variant not in (1, 2):
        raise ValueError(f"variant must be 1 or 2, got {variant}")
    margin = chosen_margin - rejected_margin
    if variant == 1:
        logits = margin - (rejected_kl - chosen_kl)
    else:
        logits = margin - alpha * (rejected_kl - chosen_kl.detach())
    losses = -F.logsigmoid(beta * logits)
    return losses, beta * (chosen_margin + chosen_kl).detach(), beta * (rejected_margin + rejected_kl).detach()


@dataclass(frozen=True)
class TDPOParams:
    """TDPO's ``beta``, the KL weight ``alpha`` (TDPO2 only) and the ``variant`` (1 or 2)."""

    beta: float = checked(0.1, Positive(), help="implicit-reward scale")
    alpha: float = checked(0.5, NonNegative(), help="weight of the sequential KL difference (TDPO2)")
    variant: int = checked(2, OneOf(1, 2, what="variant"), help="TDPO1 or TDPO2")


class TDPO(PreferenceLoss):
    """TDPO: summed log-ratios and the sequential KL(policy || ref) on both responses."""

    name = "tdpo"
    Params = TDPOParams

    def requirements(self, params: TDPOParams) -> Requirements:
        return Requirements(level="sequence", reference=True, kl="policy||ref", kl_sides=("chosen", "rejected"))

    def compute(self, inputs: SequenceInputs, params: TDPOParams) -> LossOutput:
        return LossOutput(*tdpo_loss(inputs.policy_chosen - inputs.reference_chosen,
                                     inputs.policy_rejected - inputs.reference_rejected, inputs.chosen_kl,
                                     inputs.rejected_kl, params.beta, params.alpha, params.variant))


#: the registered object (entry point ``tdpo`` in setup.cfg)
TDPO_LOSS = TDPO()

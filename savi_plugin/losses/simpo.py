"""SimPO: a reference-free preference loss on length-normalised log-probabilities.

Meng, Xia and Chen, "SimPO: Simple Preference Optimization with a Reference-Free Reward", NeurIPS 2024,
arXiv 2405.14734, eq. (6):

    L = -log sigma( beta / |y+| * log pi(y+ | x)  -  beta / |y-| * log pi(y- | x)  -  gamma )

The implicit reward is the policy's average per-token log-probability scaled by ``beta``; ``gamma`` is a target
reward margin. No reference model runs (the requirement ``reference=False``). The paper's tuned values are
``beta`` 2.0-2.5 with ``gamma`` 0.5-1.6 (its Table 7); the defaults here are ``beta = 2.0``, ``gamma = 1.0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from savi_plugin.config.values import NonNegative, Positive, checked
from savi_plugin.losses.base import LossOutput, PreferenceLoss, Requirements, SequenceInputs


def simpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor, beta: float,
               gamma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SimPO (eq. 6) from ``[B]`` mean per-token log-probs of each response under the policy.

    Returns:
        ``(losses, chosen_rewards, rejected_rewards)``, each ``[B]``; rewards ``beta * mean log-prob``, detached.
    """
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    chosen_rewards = beta * policy_chosen_logps
    rejected_rewards = beta * policy_rejected_logps
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards - gamma)
    return losses, chosen_rewards.detach(), rejected_rewards.detach()


@dataclass(frozen=True)
class SimPOParams:
    """SimPO's ``beta`` (reward scale) and ``gamma`` (target reward margin)."""

    beta: float = checked(2.0, Positive(), help="reward scale")
    gamma: float = checked(1.0, NonNegative(), help="target reward margin")


class SimPO(PreferenceLoss):
    """SimPO: sequence level, length-normalised, no reference."""

    name = "simpo"
    Params = SimPOParams

    def requirements(self, params: SimPOParams) -> Requirements:
        return Requirements(level="sequence", reference=False, length_normalize=True)

    def compute(self, inputs: SequenceInputs, params: SimPOParams) -> LossOutput:
        return LossOutput(*simpo_loss(inputs.policy_chosen, inputs.policy_rejected, params.beta, params.gamma))


#: the registered object (entry point ``simpo`` in setup.cfg)
SIMPO_LOSS = SimPO()

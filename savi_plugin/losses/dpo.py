"""Sequence-level pairwise preference losses: DPO (with cDPO label smoothing) and IPO.

The registered losses (:class:`DPO`, :class:`IPO`; the contract is :mod:`savi_plugin.losses.base`) wrap the
pure functions :func:`dpo_loss` and :func:`ipo_loss`. Both take one summary log-probability per response
(policy and reference, chosen and rejected) and return ``(losses, chosen_rewards, rejected_rewards)``, each
of shape ``[B]``, the same contract as TRL's classic ``DPOTrainer.dpo_loss``: reduce ``losses`` yourself
(usually ``.mean()``); the rewards are detached and are what TRL logs as ``rewards/chosen`` and
``rewards/rejected``.

References:
    DPO  -- Rafailov et al., "Direct Preference Optimization: Your Language Model is Secretly a Reward
            Model", NeurIPS 2023, arXiv 2305.18290, eq. (7).
    cDPO -- Mitchell, "A note on DPO with noisy preferences & relationship to IPO", 2023: assume each
            label is flipped with probability ``label_smoothing``.
    IPO  -- Azar et al., "A General Theoretical Paradigm to Understand Learning from Human Preferences",
            AISTATS 2024, arXiv 2310.12036, eq. (17).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from savi_plugin.config.values import Positive, Range, checked
from savi_plugin.losses.base import LossOutput, PreferenceLoss, Requirements, SequenceInputs


def _check(beta: float, tensors: tuple[torch.Tensor, ...]) -> None:
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"the four log-prob tensors must have the same shape, got {sorted(shapes)}")


def _logratio_margin(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps):
    # (pc - pr) - (rc - rr), written as a difference of the two implicit rewards' log-ratios.
    return (policy_chosen_logps - reference_chosen_logps) - (policy_rejected_logps - reference_rejected_logps)


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sigmoid DPO loss (Rafailov et al. 2023, eq. 7), with cDPO label smoothing (Mitchell 2023).

    ``losses = -(1 - eps) * log sigma(beta * h) - eps * log sigma(-beta * h)`` with
    ``h = (log pi(y+) - log ref(y+)) - (log pi(y-) - log ref(y-))``; ``eps = 0`` is plain DPO.

    Args:
        policy_chosen_logps: ``[B]`` summed log-prob of each chosen response under the policy
            (sum over response tokens, as in the DPO paper's ``log pi(y|x)``).
        policy_rejected_logps: ``[B]`` the same for the rejected responses.
        reference_chosen_logps: ``[B]`` summed log-prob of the chosen responses under the frozen reference.
        reference_rejected_logps: ``[B]`` the same for the rejected responses.
        beta: the KL-constraint strength (temperature of the implicit reward), > 0; typically 0.1.
        label_smoothing: cDPO's probability ``eps`` in ``[0, 0.5)`` that a preference label is flipped.

    Returns:
        ``(losses, chosen_rewards, rejected_rewards)``, each ``[B]``; the rewards are
        ``beta * (policy - reference)`` log-prob of each response, detached.
    """
    tensors = (policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps)
    _check(beta, tensors)
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    margin = _logratio_margin(*tensors)
    losses = -(1.0 - label_smoothing) * F.logsigmoid(beta * margin)
    if label_smoothing:
        losses = losses - label_smoothing * F.logsigmoid(-beta * margin)
    chosen_rewards = beta * (policy_chosen_logps - reference_chosen_logps).detach()
    rejected_rewards = beta * (policy_rejected_logps - reference_rejected_logps).detach()
    return losses, chosen_rewards, rejected_rewards


def ipo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """IPO loss (Azar et al. 2023, eq. 17): ``losses = (h - 1 / (2 * beta)) ** 2``.

    ``h`` is the same log-ratio margin as in :func:`dpo_loss` and ``beta`` plays the role of the paper's
    regularisation ``tau`` (TRL's convention). Like TRL, we expect **length-normalised** log-probs here:
    pass the *mean* per-token log-prob of each response, not the sum, because the squared loss pulls the
    margin towards a fixed target ``1 / (2 beta)`` and summed log-probs would make that target depend on
    the response length. The function itself does no normalisation.

    Args:
        policy_chosen_logps: ``[B]`` mean per-token log-prob of each chosen response under the policy.
        policy_rejected_logps: ``[B]`` the same for the rejected responses.
        reference_chosen_logps: ``[B]`` mean per-token log-prob of the chosen responses under the reference.
        reference_rejected_logps: ``[B]`` the same for the rejected responses.
        beta: IPO's ``tau`` (> 0); the target margin is ``1 / (2 beta)``.
        label_smoothing: not defined for IPO; must be 0 (accepted so all pairwise losses share a signature).

    Returns:
        ``(losses, chosen_rewards, rejected_rewards)``, each ``[B]``; rewards as in :func:`dpo_loss`.
    """
    tensors = (policy_chosen_logps, policy_rejected_logps, reference_chosen_logps, reference_rejected_logps)
    _check(beta, tensors)
    if label_smoothing:
        raise ValueError(f"IPO has no label smoothing; got label_smoothing={label_smoothing}")
    margin = _logratio_margin(*tensors)
    losses = (margin - 1.0 / (2.0 * beta)) ** 2
    chosen_rewards = beta * (policy_chosen_logps - reference_chosen_logps).detach()
    rejected_rewards = beta * (policy_rejected_logps - reference_rejected_logps).detach()
    return losses, chosen_rewards, rejected_rewards


# ------------------------------------------------------------------------------------ registered losses
@dataclass(frozen=True)
class DPOParams:
    """DPO's hyper-parameters: ``beta`` (implicit-reward scale, paper 0.1) and cDPO's ``label_smoothing``."""

    beta: float = checked(0.1, Positive(), help="implicit-reward scale")
    label_smoothing: float = checked(0.0, Range(0, 0.5, open_high=True), help="cDPO label-flip probability")


@dataclass(frozen=True)
class IPOParams:
    """IPO's ``beta`` (the paper's tau; the target margin is ``1 / (2 beta)``)."""

    beta: float = checked(0.1, Positive(), help="IPO tau")


class DPO(PreferenceLoss):
    """Sigmoid DPO with cDPO label smoothing (:func:`dpo_loss`): summed sequence log-probs, a reference."""

    name = "dpo"
    Params = DPOParams

    def requirements(self, params: DPOParams) -> Requirements:
        return Requirements(level="sequence", reference=True, length_normalize=False)

    def compute(self, inputs: SequenceInputs, params: DPOParams) -> LossOutput:
        return LossOutput(*dpo_loss(inputs.policy_chosen, inputs.policy_rejected, inputs.reference_chosen,
                                   inputs.reference_rejected, beta=params.beta,
                                   label_smoothing=params.label_smoothing))


class IPO(PreferenceLoss):
    """IPO (:func:`ipo_loss`) on length-normalised (mean per-token) log-probs, as TRL and the paper's remark
    on the fixed target margin call for; the normalisation is declared here, not keyed on the name."""

    name = "ipo"
    Params = IPOParams

    def requirements(self, params: IPOParams) -> Requirements:
        return Requirements(level="sequence", reference=True, length_normalize=True)

    def compute(self, inputs: SequenceInputs, params: IPOParams) -> LossOutput:
        return LossOutput(*ipo_loss(inputs.policy_chosen, inputs.policy_rejected, inputs.reference_chosen,
                                   inputs.reference_rejected, beta=params.beta))


#: the registered objects (entry points ``dpo`` and ``ipo`` in setup.cfg)
DPO_LOSS = DPO()
IPO_LOSS = IPO()

"""DPA: data-augmented phrase-level alignment, one of the baselines of RRPO's loss ablation.

Sarkar et al., "Mitigating Object Hallucination in MLLMs via Data-augmented Phrase-level Alignment" (HALVA),
ICLR 2025, arXiv 2405.18654; written from the official trainer, pritamqu/HALVA ``llava/train/halva_trainer.py``
(``compute_loss``, ``accumulate_logps``, ``reference_forward``), not copied from it. For a pair whose chosen and
rejected responses carry phrases ``k = 1..K`` (the ``<MASK>`` tags: the correct phrase and its hallucinated
replacement share an id), with ``A+_k = sum of log pi(t)`` over the tokens of chosen phrase ``k`` and ``A-_k``
likewise on the rejected side (the **policy only**, no reference ratio):

    alignment  L_a = mean_k log(1 + exp(A-_k - A+_k)) = mean_k -log sigma(A+_k - A-_k)
    divergence L_d = sum_t KL(pi_ref(. | x, y+_<t) || pi(. | x, y+_<t))   over the chosen response's tokens
    L = L_a + alpha * L_d

The official code takes the divergence on a separate "reference" sample (HALVA's ``ref_data.json``); RRPO's
ablation trains every loss on the same pairs, so here it is the chosen response, as RRPO's own KL. ``alpha``
defaults to HALVA's LLaVA-1.5-7B run script (``src/hallava_7b.sh``: ``LOSS_ALPHA=0.4``); ``alpha: 0`` needs no
reference model at all. A phrase present on one side only counts with ``A = 0`` on the other, as the official
``accumulate_logps`` columns do. Difference: the official code averages ``L_a`` over the *batch's* phrase
columns (the distinct phrase ids of the whole batch), so a pair with fewer phrases adds constant ``log 2`` terms
that dilute the mean; here each pair's ``L_a`` is the mean over its own phrases, which equals the official loss
at one pair per device (the RRPO recipes' batch) and does not depend on what else is in the batch.

Rewards for logging: the mean phrase log-prob ``mean_k A+_k`` and ``mean_k A-_k`` of each response (detached).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from savi_plugin.config.values import NonNegative, checked
from savi_plugin.losses.base import LossOutput, PreferenceLoss, Requirements, TokenInputs, masked_sum


def phrase_sums(token_logps: torch.Tensor, phrase_ids: torch.Tensor, mask: torch.Tensor,
                num_phrases: int) -> torch.Tensor:
    """``[B, num_phrases]``: column ``k - 1`` sums ``token_logps`` over the real tokens of phrase ``k``."""
    ids = torch.where(mask.bool(), phrase_ids.long(), torch.zeros_like(phrase_ids, dtype=torch.long))
    ids = ids.clamp(max=num_phrases)
    sums = torch.zeros(token_logps.shape[0], num_phrases + 1, dtype=token_logps.dtype, device=token_logps.device)
    sums = sums.scatter_add(1, ids, token_logps * mask.to(token_logps.dtype))
    return sums[:, 1:]


def dpa_loss(policy_chosen_token_logps: torch.Tensor, policy_rejected_token_logps: torch.Tensor,
             chosen_phrase_ids: torch.Tensor, rejected_phrase_ids: torch.Tensor, chosen_mask: torch.Tensor,
             rejected_mask: torch.Tensor, chosen_token_kl: torch.Tensor | None = None,
             alpha: float = 0.4) -> LossOutput:
    """DPA per pair from per-token policy log-probs ``[B, Tc]``/``[B, Tr]`` and phrase ids (0 = untagged).

    ``chosen_token_kl``: the per-token KL(ref || policy) on the chosen response, needed when ``alpha > 0``.
    A pair without any phrase has ``L_a = 0``.
    """
    if alpha > 0 and chosen_token_kl is None:
        raise ValueError("DPA with alpha > 0 needs the chosen response's per-token KL(ref || policy)")
    chosen_mask, rejected_mask = chosen_mask.bool(), rejected_mask.bool()
    ids = torch.cat([(chosen_phrase_ids * chosen_mask).flatten(), (rejected_phrase_ids * rejected_mask).flatten()])
    num_phrases = max(int(ids.max()) if ids.numel() else 0, 1)
    chosen_sums = phrase_sums(policy_chosen_token_logps, chosen_phrase_ids, chosen_mask, num_phrases)
    rejected_sums = phrase_sums(policy_rejected_token_logps, rejected_phrase_ids, rejected_mask, num_phrases)
    present = (phrase_sums(chosen_mask.float(), chosen_phrase_ids, chosen_mask, num_phrases) > 0) | (
        phrase_sums(rejected_mask.float(), rejected_phrase_ids, rejected_mask, num_phrases) > 0)
    present = present.to(policy_chosen_token_logps.dtype)
    count = present.sum(-1)
    denominator = count.clamp(min=1)
    alignment = (F.softplus(rejected_sums - chosen_sums) * present).sum(-1) / denominator  # log(1 + e^(A- - A+))
    chosen_mean = (chosen_sums * present).sum(-1) / denominator
    rejected_mean = (rejected_sums * present).sum(-1) / denominator
    metrics = {"alignment_loss": alignment.detach(), "phrases": count.detach()}
    losses = alignment
    if alpha > 0:
        kl = masked_sum(chosen_token_kl, chosen_mask.bool())
        metrics["kl"] = kl.detach()
        losses = alignment + alpha * kl
    return LossOutput(losses, chosen_mean.detach(), rejected_mean.detach(), metrics)


@dataclass(frozen=True)
class DPAParams:
    """DPA's divergence weight ``alpha`` (HALVA's 7B run: 0.4; 0 drops the divergence and the reference)."""

    alpha: float = checked(0.4, NonNegative(), help="weight of the token-wise KL(ref || policy) on the chosen "
                                                    "response; 0: alignment term only, no reference")


class DPA(PreferenceLoss):
    """DPA (:func:`dpa_loss`): token level, phrase tags, a reference only for the KL term."""

    name = "dpa"
    Params = DPAParams

    def requirements(self, params: DPAParams) -> Requirements:
        with_kl = params.alpha > 0
        return Requirements(level="token", reference=with_kl, kl="ref||policy" if with_kl else None,
                            kl_sides=("chosen",) if with_kl else (), tags=True)

    def compute(self, inputs: TokenInputs, params: DPAParams) -> LossOutput:
        return dpa_loss(inputs.policy_chosen, inputs.policy_rejected, inputs.chosen_phrase_ids,
                        inputs.rejected_phrase_ids, inputs.chosen_mask, inputs.rejected_mask,
                        inputs.chosen_kl if params.alpha > 0 else None, alpha=params.alpha)


#: the registered object (entry point ``dpa`` in setup.cfg)
DPA_LOSS = DPA()

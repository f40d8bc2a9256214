"""The RRPO loss from full-vocabulary logits in the layout of the published code: the official-style baseline.

pritamqu/RRPO (``llava/losses.py``, class ``RRPO``) applies the LM head at every position of two sequences per pair
(``[chosen; rejected]`` rows), takes the log-softmax of all of them, and sums the per-token quantities over the
labelled positions. :func:`rrpo_loss_from_logits` does the same (with ``log_softmax`` for the reference, and fp32
upcasting), so the benchmarks measure the official costs and the tests have an independent full-logits oracle.
Training never uses it: it scores with :func:`savi_plugin.training.scoring.score_responses`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from savi_plugin.losses.rrpo import rrpo_loss
from savi_plugin.models.backends.tokens import IGNORE_INDEX
from savi_plugin.training.token_logprobs import token_kl


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
    training uses :func:`savi_plugin.training.scoring.score_responses`, which never does.

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
    kl = token_kl(reference_logprobs[:pairs], policy_logprobs[:pairs])

    out = rrpo_loss(
        policy_token_logps[:pairs], policy_token_logps[pairs:],
        reference_token_logps[:pairs], reference_token_logps[pairs:],
        token_phrase_ids[:pairs], token_phrase_ids[pairs:],
        kl, mask[:pairs], beta=beta, alpha=alpha, rejected_mask=mask[pairs:],
    )
    return out.losses, out.chosen_rewards, out.rejected_rewards


def _at_least_fp32(tensor: torch.Tensor) -> torch.Tensor:
    # bf16/fp16 log_softmax over 32k-150k entries loses the small differences the loss is made of.
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor

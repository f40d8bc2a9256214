"""Shared-prefix packing of a preference pair: pure functions for rows, masks, positions and gathers.

A video preference pair is mostly shared prefix (video tokens + question: ~3,400 tokens at 16 frames for
LLaVA-Video) and a few dozen response tokens. The official RRPO code runs that prefix four times per step
(policy and reference, chosen and rejected). Packing puts one pair in ONE row

    [ prefix (P tokens) | chosen (C tokens) | rejected (R tokens) | padding ]

and gives it a block attention mask: prefix and chosen tokens attend causally as usual; rejected tokens
attend to the prefix and causally to earlier rejected tokens, never to the chosen block; and the rejected
block's positions restart after the prefix (``P, P+1, ...``, the same positions it has in the unpacked
row ``[prefix | rejected]``). Every token therefore sees exactly the context, and the rotary positions,
it has in its own unpacked sequence, so the log-probs equal the unpacked computation (up to float
summation order) while the prefix is computed once.

Response scoring is shift-aware: the hidden state at position ``t`` predicts token ``t + 1``. Chosen
token ``j`` (at ``P + j``) is predicted from position ``P + j - 1``. Rejected token ``0`` is predicted
from the *last prefix position* ``P - 1`` (not from the last chosen token before it in the row), and
rejected token ``j > 0`` from ``P + C + j - 1``. :func:`response_positions` returns these indices, so the
LM head runs only on the hidden states that score a response token.

The unpacked layout (the fallback) has two rows per pair, ``[prefix | chosen]`` and ``[prefix | rejected]``,
and uses the same gather description, so everything after the decoder is layout-independent: the gathered
states are aligned with their targets (``hidden[:, j]`` predicts ``targets[:, j]``), the one shift convention
of :func:`savi_plugin.training.scoring.score_responses`.
"""

from __future__ import annotations

import torch


def packed_row(prompt_ids: torch.Tensor, chosen_ids: torch.Tensor, rejected_ids: torch.Tensor) -> torch.Tensor:
    """``[prompt | chosen | rejected]`` as one 1-D id tensor."""
    return torch.cat([prompt_ids, chosen_ids, rejected_ids])


def block_attention_mask(segments: torch.Tensor, length: int) -> torch.Tensor:
    """The ``[N, 1, L, L]`` boolean attention mask of packed rows (True = may attend).

    Args:
        segments: ``[N, 3]`` long, ``(P, C, R)`` per row: prefix, chosen and rejected lengths. An unpacked
            row is ``(P, C, 0)`` (plain causal over its ``P + C`` tokens).
        length: the padded row length ``L`` (>= max ``P + C + R``).

    Returns:
        Query ``q`` may attend key ``k`` iff ``k <= q``, ``k`` is a real token, and not (``q`` is in the
        rejected block and ``k`` in the chosen block). A padding query attends only to itself, so no
        softmax row is empty (an all-masked row gives NaN in SDPA, and NaN values would leak through the
        ``0 * NaN`` of the attention product into real rows).
    """
    if segments.dim() != 2 or segments.shape[1] != 3:
        raise ValueError(f"segments must be [N, 3] (prefix, chosen, rejected), got {tuple(segments.shape)}")
    total = segments.sum(-1)
    if int(total.max()) > length:
        raise ValueError(f"a row has {int(total.max())} tokens but length is {length}")
    device = segments.device
    q = torch.arange(length, device=device).view(1, length, 1)
    k = torch.arange(length, device=device).view(1, 1, length)
    prefix, chosen = segments[:, 0].view(-1, 1, 1), segments[:, 1].view(-1, 1, 1)
    end = total.view(-1, 1, 1)
    chosen_end = prefix + chosen
    real_q, real_k = q < end, k < end
    query_rejected = (q >= chosen_end) & real_q
    key_chosen = (k >= prefix) & (k < chosen_end)
    allowed = (k <= q) & real_k & real_q & ~(query_rejected & key_chosen)
    allowed = allowed | (~real_q & (k == q))
    return allowed.unsqueeze(1)


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask as the additive float mask eager attention adds to its scores (0 or dtype min)."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def restart_rejected_positions(position_ids: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Shift the rejected block's positions back by ``C`` so they restart right after the prefix.

    Args:
        position_ids: ``[N, L]`` (1-D RoPE) or ``[A, N, L]`` (multi-axis RoPE such as Qwen2-VL's M-RoPE)
            positions computed for the packed row *as if it were one sequence*. Response tokens are text,
            whose positions advance by one per token on every axis, so shifting by ``C`` gives each
            rejected token the position it has in the unpacked ``[prefix | rejected]`` row.
        segments: ``[N, 3]`` ``(P, C, R)`` per row.

    Returns:
        A new tensor of the same shape.
    """
    length = position_ids.shape[-1]
    k = torch.arange(length, device=position_ids.device).view(1, length)
    prefix, chosen, rejected = (segments[:, i].view(-1, 1).to(position_ids.device) for i in range(3))
    in_rejected = (k >= prefix + chosen) & (k < prefix + chosen + rejected)
    shift = torch.where(in_rejected, chosen, torch.zeros_like(chosen))
    return position_ids - shift.to(position_ids.dtype)


def response_positions(prefix_length: int, response_length: int, response_start: int) -> list[int]:
    """Row positions of the hidden states that predict each token of a response.

    Args:
        prefix_length: ``P``, the shared prefix length (the first response token is predicted from ``P - 1``).
        response_length: number of response tokens.
        response_start: where the response's first token sits in the row (``P`` for chosen and for an
            unpacked rejected row; ``P + C`` for a packed rejected block).
    """
    if response_length == 0:
        return []
    return [prefix_length - 1] + [response_start + j - 1 for j in range(1, response_length)]


def gather_response_hidden(hidden_states: torch.Tensor, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``[B, T, H]``: the hidden states that predict each response token of each pair.

    Args:
        hidden_states: ``[N, L, H]`` decoder outputs of the batch rows.
        rows: ``[B]`` the row each pair's response lives in.
        positions: ``[B, T]`` row positions from :func:`response_positions`, padded with any valid index.
    """
    return hidden_states[rows.unsqueeze(1), positions]

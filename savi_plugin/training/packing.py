"""The packed row ``[prefix | chosen | rejected]``: its attention and positions (forward time).

A video preference pair is mostly shared prefix (video tokens + question: ~3,400 tokens at 16 frames for
LLaVA-Video) and a few dozen response tokens. The official RRPO code runs that prefix four times per step
(policy and reference, chosen and rejected). Packing puts one pair in ONE row (laid out by
:func:`savi_plugin.training.batch.build_batch`)

    [ prefix (P tokens) | chosen (C tokens) | rejected (R tokens) | padding ]

with a block attention: prefix and chosen tokens attend causally as usual; rejected tokens attend to the prefix
and causally to earlier rejected tokens, never to the chosen block; and the rejected block's positions restart
after the prefix (``P, P+1, ...``, the positions it has in the unpacked row ``[prefix | rejected]``). Every token
therefore sees exactly the context, and the rotary positions, it has in its own unpacked sequence, so the
log-probs equal the unpacked computation (up to float summation order) while the prefix is computed once.

:func:`row_layout` gives the decoder that attention in one of two forms:

* the **block mask** (:func:`block_attention_mask`), a dense ``[N, 1, L, L]`` mask, under eager attention;
* the **split attention** (:func:`split_attention`) under sdpa / flash attention: two calls whose masks the
  kernels know natively, no ``L x L`` tensor -- the queries of ``[prefix | chosen]`` against their own keys,
  causal; the rejected queries against ``[prefix | rejected]``, causal aligned to the bottom right (query ``j``
  of ``R`` sees all ``P`` prefix keys and rejected keys ``0..j``: FlashAttention's causal mode when the query is
  shorter than the keys, ``torch.nn.attention.bias.causal_lower_right`` for SDPA). Every query sees exactly
  the keys of the block mask, so outputs and gradients equal the block-mask path up to float summation order.
  FlashAttention 2 (``flash_attn``) runs both calls when it is installed and the tensors are fp16/bf16 on a GPU;
  SDPA's fused kernels otherwise.

The split attention is a transformers ``AttentionInterface`` function: :func:`enable_packed_attention` switches
the language model's ``_attn_implementation`` from ``sdpa`` (or ``flash_attention_2``) to ``savi_packed_<base>``.
Under that name a forward that passes ``packed_segments`` (``[N, 3]`` prefix, chosen, rejected lengths per row)
gets the split attention; any other forward (an unpacked row, generation, evaluation) is delegated unchanged to
``<base>``, masks included. The switch is permanent rather than scoped, because gradient checkpointing re-runs
each layer's forward during backward, after any scope would have ended.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

#: ``_attn_implementation`` values the split attention can stand in for.
BASES = ("sdpa", "flash_attention_2")
PREFIX = "savi_packed_"
#: Attention implementations that run packed rows: split attention (sdpa, flash_attention_2) or the block mask (eager).
MASK_ATTENTION = ("sdpa", "eager", "flash_attention_2")


def packing_support(backend) -> tuple[bool, str]:
    """Whether shared-prefix packing can run on this backend, and why not."""
    if not getattr(backend, "supports_packing", False):
        return False, (f"model family {getattr(backend, 'family', '?')!r} does not declare packed rows "
                       f"(VideoLM.supports_packing)")
    attention = base_implementation(backend.attention_implementation())
    if attention not in MASK_ATTENTION:
        return False, (f"attention implementation {attention!r} cannot run packed rows "
                       f"(needs {', '.join(MASK_ATTENTION)})")
    return True, ""


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


@dataclass
class RowLayout:
    """The attention inputs and positions of the batch rows (shared by the policy and the reference pass).

    Attributes:
        attention_mask: the 2-D padding mask, or for packed rows under eager attention the 4-D block mask.
        position_ids: positions (rejected blocks restarted after the prefix when packed).
        packed: whether the rows are ``[prefix | chosen | rejected]``.
        attention_kwargs: extra decoder keyword arguments that reach the attention function: for packed rows
            under sdpa / flash attention, ``packed_segments`` (:func:`split_attention`).
    """

    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    packed: bool
    attention_kwargs: dict = field(default_factory=dict)


def row_layout(prompt, positions: torch.Tensor, attention: str, dtype: torch.dtype) -> RowLayout:
    """The layout of the batch rows under the language model's attention implementation ``attention``.

    Args:
        prompt: the batch's :class:`~savi_plugin.training.batch.PromptSide`.
        positions: the rows' position ids as plain sequences (:meth:`VideoLM.position_ids`).

    Packed rows get restarted positions and, under sdpa or flash attention, the split attention (two causal
    kernel calls per row, no L x L mask; the 2-D mask is all ones, so transformers builds none); under eager
    attention, the block mask of :func:`block_attention_mask` as additive scores. Unpacked rows: the plain 2-D
    mask and ``positions``.
    """
    if not prompt.packed:
        return RowLayout(prompt.attention_mask, positions, False)
    segments = prompt.segments.to(prompt.input_ids.device)
    positions = restart_rejected_positions(positions, segments)
    attention = base_implementation(attention)
    if attention in BASES:
        return RowLayout(torch.ones_like(prompt.attention_mask), positions, True, {"packed_segments": segments})
    mask = block_attention_mask(segments, prompt.input_ids.shape[1])
    if attention != "sdpa":  # eager attention adds the mask to its scores
        mask = additive_mask(mask, dtype)
    return RowLayout(mask, positions, True)


def packed_name(base: str) -> str:
    return f"{PREFIX}{base}"


def base_implementation(name: str) -> str:
    """``sdpa`` for ``savi_packed_sdpa``; a name without the prefix is returned as it is."""
    return name[len(PREFIX):] if name.startswith(PREFIX) else name


def flash_attn_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def _uses_flash(query: torch.Tensor) -> bool:
    return query.is_cuda and query.dtype in (torch.float16, torch.bfloat16) and flash_attn_available()


def _sdpa(query, key, value, *, scaling, dropout, causal_lower_right_of: tuple[int, int] | None) -> torch.Tensor:
    """SDPA on ``[1, H, *, D]`` tensors: plain causal, or bottom-right causal for a query shorter than the keys."""
    if key.shape[1] != query.shape[1]:  # grouped-query attention: repeat the key/value heads
        repeat = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(repeat, 1), value.repeat_interleave(repeat, 1)
    if causal_lower_right_of is None:
        return F.scaled_dot_product_attention(query, key, value, is_causal=True, dropout_p=dropout, scale=scaling)
    from torch.nn.attention.bias import causal_lower_right

    # A causal bias object is validated before autocast would cast the inputs, so cast them here as autocast would.
    device = query.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else query.dtype
    query, key, value = query.to(dtype), key.to(dtype), value.to(dtype)
    mask = causal_lower_right(*causal_lower_right_of)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout, scale=scaling)


def split_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, segments: torch.Tensor, *,
                    scaling: float | None = None, dropout: float = 0.0) -> torch.Tensor:
    """Attention of packed rows, ``[N, L, H, D]`` (transformers' attention output layout).

    Args:
        query: ``[N, H, L, D]``; key, value: ``[N, Hkv, L, D]`` (``H`` a multiple of ``Hkv``).
        segments: ``[N, 3]`` ``(P, C, R)`` per row; ``(P, C, 0)`` is a plain causal row of ``P + C`` tokens.
            Positions after ``P + C + R`` are padding; their outputs are zero (no real token attends to them).
        scaling: softmax scale (``1/sqrt(D)`` when None); dropout: attention dropout probability.
    """
    flash = _uses_flash(query)
    if flash:
        from flash_attn import flash_attn_func
    rows = []
    for row, (prefix, chosen, rejected) in enumerate(segments.tolist()):
        head, total = prefix + chosen, prefix + chosen + rejected
        q, k, v = query[row:row + 1], key[row:row + 1], value[row:row + 1]
        keys_second = torch.cat([k[:, :, :prefix], k[:, :, head:total]], 2)
        values_second = torch.cat([v[:, :, :prefix], v[:, :, head:total]], 2)
        if flash:  # [1, T, H, D] layout; causal with a shorter query is aligned to the bottom right
            def call(qq, kk, vv):
                return flash_attn_func(qq.transpose(1, 2), kk.transpose(1, 2), vv.transpose(1, 2), dropout_p=dropout,
                                       softmax_scale=scaling, causal=True).transpose(1, 2)
            parts = [call(q[:, :, :head], k[:, :, :head], v[:, :, :head])]
            if rejected:
                parts.append(call(q[:, :, head:total], keys_second, values_second))
        else:
            parts = [_sdpa(q[:, :, :head], k[:, :, :head], v[:, :, :head], scaling=scaling, dropout=dropout,
                           causal_lower_right_of=None)]
            if rejected:
                parts.append(_sdpa(q[:, :, head:total], keys_second, values_second, scaling=scaling, dropout=dropout,
                                   causal_lower_right_of=(rejected, prefix + rejected)))
        padding = query.shape[2] - total
        if padding:
            parts.append(query.new_zeros(1, query.shape[1], padding, query.shape[3]))
        rows.append(torch.cat(parts, 2))
    return torch.cat(rows, 0).transpose(1, 2).contiguous()


def _attention_function(base: str):
    def packed_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, packed_segments=None,
                         **kwargs):
        """``savi_packed_<base>``: the split attention for packed rows, ``<base>`` for anything else."""
        if packed_segments is None:
            from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

            return ALL_ATTENTION_FUNCTIONS[base](module, query, key, value, attention_mask, scaling=scaling,
                                                 dropout=dropout, **kwargs)
        return split_attention(query, key, value, packed_segments, scaling=scaling, dropout=dropout), None

    packed_attention.__name__ = f"packed_attention_{base}"
    return packed_attention


def register() -> None:
    """Register ``savi_packed_<base>`` for every base with transformers' attention and mask interfaces."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    for base in BASES:
        name = packed_name(base)
        if name not in AttentionInterface._global_mapping:
            AttentionInterface.register(name, _attention_function(base))
            AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base])


def language_model_config(decoder):
    """The config object the language model's attention layers read ``_attn_implementation`` from."""
    language_model = getattr(decoder, "language_model", None)
    return language_model.config if language_model is not None else decoder.config


def enable_packed_attention(decoder) -> bool:
    """Switch the language model to ``savi_packed_<base>``; False (and no change) when its base is not in BASES.

    Idempotent. Forwards without ``packed_segments`` behave exactly as under ``<base>``.
    """
    config = language_model_config(decoder)
    current = str(getattr(config, "_attn_implementation", "") or "")
    if current.startswith(PREFIX):
        return True
    if current not in BASES:
        return False
    register()
    config._attn_implementation = packed_name(current)
    return True

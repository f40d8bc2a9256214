"""Attention of packed ``[prefix | chosen | rejected]`` rows as two causal-friendly kernel calls, no L x L mask.

A packed preference row (:mod:`savi_plugin.training.packing`) needs a block mask: rejected tokens see the prefix
and earlier rejected tokens, never the chosen block. Given as a dense 4-D mask, that keeps SDPA off its fused
causal kernels (it computes every query-key block) and builds an ``L x L`` tensor. The same attention is two calls
whose masks the kernels know natively:

1. the queries of ``[prefix | chosen]`` against their own keys, **causal** (``is_causal=True``);
2. the rejected queries against the keys ``[prefix | rejected]``, **causal aligned to the bottom right** (query
   ``j`` of ``R`` sees all ``P`` prefix keys and rejected keys ``0..j``): FlashAttention's causal mode when the
   query is shorter than the keys, and ``torch.nn.attention.bias.causal_lower_right`` for SDPA.

Every query sees exactly the keys of the block mask, so outputs and gradients equal the block-mask path up to
float summation order. FlashAttention 2 (``flash_attn``) runs both calls when it is installed and the tensors are
fp16/bf16 on a GPU; SDPA's fused kernels (flash / memory-efficient on GPU, the flash CPU kernel) otherwise.

The attention is a transformers ``AttentionInterface`` function: :func:`enable_packed_attention` switches the
language model's ``_attn_implementation`` from ``sdpa`` (or ``flash_attention_2``) to ``savi_packed_<base>``.
Under that name a forward that passes ``packed_segments`` (``[N, 3]`` prefix, chosen, rejected lengths per row)
gets the split attention; any other forward (an unpacked row, generation, evaluation) is delegated unchanged to
``<base>``, masks included. The switch is permanent rather than scoped, because gradient checkpointing re-runs
each layer's forward during backward, after any scope would have ended.
"""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F

#: ``_attn_implementation`` values the split attention can stand in for.
BASES = ("sdpa", "flash_attention_2")
PREFIX = "savi_packed_"


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

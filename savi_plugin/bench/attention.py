"""What one attention layer costs in each layout of a preference pair.

:func:`attention_costs` times forward + backward of one attention layer at the packed shape for

* ``split``: the packed row ``[prefix | chosen | rejected]`` as the trainer computes it
  (:func:`savi_plugin.training.packing.split_attention`): ``[prefix | chosen]`` causal, then the
  rejected queries against ``[prefix | rejected]`` keys, causal aligned to the bottom right;
* ``block_mask``: the same packed row with the dense boolean block mask (what eager attention needs): SDPA then
  computes every query-key block, where a causal call skips the blocks above the diagonal;
* ``two_causal_rows``: ``[prefix | chosen]`` and ``[prefix | rejected]`` as two causal calls (the unpacked
  layout the official code uses).
"""

from __future__ import annotations

import time


def attention_costs(prefix: int, chosen: int, rejected: int, *, hidden: int, heads: int, repeats: int = 3,
                    seed: int = 0) -> dict:
    """Median seconds of one attention layer's forward + backward in the three layouts (see module docstring).

    Args:
        prefix, chosen, rejected: token counts of the packed row's segments.
        hidden, heads: the attention width and head count (head dim = hidden / heads).
        repeats: timed runs per layout after one warm-up; the median is returned.
        seed: input generator seed.

    Returns:
        ``{"block_mask": s, "two_causal_rows": s, "split": s, "max_abs_diff_split": d}``; the last is the largest
        difference between the split and the block-mask outputs.
    """
    import torch
    import torch.nn.functional as F

    from savi_plugin.bench.measure import median
    from savi_plugin.training.packing import block_attention_mask, split_attention

    length, dim = prefix + chosen + rejected, hidden // heads
    generator = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, heads, length, dim, generator=generator).requires_grad_() for _ in range(3))
    mask = block_attention_mask(torch.tensor([[prefix, chosen, rejected]]), length)
    head = prefix + chosen
    segments = torch.tensor([[prefix, chosen, rejected]])
    def block():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    def two_rows():
        first = F.scaled_dot_product_attention(q[:, :, :head], k[:, :, :head], v[:, :, :head], is_causal=True)
        keys = torch.cat([k[:, :, :prefix], k[:, :, head:]], 2)
        values = torch.cat([v[:, :, :prefix], v[:, :, head:]], 2)
        queries = torch.cat([q[:, :, :prefix], q[:, :, head:]], 2)
        second = F.scaled_dot_product_attention(queries, keys, values, is_causal=True)
        return torch.cat([first, second], 2)

    def split():
        return split_attention(q, k, v, segments).transpose(1, 2)

    def timed(fn) -> float:
        times = []
        for i in range(repeats + 1):
            start = time.perf_counter()
            fn().sum().backward()
            if i:  # the first run is a warm-up
                times.append(time.perf_counter() - start)
            for t in (q, k, v):
                t.grad = None
        return median(times)

    with torch.no_grad():
        difference = float((split() - block()).abs().max())
    return {"block_mask": timed(block), "two_causal_rows": timed(two_rows), "split": timed(split),
            "max_abs_diff_split": difference}

"""Generation that encodes and prefills each video once: the shared prefix's key-value cache, reused per prompt.

VideoSAVi (Kulkarni & Fazli, arXiv 2412.00624) asks about six questions per video and runs question generation,
answer, critique and revision for each: about 20 prompts that all begin with the same chat-template text and the
same video (~6,300 tokens at 32 frames on LLaVA-OneVision-7B) and differ only after it. A prompt is
``[prefix | suffix]`` where the *suffix* is the text after the video placeholder and the *prefix* everything before
it (the vision tokens included); the prefix's keys and values do not depend on the suffix (causal attention), so
they are computed once per video:

1. **Prefill once.** The first prompt of a video is processed with its frames (the vision tower runs here, and
   only here) and the language model runs over the prefix alone with a cache; the per-layer keys/values are kept
   in a :class:`PrefixStore` keyed by the video's content and the text before it.
2. **Reuse.** Every prompt of that video is tokenized as ``prefix ids + suffix ids`` (the suffix, the text after
   the video placeholder, is tokenized alone: the placeholder is a special token, so tokenization splits there;
   checked against the processor's own ids on each prefill). The batch is laid out ``[prefix | padding |
   suffix]`` (padding in the middle, so every row's cached part has the same width), the cache is the prefixes'
   keys/values copied per row, and ``generate`` runs only the suffixes and the decoding.
3. **Positions.** Positions come from the model's own generation rule on the full rows
   (``_prepare_position_ids_for_generation``): ``cumsum(attention_mask) - 1`` for 1-D RoPE, and for Qwen2-VL its
   M-RoPE index (the suffix continues after the video's largest position, i.e. the rope deltas of the prefix),
   so each token has the position it has without reuse and greedy outputs are equal token for token.

A store lives for one :func:`reuse_video_prefixes` block (a generator's batch: all stages of its videos); without
one, a ``generate`` call still shares the prefix among its own rows of the same video.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass
class PrefixEntry:
    """One video's prefix: its ids, per-layer keys/values ``[1, Hkv, P, D]``, and its per-token/per-video inputs."""

    ids: torch.Tensor
    layers: list[tuple[torch.Tensor, torch.Tensor]]
    token_inputs: dict[str, torch.Tensor]
    video_inputs: dict[str, torch.Tensor]


@dataclass
class PrefixStore:
    """Prefix caches of the videos seen in one scope; counters for the benchmark and the tests.

    Attributes:
        prefills: prefix prefills run (= vision encodings: the tower runs only in a prefill).
        reused: prompts that used a cached prefix.
    """

    entries: dict[tuple, PrefixEntry] = field(default_factory=dict)
    prefills: int = 0
    reused: int = 0


@contextlib.contextmanager
def reuse_video_prefixes(lm):
    """Keep each video's prefix cache across ``lm.generate`` calls inside the block (nested blocks share one)."""
    if getattr(lm, "prefix_store", None) is not None:
        yield lm.prefix_store
        return
    lm.prefix_store = PrefixStore()
    try:
        yield lm.prefix_store
    finally:
        lm.prefix_store = None


def video_key(frames: np.ndarray) -> tuple:
    """A key that depends only on the frames' content, shape and dtype."""
    array = np.ascontiguousarray(frames)
    return array.shape, str(array.dtype), hashlib.blake2b(array.data, digest_size=16).hexdigest()


def _video_placeholder(lm) -> str | None:
    """The text the chat template writes where the video goes (``<|video_pad|>``, ``<video>``), or None."""
    token = getattr(lm.processor, "video_token", None)
    return token if isinstance(token, str) and token else None


#: Processor outputs that hold pixels: the model's input in a prefill, never needed to place positions after it.
PIXEL_KEYS = ("pixel_values_videos", "pixel_values")


def _prefill(lm, prompt: str, frames: np.ndarray, suffix_ids: list[int]) -> PrefixEntry | None:
    """Process one prompt with its video, run the language model over the prefix, keep its keys/values.

    The prefix is every processed token before the suffix's ids: the processor expands the placeholder into the
    vision tokens and whatever the family writes around them (Qwen2-VL's ``<|vision_start|>``, Qwen3-VL's
    timestamps, InternVL's ``FrameN: <img> ... </img>``), and all of it precedes the text after the placeholder.
    """
    from transformers import DynamicCache

    processed = lm._to_device(dict(lm._process([prompt], [frames])))
    ids = processed["input_ids"][0]
    length = len(ids) - len(suffix_ids)
    if length <= 0 or ids[length:].tolist() != suffix_ids:  # the text after the video must tokenize on its own
        return None
    base = lm.model.get_base_model() if hasattr(lm.model, "get_base_model") else lm.model
    aligned = {k: v for k, v in processed.items() if torch.is_tensor(v) and v.shape == processed["input_ids"].shape}
    per_video = {k: v for k, v in processed.items() if k not in aligned}
    position_kwargs = {k: v for k, v in processed.items() if k not in PIXEL_KEYS}
    positions = base._prepare_position_ids_for_generation(processed["input_ids"], position_kwargs)
    cache = DynamicCache(config=base.config.get_text_config())
    inputs = {k: v[:, :length] for k, v in aligned.items()}
    base.model(**inputs, **per_video, position_ids=positions[..., :length], use_cache=True,
               **{cache_argument(base.model): cache})  # fills `cache` in place
    layers = [(layer.keys, layer.values) for layer in cache.layers]
    tokens = {k: v[0, :length] for k, v in aligned.items() if k not in ("input_ids", "attention_mask")}
    videos = {k: v for k, v in per_video.items() if k not in PIXEL_KEYS and torch.is_tensor(v)}
    return PrefixEntry(ids[:length], layers, tokens, videos)


def cache_argument(model) -> str:
    """The name under which ``model``'s forward takes a KV cache: ``cache`` from transformers 5.24 on,
    ``past_key_values`` before (both ends of the supported range, README "Tested versions")."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _cache_for_rows(lm, entries: list[PrefixEntry]):
    """A fresh cache whose row ``i`` holds ``entries[i]``'s prefix keys/values (a copy per row)."""
    from transformers import DynamicCache

    base = lm.model.get_base_model() if hasattr(lm.model, "get_base_model") else lm.model
    cache = DynamicCache(config=base.config.get_text_config())
    for index in range(len(entries[0].layers)):
        keys = torch.cat([e.layers[index][0] for e in entries])
        values = torch.cat([e.layers[index][1] for e in entries])
        cache.update(keys, values, index)
    return cache


def generate(lm, videos: Sequence[np.ndarray], questions: Sequence[str], generate_kwargs: dict[str, Any],
             max_new_tokens: int, *, system: str | None = None, prefill: str = "") -> list[torch.Tensor] | None:
    """Generated token ids per prompt (in order) with the prefix reused; None when a prompt does not fit the scheme.

    Args:
        lm: the :class:`~savi_plugin.models.backends.base.VideoLM`.
        videos, questions: as in ``VideoLM.generate``.
        generate_kwargs: passed to ``model.generate`` (decoding options, ``pad_token_id``).
        max_new_tokens: for the context-length check.
        system, prefill: as in ``VideoLM.prompt``. A system turn is part of the prefix (the text before the
            video, which keys the store); the pre-fill ends the suffix.
    """
    video_token = _video_placeholder(lm)
    if video_token is None or len(videos) != len(questions):
        return None
    store = getattr(lm, "prefix_store", None) or PrefixStore()
    prompts = [lm.prompt(q, system=system, prefill=prefill) for q in questions]
    keys_by_object: dict[int, tuple] = {}
    rows: list[tuple[PrefixEntry, list[int]]] = []
    for frames, prompt in zip(videos, prompts):
        if prompt.count(video_token) != 1:
            return None
        head, tail = prompt.split(video_token)
        suffix = lm.tokenizer(tail, add_special_tokens=False)["input_ids"]
        if not suffix:
            return None
        if id(frames) not in keys_by_object:
            keys_by_object[id(frames)] = video_key(frames)
        key = (keys_by_object[id(frames)], head)
        entry = store.entries.get(key)
        if entry is None:
            entry = _prefill(lm, prompt, frames, suffix)
            if entry is None:
                log.debug("prefix reuse does not apply to %r; generating without it", prompt[:80])
                return None
            store.entries[key] = entry
            store.prefills += 1
        else:
            store.reused += 1
        rows.append((entry, suffix))
    out: list[torch.Tensor | None] = [None] * len(rows)
    by_length: dict[int, list[int]] = {}
    for i, (entry, _) in enumerate(rows):
        by_length.setdefault(len(entry.ids), []).append(i)
    for indices in by_length.values():
        for i, ids in zip(indices, _generate_rows(lm, [rows[i] for i in indices], generate_kwargs, max_new_tokens)):
            out[i] = ids
    return out


def _generate_rows(lm, rows: list[tuple[PrefixEntry, list[int]]], generate_kwargs: dict[str, Any],
                   max_new_tokens: int) -> list[torch.Tensor]:
    """``[prefix | padding | suffix]`` rows with equal prefix lengths, generated from the copied prefix caches."""
    device = lm.device
    prefix = len(rows[0][0].ids)
    width = prefix + max(len(s) for _, s in rows)
    pad = lm.pad_token_id
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long, device=device)
    attention = torch.zeros(len(rows), width, dtype=torch.long, device=device)
    token_inputs = {k: torch.zeros(len(rows), width, dtype=v.dtype, device=device)
                    for k, v in rows[0][0].token_inputs.items()}
    for r, (entry, suffix) in enumerate(rows):
        start = width - len(suffix)
        input_ids[r, :prefix] = entry.ids
        input_ids[r, start:] = torch.tensor(suffix, device=device)
        attention[r, :prefix] = 1
        attention[r, start:] = 1
        for k, v in entry.token_inputs.items():
            token_inputs[k][r, :prefix] = v
    lm.check_context(attention, max_new_tokens)
    base = lm.model.get_base_model() if hasattr(lm.model, "get_base_model") else lm.model
    position_kwargs = {"input_ids": input_ids, "attention_mask": attention, **token_inputs}
    for k in rows[0][0].video_inputs:
        position_kwargs[k] = torch.cat([entry.video_inputs[k] for entry, _ in rows])
    positions = base._prepare_position_ids_for_generation(input_ids, position_kwargs)
    cache = _cache_for_rows(lm, [entry for entry, _ in rows])
    generated = lm.model.generate(input_ids=input_ids, attention_mask=attention, position_ids=positions,
                                  **{cache_argument(base): cache}, **generate_kwargs)
    return list(generated[:, width:])

"""THE scoring path: per-token log-probs of responses after a video prompt, for training, reference and eval.

:func:`score_responses` is the one function that scores responses: the trainer (policy with its reference,
packed or not), the reference precompute (:func:`savi_plugin.training.reference.precompute_reference`), the
eval log-likelihood (``savi_video``'s ``loglikelihood``) and the tests call it. It runs the one forward
(:func:`savi_plugin.training.forward.batch_hidden_states`), gathers the hidden state that predicts each response
token, and applies the LM head at those positions only
(:func:`savi_plugin.training.token_logprobs.response_token_stats`). Token-level results come padded ``[B, T]``;
:meth:`ResponseTokenStats.total` gives sequence-level sums or length-normalised means.

A **scoring batch** (:func:`scoring_batch`, or :func:`build_batch` on already encoded prompts; the collator's
batches are scoring batches) holds rows and, per named side (``chosen``, ``rejected``, or one ``response``):
``<side>_rows`` ``[B]`` (the row of each sample's response), ``<side>_positions`` ``[B, T]`` (the row positions of
the hidden states that predict its tokens) and ``<side>_targets`` ``[B, T]`` (the tokens, ``-100`` on padding).
One shift convention holds everywhere after the gather: ``hidden[:, j]`` predicts ``targets[:, j]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from savi_plugin.models.backends.tokens import IGNORE_INDEX, aligned_keys, append_rows, pad_stack, prompt_rows
from savi_plugin.training.forward import batch_hidden_states
from savi_plugin.training.packing import gather_response_hidden, response_positions
from savi_plugin.training.token_logprobs import ReferenceTokenStats, ResponseTokenStats, response_token_stats

#: The extra side that carries the official RRPO KL scope's template positions (see :func:`template_side`).
TEMPLATE_SUFFIX = "_template"


@dataclass
class Prompts:
    """Encoded prompts of a batch: unpadded rows, per-token processor keys and per-video inputs."""

    rows: list[dict[str, torch.Tensor]]
    aligned: list[str]
    vision: dict[str, Any]

    @property
    def lengths(self) -> list[int]:
        return [len(row["input_ids"]) for row in self.rows]


def encode_prompts(backend, videos: Sequence[np.ndarray], questions: Sequence[str]) -> Prompts:
    """Run the backend's processor once over the prompts (chat template, video placeholders, pixels)."""
    prompts = backend.encode(videos, questions)
    aligned = aligned_keys(prompts)
    vision = {k: v for k, v in prompts.items() if k not in aligned and k not in ("input_ids", "attention_mask")}
    return Prompts(prompt_rows(prompts, aligned), aligned, vision)


def build_batch(backend, prompts: Prompts, responses: dict[str, Sequence[Sequence[int]]], *,
                packing: bool = False) -> dict[str, Any]:
    """A scoring batch from encoded prompts and the token ids of one or two sides of responses.

    Args:
        backend: the ``VideoLM`` (pad id).
        prompts: from :func:`encode_prompts`.
        responses: side name -> one id list per prompt (already tokenised by the one rule and truncated).
        packing: two sides in ONE row per sample, ``[prompt | first | second]``
            (:mod:`savi_plugin.training.packing`); otherwise one row ``[prompt | response]`` per sample and side.
    """
    names = list(responses)
    count = len(prompts.rows)
    if packing and len(names) != 2:
        raise ValueError(f"packing needs exactly two sides of responses, got {names}")
    tails, segments, row_to_pair = [], [], []
    positions: dict[str, list[list[int]]] = {name: [] for name in names}
    rows: dict[str, list[int]] = {}
    if packing:
        first, second = names
        for b, length in enumerate(prompts.lengths):
            c, r = len(responses[first][b]), len(responses[second][b])
            tails.append(list(responses[first][b]) + list(responses[second][b]))
            segments.append((length, c, r))
            positions[first].append(response_positions(length, c, length))
            positions[second].append(response_positions(length, r, length + c))
        row_to_pair = list(range(count))
        rows = {first: list(range(count)), second: list(range(count))}
    else:
        for k, name in enumerate(names):
            for b, length in enumerate(prompts.lengths):
                tails.append(list(responses[name][b]))
                segments.append((length, len(responses[name][b]), 0))
                positions[name].append(response_positions(length, len(responses[name][b]), length))
            row_to_pair += list(range(count))
            rows[name] = list(range(k * count, (k + 1) * count))
    prompt_of_row = [prompts.rows[b] for b in row_to_pair]
    padded = append_rows(prompt_of_row, tails, backend.pad_token_id, prompts.aligned)
    batch: dict[str, Any] = {
        "input_ids": padded["input_ids"],
        "attention_mask": padded["attention_mask"],
        "row_inputs": {k: padded[k] for k in prompts.aligned},
        "vision": prompts.vision,
        "segments": torch.tensor(segments, dtype=torch.long),
        "row_to_pair": torch.tensor(row_to_pair, dtype=torch.long),
        "packed": torch.tensor(bool(packing)),
    }
    for name in names:
        batch[f"{name}_rows"] = torch.tensor(rows[name], dtype=torch.long)
        batch[f"{name}_positions"] = pad_stack(positions[name], 0)
        batch[f"{name}_targets"] = pad_stack(responses[name], IGNORE_INDEX)
    return batch


def scoring_batch(backend, videos: Sequence[np.ndarray], questions: Sequence[str],
                  responses: dict[str, Sequence[Sequence[int]]], *, packing: bool = False) -> dict[str, Any]:
    """:func:`build_batch` from videos and questions (one video per prompt)."""
    return build_batch(backend, encode_prompts(backend, videos, questions), responses, packing=packing)


def template_side(backend, batch: dict[str, Any], prompts: Prompts, side: str = "chosen") -> dict[str, Any]:
    """Add ``<side>_template``: the positions the official RRPO preprocessing also labels around a response.

    LLaVA's ``preprocess_qwen`` (pritamqu/RRPO ``train_llavavideo.py``) labels the whole assistant turn
    (``<|im_start|>assistant\\n`` header, answer, ``<|im_end|>\\n``) and, in every turn, each ``\\n``,
    ``<|im_start|>`` and ``<|im_end|>`` token; the official KL sums over all labelled positions of the chosen
    sequence. Beyond the response (already a side), that is: prompt tokens that are template tokens
    (:meth:`VideoLM.template_token_ids`) or belong to the assistant header, and the turn separator after the
    end-of-turn token, predicted from the response's last position. The first token of a row has no predecessor
    and is never scored.
    """
    template = backend.template_token_ids()
    header = len(backend.tokenizer(backend.assistant_header, add_special_tokens=False)["input_ids"]) \
        if backend.assistant_header else 0
    separator = backend.tokenizer(backend.turn_separator, add_special_tokens=False)["input_ids"] \
        if backend.turn_separator else []
    rows = batch[f"{side}_rows"].tolist()
    side_positions = batch[f"{side}_positions"]
    side_targets = batch[f"{side}_targets"]
    positions, targets = [], []
    for b, row in enumerate(prompts.rows):
        ids = row["input_ids"].tolist()
        picked = [j for j in range(1, len(ids)) if ids[j] in template or j >= len(ids) - header]
        pos = [j - 1 for j in picked]
        tgt = [ids[j] for j in picked]
        n = int((side_targets[b] != IGNORE_INDEX).sum())
        if len(separator) == 1 and n:
            # the separator follows the response's last token: the state at that token predicts it
            pos.append(int(side_positions[b, n - 1]) + 1)
            tgt.append(separator[0])
        positions.append(pos)
        targets.append(tgt)
    batch[f"{side}{TEMPLATE_SUFFIX}_rows"] = torch.tensor(rows, dtype=torch.long)
    batch[f"{side}{TEMPLATE_SUFFIX}_positions"] = pad_stack(positions, 0)
    batch[f"{side}{TEMPLATE_SUFFIX}_targets"] = pad_stack(targets, IGNORE_INDEX)
    return batch


@dataclass
class Scores:
    """What :func:`score_responses` returns: per-side token statistics and the vision encoder count.

    ``scores.chosen`` is ``scores.sides["chosen"]``; every side is a
    :class:`~savi_plugin.training.token_logprobs.ResponseTokenStats` padded ``[B, T]``.
    """

    sides: dict[str, ResponseTokenStats] = field(default_factory=dict)
    vision_calls: int = 0

    def __getattr__(self, name: str) -> ResponseTokenStats:
        sides = self.__dict__.get("sides", {})
        if name in sides:
            return sides[name]
        raise AttributeError(name)

    def __getitem__(self, name: str) -> ResponseTokenStats:
        return self.sides[name]


def stored_reference(batch: dict[str, Any], side: str) -> ReferenceTokenStats | None:
    """The precomputed reference statistics of one side carried by a batch (``reference_<side>_*``), packed."""
    key = f"reference_{side}_logps"
    if key not in batch:
        return None
    mask = batch[f"{side}_targets"] != IGNORE_INDEX

    def packed(name):
        value = batch.get(f"reference_{side}_{name}")
        return None if value is None else value[mask]

    return ReferenceTokenStats(token_logps=batch[key][mask], full_logprobs=packed("full"),
                               topk_logprobs=packed("topk_logprobs"), topk_indices=packed("topk_indices"),
                               tail_logmass=packed("tail"))


def score_responses(backend, batch: dict[str, Any], *, sides: Sequence[str] = ("chosen", "rejected"),
                    reference: str = "none", reference_backend=None, kl: str = "ref||policy",
                    kl_sides: Sequence[str] = (), greedy: bool = False, keep_top_k: int | None = None,
                    keep_full: bool = False, keep_sides: Sequence[str] = (), chunk_size: int = 256,
                    checkpoint_chunks: bool = True) -> Scores:
    """Score the responses of a scoring batch: the single scoring path (see module docstring).

    Args:
        backend: the scored (policy) ``VideoLM``; its ``model`` is a peft model for ``reference="adapter"``.
        batch: a scoring batch on the model's device.
        sides: the sides to score.
        reference: ``"adapter"`` (the policy with LoRA disabled), ``"model"`` (``reference_backend``),
            ``"precomputed"`` (statistics carried by the batch, see :class:`~.reference.ReferenceStore`) or
            ``"none"`` (no reference: a reference-free loss, eval, or the reference precompute itself).
        reference_backend: the frozen reference ``VideoLM`` for ``reference="model"``.
        kl: the direction of the per-token KL (``"ref||policy"``: RRPO; ``"policy||ref"``: TDPO).
        kl_sides: the sides that need the KL (a reference distribution is required there).
        greedy: also report whether each target is the arg-max (eval's ``is_greedy``).
        keep_top_k, keep_full, keep_sides: also return the scored model's top-k / full log-probs on those sides
            (what the reference precompute stores).
        chunk_size: response positions per LM-head call.
        checkpoint_chunks: recompute each LM-head chunk in backward (peak O(chunk x vocab)). Must be off under
            DeepSpeed ZeRO-3: the recomputation runs outside ZeRO's module hooks and would see the LM head's
            empty local shard.
    """
    hidden = batch_hidden_states(backend, batch, reference="none" if reference == "precomputed" else reference,
                                 reference_backend=reference_backend)
    head = backend.lm_head()
    out = Scores(vision_calls=hidden.vision_calls)
    for side in sides:
        rows, positions, targets = batch[f"{side}_rows"], batch[f"{side}_positions"], batch[f"{side}_targets"]
        policy = gather_response_hidden(hidden.policy, rows, positions)
        reference_hidden = None if hidden.reference is None else gather_response_hidden(hidden.reference, rows,
                                                                                        positions)
        stored = stored_reference(batch, side) if reference == "precomputed" else None
        if reference == "precomputed" and stored is None:
            raise ValueError(f"reference='precomputed' but the batch carries no reference statistics for "
                             f"{side!r} (give the collator a ReferenceStore)")
        keep = side in keep_sides
        out.sides[side] = response_token_stats(
            policy, head, targets, reference_hidden_states=reference_hidden, reference_lm_head=hidden.reference_head,
            reference=stored, kl=kl if side in kl_sides else None, greedy=greedy,
            keep_top_k=keep_top_k if keep else None, keep_full=keep_full and keep, chunk_size=chunk_size,
            checkpoint_chunks=checkpoint_chunks)
    return out

"""The typed batch of the scoring path, and how its rows are laid out (CPU, once per batch).

A batch is what the decoder reads (:class:`PromptSide`: the rows) plus, per response side, where each response
token sits in those rows (:class:`ResponseSide`). The collator builds a :class:`PreferenceBatch` (sides
``chosen`` and ``rejected``, and ``template`` for RRPO's official KL scope); the eval log-likelihood builds a
:class:`ScoringBatch` with one side, ``response``. :func:`savi_plugin.training.scoring.score_responses` scores
either.

Two row layouts (:mod:`savi_plugin.training.packing` has the attention that makes them equal):

* packed: ONE row ``[prompt | chosen | rejected]`` per pair; the rejected block is predicted from the prompt's
  last position and restarts its positions after the prompt;
* unpacked: two rows per pair, ``[prompt | chosen]`` (rows ``0..B-1``) and ``[prompt | rejected]``
  (rows ``B..2B-1``).

Either way a side says, for each of its ``B`` responses, the row it lives in (``rows [B]``), the row positions
of the hidden states that predict its tokens (``positions [B, T]``: the state at ``t - 1`` predicts the token
at ``t``) and the tokens (``targets [B, T]``, ``-100`` on padding). After the gather ``hidden[:, j]`` predicts
``targets[:, j]`` in both layouts: the one shift convention of the project.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from savi_plugin.models.backends.tokens import IGNORE_INDEX, aligned_keys, append_rows, pad_stack, prompt_rows


def _moved(value, fn):
    if torch.is_tensor(value):
        return fn(value)
    if isinstance(value, dict):
        return {k: _moved(v, fn) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.map(fn)
    return value


class _Tensors:
    """``map``/``to`` over every tensor field (nested dicts and sides included)."""

    def map(self, fn):
        """A copy with ``fn`` applied to every tensor."""
        return dataclasses.replace(self, **{f.name: _moved(getattr(self, f.name), fn)
                                            for f in dataclasses.fields(self)})

    def to(self, device, non_blocking: bool = False):
        """A copy on ``device`` (accelerate's data loader calls this)."""
        return self.map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self):
        """A copy in pinned memory (torch's data loader calls this under ``pin_memory=True``)."""
        return self.map(lambda t: t.pin_memory())


@dataclass
class PromptSide(_Tensors):
    """The rows the decoder reads, ``N`` of them (``B`` packed, ``2B`` unpacked, ``B`` for one side).

    Attributes:
        input_ids, attention_mask: ``[N, L]``, right-padded.
        row_inputs: other per-token processor outputs ``[N, L]`` by the processor's names (Qwen2-VL's
            ``mm_token_type_ids``).
        vision: per-video processor outputs by the processor's names (``pixel_values_videos``,
            ``video_grid_thw``, ...), one entry per prompt.
        segments: ``[N, 3]`` (prompt, first, second) lengths per row; an unpacked row is ``(P, R, 0)``.
        row_to_pair: ``[N]`` the prompt (video) of each row.
        packed: whether rows are ``[prompt | chosen | rejected]``.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    row_inputs: dict[str, torch.Tensor]
    vision: dict[str, Any]
    segments: torch.Tensor
    row_to_pair: torch.Tensor
    packed: bool = False


@dataclass
class ResponseSide(_Tensors):
    """Where one side's ``B`` responses are in the rows, and their tokens.

    Attributes:
        rows: ``[B]`` the row of each response.
        positions: ``[B, T]`` the row positions whose hidden states predict each token (padded with 0).
        targets: ``[B, T]`` the token ids, ``-100`` on padding.
        phrase_ids: ``[B, T]`` the ``<MASK>`` phrase id of each token (0 = untagged), or None.
    """

    rows: torch.Tensor
    positions: torch.Tensor
    targets: torch.Tensor
    phrase_ids: torch.Tensor | None = None


@dataclass
class ScoringBatch(_Tensors):
    """Rows and the response sides scored in them (:func:`savi_plugin.training.scoring.score_responses`)."""

    prompt: PromptSide
    sides: dict[str, ResponseSide]


@dataclass
class PreferenceBatch(ScoringBatch):
    """A collated batch of ``B`` preference pairs: sides ``chosen``, ``rejected`` (and ``template``).

    Attributes:
        weights: ``[B]`` each pair's weight in the weighted mean (1 by default).
        truncated: 0-d, responses cut to the token budget in this batch.
        pair_ids: the record ids.
        skipped_records: pairs whose video failed only when decoded (``bad_records="skip"``); a batch left with
            no pair has ``prompt=None`` and no sides.
    """

    weights: torch.Tensor | None = None
    truncated: torch.Tensor | None = None
    pair_ids: list[str] = field(default_factory=list)
    skipped_records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def chosen(self) -> ResponseSide:
        return self.sides["chosen"]

    @property
    def rejected(self) -> ResponseSide:
        return self.sides["rejected"]

    def __contains__(self, key: str) -> bool:
        # transformers' Trainer asks ``"labels" in batch`` to decide how to scale the loss: a preference batch
        # has no labels (the loss is a per-batch mean).
        return False


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


def response_positions(prefix_length: int, response_length: int, response_start: int) -> list[int]:
    """Row positions of the hidden states that predict each token of a response.

    Args:
        prefix_length: ``P``, the prompt length (the first response token is predicted from ``P - 1``).
        response_length: number of response tokens.
        response_start: where the response's first token sits in the row (``P`` for chosen and for an
            unpacked rejected row; ``P + C`` for a packed rejected block).
    """
    if response_length == 0:
        return []
    return [prefix_length - 1] + [response_start + j - 1 for j in range(1, response_length)]


def _side(rows: list[int], positions: list[list[int]], targets: Sequence[Sequence[int]],
          phrase_ids: Sequence[Sequence[int]] | None = None) -> ResponseSide:
    return ResponseSide(torch.tensor(rows, dtype=torch.long), pad_stack(positions, 0),
                        pad_stack(targets, IGNORE_INDEX), None if phrase_ids is None else pad_stack(phrase_ids, 0))


def build_batch(backend, prompts: Prompts, responses: dict[str, Sequence[Sequence[int]]], *,
                packing: bool = False, phrase_ids: dict[str, Sequence[Sequence[int]]] | None = None,
                cls: type[ScoringBatch] = ScoringBatch, **extra) -> ScoringBatch:
    """A batch from encoded prompts and the token ids of one or two sides of responses.

    Args:
        backend: the ``VideoLM`` (pad id).
        prompts: from :func:`encode_prompts`.
        responses: side name -> one id list per prompt (already tokenised by the one rule and truncated).
        packing: two sides in ONE row per sample, ``[prompt | first | second]``; otherwise one row
            ``[prompt | response]`` per sample and side.
        phrase_ids: side name -> per-token phrase ids, for the sides that have them.
        cls, extra: the batch class and its further fields (:class:`PreferenceBatch`'s weights, ...).
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
    padded = append_rows([prompts.rows[b] for b in row_to_pair], tails, backend.pad_token_id, prompts.aligned)
    prompt = PromptSide(padded["input_ids"], padded["attention_mask"], {k: padded[k] for k in prompts.aligned},
                        prompts.vision, torch.tensor(segments, dtype=torch.long),
                        torch.tensor(row_to_pair, dtype=torch.long), bool(packing))
    phrase_ids = phrase_ids or {}
    sides = {name: _side(rows[name], positions[name], responses[name], phrase_ids.get(name)) for name in names}
    return cls(prompt, sides, **extra)


def scoring_batch(backend, videos: Sequence[np.ndarray], questions: Sequence[str],
                  responses: dict[str, Sequence[Sequence[int]]], *, packing: bool = False) -> ScoringBatch:
    """:func:`build_batch` from videos and questions (one video per prompt)."""
    return build_batch(backend, encode_prompts(backend, videos, questions), responses, packing=packing)


def labelled_inputs(backend, videos: Sequence[np.ndarray], questions: Sequence[str],
                    responses: Sequence[str]) -> tuple[dict[str, Any], torch.Tensor]:
    """``model(**inputs)`` keyword arguments of the ``[prompt | response]`` rows of :func:`scoring_batch` and their
    ``labels [N, L]`` (the response tokens, ``-100`` elsewhere): for a model's own forward and loss (the demo's
    warm-up, the official RRPO layout, checks against full logits). Responses are tokenized by the one rule
    (:meth:`VideoLM.response_tokens`, end of turn included)."""
    ids = [backend.response_tokens(response)[0] for response in responses]
    prompt = scoring_batch(backend, videos, questions, {"response": ids}).prompt
    labels = torch.full_like(prompt.input_ids, IGNORE_INDEX)
    for b, (start, count, _) in enumerate(prompt.segments.tolist()):
        labels[b, start:start + count] = prompt.input_ids[b, start:start + count]
    inputs = {"input_ids": prompt.input_ids, "attention_mask": prompt.attention_mask, **prompt.row_inputs,
              **prompt.vision}
    return inputs, labels


def template_side(backend, prompts: Prompts, side: ResponseSide) -> ResponseSide:
    """The positions the official RRPO preprocessing also labels around a response (its ``template`` side).

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
    positions, targets = [], []
    for b, row in enumerate(prompts.rows):
        ids = row["input_ids"].tolist()
        picked = [j for j in range(1, len(ids)) if ids[j] in template or j >= len(ids) - header]
        pos = [j - 1 for j in picked]
        tgt = [ids[j] for j in picked]
        n = int((side.targets[b] != IGNORE_INDEX).sum())
        if len(separator) == 1 and n:
            # the separator follows the response's last token: the state at that token predicts it
            pos.append(int(side.positions[b, n - 1]) + 1)
            tgt.append(separator[0])
        positions.append(pos)
        targets.append(tgt)
    return _side(side.rows.tolist(), positions, targets)

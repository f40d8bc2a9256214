"""Batches of video preference pairs: each video decoded once, packed or unpacked rows, response gathers.

For a batch of ``B`` pairs the collator

1. decodes each pair's video ONCE (``read_frames`` with ``num_frames``) and runs the backend's processor
   once over the ``B`` prompts (``VideoLM.encode(videos, questions)``: chat template, video placeholder
   expansion, pixel preprocessing) -- the vision inputs are per pair, never per response;
2. appends the responses' token ids (tokenized at dataset load, the way ``VideoLM.encode`` does) to each
   prompt, either packed -- one row ``[prompt | chosen | rejected]`` per pair, see
   :mod:`savi_plugin.training.packing` -- or unpacked, two rows ``[prompt | chosen]`` (rows ``0..B-1``)
   and ``[prompt | rejected]`` (rows ``B..2B-1``);
3. describes where each response token is predicted (``*_rows``, ``*_positions``, ``*_targets``) so the
   trainer applies the LM head at those positions only, in either layout;
4. applies the ``max_length`` truncation policy (see :mod:`savi_plugin.training.config`);
5. with a precomputed reference, attaches the stored reference statistics of each pair after checking that
   they were computed for exactly these response tokens.

Batch keys (tensors unless noted): ``input_ids``/``attention_mask`` ``[N, L]``; ``row_inputs`` (dict of other
``[N, L]`` processor outputs, e.g. Qwen2-VL's ``mm_token_type_ids``); ``vision`` (dict of per-pair vision
inputs: ``pixel_values_videos``, ``video_grid_thw``, ...); ``segments`` ``[N, 3]`` (prefix, chosen, rejected
lengths per row); ``row_to_pair`` ``[N]``; ``packed`` (0-d bool); ``chosen_rows`` ``[B]``,
``chosen_positions``/``chosen_targets``/``chosen_phrase_ids`` ``[B, Tc]`` and the same for ``rejected``;
``truncated`` (0-d: responses cut this batch); ``pair_ids`` (list of record ids); optional ``reference_*``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from savi_plugin.data import DataError
from savi_plugin.training.dataset import PairItem
from savi_plugin.training.packing import IGNORE_INDEX, pad_stack, response_positions
from savi_plugin.video import VideoDecodeError, read_frames


def token_budget(max_length: int | None, context_length: int | None) -> int | None:
    """The ``prompt + response`` token budget: ``max_length``, capped by the model's context window (None: none)."""
    limits = [int(v) for v in (max_length, context_length) if v]
    return min(limits) if limits else None


class PreferenceCollator:
    """Turn a list of :class:`~savi_plugin.training.dataset.PairItem` into a model-ready batch.

    Args:
        backend: the policy's :class:`~savi_plugin.models.backends.base.VideoLM` (prompt format, processor).
        num_frames: frames decoded per video.
        packing: one packed row per pair (True) or two rows per pair (False). The trainer turns this off
            when the model cannot take the block mask.
        max_length: ``prompt + response`` token budget; the model's context window (``backend.context_length``)
            caps it, also when None (see :func:`token_budget` and the policy in :mod:`savi_plugin.training.config`).
        video_backend: ``decord`` / ``pyav`` / None.
        reference_store: a :class:`~savi_plugin.training.reference.ReferenceStore` to attach precomputed
            reference statistics from, or None.
    """

    def __init__(self, backend, *, num_frames: int = 16, packing: bool = True, max_length: int | None = None,
                 video_backend: str | None = None, reference_store=None):
        self.backend = backend
        self.num_frames = num_frames
        self.packing = packing
        self.max_length = max_length
        self.context_length = getattr(backend, "context_length", None)
        self.token_budget = token_budget(max_length, self.context_length)
        self.video_backend = video_backend
        self.reference_store = reference_store
        #: videos decoded by this collator (one per pair; tests check it)
        self.videos_decoded = 0

    def _decode(self, item: PairItem):
        try:
            frames = read_frames(item.video_path, self.num_frames, backend=self.video_backend).frames
        except VideoDecodeError as exc:
            raise DataError(item.file, item.line, "video", str(exc)) from exc
        self.videos_decoded += 1
        return frames

    def _budget(self, item: PairItem, prompt_length: int, ids: list[int], phrase: list[int] | None):
        if self.token_budget is None:
            return ids, phrase, False
        room = self.token_budget - prompt_length
        if room < 1:
            raise DataError(item.file, item.line, "video",
                            f"the prompt (video + question) is {prompt_length} tokens, leaving no room for a response "
                            f"within the token budget of {self.token_budget} (max_length={self.max_length}, model "
                            f"context window {self.context_length}); raise max_length or lower num_frames")
        if len(ids) <= room:
            return ids, phrase, False
        return ids[:room], None if phrase is None else phrase[:room], True

    def __call__(self, items: Sequence[PairItem]) -> dict[str, Any]:
        if not items:
            raise ValueError("empty batch")
        videos = [self._decode(item) for item in items]
        for item, video in zip(items, videos):  # the processor stacks a batch's videos: equal shapes only
            if video.shape != videos[0].shape:
                raise DataError(item.file, item.line, "video",
                                f"{item.video_path}: decoded to {video.shape[0]} frame(s) of {video.shape[2]}x"
                                f"{video.shape[1]}, the batch's first video to {videos[0].shape[0]} of "
                                f"{videos[0].shape[2]}x{videos[0].shape[1]}; a batch needs videos of at least "
                                f"num_frames frames (never repeated to fill one) and, for backends that do not "
                                f"resize, one resolution")
        prompts = self.backend.encode(videos, [item.record.question for item in items])
        ids, mask = prompts["input_ids"], prompts["attention_mask"].bool()
        aligned = [k for k, v in prompts.items()
                   if torch.is_tensor(v) and v.shape == ids.shape and k not in ("input_ids", "attention_mask")]
        vision = {k: v for k, v in prompts.items() if k not in aligned and k not in ("input_ids", "attention_mask")}

        pairs = len(items)
        prompt_rows = [{k: prompts[k][i][mask[i]] for k in ["input_ids"] + aligned} for i in range(pairs)]
        chosen, rejected, chosen_phrase, rejected_phrase = [], [], [], []
        truncated = 0
        for item, row in zip(items, prompt_rows):
            p = len(row["input_ids"])
            c_ids, c_phrase, c_cut = self._budget(item, p, item.chosen_ids, item.chosen_phrase_ids)
            r_ids, r_phrase, r_cut = self._budget(item, p, item.rejected_ids, item.rejected_phrase_ids)
            truncated += int(c_cut) + int(r_cut)
            chosen.append(c_ids)
            rejected.append(r_ids)
            chosen_phrase.append(c_phrase if c_phrase is not None else [0] * len(c_ids))
            rejected_phrase.append(r_phrase if r_phrase is not None else [0] * len(r_ids))

        rows: list[dict[str, torch.Tensor]] = []
        segments: list[tuple[int, int, int]] = []
        chosen_pos, rejected_pos = [], []
        if self.packing:
            for b, row in enumerate(prompt_rows):
                p, c, r = len(row["input_ids"]), len(chosen[b]), len(rejected[b])
                rows.append(self._extend(row, aligned, chosen[b] + rejected[b]))
                segments.append((p, c, r))
                chosen_pos.append(response_positions(p, c, p))
                rejected_pos.append(response_positions(p, r, p + c))
            row_to_pair = list(range(pairs))
            chosen_rows = rejected_rows = list(range(pairs))
        else:
            for responses, positions in ((chosen, chosen_pos), (rejected, rejected_pos)):
                for b, row in enumerate(prompt_rows):
                    p = len(row["input_ids"])
                    rows.append(self._extend(row, aligned, responses[b]))
                    segments.append((p, len(responses[b]), 0))
                    positions.append(response_positions(p, len(responses[b]), p))
            row_to_pair = list(range(pairs)) * 2
            chosen_rows, rejected_rows = list(range(pairs)), list(range(pairs, 2 * pairs))

        pad_id = self.backend.tokenizer.pad_token_id if self.backend.tokenizer.pad_token_id is not None else 0
        batch: dict[str, Any] = {
            "input_ids": pad_stack([r["input_ids"] for r in rows], pad_id),
            "attention_mask": pad_stack([torch.ones(len(r["input_ids"])) for r in rows], 0),
            "row_inputs": {k: pad_stack([r[k] for r in rows], 0, dtype=prompts[k].dtype) for k in aligned},
            "vision": vision,
            "segments": torch.tensor(segments, dtype=torch.long),
            "row_to_pair": torch.tensor(row_to_pair, dtype=torch.long),
            "packed": torch.tensor(bool(self.packing)),
            "chosen_rows": torch.tensor(chosen_rows, dtype=torch.long),
            "rejected_rows": torch.tensor(rejected_rows, dtype=torch.long),
            "chosen_positions": pad_stack(chosen_pos, 0),
            "rejected_positions": pad_stack(rejected_pos, 0),
            "chosen_targets": pad_stack(chosen, IGNORE_INDEX),
            "rejected_targets": pad_stack(rejected, IGNORE_INDEX),
            "chosen_phrase_ids": pad_stack(chosen_phrase, 0),
            "rejected_phrase_ids": pad_stack(rejected_phrase, 0),
            "truncated": torch.tensor(truncated, dtype=torch.long),
            "pair_ids": [item.record.id for item in items],
        }
        if self.reference_store is not None:
            batch.update(self.reference_store.batch(items, chosen, rejected))
        return batch

    @staticmethod
    def _extend(row: dict[str, torch.Tensor], aligned: list[str], response: list[int]) -> dict[str, torch.Tensor]:
        out = {"input_ids": torch.cat([row["input_ids"], torch.tensor(response, dtype=row["input_ids"].dtype)])}
        for k in aligned:  # processor outputs aligned with the ids (e.g. token types): responses are text (0)
            out[k] = torch.cat([row[k], torch.zeros(len(response), dtype=row[k].dtype)])
        return out

"""Batches of video preference pairs (CPU, once per batch): each video decoded once, then the typed batch.

For a batch of ``B`` pairs the collator

1. decodes each pair's video ONCE (``read_frames`` with ``num_frames``) and runs the backend's processor
   once over the ``B`` prompts (:func:`savi_plugin.training.batch.encode_prompts`: chat template, video
   placeholder expansion, pixel preprocessing) -- the vision inputs are per pair, never per response;
2. applies the ``max_length`` truncation policy (see :mod:`savi_plugin.training.config`) to the responses'
   token ids (tokenized at dataset load by the one rule,
   :func:`savi_plugin.models.backends.tokens.tokenize_response`);
3. lays out the rows and the response sides (:func:`savi_plugin.training.batch.build_batch`), packed or not,
   and returns a :class:`~savi_plugin.training.batch.PreferenceBatch` with the pairs' weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from savi_plugin.constants import DEFAULT_NUM_FRAMES
from savi_plugin.data import DataError
from savi_plugin.errors import INPUT, classify
from savi_plugin.training.batch import (
    PreferenceBatch,
    build_batch,
    encode_prompts,
    template_side,
)
from savi_plugin.training.dataset import PairItem
from savi_plugin.video import VideoDecodeError, read_frames


def token_budget(max_length: int | None, context_length: int | None) -> int | None:
    """The ``prompt + response`` token budget: ``max_length``, capped by the model's context window (None: none)."""
    limits = [int(v) for v in (max_length, context_length) if v]
    return min(limits) if limits else None


class PreferenceCollator:
    """Turn a list of :class:`~savi_plugin.training.dataset.PairItem` into a
    :class:`~savi_plugin.training.batch.PreferenceBatch`.

    Args:
        backend: the policy's :class:`~savi_plugin.models.backends.base.VideoLM` (prompt format, processor).
        num_frames: frames decoded per video.
        frame_rule: which frames (:data:`savi_plugin.video.sampling.SAMPLING_RULES`); ``interval`` is the
            official RRPO training loader's ``int(i * T / n)``.
        packing: one packed row per pair (True) or two rows per pair (False). The trainer turns this off
            when the model cannot take the block mask.
        max_length: ``prompt + response`` token budget; the model's context window (``backend.context_length``)
            caps it, also when None (see :func:`token_budget` and the policy in :mod:`savi_plugin.training.config`).
        video_backend: ``decord`` / ``pyav`` / None.
        template_positions: add the ``template`` side (:func:`savi_plugin.training.batch.template_side`) that
            RRPO's ``kl_scope: official`` sums its KL over.
    """

    def __init__(self, backend, *, num_frames: int = DEFAULT_NUM_FRAMES, frame_rule: str = "uniform",
                 packing: bool = True, max_length: int | None = None, video_backend: str | None = None,
                 template_positions: bool = False,
                 bad_records: str = "raise"):
        self.backend = backend
        #: ``"skip"``: a pair whose video fails only when decoded (damage after the header, fewer frames than
        #: the header said) is dropped from its batch and listed in the batch's ``skipped_records``; a batch
        #: left with no pair has no prompt and no sides (``pair_ids`` empty). ``"raise"``: a ``DataError``.
        self.bad_records = bad_records
        self.num_frames = num_frames
        self.frame_rule = frame_rule
        self.packing = packing
        self.max_length = max_length
        self.context_length = getattr(backend, "context_length", None)
        self.token_budget = token_budget(max_length, self.context_length)
        self.video_backend = video_backend
        #: also describe the chosen side's official-KL template positions (the ``template`` side)
        self.template_positions = template_positions
        #: videos decoded by this collator (one per pair; tests check it)
        self.videos_decoded = 0

    def _decode(self, item: PairItem):
        try:
            frames = read_frames(item.video_path, self.num_frames, sampling=self.frame_rule,
                                 backend=self.video_backend).frames
        except VideoDecodeError as exc:
            if classify(exc) != INPUT:  # the machine failed (I/O, memory): stop; the pair is not at fault
                raise
            error = DataError(item.file, item.line, "video", str(exc))
            error.reason = "bad_video"
            raise error from exc
        self.videos_decoded += 1
        if len(frames) < self.num_frames:  # the header promised more (or nothing); never repeated to fill
            error = DataError(item.file, item.line, "video", f"{item.video_path}: decoded to {len(frames)} frame(s), "
                              f"fewer than num_frames={self.num_frames} (frames are never repeated to fill a clip)")
            error.reason = "too_few_frames"
            raise error
        return frames

    def _decode_batch(self, items: Sequence[PairItem]) -> tuple[list[PairItem], list, list[dict[str, Any]]]:
        """The items whose videos decode, their frames, and (``bad_records="skip"``) the skipped ones."""
        kept, videos, skipped = [], [], []
        for item in items:
            try:
                videos.append(self._decode(item))
                kept.append(item)
            except DataError as exc:
                if self.bad_records != "skip":
                    raise
                skipped.append({"file": exc.file, "line": exc.line, "field": exc.field, "message": exc.message,
                                "reason": getattr(exc, "reason", "bad_video"), "where": f"{exc.file}:{exc.line}:video"})
        return kept, videos, skipped

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

    def __call__(self, items: Sequence[PairItem]) -> PreferenceBatch:
        if not items:
            raise ValueError("empty batch")
        # Every video has num_frames frames here; their resolutions may differ: the backend's processor resizes
        # (LLaVA-OneVision: to its fixed size; Qwen2-VL: each video to its own patch grid).
        items, videos, skipped = self._decode_batch(items)
        if not items:
            return PreferenceBatch(None, {}, skipped_records=skipped)
        prompts = encode_prompts(self.backend, videos, [item.record.question for item in items])
        chosen, rejected, chosen_phrase, rejected_phrase = [], [], [], []
        truncated = 0
        for item, p in zip(items, prompts.lengths):
            c_ids, c_phrase, c_cut = self._budget(item, p, item.chosen_ids, item.chosen_phrase_ids)
            r_ids, r_phrase, r_cut = self._budget(item, p, item.rejected_ids, item.rejected_phrase_ids)
            truncated += int(c_cut) + int(r_cut)
            chosen.append(c_ids)
            rejected.append(r_ids)
            chosen_phrase.append(c_phrase if c_phrase is not None else [0] * len(c_ids))
            rejected_phrase.append(r_phrase if r_phrase is not None else [0] * len(r_ids))

        batch = build_batch(self.backend, prompts, {"chosen": chosen, "rejected": rejected}, packing=self.packing,
                            phrase_ids={"chosen": chosen_phrase, "rejected": rejected_phrase}, cls=PreferenceBatch,
                            weights=torch.tensor([1.0 if item.record.weight is None else float(item.record.weight)
                                                  for item in items], dtype=torch.float32),
                            truncated=torch.tensor(truncated, dtype=torch.long),
                            pair_ids=[item.record.id for item in items], skipped_records=skipped)
        if self.template_positions:
            batch.sides["template"] = template_side(self.backend, prompts, batch.chosen)
        return batch


"""Batches of video preference pairs: each video decoded once, packed or unpacked rows, response gathers.

For a batch of ``B`` pairs the collator

1. decodes each pair's video ONCE (``read_frames`` with ``num_frames``) and runs the backend's processor
   once over the ``B`` prompts (``VideoLM.encode(videos, questions)``: chat template, video placeholder
   expansion, pixel preprocessing) -- the vision inputs are per pair, never per response;
2. appends the responses' token ids (tokenized at dataset load by the one rule,
   :func:`savi_plugin.models.backends.tokens.tokenize_response`) to each prompt
   (:func:`savi_plugin.training.scoring.build_batch`: a scoring batch), either packed -- one row
   ``[prompt | chosen | rejected]`` per pair, see :mod:`savi_plugin.training.packing` -- or unpacked, two
   rows ``[prompt | chosen]`` (rows ``0..B-1``) and ``[prompt | rejected]`` (rows ``B..2B-1``);
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
``weights`` ``[B]`` (each pair's optional ``weight``, 1 by default); ``truncated`` (0-d: responses cut this
batch); ``pair_ids`` (list of record ids); optional ``chosen_template_*`` (official KL scope) and ``reference_*``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from savi_plugin.data import DataError
from savi_plugin.models.backends.tokens import pad_stack
from savi_plugin.training.dataset import PairItem
from savi_plugin.training.scoring import build_batch, encode_prompts, template_side
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
        frame_rule: which frames (:data:`savi_plugin.video.sampling.SAMPLING_RULES`); ``interval`` is the
            official RRPO training loader's ``int(i * T / n)``.
        packing: one packed row per pair (True) or two rows per pair (False). The trainer turns this off
            when the model cannot take the block mask.
        max_length: ``prompt + response`` token budget; the model's context window (``backend.context_length``)
            caps it, also when None (see :func:`token_budget` and the policy in :mod:`savi_plugin.training.config`).
        video_backend: ``decord`` / ``pyav`` / None.
        reference_store: a :class:`~savi_plugin.training.reference.ReferenceStore` to attach precomputed
            reference statistics from, or None.
        template_positions: add the ``chosen_template`` side (:func:`savi_plugin.training.scoring.template_side`)
            that RRPO's ``kl_scope: official`` sums its KL over.
    """

    def __init__(self, backend, *, num_frames: int = 16, frame_rule: str = "uniform", packing: bool = True, max_length: int | None = None,
                 video_backend: str | None = None, reference_store=None, template_positions: bool = False,
                 bad_records: str = "raise"):
        self.backend = backend
        #: ``"skip"``: a pair whose video fails only when decoded (damage after the header, fewer frames than
        #: the header said) is dropped from its batch and listed in the batch's ``skipped_records``; a batch
        #: left with no pair is ``{"skipped_records": [...], "pair_ids": []}``. ``"raise"``: a ``DataError``.
        self.bad_records = bad_records
        self.num_frames = num_frames
        self.frame_rule = frame_rule
        self.packing = packing
        self.max_length = max_length
        self.context_length = getattr(backend, "context_length", None)
        self.token_budget = token_budget(max_length, self.context_length)
        self.video_backend = video_backend
        self.reference_store = reference_store
        #: also describe the chosen side's official-KL template positions (``chosen_template_*``)
        self.template_positions = template_positions
        #: videos decoded by this collator (one per pair; tests check it)
        self.videos_decoded = 0

    def _decode(self, item: PairItem):
        try:
            frames = read_frames(item.video_path, self.num_frames, sampling=self.frame_rule,
                                 backend=self.video_backend).frames
        except VideoDecodeError as exc:
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

    def __call__(self, items: Sequence[PairItem]) -> dict[str, Any]:
        if not items:
            raise ValueError("empty batch")
        # Every video has num_frames frames here; their resolutions may differ: the backend's processor resizes
        # (LLaVA-OneVision: to its fixed size; Qwen2-VL: each video to its own patch grid).
        items, videos, skipped = self._decode_batch(items)
        if not items:
            return {"skipped_records": skipped, "pair_ids": []}
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

        batch = build_batch(self.backend, prompts, {"chosen": chosen, "rejected": rejected}, packing=self.packing)
        if self.template_positions:
            template_side(self.backend, batch, prompts, "chosen")
        batch.update({
            "chosen_phrase_ids": pad_stack(chosen_phrase, 0),
            "rejected_phrase_ids": pad_stack(rejected_phrase, 0),
            "weights": torch.tensor([pair_weight(item) for item in items], dtype=torch.float32),
            "truncated": torch.tensor(truncated, dtype=torch.long),
            "pair_ids": [item.record.id for item in items],
        })
        if self.reference_store is not None:
            batch.update(self.reference_store.batch(items, chosen, rejected))
        if skipped:
            batch["skipped_records"] = skipped
        return batch


def pair_weight(item: PairItem) -> float:
    """The pair's optional top-level ``weight`` (e.g. VideoSAVi's CLIP score), 1 when the record has none."""
    weight = getattr(item.record, "weight", None)
    return 1.0 if weight is None else float(weight)

"""Batches of video preference pairs (CPU, once per batch): each video decoded once, then the typed batch.

For a batch of ``B`` pairs the collator

1. decodes each pair's video ONCE (``read_frames`` with ``num_frames``) and runs the backend's processor
   once over the ``B`` prompts (:func:`savi_plugin.training.batch.encode_prompts`: chat template, video
   placeholder expansion, pixel preprocessing) -- the vision inputs are per pair, never per response;
2. applies the ``max_length`` truncation policy (see :mod:`savi_plugin.training.config`) to the responses'
   token ids (tokenized at dataset load by the one rule,
   :func:`savi_plugin.models.backends.tokens.tokenize_response`); a pair that the cut leaves with no response
   token on a side, or (a loss that needs phrase tags) with no tagged token on a side, carries no preference
   signal: it is an input failure counted as ``truncated_away`` (:func:`truncation_problem`), refused or skipped
   by ``bad_records`` -- found before training by :meth:`PreferenceCollator.screen` from the videos' probed
   sizes, and here for anything the screen could not foresee;
3. lays out the rows and the response sides (:func:`savi_plugin.training.batch.build_batch`), packed or not,
   and returns a :class:`~savi_plugin.training.batch.PreferenceBatch` with the pairs' weights.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from savi_plugin.constants import DEFAULT_NUM_FRAMES
from savi_plugin.data import DataError
from savi_plugin.errors import INPUT, ConfigError, classify, reason_of
from savi_plugin.training.batch import (
    PreferenceBatch,
    build_batch,
    encode_prompts,
    template_side,
)
from savi_plugin.training.dataset import PairItem
from savi_plugin.video import VideoDecodeError, read_frames

log = logging.getLogger(__name__)


def token_budget(max_length: int | None, context_length: int | None) -> int | None:
    """The ``prompt + response`` token budget: ``max_length``, capped by the model's context window (None: none)."""
    limits = [int(v) for v in (max_length, context_length) if v]
    return min(limits) if limits else None


#: the reason a pair the token budget cuts into uselessness is counted under
TRUNCATED_AWAY = "truncated_away"


def needed_room(item: PairItem, require_tags: bool) -> tuple[int, str]:
    """The fewest response tokens per side that keep ``item`` a preference pair, and the side that needs them.

    Every loss needs at least one token of each response; a loss that needs phrase tags (RRPO's refined reward,
    DPA, DDPO) also needs the first tagged token of each side, or its phrase-level reward is empty (RRPO's
    preference term would be ``ln 2`` whatever the model does)."""
    need, field = 1, "chosen"
    if require_tags:
        for side in ("chosen", "rejected"):
            phrase = getattr(item, f"{side}_phrase_ids") or []
            first = next((j for j, k in enumerate(phrase) if k), len(phrase))
            if first + 1 > need:
                need, field = first + 1, f"{side}_tagged"
    return need, field


def truncation_problem(item: PairItem, prompt_length: int, budget: int | None, require_tags: bool,
                       max_length: int | None = None) -> DataError | None:
    """The ``truncated_away`` error of a pair whose prompt leaves fewer response tokens than it needs
    (:func:`needed_room`) within ``budget``; None when it keeps its signal (or there is no budget)."""
    if budget is None:
        return None
    room = budget - prompt_length
    need, field = needed_room(item, require_tags)
    if room >= need:
        return None
    if room < 1:
        message = (f"the prompt (video + question) is {prompt_length} tokens, leaving no room for a response within "
                   f"the token budget of {budget}")
        field = "video"
    else:
        message = (f"truncated to {room} response token(s) by the token budget of {budget}, which cuts every "
                   f"<MASK> tagged token of {field.split('_')[0]} (its first is token {need}); the loss's "
                   f"phrase-level reward would be empty")
    error = DataError(item.file, item.line, field, f"{message} (max_length={max_length}); raise max_length or "
                      f"lower num_frames")
    error.reason = TRUNCATED_AWAY
    return error


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
                 bad_records: str = "raise", require_tags: bool = False):
        self.backend = backend
        #: the loss needs phrase tags: a pair cut before a side's first tagged token is ``truncated_away``
        self.require_tags = require_tags
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
            error.reason = reason_of(exc, "bad_video")  # the decoder's: missing_video when the file is gone now
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
                                "reason": getattr(exc, "reason", "bad_video"), "where": exc.where})
        return kept, videos, skipped

    def _budget(self, room: int, ids: list[int], phrase: list[int] | None):
        if len(ids) <= room:
            return ids, phrase, False
        return ids[:room], None if phrase is None else phrase[:room], True

    def _problem(self, item: PairItem, prompt_length: int) -> DataError | None:
        return truncation_problem(item, prompt_length, self.token_budget, self.require_tags, self.max_length)

    def blank_prompt_length(self, size: tuple[int, int], question: str) -> int:
        """The prompt's token count for a clip of ``num_frames`` frames of ``size`` (width, height) and
        ``question``: the processor's video tokens follow from the frame size alone, so a blank clip gives it."""
        import numpy as np

        clip = np.zeros((self.num_frames, size[1], size[0], 3), dtype=np.uint8)
        return encode_prompts(self.backend, [clip], [question]).lengths[0]

    def screen(self, dataset) -> None:
        """Before training: refuse (``bad_records="raise"``) or skip and count in ``dataset`` the pairs the token
        budget cuts into uselessness (:func:`truncation_problem`), without decoding a video.

        A prompt's length depends on the video only through its frame size, which the dataset probed from the
        header (:meth:`PreferenceDataset.video_size`): one blank clip of ``num_frames`` frames per size gives
        the length of the prompt around the question; a pair within a few tokens of its limit is measured
        exactly with its own question. Pairs of unknown size are left to :meth:`__call__`.

        Raises:
            ConfigError: at ``train.max_length``, when the budget cuts every pair: the recipe, not the data, is
                wrong, and it stops before the first step.
            DataError: the first such pair, naming ``file:line:field`` (``bad_records="raise"``).
        """
        if self.token_budget is None or not len(dataset):
            return
        tokenizer = self.backend.tokenizer
        prompt_length = self.blank_prompt_length
        around: dict[tuple[int, int], int] = {}  # frame size -> prompt tokens besides the question's
        problems, screened = [], 0
        for item in dataset.items:
            size = dataset.video_size(item.video_path)
            if size is None:
                continue
            screened += 1
            question = len(tokenizer(item.record.question, add_special_tokens=False)["input_ids"])
            if size not in around:
                around[size] = prompt_length(size, item.record.question) - question
            estimate = around[size] + question
            if estimate + needed_room(item, self.require_tags)[0] + 8 <= self.token_budget:
                continue  # far from the limit
            problem = self._problem(item, prompt_length(size, item.record.question))
            if problem is not None:
                problems.append((item, problem))
        if not problems:
            return
        first = problems[0][1]
        if screened == len(dataset.items) and len(problems) == screened:
            raise ConfigError("train.max_length", f"the token budget of {self.token_budget} (max_length="
                              f"{self.max_length}, model context window {self.context_length}) cuts every one of "
                              f"the {screened} pair(s) of {dataset.path} into no preference signal "
                              f"({TRUNCATED_AWAY}); first: {first}")
        if self.bad_records != "skip":
            raise first
        cut = {id(item) for item, _ in problems}
        dataset.items = [item for item in dataset.items if id(item) not in cut]
        for _, problem in problems:
            dataset._skip(problem, TRUNCATED_AWAY)
        log.warning("%s: %d pair(s) skipped (%s: the token budget of %d leaves a side without a response token%s); "
                    "first: %s", dataset.path, len(problems), TRUNCATED_AWAY, self.token_budget,
                    " or a tagged token" if self.require_tags else "", first)

    def screen_decoded_bytes(self, dataset, batch_size: int, key: str = "train.per_device_train_batch_size") -> None:
        """Before training: refuse a batch size whose batches may decode to more than the per-batch budget
        (``$SAVI_MAX_BATCH_DECODED_BYTES``), from the frame sizes the dataset probed from the headers.

        Batches are drawn by a shuffling sampler, so any ``batch_size`` pairs may meet in one: the limit must hold
        for the ``batch_size`` largest clips (each ``num_frames`` RGB frames; a clip above the per-clip budget
        ``$SAVI_MAX_DECODED_BYTES`` is refused on its own when decoded and not counted). The batch size is the
        run's configuration, not a pair's fault, so this is a configuration error before the first step under
        either ``bad_records`` policy (skipping pairs would change the data to fit the memory), and it names how
        many of the largest clips do fit.

        Raises:
            ConfigError: at ``key``.
        """
        from savi_plugin.video.decode import (
            BATCH_BYTES_ENV,
            format_bytes,
            batch_budget_message,
            batch_bytes,
            decoded_bytes,
            decoded_bytes_budget,
        )

        budget = decoded_bytes_budget(batch=True)
        clip_budget = decoded_bytes_budget()
        sized = []
        for item in dataset.items:
            size = dataset.video_size(item.video_path)
            if size is not None:
                sized.append((decoded_bytes(self.num_frames, *size), item.video_path))
        sized = sorted((s for s in sized if s[0] <= clip_budget), key=lambda s: -s[0])
        batch_size = int(batch_size)
        need = batch_bytes([s for s, _ in sized[:batch_size]], clip_budget)
        if need <= budget:
            return
        fit, total = 0, 0
        for s, _ in sized:
            if total + s > budget:
                break
            fit, total = fit + 1, total + s
        largest = sized[0][1]
        if fit == 0:
            raise ConfigError(key, f"{self.num_frames} frames of {largest} decode to {format_bytes(sized[0][0])}, above the "
                                   f"per-batch budget of {format_bytes(budget)} (${BATCH_BYTES_ENV}) even in a batch of one; "
                                   f"sample fewer frames (num_frames) or raise the budget")
        raise ConfigError(key, f"{key.rsplit('.', 1)[-1]}={batch_size}: "
                               + batch_budget_message(min(batch_size, len(sized)), f"{dataset.path} (the largest: "
                                                      f"{largest})", need, self.num_frames, budget)
                               + f"; batches are shuffled, so any {batch_size} pairs may meet: at most {fit} of "
                                 f"the largest clips fit")

    def __call__(self, items: Sequence[PairItem]) -> PreferenceBatch:
        if not items:
            raise ValueError("empty batch")
        from savi_plugin.video.decode import check_batch_budget

        # from the headers, before decoding: screen_decoded_bytes held this for the probed sizes; a video replaced
        # since (or of a size its header did not name at load) is caught here, as generation's batches are
        check_batch_budget([item.video_path for item in items], self.num_frames,
                           key="train.per_device_train_batch_size")
        # Every video has num_frames frames here; their resolutions may differ: the backend's processor resizes
        # (LLaVA-OneVision: to its fixed size; Qwen2-VL: each video to its own patch grid).
        items, videos, skipped = self._decode_batch(items)
        if not items:
            return PreferenceBatch(None, {}, skipped_records=skipped)
        prompts = encode_prompts(self.backend, videos, [item.record.question for item in items])
        problems = [self._problem(item, p) for item, p in zip(items, prompts.lengths)]
        if any(problems):  # a pair the screen could not measure (size unknown from its header)
            if self.bad_records != "skip":
                raise next(p for p in problems if p)
            skipped += [{"file": p.file, "line": p.line, "field": p.field, "message": p.message,
                         "reason": TRUNCATED_AWAY, "where": p.where} for p in problems if p]
            videos = [v for v, p in zip(videos, problems) if p is None]
            items = [item for item, p in zip(items, problems) if p is None]
            if not items:
                return PreferenceBatch(None, {}, skipped_records=skipped)
            prompts = encode_prompts(self.backend, videos, [item.record.question for item in items])
        chosen, rejected, chosen_phrase, rejected_phrase = [], [], [], []
        truncated = 0
        for item, p in zip(items, prompts.lengths):
            room = self.token_budget - p if self.token_budget is not None else max(len(item.chosen_ids),
                                                                                   len(item.rejected_ids))
            c_ids, c_phrase, c_cut = self._budget(room, item.chosen_ids, item.chosen_phrase_ids)
            r_ids, r_phrase, r_cut = self._budget(room, item.rejected_ids, item.rejected_phrase_ids)
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


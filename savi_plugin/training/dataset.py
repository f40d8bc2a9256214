"""A torch ``Dataset`` of video preference pairs, tokenized once at load time.

Each item keeps the record (for its video and question) and the token ids of both responses by the one
tokenisation rule (:func:`savi_plugin.models.backends.tokens.tokenize_response`), plus, for RRPO, each token's
``<MASK>`` phrase id from the tokenizer's character offsets (:mod:`savi_plugin.training.phrase_ids`). Videos
are decoded later, once per pair, by the collator.

Bad input is never silently replaced:

* a line that is not a record at all (torn, not JSON, not UTF-8, too long: ``unreadable_line``) or not a valid
  one (``bad_record``) -- the readers' reasons, :mod:`savi_plugin.data.readers` --, a video file that does not
  exist (``missing_video``), is not a readable video by its headers -- empty, not a video, no video stream,
  torn header, frames above the pixel cap (``bad_video``,
  :func:`~savi_plugin.video.decode.probe_video`) --, a video path that leaves an explicitly set data root
  (``outside_data_root``, :mod:`savi_plugin.data.paths`), or a question that alone fills the token budget
  (``prompt_too_long``: prompts are never truncated) raises :class:`~savi_plugin.data.DataError` naming
  ``file:line:field`` (``bad_records="raise"``, the default), or is skipped, counted and listed in
  :attr:`PreferenceDataset.skipped` with that reason (``bad_records="skip"``); so is a video whose header
  declares fewer frames than ``min_frames`` (``too_few_frames``): a batch stacks equal-length videos and
  frames are never repeated to fill one;
* under a loss that needs phrase tags (RRPO), a pair without ``chosen_tagged``/``rejected_tagged`` is
  **skipped at load and counted** (reason ``untagged``), whatever ``bad_records`` says: its refined reward
  is undefined, and mixing generators (VideoSAVi pairs are untagged) is a normal situation. The count is
  logged and written to ``train_report.json``. A dataset in which no pair is usable is an error;
* a pair the token budget leaves without a response token or a tagged token (``truncated_away``) is found by
  the collator, which owns the truncation (:meth:`~savi_plugin.training.collator.PreferenceCollator.screen`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from savi_plugin.data import DataError, PreferenceRecord, read_records
from savi_plugin.data.identity import file_identity
from savi_plugin.data.paths import check_data_root, file_folder, video_file
from savi_plugin.errors import ConfigError
from savi_plugin.data.readers import BAD_RECORD
from savi_plugin.models.backends.tokens import (
    ControlTextError,
    check_plain_text,
    tokenize_response,
)
from savi_plugin.training.phrase_ids import PhraseAlignmentError, tagged_phrase_ids
from savi_plugin.untrusted import shown_path
from savi_plugin.video.decode import VideoDecodeError, probe_video

log = logging.getLogger(__name__)


@dataclass
class PairItem:
    """One usable pair.

    Attributes:
        record: the preference record.
        file, line: where it came from (for error messages).
        video_path: the resolved video file.
        chosen_ids, rejected_ids: response token ids (response + end-of-turn), as the backend tokenizes them.
        chosen_phrase_ids, rejected_phrase_ids: per-token phrase id (0 = untagged) or None without tags.
    """

    record: PreferenceRecord
    file: str
    line: int
    video_path: str
    chosen_ids: list[int]
    rejected_ids: list[int]
    chosen_phrase_ids: list[int] | None = None
    rejected_phrase_ids: list[int] | None = None


def aligned_phrase_ids(plain: str, tagged: str, offsets, file: str, line: int, field: str) -> list[int]:
    """:func:`~savi_plugin.training.phrase_ids.tagged_phrase_ids`, its alignment error naming ``file:line:field``."""
    try:
        return tagged_phrase_ids(plain, tagged, offsets)
    except PhraseAlignmentError as exc:
        raise DataError(file, line, field, str(exc)) from None


class PreferenceDataset(Dataset):
    """Preference pairs from a JSONL file, with responses tokenized for one backend.

    Args:
        path: the preference file.
        tokenizer: the backend's (fast) tokenizer.
        end_of_turn: the text the chat template appends after an answer (``VideoLM.end_of_turn``).
        fmt: file format: ``savi`` (ours), ``rrpo`` or ``trl`` (see :func:`savi_plugin.data.read_records`).
        data_root: folder for relative video paths; when given, no video path may leave it. Default: the
            folder of ``path`` (no confinement).
        require_tags: the loss needs ``<MASK>`` phrases (RRPO): untagged pairs are skipped and counted.
        bad_records: ``"raise"`` or ``"skip"`` for malformed records and missing or unreadable videos.
        token_budget: the prompt + response budget (the model's context window, or ``max_length`` when
            smaller); a pair whose question alone reaches it is refused (``prompt_too_long``). None: no check.
        min_frames: refuse videos whose header declares fewer frames (``too_few_frames``); the trainer passes
            ``num_frames``. None: no check.
        probes: video probe results already made (by rank 0 of a multi-process run), used instead of probing.
    """

    def __init__(self, path: str | Path, tokenizer, end_of_turn: str, *, fmt: str = "savi",
                 data_root: str | Path | None = None, require_tags: bool = False, bad_records: str = "raise",
                 token_budget: int | None = None, min_frames: int | None = None,
                 probes: dict[str, str | tuple[int, int, int]] | None = None):
        if bad_records not in ("raise", "skip"):
            raise ValueError(f"bad_records must be 'raise' or 'skip', got {bad_records!r}")
        self.path = Path(path)
        #: the content these pairs were read from (size, SHA-256): what the training report's skipped records
        #: vouch for (``savi inspect --run-report`` compares it)
        self.content = file_identity(self.path)
        check_data_root(data_root, "data_root")
        self.data_root = Path(data_root) if data_root is not None else file_folder(self.path)
        self.confine = data_root is not None
        self.require_tags = require_tags
        self.token_budget = token_budget
        self.min_frames = min_frames
        # video -> probe error, or its (width, height, declared frames); probed once (``probes``: another rank's)
        self._probed: dict[str, str | tuple[int, int, int]] = dict(probes or {})
        #: skipped records, in line order: dicts with file, line, field, message and reason (the readers'
        #: ``unreadable_line`` / ``bad_record``, or ``missing_video``, ``bad_video``, ``untagged``, ...)
        self.skipped: list[dict[str, Any]] = []
        self.items: list[PairItem] = []
        errors: list[DataError] = []
        mode = "collect" if bad_records == "skip" else "raise"
        if not self.path.is_file():
            raise DataError(str(self.path), None, None, "the preference file is not found"
                            if not self.path.exists() else "the preference file is not a file")
        #: the pairs whose question alone the token budget cannot hold; with ``raise`` their refusal waits until
        #: a question fits (then the first is this pair's fault) or the file ends (then the budget's: every pair)
        too_long: list[DataError] = []
        self._a_question_fits = False
        for line, record in read_records(self.path, fmt, errors=mode, collected=errors):
            try:
                item = self._item(record, str(self.path), line, tokenizer, end_of_turn)
            except DataError as exc:
                if getattr(exc, "question_tokens", None) is not None:
                    too_long.append(exc)
                elif bad_records == "raise":
                    raise too_long[0] if too_long else exc
                if bad_records != "raise":
                    errors.append(exc)
                item = None
            if too_long and self._a_question_fits and bad_records == "raise":
                raise too_long[0]
            if item is not None:
                self.items.append(item)
        if too_long and not self._a_question_fits:
            raise self._budget_error(too_long)
        for exc in errors:  # the readers' reasons (unreadable_line, bad_record), or this loader's own
            reason = getattr(exc, "reason", None) or ("missing_video" if exc.field == "video" else BAD_RECORD)
            self._skip(exc, reason)
        self.skipped.sort(key=lambda s: s["line"] if s["line"] is not None else 0)  # line order (a stable sort)
        untagged = sum(s["reason"] == "untagged" for s in self.skipped)
        if self.skipped:
            by_reason = self.report()["skipped_by_reason"]
            log.warning("%s: %d pair(s) skipped (%s); first: %s: %s", self.path, len(self.skipped),
                        ", ".join(f"{n} {reason}" for reason, n in by_reason.items()),
                        self.skipped[0]["where"], self.skipped[0]["message"])
        if not self.items:
            raise DataError(str(self.path), None, None,
                            f"no usable preference pair ({len(self.skipped)} skipped"
                            + (", none tagged with <MASK> phrases as the loss requires)" if untagged else ")"))

    def _budget_error(self, too_long: list[DataError]) -> ConfigError:
        """The refusal of a token budget that holds the question of no pair: the recipe's value, not the data, is
        wrong (README "Guarantees": a ``max_length`` that cuts every pair is a recipe error at ``train.max_length``)."""
        shortest = min(exc.question_tokens for exc in too_long)
        return ConfigError("train.max_length", f"the token budget of {self.token_budget} (max_length, or the "
                           f"model's context window when smaller) is not above the question alone of any of the "
                           f"{len(too_long)} pair(s) of {self.path} (the shortest question is {shortest} tokens, "
                           f"before the video and the response; prompts are never truncated)")

    def _skip(self, exc: DataError, reason: str) -> None:
        self.skipped.append({"file": exc.file, "line": exc.line, "field": exc.field, "message": exc.message,
                             "reason": reason,  # as DataError names it: '-' for no line or field
                             "where": exc.where})

    @staticmethod
    def _refuse(file: str, line: int, field: str, message: str, reason: str) -> DataError:
        exc = DataError(file, line, field, message)
        exc.reason = reason  # the skip reason counted in the report
        return exc

    def _item(self, record: PreferenceRecord, file: str, line: int, tokenizer, end_of_turn: str) -> PairItem | None:
        video = video_file(record.video, self.data_root, confine=self.confine, file=file, line=line)
        if self.require_tags and not record.is_tagged:
            self._skip(DataError(file, line, "chosen_tagged", "no <MASK> phrase tags; the loss's phrase-level "
                                 "reward is undefined for this pair (skipped)"), "untagged")
            return None
        if self.token_budget is not None:
            n = len(tokenizer(record.question, add_special_tokens=False)["input_ids"])
            if n >= self.token_budget:
                exc = self._refuse(file, line, "question", f"the question alone is {n} tokens, not below the token "
                                   f"budget of {self.token_budget} (the model's context window or max_length); "
                                   f"prompts are never truncated", "prompt_too_long")
                exc.question_tokens = n
                raise exc
            self._a_question_fits = True
        if str(video) not in self._probed:
            try:
                self._probed[str(video)] = tuple(probe_video(video))
            except VideoDecodeError as exc:
                self._probed[str(video)] = str(exc)
        probed = self._probed[str(video)]
        if isinstance(probed, str):
            raise self._refuse(file, line, "video", probed, "bad_video")
        probed = probed[2]
        if self.min_frames is not None and 0 < probed < self.min_frames:
            raise self._refuse(file, line, "video", f"{shown_path(video)}: {probed} frame(s), fewer than num_frames="
                               f"{self.min_frames} (frames are never repeated to fill a clip)", "too_few_frames")
        for field in ("question", "chosen", "rejected"):  # the tokenizer's control strings (backends/tokens.py)
            try:
                check_plain_text(tokenizer, getattr(record, field), field)
            except ControlTextError as exc:
                raise self._refuse(file, line, field, str(exc), ControlTextError.skip_reason) from None
        chosen_ids, chosen_offsets = tokenize_response(tokenizer, record.chosen, end_of_turn)
        rejected_ids, rejected_offsets = tokenize_response(tokenizer, record.rejected, end_of_turn)
        item = PairItem(record, file, line, str(video), chosen_ids, rejected_ids)
        if record.is_tagged:
            item.chosen_phrase_ids = aligned_phrase_ids(record.chosen, record.chosen_tagged, chosen_offsets,
                                                        file, line, "chosen_tagged")
            item.rejected_phrase_ids = aligned_phrase_ids(record.rejected, record.rejected_tagged,
                                                          rejected_offsets, file, line, "rejected_tagged")
            for side in ("chosen", "rejected"):  # "<MASK></MASK>" tags no token: no phrase-level reward either
                if self.require_tags and not any(getattr(item, f"{side}_phrase_ids")):
                    self._skip(DataError(file, line, f"{side}_tagged", "its <MASK> tags cover no token; the loss's "
                                         "phrase-level reward is undefined for this pair (skipped)"), "untagged")
                    return None
        return item

    def video_size(self, video_path: str) -> tuple[int, int] | None:
        """``(width, height)`` of a video as its header declares it (probed at load), or None when unknown."""
        probed = self._probed.get(str(video_path))
        if isinstance(probed, tuple) and probed[0] > 0 and probed[1] > 0:
            return int(probed[0]), int(probed[1])
        return None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> PairItem:
        return self.items[index]

    def report(self) -> dict[str, Any]:
        """Counts and the skipped records, for ``train_report.json``."""
        reasons: dict[str, int] = {}
        for s in self.skipped:
            reasons[s["reason"]] = reasons.get(s["reason"], 0) + 1
        return {"path": str(self.path), "content": self.content, "pairs": len(self.items),
                "skipped": len(self.skipped),
                "skipped_by_reason": reasons,
                "skipped_records": [{k: v for k, v in s.items() if k != "where"} for s in self.skipped]}

"""VideoSAVi's self-critique preference data: question -> answer -> critique -> revision -> pair.

Kulkarni & Fazli, "Self-Aligned Video Language Models without Human Supervision" (arXiv 2412.00624).
With no human label, no ground truth and no external API, the model itself

(a) writes reasoning questions about an unlabeled video, spatial and temporal (two prompts, so both kinds
    are always asked for); the list is parsed robustly and near-duplicates are dropped;
(b) answers each question (the *initial* answer, the rejected side);
(c) critiques its answer against the video, naming concrete spatial and temporal reasoning errors;
(d) revises the answer (the *revised* answer, the chosen side).

A pair is dropped when the critique finds no error, when the revision is nearly the initial answer
(word-level normalised edit distance below ``min_edit_distance``), or when an output cannot be read; each
drop is counted with its reason. Optionally (off by default) a video-text similarity scorer filters or
weights the pairs ("CLIP-adjusted DPO", see :mod:`savi_plugin.generators.similarity`): with ``scorer_mode:
weight`` the record's top-level ``weight`` scales the pair's term in the DPO/RRPO loss (a weighted mean).

Record ids are ``<video id>-videosavi-<k>`` with ``k`` the question's position in the video's parsed
question list, which is deterministic under the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from savi_plugin.config.values import AtLeast, Positive, Probability, Range, checked, validate
from savi_plugin.data.model_config import loadable_model_problem
from savi_plugin.data.record import DataError, PreferenceRecord, validate_record
from savi_plugin.device import UsableDevice
from savi_plugin.generators.base import (PAIR, SKIPPED, BatchContext, Generator, Outcome, WorkItem, generate_chunked,
                                         stable_int)
from savi_plugin.generators.inputs import InputItem
from savi_plugin.generators.parsing import clean_revision, critique_finds_error, parse_questions
from savi_plugin.generators.prompts import render
from savi_plugin.generators.similarity import load_scorer, pair_weight
from savi_plugin.generators.tagging import rule_tag
from savi_plugin.generators.text import normalized_edit_distance
from savi_plugin.models.prefix_cache import reuse_video_prefixes
from savi_plugin.untrusted import same_text

QUESTION_SOURCES = ("generate", "input")
#: The most questions asked per video (``num_questions``). Each question costs three answers (answer, critique,
#: revision) and all of them come from one generated list of at most ``max_new_tokens`` tokens; VideoSAVi asks about
#: 6 per video (~24k pairs from ~4k videos), so 64 is far past any use and a typo such as 4294967295 is refused.
MAX_QUESTIONS = 64
SCORER_MODES = ("filter", "weight")


@dataclass
class VideoSAViConfig:
    """Options of the ``videosavi`` generator.

    Attributes:
        prompts: a YAML file (or mapping) overriding the packaged ``prompts/videosavi.yaml``.
        num_questions: questions asked per video: ``ceil(n/2)`` spatial and ``floor(n/2)`` temporal
            (VideoSAVi: ~24k pairs from ~4k videos, i.e. about 6 per video); 1 to :data:`MAX_QUESTIONS`.
        question_source: ``generate`` (stage a) or ``input`` (use each input line's ``question``, one per
            video line, skipping stage a).
        min_edit_distance: drop a pair whose revision is closer than this to the initial answer
            (word-level normalised edit distance, in [0, 1]; 0 keeps every revision that differs at all).
        min_question_words, max_question_words: length bounds of a parsed question.
        duplicate_threshold: questions within this normalised edit distance of an earlier one are duplicates.
        tagging: ``none`` (VideoSAVi trains with DPO on untagged pairs) or ``rule`` (add ``<MASK>`` tags by the
            official difflib rule, so the RRPO loss can train on these pairs too; a pair with no replaced
            phrase stays untagged).
        max_new_tokens: output length of every stage.
        do_sample, temperature, top_p: decoding (greedy by default; sampling is seeded).
        scorer: None (off), a local CLIP/SigLIP checkpoint path, or an object with ``score(videos, texts)``.
        scorer_mode: ``filter`` (drop pairs whose similarity gain is below ``scorer_margin``) or ``weight``
            (keep all; the record's ``weight = sigmoid(gain / scorer_temperature)`` weights its loss term).
        scorer_margin, scorer_temperature: see ``scorer_mode``.
        scorer_device: where the scorer runs.
    """

    prompts: Any = None
    num_questions: int = checked(6, Range(1, MAX_QUESTIONS))
    question_source: str = "generate"
    min_edit_distance: float = checked(0.15, Probability())
    min_question_words: int = checked(3, AtLeast(1))
    max_question_words: int = checked(60, AtLeast(1))
    duplicate_threshold: float = checked(0.2, Probability())
    tagging: str = "none"
    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    scorer: Any = None
    scorer_mode: str = "filter"
    scorer_margin: float = 0.0
    scorer_temperature: float = checked(0.05, Positive())
    scorer_device: str = checked("cpu", UsableDevice())

    def __post_init__(self):
        validate(self)  # the fields' declared types and ranges, for a caller that builds the options from Python
        if self.question_source not in QUESTION_SOURCES:
            raise ValueError(f"question_source must be one of {', '.join(QUESTION_SOURCES)}, "
                             f"got {self.question_source!r}")
        if self.scorer_mode not in SCORER_MODES:
            raise ValueError(f"scorer_mode must be one of {', '.join(SCORER_MODES)}, got {self.scorer_mode!r}")
        if isinstance(self.scorer, (str, Path)):  # refused before the first item, never at each item's scoring
            problem = loadable_model_problem(self.scorer)
            if problem:
                scorer = self.scorer if str(self.scorer).strip() else repr(self.scorer)  # an empty name, visibly
                raise ValueError(f"scorer: {scorer}: {problem}; the similarity scorer loads a local CLIP or SigLIP "
                                 "checkpoint folder")
        if self.tagging not in ("none", "rule"):
            raise ValueError(f"tagging must be 'none' or 'rule', got {self.tagging!r}")
        if self.min_question_words > self.max_question_words:
            raise ValueError(f"min_question_words ({self.min_question_words}) is above max_question_words "
                             f"({self.max_question_words}): no question could be kept")


@dataclass
class _Thread:
    """One question of one video on its way through stages (b)-(d)."""

    work: WorkItem
    k: int
    question: str
    kind: str
    prompt: str = ""
    answer: str = ""
    critique: str = ""
    revision: str = ""
    distance: float = 0.0
    outcome: Outcome | None = None


class VideoSAViGenerator(Generator):
    """Self-critique preference pairs (VideoSAVi). See the module docstring."""

    name = "videosavi"
    config_class = VideoSAViConfig
    prompt_fields = {"spatial_questions": {"num_questions"}, "temporal_questions": {"num_questions"},
                     "answer": {"question"}, "critique": {"question", "answer"},
                     "revision": {"question", "answer", "critique"}}

    def __init__(self, options: dict[str, Any] | None = None):
        super().__init__(options)
        self._scorer = None

    @property
    def scorer(self):
        """The similarity scorer, loaded on first use (None when off)."""
        if self._scorer is None and self.config.scorer is not None:
            self._scorer = load_scorer(self.config.scorer, device=self.config.scorer_device)
        return self._scorer

    def check_items(self, items: Sequence[InputItem]) -> None:
        if self.config.question_source != "input":
            return
        for item in items:
            if item.question is None:
                raise item.error("question", "question_source='input' needs a question on every input line")

    def _gen(self, lm, videos, prompts, ctx: BatchContext, stage: str) -> list[str]:
        cfg = self.config
        return generate_chunked(lm, videos, prompts, batch_size=ctx.batch_size,
                                seed=stable_int(ctx.seed, ctx.batch_index, stage), max_new_tokens=cfg.max_new_tokens,
                                do_sample=cfg.do_sample, temperature=cfg.temperature, top_p=cfg.top_p)

    # ----------------------------------------------------------------- stage (a)
    def _questions(self, lm, batch: Sequence[WorkItem], ctx: BatchContext) -> tuple[list[_Thread], list[Outcome]]:
        cfg = self.config
        if cfg.question_source == "input":
            return [_Thread(w, 0, w.item.question, "input") for w in batch], []
        n_spatial = (cfg.num_questions + 1) // 2
        n_temporal = cfg.num_questions - n_spatial
        videos, prompts = [], []
        for w in batch:
            videos.append(w.frames)
            prompts.append(render(self.prompts, "spatial_questions", num_questions=n_spatial))
            if n_temporal:
                videos.append(w.frames)
                prompts.append(render(self.prompts, "temporal_questions", num_questions=n_temporal))
        outputs = iter(self._gen(lm, videos, prompts, ctx, "questions"))
        threads, outcomes = [], []
        parse = dict(min_words=cfg.min_question_words, max_words=cfg.max_question_words,
                     duplicate_threshold=cfg.duplicate_threshold)
        for w in batch:
            spatial_text = next(outputs)
            temporal_text = next(outputs) if n_temporal else ""
            spatial = parse_questions(spatial_text, max_questions=n_spatial, **parse)
            temporal = parse_questions(temporal_text, max_questions=n_temporal, seen=spatial, **parse)
            asked = [(q, "spatial") for q in spatial] + [(q, "temporal") for q in temporal]
            if not asked:
                detail = f"no question could be parsed from {spatial_text[:160]!r} / {temporal_text[:160]!r}"
                outcomes.append(Outcome(w.item.id, None, SKIPPED, "unparseable_questions", detail))
                continue
            threads += [_Thread(w, k, q, kind) for k, (q, kind) in enumerate(asked)]
        return threads, outcomes

    # ----------------------------------------------------------------- the pipeline
    def process(self, lm, batch: Sequence[WorkItem], ctx: BatchContext) -> list[Outcome]:
        # ~20 prompts per video share its prefix: encode and prefill each video once for all four stages
        with reuse_video_prefixes(lm):
            return self._process(lm, batch, ctx)

    def _process(self, lm, batch: Sequence[WorkItem], ctx: BatchContext) -> list[Outcome]:
        cfg = self.config
        threads, item_outcomes = self._questions(lm, batch, ctx)

        def skip(t: _Thread, reason: str, detail: str) -> None:
            t.outcome = Outcome(t.work.item.id, self.record_id(t.work.item.id, t.k), SKIPPED, reason, detail)

        # (b) initial answers
        for t in threads:
            t.prompt = render(self.prompts, "answer", question=t.question)
        answers = self._gen(lm, [t.work.frames for t in threads], [t.prompt for t in threads], ctx, "answer")
        for t, a in zip(threads, answers):
            t.answer = a.strip()
            if not t.answer:
                skip(t, "empty_answer", "the model returned an empty initial answer")
        # (c) self-critique against the video
        live = [t for t in threads if t.outcome is None]
        prompts = [render(self.prompts, "critique", question=t.question, answer=t.answer) for t in live]
        for t, c in zip(live, self._gen(lm, [t.work.frames for t in live], prompts, ctx, "critique")):
            t.critique = c.strip()
            found = critique_finds_error(t.critique, self.prompts["no_error_patterns"])
            if found is False:
                skip(t, "no_error_found", f"the critique finds no error: {t.critique[:200]!r}")
            elif found is None:
                skip(t, "unparseable_critique", f"cannot read the critique: {t.critique[:200]!r}")
        # (d) revision
        live = [t for t in threads if t.outcome is None]
        prompts = [render(self.prompts, "revision", question=t.question, answer=t.answer, critique=t.critique)
                   for t in live]
        for t, r in zip(live, self._gen(lm, [t.work.frames for t in live], prompts, ctx, "revision")):
            t.revision = clean_revision(r)
            t.distance = normalized_edit_distance(t.revision, t.answer)
            if not t.revision:
                skip(t, "empty_revision", "the model returned an empty revision")
            elif t.distance < cfg.min_edit_distance or same_text(t.revision, t.answer):
                skip(t, "revision_too_similar",
                     f"edit distance {t.distance:.3f} < {cfg.min_edit_distance} to the initial answer")
        live = [t for t in threads if t.outcome is None]
        similarity = self._score(live)
        for t in live:
            self._finish(t, ctx, similarity.get(id(t)))
        return item_outcomes + [t.outcome for t in threads]

    def _score(self, live: list[_Thread]) -> dict[int, tuple[float, float]]:
        if self.scorer is None or not live:
            return {}
        videos = [t.work.frames for t in live for _ in (0, 1)]
        texts = [text for t in live for text in (t.revision, t.answer)]
        scores = self.scorer.score(videos, texts)
        if len(scores) != len(texts):
            raise RuntimeError(f"the scorer returned {len(scores)} scores for {len(texts)} texts")
        return {id(t): (float(scores[2 * i]), float(scores[2 * i + 1])) for i, t in enumerate(live)}

    def _finish(self, t: _Thread, ctx: BatchContext, similarity: tuple[float, float] | None) -> None:
        cfg, item = self.config, t.work.item
        meta = dict(ctx.meta)
        meta.update({"item_id": item.id, "order": [item.index, t.k], "num_frames": int(t.work.frames.shape[0]),
                     "question": t.question, "question_kind": t.kind, "critique": t.critique,
                     "edit_distance": round(t.distance, 4)})
        if item.extra:
            meta["input"] = item.extra
        info: dict[str, Any] = {"question_kind": t.kind}
        weight = None
        if similarity is not None:
            gain = similarity[0] - similarity[1]
            meta["similarity"] = {"chosen": round(similarity[0], 6), "rejected": round(similarity[1], 6),
                                  "gain": round(gain, 6)}
            if cfg.scorer_mode == "filter" and gain < cfg.scorer_margin:
                t.outcome = Outcome(item.id, self.record_id(item.id, t.k), SKIPPED, "low_similarity_gain",
                                    f"similarity gain {gain:.4f} < margin {cfg.scorer_margin}")
                return
            if cfg.scorer_mode == "weight":
                weight = max(round(pair_weight(gain, cfg.scorer_temperature), 6), 1e-6)  # > 0 after rounding
        tagged = rule_tag(t.revision, t.answer) if cfg.tagging == "rule" else None
        record = PreferenceRecord(id=self.record_id(item.id, t.k), video=item.video, question=t.prompt,
                                  chosen=t.revision, rejected=t.answer,
                                  chosen_tagged=tagged.chosen_tagged if tagged else None,
                                  rejected_tagged=tagged.rejected_tagged if tagged else None,
                                  source=self.name, meta=meta, weight=weight)
        try:
            validate_record(record.to_json())
        except DataError as exc:
            t.outcome = Outcome(item.id, record.id, SKIPPED, "invalid_record", exc.message)
            return
        t.outcome = Outcome(item.id, record.id, PAIR, "written", record=record, info=info)

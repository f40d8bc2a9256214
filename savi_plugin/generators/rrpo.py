"""RRPO's self-alignment data: the model's own errors on perturbed videos, with the differences tagged.

Sarkar et al., "Self-Alignment of Large Video Language Models with Refined Regularized Preference
Optimization" (arXiv 2504.12083; pritamqu/RRPO ``docs/assets/self-alignment.png``, ``perturb.png``,
``data.png``, ``docs/DATA.md``). For each (video, question, ground truth):

1. perturb the video (default: the figure's persistent occluder over the subject on every frame, then a
   temporal shuffle; :mod:`savi_plugin.video.perturb`), ``num_perturbations`` independent draws;
2. ask the model the question about each perturbed video;
3. judge each answer (:mod:`~savi_plugin.generators.judge`: the rule judge, or a local LLM with
   ``judge_model``); a *wrong* answer is a candidate non-preferred response, the ground truth the preferred
   one ("Correct? -> No -> initial selection of responses" in the figure). At most ``pairs_per_question``
   errors are kept per question, the first draws first: the released data (``docs/DATA.md``) holds one
   ``pred`` per sample, so the default is 1 and extra draws only raise the chance of provoking an error
   (how many draws the authors made is not public);
4. tag the phrases where the two differ: the official difflib rule (replaced spans) for MCQ, yes/no and short
   answers; for long open-ended answers the authors' two-turn LLM prompt when a tagger model is named
   (``tagger_model``: a local causal LM, or ``policy``), falling back to the rule when the model's tags do
   not check out. A pair with no replaced span is skipped (``no_replaced_phrase``), as the official
   preprocessing rejects a sample without a tagged phrase.

Record ids are ``<item id>-rrpo-<k>`` (``k``: the perturbation draw), so a re-run skips finished ones.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from savi_plugin.config.values import NonNegative, Range, checked, validate
from savi_plugin.data.record import DataError, PreferenceRecord, validate_record
from savi_plugin.generators.base import (PAIR, SKIPPED, BatchContext, Generator, Outcome, WorkItem, generate_chunked,
                                         stable_int)
from savi_plugin.generators.inputs import LETTERS, InputItem
from savi_plugin.generators.judge import ModelJudge, judge_answer
from savi_plugin.generators.prompts import render
from savi_plugin.generators.tagging import (
    TAG_RULES,
    TaggedPair,
    check_model_tagging,
    rule_tag,
    says_no_difference,
)
from savi_plugin.generators.textlm import check_text_lm_option, resolve_text_lm
from savi_plugin.generators.text import word_count
from savi_plugin.video.perturb import apply_perturbations, draws_vary, normalize_specs
from savi_plugin.untrusted import same_text

log = logging.getLogger(__name__)

ANSWER_FORMATS = ("letter_option", "option", "letter", "raw")
TAGGING = ("auto", "rule", "model")


#: The most perturbation draws per question (``num_perturbations``; also the most pairs kept per question). Each draw
#: is one more answer the model generates for the question, and a batch holds every draw's perturbed clip at once
#: (:meth:`RRPOGenerator.clips_per_item`, checked against ``$SAVI_MAX_BATCH_DECODED_BYTES`` before the batch is
#: decoded); RRPO keeps the first wrong draw of a question (``pairs_per_question: 1``), so 64 draws, 64 times the
#: answers of one, is far past any use, and 4294967295 draws on one item would run until killed.
MAX_DRAWS = 64


@dataclass
class RRPOConfig:
    """Options of the ``rrpo`` generator.

    Attributes:
        prompts: a YAML file (or mapping) overriding the packaged ``prompts/rrpo.yaml``.
        perturbations: the perturbation pipeline: a list of ``{"name": ..., **params}``, or a string such as
            ``"occlude,shuffle"``; None = the ``perturb.png`` default (occluder on every frame, sized to 0.76 of
            the subject's extent so parts of it stay visible, + shuffle). ``"occlude:1;size=frame,shuffle"`` is
            the fixed box of 31% of the frame, which hides a small subject completely
            (:func:`savi_plugin.video.perturb.occlude_frames`).
        num_perturbations: independent perturbation draws per question, 1 to :data:`MAX_DRAWS`; more than one
            only when draws can differ (a random step in the pipeline, or ``do_sample``).
        pairs_per_question: the most pairs kept per question (the first wrong draws); None keeps every error.
        answer_format: how MCQ responses are written in the pair. ``letter_option``: ``"(B) red circle"``;
            ``option``: ``"red circle"``; ``letter``: ``"(B)"`` (both sides rendered from the option each
            picks, so the pair differs exactly in the choice); ``raw``: the model's answer verbatim and the
            ground truth as ``letter_option``.
        keep_unmapped: for a non-``raw`` format, keep an MCQ answer that picks no option as raw text
            (otherwise it is skipped as ``unmapped_answer``).
        judge_model: None (the rule judge), a local causal-LM directory, or ``policy`` (the video model) to
            judge open-ended answers.
        tagger_model: None, a local causal-LM directory, or ``policy``: the LLM of the two-turn tagging prompt.
        tagging: ``auto`` (the tagger model for long open-ended answers when ``tagger_model`` is set, the rule
            otherwise), ``rule`` or ``model`` (every pair through the tagger model).
        tag_rule: the rule tagger's rule (:data:`~savi_plugin.generators.tagging.TAG_RULES`): ``figure``
            (default; the tags of the authors' examples in ``data.png``: never an option label, no framing
            words, no function words at a phrase's edges) or ``difflib`` (the official code's replaced spans,
            option letters and framing words included).
        widen_tags: the rule tags insertions and deletions too (our extension; the official rule tags
            replaced spans only).
        long_answer_words: in ``auto``, an open-ended pair is "long" when either side has more words.
        short_answer_words: ground truths with at most this many words are judged as short answers.
        max_new_tokens: answer length.
        tag_max_new_tokens: length of each model-tagging turn; judge_max_new_tokens: of the judge's reply.
        do_sample, temperature, top_p: decoding (greedy by default; sampling is seeded).
    """

    prompts: Any = None
    perturbations: Any = None
    num_perturbations: int = checked(1, Range(1, MAX_DRAWS))
    pairs_per_question: int | None = checked(1, Range(1, MAX_DRAWS))
    answer_format: str = "letter_option"
    keep_unmapped: bool = False
    judge_model: Any = None
    tagger_model: Any = None
    tagging: str = "auto"
    tag_rule: str = "figure"
    widen_tags: bool = False
    long_answer_words: int = checked(12, NonNegative())
    short_answer_words: int = checked(5, NonNegative())
    max_new_tokens: int = 64
    tag_max_new_tokens: int = 160
    judge_max_new_tokens: int = 8
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0

    def __post_init__(self):
        validate(self)  # the fields' declared types and ranges, for a caller that builds the options from Python
        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer_format must be one of {', '.join(ANSWER_FORMATS)}, got {self.answer_format!r}")
        if self.tagging not in TAGGING:
            raise ValueError(f"tagging must be one of {', '.join(TAGGING)}, got {self.tagging!r}")
        if self.tag_rule not in TAG_RULES:
            raise ValueError(f"tag_rule must be one of {', '.join(TAG_RULES)}, got {self.tag_rule!r}")
        for role in ("judge_model", "tagger_model"):
            check_text_lm_option(getattr(self, role), role)
        if self.tagging == "model" and self.tagger_model is None:
            raise ValueError("tagging 'model' needs tagger_model (a local causal LM directory, or 'policy')")
        self.perturbations = normalize_specs(self.perturbations)
        if self.num_perturbations > 1 and not self.do_sample and not draws_vary(self.perturbations):
            raise ValueError(f"num_perturbations={self.num_perturbations} draws of a pipeline with no random step "
                             f"({', '.join(s['name'] for s in self.perturbations)}) perturb every clip the same way "
                             f"and greedy decoding answers them alike: the same pair again under another id; use "
                             f"num_perturbations: 1, a random step (shuffle, mask, drop) or do_sample: true")


@dataclass
class _Attempt:
    """One (item, perturbation draw) on its way through the pipeline."""

    work: WorkItem
    k: int
    prompt: str
    frames: np.ndarray
    perturbation: list[dict[str, Any]]
    answer: str = ""
    chosen: str = ""
    rejected: str = ""
    judgement: Any = None
    tagged: TaggedPair | None = None
    tag_note: str = ""
    skip: tuple[str, str] = ("", "")


class RRPOGenerator(Generator):
    """Preference pairs from the model's errors on perturbed videos (RRPO). See the module docstring."""

    name = "rrpo"
    config_class = RRPOConfig
    prompt_fields = {"mcq_question": {"question", "options"}, "open_question": {"question"},
                     "judge_answer": {"question", "ground_truth", "answer"},
                     "tag_differences": {"chosen", "rejected"}, "tag_rewrite": {"label", "sentence"}}

    clips_option = "num_perturbations"

    @classmethod
    def frames_problem(cls, config, num_frames: int) -> tuple[str, str] | None:
        """A perturbation that changes no frame of a clip this long (a shuffle of one frame)."""
        try:
            normalize_specs(config.perturbations, num_frames=num_frames)
        except ValueError as exc:
            return "perturbations", str(exc)
        return None

    def clips_per_item(self) -> int:
        """The original clip and one perturbed copy per draw are held together while a batch is processed."""
        return 1 + self.config.num_perturbations

    def check_items(self, items: Sequence[InputItem]) -> None:
        for item in items:
            for name in ("question", "answer"):
                if getattr(item, name) is None:
                    raise item.error(name, "rrpo needs a question and its ground-truth answer for every video")

    # ----------------------------------------------------------------- prompts and formats
    def question_prompt(self, item: InputItem) -> str:
        """The user turn the model answers (and the record's ``question``)."""
        if item.is_mcq:
            options = "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(item.options))
            return render(self.prompts, "mcq_question", question=item.question, options=options)
        return render(self.prompts, "open_question", question=item.question)

    def format_option(self, item: InputItem, index: int) -> str:
        fmt = "letter_option" if self.config.answer_format == "raw" else self.config.answer_format
        letter, option = LETTERS[index], item.options[index]
        return {"letter_option": f"({letter}) {option}", "option": option, "letter": f"({letter})"}[fmt]

    # ----------------------------------------------------------------- the pipeline
    def process(self, lm, batch: Sequence[WorkItem], ctx: BatchContext) -> list[Outcome]:
        cfg = self.config
        attempts = []
        for work in batch:
            for k in range(cfg.num_perturbations):
                # The draw depends on (seed, item, k) only: not on batching, sharding or resuming.
                rng = np.random.default_rng([ctx.seed, stable_int(work.item.id), k])
                frames, applied = apply_perturbations(work.frames, cfg.perturbations, rng)
                attempts.append(_Attempt(work, k, self.question_prompt(work.item), frames, applied))
        answers = generate_chunked(lm, [a.frames for a in attempts], [a.prompt for a in attempts],
                                   batch_size=ctx.batch_size, seed=stable_int(ctx.seed, ctx.batch_index, "answer"),
                                   max_new_tokens=cfg.max_new_tokens, do_sample=cfg.do_sample,
                                   temperature=cfg.temperature, top_p=cfg.top_p)
        for attempt, answer in zip(attempts, answers):
            attempt.answer = answer.strip()
        self._judge(lm, attempts, ctx)
        outcomes: dict[int, Outcome] = {}
        for i, attempt in enumerate(attempts):
            skip = self._make_pair(attempt)
            if skip is not None:
                outcomes[i] = self._outcome(attempt, SKIPPED, *skip)
        pending = [i for i in range(len(attempts)) if i not in outcomes]
        self._tag(lm, [attempts[i] for i in pending], ctx)
        kept: dict[str, int] = {}
        for i in pending:  # in order of draw: the first errors of a question are kept
            attempt, item_id = attempts[i], attempts[i].work.item.id
            if attempt.tagged is None:
                outcomes[i] = self._outcome(attempt, SKIPPED, *attempt.skip)
            elif cfg.pairs_per_question is not None and kept.get(item_id, 0) >= cfg.pairs_per_question:
                outcomes[i] = self._outcome(attempt, SKIPPED, "pair_limit", f"the question already has "
                                            f"{kept[item_id]} pair(s) (pairs_per_question)")
            else:
                kept[item_id] = kept.get(item_id, 0) + 1
                outcomes[i] = self._finish(attempt, ctx)
        return [outcomes[i] for i in range(len(attempts))]

    def _judge(self, lm, attempts: list[_Attempt], ctx: BatchContext) -> None:
        """Judge every answer by rule; with ``judge_model``, open-ended ones again by the model (batched)."""
        cfg = self.config
        for a in attempts:
            item = a.work.item
            if a.answer:
                a.judgement = judge_answer(a.answer, item.answer, options=item.options, answer_index=item.answer_index,
                                           short_answer_words=cfg.short_answer_words)
        open_ended = [a for a in attempts if a.judgement is not None and a.judgement.kind in ("short", "long")]
        if cfg.judge_model is None or not open_ended:
            return
        if getattr(self, "_judge_lm", None) is None:  # loaded once per run, on first use
            self._judge_lm = resolve_text_lm(cfg.judge_model, lm, role="judge")
        judge = ModelJudge(self._judge_lm, self.prompts, max_new_tokens=cfg.judge_max_new_tokens)
        cases = [(a.work.item.question, a.answer, a.work.item.answer, a.judgement) for a in open_ended]
        for a, j in zip(open_ended, judge.judge(cases, batch_size=ctx.batch_size,
                                                seed=stable_int(ctx.seed, ctx.batch_index, "judge"))):
            a.judgement = j

    def _outcome(self, attempt: _Attempt, status: str, reason: str, detail: str = "", **kw) -> Outcome:
        return Outcome(attempt.work.item.id, self.record_id(attempt.work.item.id, attempt.k), status, reason,
                       detail, **kw)

    def _make_pair(self, attempt: _Attempt) -> tuple[str, str] | None:
        """Fill ``chosen``/``rejected`` from the judged answer; return ``(reason, detail)`` to skip it."""
        cfg, item = self.config, attempt.work.item
        if not attempt.answer:
            return "empty_answer", "the model returned an empty answer"
        j = attempt.judgement
        if j.correct:
            return "correct_answer", f"answered correctly on the perturbed video: {attempt.answer[:200]!r}"
        if item.is_mcq:
            attempt.chosen = self.format_option(item, item.answer_index)
            if cfg.answer_format == "raw":
                attempt.rejected = attempt.answer
            elif j.predicted is not None:
                attempt.rejected = self.format_option(item, j.predicted)
            elif cfg.keep_unmapped:
                attempt.rejected = attempt.answer
            else:
                return "unmapped_answer", f"the answer picks no option: {attempt.answer[:200]!r}"
        else:
            attempt.chosen, attempt.rejected = item.answer.strip(), attempt.answer
        if same_text(attempt.chosen, attempt.rejected):
            return "identical_responses", "the wrong answer renders identical to the ground truth"
        return None

    def _wants_model_tagging(self, attempt: _Attempt) -> bool:
        cfg = self.config
        if cfg.tagging == "rule" or cfg.tagger_model is None:
            return False
        if cfg.tagging == "model":
            return True
        is_long = max(word_count(attempt.chosen), word_count(attempt.rejected)) > cfg.long_answer_words
        return not attempt.work.item.is_mcq and attempt.judgement.kind == "long" and is_long

    def _tag(self, lm, attempts: list[_Attempt], ctx: BatchContext) -> None:
        """Tag every attempt: the tagger model where wanted (batched, two turns), the rule otherwise.

        An attempt left with ``tagged`` None is skipped with its ``skip`` reason."""
        cfg = self.config
        for a in attempts:
            a.tagged = rule_tag(a.chosen, a.rejected, widen=cfg.widen_tags, rule=cfg.tag_rule)
            if a.tagged is None:
                a.skip = ("no_replaced_phrase", "the responses differ only by insertions or deletions (or, "
                          "under tag_rule 'figure', only in the option label): no replaced phrase to tag")
        model_side = [a for a in attempts if self._wants_model_tagging(a)]
        if not model_side:
            return
        if getattr(self, "_tagger_lm", None) is None:
            self._tagger_lm = resolve_text_lm(cfg.tagger_model, lm, role="tagger")
        tagger = self._tagger_lm
        gen = dict(max_new_tokens=cfg.tag_max_new_tokens, do_sample=cfg.do_sample, temperature=cfg.temperature,
                   top_p=cfg.top_p)
        first = [[{"role": "user", "content": render(self.prompts, "tag_differences", chosen=a.chosen,
                                                     rejected=a.rejected)}] for a in model_side]
        replies = self._generate_text(tagger, first, ctx, "tag1", gen)
        second, owners = [], []
        for a, conv, reply in zip(model_side, first, replies):
            if says_no_difference(reply):
                a.tagged = None
                a.skip = ("no_key_difference", f"the tagger model found no key difference: {reply[:80]!r}")
                continue
            for label, sentence in (("Sentence 1", a.chosen), ("Sentence 2", a.rejected)):
                turn = render(self.prompts, "tag_rewrite", label=label, sentence=sentence)
                second.append(conv + [{"role": "assistant", "content": reply}, {"role": "user", "content": turn}])
            owners.append(a)
        rewrites = self._generate_text(tagger, second, ctx, "tag2", gen) if second else []
        for n, a in enumerate(owners):
            chosen = check_model_tagging(a.chosen, rewrites[2 * n])
            rejected = check_model_tagging(a.rejected, rewrites[2 * n + 1])
            if chosen is None or rejected is None:
                a.tag_note = "the model's tags did not strip to the original responses"
                if a.tagged is not None:
                    a.tagged = TaggedPair(a.tagged.chosen_tagged, a.tagged.rejected_tagged, "rule_fallback")
                continue
            a.tagged = TaggedPair(chosen, rejected, "model")

    def _generate_text(self, lm, conversations, ctx: BatchContext, stage: str, gen: dict) -> list[str]:
        out: list[str] = []
        step = max(1, ctx.batch_size)
        for c, start in enumerate(range(0, len(conversations), step)):
            out.extend(lm.generate_text(conversations[start:start + step],
                                        seed=stable_int(ctx.seed, ctx.batch_index, stage, c), **gen))
        return out

    def _finish(self, attempt: _Attempt, ctx: BatchContext) -> Outcome:
        item, j, tagged = attempt.work.item, attempt.judgement, attempt.tagged
        meta = dict(ctx.meta)
        meta.update({
            "item_id": item.id,
            "order": [item.index, attempt.k],
            "num_frames": int(attempt.frames.shape[0]),
            "perturbation": attempt.perturbation,
            "answer_format": self.config.answer_format if item.is_mcq else "open",
            "judge": j.to_json(),
            "ground_truth": item.answer,
            "model_answer": attempt.answer,
            "tagging": tagged.method,
        })
        if attempt.tag_note:
            meta["tagging_note"] = attempt.tag_note
        if item.extra:
            meta["input"] = item.extra
        record = PreferenceRecord(id=self.record_id(item.id, attempt.k), video=item.video, question=attempt.prompt,
                                  chosen=attempt.chosen, rejected=attempt.rejected,
                                  chosen_tagged=tagged.chosen_tagged, rejected_tagged=tagged.rejected_tagged,
                                  source=self.name, meta=meta)
        try:
            validate_record(record.to_json())
        except DataError as exc:
            return self._outcome(attempt, SKIPPED, "invalid_record", exc.message)
        info = {"tagging": tagged.method}
        return self._outcome(attempt, PAIR, "written", record=record, info=info)


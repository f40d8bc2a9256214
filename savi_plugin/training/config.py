"""``PreferenceConfig``: the knobs of a video preference run, on top of ``transformers.TrainingArguments``.

Following TRL's ``DPOConfig``, the config *is* a ``TrainingArguments``, so every Hugging Face option
(DeepSpeed, gradient accumulation, checkpoints and resume, logging integrations, bf16) works unchanged.
The defaults below are set for the papers' recipes where they name a value (RRPO, arXiv 2504.12083:
beta 0.1, alpha 0.01 for LLaVA-Video) and for quiet, fast CPU runs otherwise (no reporting integration,
no column removal: our batches are built by :class:`~savi_plugin.training.collator.PreferenceCollator`).

Truncation policy (``max_length``): the video and the question are never truncated (the video tokens must
match the vision features one to one; a cut question is a different question). The token budget is
``max_length``, capped by the model's context window (``max_position_embeddings``). Each response is cut at
its end (TRL's ``keep_start``) so that ``prompt + response <= budget`` tokens; the number of truncated
responses is logged as ``truncated``. A pair whose question alone fills the budget is refused at load
(``prompt_too_long``: skipped and counted with ``bad_records="skip"``); a pair whose video + question leave no
room for a response token -- the same for every pair at a given ``num_frames``, a configuration problem -- is
an error naming its ``file:line``. Under packing the packed row is ``prompt + chosen + rejected``, i.e. at most
``2 * budget - prompt``. ``max_length=None`` (the default, TRL's advice for vision models) truncates only at
the context window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from savi_plugin.losses.base import SHARED_FIELDS
from savi_plugin.training.scoring import Objective, load_loss
from savi_plugin.constants import DEFAULT_NUM_FRAMES

REFERENCE_MODES = ("adapter", "model")
BAD_RECORD_POLICIES = ("raise", "skip")


@dataclass
class PreferenceConfig(TrainingArguments):
    """Training arguments of :class:`~savi_plugin.training.trainer.PreferenceTrainer`.

    Every ``transformers.TrainingArguments`` field is accepted as well. Preference-specific fields:

    Args:
        trainer: a ``transformers.Trainer`` subclass of :class:`~savi_plugin.training.trainer.PreferenceTrainer`
            registered under ``savi_plugin.trainers`` (``dpo``, ``rrpo``, ``preference`` or a third party's), which
            ``savi train`` and ``savi align`` instantiate; None: ``PreferenceTrainer``.
        loss_type: a name registered in the ``savi_plugin.losses`` entry-point group (``dpo``, ``ipo``,
            ``rrpo``, ``simpo``, ``tdpo``, or a third party's). The loss declares what it needs and its own
            hyper-parameters (:mod:`savi_plugin.losses.base`).
        beta: the implicit-reward scale (DPO/RRPO/TDPO beta; IPO's tau; SimPO's beta). None: the loss's default
            (0.1 for DPO, IPO, RRPO and TDPO, the papers' value; 2.0 for SimPO).
        alpha: RRPO's weight of the token-wise KL on the chosen response (default 0.01, the paper's for
            LLaVA-Video; 0 is the "w/o KL" ablation); TDPO2's KL weight (default 0.5). None: the loss's default.
        label_smoothing: cDPO's flip probability (``dpo`` only; default 0).
        loss_options: further hyper-parameters of the loss, checked against its declared ``Params`` (e.g. RRPO's
            ``kl_scope: official`` and ``reward: sequence``, SimPO's ``gamma``, TDPO's ``variant``).
        length_normalize: feed sequence losses the *mean* per-token log-prob instead of the sum. None: what the
            loss declares (on for ``ipo`` and ``simpo``).
        reference: ``"adapter"`` (default): the policy with its LoRA adapter disabled, no second copy;
            ``"model"``: a separate frozen model loaded from ``reference_model_path``.
        reference_model_path: the checkpoint of the separate reference (``reference="model"``).
        num_frames: frames decoded per video; RRPO: 16 or 32, VideoSAVi: 32 (the default,
            :data:`savi_plugin.constants.DEFAULT_NUM_FRAMES`).
        frame_rule: which frames (:mod:`savi_plugin.video.sampling`): ``uniform`` (default; ``linspace``, first
            and last frame included, as lmms-eval evaluates) or ``interval`` (``int(i * T / n)``, the official
            RRPO training loader; the RRPO recipes' value, ``data.frame_rule``).
        max_length: token budget of ``prompt + response``; see the module docstring for the policy.
        packing: score chosen and rejected in ONE sequence ``[video+question | chosen | rejected]`` with a
            block attention mask, so the prefix and the video are computed once per pair. Where the model's
            attention implementation cannot take a custom mask (flash-attention, flex) or the family is not
            known to support it, the trainer falls back to two rows per pair and logs it once.
        video_backend: ``decord`` / ``pyav`` / None (the default decoder).
        data_root: folder that relative video paths are resolved against (default: the dataset's folder).
        data_format: the preference file format (``savi``, ``rrpo``, ``trl``).
        bad_records: ``"raise"`` (default): a bad record or a missing video stops with ``file:line:field``;
            ``"skip"``: it is skipped, counted and listed in ``train_report.json``.
        disable_dropout: set every dropout probability of the policy to 0, LoRA dropout included (TRL's
            default; the official RRPO code does the same), so the implicit reward is not noisy.
        skip_nonfinite: a step whose loss (or gradient) is not finite is skipped -- no weight or optimizer
            update -- and counted as ``nonfinite_steps``; False raises ``FloatingPointError`` instead.
        max_nonfinite_fraction: a run that skipped more than this fraction of its optimizer steps fails
            (``TrainingFailedError``, no adapter saved) instead of delivering an adapter trained on a fraction of
            its data as if it were the configured run: steps that keep going non-finite mean a learning rate
            too high, fp16 overflow or broken data, which an exit code of 0 would hide. 1.0 never fails.
        logprob_chunk_size: response positions per LM-head call (extra peak memory O(chunk x vocab)).
        diagnostics: write per-pair diagnostics (margin, log-ratios, tagged tokens, token-wise KL) to
            ``diagnostics.jsonl`` at the start, every ``diagnostics_steps`` and the end
            (:mod:`savi_plugin.training.diagnostics`; ``savi inspect --diagnostics`` shows them).
        diagnostics_steps: optimizer steps between two diagnostics points; None: the start and the end only.
    """

    trainer: str | None = field(default=None, metadata={
        "help": "a trainer registered under savi_plugin.trainers (None: PreferenceTrainer, the loss from loss_type)"})
    loss_type: str = field(default="rrpo", metadata={"help": "registered loss: dpo, ipo, rrpo, ..."})
    beta: float | None = field(default=None, metadata={"help": "implicit reward scale (None: the loss's default)"})
    alpha: float | None = field(default=None, metadata={"help": "RRPO/TDPO KL weight (None: the loss's default)"})
    label_smoothing: float | None = field(default=None, metadata={"help": "cDPO label smoothing"})
    loss_options: dict | None = field(default=None, metadata={"help": "the loss's own hyper-parameters"})
    length_normalize: bool | None = field(default=None, metadata={"help": "mean instead of sum log-probs"})
    reference: str = field(default="adapter", metadata={"help": "adapter | model"})
    reference_model_path: str | None = field(default=None, metadata={"help": "separate reference checkpoint"})
    num_frames: int = field(default=DEFAULT_NUM_FRAMES, metadata={"help": "frames decoded per video"})
    frame_rule: str = field(default="uniform", metadata={"help": "uniform | interval | midpoints"})
    max_length: int | None = field(default=None, metadata={"help": "max prompt+response tokens"})
    packing: bool = field(default=True, metadata={"help": "shared-prefix packing of chosen+rejected"})
    video_backend: str | None = field(default=None, metadata={"help": "decord | pyav"})
    data_root: str | None = field(default=None, metadata={"help": "root for relative video paths"})
    data_format: str = field(default="savi", metadata={"help": "savi | rrpo | trl"})
    bad_records: str = field(default="raise", metadata={"help": "raise | skip"})
    disable_dropout: bool = field(default=True, metadata={"help": "zero every dropout of the policy"})
    skip_nonfinite: bool = field(default=True, metadata={"help": "skip (and count) non-finite steps"})
    max_nonfinite_fraction: float = field(default=0.5, metadata={"help": "fail above this fraction of skipped steps"})
    logprob_chunk_size: int = field(default=256, metadata={"help": "positions per LM-head chunk"})
    diagnostics: bool = field(default=False, metadata={
        "help": "per-pair diagnostics.jsonl at the start, every diagnostics_steps and the end"})
    diagnostics_steps: int | None = field(default=None, metadata={
        "help": "optimizer steps between diagnostics (None: only at the start and the end)"})

    # TrainingArguments defaults changed for this trainer.
    remove_unused_columns: bool = field(default=False, metadata={"help": "our collator builds the batch"})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "logging integrations"})
    logging_steps: float = field(default=10, metadata={"help": "log every N optimizer steps"})

    def __post_init__(self):
        from savi_plugin.training.distributed import deepspeed_prints_to_log

        # with a DeepSpeed config, TrainingArguments starts DeepSpeed's communication layer here (``self.device``,
        # through accelerate), which prints its build line: to the log, never to the results' standard output
        with deepspeed_prints_to_log():
            super().__post_init__()
        if self.reference not in REFERENCE_MODES:
            raise ValueError(f"reference must be one of {', '.join(REFERENCE_MODES)}, got {self.reference!r}")
        if self.reference == "model" and not self.reference_model_path:
            raise ValueError("reference='model' needs reference_model_path")
        if self.bad_records not in BAD_RECORD_POLICIES:
            raise ValueError(f"bad_records must be 'raise' or 'skip', got {self.bad_records!r}")
        from savi_plugin.video.sampling import SAMPLING_RULES

        if self.frame_rule not in SAMPLING_RULES:
            raise ValueError(f"frame_rule must be one of {', '.join(SAMPLING_RULES)}, got {self.frame_rule!r}")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {self.num_frames}")
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"max_length must be >= 2 or None, got {self.max_length}")
        if not 0.0 <= self.max_nonfinite_fraction <= 1.0:
            raise ValueError(f"max_nonfinite_fraction must be in [0, 1], got {self.max_nonfinite_fraction}")
        if self.logprob_chunk_size < 1:
            raise ValueError(f"logprob_chunk_size must be >= 1, got {self.logprob_chunk_size}")
        from savi_plugin import registry

        if self.loss_type not in registry.available(registry.LOSSES):
            raise ValueError(f"loss_type {self.loss_type!r} is not registered in {registry.LOSSES!r}; available: "
                             f"{', '.join(registry.available(registry.LOSSES))}")
        load_loss(self.loss_type).params(self.shared_loss_values(), self.loss_options)  # ConfigError naming the field

    def shared_loss_values(self) -> dict:
        """``beta``/``alpha``/``label_smoothing`` as set here (None: the loss's default)."""
        return {name: getattr(self, name) for name in SHARED_FIELDS}

    def objective(self) -> Objective:
        """The :class:`~savi_plugin.training.scoring.Objective`: the loss with its checked parameters (the trainer
        builds it once)."""
        return Objective(self.loss_type, self.shared_loss_values(), self.loss_options, self.length_normalize)

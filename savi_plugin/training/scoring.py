"""THE scoring path (forward time): per-token statistics of responses after a video prompt, and the loss's inputs.

:func:`score_responses` is the one function that scores responses: the trainer (policy with its reference,
packed or not), the eval log-likelihood (``savi_video``'s ``loglikelihood``) and the tests call it, on a batch
from :mod:`savi_plugin.training.batch`. It

1. runs the vision encoder once per video (:meth:`VideoLM.video_features`); its output goes to the decoder as
   ``mm_encoder_outputs`` (transformers' hook for precomputed multimodal features, laid out per row by
   :meth:`VideoLM.mm_encoder_outputs`) for the policy pass *and* the reference pass. When a vision part is
   trainable (:meth:`VideoLM.vision_is_trainable`), the reference computes its own features under ``no_grad``
   with the adapter disabled, because then they differ;
2. runs the decoder over the rows to its final hidden states, packed rows with the attention and restarted
   positions of :func:`savi_plugin.training.packing.row_layout` -- the policy, and under ``no_grad`` the
   reference: the same model with its LoRA adapter disabled (``reference="adapter"``: no second copy of the
   weights), a separate frozen model (``"model"``), or none (``"none"``: a reference-free loss, or eval);
3. gathers the hidden state that predicts each response token (``hidden[:, j]`` predicts ``targets[:, j]``) and
   applies the LM head at those positions only (:func:`savi_plugin.training.token_logprobs.response_token_stats`).

:class:`Objective` is the other half: it reads a registered loss's declared
:class:`~savi_plugin.losses.base.Requirements` and turns them into the options of :func:`score_responses`
(which sides, which reference, which KL on which sides) and the scores into the loss's inputs, then reduces
the per-pair losses with the pairs' weights. The trainer never looks at a loss's name or signature.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from savi_plugin import registry
from savi_plugin.losses.base import LossOutput, PreferenceLoss, Requirements, SequenceInputs, TokenInputs, weighted_mean
from savi_plugin.plugin_call import broken_contract, plugin_call
from savi_plugin.training.batch import PreferenceBatch, PromptSide, ScoringBatch
from savi_plugin.training.packing import RowLayout, enable_packed_attention, row_layout
from savi_plugin.training.token_logprobs import ResponseTokenStats, response_token_stats

#: Where the reference comes from; "none" runs no reference.
REFERENCE_SOURCES = ("adapter", "model", "none")


# ---------------------------------------------------------------------------------------------- the forward
@contextlib.contextmanager
def adapter_disabled(model):
    """Run the peft model as its base model (LoRA off): the reference, without a second copy of the weights."""
    if not hasattr(model, "disable_adapter"):
        raise ValueError("reference='adapter' needs a peft (LoRA) model as the policy; apply an adapter, or use "
                         "reference='model'")
    with model.disable_adapter():
        yield


def decoder_hidden_states(decoder, prompt: PromptSide, layout: RowLayout, mm_encoder_outputs) -> torch.Tensor:
    """Final hidden states ``[N, L, H]`` of the batch rows (no LM head)."""
    if "packed_segments" in layout.attention_kwargs and not enable_packed_attention(decoder):
        raise ValueError("packed rows with split attention need the language model on sdpa or flash_attention_2")
    out = decoder(input_ids=prompt.input_ids, attention_mask=layout.attention_mask,
                  position_ids=layout.position_ids, mm_encoder_outputs=mm_encoder_outputs, use_cache=False,
                  **layout.attention_kwargs)
    return out.last_hidden_state


@dataclass
class BatchHiddenStates:
    """Final hidden states ``[N, L, H]`` of the rows, and what produced them.

    Attributes:
        policy: the policy's (with the autograd graph when a gradient is taken).
        reference: the reference's (no gradient), or None (no reference).
        reference_head: the separate reference model's LM head, or None (the policy's head serves).
        vision_calls: how many times a vision encoder ran for this batch (1 with a shared encoder).
    """

    policy: torch.Tensor
    reference: torch.Tensor | None
    reference_head: torch.nn.Module | None
    vision_calls: int


def batch_hidden_states(backend, prompt: PromptSide, *, reference: str = "adapter",
                        reference_backend=None) -> BatchHiddenStates:
    """Run the policy (and the reference) over a batch's rows (steps 1-2 of the module docstring).

    Args:
        backend: the policy ``VideoLM``.
        prompt: the batch's rows, on the model's device.
        reference: one of :data:`REFERENCE_SOURCES`.
        reference_backend: the frozen reference ``VideoLM`` for ``reference="model"``.
    """
    if reference not in REFERENCE_SOURCES:
        raise ValueError(f"unknown reference mode {reference!r}; one of {', '.join(REFERENCE_SOURCES)}")
    if reference == "model" and reference_backend is None:
        raise ValueError("reference='model' needs reference_backend")
    decoder = backend.decoder()
    layout = row_layout(prompt, backend.position_ids(prompt), backend.attention_implementation(),
                        backend.floating_dtype(decoder))
    trainable_vision = backend.vision_is_trainable()
    # A frozen vision path runs without autograd: with gradient checkpointing, transformers makes every
    # input embedding require grad (enable_input_require_grads), which would otherwise make frozen features
    # look trainable, re-encode the video for the reference and back-propagate through the frozen tower.
    with contextlib.nullcontext() if trainable_vision else torch.no_grad():
        features = backend.video_features(prompt.vision)
    vision_calls = 1
    policy = decoder_hidden_states(decoder, prompt, layout, backend.mm_encoder_outputs(features, prompt))
    reference_hidden, reference_head = None, None
    if reference == "adapter":
        with torch.no_grad(), adapter_disabled(backend.model):
            if trainable_vision:  # a trainable vision part: the reference needs its own features
                features = backend.video_features(prompt.vision)
                vision_calls += 1
            reference_hidden = decoder_hidden_states(decoder, prompt, layout,
                                                     backend.mm_encoder_outputs(features, prompt))
    elif reference == "model":
        with torch.no_grad():
            ref_features = reference_backend.video_features(prompt.vision)
            vision_calls += 1
            reference_hidden = decoder_hidden_states(reference_backend.decoder(), prompt, layout,
                                                     reference_backend.mm_encoder_outputs(ref_features, prompt))
            reference_head = reference_backend.lm_head()
    return BatchHiddenStates(policy, reference_hidden, reference_head, vision_calls)


def gather_response_hidden(hidden_states: torch.Tensor, rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``[B, T, H]``: the hidden states that predict each response token (``rows [B]``, ``positions [B, T]``)."""
    return hidden_states[rows.unsqueeze(1), positions]


@dataclass
class Scores:
    """What :func:`score_responses` returns: per-side token statistics and the vision encoder count.

    ``scores["chosen"]`` (or ``scores.chosen``) is a
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


def score_responses(backend, batch: ScoringBatch, *, sides: Sequence[str] = ("chosen", "rejected"),
                    reference: str = "none", reference_backend=None, kl: str = "ref||policy",
                    kl_sides: Sequence[str] = (), greedy: bool = False, chunk_size: int = 256,
                    checkpoint_chunks: bool = True) -> Scores:
    """Score the responses of a batch: the single scoring path (see module docstring).

    Args:
        backend: the scored (policy) ``VideoLM``; its ``model`` is a peft model for ``reference="adapter"``.
        batch: a :class:`~savi_plugin.training.batch.ScoringBatch` on the model's device.
        sides: the sides to score (names in ``batch.sides``).
        reference: ``"adapter"`` (the policy with LoRA disabled), ``"model"`` (``reference_backend``) or
            ``"none"`` (no reference: a reference-free loss, or eval).
        reference_backend: the frozen reference ``VideoLM`` for ``reference="model"``.
        kl: the direction of the per-token KL (``"ref||policy"``: RRPO; ``"policy||ref"``: TDPO).
        kl_sides: the sides that need the KL (a reference is required).
        greedy: also report whether each target is the arg-max (eval's ``is_greedy``).
        chunk_size: response positions per LM-head call.
        checkpoint_chunks: recompute each LM-head chunk in backward (peak O(chunk x vocab)). Must be off under
            DeepSpeed ZeRO-3: the recomputation runs outside ZeRO's module hooks and would see the LM head's
            empty local shard.
    """
    hidden = batch_hidden_states(backend, batch.prompt, reference=reference, reference_backend=reference_backend)
    head = backend.lm_head()
    out = Scores(vision_calls=hidden.vision_calls)
    for name in sides:
        side = batch.sides[name]
        policy = gather_response_hidden(hidden.policy, side.rows, side.positions)
        reference_hidden = None if hidden.reference is None else gather_response_hidden(hidden.reference, side.rows,
                                                                                        side.positions)
        out.sides[name] = response_token_stats(
            policy, head, side.targets, reference_hidden_states=reference_hidden,
            reference_lm_head=hidden.reference_head, kl=kl if name in kl_sides else None, greedy=greedy,
            chunk_size=chunk_size, checkpoint_chunks=checkpoint_chunks)
    return out


# ---------------------------------------------------------------------------------------------- the objective
def load_loss(name: str) -> PreferenceLoss:
    """The loss registered as ``name`` in ``savi_plugin.losses``; :func:`~savi_plugin.registry.load` refuses an
    object that is no :class:`PreferenceLoss` instance."""
    return registry.load(registry.LOSSES, name)


def _kind(value: Any) -> str:
    """``a float``, ``a tuple``: what a value is, for a contract's refusal."""
    return "None" if value is None else f"a {type(value).__name__}"


class Objective:
    """A loss with its parameters, as the trainer uses it (built once per trainer).

    Args:
        loss_type: a name registered in ``savi_plugin.losses``.
        shared: ``beta``/``alpha``/``label_smoothing`` as set in the config (None: the loss's default).
        options: the config's ``loss_options`` (loss-specific; unknown keys are errors).
        length_normalize: overrides the loss's declared length normalisation of sequence summaries (None: keep).
    """

    def __init__(self, loss_type: str, shared: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
                 length_normalize: bool | None = None):
        self.loss_type = loss_type
        self.loss = load_loss(loss_type)
        self.params = self.loss.params(shared, options)
        with plugin_call(registry.LOSSES, loss_type, self.loss, "requirements"):
            requirements = self.loss.requirements(self.params)
        if not isinstance(requirements, Requirements):
            raise self._broken("requirements()", f"returned {_kind(requirements)}, not a Requirements")
        self.requirements: Requirements = requirements
        self.length_normalize = (self.requirements.length_normalize if length_normalize is None
                                 else bool(length_normalize))

    def _broken(self, what: str, problem: str):
        return broken_contract(registry.LOSSES, self.loss_type, self.loss, what, problem)

    def _check_output(self, out: Any, pairs: int, grad: bool) -> None:
        """Refuse what ``compute`` returned unless it is the contract's: a :class:`LossOutput` of tensors, per-pair
        ``losses`` and rewards of shape ``(pairs,)``, ``losses`` carrying a gradient where the policy's log-probs
        do (``grad``: training)."""
        if not isinstance(out, LossOutput):
            raise self._broken("compute()", f"returned {_kind(out)}, not a LossOutput of tensors")
        for field_name in ("losses", "chosen_rewards", "rejected_rewards"):
            value = getattr(out, field_name)
            if not isinstance(value, torch.Tensor):
                raise self._broken(f"compute()'s LossOutput.{field_name}", f"is {_kind(value)}, not a tensor")
            if tuple(value.shape) != (pairs,):
                raise self._broken(f"compute()'s LossOutput.{field_name}",
                                   f"has shape {tuple(value.shape)}, not ({pairs},): one value per pair of the batch")
        if not isinstance(out.metrics, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                        for k, v in out.metrics.items()):
            raise self._broken("compute()'s LossOutput.metrics", "is not a dict of names to tensors")
        if grad and not out.losses.requires_grad:
            raise self._broken("compute()'s LossOutput.losses", "carries no gradient (detached, or not computed from "
                                                                 "the inputs): training could not change the model")

    def scoring_options(self, reference: str) -> dict[str, Any]:
        """Keyword arguments of :func:`score_responses` for this loss under the configured reference mode
        (``adapter`` or ``model``); a reference-free loss runs no reference."""
        req = self.requirements
        source = reference if req.reference else "none"
        sides = ["chosen", "rejected"]
        kl_sides = list(req.kl_sides)
        if source != "none" and "chosen" not in kl_sides:
            kl_sides.append("chosen")  # logged as kl/chosen
        if req.template_kl:
            sides.append("template")
            kl_sides.append("template")
        return {"sides": tuple(sides), "reference": source, "kl": req.kl or "ref||policy",
                "kl_sides": tuple(kl_sides)}

    def inputs(self, scores: Scores, batch: PreferenceBatch) -> SequenceInputs | TokenInputs:
        """The loss's inputs at its declared level."""
        chosen, rejected = scores["chosen"], scores["rejected"]
        req = self.requirements
        if req.reference and (chosen.reference_logps is None or rejected.reference_logps is None):
            raise ValueError(f"loss {self.loss.name!r} needs reference log-probs; the scores carry none")
        if req.level == "token":
            template = scores.sides.get("template") if req.template_kl else None
            return TokenInputs(
                chosen.policy_logps, rejected.policy_logps, chosen.reference_logps, rejected.reference_logps,
                chosen.mask, rejected.mask, batch.chosen.phrase_ids, batch.rejected.phrase_ids,
                chosen.kl if "chosen" in req.kl_sides else None, rejected.kl if "rejected" in req.kl_sides else None,
                None if template is None else template.kl, None if template is None else template.mask)
        norm = self.length_normalize

        def total(stats, values):
            return None if values is None else stats.total(values, normalize=norm)

        return SequenceInputs(
            total(chosen, chosen.policy_logps), total(rejected, rejected.policy_logps),
            total(chosen, chosen.reference_logps) if req.reference else None,
            total(rejected, rejected.reference_logps) if req.reference else None,
            chosen.total(chosen.kl) if "chosen" in req.kl_sides else None,
            rejected.total(rejected.kl) if "rejected" in req.kl_sides else None)

    def __call__(self, scores: Scores, batch: PreferenceBatch) -> tuple[torch.Tensor, torch.Tensor,
                                                                       dict[str, torch.Tensor]]:
        """``(batch loss, per-pair losses [B], per-pair metrics)``; the batch loss is the weighted mean."""
        inputs = self.inputs(scores, batch)
        with plugin_call(registry.LOSSES, self.loss_type, self.loss, "compute"):
            out = self.loss.compute(inputs, self.params)
        self._check_output(out, len(inputs.policy_chosen), inputs.policy_chosen.requires_grad)
        chosen, rejected = scores["chosen"], scores["rejected"]
        metrics = {f"{self.loss.name}/{k}": v.detach().float() for k, v in out.metrics.items()}
        metrics.update({
            "rewards/chosen": out.chosen_rewards.detach(),
            "rewards/rejected": out.rejected_rewards.detach(),
            "rewards/accuracies": (out.chosen_rewards > out.rejected_rewards).float().detach(),
            "rewards/margins": (out.chosen_rewards - out.rejected_rewards).detach(),
            "logps/chosen": chosen.total().detach(),
            "logps/rejected": rejected.total().detach(),
        })
        if chosen.kl is not None:
            metrics["kl/chosen"] = chosen.total(chosen.kl).detach()
        return weighted_mean(out.losses, batch.weights), out.losses, metrics

"""The training objective: a registered loss, its checked hyper-parameters, and the scoring its flags call for.

The trainer never looks at a loss's name or signature. :class:`Objective` reads the loss's declared
:class:`~savi_plugin.losses.base.Requirements` and turns them into

* the options of the one scoring path (:meth:`Objective.scoring_options`: which sides, which reference, which KL
  on which sides, the official-scope template side), and
* the loss's inputs from the scores (:meth:`Objective.inputs`: token statistics, or per-response sums / means),

then reduces the per-pair losses with the pairs' weights and collects metrics with TRL's names.
"""

from __future__ import annotations

from typing import Any

import torch

from savi_plugin import registry
from savi_plugin.losses.base import PreferenceLoss, Requirements, SequenceInputs, TokenInputs, weighted_mean
from savi_plugin.training.scoring import TEMPLATE_SUFFIX, Scores

TEMPLATE = "chosen" + TEMPLATE_SUFFIX


def load_loss(name: str) -> PreferenceLoss:
    """The loss registered as ``name`` in ``savi_plugin.losses``; it must be a :class:`PreferenceLoss`."""
    loss = registry.load(registry.LOSSES, name)
    if not isinstance(loss, PreferenceLoss):
        raise TypeError(f"the {registry.LOSSES!r} entry {name!r} is a {type(loss).__name__}, not a "
                        f"savi_plugin.losses.base.PreferenceLoss (see docs/ARCHITECTURE.md: how to add a loss)")
    return loss


class Objective:
    """A loss with its parameters, as the trainer uses it.

    Args:
        loss_type: a name registered in ``savi_plugin.losses``.
        shared: ``beta``/``alpha``/``label_smoothing`` as set in the config (None: the loss's default).
        options: the config's ``loss_options`` (loss-specific; unknown keys are errors).
        length_normalize: overrides the loss's declared length normalisation of sequence summaries (None: keep).
    """

    def __init__(self, loss_type: str, shared: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
                 length_normalize: bool | None = None):
        self.loss = load_loss(loss_type)
        self.params = self.loss.params(shared, options)
        self.requirements: Requirements = self.loss.requirements(self.params)
        self.length_normalize = (self.requirements.length_normalize if length_normalize is None
                                 else bool(length_normalize))

    def scoring_options(self, reference: str, store_kl: str | None = None) -> dict[str, Any]:
        """Keyword arguments of :func:`~savi_plugin.training.scoring.score_responses` for this loss.

        Args:
            reference: the configured reference mode (``adapter``, ``model``, ``precomputed``).
            store_kl: the precomputed store's ``kl`` mode (``full``, ``topk``, ``none``) when ``precomputed``.

        Raises:
            ValueError: the loss needs a KL that a precomputed reference without a distribution cannot give, or
                the official KL scope with a precomputed reference (its template positions are not stored).
        """
        req = self.requirements
        source = reference if req.reference else "none"
        sides = ["chosen", "rejected"]
        kl_sides = list(req.kl_sides)
        if source == "precomputed":
            if kl_sides and store_kl == "none":
                raise ValueError(f"loss {self.loss.name!r} needs the {'/'.join(kl_sides)}-token KL, but the "
                                 f"precomputed reference holds log-probs only (kl='none'); precompute with "
                                 f"kl='topk' or 'full'")
            if req.template_kl:
                raise ValueError(f"loss {self.loss.name!r} with the official KL scope needs the reference at the "
                                 f"template positions: use reference='adapter' or 'model'")
        elif source in ("adapter", "model") and "chosen" not in kl_sides:
            kl_sides.append("chosen")  # logged as kl/chosen
        if req.template_kl:
            sides.append(TEMPLATE)
            kl_sides.append(TEMPLATE)
        return {"sides": tuple(sides), "reference": source, "kl": req.kl or "ref||policy",
                "kl_sides": tuple(kl_sides)}

    def inputs(self, scores: Scores, batch: dict[str, Any]) -> SequenceInputs | TokenInputs:
        """The loss's inputs at its declared level."""
        chosen, rejected = scores["chosen"], scores["rejected"]
        req = self.requirements
        if req.reference and (chosen.reference_logps is None or rejected.reference_logps is None):
            raise ValueError(f"loss {self.loss.name!r} needs reference log-probs; the scores carry none")
        if req.level == "token":
            template = scores.sides.get(TEMPLATE)
            return TokenInputs(
                chosen.policy_logps, rejected.policy_logps, chosen.reference_logps, rejected.reference_logps,
                chosen.mask, rejected.mask, batch["chosen_phrase_ids"], batch["rejected_phrase_ids"],
                chosen.kl if "chosen" in req.kl_sides else None, rejected.kl if "rejected" in req.kl_sides else None,
                template.kl if template is not None and req.template_kl else None,
                template.mask if template is not None and req.template_kl else None)
        norm = self.length_normalize

        def total(stats, values):
            return None if values is None else stats.total(values, normalize=norm)

        return SequenceInputs(
            total(chosen, chosen.policy_logps), total(rejected, rejected.policy_logps),
            total(chosen, chosen.reference_logps) if req.reference else None,
            total(rejected, rejected.reference_logps) if req.reference else None,
            chosen.total(chosen.kl) if "chosen" in req.kl_sides else None,
            rejected.total(rejected.kl) if "rejected" in req.kl_sides else None)

    def __call__(self, scores: Scores, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor,
                                                                       dict[str, torch.Tensor]]:
        """``(batch loss, per-pair losses [B], per-pair metrics)``; the batch loss is the weighted mean."""
        out = self.loss.compute(self.inputs(scores, batch), self.params)
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
        return weighted_mean(out.losses, batch.get("weights")), out.losses, metrics

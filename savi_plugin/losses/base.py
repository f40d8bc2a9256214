"""The loss contract: what a registered preference loss declares, receives and returns.

A loss is an object registered under the entry-point group ``savi_plugin.losses`` (one file plus one entry
point: no trainer edit). It declares

* :attr:`PreferenceLoss.Params`: a small frozen dataclass of its own hyper-parameters, each with its default and
  validation rules (:mod:`savi_plugin.config.values`), built by :meth:`PreferenceLoss.params` from the training
  config (``beta``, ``alpha``, ``label_smoothing`` where it declares them, and ``loss_options``). A bad value
  raises :class:`~savi_plugin.config.values.ConfigError` naming the field (``beta: must be > 0, got -1``), which
  the recipe layer places in its file (``recipe.yaml: train.beta: ...``);
* :meth:`PreferenceLoss.requirements`: what the trainer must compute for it (:class:`Requirements`: sequence or
  token statistics, a reference or not, length normalisation, the per-token KL and its direction and sides,
  phrase tags). The trainer dispatches on these flags only, never on a loss's name or signature.

:meth:`PreferenceLoss.compute` gets :class:`SequenceInputs` or :class:`TokenInputs` and returns
:class:`LossOutput`; the trainer reduces the per-pair losses with :func:`weighted_mean` (per-pair weights, 1 by
default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from savi_plugin import registry
from savi_plugin.config.values import ConfigError, check_mapping, check_value
from savi_plugin.constants import KL_DIRECTIONS

LEVELS = ("sequence", "token")
#: training-config fields a loss may declare in its Params (read from the config when set there)
SHARED_FIELDS = ("beta", "alpha", "label_smoothing")


@dataclass(frozen=True)
class Requirements:
    """What a loss needs computed (the trainer reads these flags and nothing else).

    Attributes:
        level: ``"sequence"`` (one summary log-prob per response: :class:`SequenceInputs`) or ``"token"``
            (per-token statistics: :class:`TokenInputs`).
        reference: needs reference log-probs; False for a reference-free loss (no reference forward runs).
        length_normalize: sequence summaries are per-token means instead of sums.
        kl: the per-token KL direction (``"ref||policy"`` or ``"policy||ref"``), or None.
        kl_sides: the responses the KL is needed on (``"chosen"``, ``"rejected"``).
        template_kl: the chosen KL also covers the chat-template positions the official RRPO preprocessing
            labels (``chosen_template``; needs a reference distribution at those positions).
        tags: needs ``<MASK>`` phrase tags (untagged pairs are skipped and counted at load).
    """

    level: str = "sequence"
    reference: bool = True
    length_normalize: bool = False
    kl: str | None = None
    kl_sides: tuple[str, ...] = ()
    template_kl: bool = False
    tags: bool = False

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {self.level!r}")
        if self.kl is not None and self.kl not in KL_DIRECTIONS:
            raise ValueError(f"kl must be one of {KL_DIRECTIONS} or None, got {self.kl!r}")
        if (self.kl_sides or self.template_kl) and (self.kl is None or not self.reference):
            raise ValueError("a KL needs kl=<direction> and reference=True")


@dataclass
class SequenceInputs:
    """``[B]`` summary log-probs (sums, or per-token means under ``length_normalize``) of each response.

    ``reference_*`` are None for a reference-free loss; ``*_kl`` the per-response KL sums where requested.
    """

    policy_chosen: torch.Tensor
    policy_rejected: torch.Tensor
    reference_chosen: torch.Tensor | None = None
    reference_rejected: torch.Tensor | None = None
    chosen_kl: torch.Tensor | None = None
    rejected_kl: torch.Tensor | None = None


@dataclass
class TokenInputs:
    """Per-token statistics of the chosen ``[B, Tc]`` and rejected ``[B, Tr]`` responses (zeros on padding).

    Attributes:
        policy_chosen, policy_rejected: log pi_theta of each token.
        reference_chosen, reference_rejected: log pi_ref of each token, or None (reference-free).
        chosen_mask, rejected_mask: True on real tokens.
        chosen_phrase_ids, rejected_phrase_ids: ``<MASK>`` phrase id of each token (0 = untagged).
        chosen_kl, rejected_kl: per-token KL in the declared direction where requested, else None.
        template_kl, template_mask: ``[B, K]`` the chosen KL at the chat-template positions
            (``template_kl`` requirement), else None.
    """

    policy_chosen: torch.Tensor
    policy_rejected: torch.Tensor
    reference_chosen: torch.Tensor | None
    reference_rejected: torch.Tensor | None
    chosen_mask: torch.Tensor
    rejected_mask: torch.Tensor
    chosen_phrase_ids: torch.Tensor
    rejected_phrase_ids: torch.Tensor
    chosen_kl: torch.Tensor | None = None
    rejected_kl: torch.Tensor | None = None
    template_kl: torch.Tensor | None = None
    template_mask: torch.Tensor | None = None


@dataclass
class LossOutput:
    """Per-pair ``[B]`` losses and implicit rewards (detached), and extra per-pair metrics (logged under the
    loss's name, e.g. ``rrpo/preference_loss``)."""

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    metrics: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)


class PreferenceLoss:
    """A registered preference loss (see the module docstring). Subclasses set ``name`` and ``Params`` and
    implement :meth:`requirements` and :meth:`compute`."""

    name: ClassVar[str] = "loss"

    @dataclass(frozen=True)
    class Params:
        pass

    def params(self, shared: dict[str, Any] | None = None, options: dict[str, Any] | None = None):
        """The checked :attr:`Params` from the training config.

        Args:
            shared: ``beta``/``alpha``/``label_smoothing`` values set in the config (None = not set); those the
                loss does not declare are ignored.
            options: ``loss_options``: loss-specific values; a key the loss does not declare is an error.

        Raises:
            ConfigError: naming the field (``beta: ...`` or ``loss_options.<key>: ...``).
        """
        declared = {f.name for f in dataclasses.fields(self.Params)}
        twice = next((k for k in (options or {}) if k in SHARED_FIELDS), None)
        if twice is not None:  # one place for each value: train.beta beside loss_options.beta silently lost one
            raise ConfigError(f"loss_options.{twice}", f"{twice} is a training field of its own: set train.{twice}, "
                                                       f"not train.loss_options.{twice}")
        given = {k: v for k, v in (shared or {}).items() if v is not None and k in declared}
        given.update(check_mapping(self.Params, {k: v for k, v in given.items()}))
        extra = check_mapping(self.Params, dict(options or {}), "loss_options", what=f"option of loss {self.name!r}")
        try:
            return self.Params(**{**given, **extra})
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError("loss_options", str(exc)) from None

    def requirements(self, params) -> Requirements:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self, inputs: SequenceInputs | TokenInputs, params) -> LossOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<preference loss {self.name!r}>"


def default_problem(loss: PreferenceLoss) -> str | None:
    """The first default of ``loss``'s ``Params`` that its own rule refuses, as the rest of a refusal naming the
    entry (:func:`savi_plugin.registry.load`), or None: a default is checked by the rule a given value is
    (:func:`~savi_plugin.config.values.check_value`), so a default of nan never trains unsaid."""
    for field in dataclasses.fields(loss.Params):
        if field.default is not dataclasses.MISSING:
            value = field.default
        elif field.default_factory is not dataclasses.MISSING:
            value = field.default_factory()
        else:
            continue
        try:
            check_value(loss.Params, field, value, f"loss_options.{field.name}")
        except ConfigError as exc:
            return f"declares the default {field.name} = {value!r}, which its own rule refuses: {exc.message}"
    return None


registry.declare_kind(registry.LOSSES, PreferenceLoss, default_problem)


def masked_sum(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B]``: the sum of ``values [B, T]`` where ``mask`` is True. ``where``, not a product: padded entries may
    hold garbage or ``-inf``, and ``0 * inf`` is nan."""
    return torch.where(mask, values, torch.zeros_like(values)).sum(-1)


def weighted_mean(losses: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_b w_b * loss_b / sum_b w_b``: the batch loss with per-pair weights (the plain mean without them).

    Weights scale each pair's share of the gradient (VideoSAVi's CLIP-adjusted DPO); equal weights give the
    unweighted mean. A batch whose weights sum to 0 contributes 0.
    """
    if weights is None:
        return losses.mean()
    weights = weights.to(losses.dtype)
    if weights.shape != losses.shape:
        raise ValueError(f"weights {tuple(weights.shape)} must match the per-pair losses {tuple(losses.shape)}")
    return (weights * losses).sum() / weights.sum().clamp(min=torch.finfo(losses.dtype).tiny)

"""The generator interface: a batch of decoded inputs in, one outcome per would-be record out.

A generator never touches files: :func:`savi_plugin.generators.runner.run_generation` reads the inputs,
decodes the videos, batches, shards, writes records resumably and reports. A generator only turns a
batch of :class:`WorkItem` into :class:`Outcome` objects (a pair to write, or a counted skip/failure with
its reason), calling the :class:`~savi_plugin.models.backends.base.VideoLM` it is given.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np

from savi_plugin import registry
from savi_plugin.config.values import AtLeast, Check, Positive, Range, build, register_rules
from savi_plugin.data.record import PreferenceRecord
from savi_plugin.generators.inputs import InputItem
from savi_plugin.generators.prompts import check_control_strings, load_prompts, read_override

PAIR, SKIPPED, FAILED = "pair", "skipped", "failed"


@dataclass
class WorkItem:
    """An input item with its decoded frames (uint8 ``(T, H, W, 3)``)."""

    item: InputItem
    frames: np.ndarray


@dataclass
class Outcome:
    """What became of one would-be record.

    Attributes:
        item_id: the input item.
        record_id: the record's deterministic id (``<item id>-<generator>-<k>``), or None when the item
            failed before any record could be numbered (e.g. no question could be parsed).
        status: ``pair`` (a record to write), ``skipped`` (filtered out by design) or ``failed`` (an error).
        reason: a short code (``written``, ``correct_answer``, ``no_error_found``, ``decode_error`` ...).
        detail: a human-readable explanation (the offending output, the exception message).
        record: the record, for ``pair``.
        info: counters for the run report (e.g. ``{"tagging": "rule"}``).
    """

    item_id: str
    record_id: str | None
    status: str
    reason: str
    detail: str = ""
    record: PreferenceRecord | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {"id": self.record_id, "status": self.status, "reason": self.reason}
        if self.detail:
            out["detail"] = self.detail
        if self.info:
            out["info"] = self.info
        return out


def outcome_problem(outcome: Any, item_ids: set[str]) -> str | None:
    """What makes ``outcome`` something other than an :class:`Outcome` of the contract (one of a batch whose items
    are ``item_ids``), or None: its status one of ``pair``/``skipped``/``failed``, its reason a short code (a
    non-empty one-line text), its ids texts naming an item of the batch, a ``pair`` with its
    :class:`~savi_plugin.data.record.PreferenceRecord`."""
    if not isinstance(outcome, Outcome):
        return f"is {'None' if outcome is None else 'a ' + type(outcome).__name__}, not an Outcome"
    if outcome.status not in (PAIR, SKIPPED, FAILED):
        return f"has status {outcome.status!r}, not one of {PAIR!r}, {SKIPPED!r}, {FAILED!r}"
    if not isinstance(outcome.reason, str) or not outcome.reason.strip() or "\n" in outcome.reason:
        return f"has reason {outcome.reason!r}, not a short code (non-empty text on one line)"
    if not isinstance(outcome.item_id, str) or outcome.item_id not in item_ids:
        return f"has item_id {outcome.item_id!r}, not the id of an item of the batch"
    if outcome.record_id is not None and not isinstance(outcome.record_id, str):
        return f"has record_id {outcome.record_id!r}, neither text nor None"
    if outcome.status == PAIR and (outcome.record_id is None or not isinstance(outcome.record, PreferenceRecord)):
        return "has status 'pair' without its record_id and PreferenceRecord"
    if not isinstance(outcome.detail, str) or not isinstance(outcome.info, dict):
        return "has a detail that is not text or info that is not a dict"
    return None


#: the options savi itself reads from a generator's ``config_class`` (beside the generator's own)
CONFIG_FIELDS = ("prompts",)


def config_class_problem(generator: type) -> str | None:
    """What makes a generator's ``config_class`` unusable by savi (not a dataclass, or one lacking a field of
    :data:`CONFIG_FIELDS`), or None."""
    config_class = getattr(generator, "config_class", None)
    if not (isinstance(config_class, type) and dataclasses.is_dataclass(config_class)):
        return f"is {config_class!r}, not a dataclass of the generator's options"
    missing = [name for name in CONFIG_FIELDS if name not in {f.name for f in dataclasses.fields(config_class)}]
    if missing:
        return (f"{config_class.__name__} lacks the field {missing[0]!r} savi reads (declare "
                f"'{missing[0]}: str | None = None': a prompts file that overrides the packaged templates)")
    return None


@dataclass
class BatchContext:
    """What a generator needs to know about the run while processing one batch.

    Attributes:
        seed: the run's seed.
        batch_index: this batch's global index, unique across the shards of a run (batch ``j`` of shard ``i`` of
            ``n``: ``j*n + i``, :func:`~savi_plugin.generators.runner.shard_items`).
        batch_size: the most sequences one ``generate`` call may take.
        meta: provenance every record's ``meta`` starts from (model, backend, seed, prompts version ...).
    """

    seed: int
    batch_index: int
    batch_size: int
    meta: dict[str, Any]


def stable_int(*parts: Any) -> int:
    """A 63-bit integer that depends only on ``parts`` (not on Python's per-process hash salt)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _perturbation_pipeline(value: Any) -> bool:
    """A valid pipeline (:func:`~savi_plugin.video.perturb.normalize_specs`) whose numbers follow the rule of every
    number (:func:`~savi_plugin.config.values.number_problem`: ``occlude:1e-39`` is below float32's normal range)."""
    from savi_plugin.config.values import number_problem
    from savi_plugin.video.perturb import normalize_specs

    for spec in normalize_specs(value):  # raises ValueError naming the perturbation and parameter
        for key, number in spec.items():
            problem = number_problem(number) if key != "name" else None
            if problem:
                raise ValueError(f"perturbation {spec['name']!r}: {key} {problem}")
    return True


#: rules for options that several generators share (by name: decoding, the perturbation pipeline); a generator's
#: options dataclass may declare its own rules for a field instead
DECODING_RULES = {"max_new_tokens": (AtLeast(1),), "tag_max_new_tokens": (AtLeast(1),),
                  "judge_max_new_tokens": (AtLeast(1),), "temperature": (Positive(),),
                  "top_p": (Range(0, 1, open_low=True),), "perturbations": (Check(_perturbation_pipeline),)}


def build_config(config_class: type, options: dict[str, Any] | None, generator: str, *,
                 prefix: str = "options", source: str | None = None):
    """Instantiate a generator's options dataclass from an options dict, through the project's one value check
    (:mod:`savi_plugin.config.values`): an unknown option, a wrong type, a value outside a field's rules or
    :data:`DECODING_RULES`, or a ``__post_init__`` refusal is a ``ConfigError`` (a ``ValueError``) naming
    ``source: prefix.option``."""
    register_rules(config_class, {name: rules for name, rules in DECODING_RULES.items()
                                  if name in {f.name for f in dataclasses.fields(config_class)}})
    return build(config_class, dict(options or {}), prefix, source or f"generator {generator!r}", what="option")


def jsonable(value: Any) -> Any:
    """``value`` as JSON (objects such as a scorer instance become their ``repr``)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


class Generator(abc.ABC):
    """Base class of the preference-data generators (registered under ``savi_plugin.generators``).

    Subclasses set :attr:`name`, :attr:`config_class` (a dataclass with a ``prompts`` field) and
    :attr:`prompt_fields`, and implement :meth:`process`. Their prompt templates ship in
    ``prompts/<name>.yaml`` beside the module that defines the class, so a generator in
    another distribution brings its own. A generator run by its registered name goes by that name
    (:func:`savi_plugin.generators.runner.resolve_generator` sets the instance's ``name`` to the entry's: records,
    their ids and the report say it), while its templates stay those of its class's :attr:`name`.

    Args:
        options: the config's fields as a dict, checked by :func:`build_config` (a bad one raises ``ConfigError``,
            a ``ValueError``).
    """

    name: ClassVar[str] = "base"
    config_class: ClassVar[type]
    #: template key -> the ``{fields}`` it may use (checked when a user overrides the prompts)
    prompt_fields: ClassVar[dict[str, set[str]]] = {}

    def __init__(self, options: dict[str, Any] | None = None):
        self.config = build_config(self.config_class, options, self.name)
        #: the prompts override as read (:func:`~savi_plugin.generators.prompts.read_override`), once: what the
        #: generator runs and what its run identity holds (:meth:`run_options`) are the same reading of the file
        self.prompt_override = read_override(self.config.prompts)
        self.prompts = load_prompts(type(self).name, self.config.prompts, fields=self.prompt_fields,
                                    module=type(self).__module__, read=self.prompt_override)

    @property
    def prompts_version(self) -> str:
        return str(self.prompts["version"])

    def describe(self) -> dict[str, Any]:
        """The config as JSON, with the prompts' version (for the run report and a dry run's recipe)."""
        out = jsonable(dataclasses.asdict(self.config))
        out["prompts_version"] = self.prompts_version
        return out

    def run_options(self) -> dict[str, Any]:
        """The options as a run's identity holds them (:meth:`describe`, what a resume must share): a prompts
        override by its parsed content (:func:`~savi_plugin.generators.prompts.override_identity`, the one rule),
        and the version without the override's digest (its content is compared key by key, so a refusal names
        the prompts that changed, not a hash)."""
        from savi_plugin.generators.prompts import CUSTOM, override_identity

        out = self.describe()
        if self.prompt_override is not None:
            _, data = self.prompt_override
            out["prompts"] = jsonable(override_identity(self.config.prompts, self.prompt_override))
            if "version" not in data:
                out["prompts_version"] = out["prompts_version"].rsplit(CUSTOM, 1)[0] + CUSTOM
        return out

    def check_prompts(self, tokenizer) -> None:
        """Refuse templates holding a control string of ``tokenizer`` (the loaded model's), before the first item
        (:func:`~savi_plugin.generators.prompts.check_control_strings`); None (a model without one): nothing."""
        if tokenizer is None:
            return
        from savi_plugin.models.backends.tokens import control_strings

        check_control_strings(self.prompts, control_strings(tokenizer), type(self).name, self.config.prompts,
                              type(self).__module__)  # the templates are the class's (prompts/<class name>.yaml)

    def clips_per_item(self) -> int:
        """How many clips of an item's size :meth:`process` holds at once (the runner's per-batch memory estimate,
        checked against ``$SAVI_MAX_BATCH_DECODED_BYTES`` before each batch is decoded)."""
        return 1

    #: the option that sets :meth:`clips_per_item`, for the refusal's message
    clips_option: ClassVar[str | None] = None

    def check_items(self, items: Sequence[InputItem]) -> None:
        """Raise :class:`~savi_plugin.data.DataError` if the inputs lack what this generator needs."""

    @classmethod
    def frames_problem(cls, config, num_frames: int) -> tuple[str, str] | None:
        """``(option, why)`` when the options ``config`` cannot work on clips of ``num_frames`` frames, or None;
        asked with the options' own checks (:func:`savi_plugin.recipe.check_generator_options`)."""
        return None

    def record_id(self, item_id: str, k: int) -> str:
        """The deterministic id of the ``k``-th record made from item ``item_id``."""
        return f"{item_id}-{self.name}-{k}"

    @abc.abstractmethod
    def process(self, lm, batch: Sequence[WorkItem], ctx: BatchContext) -> list[Outcome]:
        """Turn one batch into outcomes, in order: by item, then by ``k``."""


def generate_chunked(lm, videos: Sequence[np.ndarray], prompts: Sequence[str], *, batch_size: int, seed: int,
                     max_new_tokens: int, do_sample: bool, temperature: float, top_p: float) -> list[str]:
    """``lm.generate`` over ``prompts`` in chunks of at most ``batch_size`` sequences.

    Each chunk gets its own seed (``seed + chunk``) so sampled outputs do not depend on how many chunks
    came before in the same process.
    """
    out: list[str] = []
    for c, start in enumerate(range(0, len(prompts), max(1, batch_size))):
        stop = start + max(1, batch_size)
        out.extend(lm.generate(list(videos[start:stop]), list(prompts[start:stop]), max_new_tokens=max_new_tokens,
                               do_sample=do_sample, temperature=temperature, top_p=top_p,
                               seed=(seed + c) % (2**63)))
    if len(out) != len(prompts):
        raise RuntimeError(f"the backend returned {len(out)} answers for {len(prompts)} prompts")
    return out


registry.declare_kind(registry.GENERATORS, Generator)  # what a generator entry is (registry.load)

"""The typed recipe: one dataclass per section, each default defined here once.

A recipe file (``recipes/*.yaml``) is read into :class:`Recipe` by :func:`savi_plugin.recipe.load_recipe`;
every value is checked by :mod:`savi_plugin.config.values` (types from the annotations, ranges and choices from
the rules each field declares). Sections:

- ``model`` (:class:`ModelSection`), ``data`` (:class:`DataSection`), ``generate`` (:class:`GenerateSection`,
  whose ``options`` are checked against the generator's own options dataclass), ``lora`` (:class:`LoraSection`),
  ``eval`` (:class:`EvalSection`), ``align`` (:class:`AlignSection`);
- ``train``: keyword arguments of :class:`savi_plugin.training.config.PreferenceConfig` (a
  ``transformers.TrainingArguments``), checked key by key against that class (:mod:`savi_plugin.training.arguments`),
  whose defaults apply to every key a recipe does not set;
- ``reference_model``: a separate frozen reference checkpoint (default: the policy with its adapter disabled).

Fields whose metadata has ``path`` hold file system paths; a recipe file's relative paths are resolved against the
folder of that file (``path="model"``: only when it exists there or starts with ``./``/``../``, since a model path
may be a hub id). Shipped recipes are templates: their relative paths are relative to the working folder, except
their DeepSpeed configs, shipped beside them (:func:`savi_plugin.recipe.path_keys` lists every path key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from savi_plugin import registry
from savi_plugin.config.values import (
    AtLeast,
    Each,
    EvalLimit,
    FrameCount,
    Fraction,
    NonEmpty,
    OneOf,
    Positive,
    checked,
    rules,
)
from savi_plugin.data.readers import FORMATS
from savi_plugin.constants import DEFAULT_NUM_FRAMES, DTYPES
from savi_plugin.video.sampling import SAMPLING_RULES

#: ``lora.target_modules`` value meaning "every linear layer of the language model" (RRPO's LoRA placement)
ALL_LM_LINEAR = "all-linear-lm"


def _registered(group: str):
    return OneOf(lambda: registry.available(group), what=group.rsplit(".", 1)[-1].rstrip("s"))


def path_field(default: Any = None, *declared, kind: str = "file", help: str | None = None) -> Any:
    """A field holding a path (resolved against the recipe file's folder, see the module docstring)."""
    return field(default=default, metadata=rules(*declared, help=help, path=kind))


@dataclass
class ModelSection:
    """``model``: the checkpoint that generates and is trained."""

    path: str = field(metadata=rules(help="checkpoint folder, hub id, or tiny://<family> (a tiny random model "
                                          "built in the run folder)", path="model"))
    backend: str | None = checked(None, _registered(registry.BACKENDS),
                                  help="backend name; None: detected from the checkpoint's config.json")
    dtype: str = checked("float32", OneOf(*DTYPES, what="dtype"), help="precision the model is loaded in")
    num_frames: int = checked(DEFAULT_NUM_FRAMES, FrameCount(), help="frames decoded per video (generate and train)")
    source_checkpoint: str | None = checked(None, help="where path was converted from (documentation)")
    closest_native_checkpoint: str | None = checked(None, help="a transformers-native alternative (documentation)")


@dataclass
class DataSection:
    """``data``: what generation reads and training trains on."""

    videos: str | None = path_field(kind="any", help="a folder of unlabeled videos or a video manifest (videosavi)")
    qa: str | None = path_field(help="a video-QA JSONL manifest with ground truth, one object a line: video, "
                                           "question, answer (rrpo)")
    pairs: str | None = path_field(help="the preference file `savi train` trains on")
    format: str = checked("savi", OneOf(*FORMATS, what="format"), help="format of pairs")
    frame_rule: str = checked("uniform", OneOf(*SAMPLING_RULES, what="frame rule"),
                              help="training frames: uniform (linspace, last frame included) or interval "
                                   "(int(i * T / n), the official RRPO training loader)")
    data_root: str | None = path_field(kind="dir", help="relative video paths start here and may not leave it")


@dataclass
class GenerateSection:
    """``generate``: the preference-data generator and how the runner drives it."""

    generator: str = checked("rrpo", _registered(registry.GENERATORS), help="registered generator name")
    batch_size: int = checked(8, AtLeast(1), help="videos per batch and sequences per generate call")
    seed: int = checked(0, AtLeast(0), help="the run's seed (iteration i of `savi align` uses seed + i)")
    limit: int | None = checked(None, AtLeast(1), help="use only the first N inputs")
    options: dict[str, Any] = field(default_factory=dict, metadata=rules(
        help="the generator's own options (RRPOConfig / VideoSAViConfig fields), checked at load"))


@dataclass
class LoraSection:
    """``lora``: the peft LoRA adapter that training adds."""

    r: int = checked(8, AtLeast(1), help="rank")
    alpha: int = checked(16, Positive(), help="scaling numerator (lora_alpha)")
    dropout: float = checked(0.05, Fraction(), help="dropout on the adapter's input")
    target_modules: str | list[str] = checked(ALL_LM_LINEAR, NonEmpty(), Each(NonEmpty()),
                                              help=f"peft target_modules (module names, or a regex); "
                                                   f"{ALL_LM_LINEAR!r}: every linear layer of the language model")
    modules_to_save: list[str] | None = checked(None, help="modules trained in full beside the adapter")

    def peft_kwargs(self) -> dict[str, Any]:
        """The section in :func:`savi_plugin.training.run.apply_lora`'s terms (``target_modules`` None for
        :data:`ALL_LM_LINEAR`, which the trainer resolves through the backend)."""
        targets = None if self.target_modules == ALL_LM_LINEAR else self.target_modules
        out = {"r": self.r, "alpha": self.alpha, "dropout": self.dropout, "target_modules": targets}
        if self.modules_to_save is not None:
            out["modules_to_save"] = list(self.modules_to_save)
        return out


@dataclass
class EvalSection:
    """``eval``: the lmms-eval step (``savi_video`` model on our tasks)."""

    tasks: list[str] = field(default_factory=lambda: ["savi_mvbench"], metadata=rules(help="lmms-eval task names"))
    num_frames: int | None = checked(None, FrameCount(), help="frames per video; None: model.num_frames")
    limit: int | float | None = checked(None, EvalLimit(),
                                        help="lmms-eval --limit: N documents per task, or a fraction below 1")
    batch_size: int = checked(1, AtLeast(1), help="lmms-eval --batch_size")
    data_root: str | None = path_field(kind="dir", help="benchmark data in the SAVI_DATA_ROOT layout")
    max_new_tokens: int | None = checked(None, AtLeast(1), help="answer length; None: the model's default")


@dataclass
class AlignSection:
    """``align``: the iterative loop of ``savi align``."""

    iterations: int = checked(1, AtLeast(1), help="generate -> train -> merge -> eval rounds")
    eval_every_iteration: bool = checked(True, help="run the eval step after each iteration")


@dataclass
class Recipe:
    """A whole recipe; ``source`` is the file it was read from."""

    model: ModelSection
    description: str = ""
    notes: str = ""
    data: DataSection = field(default_factory=DataSection)
    generate: GenerateSection = field(default_factory=GenerateSection)
    lora: LoraSection = field(default_factory=LoraSection)
    reference_model: str | None = path_field(kind="model", help="a separate frozen reference checkpoint")
    train: dict[str, Any] = field(default_factory=dict, metadata=rules(help="PreferenceConfig keyword arguments"))
    eval: EvalSection = field(default_factory=EvalSection)
    align: AlignSection = field(default_factory=AlignSection)
    source: str = field(default="", init=False)

    @property
    def name(self) -> str:
        """The recipe's file name without ``.yaml``."""
        return self.source.rsplit("/", 1)[-1].removesuffix(".yaml") if self.source else "recipe"

    @property
    def seed(self) -> int:
        """The run's seed: ``train.seed`` (TrainingArguments' default 42 when unset)."""
        from transformers import TrainingArguments

        return int(self.train.get("seed", TrainingArguments.seed))

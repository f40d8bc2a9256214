"""The recipe's ``train`` section: ``PreferenceConfig`` keyword arguments, checked key by key.

The section's keys and types are those of :class:`savi_plugin.training.config.PreferenceConfig` (a
``transformers.TrainingArguments``), so its defaults stay where they are defined. Ranges come from the rules
the config's fields declare; for ``TrainingArguments``' own fields (a class we do not own) they are registered
here. :func:`build_training_args` constructs the real config (what ``--dry-run`` and training use).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
from pathlib import Path
from typing import Any

from savi_plugin.config.values import (
    AtLeast,
    Check,
    ConfigError,
    FLOAT32_TINY,
    FrameCount,
    NonNegative,
    OneOf,
    Positive,
    Probability,
    Range,
    Rule,
    build,
    check_mapping,
    register_rules,
)
from savi_plugin.data.files import read_document_text
from savi_plugin.losses.base import SHARED_FIELDS
from savi_plugin.training.scoring import load_loss

#: ``train`` keys that hold paths (resolved against the recipe file's folder like the sections' path fields)
TRAIN_PATHS = ("output_dir", "logging_dir", "reference_model_path", "data_root")

#: most data-loader worker processes a run may ask for (``train.dataloader_num_workers``)
MAX_DATALOADER_WORKERS = 256


def shipped_recipes_dir() -> Path:
    """The folder of recipes installed with the package (``recipes/`` in a source checkout)."""
    from importlib import resources

    return Path(str(resources.files("savi_plugin.recipes")))


def is_shipped_deepspeed_name(value: str) -> bool:
    """A bare name -- no folder, no suffix (``zero3``) -- names a DeepSpeed config shipped with the package, as a
    bare recipe name names a shipped recipe; anything else is a path."""
    return bool(value) and "/" not in value and os.sep not in value and not Path(value).suffix


def shipped_deepspeed_names() -> list[str]:
    return sorted(p.stem for p in (shipped_recipes_dir() / "deepspeed").glob("*.json"))


def resolve_deepspeed(config: str | dict | None) -> str | dict | None:
    """A DeepSpeed config: a dict as is; a bare name (``zero3``, :func:`is_shipped_deepspeed_name`) the shipped
    ``recipes/deepspeed/zero3.json``; a path as given (a recipe file's value is made absolute in the folder of the
    file that set it, :func:`savi_plugin.recipe.path_keys`; an override's is relative to the working folder), looked
    for there and nowhere else.

    Raises:
        FileNotFoundError: no such file (a bare name: no such shipped config).
    """
    if not config or isinstance(config, dict):
        return config
    config = str(config)
    if is_shipped_deepspeed_name(config):
        shipped = shipped_recipes_dir() / "deepspeed" / f"{config}.json"
        if shipped.is_file():
            return str(shipped)
        raise FileNotFoundError(f"no shipped deepspeed config named {config!r} (shipped: "
                                f"{', '.join(shipped_deepspeed_names())}; a file is named by its path)")
    if os.path.lexists(config):
        return config
    raise FileNotFoundError(f"deepspeed config not found: {config} (a shipped one is named by its bare name: "
                            f"{', '.join(shipped_deepspeed_names())})")


def _loads_trainer(name: str) -> bool:
    from savi_plugin.training.trainer import trainer_class

    trainer_class(name)  # a PluginError (a ValueError) naming the entry when it is no PreferenceTrainer
    return True


class DeepSpeedConfig(Rule):
    """A DeepSpeed config that :func:`resolve_deepspeed` finds, and that is a regular file (stat only)."""

    def problem(self, value: Any) -> str | None:
        from savi_plugin.data.files import file_problem

        try:
            found = resolve_deepspeed(str(value))
        except FileNotFoundError as exc:
            return str(exc)
        problem = file_problem(found, "deepspeed config")
        return None if problem is None else f"{value} {problem}"


@functools.cache
def config_class() -> type:
    """:class:`PreferenceConfig` with the value rules of its ``TrainingArguments`` fields registered."""
    from transformers import TrainingArguments

    from savi_plugin import registry
    from savi_plugin.data.readers import FORMATS
    from savi_plugin.training.config import (
        BAD_RECORD_POLICIES,
        REFERENCE_MODES,
        PreferenceConfig,
    )
    from savi_plugin.video.decode import BACKENDS as VIDEO_BACKENDS
    from savi_plugin.video.sampling import SAMPLING_RULES

    steps = Check(lambda v: v == -1 or v >= 1, "must be -1 (off) or >= 1")
    # transformers reads an interval below 1 as that fraction of the run's steps and refuses a fraction above 1 only
    # when it builds the config, naming its own flag (`--save_steps must be an integer ...`)
    interval = Check(lambda v: v < 1 or float(v).is_integer(),
                     "must be a whole number of steps, or below 1 for that fraction of the run's steps")
    # each data-loader worker is a process decoding clips with its own copy of the dataset: more than the largest
    # machines have cores only forks until memory runs out (4294967295 ran until killed and left orphans)
    register_rules(TrainingArguments, {
        "per_device_train_batch_size": [AtLeast(1)], "per_device_eval_batch_size": [AtLeast(1)],
        "gradient_accumulation_steps": [AtLeast(1)], "eval_accumulation_steps": [AtLeast(1)],
        "num_train_epochs": [Positive()], "max_steps": [steps], "learning_rate": [NonNegative()],
        "warmup_steps": [NonNegative()], "warmup_ratio": [Probability()], "weight_decay": [NonNegative()],
        "adam_beta1": [Range(0, 1, open_high=True)], "adam_beta2": [Range(0, 1, open_high=True)],
        "adam_epsilon": [Positive()], "max_grad_norm": [NonNegative()], "logging_steps": [Positive(), interval],
        "save_steps": [Positive(), interval], "eval_steps": [Positive(), interval], "save_total_limit": [AtLeast(1)],
        "seed": [AtLeast(0)], "data_seed": [AtLeast(0)],
        "dataloader_num_workers": [Range(0, MAX_DATALOADER_WORKERS)],
        "deepspeed": [DeepSpeedConfig()],
    })
    # PreferenceConfig's own fields; a field that declares rules in its metadata keeps those instead. The loss's
    # hyper-parameters (beta, alpha, label_smoothing, loss_options) are checked by the loss's own Params.
    register_rules(PreferenceConfig, {
        "loss_type": [OneOf(lambda: registry.available(registry.LOSSES), what="loss")],
        "trainer": [OneOf(lambda: registry.available(registry.TRAINERS), what="trainer"), Check(_loads_trainer)],
        "reference": [OneOf(*REFERENCE_MODES, what="reference mode")],
        "num_frames": [FrameCount()], "max_length": [AtLeast(2)], "logprob_chunk_size": [AtLeast(1)],
        "diagnostics_steps": [AtLeast(1)],
        "video_backend": [OneOf(*VIDEO_BACKENDS, what="video backend")],
        "data_format": [OneOf(*FORMATS, what="format")],
        "frame_rule": [OneOf(*SAMPLING_RULES, what="frame rule")],
        "bad_records": [OneOf(*BAD_RECORD_POLICIES, what="policy")],
    })
    return PreferenceConfig


def train_default(name: str) -> Any:
    """The default of one ``train`` key (the config class's field default)."""
    for f in dataclasses.fields(config_class()):
        if f.name == name:
            return f.default if f.default is not dataclasses.MISSING else f.default_factory()
    raise KeyError(name)


def check_train(train: dict[str, Any], prefix: str = "train", source: str | None = None) -> dict[str, Any]:
    """Check ``train`` keys, types and ranges against the config class without building it (no hardware
    checks); returns the mapping with numbers widened (``1`` -> ``1.0`` for a float field)."""
    train = check_mapping(config_class(), train, prefix, source)
    check_loss(train, prefix, source)
    check_float32_range(train, prefix, source)
    return train




def check_float32_range(train: dict[str, Any], prefix: str = "train", source: str | None = None) -> None:
    """Refuse a non-zero number of the ``train`` section (``loss_options`` included) below
    :data:`FLOAT32_TINY` in magnitude: positive in Python's float64, it is 0 or imprecise where training computes.

    Raises:
        ConfigError: at the key path, naming the value and the bound.
    """
    stack = [(prefix, train)]
    while stack:
        path, mapping = stack.pop()
        for key, value in mapping.items():
            if isinstance(value, dict):
                stack.append((f"{path}.{key}", value))
            elif isinstance(value, float) and value != 0 and abs(value) < FLOAT32_TINY:
                raise ConfigError(f"{path}.{key}", f"{value!r} is below float32's smallest normal number "
                                                   f"({FLOAT32_TINY:.2e}): training computes in float32 or lower, "
                                                   f"where it reads as 0 or loses its precision", source)


def check_loss(train: dict[str, Any], prefix: str = "train", source: str | None = None) -> None:
    """The loss's hyper-parameters (``beta``, ``alpha``, ``label_smoothing``, ``loss_options``) checked against
    the declaration of the loss that ``loss_type`` names (its ``Params`` dataclass)."""
    from savi_plugin.registry import PluginError

    loss_type = train.get("loss_type", train_default("loss_type"))
    shared = {key: train.get(key) for key in SHARED_FIELDS}
    try:
        loss = load_loss(loss_type)
        declared = {f.name for f in dataclasses.fields(loss.Params)}
        unused = [key for key, value in shared.items() if value is not None and key not in declared]
        by_origin: dict[str, list[str]] = {}  # named where each was set: the recipe, an override, --options
        for key in unused:
            origin = source.origin_of(f"{prefix}.{key}") if hasattr(source, "origin_of") else source or prefix
            by_origin.setdefault(origin, []).append(key)
        for origin, keys in by_origin.items():  # allowed (one recipe serves several losses, e.g. savi ablate)
            _warn_once(f"{origin}: {', '.join(f'{prefix}.{k}={shared[k]!r}' for k in keys)} "
                       f"{'is' if len(keys) == 1 else 'are'} not used by loss {loss_type!r} (it reads "
                       f"{', '.join(sorted(declared & set(SHARED_FIELDS))) or 'none of beta, alpha, label_smoothing'})")
        loss.params(shared, train.get("loss_options"))
    except ConfigError as exc:
        raise exc.located(source, prefix) from None
    except PluginError as exc:  # the entry cannot be used: the line names it and why
        raise ConfigError(f"{prefix}.loss_type", str(exc), source) from None
    except (ImportError, TypeError, ValueError, LookupError) as exc:
        raise ConfigError(f"{prefix}.loss_type", f"{type(exc).__name__}: {exc}", source) from None


def resolved_loss_params(train: dict[str, Any]) -> dict[str, Any]:
    """The ``Params`` of the loss that a ``train`` section names, resolved -- its defaults included -- as plain
    data: what the loss computes with, which a run's identity holds (a default changed in a new release of the
    loss is another configuration)."""
    from savi_plugin.config.values import to_dict

    loss = load_loss(train.get("loss_type", train_default("loss_type")))
    return to_dict(loss.params({key: train.get(key) for key in SHARED_FIELDS}, train.get("loss_options")))


@functools.cache
def _warn_once(message: str) -> None:
    """A recipe is checked several times per command (load, dry run, the run): its warning is said once."""
    logging.getLogger(__name__).warning(message)


def _read_deepspeed(config: str | dict, prefix: str, source: str | None) -> dict | None:
    """Refuse a DeepSpeed config file that is not JSON (transformers' own message names no file), or that the
    untrusted-input boundary refuses (a key given twice, which ``json`` would resolve silently to the last)."""
    from savi_plugin.untrusted import load_json

    if isinstance(config, str):
        from savi_plugin.data.files import file_problem

        problem = file_problem(resolve_deepspeed(config), "DeepSpeed JSON config")  # a FIFO is never opened
        if problem is not None:
            raise ConfigError(f"{prefix}.deepspeed", f"{config}: {problem}", source)
        try:
            text = read_document_text(resolve_deepspeed(config))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{prefix}.deepspeed", f"{config}: not a DeepSpeed JSON config ({exc})", source) from None

        def refuse(message: str, line: int | None = None) -> ConfigError:
            where = f" line {line}" if line else ""
            return ConfigError(f"{prefix}.deepspeed", f"{config}{where}: not a DeepSpeed JSON config ({message})",
                               source)

        doc = load_json(text, config, error=refuse)
        _check_deepspeed_values(doc, f"{prefix}.deepspeed", config, source)
        return doc
    _check_deepspeed_values(config, f"{prefix}.deepspeed", None, source)
    return config


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 2**32 - 1


def _is_clip(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


#: the DeepSpeed values a config must get right before a model is loaded (DeepSpeed itself refuses them only once
#: the engine starts, naming no file): key path -> (test, what it must be); ``"auto"`` is transformers' fill-in
DEEPSPEED_VALUES = {
    "zero_optimization.stage": (lambda v: v in (0, 1, 2, 3) and not isinstance(v, bool), "0, 1, 2 or 3"),
    "gradient_clipping": (_is_clip, "a finite number >= 0 or \"auto\""),
    "train_batch_size": (_is_count, "a whole number >= 1 or \"auto\""),
    "train_micro_batch_size_per_gpu": (_is_count, "a whole number >= 1 or \"auto\""),
    "gradient_accumulation_steps": (_is_count, "a whole number >= 1 or \"auto\""),
    "zero_optimization.offload_optimizer.device": (lambda v: v in ("cpu", "nvme", "none"), "cpu, nvme or none"),
    "zero_optimization.offload_param.device": (lambda v: v in ("cpu", "nvme", "none"), "cpu, nvme or none"),
}


def _check_deepspeed_values(doc: Any, key: str, file: str | None, source: str | None) -> None:
    """Refuse a DeepSpeed config that is not a mapping, or one of :data:`DEEPSPEED_VALUES` out of its range, at
    ``key`` naming the file and the field (``ds.json: zero_optimization.stage: must be 0, 1, 2 or 3, got 7``)."""
    where = f"{file}: " if file else ""
    if not isinstance(doc, dict):
        raise ConfigError(key, f"{where}not a DeepSpeed JSON config (expected an object, got "
                               f"{type(doc).__name__})", source)
    for path, (test, what) in DEEPSPEED_VALUES.items():
        value: Any = doc
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None or value == "auto":
            continue
        if not test(value):
            raise ConfigError(key, f"{where}{path}: must be {what}, got {value!r}", source)


def build_training_args(kwargs: dict[str, Any], output_dir: str, source: str | None = None, prefix: str = "train"):
    """The real :class:`PreferenceConfig` from ``kwargs`` (checked first); its own ``__post_init__`` errors
    (e.g. ``bf16`` without hardware for it) become :class:`ConfigError` at ``prefix``."""
    kwargs = dict(kwargs)
    doc = None
    if kwargs.get("deepspeed"):
        kwargs["deepspeed"] = resolve_deepspeed(kwargs["deepspeed"])
        doc = _read_deepspeed(kwargs["deepspeed"], prefix, source)
    try:
        args = build(config_class(), {**kwargs, "output_dir": str(output_dir)}, prefix, source)
    except ConfigError:
        raise
    except (ImportError, RuntimeError, OSError) as exc:
        raise ConfigError(prefix, f"{type(exc).__name__}: {str(exc).splitlines()[0]}", source) from None
    if isinstance(doc, dict):
        _check_deepspeed_agrees(doc, args, prefix, kwargs["deepspeed"] if isinstance(kwargs["deepspeed"], str)
                                else None, source)
    return args


#: DeepSpeed values that must equal a training argument when not ``"auto"`` (transformers refuses a mismatch once
#: the Trainer starts, after the model loaded, naming neither file nor key): DeepSpeed key -> training key
DEEPSPEED_MIRRORS = {"gradient_clipping": "max_grad_norm",
                     "train_micro_batch_size_per_gpu": "per_device_train_batch_size",
                     "gradient_accumulation_steps": "gradient_accumulation_steps"}


def _check_deepspeed_agrees(doc: dict, args, prefix: str, file: str | None, source: str | None) -> None:
    """Refuse a DeepSpeed value of :data:`DEEPSPEED_MIRRORS` that contradicts the training argument it mirrors.

    Raises:
        ConfigError: at ``<prefix>.deepspeed``, naming the file, both keys and both values.
    """
    for ds_key, train_key in DEEPSPEED_MIRRORS.items():
        value, mirrored = doc.get(ds_key), getattr(args, train_key, None)
        if value is None or value == "auto" or mirrored is None or float(value) == float(mirrored):
            continue
        where = f"{file}: " if file else ""
        raise ConfigError(f"{prefix}.deepspeed", f"{where}{ds_key}: {value!r}, but {prefix}.{train_key} is "
                                                 f"{mirrored!r}: transformers refuses a DeepSpeed value that "
                                                 f"contradicts the training arguments; make them equal, or write "
                                                 f"\"auto\" in the DeepSpeed config", source)


def training_kwargs(recipe, **overrides) -> dict[str, Any]:
    """A recipe's ``train`` section as PreferenceConfig keyword arguments, with what other sections decide
    (frames and their rule, data root and format of the pairs); ``output_dir`` is left to the caller."""
    train = dict(recipe.train)
    train.pop("output_dir", None)
    if train.get("deepspeed"):
        train["deepspeed"] = resolve_deepspeed(train["deepspeed"])
    train.setdefault("num_frames", recipe.model.num_frames)
    train.setdefault("data_format", recipe.data.format)
    train.setdefault("frame_rule", recipe.data.frame_rule)
    if recipe.data.data_root:  # the recipe's data root confines the pairs' video paths
        train.setdefault("data_root", recipe.data.data_root)
    train.update(overrides)
    return train


def precision_problems(kwargs: dict[str, Any]) -> list[tuple[str, str]]:
    """The precision keys of ``kwargs`` (a recipe's ``train`` values) this machine cannot honour, as
    ``(key, why)``: the one rule the dry run notes and the real run refuses (:func:`recipe_training_args`).

    ``bf16``/``bf16_full_eval`` need a GPU with bf16 (transformers refuses them otherwise, unless ``use_cpu``
    asks for CPU bf16 autocast); ``fp16``/``fp16_full_eval`` need a CUDA GPU (on the CPU accelerate would train
    in float32 unsaid); ``tf32`` needs an Ampere or newer GPU (transformers refuses it otherwise)."""
    import torch

    cuda = torch.cuda.is_available()
    problems = []
    for key in ("bf16", "bf16_full_eval"):
        if kwargs.get(key) and not kwargs.get("use_cpu") and not (cuda and torch.cuda.is_bf16_supported()):
            problems.append((key, "this machine has no GPU with bf16" if cuda else "this machine has no GPU"))
    for key in ("fp16", "fp16_full_eval"):
        if kwargs.get(key) and not cuda:
            problems.append((key, "this machine has no GPU (on the CPU fp16 would not be used)"))
    if kwargs.get("tf32"):
        from transformers.utils import is_torch_tf32_available

        if not is_torch_tf32_available():
            problems.append(("tf32", "this machine has no GPU with tf32 (Ampere or newer)"))
    return problems


def launcher_problems(kwargs: dict[str, Any]) -> list[tuple[str, str]]:
    """What a launcher's job of several processes (:func:`savi_plugin.launch.current`) cannot do with ``kwargs`` (a
    recipe's ``train`` values) on this machine, as ``(key, why)``: the rule the dry run notes and the real run
    refuses, beside :func:`precision_problems` (:func:`recipe_training_args`).

    Without a CUDA GPU, transformers joins the processes into one DDP job (gloo) only when ``train.use_cpu`` is
    true (or ``accelerate launch --cpu`` set ``ACCELERATE_USE_CPU``); otherwise each process trains alone on every
    pair, at its own batch, and all of them write the one output folder."""
    import torch

    from savi_plugin.launch import current

    process = current()
    cpu = os.environ.get("ACCELERATE_USE_CPU", "").strip().lower() in ("1", "true", "yes", "y", "on", "t")
    if not process.distributed or kwargs.get("use_cpu") or cpu or torch.cuda.is_available():
        return []
    n = process.world_size
    return [("use_cpu", f"{process.launcher} started {n} processes and this machine has no GPU: without it each "
                        f"would train alone on every pair and write the same output folder; set train.use_cpu=true "
                        f"to train the {n} processes together on the CPU (gloo)")]


def recipe_training_args(recipe, output_dir: str | Path, notes: list[str] | None = None, *, strict: bool = False,
                         **overrides):
    """The real :class:`PreferenceConfig` of a recipe's train step.

    With ``strict`` False (recipe load, ``--dry-run``), what this machine lacks is checked around and said in
    ``notes``: precision keys it cannot honour (:func:`precision_problems`), a launcher's processes it cannot
    join (:func:`launcher_problems`), and a DeepSpeed config without the ``deepspeed`` package (its file is still
    read as JSON); the rest must build as written. With ``strict``
    (before a real run: :func:`check_trainable_here`) each of them is a :class:`ConfigError` at its key.
    """
    import importlib.util

    kwargs = training_kwargs(recipe, **overrides)
    notes = notes if notes is not None else []
    if kwargs.get("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        if strict:
            raise ConfigError("train.deepspeed", "needs the deepspeed package: pip install 'savi-plugin[deepspeed]' "
                              "(or train.deepspeed=null for a run without it)", recipe.source)
        _read_deepspeed(kwargs["deepspeed"], "train", recipe.source)
        kwargs["deepspeed"] = None
        notes.append("train.deepspeed: the deepspeed package is not installed here; the file was read, the rest "
                     "checked without it")
    for key, why in launcher_problems(kwargs):
        if strict:
            raise ConfigError(f"train.{key}", why, recipe.source)
        kwargs[key] = True  # built as the launched run must be (a process group of its own per rank is not)
        notes.append(f"train.{key}: {why}; checked with it (the real run refuses it here)")
    for key, why in precision_problems(kwargs):
        if strict:
            remedy = " (or train.use_cpu=true for bf16 on the CPU)" if key.startswith("bf16") else ""
            raise ConfigError(f"train.{key}", f"{why}; set train.{key}=false to train without it{remedy}",
                              recipe.source)
        kwargs[key] = False
        notes.append(f"train.{key}: {why}; checked without it (the real run refuses it here)")
    return build_training_args(kwargs, str(output_dir), recipe.source)


def check_trainable_here(recipe, output_dir: str | Path, **overrides) -> None:
    """Refuse, before anything is loaded or written, a recipe whose train step this machine cannot run (what the
    dry run notes): every command that trains (``savi train``, ``align``, ``ablate``, ``demo``) asks it.

    Raises:
        ConfigError: at the recipe key (``train.bf16``, ``train.use_cpu``, ``train.deepspeed`` ...), naming the
            recipe file.
    """
    forget_deepspeed(recipe_training_args(recipe, output_dir, strict=True, **overrides))


def check_training_args(recipe) -> None:
    """Build (and drop) the recipe's training arguments, so what the train step would refuse fails at load."""
    import warnings

    with warnings.catch_warnings():  # deprecation notes of transformers belong to the run, not to every load
        warnings.simplefilter("ignore")
        forget_deepspeed(recipe_training_args(recipe, recipe.train.get("output_dir") or "savi_runs/train"))


def forget_deepspeed(args) -> None:
    """Drop the process-wide DeepSpeed configuration transformers registered while ``args`` was built.

    Building ``TrainingArguments`` with a DeepSpeed file registers it for the whole process: every later
    ``from_pretrained`` then builds its model inside ZeRO-3's ``zero.Init`` (which needs a launcher's
    ``LOCAL_RANK``). Arguments built only to be checked (recipe load, ``--dry-run``, the check before a run) must
    not leave that behind; the run builds its own."""
    if getattr(args, "hf_deepspeed_config", None) is not None:
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        unset_hf_deepspeed_config()

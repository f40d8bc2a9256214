"""The public API for plugin authors: everything a third-party loss, generator, backend, trainer or benchmark
imports from savi-plugin, in one module.

Import from here, not from the modules behind it (``from savi_plugin.api import PreferenceLoss, checked``): the
names below keep their meaning within a 0.x minor series, and one that changes or goes is first kept for one
minor release with a ``DeprecationWarning`` naming its replacement. Every other module is internal and may
change in any release. Names are resolved when first used, so importing this module loads nothing heavy.

What each extension point needs (README, "Extending"; docs/ARCHITECTURE.md, "How to add ..."):

* a loss: a :class:`PreferenceLoss` instance with a frozen ``Params`` dataclass (fields from :func:`checked`),
  ``requirements(params) -> Requirements`` and ``compute(inputs, params) -> LossOutput``; entry point group
  ``savi_plugin.losses``;
* a generator: a :class:`Generator` subclass (``name``, ``config_class``, ``prompt_fields``, ``process``) whose
  templates ship in ``prompts/<name>.yaml`` beside its module; group ``savi_plugin.generators``;
* a backend: a :class:`VideoLM` subclass (``family``, ``model_types`` and the hooks that differ); group
  ``savi_plugin.backends``;
* a trainer: a :class:`PreferenceTrainer` subclass, chosen by a recipe's ``train.trainer``; group
  ``savi_plugin.trainers``;
* a benchmark: a :class:`Benchmark` (a :class:`BenchmarkSpec`, its :class:`Protocol` objects and the folder of its
  lmms-eval task YAMLs); group ``savi_plugin.benchmarks`` (``eval_tasks/README.md``, "Adding a benchmark").
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_EXPORTS = {
    # registries
    "BACKENDS": "savi_plugin.registry", "GENERATORS": "savi_plugin.registry", "LOSSES": "savi_plugin.registry",
    "TRAINERS": "savi_plugin.registry", "BENCHMARKS": "savi_plugin.registry", "available": "savi_plugin.registry", "load": "savi_plugin.registry",
    "PluginNotFoundError": "savi_plugin.registry",
    # checked values (config.values: declared rules and their checker)
    "checked": "savi_plugin.config.values", "ConfigError": "savi_plugin.config.values",
    "Range": "savi_plugin.config.values", "Positive": "savi_plugin.config.values",
    "NonNegative": "savi_plugin.config.values", "AtLeast": "savi_plugin.config.values",
    "Probability": "savi_plugin.config.values", "OneOf": "savi_plugin.config.values",
    "Check": "savi_plugin.config.values",
    # data
    "PreferenceRecord": "savi_plugin.data.record", "DataError": "savi_plugin.data.record",
    # losses
    "PreferenceLoss": "savi_plugin.losses.base", "Requirements": "savi_plugin.losses.base",
    "SequenceInputs": "savi_plugin.losses.base", "TokenInputs": "savi_plugin.losses.base",
    "LossOutput": "savi_plugin.losses.base", "weighted_mean": "savi_plugin.losses.base",
    # generators
    "Generator": "savi_plugin.generators.base", "WorkItem": "savi_plugin.generators.base",
    "Outcome": "savi_plugin.generators.base", "BatchContext": "savi_plugin.generators.base",
    "PAIR": "savi_plugin.generators.base", "SKIPPED": "savi_plugin.generators.base",
    "FAILED": "savi_plugin.generators.base",
    "generate_chunked": "savi_plugin.generators.base", "render": "savi_plugin.generators.prompts",
    "InputItem": "savi_plugin.generators.inputs",
    # models
    "VideoLM": "savi_plugin.models.backends.base", "load_backend": "savi_plugin.models",
    # training
    "PreferenceTrainer": "savi_plugin.training.trainer", "PreferenceConfig": "savi_plugin.training.config",
    "run_training": "savi_plugin.training.run",
    # benchmarks (lmms-eval tasks)
    "Benchmark": "savi_plugin.eval.benchmarks", "BenchmarkSpec": "savi_plugin.eval.data",
    "Protocol": "savi_plugin.eval.protocols", "PROTOCOLS": "savi_plugin.eval.protocols",
    "PromptFormat": "savi_plugin.eval.answers",
    # video
    "read_frames": "savi_plugin.video.decode", "VideoDecodeError": "savi_plugin.video.decode",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'savi_plugin.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

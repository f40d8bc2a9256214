"""Recipe -> one pipeline step (generate, train). ``savi train``, ``savi align`` and ``savi demo`` use these.

Each function takes a checked :class:`~savi_plugin.config.sections.Recipe` (:func:`savi_plugin.recipe.load_recipe`)
plus explicit paths for what changes between iterations (the model that generates, the pairs it trains on, where
it writes). The ``plan_*`` functions build a step's real configuration objects without loading any weights
(``--dry-run``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from savi_plugin.config.sections import Recipe
from savi_plugin.training.arguments import (
    recipe_training_args,
    resolve_deepspeed,
    training_kwargs,
)

log = logging.getLogger(__name__)

__all__ = ["generate_step", "plan_generate", "plan_train", "resolve_deepspeed", "train_output_dir", "train_step",
           "training_kwargs"]


def train_output_dir(recipe: Recipe, flag: str | Path | None) -> str | Path:
    """Where the train step writes: ``--output-dir`` (``flag``), else the recipe's ``train.output_dir``. Neither,
    or an empty one (``output_dir: ''``), is a configuration error at ``train.output_dir``: asked once, before
    ``savi train`` branches into its dry run, so the dry run refuses what the run refuses."""
    from savi_plugin.config.values import ConfigError

    output_dir = flag or recipe.train.get("output_dir")
    if not output_dir:
        raise ConfigError("train.output_dir", "required (or --output-dir)", recipe.source)
    return output_dir


def train_step(recipe: Recipe, *, model: str | Path, data: str | Path, output_dir: str | Path,
               resume: bool | str = False, print_logs: bool = True, allow_incomplete_data: bool = False,
               **overrides) -> dict:
    """Train on preference pairs as the recipe says; returns the trainer's summary (``print_logs``: see
    :func:`~savi_plugin.training.run.run_training`)."""
    from savi_plugin.training.run import run_training

    return run_training(
        model=str(model), data=str(data), output_dir=str(output_dir), backend=recipe.model.backend,
        lora=recipe.lora.peft_kwargs(), training=training_kwargs(recipe, **overrides),
        reference_model=recipe.reference_model, resume=resume, print_logs=print_logs,
        allow_incomplete_data=allow_incomplete_data,
    )


def generate_step(recipe: Recipe, *, model: Any, inputs: str | Path, output: str | Path,
                  adapter: str | Path | None = None, seed: int | None = None) -> dict:
    """Generate preference pairs with the recipe's generator and its options; returns the run report."""
    from savi_plugin.generators import run_generation

    gen = recipe.generate
    return run_generation(
        generator=gen.generator, model=model if not isinstance(model, Path) else str(model), inputs=str(inputs),
        output=str(output), backend=recipe.model.backend, num_frames=recipe.model.num_frames,
        batch_size=gen.batch_size, seed=gen.seed if seed is None else seed, limit=gen.limit,
        options=dict(gen.options), adapter=str(adapter) if adapter else None, data_root=recipe.data.data_root,
        dtype=recipe.model.dtype,
    )


def plan_generate(recipe: Recipe):
    """The recipe's generator, constructed with its options (prompts loaded and checked), no model loaded."""
    from savi_plugin.generators.runner import resolve_generator

    try:
        return resolve_generator(recipe.generate.generator, dict(recipe.generate.options))
    except ValueError as exc:
        from savi_plugin.config.values import ConfigError

        if isinstance(exc, ConfigError):
            raise ConfigError(exc.path.replace("options", "generate.options", 1), exc.message, recipe.source) from None
        raise ConfigError("generate.options", str(exc), recipe.source) from None


def plan_train(recipe: Recipe, output_dir: str | Path, *, hardware_notes: list[str] | None = None, **overrides):
    """The training arguments (:class:`PreferenceConfig`) and the peft ``LoraConfig`` of the train step.

    Precision keys the machine cannot honour (:func:`~savi_plugin.training.arguments.precision_problems`, which
    the real run refuses) are checked without them and said in ``hardware_notes``; everything else must build as
    written.
    """
    from savi_plugin.training.run import lora_config

    from savi_plugin.training.arguments import forget_deepspeed

    args = recipe_training_args(recipe, output_dir, hardware_notes, **overrides)
    forget_deepspeed(args)  # a plan: the run builds its own
    return args, lora_config(recipe.lora.peft_kwargs())

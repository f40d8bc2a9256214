"""Recipe -> one pipeline step (generate, train, eval). ``savi train``, ``savi align`` and ``savi demo`` use these.

Each function takes the validated recipe mapping (:func:`savi_plugin.recipe.load_recipe`) plus explicit
paths for what changes between iterations (the model that generates, the pairs it trains on, where it writes).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from savi_plugin.recipe import shipped_recipes_dir

log = logging.getLogger(__name__)

# Recipes say "all-linear-lm" for "every linear layer of the language model" (RRPO's LoRA placement);
# the trainer's default target selection implements exactly that, so the keyword maps to None.
_ALL_LM_LINEAR = "all-linear-lm"


def resolve_deepspeed(config: str | None) -> str | None:
    """A DeepSpeed JSON path: as given if it exists, else relative to the shipped recipes folder."""
    if not config:
        return None
    if Path(config).is_file():
        return config
    shipped = shipped_recipes_dir() / config
    if shipped.is_file():
        return str(shipped)
    raise FileNotFoundError(f"deepspeed config {config!r} not found (also looked in {shipped_recipes_dir()})")


def lora_kwargs(recipe: dict) -> dict[str, Any] | None:
    """The recipe's ``lora`` section in the trainer's terms."""
    lora = copy.deepcopy(recipe.get("lora"))
    if lora is None:
        return None
    if lora.get("target_modules") == _ALL_LM_LINEAR:
        lora["target_modules"] = None
    return lora


def training_kwargs(recipe: dict, **overrides) -> dict[str, Any]:
    """The recipe's ``train`` section as PreferenceConfig keyword arguments."""
    train = copy.deepcopy(recipe.get("train", {}))
    train.pop("output_dir", None)  # run_training sets it from its own argument
    if train.get("deepspeed"):
        train["deepspeed"] = resolve_deepspeed(train["deepspeed"])
    train.setdefault("num_frames", recipe["model"].get("num_frames", 32))
    if (recipe.get("data") or {}).get("data_root"):  # the recipe's data root confines the pairs' video paths
        train.setdefault("data_root", recipe["data"]["data_root"])
    train.update(overrides)
    return train


def train_step(recipe: dict, *, model: str | Path, data: str | Path, output_dir: str | Path,
               resume: bool | str = False, **overrides) -> dict:
    """Train on preference pairs as the recipe says; returns the trainer's summary."""
    from savi_plugin.training.run import run_training

    return run_training(
        model=str(model), data=str(data), output_dir=str(output_dir),
        backend=recipe["model"].get("backend"), lora=lora_kwargs(recipe),
        training=training_kwargs(recipe, **overrides),
        reference_model=recipe.get("reference_model"), resume=resume,
    )


def generate_step(recipe: dict, *, model: str | Path, inputs: str | Path, output: str | Path,
                  adapter: str | Path | None = None, seed: int | None = None) -> dict:
    """Generate preference pairs with the recipe's generator; returns the run report."""
    from savi_plugin.generators import run_generation

    gen = recipe.get("generate", {})
    return run_generation(
        generator=gen.get("generator", "rrpo"), model=str(model), inputs=str(inputs), output=str(output),
        backend=recipe["model"].get("backend"), num_frames=recipe["model"].get("num_frames", 32),
        batch_size=gen.get("batch_size", 8), seed=gen.get("seed", 0) if seed is None else seed,
        limit=gen.get("limit"), options=dict(gen.get("options") or {}, max_new_tokens=gen.get("max_new_tokens", 128)),
        adapter=str(adapter) if adapter else None, data_root=(recipe.get("data") or {}).get("data_root"),
        dtype=recipe["model"].get("dtype", "float32"),
    )

"""Recipes: YAML files that name the model, data, generator, loss, trainer arguments, DeepSpeed config
and eval tasks of one run (torchtune-style: copy one, edit it, run it).

- ``extends: other.yaml`` inherits another recipe (a path relative to this one, or a shipped recipe name);
  mappings merge key by key, anything else is replaced.
- ``key.sub=value`` overrides on the command line (the value is parsed as YAML: ``train.beta=0.2``).
- Unknown keys and wrong types are rejected with the key's path (``recipe.yaml: train.bta: unknown key``).
- Files are read with ``yaml.safe_load`` only.
"""

from __future__ import annotations

import copy
import dataclasses
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

NONE = type(None)

#: The recipe schema: a mapping is a section; a tuple lists the accepted types; ``"train"`` is checked
#: against :class:`savi_plugin.training.config.PreferenceConfig` (a ``transformers.TrainingArguments``).
SCHEMA: dict[str, Any] = {
    "description": (str,),
    "extends": (str,),
    "notes": (str,),
    "model": {
        # trust_remote_code is deliberately not a recipe key: remote code runs only when a user passes
        # the flag on a command line, never because a copied YAML said so.
        "path": (str,), "backend": (str, NONE), "dtype": (str,), "num_frames": (int,), "adapter": (str, NONE),
        "source_checkpoint": (str, NONE), "closest_native_checkpoint": (str, NONE),
    },
    "data": {
        "videos": (str, NONE), "qa": (str, NONE), "pairs": (str, NONE), "format": (str,),
        "data_root": (str, NONE), "synthetic_videos": (int, NONE), "synthetic_eval_videos": (int, NONE),
    },
    "generate": {
        "generator": (str,), "batch_size": (int,), "seed": (int,), "limit": (int, NONE),
        "max_new_tokens": (int,), "options": (dict,),
    },
    "lora": {"r": (int,), "alpha": (int,), "dropout": (float, int), "target_modules": (str, list)},
    "reference_model": (str, NONE),
    "train": "PreferenceConfig",
    "eval": {
        "tasks": (list,), "num_frames": (int,), "limit": (int, float, NONE), "batch_size": (int,),
        "data_root": (str, NONE), "max_new_tokens": (int,),
    },
    "align": {"iterations": (int,), "eval_every_iteration": (bool,)},
    "demo": {"warmup_steps": (int,), "warmup_lr": (float,), "compare_dpo": (bool,), "eval_questions": (int, NONE)},
}


class RecipeError(ValueError):
    """A bad recipe; the message starts with ``file: key.path:``."""


def shipped_recipes_dir() -> Path:
    """The folder of recipes installed with the package (``recipes/`` in a source checkout)."""
    return Path(str(resources.files("savi_plugin.recipes")))


def list_recipes() -> list[str]:
    """Names (without ``.yaml``) of the shipped recipes."""
    return sorted(p.stem for p in shipped_recipes_dir().glob("*.yaml"))


def resolve_recipe_path(name_or_path: str | Path, relative_to: Path | None = None) -> Path:
    """A recipe file: an existing path, a path relative to ``relative_to``, or a shipped recipe name."""
    candidates = [Path(name_or_path)]
    if relative_to is not None:
        candidates.insert(0, relative_to / name_or_path)
    stem = Path(name_or_path).name.removesuffix(".yaml")
    candidates.append(shipped_recipes_dir() / f"{stem}.yaml")
    for c in candidates:
        if c.is_file():
            return c
    raise RecipeError(f"{name_or_path}: no such recipe file or shipped recipe "
                      f"(shipped: {', '.join(list_recipes())})")


def _merge(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    if path.resolve() in seen:
        raise RecipeError(f"{path}: extends: circular ({' -> '.join(str(p) for p in seen)})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping, got {type(data).__name__}")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise RecipeError(f"{path}: extends: expected a recipe name or path")
    return _merge(_read(resolve_recipe_path(parent, path.parent), seen + (path.resolve(),)), data)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.beta=0.2"`` -> ``(["train", "beta"], 0.2)`` (the value parsed as YAML)."""
    if "=" not in text:
        raise RecipeError(f"override {text!r}: expected key.path=value")
    key, value = text.split("=", 1)
    if not key.strip():
        raise RecipeError(f"override {text!r}: empty key")
    return key.strip().split("."), yaml.safe_load(value) if value.strip() else None


def apply_overrides(recipe: dict, overrides: list[str]) -> dict:
    """Set each ``key.path=value`` in a copy of ``recipe``."""
    out = copy.deepcopy(recipe)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise RecipeError(f"override {text!r}: {k} is not a section")
        node[keys[-1]] = value
    return out


def _type_names(types: tuple) -> str:
    return " or ".join("null" if t is NONE else t.__name__ for t in types)


def _training_fields() -> dict[str, type | None]:
    """Field name -> expected type (int/float/bool/str, or None for anything else) of the trainer's config
    (PreferenceConfig, else TrainingArguments), from the dataclass annotations."""
    try:
        from savi_plugin.training.config import PreferenceConfig as config_cls
    except ImportError:  # trainer not installed in this checkout: check against the HF base class
        from transformers import TrainingArguments as config_cls
    simple = {"int": int, "float": float, "bool": bool, "str": str, int: int, float: float, bool: bool, str: str}
    out: dict[str, type | None] = {}
    for f in dataclasses.fields(config_cls):
        annotation = f.type if not isinstance(f.type, str) else f.type.strip()
        out[f.name] = simple.get(annotation)
    return out


def _check(node: Any, schema: Any, path: str, file: str) -> None:
    if schema == "PreferenceConfig":
        if not isinstance(node, dict):
            raise RecipeError(f"{file}: {path}: expected a mapping")
        fields = _training_fields()
        for key, value in node.items():
            if key not in fields:
                raise RecipeError(f"{file}: {path}.{key}: unknown key (not a PreferenceConfig/TrainingArguments field)")
            expected = fields[key]
            if value is None or expected is None:
                continue
            if expected is bool:
                ok = isinstance(value, bool)
            elif expected is int:
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif expected is float:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            else:
                ok = isinstance(value, str)
            if not ok:
                raise RecipeError(f"{file}: {path}.{key}: expected {expected.__name__}, "
                                  f"got {type(value).__name__} ({value!r})")
        return
    if isinstance(schema, dict):
        if not isinstance(node, dict):
            raise RecipeError(f"{file}: {path or '<top>'}: expected a mapping, got {type(node).__name__}")
        for key, value in node.items():
            sub = f"{path}.{key}" if path else str(key)
            if key not in schema:
                raise RecipeError(f"{file}: {sub}: unknown key (known: {', '.join(schema)})")
            _check(value, schema[key], sub, file)
        return
    ok = isinstance(node, schema) and not (isinstance(node, bool) and bool not in schema)
    if not ok:
        raise RecipeError(f"{file}: {path}: expected {_type_names(schema)}, got {type(node).__name__} ({node!r})")


def load_recipe(name_or_path: str | Path, overrides: list[str] | None = None) -> dict:
    """Read, inherit, override and validate a recipe; returns the merged mapping.

    Args:
        name_or_path: a YAML path or the name of a shipped recipe (``savi recipes ls``).
        overrides: ``key.path=value`` strings applied after inheritance.

    Raises:
        RecipeError: naming the file and the key path of the first problem.
    """
    path = resolve_recipe_path(name_or_path)
    recipe = apply_overrides(_read(path), overrides or [])
    _check(recipe, SCHEMA, "", str(path))
    if "model" not in recipe or "path" not in recipe["model"]:
        raise RecipeError(f"{path}: model.path: missing required key")
    recipe["_source"] = str(path)
    return recipe

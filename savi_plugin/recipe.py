"""Recipes: YAML files that name the model, data, generator, loss, trainer arguments, DeepSpeed config
and eval tasks of one run (torchtune-style: copy one, edit it, run it), read into a typed
:class:`~savi_plugin.config.sections.Recipe`.

- ``extends: other.yaml`` inherits another recipe (a path relative to this one's folder, or a shipped recipe
  name; a bare name that is also a file there is refused as ambiguous, :func:`resolve_recipe_path`); mappings
  merge key by key, anything else is replaced. A chain holds at most :data:`MAX_EXTENDS` files.
- ``key.sub=value`` overrides on the command line (the value is parsed as YAML: ``train.beta=0.2``).
- Every key and value is checked at load, by the rules in :mod:`savi_plugin.config` (sections, ``train`` against
  ``PreferenceConfig``, ``generate.options`` against the generator's own options): a problem is one
  :class:`RecipeError` ``recipe.yaml: train.bta: unknown key``, before any step runs.
- Relative paths in a recipe file (``extends:`` and every path value, :func:`path_keys`) are relative to the
  folder of the file that set them, after symlinks are resolved (:func:`recipe_folder`), and only that folder is
  looked in -- a value inherited through ``extends:`` keeps its own file's folder. Shipped recipes are templates:
  their paths to a user's data, model and outputs stay relative to the working folder, and their DeepSpeed
  configs (files shipped beside them) are in their own folder. Override values are relative to the working
  folder.
- Every value knows the file or override that set it (:class:`~savi_plugin.config.origins.KeySources`, the
  recipe's ``source``): an error at a key path, at load or in any later check, names that source.
- Files and override values are read by :func:`savi_plugin.untrusted.load_yaml` (``yaml.SafeLoader`` with
  nesting and alias limits) only.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from savi_plugin.config.origins import KeySources, set_origin
from savi_plugin.config.sections import Recipe
from savi_plugin.config.values import ConfigError, build, check_key_path
from savi_plugin.data.files import read_document_text
from savi_plugin.data.paths import absolute_path
from savi_plugin.errors import ConfigurationError
from savi_plugin.training.arguments import (
    TRAIN_PATHS,
    check_train,
    check_training_args,
    config_class,
    is_shipped_deepspeed_name,
    shipped_recipes_dir,
)
from savi_plugin.untrusted import load_yaml, read_as_known, shown_value

#: a bad recipe (``file: key.path: message``); the same class as every configuration error
RecipeError = ConfigError

__all__ = [
    "Recipe",
    "RecipeError",
    "check_generator_options",
    "list_recipes",
    "load_recipe",
    "path_keys",
    "recipe_for_file",
    "resolve_recipe_path",
    "shipped_recipes_dir",
]


def list_recipes() -> list[str]:
    """Names (without ``.yaml``) of the shipped recipes."""
    return sorted(p.stem for p in shipped_recipes_dir().glob("*.yaml"))


def is_recipe_name(value: str | Path) -> bool:
    """A bare recipe name (``tiny_demo``): no folder separator, no ``.yaml``/``.yml`` suffix. Only such a name
    is looked up among the shipped recipes; anything path-like names a file."""
    text = str(value)
    return bool(text) and "/" not in text and os.sep not in text and not text.lower().endswith((".yaml", ".yml"))


def resolve_recipe_path(name_or_path: str | Path, named_in: Path | None = None) -> Path:
    """A recipe file: an existing path, or, for a bare name only (:func:`is_recipe_name`), a shipped recipe.

    A relative path is relative to the folder of ``named_in`` -- the recipe file whose ``extends:`` names it --
    *after* symlinks are resolved (:func:`recipe_folder`, the folder its other relative paths are resolved
    against too), or, when ``named_in`` is None (a command-line argument), to the working folder. Only that one
    folder is looked in. A path that does not exist is an error naming it: a typo in ``./my_recipe.yml`` or
    ``recipes/x.yaml`` never falls back to a shipped recipe of the same name.

    A bare name that names a shipped recipe *and* a file of that folder (as written, or with ``.yaml``/``.yml``:
    a copy the user edited) is ambiguous and refused, naming both (:func:`_local_namesake`); a path to the file
    (``./tiny_demo.yaml``) picks the file. A bare name that is no shipped recipe names the file as written only.
    """
    from savi_plugin.data.files import file_problem

    text = str(name_or_path)
    folder = recipe_folder(named_in) if named_in is not None else None
    candidate = Path(name_or_path) if folder is None else folder / name_or_path
    bare = is_recipe_name(name_or_path)
    shipped = shipped_recipes_dir() / f"{text}.yaml" if bare else None
    if shipped is not None and shipped.is_file():
        local = _local_namesake(text, folder, shipped, named_in)
        if local is not None:
            raise RecipeError("", _ambiguous(local, folder), as_typed(name_or_path))
        return shipped
    problem = file_problem(candidate, "recipe file")  # stat only: a FIFO is never opened
    if problem is None:
        return candidate
    if os.path.lexists(candidate):  # there, but not a file to read
        raise RecipeError("", problem, str(candidate))
    if bare:
        local = _local_namesake(text, folder, None, named_in)
        like = read_as_known(text, list_recipes()) if local is None else None
        if like is not None:  # a look-alike of a shipped name, shown escaped: never a line that reads "no tiny_demo"
            raise RecipeError("", f"no such recipe file or shipped recipe: {like}", shown_value(text))
        hint = (f"{_shown(local, folder)} is there: give its path" if local is not None
                else f"shipped: {', '.join(list_recipes())}")
        raise RecipeError("", f"no such recipe file or shipped recipe ({hint})", as_typed(name_or_path))
    where = f" (looked in {folder}, the recipe's own folder)" if folder is not None else ""
    raise RecipeError("", f"no such recipe file{where}; only a bare name without folder or .yaml (e.g. "
                          f"{(list_recipes() or ['tiny_demo'])[0]}) names a shipped recipe", as_typed(name_or_path))


def as_typed(name: str | Path) -> str:
    """A recipe name or path as an error shows it: quoted as Python writes it (``'tiny_demo '``, ``'tiny_demo\\t'``)
    when white space at an end or a character that does not print would hide what was typed -- printed raw, such
    a name reads like a shipped one -- else as it is."""
    text = str(name)
    return repr(text) if text != text.strip() or not text.isprintable() else text


def _local_namesake(name: str, folder: Path | None, shipped: Path | None, named_in: Path | None) -> Path | None:
    """The file a bare name also names in the folder it is looked up from (the working folder for a command-line
    name, ``folder`` None; the extending recipe's own folder for ``extends:``): ``NAME``, ``NAME.yaml`` or
    ``NAME.yml``, whatever it is but a folder (a folder is never a recipe), or None. Neither the shipped recipe
    itself (a shipped recipe extending another) nor the extending file (``tiny_demo.yaml`` with
    ``extends: tiny_demo`` extends the shipped recipe: a file cannot extend itself) is one."""
    for suffix in ("", ".yaml", ".yml"):
        local = (folder or Path(".")) / f"{name}{suffix}"
        if not os.path.lexists(local) or os.path.isdir(local):
            continue
        if local.resolve() in {p.resolve() for p in (shipped, named_in) if p is not None}:
            continue
        return local
    return None


def _shown(local: Path, folder: Path | None) -> str:
    """How to write ``local`` where the name was typed: ``./NAME.yaml``, from the working folder or beside the
    extending recipe alike."""
    return f"./{local.name}" if folder is None or local.parent == folder else str(local)


def _ambiguous(local: Path, folder: Path | None) -> str:
    """Why a bare name that names a shipped recipe and ``local`` too is refused, and how to write each: the file
    by its path; the shipped recipe by the bare name once the file is renamed (a shipped recipe has no other
    spelling that a recipe written elsewhere can carry)."""
    path = _shown(local, folder)
    if folder is None:
        return (f"is ambiguous: it names a shipped recipe, and also the file {path} here; write {path} for that "
                f"file, or rename that file to use the shipped recipe")
    return (f"is ambiguous: it names a shipped recipe, and also the file {local.name} beside this recipe (in "
            f"{folder}); write 'extends: {path}' for that file, or rename that file to extend the shipped recipe")


def recipe_folder(file: Path) -> Path:
    """The folder a recipe file's relative paths (``extends:``, data, model, prompts, DeepSpeed) are resolved
    against: the folder of the file itself after symlinks are resolved, so a recipe reads the same through a link
    (``link.yaml -> sub/d.yaml`` with ``extends: base.yaml`` is ``sub/base.yaml``, never a ``base.yaml`` beside
    the link)."""
    return file.resolve().parent


def _merge(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _is_shipped(path: Path) -> bool:
    return path.resolve().parent == shipped_recipes_dir().resolve()


#: path kinds that name a file shipped with the package beside the shipped recipes (resolved in a shipped
#: recipe's own folder; every other path a shipped recipe holds is the user's, relative to the working folder)
PACKAGE_FILE_KINDS = frozenset({"deepspeed"})


#: the recipe key of a generator's prompt file: a run's identity holds it by content (:func:`prompts_by_content`)
PROMPTS_KEY = "generate.options.prompts"


def path_keys() -> list[tuple[str, str]]:
    """Every key path of a recipe that holds a file system path, with its kind (``file``, ``dir``, ``any``,
    ``model``: a hub id unless it exists or starts with ``./``/``../``; ``deepspeed``): the sections' fields
    declared with ``path`` metadata, the ``train`` keys :data:`TRAIN_PATHS` (those ``PreferenceConfig`` has) and
    ``train.deepspeed``, and
    ``generate.options.prompts`` and the generator options that name a model (:data:`GENERATOR_MODEL_OPTIONS`). The
    one list :func:`_resolve_paths` resolves."""
    keys = []
    for section in dataclasses.fields(Recipe):
        cls = _section_class(section.name)
        if "path" in section.metadata:
            keys.append((section.name, section.metadata["path"]))
        elif cls is not None:
            keys += [(f"{section.name}.{f.name}", f.metadata["path"]) for f in dataclasses.fields(cls)
                     if "path" in f.metadata]
    fields = {f.name for f in dataclasses.fields(config_class())}  # those of the installed transformers
    keys += [(f"train.{key}", "any") for key in TRAIN_PATHS if key in fields]
    keys += [("train.deepspeed", "deepspeed"), (PROMPTS_KEY, "file")]
    keys += [(f"generate.options.{name}", "model") for name in GENERATOR_MODEL_OPTIONS]
    return keys


#: generator options that name a model folder (or a hub id, or ``policy``): RRPO's judge and tagger, VideoSAVi's
#: similarity scorer -- relative to the file that set them, like ``model.path``
GENERATOR_MODEL_OPTIONS = ("judge_model", "tagger_model", "scorer")


def _resolve_one(value: Any, folder: Path, kind: str) -> Any:
    """A path value of a recipe file in ``folder``: relative -> joined to ``folder`` (see the module docstring)."""
    if not isinstance(value, str) or not value.strip() or os.path.isabs(value) or "://" in value:
        return value  # an empty or white-space value is left as given: the empty-path rule refuses it by its key
    if kind == "deepspeed" and is_shipped_deepspeed_name(value):
        return value  # a shipped config's bare name (``zero3``)
    joined = absolute_path(folder / value)  # a `..` after a symlinked folder climbs from where the link points
    if kind == "model" and not (value.startswith(("./", "../")) or os.path.exists(joined)):
        return value  # a hub id such as org/name
    return joined


def _resolve_paths(data: dict, file: Path) -> dict:
    """``data`` (one file's mapping) with the relative values of its :func:`path_keys` joined to the folder of
    ``file`` (for a shipped recipe: only its package files, :data:`PACKAGE_FILE_KINDS`)."""
    shipped = _is_shipped(file)
    folder = recipe_folder(file)
    out = copy.deepcopy(data)
    for key, kind in path_keys():
        *parents, last = key.split(".")
        node = out
        for name in parents:
            node = node.get(name) if isinstance(node, dict) else None
        if not isinstance(node, dict) or last not in node or (shipped and kind not in PACKAGE_FILE_KINDS):
            continue
        value = node[last]
        node[last] = _resolve_one(value, folder, kind)
        if kind == "model" and node[last] == value and isinstance(value, str) and os.path.exists(value) \
                and absolute_path(Path(value)) != absolute_path(folder / value):
            raise RecipeError(key, f"{value!r} is no path in {folder}, the folder of the file that sets it, but "
                                   f"the working folder holds one: a path in a file is relative to that file; write "
                                   f"{os.path.relpath(absolute_path(Path(value)), folder)!r} or an absolute path to "
                                   f"use it (or, for a hub id of that name, move the folder away)", str(file))
    return out


def resolve_option_paths(options: dict, file: str | Path) -> dict:
    """Generator options read from the YAML file ``file`` (``savi generate --options``) with their path options
    (:func:`path_keys` under ``generate.options``: ``prompts``, ``judge_model``, ...) relative to that file's folder,
    as a recipe's are:
    a path in a file is relative to the file, never to the working folder."""
    return _resolve_paths({"generate": {"options": dict(options)}}, Path(file))["generate"]["options"]


#: the most recipe files one ``extends:`` chain holds (the recipe itself included): deeper than any real layering
#: of recipes, and found before Python's recursion limit, which a chain of ~1000 files would reach
MAX_EXTENDS = 32


def _section_class(name: str) -> type | None:
    import typing

    hint = typing.get_type_hints(Recipe).get(name)
    return hint if dataclasses.is_dataclass(hint) else None


def _refuse_nul(data: dict, source: str | None) -> None:
    """Refuse a NUL character in any text of a recipe (``model.path: "m\\0"``), at its key path: no path, name or
    value holds one, and the operating system refuses it in a path as ``embedded null byte``."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str) and "\x00" in node:
            raise RecipeError(where, f"{node!r} contains a NUL character; remove it", source)
        if isinstance(node, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(node))


def _read(path: Path, seen: tuple[Path, ...] = (), origins: dict[str, str] | None = None) -> dict:
    """One recipe file merged over the chain it extends; ``origins`` (when given) gets the file that set each
    key path (:func:`~savi_plugin.config.origins.set_origin`)."""
    if path.resolve() in seen:
        raise RecipeError("extends", f"circular ({' -> '.join(str(p) for p in seen)})", str(path))
    if len(seen) >= MAX_EXTENDS:
        raise RecipeError("extends", f"a chain of more than {MAX_EXTENDS} recipe files (file {MAX_EXTENDS + 1} is "
                                     f"{path}); savi follows at most {MAX_EXTENDS}: extend a shorter chain",
                          str(seen[0]))
    try:
        text = read_document_text(path)  # a ConfigError at the file when above $SAVI_MAX_DOCUMENT_BYTES
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError("", f"cannot read: {exc}", str(path)) from None
    data = load_yaml(text, str(path)) or {}  # the untrusted-input limits: depth, aliases, safe tags
    if not isinstance(data, dict):
        raise RecipeError("", f"a recipe must be a mapping, got {type(data).__name__}", str(path))
    _refuse_nul(data, str(path))
    data = _resolve_paths(data, path)
    parent = data.pop("extends", None)
    if parent is None:
        if origins is not None:
            set_origin(origins, "", data, str(path))
        return data
    if not isinstance(parent, str) or not parent.strip():
        raise RecipeError("extends", f"expected a recipe name or path, got {parent!r}", str(path))
    try:
        base = resolve_recipe_path(parent, named_in=path)
    except RecipeError as exc:
        raise RecipeError("extends", f"{parent!r}: {exc.message}", str(path)) from None
    merged = _merge(_read(base, seen + (path.resolve(),), origins), data)
    if origins is not None:
        set_origin(origins, "", data, str(path))
    return merged


class TypedOverride(str):
    """An override as it is applied (``model.path=./nope``) that errors quote as the user typed it (``typed``:
    ``dpo:model.path=./nope``, ``savi ablate``'s override of one loss's run), or, for one a command makes from a
    flag, by that flag (``shown``: ``--losses 'raiseimp'``)."""

    typed: str
    shown: str | None

    def __new__(cls, text: str, typed: str, shown: str | None = None):
        self = super().__new__(cls, text)
        self.typed, self.shown = typed, shown
        return self


def override_source(text: str) -> str:
    """How an error names the override ``text`` (``override 'train.beta=0.2'``), as the user typed it (a
    :class:`TypedOverride` by its ``shown`` flag, else its ``typed``): a value longer than 40
    characters (a key longer than 60) is cut in its middle, so the reason after it stays on the line; a key's
    look-alike and invisible characters are escaped (:func:`~savi_plugin.untrusted.unmistakable`)."""
    if getattr(text, "shown", None):  # made from a flag the user gave: named by it
        return text.shown
    key, sep, value = str(getattr(text, "typed", text)).partition("=")
    if len(key) > 60:
        key = f"{key[:40]}...{key[-12:]}"
    if len(value) > 40:
        value = f"{value[:24]}...{value[-12:]}"
    if not key.isascii():  # a key that reads as another (a look-alike letter) is shown as it is spelled
        from savi_plugin.untrusted import unmistakable

        return f"override '{unmistakable(key)}{sep}{repr(value)[1:-1]}'"
    return f"override {key + sep + value!r}"


def parse_override(text: str, schema: type | None = None) -> tuple[list[str], Any]:
    """``"train.beta=0.2"`` -> ``(["train", "beta"], 0.2)`` (the value parsed as YAML). With ``schema`` (a
    dataclass: :class:`Recipe`), the key path is checked against it first, so an unknown key is refused before
    its value is read."""
    key, sep, value = text.partition("=")
    source = override_source(text)
    if not sep or not key.strip():
        raise RecipeError("", "expected key.path=value", source)
    keys = key.strip().split(".")
    if any(not k.strip() for k in keys):  # `train..beta` would set a key named '' that the recipe is blamed for
        raise RecipeError("", f"key {key.strip()!r} has an empty name in its path (two dots together, or a dot "
                              f"at an end); expected key.path=value (train.beta=0.2)", source)
    if schema is not None:
        check_key_path(schema, keys, source)
    parsed = load_yaml(value, source, prefix=key.strip()) if value.strip() else None
    return keys, parsed


def apply_overrides(recipe: dict, overrides: list[str], schema: type | None = None,
                    origins: dict[str, str] | None = None) -> dict:
    """Set each ``key.path=value`` in a copy of ``recipe`` (a mapping value merges into a mapping); ``schema``:
    see :func:`parse_override`; ``origins`` (when given) records the override as the source of what it set."""
    out = copy.deepcopy(recipe)
    given: dict[str, str] = {}  # key path -> the override that last set it
    for text in overrides:
        keys, value = parse_override(text, schema)
        _refuse_nul({".".join(keys): value}, override_source(text))
        _say_replaced(given, ".".join(keys), text)
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise RecipeError(k, "is not a section", override_source(text))
        if isinstance(value, dict) and isinstance(node.get(keys[-1]), dict):  # merged, as `extends` merges
            value = _merge(node[keys[-1]], value)
        node[keys[-1]] = value
        if origins is not None:
            set_origin(origins, ".".join(keys), value, override_source(text))
    return out


#: the override pairs already said to replace one another in this process (a command loads its recipe more than once)
_SAID_REPLACED: set[tuple[str, str]] = set()


def _say_replaced(given: dict[str, str], key: str, text: str) -> None:
    """Warn, once per process, that override ``text`` replaces an earlier one of the same key path: the last one
    given wins (scripts append an override to a base command line), and the user sees which was dropped."""
    earlier = given.get(key)
    given[key] = text
    if earlier is not None and earlier != text and (earlier, text) not in _SAID_REPLACED:
        _SAID_REPLACED.add((earlier, text))
        logging.getLogger(__name__).warning("override %r replaces the earlier %r (the last one given is used)",
                                            str(getattr(text, "typed", text)), str(getattr(earlier, "typed", earlier)))


def check_generator_options(generator: str, options: dict[str, Any], prefix: str = "generate.options",
                            source: str | None = None, num_frames: int | None = None,
                            frames_key: str = "model.num_frames"):
    """The generator's options object, built from ``options`` by its own declaration (unknown option, wrong
    type or range -> :class:`RecipeError` at ``prefix.key``), with its prompt file read and checked (a
    ``ConfigError`` at ``prefix.prompts`` naming the file and line), so a bad prompt file stops a job, or its dry run, before it starts.
    With ``num_frames`` (given at ``frames_key``), options that cannot work on clips that long
    (:meth:`~savi_plugin.generators.base.Generator.frames_problem`) are refused at the option too."""
    from savi_plugin import registry
    from savi_plugin.generators.base import Generator, build_config, config_class_problem
    from savi_plugin.generators.prompts import load_prompts
    from savi_plugin.plugin_call import broken_contract, plugin_call

    cls = registry.load_class(registry.GENERATORS, generator, Generator)
    problem = config_class_problem(cls)  # the runner's rule (resolve_generator), before a dry run vouches for it
    if problem is not None:
        raise broken_contract(registry.GENERATORS, generator, cls, "config_class", problem)
    config = build_config(cls.config_class, options, generator, prefix=prefix, source=source)
    if getattr(config, "prompts", None) is not None:
        try:
            load_prompts(cls.name, config.prompts, fields=getattr(cls, "prompt_fields", None), module=cls.__module__)
        except ConfigurationError as exc:  # the prompt file's own problem, placed at the option that names it
            raise RecipeError(f"{prefix}.prompts" if prefix else "prompts", str(exc), source) from None
    with plugin_call(registry.GENERATORS, generator, cls, "frames_problem"):
        problem = cls.frames_problem(config, num_frames) if num_frames is not None else None
    if problem is not None and not (isinstance(problem, tuple) and len(problem) == 2
                                    and all(isinstance(p, str) for p in problem)):
        raise broken_contract(registry.GENERATORS, generator, cls, "frames_problem()",
                              f"returned {problem!r}, neither None nor an (option, why) pair of texts")
    if problem:  # at the option when it was given, else at the frame count that the default cannot work with
        option, why = problem
        if option not in options:
            raise RecipeError(frames_key, f"{num_frames}: the default {option}: {why}", source)
        raise RecipeError(f"{prefix}.{option}" if prefix else option, f"{why} ({frames_key}: {num_frames})", source)
    return config


def _refuse_empty_paths(data: dict, source: str) -> None:
    """Refuse a path value (:func:`path_keys`) that is the empty string or only white space, at its key path: it
    names no file or folder (``Path('')`` is the working folder), and a dry run would list it as if set."""
    for key, _kind in path_keys():
        *parents, last = key.split(".")
        node: Any = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(last), str) and not node[last].strip():
            raise RecipeError(key, f"{node[last]!r} is an empty path: give a path, or leave the key out", source)


def recipe_from_mapping(data: dict, source: str) -> Recipe:
    """A checked :class:`Recipe` from a merged mapping (``source`` names the file in errors); every path value
    is checked here first (:func:`_refuse_empty_paths`), wherever it was set (a file, an override)."""
    generate = data.get("generate")
    if isinstance(generate, dict) and "max_new_tokens" in generate:
        raise RecipeError("generate.max_new_tokens", "unknown key: answer length is a generator option, "
                          "set generate.options.max_new_tokens", source)
    _refuse_empty_paths(data, source)
    recipe = build(Recipe, data, "", source)
    recipe.train = check_train(recipe.train, "train", source)
    check_generator_options(recipe.generate.generator, recipe.generate.options, source=source,
                            num_frames=recipe.model.num_frames)
    recipe.source = source
    if recipe.align.eval_every_iteration and not recipe.eval.tasks:
        raise RecipeError("eval.tasks", "empty: name at least one lmms-eval task, or turn evaluation off with "
                                        "align.eval_every_iteration: false", source)
    check_training_args(recipe)
    return recipe


def load_recipe(name_or_path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read, inherit, override and check a recipe.

    Args:
        name_or_path: a YAML path or the name of a shipped recipe (``savi recipes ls``).
        overrides: ``key.path=value`` strings applied after inheritance.

    Raises:
        RecipeError: naming the file and the key path of the first problem.
    """
    path = resolve_recipe_path(name_or_path)
    origins: dict[str, str] = {}
    data = apply_overrides(_read(path, origins=origins), list(overrides or []), Recipe, origins)
    return recipe_from_mapping(data, KeySources(str(path), origins))


def recipe_content(recipe: Recipe) -> dict:
    """What a loaded recipe says, every ``extends:`` and override applied, without where it was read from: the
    part of a run's configuration that a recipe file edited in place changes (a path alone would not); and what
    its names stand for that its text does not hold (:func:`recipe_parts`)."""
    from savi_plugin.config.values import to_dict

    return {**{k: v for k, v in to_dict(recipe).items() if k not in ("source", "_source")}, **recipe_parts(recipe)}


def recipe_parts(recipe: Recipe) -> dict:
    """What the names of a recipe stand for beyond its text: the resolved ``Params`` of a plugin's loss (defaults
    included, :func:`~savi_plugin.training.arguments.resolved_loss_params`) under ``loss_params``, and under
    ``plugins`` each component a plugin provides (:func:`savi_plugin.registry.components`: the generator, the
    loss, the trainer, the backend, by entry, distribution and version; absent when none is). A resume after a
    plugin's version or a loss's default changed is then another configuration, refused naming it."""
    from savi_plugin import registry
    from savi_plugin.training.arguments import resolved_loss_params, train_default

    train = dict(recipe.train or {})
    plugins = registry.components({
        "generate.generator": (registry.GENERATORS, recipe.generate.generator),
        "train.loss_type": (registry.LOSSES, train.get("loss_type", train_default("loss_type"))),
        "train.trainer": (registry.TRAINERS, train.get("trainer")),
        "model.backend": (registry.BACKENDS, recipe.model.backend)})
    if "train.loss_type" not in plugins:  # savi's own loss: its defaults are savi's, as every other default is,
        return {"plugins": plugins} if plugins else {}  # so a run made before they were recorded resumes as it did
    return {"loss_params": resolved_loss_params(train), "plugins": plugins}


#: recipe keys that name where a job writes, not what it reads: left out of :func:`recipe_identity`
OUTPUT_KEYS = ("train.output_dir", "train.logging_dir")


def recipe_identity(recipe: Recipe) -> dict:
    """What a loaded recipe makes a job compute, independent of where it was typed from: :func:`recipe_content`
    with every path value (:func:`path_keys`, already resolved by the recipe's one path rule) replaced by what it
    names -- a model folder by its files (:func:`~savi_plugin.data.identity.model_identity`), a file or folder by
    its content (:func:`~savi_plugin.data.identity.input_identity`), the prompt file by its parsed content
    (:func:`prompts_by_content`) -- and where the job writes
    (:data:`OUTPUT_KEYS`) left out. A name that is nothing on this machine (a hub id, ``tiny://``, a shipped
    DeepSpeed name) is kept as written. Two runs of the same recipe from other working folders, or with other
    spellings of the same files (``./x.jsonl``, ``x.jsonl``, absolute), have the same identity; another file
    content, model or value does not, and a comparison names its key path."""
    from savi_plugin.data.identity import input_identity, model_identity

    content = recipe_content(recipe)
    for key, kind in path_keys():
        *parents, last = key.split(".")
        node: Any = content
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or last not in node:
            continue
        if key in OUTPUT_KEYS:
            del node[last]
            continue
        value = node[last]
        if not isinstance(value, str) or not value or "://" in value:
            continue
        if key == PROMPTS_KEY:  # by parsed content, as savi generate holds it
            node[last] = prompts_by_content(value)
            continue
        path = Path(value).expanduser()
        if path.exists():
            node[last] = {"identity": model_identity(path) if kind == "model" else input_identity(path)}
        elif kind != "model" and not (kind == "deepspeed" and is_shipped_deepspeed_name(value)):
            node[last] = os.path.abspath(path)  # nothing there yet: the place it names, from any working folder
    return content


def prompts_by_content(path: str) -> dict:
    """The prompt file ``generate.options.prompts`` names, as a run's identity holds it: the one rule of
    ``savi generate`` (:func:`~savi_plugin.generators.prompts.override_identity`), so a recipe whose prompt file is
    moved or spelt otherwise is the same recipe, and one whose prompts changed is not (named by key)."""
    from savi_plugin.generators.prompts import override_identity

    return override_identity(path)


def recipe_for_file(recipe: Recipe, holder: str | Path) -> dict:
    """A loaded recipe as the file ``holder`` stores it (``savi align``'s ``manifest.json`` and mark):
    :func:`recipe_content` with every path value (:func:`path_keys`) stored by the one rule for stored paths
    (:func:`savi_plugin.data.paths.path_for_file`: relative to ``holder``'s folder, or inside the declared run
    folder, else absolute). A name that is nothing on this machine (a hub id, ``tiny://``, a shipped DeepSpeed
    name) is kept as written; the prompt file is stored by its parsed content (:func:`prompts_by_content`). The
    same recipe typed from another working folder, or with another spelling of the same paths, stores the same
    values, so two of them compare equal."""
    from savi_plugin.data.paths import path_for_file

    content = recipe_content(recipe)
    for key, kind in path_keys():
        *parents, last = key.split(".")
        node: Any = content
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or not isinstance(node.get(last), str) or not node[last]:
            continue
        value = node[last]
        if key == PROMPTS_KEY:  # by parsed content, as savi generate holds it
            node[last] = prompts_by_content(value)
            continue
        if "://" in value or (kind == "deepspeed" and is_shipped_deepspeed_name(value)):
            continue
        if kind == "model" and not Path(value).expanduser().exists():
            continue  # a hub id
        node[last] = path_for_file(value, holder)
    return content

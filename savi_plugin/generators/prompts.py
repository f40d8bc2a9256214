"""Prompt templates: the packaged YAML defaults, merged with an optional user override file.

Each generator ships ``prompts/<name>.yaml`` in its own package (ours: ``savi_plugin/generators/prompts/``; a
third-party generator ``my_pkg.gen:MyGen`` named ``mygen``: ``my_pkg/prompts/mygen.yaml``). A user overrides any subset of its
keys with their own YAML file; unknown keys, non-string templates and unknown ``{fields}`` are errors that
name the file and the key, so a typo never silently falls back to a default prompt. The resulting
``version`` (stored in every record's ``meta.prompts_version``) is the override's own ``version`` or, if it
sets none, the default version plus a digest of the override's parsed content, so records made with different
prompts are never confused (and a comment or the keys' order changes nothing).
"""

from __future__ import annotations

import hashlib
import importlib
import string
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from savi_plugin.data.files import read_document_text
from savi_plugin.errors import ConfigurationError


class PromptError(ConfigurationError):
    """A bad prompt file or template; the message names the file and the key. A configuration error (exit status
    2, the job stops before its first item): the prompts are the run's configuration, not one item's input."""


def _read_yaml(text: str, origin: str) -> dict[str, Any]:
    from savi_plugin.untrusted import load_yaml

    data = load_yaml(text, origin)  # a ConfigError naming the file, line and key path
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PromptError(f"{origin}: expected a mapping of prompt names to templates, got {type(data).__name__}")
    return data


def packaged_prompts_folder(module_name: str):
    """The ``prompts/`` folder beside module ``module_name`` (inside it, for a package), as a resources path."""
    module = sys.modules.get(module_name) or importlib.import_module(module_name)
    if hasattr(module, "__path__"):
        return resources.files(module_name).joinpath("prompts")
    package = module_name.rpartition(".")[0]
    if package:
        return resources.files(package).joinpath("prompts")
    return Path(module.__file__).resolve().parent / "prompts"


def default_prompts(name: str, module: str = "savi_plugin.generators",
                    fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The prompts generator ``name`` ships in ``prompts/<name>.yaml`` beside ``module`` (its own module).

    ``fields``: the generator's ``prompt_fields`` (template key -> the fields it may use); each key it declares
    must be in the file, so a generator never runs a template its own file lacks."""
    ref = packaged_prompts_folder(module).joinpath(f"{name}.yaml")
    where = f"{module}: prompts/{name}.yaml"
    if not ref.is_file():
        raise PromptError(f"no packaged prompts for generator {name!r}: {where} not found (a generator ships its "
                          f"templates in a prompts/ folder beside its module, with a 'version' key)")
    prompts = _read_yaml(ref.read_text(encoding="utf-8"), where)
    if "version" not in prompts:
        raise PromptError(f"{where}: missing key 'version' (stored in every record's meta.prompts_version)")
    if fields is not None and not isinstance(fields, Mapping):
        raise PromptError(f"{module}: generator {name!r} declares prompt_fields as a {type(fields).__name__}; it maps "
                          f"each template key of {where} to the fields it may use, e.g. {{'question': {{'topic'}}}}")
    missing = [key for key in fields or {} if key not in prompts]
    if missing:
        raise PromptError(f"{where}: missing key {missing[0]!r}, which generator {name!r} declares in its "
                          f"prompt_fields (keys: {', '.join(sorted(prompts))})")
    return prompts


def template_problem(template: str) -> str | None:
    """Why ``template`` is not a template of plain replacement fields, or None.

    A field is ``{name}`` only: no format spec (``{question:>50000000}`` pads the prompt to 50 MB, past what a
    tokenizer can hold), no conversion (``{question!r}``) and no attribute or index access (``{question.__class__}``,
    ``{options[0]}``), so a prompt is the record's text and the template's, nothing else; and no control character
    or bidi override (:func:`savi_plugin.untrusted.hidden_control`), which every prompt would carry.
    """
    from savi_plugin.untrusted import hidden_control

    hidden = hidden_control(template)  # in every prompt: each record's text would be refused for it
    if hidden:
        return (f"contains {hidden}; a template may not hold control characters or bidi overrides (every prompt "
                f"would carry it)")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"is not a valid template: {exc}"
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        written = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if not field.isidentifier() or spec or conversion:
            return (f"field {written!r} is not a plain replacement field: a template may use only {{name}} "
                    f"(no format spec, conversion, attribute or index)")
    return None


def template_fields(template: str) -> set[str]:
    """The ``{field}`` names a str.format template uses."""
    return {field.split(".")[0].split("[")[0] for _, field, _, _ in string.Formatter().parse(template) if field}


def load_prompts(name: str, override: str | Path | Mapping[str, Any] | None = None, *,
                 fields: Mapping[str, set[str]] | None = None, module: str = "savi_plugin.generators",
                 read: tuple[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The prompts of generator ``name`` with ``override`` applied on top.

    Args:
        name: generator name; selects the packaged defaults.
        module: the generator's module; its ``prompts/`` folder holds the defaults.
        override: a YAML file path, or a mapping, overriding any subset of the default keys.
        fields: for each template key, the fields it may use; a template using another field is an error.
        read: ``override`` as :func:`read_override` read it already (the file is then not read again).

    Raises:
        PromptError: unreadable file, unknown key, wrong value type, or unknown template field.
    """
    prompts = default_prompts(name, module, fields)
    read = read if read is not None else read_override(override)
    if read is None:
        return prompts
    origin, data = read
    if not isinstance(override, Mapping) and not data:  # a file that changes no prompt: the defaults would run unsaid
        raise PromptError(f"{origin}: the prompt file overrides no prompt (it is empty): give the keys to "
                          f"override (known: {', '.join(sorted(prompts))}), or leave the prompt file out")
    for key, value in data.items():
        if key not in prompts:
            raise PromptError(f"{origin}: unknown prompt key {key!r} (known: {', '.join(sorted(prompts))})")
        default = prompts[key]
        if isinstance(default, list):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PromptError(f"{origin}: {key!r} must be a list of strings")
        elif not isinstance(value, str):
            raise PromptError(f"{origin}: {key!r} must be a string, got {type(value).__name__}")
        if key != "version":
            for template in value if isinstance(value, list) else [value]:
                problem = template_problem(template)
                if problem:
                    raise PromptError(f"{origin}: {key!r} {problem}")
        if fields and key in fields:
            try:
                used = template_fields(value)
            except ValueError as exc:
                raise PromptError(f"{origin}: {key!r} is not a valid template: {exc}") from None
            unknown = used - set(fields[key])
            if unknown:
                raise PromptError(f"{origin}: {key!r} uses unknown field(s) {sorted(unknown)}; "
                                  f"available: {sorted(fields[key])}")
            for template in value if isinstance(value, list) else [value]:  # each one is a whole prompt
                unused = set(fields[key]) - template_fields(template)
                if unused:
                    raise PromptError(f"{origin}: {key!r} does not use {', '.join('{' + f + '}' for f in sorted(unused))}"
                                      f": what the record holds there would never reach the model (a template "
                                      f"uses each of {', '.join('{' + f + '}' for f in sorted(fields[key]))})")
    merged = {**prompts, **data}
    if "version" not in data:
        merged["version"] = f"{prompts['version']}{CUSTOM}-{override_digest(data)}"
    return merged


#: what a prompts version gains from an override that sets no ``version`` of its own (then a digest of it)
CUSTOM = "+custom"


def override_digest(data: Mapping[str, Any]) -> str:
    """The digest of an override by its parsed content (a canonical dump of the mapping): a comment, the keys'
    order or the file's formatting changes no run's prompts, so none changes the version."""
    return hashlib.sha256(yaml.safe_dump(dict(data), sort_keys=True).encode()).hexdigest()[:8]


def read_override(override: str | Path | Mapping[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
    """``(where it was read, its mapping)`` of a prompts override (a YAML file path or a mapping), or None.

    Raises:
        PromptError: a file that is missing, unreadable or no mapping, naming it.
    """
    if override is None:
        return None
    if isinstance(override, Mapping):
        return "<prompts override>", dict(override)
    from savi_plugin.data.files import file_problem

    path = Path(override)
    problem = file_problem(path, "prompt file")  # stat only: a FIFO is never opened
    if problem is not None:
        raise PromptError(f"{path}: {'prompt file not found' if problem == 'file not found' else problem}")
    try:
        text = read_document_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"{path}: cannot read the prompt file: {exc}") from None
    return str(path), _read_yaml(text, str(path))


def override_identity(override: str | Path | Mapping[str, Any] | None,
                      read: tuple[str, dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """A prompts override as a run's identity holds it (what a resume must share; ``savi generate``'s options and
    ``savi align``'s recipe alike): by its parsed content, never by the path it was typed as -- a prompt file named
    otherwise (``./p.yaml``, from another folder, moved, a copy) or reformatted (a comment, the keys' order) is the
    same prompts -- with the file it was read from beside (:data:`~savi_plugin.data.fingerprint.READ_FROM`: named
    by a refusal, never compared); a mapping as it is. None: no override.

    Args:
        override: the ``prompts`` option (a YAML file path or a mapping).
        read: the override as :func:`read_override` already read it (one read decides the prompts a run uses and
            its identity); read now when not given.
    """
    from savi_plugin.data.fingerprint import READ_FROM

    read = read if read is not None else read_override(override)
    if read is None:
        return None
    origin, data = read
    return dict(data) if isinstance(override, Mapping) else {**data, READ_FROM: origin}


def check_control_strings(prompts: Mapping[str, Any], controls: Sequence[str], name: str,
                          override: str | Path | Mapping[str, Any] | None = None,
                          module: str = "savi_plugin.generators") -> None:
    """Refuse a template that holds one of the model's control strings (``controls``: its special tokens, chat
    markers and placeholders, :func:`savi_plugin.models.backends.tokens.control_strings`).

    The templates are the run's configuration: a chat marker in one would be read as a turn boundary (a
    placeholder as video tokens) in every prompt, so it is a configuration error naming the prompt file and the
    template key, found once the tokenizer is known and before the first item -- never a failure blamed on each
    record's question.

    Raises:
        PromptError: ``<file>: 'key' contains '<|im_start|>', a control token of this model's tokenizer; ...``
    """
    if not controls:
        return
    defaults = default_prompts(name, module)
    for key, value in prompts.items():
        if key == "version":
            continue
        for template in value if isinstance(value, list) else [value]:
            found = next((c for c in controls if isinstance(template, str) and c in template), None)
            if found is None:
                continue
            origin = (f"the packaged prompts of {name!r}" if override is None or value == defaults.get(key)
                      else str(override) if isinstance(override, (str, Path)) else "<prompts override>")
            raise PromptError(f"{origin}: {key!r} contains {found!r}, a control token of this model's tokenizer; "
                              f"a template may not contain the model's special tokens or placeholders (the chat "
                              f"template adds the turn markers)")


def render(prompts: Mapping[str, Any], key: str, **values: Any) -> str:
    """Fill template ``key`` with ``values``."""
    try:
        return prompts[key].format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise PromptError(f"prompt {key!r}: cannot fill template: {exc!r}") from None

"""The rules and the checker of configuration values: recipes, command-line flags and generator/loss options.

Every recipe key, ``key=value`` override, ``--flag``, generator option and loss ``Params`` field is checked by
:func:`check_mapping` / :func:`build` here, against the rules its field declares. Three classes also check
themselves in ``__post_init__`` for callers that build them from Python: ``PreferenceConfig`` (repeating some of
the rules :mod:`savi_plugin.training.arguments` registers for its fields), ``RRPOConfig`` and ``VideoSAViConfig``
(whose choices and cross-field conditions declare no rule). :func:`build` reports such a ``ValueError`` as a
:class:`ConfigError` at the key path, so a user sees one kind of error either way.

A configuration is a dataclass. Each field's *type* comes from its annotation and its *range* from rules that
the field declares in its metadata, so the same rule holds wherever the value comes from (a recipe key, a
``key=value`` override, a ``--flag``, a generator's ``--option``) and a new option cannot skip it.

Declaring::

    from dataclasses import dataclass
    from savi_plugin.config.values import Positive, NonNegative, OneOf, checked

    @dataclass(frozen=True)
    class RRPOParams:
        beta: float = checked(0.1, Positive(), help="implicit-reward scale")
        alpha: float = checked(0.01, NonNegative(), help="token-wise KL weight")
        mode: str = checked("sum", OneOf("sum", "mean"))

    # a field that needs its own dataclasses.field(...) (e.g. a default_factory) takes the same rules:
    tasks: list[str] = dataclasses.field(default_factory=list, metadata=rules(NonEmpty()))

Using::

    params = build(RRPOParams, {"beta": 0.2}, "train.loss_options", source="my.yaml")  # checked instance
    check_mapping(SomeConfig, mapping, "train", source)   # keys, types and rules, without constructing
    validate(instance, "generate.options", source)        # re-check a built instance (e.g. after replace())
    parser.add_argument("--num-frames", type=arg_type(ModelSection, "num_frames", "--num-frames"))  # a flag
    add_flag(parser, "--num-frames", ModelSection, "num_frames")  # the same, with the field's default and help

Every failure is a :class:`ConfigError` whose message is one line, ``file: key.path: message`` (``key.path:
message`` without a file; for a flag, ``--flag: message``). Command-line handlers print it as ``error: ...`` and
exit with :data:`ConfigError.exit_code` (2, the argparse convention for a usage error).

Types: ``int`` (not bool), ``float`` (an int is widened; a string that spells a number, such as YAML 1.1's
``1e-5``, is read as that number), ``bool``, ``str``, ``None``, ``X | Y``, ``Literal[...]``, an ``Enum`` (its
values), ``list``/``list[X]``, ``tuple``, ``dict``, a nested dataclass (a mapping, built recursively), ``Any``.
A bool where a string is expected gets a hint, because YAML reads unquoted ``no``/``yes``/``on``/``off`` as booleans.
Rules apply only to non-None values; ``None`` is accepted only where the annotation allows it.

Rules for fields of a class one does not own (e.g. ``transformers.TrainingArguments``) are registered with
:func:`register_rules` and apply to its subclasses too.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import functools
import math
import re
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from savi_plugin.errors import ConfigError  # noqa: F401  (defined with the failure taxonomy; re-exported here)
from savi_plugin.untrusted import (QuotedNumber, read_as_known, shown, shown_name, shown_value, underflow_problem,
                                   unknown_name)

#: the metadata key under which a field lists its rules
RULES = "savi_rules"

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", re.IGNORECASE | re.ASCII)
#: an integer as a flag's text: ASCII digits (at most 4300, int()'s limit), an optional sign
_INTEGER = re.compile(r"\s*[+-]?[0-9]{1,4300}\s*", re.ASCII)


# --------------------------------------------------------------------------------------------- rules
class Rule:
    """A constraint on a value: :meth:`problem` returns what is wrong with it, or None."""

    def problem(self, value: Any) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Range(Rule):
    """``low <= value <= high`` (either bound optional; ``open_low``/``open_high`` make it strict)."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def text(self) -> str:
        def bound(x: float) -> str:  # 1048576, not 1.04858e+06
            return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"

        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.open_low else '>='} {bound(self.low)}")
        if self.high is not None:
            parts.append(f"{'<' if self.open_high else '<='} {bound(self.high)}")
        return " and ".join(parts)

    def problem(self, value: Any) -> str | None:
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a number, got nan" if math.isnan(value) else f"must be a finite number, got {shown(value)}"
        tiny = float32_problem(value)
        if tiny:
            return tiny
        too_low = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.open_high else value > self.high)
        return f"must be {self.text()}, got {shown(value)}" if too_low or too_high else None


#: the smallest normal float32 (and bfloat16) number: models compute in float32 or lower, where a smaller non-zero
#: value reads as 0 (``beta: 1e-46``: every loss ln 2, no gradient; ``temperature=1e-320``: logits divided by 0)
#: or loses its precision; every :class:`Range` refuses one
FLOAT32_TINY = 1.1754943508222875e-38


def float32_problem(value: Any) -> str | None:
    """A non-zero float below :data:`FLOAT32_TINY` in magnitude, said; None otherwise."""
    if isinstance(value, float) and value != 0 and abs(value) < FLOAT32_TINY:
        return (f"{value!r} is below float32's smallest normal number ({FLOAT32_TINY:.2e}): models compute in "
                f"float32 or lower, where it reads as 0 or loses its precision")
    return None


def Positive() -> Range:
    """``> 0``."""
    return Range(0, open_low=True)


def NonNegative() -> Range:
    """``>= 0``."""
    return Range(0)


def AtLeast(low: float) -> Range:
    """``>= low``."""
    return Range(low)


def Probability() -> Range:
    """``0 <= value <= 1``."""
    return Range(0, 1)


def Fraction() -> Range:
    """``0 <= value < 1``."""
    return Range(0, 1, open_high=True)


class FrameCount(Rule):
    """A number of frames to sample per clip: ``>= 1``, and no more than a clip of 1x1 pixels fits in the
    per-clip decoded-bytes budget (``$SAVI_MAX_DECODED_BYTES``, :func:`savi_plugin.video.decode.frames_in_budget`).

    Such a count fails on every clip whatever its size, so it is the configuration's error, refused before the
    first item at the key, flag or model argument that set it -- never a decode failure counted per item. The
    budget is read when the value is checked, so the bound follows the variable."""

    def problem(self, value: Any) -> str | None:
        from savi_plugin.video.decode import CLIP_BYTES_ENV, decoded_bytes_budget, format_bytes, frames_in_budget

        if value < 1:
            return f"must be >= 1, got {shown(value)}"
        try:
            budget = decoded_bytes_budget()
        except ValueError:  # a bad $SAVI_MAX_DECODED_BYTES is the variable's error, named by the environment check
            return None
        most = frames_in_budget(budget)
        if value > most:
            return (f"must be at most {most}, got {shown(value)}: that many frames of even 1x1 pixels exceed the "
                    f"per-clip budget of {format_bytes(budget)} (${CLIP_BYTES_ENV}), so no clip could be decoded")
        return None


class EvalLimit(Rule):
    """lmms-eval's ``--limit``: a whole number of items per task (``>= 1``), or a fraction of each task's items
    strictly between 0 and 1 -- the one rule of every eval limit (``savi eval suite --limit``, ``eval.limit`` of a
    recipe, ``--limit`` passed to ``savi eval run``, :func:`savi_plugin.eval.command.savi_video_args`).

    lmms-eval 0.7.3 (``evaluator_utils.get_sample_size``) reads a limit below 1 as a fraction and any other as
    ``int(limit)``, with no word: ``1.5`` would evaluate 1 item, and ``0`` every item. ``1.0`` is refused as
    ambiguous: lmms-eval evaluates 1 item, while as a fraction it reads "every item"."""

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {shown(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a number, got nan" if math.isnan(value) else f"must be a finite number, got {shown(value)}"
        if 0 < value < 1:
            return None
        if isinstance(value, float) and value == 1:
            return ("1.0 is ambiguous (lmms-eval reads it as 1 item, a fraction 1.0 would be every item): write 1 "
                    "for one item per task, or give no limit for every item")
        whole = "a whole number of items per task (>= 1) or a fraction of them strictly between 0 and 1"
        if value < 1:
            every = " (lmms-eval would evaluate every item; give no limit for that)" if value in (0, -1) else ""
            return f"must be {whole}, got {shown(value)}{every}"
        if not float(value).is_integer():
            return f"must be {whole}, got {shown(value)} (lmms-eval would cut it to {int(value)} per task)"
        if value > MAX_NUMBER:
            return f"must be at most {MAX_NUMBER}, got {shown(value)}"
        return None


class OneOf(Rule):
    """The value is one of ``choices`` (or of what ``choices()`` returns, read when checked: e.g. a registry)."""

    def __init__(self, *choices: Any, what: str = ""):
        self._choices = choices[0] if len(choices) == 1 and callable(choices[0]) else choices
        self.what = what

    @property
    def choices(self) -> tuple:
        return tuple(self._choices() if callable(self._choices) else self._choices)

    def problem(self, value: Any) -> str | None:
        choices = self.choices
        if value in choices:
            return None
        what = f"{self.what} " if self.what else ""
        known = [str(c) for c in choices]
        return f"unknown {what}{shown_value(value)}; {read_as_known(value, known) or 'one of: ' + ', '.join(known)}"


class NonEmpty(Rule):
    """A non-empty string, list or mapping."""

    def problem(self, value: Any) -> str | None:
        return "must not be empty" if len(value) == 0 else None


class FileExists(Rule):
    """A path naming an existing file: as given, or what ``resolve(value)`` returns (None: not found)."""

    def __init__(self, resolve: Callable[[str], Path | str | None] | None = None, what: str = "file"):
        self.resolve, self.what = resolve, what

    def problem(self, value: Any) -> str | None:
        from savi_plugin.data.files import file_problem

        found = self.resolve(str(value)) if self.resolve else str(value)
        problem = "file not found" if found is None else file_problem(found, self.what)  # stat only, never opened
        if problem is None:
            return None
        return f"{self.what} not found: {value}" if problem == "file not found" else f"{value} {problem}"


class Each(Rule):
    """Every element of a list obeys ``declared`` (a flag with ``nargs`` checks each element as it is parsed)."""

    def __init__(self, *declared: Rule):
        self.rules = declared

    def problem(self, value: Any) -> str | None:
        found = [(i, p) for i, item in enumerate(value) for p in (rule.problem(item) for rule in self.rules) if p]
        if found:  # the element is named when there is more than one
            return f"element [{found[0][0]}] {found[0][1]}" if len(value) > 1 else found[0][1]
        return None


class Check(Rule):
    """Any predicate: ``test(value)`` is True when the value is good; ``text`` says what it must be. A ``test``
    that raises ``ValueError``/``TypeError`` refuses the value with its message (e.g. a parser)."""

    def __init__(self, test: Callable[[Any], bool], text: str = ""):
        self.test, self.text = test, text

    def problem(self, value: Any) -> str | None:
        try:
            ok = self.test(value)
        except (ValueError, TypeError) as exc:
            return f"{self.text} ({exc})" if self.text else str(exc)
        return None if ok else f"{self.text}, got {shown(value)}"


# --------------------------------------------------------------------------------------------- declaring
def rules(*declared: Rule, help: str | None = None, **metadata: Any) -> dict[str, Any]:
    """Field metadata carrying ``declared`` rules (and ``help``, which transformers' HfArgumentParser reads)."""
    out = dict(metadata, **{RULES: tuple(declared)})
    if help is not None:
        out["help"] = help
    return out


def checked(default: Any = dataclasses.MISSING, *declared: Rule, help: str | None = None,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """``dataclasses.field`` with a default and rules: ``beta: float = checked(0.1, Positive())``."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata=rules(*declared, help=help))


_REGISTERED: dict[type, dict[str, tuple[Rule, ...]]] = {}


def register_rules(cls: type, by_field: dict[str, Iterable[Rule]]) -> None:
    """Rules for fields of ``cls`` (and its subclasses); a field that declares rules in its metadata keeps those."""
    _REGISTERED.setdefault(cls, {}).update({name: tuple(r) for name, r in by_field.items()})


def field_rules(cls: type, field: dataclasses.Field) -> tuple[Rule, ...]:
    """The rules of one field: those its metadata declares, else those registered for its class or a base."""
    if RULES in field.metadata:
        return tuple(field.metadata[RULES])
    for klass in cls.__mro__:
        if field.name in _REGISTERED.get(klass, {}):
            return _REGISTERED[klass][field.name]
    return ()


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that cannot be resolved is checked as Any
        return {}


# --------------------------------------------------------------------------------------------- types
def _name(annotation: Any) -> str:
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type):
        return annotation.__name__
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:  # int | None -> "int or null"
        return " or ".join(_name(o) for o in typing.get_args(annotation))
    if isinstance(origin, type):  # list[str] -> list: the element type is named when an element is wrong
        return origin.__name__
    return str(annotation).replace("typing.", "")


def _options(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return list(typing.get_args(annotation))
    return [annotation]


def source_name(source: str | Path | None) -> str | None:
    """``source`` as a ``str``; a ``str`` as is, so one that knows which source set each key path
    (:class:`~savi_plugin.config.origins.KeySources`) keeps that knowledge for the errors raised with it."""
    return source if isinstance(source, str) or source is None else str(source)


def coerce(value: Any, annotation: Any, path: str = "", source: str | None = None) -> Any:
    """``value`` checked against ``annotation`` (and widened: int -> float, numeric string -> float).

    Raises:
        ConfigError: ``expected <type>, got <type> (<value>)``.
    """
    if annotation is Any or annotation is None or isinstance(annotation, (str, typing.TypeVar)):
        return value
    options = _options(annotation)
    if value is None:
        if type(None) in options or any(o is Any for o in options):
            return None
        raise ConfigError(path, f"expected {' or '.join(map(_name, options))}, got null", source)
    enums = [o for o in options if _is_str_enum(o)]
    if enums and isinstance(value, str):  # `SomeEnum | str` (transformers' style): the string names a member
        values = [m.value for e in enums for m in e]
        if value not in values:
            raise ConfigError(path, _unknown_value(value, values), source)
        return value
    for opt in options:  # exact matches first, so `str | float` keeps a string a string
        ok, out = _match(value, opt, path, source, widen=False)
        if ok:
            return out
    for opt in options:
        ok, out = _match(value, opt, path, source, widen=True)
        if ok:
            return out
    names = " or ".join(_name(o) for o in options if o is not type(None))
    if all(dataclasses.is_dataclass(o) or o is dict or o is type(None) for o in options):
        names = "a mapping"
    hint = ""
    if isinstance(value, bool) and any(o is str or _is_str_enum(o) for o in options):
        hint = "; YAML reads unquoted no/yes/on/off/true/false as booleans: quote it, e.g. 'no'"
    elif isinstance(value, QuotedNumber) and any(o in (int, float) for o in options):
        hint = "; it is written in quotes, so YAML reads it as text: write the number without quotes"
    elif isinstance(value, str) and re.fullmatch(r"\s*[-+]?[0-9]+[eE][-+]?[0-9]+\s*", value) and any(
            o in (int, float) for o in options):
        hint = "; YAML 1.1 reads a number written as 1e3 (no dot) as text: write 1000 or 1.0e3"
    raise ConfigError(path, f"expected {names}, got {'str' if isinstance(value, str) else type(value).__name__} "
                            f"({shown(value)}){hint}", source)


def _is_str_enum(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, enum.Enum)


def _match(value: Any, annotation: Any, path: str, source: str | None, widen: bool) -> tuple[bool, Any]:
    origin = typing.get_origin(annotation) or annotation
    if annotation is Any:
        return True, value
    if annotation is type(None):
        return value is None, value
    if origin is typing.Literal:
        return value in typing.get_args(annotation), value
    if _is_str_enum(annotation):
        values = [m.value for m in annotation]
        if isinstance(value, annotation):
            return True, value
        if isinstance(value, str) and value in values:
            return True, value
        if isinstance(value, str) and widen:
            raise ConfigError(path, _unknown_value(value, values), source)
        return False, value
    if annotation is bool:
        return isinstance(value, bool), value
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if annotation is float:
        if isinstance(value, float) or (widen and isinstance(value, int) and not isinstance(value, bool)):
            try:
                return True, float(value)
            except OverflowError:  # an integer beyond a float's range (~1.8e308): not a float, whatever its rules
                raise ConfigError(path, f"must be a finite number, got {shown(value)}, an integer beyond the range "
                                        f"of a floating-point number", source) from None
        if widen and isinstance(value, str) and not isinstance(value, QuotedNumber) and _NUMBER.fullmatch(
                value.strip()):  # YAML 1.1 reads an unquoted 1e-4 as text
            number = float(value)
            problem = underflow_problem(value, number)  # 1e-400 reads as 0
            if problem:
                raise ConfigError(path, problem, source)
            return True, number
        return False, value
    if annotation is str:  # a QuotedNumber is the text it holds, as a plain str from here on
        return isinstance(value, str), str(value) if isinstance(value, QuotedNumber) else value
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        if isinstance(value, annotation):
            return True, value
        if isinstance(value, dict):
            return True, build(annotation, value, path, source)
        return False, value
    if origin in (list, tuple, set, frozenset):
        if not isinstance(value, (list, tuple)):
            return False, value
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        if len(args) == 1:
            value = [coerce(v, args[0], f"{path}[{i}]", source) for i, v in enumerate(value)]
        return True, (tuple(value) if origin is tuple else list(value))
    if origin is dict:
        return isinstance(value, dict), value
    if isinstance(origin, type):
        return isinstance(value, origin), value
    return True, value


# --------------------------------------------------------------------------------------------- checking
#: The ceiling of a number whose rules declare no upper bound (counts, sizes, steps, scales, seeds): no value a
#: recipe, flag or option sets may be larger in magnitude -- 2**32 - 1, the largest seed numpy takes -- so a
#: typo such as ``1e30`` is refused instead of overflowing a tensor's dtype or running until killed. Memory for
#: video is bounded separately, in bytes (:mod:`savi_plugin.video.budget`).
MAX_NUMBER = 2**32 - 1


def number_problem(value: Any, declared: Iterable[Rule] = ()) -> str | None:
    """What is wrong with a number whatever its field: not finite (inf, nan), non-zero below float32's smallest
    normal number (:func:`float32_problem`), or above :data:`MAX_NUMBER` in magnitude where no rule declares an
    upper bound. Lists are checked element by element; None otherwise."""
    if isinstance(value, (list, tuple)):
        found = [(i, p) for i, p in enumerate(number_problem(v, declared) for v in value) if p]
        return (f"element [{found[0][0]}] {found[0][1]}" if len(value) > 1 else found[0][1]) if found else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {shown(value)}"
    if float32_problem(value):
        return float32_problem(value)
    ranges = [r for rule in declared for r in ((rule,) if isinstance(rule, Range) else getattr(rule, "rules", ()))
              if isinstance(r, Range)]
    if any(r.high is not None for r in ranges):
        return None
    if abs(value) > MAX_NUMBER:
        return f"must be at most {MAX_NUMBER} in magnitude, got {shown(value)}"
    return None


def check_value(cls: type, field: dataclasses.Field, value: Any, path: str, source: str | None = None) -> Any:
    """One field's value: type (from the annotation), finiteness and magnitude (:func:`number_problem`), then
    rules; returns the (widened) value."""
    value = coerce(value, _hints(cls).get(field.name, Any), path, source)
    if value is not None:
        declared = field_rules(cls, field)
        problem = number_problem(value, declared)
        if problem:
            raise ConfigError(path, problem, source)
        for rule in declared:
            problem = rule.problem(value)
            if problem:
                raise ConfigError(path, problem, source)
    return value


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def check_mapping(cls: type, mapping: Any, prefix: str = "", source: str | Path | None = None, *,
                  what: str = "key") -> dict[str, Any]:
    """Check a mapping meant for ``cls(**mapping)`` without constructing it; returns the widened mapping.

    ``what`` names a key in the unknown-key message (``unknown option``, ``unknown key``).

    Raises:
        ConfigError: an unknown key (listing the known ones), a wrong type, or a value a rule refuses.
    """
    source = source_name(source)
    if not isinstance(mapping, dict):
        raise ConfigError(prefix or "<top>", f"expected a mapping, got {type(mapping).__name__} ({shown(mapping)})",
                          source)
    fields = _fields(cls)
    out = {}
    for key, value in mapping.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            origin_of = getattr(source, "origin_of", None)  # where the key was set, found by the key as written
            raise ConfigError(f"{prefix}.{shown_name(key)}" if prefix else shown_name(key),
                              unknown_name(key, list(fields), what), origin_of(path) if origin_of else source)
        out[key] = check_value(cls, fields[key], value, path, source)
    return out


def _unknown_value(value: Any, values: list) -> str:
    """The refusal of a string that is none of an enum's ``values``: what it reads as, or the values."""
    known = [str(v) for v in values]
    return f"unknown value {shown_value(value)}; {read_as_known(value, known) or 'one of: ' + ', '.join(known)}"


def check_key_path(cls: type, keys: list[str], source: str | Path | None = None, *, what: str = "key") -> None:
    """Refuse a key path (``["model", "num_frame"]``) that names no field of ``cls``, as deep as dataclasses
    declare it: keys under a field of another type (a mapping such as ``train``) are left to that field's own
    check. Cheap and value-free: an override's key is checked before its value is parsed.

    Raises:
        ConfigError: at the first unknown key, with :func:`check_mapping`'s message.
    """
    source = source_name(source)
    for depth, key in enumerate(keys):
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            return
        fields = _fields(cls)
        if key not in fields:
            origin_of = getattr(source, "origin_of", None)  # where the key was set, found by the key as written
            raise ConfigError(".".join([*keys[:depth], shown_name(key)]), unknown_name(key, list(fields), what),
                              origin_of(".".join(keys[:depth + 1])) if origin_of else source)
        options = [o for o in _options(_hints(cls).get(key, Any)) if o is not type(None)]
        cls = options[0] if len(options) == 1 else None


def build(cls: type, mapping: Any, prefix: str = "", source: str | Path | None = None, *, what: str = "key"):
    """``cls(**mapping)`` after :func:`check_mapping`; a ``ValueError``/``TypeError`` raised by the class's
    own ``__post_init__`` becomes a :class:`ConfigError` at ``prefix``."""
    kwargs = check_mapping(cls, {} if mapping is None else mapping, prefix, source, what=what)
    for name, field in _fields(cls).items():
        if name not in kwargs and field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{prefix}.{name}" if prefix else name, "missing required key", source)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise exc.located(source, prefix) from None
    except (ValueError, TypeError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        # "beta must be > 0", "--save_steps must be ...", "`torch_empty_cache_steps` must be ...": at prefix.<it>
        first = re.split(r"[\s:=]", message, maxsplit=1)[0].lstrip("-").strip("`'\"")
        path = prefix or cls.__name__
        if first in _fields(cls) or len(kwargs) == 1:  # the field it names, or the only one given
            key = first if first in _fields(cls) else next(iter(kwargs))
            path = f"{prefix}.{key}" if prefix else key
        raise ConfigError(path, message, source) from None


def validate(obj: Any, prefix: str = "", source: str | Path | None = None) -> None:
    """Check every field of a built dataclass instance (nested dataclasses too)."""
    source = source_name(source)
    cls = type(obj)
    for name, field in _fields(cls).items():
        path = f"{prefix}.{name}" if prefix else name
        value = getattr(obj, name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate(value, path, source)
        else:
            check_value(cls, field, value, path, source)


def to_dict(obj: Any) -> Any:
    """A dataclass (nested ones too) as plain data: enums become their values, tuples lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


# --------------------------------------------------------------------------------------------- flags
def arg_type(cls: type, name: str, flag: str | None = None) -> Callable[[str], Any]:
    """An argparse ``type=`` that parses a flag's text as field ``name`` of ``cls`` and applies its rules.

    argparse reports a refusal as ``argument --flag: <message>`` and exits 2.
    """
    field = _fields(cls)[name]
    annotation = _hints(cls).get(name, Any)
    element = _element_type(annotation)

    def parse(text: str) -> Any:
        try:
            if element is not None:  # a list flag (nargs): argparse parses and checks each element on its own
                return check_value(cls, field, [_from_text(text, element)], flag or name)[0]
            return check_value(cls, field, _from_text(text, annotation), flag or name)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    parse.__name__ = _name(element if element is not None else annotation)  # argparse's "invalid <type> value"
    return parse


def _element_type(annotation: Any) -> Any:
    """``X`` of a ``list[X]`` (or ``tuple[X, ...]``) annotation (``Any`` for a bare list), else None."""
    args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
    return (args[0] if len(args) == 1 else Any) if typing.get_origin(annotation) in (list, tuple) else None


def _from_text(text: str, annotation: Any) -> Any:
    """A flag's text as the first of int/float/bool that ``annotation`` allows (other types: the text)."""
    simple = [o for o in _options(annotation) if o in (int, float, bool)]
    if simple and simple[0] is int:
        # ASCII digits, as a recipe writes an integer: int() also reads `٣` as 3, `１００` as 100 and `1_0` as 10
        if _INTEGER.fullmatch(text):
            return int(text)
        if float in simple:  # `int | float`: "0.5" is the float the annotation allows (widened by coerce)
            return text
        raise ConfigError("", f"expected an integer, got {shown(text)}")
    if simple and simple[0] is bool:
        return {"true": True, "false": False, "1": True, "0": False}.get(text.lower(), text)
    return text


def add_flag(parser: argparse.ArgumentParser, flag: str, cls: type, name: str, **kwargs: Any):
    """``parser.add_argument(flag, ...)`` for field ``name`` of ``cls``: its type and rules (:func:`arg_type`),
    and its default unless ``default=`` is given. A ``list[X]`` field takes ``nargs="+"`` (unless given) and
    checks each element against its :class:`Each` rules."""
    field = _fields(cls)[name]
    if "default" not in kwargs and (field.default, field.default_factory) != (dataclasses.MISSING,) * 2:
        kwargs["default"] = field.default_factory() if field.default is dataclasses.MISSING else field.default
    if _element_type(_hints(cls).get(name, Any)) is not None:
        kwargs.setdefault("nargs", "+")  # a list field: one or more values, each parsed and checked
    help_text = kwargs.pop("help", None) or field.metadata.get("help")
    if help_text and help_text != argparse.SUPPRESS and kwargs.get("default") is not None:
        default = " ".join(map(str, kwargs["default"])) if isinstance(kwargs["default"], list) else kwargs["default"]
        help_text = f"{help_text} (default {default})"
    return parser.add_argument(flag, type=arg_type(cls, name, flag), help=help_text, **kwargs)


def check_field(cls: type, name: str, value: Any, path: str | None = None, source: str | Path | None = None) -> Any:
    """``value`` checked as field ``name`` of ``cls`` (for a function argument that mirrors a configuration
    field, e.g. ``run_generation(num_frames=...)``); returns the widened value."""
    source = source_name(source)
    return check_value(cls, _fields(cls)[name], value, path or name, source)

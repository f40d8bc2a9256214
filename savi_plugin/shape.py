"""The shape of a JSON document savi writes, declared once beside its writer and checked whole by its reader.

A shape says what every key at every depth holds: a whole count, a finite number, a string, a name, a switch,
null where the writer can write null, a list or a mapping of them, or a record of named fields. A reader that
takes a document back (``savi eval compare`` reading a suite's ``table.json``) checks it against the shape its
writer declares, and refuses the first key the writer never writes, a field it always writes that is missing, or a
value of another kind, naming its path (``card.base_model.note``, ``rows[0].n``). Rules between fields (a Δ is
``aligned - base``) are the reader's own, checked on a document of the right shape.

A document reaches a shape already parsed by :mod:`savi_plugin.untrusted` (no NaN, no duplicate key, bounded size
and depth), so the values are JSON's: dicts, lists, strings, ints, floats, bools and None.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from savi_plugin.config.values import MAX_NUMBER, Rule
from savi_plugin.untrusted import shown

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_]{1,60}")


def key_path(at: str, key: Any) -> str:
    """``at.key``: a key of letters, digits and ``_`` as it is, any other quoted and escaped within bounds
    (:func:`~savi_plugin.untrusted.shown`), so a key holding a bidi override or a line end is named, not drawn."""
    name = key if isinstance(key, str) and _PLAIN_KEY.fullmatch(key) else shown(key, 60)
    return f"{at}.{name}" if at else str(name)


def _said(at: str, message: str) -> str:
    return f"{at}: {message}" if at else message


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a switch (true/false)",
            type(None): "null"}.get(type(value), "a number")


class Shape:
    """What one value of a document is. :meth:`problem` says what is wrong with ``value`` found at path ``at``
    (``at: message``), or None."""

    #: what a value of this shape is, for messages ("a whole number >= 0")
    what: str = ""

    def problem(self, value: Any, at: str) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _wrong_kind(self, value: Any, at: str) -> str:
        return _said(at, f"{_kind(value)}, not {self.what}")


@dataclass(frozen=True)
class Count(Shape):
    """A whole number from ``low`` to ``high`` (items, frames: at most :data:`~savi_plugin.config.values.MAX_NUMBER`):
    JSON's ``4``, never ``4.0`` or ``true``, which no writer of a count writes."""

    low: int = 0
    high: int = MAX_NUMBER

    @property
    def what(self) -> str:
        return f"a whole number >= {self.low}"

    def problem(self, value: Any, at: str) -> str | None:
        if isinstance(value, float):  # 4.0 included: no writer of a count writes one
            return _said(at, f"{shown(value)} is written as a decimal number; a count is written as a whole "
                             f"number (4, not 4.0)")
        if isinstance(value, bool) or not isinstance(value, int):
            return self._wrong_kind(value, at)
        if value < self.low:
            return _said(at, f"{value} is below {self.low}" if self.low else f"a count below 0 ({value})")
        if value > self.high:
            most = " (at most 2^32-1 items)" if self.high == MAX_NUMBER else ""
            return _said(at, f"{shown(value)} is above {self.high}{most}")
        return None


@dataclass(frozen=True)
class Number(Shape):
    """A finite number from ``low`` to ``high`` (``unit`` says what it measures)."""

    low: float
    high: float
    unit: str = ""

    @property
    def what(self) -> str:
        return "a number"

    def problem(self, value: Any, at: str) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return self._wrong_kind(value, at)
        if not (math.isfinite(value) and self.low <= value <= self.high):
            unit = f" ({self.unit})" if self.unit else ""
            return _said(at, f"{shown(value)} is outside [{self.low:g}, {self.high:g}]{unit}")
        return None


@dataclass(frozen=True)
class Ruled(Shape):
    """A value by a configuration rule (:class:`savi_plugin.config.values.Rule`): the one rule its writer's input
    passed (``--limit``'s :class:`~savi_plugin.config.values.EvalLimit`)."""

    rule: Rule
    what: str = "a value"

    def problem(self, value: Any, at: str) -> str | None:
        found = self.rule.problem(value)
        return _said(at, found) if found else None


@dataclass(frozen=True)
class Text(Shape):
    """A string; ``pattern`` (a regular expression it matches whole) where the writer writes one form only (a
    SHA-256 digest)."""

    pattern: str | None = None
    what: str = "a string"

    def problem(self, value: Any, at: str) -> str | None:
        if not isinstance(value, str):
            return self._wrong_kind(value, at)
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return _said(at, f"{shown(value, 80)} is not {self.what}")
        return None


@dataclass(frozen=True)
class Name(Shape):
    """A name a reader shows and matches (a task, an adapter label): a non-empty string with no spaces around it
    (``'mvbench '`` would pass as another task than ``'mvbench'``) holding nothing data text may not
    (:func:`savi_plugin.untrusted.text_problem`: a bidi override would draw it in another order); ``pattern``
    where its writer makes it of fewer characters; ``exact``: names a reader tells apart only as written (the losses
    savi ships), so a name that reads as one of them but is not it (another case, a look-alike or invisible
    character: :func:`savi_plugin.untrusted.equality_key`, case-folded) is refused, never taken for another name."""

    pattern: str | None = None
    what: str = "a name"
    exact: frozenset[str] = frozenset()

    def problem(self, value: Any, at: str) -> str | None:
        from savi_plugin.untrusted import reads_as, text_problem

        if not isinstance(value, str):
            return _said(at, "not a string")
        if not value or value != value.strip():
            return _said(at, f"{shown(value)} is empty or has spaces around it")
        found = text_problem(value)
        if found:
            return _said(at, found)
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return _said(at, f"{shown(value)} is not {self.what}")
        like = next((name for name in sorted(self.exact) if name != value and reads_as(value, name)), None)
        if like is not None:
            return _said(at, f"{shown(value)} reads as {like!r} but is not it (names here are compared exactly: "
                             f"write {like!r})")
        return None


@dataclass(frozen=True)
class Flag(Shape):
    """``true`` or ``false``."""

    what: str = "a switch (true/false)"

    def problem(self, value: Any, at: str) -> str | None:
        return None if isinstance(value, bool) else self._wrong_kind(value, at)


@dataclass(frozen=True)
class AnyObject(Shape):
    """An object whose content another program decides (lmms-eval's ``generation_kwargs`` of a task, copied as it
    wrote them): any keys, any JSON values; a reader compares it whole."""

    what: str = "an object"

    def problem(self, value: Any, at: str) -> str | None:
        return None if isinstance(value, dict) else self._wrong_kind(value, at)


@dataclass(frozen=True)
class Nullable(Shape):
    """``inner``, or null where the writer writes null."""

    inner: Shape

    @property
    def what(self) -> str:
        return f"{self.inner.what} or null"

    def problem(self, value: Any, at: str) -> str | None:
        return None if value is None else self.inner.problem(value, at)


@dataclass(frozen=True)
class OneOf(Shape):
    """A value of one of ``options`` (a frame count, or the text that says the model's own)."""

    options: tuple[Shape, ...]

    @property
    def what(self) -> str:
        return " or ".join(o.what for o in self.options)

    def problem(self, value: Any, at: str) -> str | None:
        if any(o.problem(value, at) is None for o in self.options):
            return None
        return _said(at, f"{shown(value, 80)} is not {self.what}")


@dataclass(frozen=True)
class ListOf(Shape):
    """A list of ``item``; ``nonempty`` where the writer always writes one at least."""

    item: Shape
    nonempty: bool = False

    @property
    def what(self) -> str:
        return "a list"

    def problem(self, value: Any, at: str) -> str | None:
        if not isinstance(value, list):
            return self._wrong_kind(value, at)
        if self.nonempty and not value:
            return _said(at, "empty, though its writer always writes one at least")
        return next((p for i, v in enumerate(value) if (p := self.item.problem(v, f"{at}[{i}]"))), None)


@dataclass(frozen=True)
class MapOf(Shape):
    """An object from names (``key``: a task, an adapter label) to ``value``; ``nonempty`` where the writer always
    writes one at least."""

    key: Shape
    value: Shape
    nonempty: bool = False

    @property
    def what(self) -> str:
        return "an object"

    def problem(self, value: Any, at: str) -> str | None:
        if not isinstance(value, dict):
            return self._wrong_kind(value, at)
        if self.nonempty and not value:
            return _said(at, "empty, though its writer always writes one at least")
        for key, item in value.items():
            found = self.key.problem(key, f"{at}: key {shown(key, 60)}") or self.value.problem(item, key_path(at, key))
            if found:
                return found
        return None


@dataclass(frozen=True)
class Record(Shape):
    """An object of named ``fields`` (declared in the order its writer writes them): a key outside them is
    refused (the first in sorted order), and so is a field missing that is not ``optional``.

    ``name`` says what the record is ("an eval card"): ``card.x: not a field of an eval card (it holds ...)``.
    ``open``: the document holds more than the reader reads (a Trainer's ``trainer_state.json``, whose other keys
    are transformers' to decide): keys outside ``fields`` are left unread, not refused."""

    name: str
    fields: dict[str, Shape]
    optional: frozenset[str] = field(default_factory=frozenset)
    open: bool = False

    @property
    def what(self) -> str:
        return "an object"

    def problem(self, value: Any, at: str) -> str | None:
        if not isinstance(value, dict):
            return self._wrong_kind(value, at)
        unknown = [] if self.open else sorted((key for key in value if key not in self.fields), key=str)
        if unknown:
            return (f"{key_path(at, unknown[0])}: not a field of {self.name} (it holds "
                    f"{', '.join(self.fields)})")
        missing = [key for key in self.fields if key not in value and key not in self.optional]
        if missing:
            return f"{key_path(at, missing[0])}: missing; {self.name} always holds it"
        return next((p for key, shape in self.fields.items()
                     if key in value and (p := shape.problem(value[key], key_path(at, key)))), None)


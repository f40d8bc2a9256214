"""The boundary for untrusted structured text: every YAML and JSON document the project reads from a user.

Recipes, ``-o``/``--option`` values and ``--options`` files, prompt files, manifests, pair files and fixtures
are parsed here, with limits that hold whatever the document's shape:

- **nesting**: at most :data:`MAX_DEPTH` levels of lists and mappings. Deeper documents are refused with one
  line before Python's recursion limit is reached (``[[[[...]]]]`` 100 000 deep is a 200 kB file);
- **YAML aliases**: at most :data:`MAX_ALIASES` alias references per document, and the document *as expanded*
  (every alias counted as a copy of what it names) at most :data:`MAX_NODES` nodes. Nodes are counted on the
  composed graph with one memo per node, before anything is constructed, so nine lines of nested aliases
  (the "billion laughs", ~10**9 nodes) are refused in microseconds instead of being expanded by a later
  deep copy, merge or ``json.dumps``; likewise at most :data:`MAX_EXPANDED_CHARS` characters of text once
  expanded (200 aliases of one 2 MB string would be stored 400 MB deep in every copy of the configuration);
- **YAML size**: at most :data:`MAX_YAML_CHARS` characters in one document, refused before it is parsed (PyYAML
  parses in pure Python, about 10 s and 200 MB per MB of a long list);
- only YAML's safe tags (``yaml.SafeLoader``): no Python objects;
- **no YAML 1.1-only number**: a scalar PyYAML resolves as an octal (``010`` is 8), binary (``0b11``) or
  sexagesimal (``1:30`` is 90) number, which YAML 1.2 and a reader take as 10 or as text, is refused at its key
  path (quoted, it is text); hexadecimal ``0x10`` is 16 in both versions and is kept;
- **no YAML key given twice in one mapping** (flow ``{beta: 0.1, beta: 0.9}``, block style, two ``train:``
  sections): YAML keeps the last value silently; the refusal names the file, the line and the key path. Keys
  are compared as the values they construct to (``1``, ``1.0`` and ``true`` are one dict key). YAML's merge key
  ``<<: *base`` stays the way to inherit and override: the mapping's own keys win over merged ones (YAML's rule),
  and ``<<`` itself may appear once, like any key;
- **JSON size in values**: at most ``$SAVI_MAX_DOCUMENT_VALUES`` values (objects, lists and their items; default
  8 million) in one document, counted on the text before it is parsed (:func:`json_value_count`). The byte cap
  (``$SAVI_MAX_DOCUMENT_BYTES``) bounds the text, not what it parses into: 60 MB of ``[{},{},...]`` took about 65
  times its size in memory; 8 million of the costliest values take about 1 GB;
- **JSON values**: no ``NaN``/``Infinity``, no number beyond a float's range (``1e999``), no integer of more than
  :data:`MAX_INT_DIGITS` digits, no key given twice in one object (``json`` would keep the last one silently).

Every YAML document is a configuration (a recipe, an override, an ``--option`` value, an ``--options`` or prompt
file), so a YAML refusal is always a :class:`~savi_plugin.errors.ConfigError` (exit status 2, stop before the first
item) naming the source, the line and the key path. A JSON refusal raises the caller's error class (a
``ConfigError`` by default; the data readers pass their ``DataError``, an input failure of one record), except
one above ``$SAVI_MAX_DOCUMENT_VALUES``: that is a :class:`~savi_plugin.errors.DocumentTooLarge` (exit 2) whoever
reads, since the variable is what to correct.

Text equality under Unicode normalisation and look-alike folding (:func:`equality_key`, :func:`same_text`; TR39
confusables from ``confusables.txt``) lives here too: it decides when two pieces of
untrusted text are "the same" (chosen vs rejected, two answer options).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
import re
import reprlib
import unicodedata
from collections.abc import Callable
from importlib import resources
from typing import Any

import yaml

#: deepest nesting of lists/mappings in any document (the deepest recipe or record we ship is 4)
MAX_DEPTH = 64
#: most alias references (``*name``) in one YAML document
MAX_ALIASES = 256
#: most nodes in one YAML document with every alias expanded
MAX_NODES = 1_000_000
#: text (characters of every scalar) a YAML document may hold once its aliases are expanded
MAX_EXPANDED_CHARS = 16 * 2**20
#: most characters of one YAML document, checked before it is parsed. Every YAML document is a configuration (a
#: recipe, an override, an ``--option`` value, an ``--options`` or prompt file); the largest savi ships is 3642
#: characters (``generators/prompts/videosavi.yaml``), 1/72 of this. PyYAML's loader is pure Python: a 6.9 MB recipe (a list
#: of 990 000 short items, under :data:`MAX_NODES`) took 69 s and 1.38 GB before anything was said; 256 KiB of the
#: same takes a few seconds.
MAX_YAML_CHARS = 256 * 1024
#: most digits of a JSON integer (CPython's own default limit on int/str conversion, held whatever the interpreter's
#: setting, so a 5000-digit number is refused naming its file and line instead of by ``int()``)
MAX_INT_DIGITS = 4300


class StructureError(ValueError):
    """A document beyond a limit of this module, or not parseable; ``str()`` is one line. ``line`` (1-based) and
    ``path`` (the key path, ``train.beta``) say where in a YAML document, when known."""

    def __init__(self, message: str, line: int | None = None, path: str = ""):
        super().__init__(message)
        self.line, self.path = line, path


def _config_error(source: str | None) -> Callable[[str], Exception]:
    from savi_plugin.errors import ConfigError

    return lambda message, line=None: ConfigError("", message, f"{source}:{line}" if source and line else source)


class QuotedNumber(str):
    """A YAML scalar written in quotes whose text is a number (``beta: "0.5"``): text to YAML, and so to a field
    that takes text, but never widened into a number where a number goes (:func:`savi_plugin.config.values.coerce`
    widens only *unquoted* text, as PyYAML reads a YAML 1.2 float such as ``1e-4``), as an int field refuses
    ``"3"``. Dumped as the text it is."""


yaml.add_representer(QuotedNumber, yaml.representer.SafeRepresenter.represent_str, Dumper=yaml.SafeDumper)
yaml.add_representer(QuotedNumber, yaml.representer.SafeRepresenter.represent_str, Dumper=yaml.Dumper)

#: the text of a number as a user writes it (digits, a sign, a point, an exponent; inf and nan)
_NUMBER_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*|\s*[+-]?\.?(inf|nan)\s*",
                          re.IGNORECASE | re.ASCII)


class _LimitedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that counts depth and aliases while composing and expanded nodes after."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._path: list[str | int] = []  # the key path of the node being composed (a key, or a list index)

    def compose_node(self, parent, index):
        line = self.peek_event().start_mark.line + 1
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise StructureError(f"more than {MAX_ALIASES} YAML aliases (*name) in one document", line,
                                     self._key_path())
        self._depth += 1
        # a mapping's value is composed with its key node as ``index``, a list item with its position
        self._path.append(index if isinstance(index, int) else getattr(index, "value", "?")
                          if isinstance(index, yaml.ScalarNode) else "?")
        try:
            if self._depth > MAX_DEPTH:
                raise StructureError(f"nested deeper than {MAX_DEPTH} levels", line)
            node = super().compose_node(parent, index)
            if isinstance(node, yaml.ScalarNode) and (problem := _yaml11_number_problem(self, node)
                                                       or _underflow_problem(self, node)):
                if index is None and isinstance(parent, yaml.MappingNode):  # a key (composed with no index)
                    raise StructureError(f"key {problem}", line, self._key_path(end=-1))
                raise StructureError(problem, line, self._key_path())
            return node
        finally:
            self._depth -= 1
            self._path.pop()

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        _refuse_duplicate_keys(self, node, self._key_path())
        return node

    def _key_path(self, end: int | None = None) -> str:
        """``train.loss_options.beta``, ``eval.tasks[2]``: where the node being composed sits (the document's
        root is the first entry, which names nothing); ``end=-1``: where its parent sits."""
        out = ""
        for part in self._path[1:end]:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out

    def compose_document(self):
        node = super().compose_document()
        _check_expanded_size(node)
        return node


def _refuse_duplicate_keys(loader: yaml.SafeLoader, node: yaml.MappingNode, path: str) -> None:
    """Refuse a key written twice in one mapping (YAML would keep the last value silently).

    Keys are compared as the values they construct to -- ``beta`` and ``"beta"`` are one key, and so are ``1``,
    ``1.0`` and ``true``, which one Python dict cannot hold apart. The merge key ``<<`` is not a key of the mapping:
    the keys it brings in may be overridden by the mapping's own (YAML's merge rule), but ``<<`` itself may appear
    once, like any key.
    """
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue  # a mapping or list as a key is refused by the constructor (unhashable)
        construct = loader.yaml_constructors.get(key_node.tag)
        try:
            key = (key_node.tag, key_node.value) if construct is None else construct(loader, key_node)
            hash(key)
        except (yaml.YAMLError, TypeError, ValueError):
            key = (key_node.tag, key_node.value)
        line = key_node.start_mark.line + 1
        if key in seen:
            where = f" (lines {seen[key]} and {line})" if seen[key] != line else ""
            full = f"{path}.{key_node.value}" if path else key_node.value
            raise StructureError(f"key {key_node.value!r} appears twice in one mapping{where}: which value is meant "
                                 f"is ambiguous (YAML would keep the last silently); write it once", line, full)
        seen[key] = line


_INT_TAG, _FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_YAML11_OCTAL = re.compile(r"[-+]?0[0-7_]+")
_YAML11_BINARY = re.compile(r"[-+]?0b[01_]+")


def underflow_problem(text: str, value: float) -> str | None:
    """The one rule for a number written as text: ``text`` (not 0 as written) that reads as ``value`` 0.0
    (``1e-400``) is refused, as a number beyond a float's range is -- it would silently switch off what it sets (a
    learning rate, RRPO's KL weight, a temperature). Asked by every reader of numbers from text: JSON, YAML,
    recipe values and ``savi_video``'s settings."""
    if value == 0.0 and re.search(r"[1-9]", str(text).strip().lower().partition("e")[0]):
        return f"{shown(str(text).strip())} is too small for a floating-point number (it would read as 0)"
    return None


def _underflow_problem(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str | None:
    """Why a float scalar is refused, or None: a number that is not 0 as written but reads as 0 (``1e-400``),
    which would silently switch off what it sets (a learning rate, RRPO's KL weight), as JSON's reader refuses it."""
    if node.tag != _FLOAT_TAG:
        return None
    with contextlib.suppress(ValueError, OverflowError):
        return underflow_problem(node.value, loader.construct_yaml_float(node))
    return None


def _yaml11_number_problem(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str | None:
    """Why a scalar that YAML 1.1 (PyYAML) resolves to a number is refused, or None: an octal (``010`` is 8),
    binary (``0b11`` is 3), sexagesimal (``1:30`` is 90) or digit-grouped (``1_0`` is 10) number. YAML 1.2 -- and so most other YAML readers and
    a user's own reading -- takes ``010`` as 10 and the other two as text: the value is ambiguous, and read as
    YAML 1.1 it silently became another number. An octal of the same value both ways (``0``, ``07``) is kept.
    Hexadecimal (``0x10``) is kept: YAML 1.2's core schema reads it as 16 too, so every reader agrees."""
    if node.tag not in (_INT_TAG, _FLOAT_TAG):
        return None
    text = node.value
    if ":" in text:
        kind, other = "sexagesimal (base 60)", f"the text {text!r}"
    elif node.tag == _INT_TAG and _YAML11_BINARY.fullmatch(text):
        kind, other = "binary", f"the text {text!r}"
    elif node.tag == _INT_TAG and _YAML11_OCTAL.fullmatch(text) and (
            int(text.replace("_", "")) != loader.construct_yaml_int(node)):
        kind, other = "octal", str(int(text.replace("_", "")))
    elif "_" in text:  # YAML 1.1 drops digit separators (1_0 is 10); YAML 1.2 reads such a scalar as text
        kind, other = "digit-grouped", f"the text {text!r}"
    else:
        return None
    value = loader.construct_yaml_int(node) if node.tag == _INT_TAG else loader.construct_yaml_float(node)
    spellings = f"{value}, {other}" if kind == "octal" else f"{value}"
    return (f"{text!r} is a YAML 1.1 {kind} number ({value}), which other YAML readers take as {other}: write "
            f"{spellings}, or quote it")


def _check_expanded_size(root: yaml.Node) -> None:
    """Refuse a composed document whose alias-expanded node count exceeds :data:`MAX_NODES`, or whose expanded
    text exceeds :data:`MAX_EXPANDED_CHARS` (memoised per node, iterative: linear in the composed graph's size,
    not the expanded one's)."""
    sizes: dict[int, tuple[int, int]] = {}  # node -> (values, characters) once expanded
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if children_done:
            own = len(node.value) if isinstance(node, yaml.ScalarNode) else 0
            total = 1 + sum(sizes[id(c)][0] for c in children)
            chars = own + sum(sizes[id(c)][1] for c in children)
            if total > MAX_NODES:
                raise StructureError(f"expands to more than {MAX_NODES} values once its YAML aliases are "
                                     f"followed (a few aliases of aliases multiply; write the values out)",
                                     node.start_mark.line + 1)
            if chars > MAX_EXPANDED_CHARS:
                raise StructureError(f"expands to more than {MAX_EXPANDED_CHARS // 2**20} Mi characters of text "
                                     f"once its YAML aliases are followed (every copy is stored with the run's "
                                     f"configuration)", node.start_mark.line + 1)
            sizes[id(node)] = (total, chars)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _construct_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    """A YAML text scalar; one written in quotes whose text is a number as :class:`QuotedNumber`."""
    value = loader.construct_yaml_str(node)
    return QuotedNumber(value) if node.style in ("'", '"') and _NUMBER_TEXT.fullmatch(value) else value


_LimitedLoader.add_constructor("tag:yaml.org,2002:str", _construct_text)


def load_yaml(text: str, source: str | None = None, prefix: str = "") -> Any:
    """``yaml.safe_load(text)`` within this module's limits.

    Args:
        source: what the text is, for messages: a file name, ``override 'k=v'``, ``--option k``.
        prefix: the key path the document is the value of (an override's ``train.beta``), put before a key
            path found inside it.

    Raises:
        ConfigError: ``source[:line]: prefix.key.path: message`` for invalid YAML or a document beyond a limit
        (longer than :data:`MAX_YAML_CHARS` characters, refused before it is parsed); the message is one line (the line is given for a document of lines, not for a one-line value).
    """
    from savi_plugin.errors import ConfigError

    def refuse(message: str, line: int | None = None, path: str = "") -> ConfigError:
        where = f"{source}:{line}" if source and line and "\n" in text else source
        return ConfigError(f"{prefix}{path}" if path.startswith("[") else ".".join(p for p in (prefix, path) if p),
                           message, where)

    if len(text) > MAX_YAML_CHARS:
        raise refuse(f"{len(text)} characters of YAML, above the cap of {MAX_YAML_CHARS} on one configuration "
                     f"document (savi's own recipes and prompt files are under 4096; a list or text this long "
                     f"belongs in a data file)")
    loader = _LimitedLoader(text)
    try:
        return loader.get_single_data()
    except StructureError as exc:
        raise refuse(str(exc), getattr(exc, "line", None), getattr(exc, "path", "")) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        raise refuse("invalid YAML: " + _yaml_problem(exc), mark.line + 1 if mark else None) from None
    except RecursionError:  # not reached with MAX_DEPTH far below the interpreter's limit; kept as a backstop
        raise refuse(f"nested deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's message on one line, without its ``in "<unicode string>"`` position (the caller names the file
    and line) and the code snippet it quotes."""
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [exc.context, exc.problem]
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            parts.append(f"(column {mark.column + 1})")
        return " ".join(" ".join(str(p).split()) for p in parts if p)
    return " ".join(str(exc).split())


def load_json(text: str | bytes, source: str | None = None,
              error: Callable[..., Exception] | None = None, *, strict: bool = True,
              max_values: int | None = None) -> Any:
    """``json.loads(text)`` within this module's limits: at most ``$SAVI_MAX_DOCUMENT_VALUES`` values, depth, no
    integer above :data:`MAX_INT_DIGITS` digits, and (``strict``, for a user's data and configuration) no
    ``NaN``/``Infinity`` or out-of-range number and no duplicate key. ``strict=False`` reads what other tools
    write as ``json`` does (a ``trainer_state.json`` logs a ``NaN`` gradient norm as ``NaN``). ``max_values``
    replaces the variable's cap where a smaller unit is read (a record: :data:`MAX_RECORD_VALUES`).

    Raises:
        DocumentTooLarge: more values than ``$SAVI_MAX_DOCUMENT_VALUES`` (a configuration error naming ``source``,
        the count, the cap and the variable, whatever ``error`` is).
        ``error(message, line)`` (default: a ``ConfigError`` at ``source``) for invalid JSON (``line``: where in
        ``text``), too deep a document or a record above ``max_values`` (``line`` None).
    """
    error = error or _config_error(source)
    if json_value_count(text, _VALUES_FLOOR) > _VALUES_FLOOR:  # a line of a JSONL file rarely gets past here
        from savi_plugin.environment import env_value

        cap = env_value(VALUES_ENV) if max_values is None else max_values
        count = json_value_count(text, cap)
        if count > cap and max_values is None:  # the variable's cap: the variable is what to correct
            from savi_plugin.errors import DocumentTooLarge

            raise DocumentTooLarge(source, f"{count} values (objects, lists and their items)", str(cap), VALUES_ENV,
                                   "one JSON document")
        if count > cap:
            raise error(f"holds more than {cap} values (objects, lists and their items), the cap on one JSON "
                        f"record (one line)")
    try:
        value = (json.loads(text, parse_constant=_refuse_constant, parse_int=_parse_int, parse_float=_parse_float,
                            object_pairs_hook=_unique_keys) if strict else json.loads(text, parse_int=_parse_int))
    except StructureError as exc:  # a number the hooks refused: said at its line, as a syntax error is
        token = getattr(exc, "token", None)
        raise error(str(exc), _token_line(text, token) if token else None) from None
    except RecursionError:
        raise error(f"nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        where = "column" if exc.msg.endswith(" at") else "at column"  # "Unterminated string starting at" ...
        raise error(f"invalid JSON: {exc.msg} {where} {exc.colno}", exc.lineno) from None
    except UnicodeDecodeError as exc:
        raise error(f"not UTF-8 text: {exc}") from None
    try:
        check_depth(value)
    except StructureError as exc:
        raise error(str(exc)) from None
    return value


#: most values in one record, a line of a JSON Lines file (a pair holds a few dozen): the line cap of 16 MiB alone
#: let one line of 7.5 million zeros cost 673 MB
MAX_RECORD_VALUES = 10**6
#: the variable that caps the values of one JSON document (:func:`load_json`)
VALUES_ENV = "SAVI_MAX_DOCUMENT_VALUES"
#: the variable's lowest value: a text whose quick bound is at most this is not looked at further
_VALUES_FLOOR = 1000
_JSON_STRING = {str: re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"'), bytes: re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')}
_JSON_SPACE = {str: re.compile(r"\s+"), bytes: re.compile(rb"\s+")}


def json_value_count(text: str | bytes, bound: int) -> int:
    """The number of values in the JSON ``text`` (objects, lists, and every item and member value in them), counted
    on the text without parsing it: ``1 + commas + non-empty containers``, with each string read as one scalar and
    white space left out.

    A quick upper bound (every ``,``, ``{`` and ``[``, also inside strings) is returned when it is at most
    ``bound``; only a text above it is counted exactly. Exact for valid JSON; for invalid JSON a number the parser's
    own refusal makes moot.
    """
    kind = type(text)
    comma, brace, bracket = (",", "{", "[") if kind is str else (b",", b"{", b"[")
    quick = 1 + text.count(comma) + text.count(brace) + text.count(bracket)
    if quick <= bound:
        return quick
    bare = _JSON_SPACE[kind].sub(comma[:0], _JSON_STRING[kind].sub("0" if kind is str else b"0", text))
    empty = bare.count(brace + (b"}" if kind is bytes else "}")) + bare.count(bracket + (b"]" if kind is bytes else "]"))
    return 1 + bare.count(comma) + bare.count(brace) + bare.count(bracket) - empty


def _number_error(message: str, token: str) -> StructureError:
    """A refused number, carrying the text it was written as (:func:`load_json` finds its line from it)."""
    exc = StructureError(message)
    exc.token = token
    return exc


def _token_line(text: str | bytes, token: str) -> int | None:
    """The line (1-based) of the first ``token`` in JSON ``text`` outside its strings, or None."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    blank = _JSON_STRING[str].sub(lambda m: "_" * len(m.group()), text)  # same offsets, no string's content
    found = re.search(r"(?<![\w.+-])" + re.escape(token) + r"(?![\w.])", blank)
    return blank.count("\n", 0, found.start()) + 1 if found else None


def _refuse_constant(name: str) -> Any:
    raise _number_error(f"{name} is not a JSON number (no NaN or Infinity in data)", name)


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _number_error(f"an integer of {digits} digits (at most {MAX_INT_DIGITS})", text)
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    shown = f"{text[:20]}{'...' if len(text) > 20 else ''}"
    if not math.isfinite(value):  # 1e999 reads as inf
        raise _number_error(f"{shown} is beyond the range of a floating-point number", text)
    if underflow_problem(text, value):  # 1e-401 reads as 0
        raise _number_error(f"{shown} is too small for a floating-point number (it would read as 0)", text)
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice (``json`` would keep the last value silently)."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        key = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise StructureError(f"key {key!r} appears twice in one object (which value is meant is ambiguous)")
    return out


class _Members(list):
    """A JSON object as the list of its ``(key, value)`` members, every one kept (:func:`duplicate_key_path`)."""


def duplicate_key_path(text: str | bytes) -> list[str | int] | None:
    """Where the first key given twice in the JSON ``text`` is: the path from the document's root to that key
    (object keys and list positions, the key last), in the order the strict parser of :func:`load_json` meets it
    (an object's members before the object), or None (no such key, or ``text`` is no JSON). For the reader that
    must name a refused document's record and field; ``text`` is one :func:`load_json` has already read within
    its limits."""
    try:
        root = json.loads(text, object_pairs_hook=_Members)
    except (ValueError, RecursionError):
        return None
    stack: list[tuple[Any, list[str | int], bool]] = [(root, [], False)]
    while stack:  # depth first, an object's members before the object itself (as json builds them)
        value, path, visited = stack.pop()
        if isinstance(value, _Members):
            if visited:
                seen: set[str] = set()
                twice = next((k for k, _ in value if k in seen or seen.add(k)), None)
                if twice is not None:
                    return [*path, twice]
                continue
            stack.append((value, path, True))
            stack.extend((v, [*path, k], False) for k, v in reversed(value))
        elif isinstance(value, list):
            stack.extend((v, [*path, i], False) for i, v in reversed(list(enumerate(value))))
    return None


# --------------------------------------------------------------------------------------------- echoing a value
_ECHO = reprlib.Repr()
_ECHO.maxlevel, _ECHO.maxstring, _ECHO.maxlong, _ECHO.maxother = 3, 60, 40, 60
_ECHO.maxlist = _ECHO.maxtuple = _ECHO.maxset = _ECHO.maxfrozenset = _ECHO.maxdict = 6


def shown(value: Any, limit: int = 100) -> str:
    """``repr(value)`` as a message echoes it: at most ``limit`` characters, long strings cut in the middle
    (``'notes=[&f [0,0,0...*d,*d]]'``), at most 6 items and 3 levels of lists and mappings. The cost is bounded
    too: a list of 10**6 values (the YAML alias cap) is not walked, so echoing a refused value cannot take longer
    than refusing it, and the reason after the echo always fits on the line."""
    text = _ECHO.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Refuse a parsed value nested deeper than ``limit`` (iterative; no recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list, tuple)):
            if depth > limit:
                raise StructureError(f"nested deeper than {limit} levels")
            stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict) else node))


# --------------------------------------------------------------------------------------------- control markup
#: Markup that chat templates and video processors read as control: ChatML-style ``<|name|>`` tokens and the
#: image/video placeholders. Data text (questions, answers, options) may not contain it; the model-specific
#: rule, against the loaded tokenizer's own special tokens, is :func:`savi_plugin.models.backends.tokens.
#: check_plain_text`; this pattern lets a record be refused before any model is loaded.
CONTROL_MARKUP = re.compile(r"<\|[^<>|\s]{1,64}\|>|<(?:image|video)>")


def control_markup(text: str) -> str | None:
    """The first control markup (:data:`CONTROL_MARKUP`) in ``text``, or None."""
    match = CONTROL_MARKUP.search(text)
    return match.group(0) if match else None


#: Characters data text may not hold: the C0/C1 control characters other than tab, line feed and carriage return
#: (NUL, escape sequences that drive a terminal), and the explicit directional formatting characters -- the
#: embeddings, overrides and isolates with their terminators, the "Trojan Source" set of CVE-2021-42574 -- which
#: draw the characters around them in another order than they are stored and tokenised, so a pair would read one
#: way in ``savi inspect`` and train another. The implicit marks (LRM, RLM, ALM) stay allowed: right-to-left text
#: uses them, and the Unicode bidi algorithm orders plain right-to-left text without any of the others.
_BIDI_OVERRIDES = {"\u202a": "LEFT-TO-RIGHT EMBEDDING", "\u202b": "RIGHT-TO-LEFT EMBEDDING",
                   "\u202c": "POP DIRECTIONAL FORMATTING", "\u202d": "LEFT-TO-RIGHT OVERRIDE",
                   "\u202e": "RIGHT-TO-LEFT OVERRIDE", "\u2066": "LEFT-TO-RIGHT ISOLATE",
                   "\u2067": "RIGHT-TO-LEFT ISOLATE", "\u2068": "FIRST STRONG ISOLATE",
                   "\u2069": "POP DIRECTIONAL ISOLATE"}
_ALLOWED_CONTROLS = frozenset("\t\n\r")


#: the characters :func:`hidden_control` finds, as one search: Unicode's ``Cc`` category is exactly U+0000-U+001F
#: and U+007F-U+009F, less :data:`_ALLOWED_CONTROLS`, and the :data:`_BIDI_OVERRIDES` (a search in C, so a long
#: text -- a pair's ``meta`` string has no length cap of its own -- is checked at memory speed)
HIDDEN_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f" + "".join(_BIDI_OVERRIDES) + "]")


def hidden_control(text: str) -> str | None:
    """A one-line description of the first control character or bidi override in ``text``, or None."""
    found = HIDDEN_CONTROLS.search(text)
    if found is None:
        return None
    at, ch = found.start(), found.group()
    if ch in _BIDI_OVERRIDES:
        return f"U+{ord(ch):04X} ({_BIDI_OVERRIDES[ch]}) at character {at}"
    return f"the control character U+{ord(ch):04X} at character {at}"


def hidden_control_problem(text: str) -> str | None:
    """Why ``text`` may not be stored with data (:func:`hidden_control`), as the message every check gives, or
    None: the part of :func:`text_problem` that holds for every string of a record, including the free-form
    ``meta`` a prompt never shows, where a model's markup is fine but a bidi override would still reorder what a
    reader sees."""
    hidden = hidden_control(text)
    if hidden:
        return f"contains {hidden}; data text may not hold control characters or bidi overrides (remove it)"
    return None


def without_hidden_controls(text: str) -> str:
    """``text`` without the characters :func:`hidden_control` finds: what a model's decoded output is made into
    before it becomes data text (a random-weight model emits byte tokens of control characters; the pair
    check would refuse them). A control character that Python counts as whitespace (form feed, vertical tab,
    the information separators U+001C-U+001F, NEL) becomes a space, so the words it separated stay apart; the
    others and the bidi overrides are removed."""
    return "".join(ch if ch in _ALLOWED_CONTROLS or not (ch in _BIDI_OVERRIDES or unicodedata.category(ch) == "Cc")
                   else " " if ch.isspace() else "" for ch in text)


#: Most characters in one data text (a question, answer, option, response): 64 Ki, far above a benchmark's
#: questions and options (sentences or short paragraphs) and, tokenised, beyond the context window of the models
#: supported here. A longer text is refused *before* tokenisation, where a 30 MB question made the tokenizer abort
#: the whole process.
MAX_TEXT_CHARS = 65_536

#: The characters that end a line in a prompt as a tokenizer or a reader sees it (``str.splitlines``' set without
#: the control characters :func:`hidden_control` refuses anyway): line feed, carriage return, NEL, and Unicode's
#: LINE and PARAGRAPH SEPARATOR.
LINE_BREAKS = {"\n": "a line feed", "\r": "a carriage return", "\u0085": "U+0085 (NEXT LINE)",
               "\u2028": "U+2028 (LINE SEPARATOR)", "\u2029": "U+2029 (PARAGRAPH SEPARATOR)"}


def one_line(text: str) -> str:
    """``text`` for a one-line slot of a prompt (the judge's ``Ground truth: ...``): each line break (a
    :data:`LINE_BREAKS` character, ``\\r\\n`` as one) written as the two characters ``\\n``, so the text reads the
    same to a model and cannot start a line of its own (a forged ``Answer:`` or ``Reply ...`` line)."""
    if not any(ch in text for ch in LINE_BREAKS):
        return text
    return re.sub("\r\n|[" + "".join(LINE_BREAKS) + "]", lambda m: "\\n", text)


#: what :func:`printable` escapes: every C0 and C1 control character (line feed, carriage return, tab, escape
#: sequences, NEL), Unicode's LINE and PARAGRAPH SEPARATOR, and the bidi overrides :func:`hidden_control` refuses
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029" + "".join(_BIDI_OVERRIDES) + "]")


def printable(text: str) -> str:
    """``text`` for one line of a message (an ``error:`` line, a problem line, a summary, a log record): each
    character that would end the line or redraw it (:data:`_UNPRINTABLE`) written as its Python escape (``\\n``,
    ``\\x1b``, ``\\u2028``), so a name read from the user (a file called ``bad\\nerror: all good``) stays inside
    its line and cannot forge another; and each character drawn as nothing (:func:`invisible`: a zero-width
    space), so a name is shown as it is spelled (``train.beta\\u200b: unknown key``, never one that reads as a
    known key). Backslashes are left as they are: the text is read, not parsed back."""
    if _UNPRINTABLE.search(text) is None and (text.isascii() or not any(invisible(ch) for ch in text)):
        return text
    return "".join(ch.encode("unicode_escape").decode("ascii") if _UNPRINTABLE.match(ch) or invisible(ch) else ch
                   for ch in text)


def shown_path(path: Any) -> str:
    """A path as a message shows it: as it is when a reader sees where it starts and ends and every character of
    it (printable, no white space); otherwise quoted and escaped as Python writes it (``'v/a.mp4 '``,
    ``'a\\u200b.mp4'``), so a line never names a file that looks like another. The one rule for a path in a
    message."""
    text = str(path)
    if text and text.isprintable() and not any(ch.isspace() for ch in text) and (
            text.isascii() or not any(invisible(ch) for ch in text)):
        return text
    return repr(text) if text.isprintable() else "'" + text.encode("unicode_escape").decode("ascii") + "'"


def length_problem(text: str) -> str | None:
    """Why ``text`` is too long to be data text (more than :data:`MAX_TEXT_CHARS` characters), or None. Checked
    before anything walks the text (Unicode normalisation of a 30 MB string alone takes minutes)."""
    if len(text) > MAX_TEXT_CHARS:
        return (f"is {len(text)} characters long, more than the {MAX_TEXT_CHARS} one data text may hold "
                f"(no benchmark question comes near it; shorten it)")
    return None


def line_break_problem(text: str) -> str | None:
    """Why ``text`` may not fill a one-line slot of a prompt (an answer option, a multiple-choice question): the
    first :data:`LINE_BREAKS` character in it, or None."""
    for at, ch in enumerate(text):
        if ch in LINE_BREAKS:
            return (f"contains {LINE_BREAKS[ch]} at character {at}; it is shown as one line of the prompt, where a "
                    f"line break would start a line that is not this field's (write it on one line)")
    return None


def text_problem(text: str, *, one_line: bool = False) -> str | None:
    """Why ``text`` may not be data text (a question, answer, option or response), or None: longer than
    :data:`MAX_TEXT_CHARS` characters, control markup a chat template would obey (:func:`control_markup`) or a
    hidden control character (:func:`hidden_control`); with ``one_line``, any of :data:`LINE_BREAKS` too (a text
    the prompt shows as one line, an answer option: a break in it would draw another ``(E) ...`` option line
    that is not the record's)."""
    too_long = length_problem(text)
    if too_long:
        return too_long
    broken = line_break_problem(text) if one_line else None
    if broken:
        return broken
    found = control_markup(text)
    if found:
        return (f"contains {found!r}, a model control token or placeholder; data text may not contain chat or "
                f"video markup (remove or reword it)")
    return hidden_control_problem(text)


# --------------------------------------------------------------------------------------------- text equality
_SPACES = re.compile(r"\s+")


#: Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt, Unicode 15.1): characters drawn as
#: nothing -- besides the format characters (``Cf``), variation selectors, the combining grapheme joiner, Hangul
#: fillers and Khmer inherent vowels, which are letters or marks by category
_DEFAULT_IGNORABLE = ((0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
                      (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
                      (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3),
                      (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF),
                      (0x2800, 0x2800))  # BRAILLE PATTERN BLANK: a letter by category, drawn as nothing


def invisible(ch: str) -> bool:
    """Whether ``ch`` is drawn as nothing: a format character (category ``Cf``) or a Default_Ignorable code point."""
    code = ord(ch)
    return unicodedata.category(ch) == "Cf" or any(lo <= code <= hi for lo, hi in _DEFAULT_IGNORABLE)


def _normal_key(text: str) -> str:
    """:func:`equality_key` without the look-alike fold: NFKC, invisible characters removed, spacing collapsed."""
    folded = unicodedata.normalize("NFKC", text)
    visible = "".join(ch for ch in folded if not invisible(ch))
    return _SPACES.sub(" ", visible).strip()


@functools.lru_cache(maxsize=1)
def _lookalikes() -> dict[str, str]:
    """The look-alike table: a character of another script (or a symbol) -> the Latin/ASCII text it is drawn as.
    ``confusables.txt`` beside this module, generated from Unicode's UTS #39 data by ``tools/confusables.py``
    (which says which Unicode version and which mappings are kept)."""
    table = {}
    for line in resources.files("savi_plugin").joinpath("confusables.txt").read_text("utf-8").splitlines():
        if line and not line.startswith("#"):
            source, target = line.split(";")
            table[chr(int(source, 16))] = "".join(chr(int(c, 16)) for c in target.split())
    return table


def _words(text: str) -> list[tuple[bool, str]]:
    """``text`` as runs of word characters (letters, marks, digits: what one script writes without a space or
    punctuation) and of the rest, each as ``(is_word, run)``."""
    return [(word, "".join(run)) for word, run in itertools.groupby(text, lambda ch: unicodedata.category(ch)[0]
                                                                          in "LMN")]


def _latin_letter(ch: str) -> bool:
    return ch.isalpha() and (ch.isascii() or unicodedata.name(ch, "").startswith("LATIN "))


def _skeleton(word: str) -> str:
    table = _lookalikes()
    return unicodedata.normalize("NFC", "".join(table.get(ch, ch) for ch in unicodedata.normalize("NFD", word)))


def _looks_latin(word: str, in_latin_text: bool) -> bool:
    """Whether ``word`` is to be read as the Latin word it is drawn as (Unicode TR39's mixed-script and
    whole-script confusables): it mixes Latin letters with look-alikes from another script (``cаt`` with a
    Cyrillic ``а``), or it stands in Latin text and every letter of it is a look-alike of a Latin one (``сат``,
    all Cyrillic, in an English sentence). A word written wholly in another script, in text of that script, is
    itself: Greek ``σ`` and ``ο`` are two letters though both are drawn like ``o``."""
    table = _lookalikes()
    if not any(ch in table for ch in unicodedata.normalize("NFD", word)):
        return False
    if any(_latin_letter(ch) for ch in word):
        return True
    return in_latin_text and all(_latin_letter(ch) or not ch.isalpha() for ch in _skeleton(word))


def has_latin(*texts: str) -> bool:
    """Whether any of ``texts`` holds a Latin letter: the context in which :func:`equality_key` reads a word made
    wholly of look-alikes as the Latin word it is drawn as."""
    return any(_latin_letter(ch) for text in texts for ch in text)


def equality_key(text: str, latin_context: bool | None = None) -> str:
    """``text`` as compared for equality: NFKC (full-width and compatibility forms fold to their plain form),
    invisible characters removed (:func:`invisible`: zero-width spaces and joiners, bidi marks, soft hyphens,
    BOM, variation selectors, the combining grapheme joiner, Hangul fillers), runs of whitespace made one space,
    ends stripped; then look-alike characters read as the Latin letters, digits and marks they are drawn as
    (Unicode TR39 confusable skeletons, restricted by :func:`_looks_latin`: Cyrillic ``е`` in ``rеd`` is ``e``;
    Russian, Greek or Chinese text compares as itself).

    ``latin_context``: whether the text is compared in Latin-script company (:func:`has_latin` of every text in
    the comparison: a Cyrillic ``а`` answer beside a Latin ``a``); by default, whether ``text`` itself has a
    Latin letter.

    For *comparisons only*: stored and tokenised text keeps what the file says.
    """
    normal = _normal_key(text)
    if normal.isascii():
        return normal
    table = _lookalikes()
    in_latin_text = has_latin(normal) if latin_context is None else latin_context
    out = []
    for is_word, run in _words(normal):
        if not is_word:
            out.append("".join(table.get(ch, ch) for ch in run))
        else:
            out.append(_skeleton(run) if _looks_latin(run, in_latin_text) else run)
    return unicodedata.normalize("NFC", "".join(out))


def lookalike_example(text: str, latin_context: bool | None = None) -> str | None:
    """The first character of ``text`` that :func:`equality_key` reads as another (``'е' (U+0435 CYRILLIC SMALL
    LETTER IE) drawn as 'e'``), or None: the detail of a "differs only by look-alike characters" refusal."""
    normal = _normal_key(text)
    table = _lookalikes()
    in_latin_text = has_latin(normal) if latin_context is None else latin_context
    for is_word, run in _words(normal):
        if is_word and _looks_latin(run, in_latin_text):
            ch = next(ch for ch in unicodedata.normalize("NFD", run) if ch in table)
            return f"{ch!r} (U+{ord(ch):04X} {unicodedata.name(ch, '?')}) drawn as {table[ch]!r} in {run!r}"
        if not is_word and any(ch in table for ch in run):
            ch = next(ch for ch in run if ch in table)
            return f"{ch!r} (U+{ord(ch):04X} {unicodedata.name(ch, '?')}) drawn as {table[ch]!r}"
    return None


def reads_as(text: str, other: str) -> bool:
    """Whether a reader takes ``text`` for ``other``: the same :func:`equality_key` (NFKC, invisible characters
    removed, look-alikes read as the Latin letters they are drawn as), case-folded. The one test of "a name that
    reads as another": a key, a field or a loss name refused as what it reads as."""
    latin = has_latin(text, other)
    return equality_key(text, latin).casefold() == equality_key(other, latin).casefold()


def shown_name(name: Any) -> str:
    """A name read from the user (a recipe key, a record field) as a message shows it: as it is when it is plain
    printable ASCII; otherwise quoted, with every character a reader could not tell apart written as its escape
    (``'tr\\u0430in'``: a look-alike from another script, a character drawn as nothing, a control character),
    so a line never shows a name that looks like a known one."""
    if not isinstance(name, str):
        return shown(name, 60)
    if name.isascii() and name.isprintable() and name == name.strip() and name:
        return name
    return f"'{unmistakable(name[:80])}{'...' if len(name) > 80 else ''}'"


def unmistakable(text: str) -> str:
    """``text`` with every character a reader could take for another written as its escape (a look-alike from
    another script, ``\\u0430``; a character drawn as nothing; a control character; a full-width or other
    compatibility form of ASCII, :func:`_ascii_form`) and ``'`` as ``\\'``: a
    name read from the user as the quoted part of a message shows it (:func:`shown_name`, an override's key)."""
    table = _lookalikes()
    return "".join(ch.encode("unicode_escape").decode("ascii") if ch in table or invisible(ch) or
                   not ch.isprintable() or _ascii_form(ch) else "\\'" if ch == "'" else ch for ch in text)


def _ascii_form(ch: str) -> bool:
    """Whether the non-ASCII ``ch`` is a compatibility form of ASCII text (Unicode NFKC: full-width ``\\uff54`` is
    ``t``, the ligature ``\\ufb01`` is ``fi``): drawn as, and read as, the Latin letters it stands for."""
    if ch.isascii():
        return False
    form = unicodedata.normalize("NFKC", ch)
    return form != ch and form.isascii()


def read_as_known(name: Any, known: list[str] | tuple[str, ...]) -> str | None:
    """Why ``name``, none of ``known``, is taken for one of them (:func:`reads_as`: a look-alike letter of another
    script, a character drawn as nothing, another case), naming the character and what to write, or None."""
    like = next((k for k in known if isinstance(name, str) and isinstance(k, str) and k != name and
                 reads_as(name, k)), None)
    if like is None:
        return None
    return f"it reads as {like!r} but is not it ({how_it_differs(name, like)}); write {like!r}"


def how_it_differs(name: str, like: str) -> str:
    """What makes ``name`` not ``like`` when a reader takes one for the other (:func:`reads_as`), for a refusal:
    white space at an end, else its first character (1-based position) drawn as nothing, a full-width or other
    compatibility form (Unicode NFKC), or a look-alike from another script (TR39); else the case."""
    def named(ch: str) -> str:  # escaped, so the line never draws the character it explains
        name = unicodedata.name(ch, "")  # a control character (a tab) has none
        return f"'{ch.encode('unicode_escape').decode('ascii')}' (U+{ord(ch):04X}{' ' + name if name else ''})"

    if name != name.strip():
        end, ch = ("ends", name[-1]) if name[-1].isspace() else ("starts", name[0])
        return f"it {end} with white space, {named(ch)}, which no listing shows"
    table = _lookalikes()
    for at, ch in enumerate(name, 1):
        if invisible(ch):
            return f"its character {at} is U+{ord(ch):04X} ({unicodedata.name(ch, '?')}), drawn as nothing"
        form = unicodedata.normalize("NFKC", ch)
        if form != ch:
            kind = "full-width" if "FULLWIDTH" in unicodedata.name(ch, "") else "compatibility"
            return f"its character {at}, {named(ch)}, is the {kind} form of {form!r} (Unicode NFKC)"
        if ch in table:
            return (f"its character {at}, {named(ch)}, is a look-alike of {table[ch]!r} from another script "
                    f"(Unicode TR39 confusables)")
    example = lookalike_example(name)
    if example:
        return f"its {example.split(' in ')[0].replace(' drawn as ', ' is a look-alike of ')} (Unicode TR39 confusables)"
    return "its case differs: names are compared exactly, case included"


def shown_value(value: Any) -> str:
    """A value read from the user as a message echoes it (:func:`shown`), a string holding characters a reader
    could take for others escaped (:func:`unmistakable`): ``'r\\u0430nk'``, never one that reads as a choice."""
    if isinstance(value, str) and not value.isascii():
        return f"'{unmistakable(value[:80])}{'...' if len(value) > 80 else ''}'"
    return shown(value)


def unknown_name(name: Any, known: list[str] | tuple[str, ...], what: str = "key") -> str:
    """The one refusal of a name that is none of ``known`` (a recipe key, a record field), for the line that
    names it (``file: key.path: <this>``): a name that reads as a known one (:func:`reads_as`: a look-alike
    letter, an invisible character, another case) says which character differs and what to write; otherwise the
    known names are listed, or, when there are more than a line holds, the nearest of them."""
    import difflib

    known = list(known)
    like = read_as_known(name, known)
    if like is not None:
        return f"unknown {what}: {like}"
    if len(known) <= 30 or not isinstance(name, str):
        return f"unknown {what} (known: {', '.join(known)})"
    near = difflib.get_close_matches(name, known, n=8, cutoff=0.5)
    if near:  # a line holds a few hundred characters: the names most likely meant, not all of them
        return f"unknown {what} (nearest of the {len(known)} known: {', '.join(near)})"
    return f"unknown {what} (none of the {len(known)} known is near it; they begin: {', '.join(known[:12])}, ...)"


def same_text(text: str, other: str) -> bool:
    """Whether ``text`` and ``other`` are the same text to a reader (:func:`equality_key`, in the Latin context of
    both): the one test of "same text" for chosen vs rejected, a revision vs its answer, two options."""
    latin = has_latin(text, other)
    return equality_key(text, latin) == equality_key(other, latin)


def sameness(text: str, other: str, other_name: str) -> str | None:
    """Why ``text`` counts as the same text as ``other`` (:func:`equality_key`), as the phrase of a one-line
    refusal that names ``other`` as ``other_name``, or None when they differ: identical after normalisation, or
    different only by look-alike characters (naming one)."""
    if not same_text(text, other):
        return None
    latin = has_latin(text, other)
    if _normal_key(text) == _normal_key(other):
        return (f"identical to {other_name} (compared after Unicode NFKC normalisation, with invisible format "
                f"characters removed)")
    example = lookalike_example(text, latin) or lookalike_example(other, latin) or "characters drawn alike"
    return (f"differs from {other_name} only by look-alike characters (Unicode TR39 confusables: {example}), "
            f"so a reader sees the same text")


def mixed_script_word(text: str, other: str) -> str | None:
    """A word of ``text`` not in ``other`` that mixes Latin letters with look-alikes from another script (TR39
    mixed-script: ``rеd`` with a Cyrillic ``е``), described for a refusal, or None. Such a word is drawn as a
    Latin word but tokenised as another, so a preference pair would teach a difference no reader sees."""
    theirs = {run for is_word, run in _words(_normal_key(other)) if is_word}
    table = _lookalikes()
    for word in (run for is_word, run in _words(_normal_key(text)) if is_word):
        if word not in theirs and any(_latin_letter(ch) for ch in word) and _looks_latin(word, True):
            ch = next(ch for ch in unicodedata.normalize("NFD", word) if ch in table)
            return (f"the word {word!r} mixes Latin letters with {ch!r} (U+{ord(ch):04X} {unicodedata.name(ch, '?')}), "
                    f"a look-alike of {table[ch]!r} from another script (Unicode TR39 mixed-script)")
    return None

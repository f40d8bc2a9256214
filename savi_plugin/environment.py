"""The ``SAVI_*`` environment variables that carry numbers or switches: declared, parsed and checked in one place.

Every variable is read through :func:`env_value`, which applies the variable's type and range, and
:func:`check_environment` checks them all at once. The ``savi`` command (``savi_plugin.cli.run_guarded``), the
generators' runner and ``savi_video`` call it before their first item, so ``SAVI_MAX_FRAME_PIXELS=abc`` is a
configuration error at start (one line, exit 2), never a failure of every item.

Sizes in bytes accept a unit: ``SAVI_MAX_DECODED_BYTES=2GiB`` (``KiB``, ``MiB``, ``GiB``, ``TiB``, also written
``K``/``M``/``G``/``T``: powers of 1024; ``KB``, ``MB``, ``GB``, ``TB``: powers of 1000, as SI writes them; a
lower-case ``b`` is a bit and refused). Numbers are written in ASCII digits, as in a recipe.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GiB = 1024**3


@dataclass(frozen=True)
class Variable:
    """One environment variable: its default, its kind (``int``, ``bytes`` or ``switch``) and inclusive range."""

    name: str
    default: Any
    kind: str
    low: int = 1
    high: int = 2**62
    help: str = ""
    #: whether the value decides which items of a run fail (a decode cap): part of a resumable run's configuration
    decides_items: bool = False


#: The declared variables (``SAVI_DATA_ROOT`` is a path, checked where a task reads its data).
VARIABLES = {v.name: v for v in (
    Variable("SAVI_MAX_FRAME_PIXELS", 4096 * 4096, "int", 1, 2**31,
             "largest decoded frame, in pixels (width x height)", decides_items=True),
    Variable("SAVI_MAX_DECODED_BYTES", 2 * GiB, "bytes", 1, 2**40,
             "largest decoded clip (all its sampled frames as RGB), in bytes", decides_items=True),
    Variable("SAVI_MAX_BATCH_DECODED_BYTES", 8 * GiB, "bytes", 1, 2**42,
             "largest decoded batch of clips (a generation or training batch), in bytes", decides_items=True),
    Variable("SAVI_MAX_DOCUMENT_BYTES", 256 * 2**20, "bytes", 1, 2**40,
             "largest JSON document read whole (a run report, a trainer_state.json), in bytes"),
    Variable("SAVI_MAX_DOCUMENT_VALUES", 8_000_000, "int", 1000, 2**40,
             "most values (objects, lists, their items) in one JSON document or line"),
    Variable("SAVI_RENDEZVOUS_TIMEOUT", 300, "int", 1, 86400,
             "seconds a launched process waits for its launcher's rendezvous (MASTER_ADDR:MASTER_PORT) to answer"),
    Variable("SAVI_LMMS_EVAL_AUTOLOAD", True, "switch", help="register savi_video and the savi tasks in lmms-eval"),
)}

#: a whole number: ASCII digits with an optional sign, as YAML 1.2 and JSON write one (``str.isdigit`` and ``int``
#: also read ``٣`` and ``１００``, which no recipe number accepts: ``untrusted``); the sign is read so that ``-5`` is
#: refused by the range check, which names the smallest value
_INT = re.compile(r"\s*([-+]?[0-9]+)\s*", re.ASCII)
#: a size: a whole number, an optional prefix (either case) and an optional ``B``/``iB`` -- upper-case only, since
#: ``b`` is a bit; prefixes up to ``E``, so a size above a variable's maximum (``1PiB``) is refused by its range
_SIZE = re.compile(r"\s*([-+]?[0-9]+)\s*([KMGTPEkmgtpe]?)(iB|B)?\s*", re.ASCII)
_SWITCH = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def format_bytes(n: int) -> str:
    """A byte count in the largest binary unit that keeps it at 1 or more (``12.00 KiB``, ``2.15 GiB``), so a small
    budget never reads ``0.00 GiB``."""
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} bytes"


def env_value(name: str, env: Mapping[str, str] | None = None) -> Any:
    """The checked value of variable ``name`` in ``env`` (default: ``os.environ``; its default when unset or empty).

    Raises:
        ConfigError: ``$NAME: expected ..., got 'text'`` or ``$NAME: must be >= low and <= high, got n``.
    """
    from savi_plugin.errors import ConfigError

    var = VARIABLES[name]
    text = (os.environ if env is None else env).get(name, "").strip()
    if not text:
        return var.default
    if var.kind == "switch":
        if text.lower() not in _SWITCH:
            raise ConfigError(f"${name}", f"expected one of {', '.join(_SWITCH)}, got {text!r}")
        return _SWITCH[text.lower()]
    match = (_SIZE if var.kind == "bytes" else _INT).fullmatch(text)
    if not match:
        what = "a size in bytes (e.g. 2GiB; B is a byte, b would be a bit)" if var.kind == "bytes" else "a whole number"
        raise ConfigError(f"${name}", f"expected {what} ({var.help}), got {text!r}")
    number = match.group(1)
    digits = len(number.lstrip("+-").lstrip("0"))
    # past 30 digits a number is beyond every range (and past 4300 ``int`` refuses to read it)
    value = int(number) if digits <= 30 else (-1 if number.startswith("-") else 1) * 10**30
    if var.kind == "bytes" and match.group(2):  # KiB or K: powers of 1024; KB (SI): powers of 1000
        base = 1000 if match.group(3) == "B" else 1024
        value *= base ** (" KMGTPE".index(match.group(2).upper()))
    if not var.low <= value <= var.high:
        bytes_kind = var.kind == "bytes"
        high, got = (f"{var.high} ({format_bytes(var.high)})", repr(text)) if bytes_kind else (var.high, value)
        if digits > 30:
            got = f"a number of {digits} digits"
        raise ConfigError(f"${name}", f"must be >= {var.low} and <= {high} ({var.help}), got {got}")
    return value


def check_environment() -> None:
    """Check every declared variable (:func:`env_value`); the first bad one raises its ``ConfigError``."""
    for name in VARIABLES:
        env_value(name)


def item_limits(env: Mapping[str, str] | None = None) -> dict[str, int]:
    """The checked values of the variables that decide which items fail (the decode caps, by name), in ``env``
    (default: ``os.environ``; a child process's environment, for work done there).

    They are part of a resumable job's configuration (generation, training): items refused under one cap are
    final for that run, so a later run under another cap is another configuration -- refused naming the
    variable -- instead of silently skipping, forever, items the new cap would accept.
    """
    return {name: env_value(name, env) for name, var in VARIABLES.items() if var.decides_items}


#: the key paths ``limits.<NAME>`` of the variables that decide no item (a document cap, the rendezvous timeout):
#: configurations stored before :func:`item_limits` held the decode caps only hold them too, and a resume compares
#: the decode caps alone (:func:`savi_plugin.data.fingerprint.config_changes` ignores these keys)
NOT_ITEM_LIMITS = tuple(f"limits.{name}" for name, var in VARIABLES.items() if not var.decides_items)


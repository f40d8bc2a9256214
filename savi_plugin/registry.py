"""Entry-point registries.

Everything pluggable in savi-plugin (backends, generators, losses, trainers, benchmarks) is found through Python
entry points, never through import side effects, so a third-party package adds its own by declaring
an entry point in its packaging metadata:

    [options.entry_points]
    savi_plugin.losses =
        my_loss = my_pkg.losses:my_loss
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import Any

from savi_plugin.errors import ConfigurationError

BACKENDS = "savi_plugin.backends"
GENERATORS = "savi_plugin.generators"
LOSSES = "savi_plugin.losses"
TRAINERS = "savi_plugin.trainers"
BENCHMARKS = "savi_plugin.benchmarks"
LMMS_EVAL_MODELS = "lmms_eval.models"

#: The groups ``savi plugins`` lists, in the order of the pipeline.
GROUPS = (BACKENDS, GENERATORS, LOSSES, TRAINERS, BENCHMARKS, LMMS_EVAL_MODELS)


class PluginNotFoundError(LookupError):
    """Raised when a name is not registered in a group; the message lists what is."""


class PluginError(ConfigurationError):
    """A registered name that cannot be used as it is installed (exit status 2): two packages register it with
    different objects, its module fails when imported, or its object is not what the group holds."""


def origin(ep: EntryPoint) -> str:
    """``hostile.x:SHADOW from hostile-savi``: where an entry point's object comes from, for messages."""
    dist = getattr(ep, "dist", None)
    return f"{ep.value} from {dist.name if dist is not None else 'an unnamed package'}"


def conflicts(group: str) -> dict[str, list[EntryPoint]]:
    """The names of ``group`` that installed packages register with different objects (a third-party package
    registering ``dpo`` beside ours), each with its entry points. One name, one object: :func:`load` refuses these.
    (The same object registered twice -- a package installed twice -- is no conflict.)"""
    by_name: dict[str, dict[str, EntryPoint]] = {}
    for ep in entry_points(group=group):
        by_name.setdefault(ep.name, {}).setdefault(ep.value, ep)
    return {name: list(values.values()) for name, values in by_name.items() if len(values) > 1}


def entries(group: str) -> dict[str, EntryPoint]:
    """All entry points of ``group`` by name (no module is imported); a name registered with several objects
    (:func:`conflicts`) appears once, and :func:`load` refuses it."""
    return {ep.name: _reference(ep) for ep in entry_points(group=group)}


class MalformedEntry(EntryPoint):
    """An entry point whose value is no ``module:attribute`` reference (``my_pkg.loss:``, ``a b c``, ``:X``): loading
    it raises one line naming the value, where importlib's own ``load`` fails on Python internals (``'NoneType'
    object has no attribute 'group'``)."""

    def load(self):
        raise ValueError(f"{self.value!r} is not a module:attribute reference (e.g. my_pkg.loss:MY_LOSS)")


def _reference(ep: EntryPoint) -> EntryPoint:
    """``ep``, or a :class:`MalformedEntry` of the same name, value and distribution when its value does not parse."""
    if EntryPoint.pattern.match(ep.value):
        return ep
    return MalformedEntry(ep.name, ep.value, ep.group)._for(getattr(ep, "dist", None))


def available(group: str) -> list[str]:
    """Sorted names registered in ``group``."""
    return sorted(entries(group))


def load(group: str, name: str) -> Any:
    """Import and return the object registered as ``name`` in ``group``.

    Args:
        group: an entry-point group, e.g. ``"savi_plugin.losses"``.
        name: the registered name, e.g. ``"rrpo"``.

    Raises:
        PluginNotFoundError: ``name`` is not registered; the message lists the registered names.
    """
    found = entries(group)
    if name not in found:
        names = ", ".join(sorted(found)) or "(none)"
        raise PluginNotFoundError(
            f"no {group!r} entry named {name!r}; available: {names}. "
            f"Is the package that provides it installed (pip install ...)?"
        )
    clash = conflicts(group).get(name)
    if clash:
        raise PluginError(f"the {group!r} entry {name!r} is registered by several packages with different objects "
                          f"({'; '.join(origin(ep) for ep in clash)}): one name, one object; uninstall one of them")
    try:
        return found[name].load()
    except ImportError:  # an optional dependency that is not installed: its own words say which
        raise
    except Exception as exc:  # noqa: BLE001 - a third-party module may raise anything when imported
        text = str(exc).strip().splitlines()
        raise PluginError(f"the {group!r} entry {name!r} ({origin(found[name])}) cannot be loaded: "
                          f"{type(exc).__name__}: {text[0] if text else ''}") from exc


def load_class(group: str, name: str, base: type) -> type:
    """:func:`load`, refusing an object that is not a subclass of ``base`` (a generator that is no ``Generator``)."""
    obj = load(group, name)
    if not (isinstance(obj, type) and issubclass(obj, base)):
        kind = f"the class {obj.__name__}" if isinstance(obj, type) else f"a {type(obj).__name__}"
        raise PluginError(f"the {group!r} entry {name!r} ({origin(entries(group)[name])}) is {kind}, not a "
                          f"{base.__name__} subclass")
    return obj

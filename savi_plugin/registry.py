"""Entry-point registries.

Everything pluggable in savi-plugin (backends, generators, losses, trainers, benchmarks) is found through Python
entry points, never through import side effects, so a third-party package adds its own by declaring
an entry point in its packaging metadata:

    [options.entry_points]
    savi_plugin.losses =
        my_loss = my_pkg.losses:my_loss
"""

from __future__ import annotations

import re
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Callable, Mapping

from savi_plugin.errors import ConfigurationError

BACKENDS = "savi_plugin.backends"
GENERATORS = "savi_plugin.generators"
LOSSES = "savi_plugin.losses"
TRAINERS = "savi_plugin.trainers"
BENCHMARKS = "savi_plugin.benchmarks"
LMMS_EVAL_MODELS = "lmms_eval.models"

#: The groups ``savi plugins`` lists, in the order of the pipeline.
GROUPS = (BACKENDS, GENERATORS, LOSSES, TRAINERS, BENCHMARKS, LMMS_EVAL_MODELS)

#: what an entry of a group must be, checked when it is loaded (:func:`load`): group -> (the name of its class,
#: whether the object is an instance of that class or a subclass of it). The class itself is declared by the
#: module that defines it, when it is imported (:func:`declare_kind`): an object of that kind imports it first.
KINDS = {
    BACKENDS: ("VideoLM", "subclass"),
    GENERATORS: ("Generator", "subclass"),
    LOSSES: ("PreferenceLoss", "instance"),
    TRAINERS: ("PreferenceTrainer", "subclass"),
}
#: group -> (its class, a further check of an object of it: what is wrong with it, or None), by :func:`declare_kind`
_DECLARED: dict[str, tuple[type, Callable[[Any], str | None] | None]] = {}


def declare_kind(group: str, base: type, check: Callable[[Any], str | None] | None = None) -> None:
    """Declare the class of the :data:`KINDS` group ``group`` (called by the module that defines it) and an
    optional ``check`` of a loaded object (a loss's defaults checked by its own rules): :func:`load` refuses an
    object of another kind, or one ``check`` finds fault with, naming the entry."""
    _DECLARED[group] = (base, check)


#: the distribution whose entries are savi-plugin's own (not a plugin)
OWN = "savi-plugin"

#: the characters an entry name may hold: a name is typed in recipes and read in listings, so it is plain ASCII
#: (a look-alike letter of another script would be listed and chosen as the name it is drawn as)
NAME_CHARACTERS = re.compile(r"[A-Za-z0-9_.-]+")


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


def name_problem(group: str, name: str) -> str | None:
    """Why the entry name ``name`` of ``group`` cannot be used, or None: it holds a character outside
    :data:`NAME_CHARACTERS`, or it reads as another name registered in the group (the project's one look-alike
    rule, :func:`savi_plugin.untrusted.sameness`, explained by :func:`~savi_plugin.untrusted.how_it_differs`; or
    the same name in other case, as the unknown-name hint reads it) and is not savi-plugin's own."""
    from savi_plugin.untrusted import how_it_differs, sameness

    found = entries(group)
    like = next((other for other in sorted(found) if other != name and (  # "RRPO" beside "rrpo": case alone
        sameness(name, other, repr(other)) or name.casefold() == other.casefold())), None)
    plain = bool(NAME_CHARACTERS.fullmatch(name))
    if plain and (like is None or is_own(found.get(name))):
        return None
    reads = f"it reads as {like!r} but is not it ({how_it_differs(name, like)})" if like else ""
    if not plain:
        reads = "its name holds characters outside [A-Za-z0-9_.-]" + (f": {reads}" if reads else "")
    return f"{reads}; an entry name is ASCII letters, digits, '_', '.' and '-'"


def is_own(ep: EntryPoint | None) -> bool:
    """Whether ``ep`` is one of savi-plugin's own entries (its distribution is :data:`OWN`)."""
    dist = getattr(ep, "dist", None)
    return dist is not None and (dist.name or "").lower().replace("_", "-") == OWN


def provenance(group: str, name: str | None) -> dict[str, str] | None:
    """What identifies the object ``name`` of ``group`` when it is a plugin (not savi-plugin's own): its entry
    name, its distribution's name and version. None for our own entries and for a name not registered.

    A distribution's version is its code's identity: a run's identity holds it (:func:`components`), so a
    resume after a plugin changed is refused -- a plugin whose code or defaults change must change its version."""
    ep = entries(group).get(name) if name else None
    if ep is None or is_own(ep):
        return None
    dist = getattr(ep, "dist", None)
    return {"entry": name, "distribution": dist.name if dist is not None else "?",
            "version": (dist.version if dist is not None else None) or "?"}


def components(chosen: Mapping[str, tuple[str, str | None]]) -> dict[str, dict[str, str]]:
    """The plugins a job uses, as its run identity holds them: ``{key path: provenance}`` for each
    ``{key path: (group, name)}`` in ``chosen`` whose entry is not savi-plugin's own (:func:`provenance`). A key
    path is where the user chose it (``train.loss_type``), which a refusal names."""
    out = {}
    for key, (group, name) in chosen.items():
        found = provenance(group, name)
        if found is not None:
            out[key] = found
    return out


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
    from savi_plugin.untrusted import shown_name

    badly_named = name_problem(group, name)
    if badly_named:
        raise PluginError(f"the {group!r} entry {shown_name(name)} ({origin(found[name])}) cannot be used: "
                          f"{badly_named}")
    try:
        obj = found[name].load()
    except ImportError as exc:
        if is_own(found[name]):  # an optional dependency of ours that is not installed: its own words say which
            raise
        raise PluginError(f"the {group!r} entry {name!r} ({origin(found[name])}) cannot be loaded: "
                          f"{type(exc).__name__}: {_first_line(exc)}") from exc
    except Exception as exc:  # noqa: BLE001 - a third-party module may raise anything when imported
        raise PluginError(f"the {group!r} entry {name!r} ({origin(found[name])}) cannot be loaded: "
                          f"{type(exc).__name__}: {_first_line(exc)}") from exc
    if group in KINDS:
        kind_name, how = KINDS[group]
        base, check = _DECLARED.get(group, (None, None))  # undeclared: its module is not imported, nothing is one
        fits = base is not None and (isinstance(obj, base) if how == "instance" else
                                     isinstance(obj, type) and issubclass(obj, base))
        if not fits:
            kind = f"the class {obj.__name__}" if isinstance(obj, type) else f"a {type(obj).__name__}"
            raise PluginError(f"the {group!r} entry {name!r} ({origin(found[name])}) is {kind}, not a "
                              f"{kind_name} {how}")
        wrong = check(obj) if check is not None else None
        if wrong:
            raise PluginError(f"the {group!r} entry {name!r} ({origin(found[name])}) {wrong}")
    return obj


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


def problem(group: str, name: str) -> str | None:
    """Why the entry ``name`` of ``group`` cannot be used, as one line, or None: what :func:`load` refuses
    (a conflict, a name that cannot be used, a module that is missing or raises when imported, an object of the
    wrong kind). Imports a plugin's module (``savi plugins`` and ``savi doctor`` mark broken entries); savi-plugin's
    own entries are not imported here (a missing library of ours is ``savi doctor``'s own check)."""
    if is_own(entries(group).get(name)) and name not in conflicts(group):
        return None
    try:
        load(group, name)
    except Exception as exc:  # noqa: BLE001 - an import may raise anything; the line is what a user reads
        return _first_line(exc) or type(exc).__name__
    return None


def load_class(group: str, name: str, base: type) -> type:
    """:func:`load` (which refuses an object of another kind than its group holds, :data:`KINDS`), typed."""
    return load(group, name)

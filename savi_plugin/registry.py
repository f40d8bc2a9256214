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


def entries(group: str) -> dict[str, EntryPoint]:
    """All entry points of ``group`` by name (no module is imported)."""
    return {ep.name: ep for ep in entry_points(group=group)}


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
    return found[name].load()

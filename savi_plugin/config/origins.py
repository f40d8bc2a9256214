"""Where each value of a merged configuration came from: the file (a recipe, the recipe it extends) or the
``key.path=value`` override that set it last.

A recipe is a merge of several sources (``extends:`` chains, then command-line overrides); a problem found in
the merged result -- at load, or by any check done later (an unknown eval task, a DeepSpeed file that does not
read) -- must name the source that set the value, not the file the command was given. :class:`KeySources` is
that knowledge: a ``str`` (the recipe's own file, what ``Recipe.source`` has always been) that also maps every
key path to the source that set it. :class:`~savi_plugin.errors.ConfigError` asks it for the key path it is
raised at, so every check that raises ``ConfigError(key, message, recipe.source)`` names the right source by
construction, whichever module the check lives in.
"""

from __future__ import annotations

import re
from typing import Any

_INDEX = re.compile(r"\[[^\]]*\]")


def set_origin(origins: dict[str, str], path: str, value: Any, source: str) -> None:
    """Record that ``source`` placed ``value`` at the dotted ``path``, with the merge rule of recipes: a mapping
    merges key by key into a mapping (the keys it does not name keep their source), anything else replaces the
    whole subtree (its keys' sources are dropped). Only leaves are recorded: a section's own source is the
    recipe file's."""
    if isinstance(value, dict):
        origins.pop(path, None)  # a mapping over a leaf replaces it
        for key, item in value.items():
            set_origin(origins, f"{path}.{key}" if path else str(key), item, source)
        return
    for key in [k for k in origins if k.startswith(f"{path}.")]:
        del origins[key]
    origins[path] = source


class KeySources(str):
    """The recipe file's path (as a ``str``), knowing which source set each key path (:func:`set_origin`)."""

    def __new__(cls, file: str, origins: dict[str, str] | None = None):
        self = super().__new__(cls, file)
        self.origins = dict(origins or {})
        return self

    def origin_of(self, path: str | None) -> str:
        """The source that set ``path`` (``eval.tasks[0]`` is ``eval.tasks``'s; a key under a value set whole
        is that value's); for a key whose every value below was set by one source (``reference_model.path=x``
        made ``reference_model``, a name, a mapping), that source; else the recipe file (a default, a section
        that several sources filled)."""
        key = _INDEX.sub("", path or "")
        below = {source for name, source in self.origins.items() if key and name.startswith(f"{key}.")}
        while key:
            if key in self.origins:
                return self.origins[key]
            key = key.rpartition(".")[0]
        return below.pop() if len(below) == 1 else str(self)

"""A training run's configuration as the files that hold it store it, and read back from them.

A run's configuration (:func:`savi_plugin.training.run.run_configuration`) is kept in three kinds of file: the
output folder's mark (``.savi-output.json``, compared by a re-run), ``savi_train_config.json`` (for the reader)
and every checkpoint's ``savi_checkpoint.json`` (:mod:`savi_plugin.training.checkpoints`). Its paths -- the model,
the pairs, the held-out pairs, and the ``training`` options that name files or folders -- follow the one rule for
a stored path (:mod:`savi_plugin.data.paths`): relative to the folder of the file that holds them when they lie
under it, or when both lie inside the job's declared run folder (``savi demo``'s, ``savi align``'s, ``savi
ablate``'s ``--out``), else absolute. A run folder moved whole therefore names its own model and pairs at the new
place, while the user's own files outside it stay absolute.

In memory (:func:`held_configuration`) every local path is absolute, so a configuration compares and fingerprints
the same from any working folder; :func:`stored_configuration` writes it for one file and
:func:`configuration_from_file` reads it back. Whether two runs are the same run is decided by content (the
``identity`` entries and ``data_sha256``), never by these spellings (:data:`savi_plugin.training.run.BY_IDENTITY`).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from savi_plugin.data.paths import name_for_file, path_for_file, path_from_file

#: ``(key path, may be a hub id)`` of every path in a run configuration; a hub id (``org/model``, nothing on this
#: machine) is kept as given
PATH_KEYS: tuple[tuple[str, bool], ...] = (
    ("model", True), ("data", False), ("eval_data", False), ("training.reference_model_path", True),
    ("training.data_root", False), ("training.deepspeed", False), ("training.logging_dir", False))


def _with_paths(config: dict[str, Any], convert: Callable[[str, bool], str]) -> dict[str, Any]:
    """A copy of ``config`` with each string at a :data:`PATH_KEYS` key replaced by ``convert(value, is_name)``
    (absent keys, None and an inline DeepSpeed dict are kept)."""
    out = copy.deepcopy(config)
    for key, is_name in PATH_KEYS:
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(last), (str, Path)) and str(node[last]):
            node[last] = convert(str(node[last]), is_name)
    return out


def _local(value: str) -> bool:
    return os.path.exists(Path(value).expanduser())


def held_configuration(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every local path absolute (``..`` collapsed, symlinks kept: the path the user named), a
    hub id as given: how a run holds its configuration, whatever the working folder."""
    def absolute(value: str, is_name: bool) -> str:
        if is_name and not _local(value):
            return value
        return os.path.normpath(os.path.abspath(Path(value).expanduser()))

    return _with_paths(config, absolute)


def stored_configuration(config: dict[str, Any], holder: str | Path) -> dict[str, Any]:
    """``config`` as the file ``holder`` stores it: each path by :func:`~savi_plugin.data.paths.path_for_file`
    (a model or reference model by :func:`~savi_plugin.data.paths.name_for_file`, so a hub id stays as given).
    The one conversion every writer of a run configuration uses."""
    return _with_paths(config, lambda value, is_name: name_for_file(value, holder) if is_name
                       else path_for_file(value, holder))


def configuration_from_file(stored: dict[str, Any], holder: str | Path) -> dict[str, Any]:
    """The configuration the file ``holder`` stores, each path read back by
    :func:`~savi_plugin.data.paths.path_from_file` and made absolute (the inverse of :func:`stored_configuration`
    up to :func:`held_configuration`). A relative model name naming nothing beside ``holder`` is a hub id: kept."""
    def read(value: str, is_name: bool) -> str:
        found = os.path.normpath(os.path.abspath(path_from_file(value, holder)))
        if is_name and not Path(value).expanduser().is_absolute() and not os.path.exists(found):
            return value
        return found

    return _with_paths(stored, read)

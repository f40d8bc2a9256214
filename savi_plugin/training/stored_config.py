"""A training run's configuration as the files that hold it store it, and read back from them.

A run's configuration (:func:`savi_plugin.training.run.run_configuration`) is kept in three kinds of file: the
output folder's mark (``.savi-output.json``, compared by a re-run), ``savi_train_config.json`` (for the reader)
and every checkpoint's ``savi_checkpoint.json`` (:mod:`savi_plugin.training.checkpoints`). Its paths -- the model,
the pairs, the held-out pairs, and the ``training`` options that name files or folders (:data:`PATH_KEYS`) --
follow the one rule for a stored path (:mod:`savi_plugin.data.paths`, whose
:func:`~savi_plugin.data.paths.configuration_for_file` converts every job's configuration): relative to the folder
of the file that holds them when they lie under it, or when both lie inside the job's declared run folder (``savi
demo``'s, ``savi align``'s, ``savi ablate``'s ``--out``), else absolute. A run folder moved whole therefore names
its own model and pairs at the new place, while the user's own files outside it stay absolute.

In memory (:func:`held_configuration`) every local path is absolute, so a configuration compares and fingerprints
the same from any working folder; :func:`stored_configuration` writes it for one file and
:func:`configuration_from_file` reads it back. Whether two runs are the same run is decided by content (the
``identity`` entries and ``data_sha256``), never by these spellings (:data:`savi_plugin.training.run.BY_IDENTITY`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from savi_plugin.data import paths

#: ``(key path, may be a hub id)`` of every path in a training run's configuration
PATH_KEYS: paths.PathKeys = (
    ("model", True), ("data", False), ("eval_data", False), ("training.reference_model_path", True),
    ("training.data_root", False), ("training.deepspeed", False), ("training.logging_dir", False))


def held_configuration(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as a run holds it (:func:`savi_plugin.data.paths.held_configuration` of :data:`PATH_KEYS`)."""
    return paths.held_configuration(config, PATH_KEYS)


def stored_configuration(config: dict[str, Any], holder: str | Path) -> dict[str, Any]:
    """``config`` as the file ``holder`` stores it (:func:`savi_plugin.data.paths.configuration_for_file`)."""
    return paths.configuration_for_file(config, holder, PATH_KEYS)


def configuration_from_file(stored: dict[str, Any], holder: str | Path) -> dict[str, Any]:
    """The configuration the file ``holder`` stores, read back absolute
    (:func:`savi_plugin.data.paths.configuration_from_file`)."""
    return paths.configuration_from_file(stored, holder, PATH_KEYS)

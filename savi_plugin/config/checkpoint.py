"""Checks that a model path names a checkpoint and a named backend fits it, before any step loads it."""

from __future__ import annotations

import os
from pathlib import Path

from savi_plugin.config.values import ConfigError
from savi_plugin.data.files import read_json
from savi_plugin.errors import DocumentTooLarge


def checkpoint_model_type(path: str | Path) -> str | None:
    """``model_type`` of a local checkpoint's ``config.json``; None for a hub id, a ``tiny://`` model or a
    folder without one."""
    config = Path(str(path)) / "config.json"
    if "://" in str(path) or not config.is_file():
        return None
    try:
        return read_json(config).get("model_type")
    except DocumentTooLarge:
        raise
    except (OSError, ValueError) as exc:
        raise ConfigError("", f"unreadable config.json: {exc}", str(config)) from None


def check_model_found(model: str | Path, backend: str | None, where: str, source: str | None = None,
                      backend_where: str = "--backend") -> None:
    """Refuse a model path that is no local model folder when no backend is named: the backend is detected from
    the folder's ``config.json``, so such a path can load nothing (a hub id loads only through a named backend);
    and a model folder the one loader check refuses
    (:func:`savi_plugin.data.model_config.loadable_model_problem`). A value to correct, said at the flag or key
    that gave it, like a judge or adapter path.

    Raises:
        ConfigError: ``source: where: <path>: no such file or folder; ...`` (exit status 2).
    """
    if backend or "://" in str(model):
        return
    from savi_plugin.data.model_config import loadable_model_problem

    problem = loadable_model_problem(model)
    if problem and os.path.lexists(Path(model) / "config.json"):  # a model folder, with a file to correct
        raise ConfigError(where, f"{model}: the model cannot be loaded: {problem}", source)
    if problem:
        raise ConfigError(where, f"{model}: {problem}; give a local model folder (nothing is downloaded), or a hub "
                                 f"id with its backend ({backend_where})", source)


def check_model(model: str | Path, backend: str | None, where: str = "model.path", source: str | None = None,
                backend_where: str = "model.backend") -> None:
    """The one check of the model a run loads, asked before the run starts and by its dry run alike
    (:func:`check_model_found`, then :func:`check_backend_fits`): ``where`` names the key or flag that gave
    ``model``, ``backend_where`` the one that gave ``backend``. With a backend, a value that names nothing here
    and cannot be a hub id (:func:`~savi_plugin.data.identity.check_model_reference`'s rule) is said at ``where``."""
    from savi_plugin.data.identity import ModelNotFoundError, check_model_reference

    try:
        check_model_reference(model)
    except ModelNotFoundError as exc:
        raise ConfigError(where, f"{exc}; give a local model folder (nothing is downloaded), or a hub id with its "
                                 f"backend ({backend_where})", source) from None
    check_model_found(model, backend, where, source, backend_where)
    check_backend_fits(model, backend, backend_where, source)


def check_backend_fits(model: str | Path, backend: str | None, where: str = "model.backend",
                       source: str | None = None) -> None:
    """Refuse a ``backend`` whose families do not include the local checkpoint's ``model_type``.

    Raises:
        ConfigError: ``source: where: backend 'x' does not serve model_type 'y' (<path>); use one of ...``.
    """
    if not backend:
        return
    model_type = checkpoint_model_type(model)
    if model_type is None:
        return
    from savi_plugin import registry

    served = getattr(registry.load(registry.BACKENDS, backend), "model_types", ())
    if model_type in served:
        return
    fits = []
    for name in registry.available(registry.BACKENDS):
        try:
            if model_type in getattr(registry.load(registry.BACKENDS, name), "model_types", ()):
                fits.append(name)
        except Exception:  # a broken third-party backend is not a candidate
            continue
    hint = f"use {' or '.join(fits)}, or leave it unset to detect it" if fits else "no registered backend serves it"
    raise ConfigError(where, f"backend {backend!r} does not serve model_type {model_type!r} ({model}); {hint}",
                      source)

"""Models: backend adapters (``VideoLM``) per family, tiny test models, backend lookup."""

from __future__ import annotations

import logging
from pathlib import Path

from savi_plugin import registry
from savi_plugin.data.files import read_json

log = logging.getLogger(__name__)


def detect_backend(path: str | Path) -> str:
    """The registered backend whose ``model_types`` include the checkpoint's ``config.model_type``."""
    from savi_plugin.data.files import folder_problem

    config = Path(path) / "config.json"
    problem = folder_problem(path, "config.json", "a model folder")
    if problem == "no such file or folder":
        raise FileNotFoundError(f"{path}: no such file or folder (for a hub id, pass its backend explicitly)")
    if problem and (Path(path) / "adapter_config.json").is_file():
        problem = "is an adapter folder (adapter_config.json), not a model folder; give it as the adapter"
    if problem:
        raise FileNotFoundError(f"{path}: {problem}")
    model_type = read_json(config).get("model_type")
    for name in registry.available(registry.BACKENDS):
        try:
            cls = registry.load(registry.BACKENDS, name)
        except Exception as exc:  # a broken third-party backend must not stop detection of ours
            log.warning("backend %r could not be imported (%s: %s); skipped during detection",
                        name, type(exc).__name__, exc)
            continue
        if model_type in getattr(cls, "model_types", ()):
            return name
    raise ValueError(f"{config}: no backend serves model_type {model_type!r}; registered backends: "
                     f"{', '.join(registry.available(registry.BACKENDS))}")


def load_backend(path: str | Path, backend: str | None = None, **kwargs):
    """Load a checkpoint through its backend (auto-detected from ``config.json`` when not given).

    Keyword arguments go to :meth:`VideoLM.from_pretrained` (``adapter``, ``dtype``, ``device``,
    ``num_frames``, ``trust_remote_code`` ...).
    """
    name = backend or detect_backend(path)
    cls = registry.load(registry.BACKENDS, name)
    return cls.from_pretrained(path, **kwargs)

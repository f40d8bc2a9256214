"""Models: backend adapters (``VideoLM``) per family, tiny test models, backend lookup."""

from __future__ import annotations

import logging
from pathlib import Path

from savi_plugin import registry
from savi_plugin.data.files import read_json
from savi_plugin.data.model_config import load_refusal, model_folder_problem

log = logging.getLogger(__name__)


def detect_backend(path: str | Path) -> str:
    """The registered backend whose ``model_types`` include the checkpoint's ``config.model_type``."""
    from savi_plugin.data.identity import check_model_reference

    check_model_reference(path)
    config = Path(path) / "config.json"
    problem = model_folder_problem(path)
    if problem == "no such file or folder":  # a hub id's form
        raise FileNotFoundError(f"{path}: no such file or folder (for a hub id, pass its backend explicitly)")
    if problem:
        raise FileNotFoundError(f"{path}: {problem}")
    model_type = read_json(config).get("model_type")
    serving = []
    for name in registry.available(registry.BACKENDS):
        try:
            cls = registry.load(registry.BACKENDS, name)
        except Exception as exc:  # a broken third-party backend must not stop detection of ours
            log.warning("backend %r could not be imported (%s: %s); skipped during detection",
                        name, type(exc).__name__, exc)
            continue
        if model_type in getattr(cls, "model_types", ()):
            serving.append(name)
    if len(serving) == 1:
        return serving[0]
    if serving:  # a plugin's backend serving a model_type savi's own (or another plugin's) serves: never picked by name order
        raise ValueError(f"{config}: model_type {model_type!r} is served by several backends "
                         f"({', '.join(serving)}): name one (model.backend, or --backend)")
    raise ValueError(f"{config}: no backend serves model_type {model_type!r}; registered backends: "
                     f"{', '.join(registry.available(registry.BACKENDS))}")


def load_backend(path: str | Path, backend: str | None = None, **kwargs):
    """Load a checkpoint through its backend (auto-detected from ``config.json`` when not given); a local folder
    that is no model folder (:func:`model_folder_problem`) is named as what it is before transformers reads it.

    Keyword arguments go to :meth:`VideoLM.from_pretrained` (``adapter``, ``dtype``, ``device``,
    ``num_frames``, ``trust_remote_code`` ...).
    """
    from savi_plugin.data.identity import check_model_reference
    from savi_plugin.models.backends.base import ModelLoadError
    from savi_plugin.plugin_call import plugin_call

    check_model_reference(path)
    refusal = load_refusal(path, backend)  # detect_backend asks for a model folder itself, without a backend
    if refusal:
        raise ModelLoadError(f"{path}: {refusal}")
    name = backend or detect_backend(path)
    cls = registry.load(registry.BACKENDS, name)
    with plugin_call(registry.BACKENDS, name, cls, "from_pretrained"):
        lm = cls.from_pretrained(path, **kwargs)
    lm.entry = name  # what the boundary names it by in each hook's call (models/backends/base.py, HOOKS)
    tensor = nonfinite_parameter(lm.model)
    if tensor is not None:  # NaN logits would decode to a silent token 0 and train at loss NaN
        raise ModelLoadError(f"{path}: the model cannot be loaded: its weight {tensor} holds NaN or infinity; "
                             f"restore the folder from where it came from")
    return lm


def nonfinite_parameter(model) -> str | None:
    """The name of the first floating-point parameter of ``model`` holding NaN or infinity, or None: one
    ``isfinite`` pass over the weights as loaded (on the model's device), one tensor at a time."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.is_floating_point() and not bool(torch.isfinite(param).all()):
                return name
    return None

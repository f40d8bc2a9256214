"""What a model's or adapter's own configuration says, checked against its weights before anything is built
(the loaders ask it: ``savi_plugin.models.load_backend``, :func:`savi_plugin.data.identity.check_adapter`).

transformers builds a model from ``config.json`` before it reads a weight, and peft an adapter from
``adapter_config.json``: a config whose layer count is 4294967295 builds layers until memory runs out, one whose
``rms_norm_eps`` is infinite loads and answers from hidden states of ~0, an adapter whose ``r`` is 2^32-1 asks for
1 TiB. Each is named here, from the files' headers only (:func:`weight_shapes` maps no tensor), before the load.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from savi_plugin.errors import DocumentTooLarge

#: the decoder layers of a video LM's language model, as checkpoints name them (``model.language_model.layers.N``,
#: the legacy ``language_model.model.layers.N``, a text model's ``model.layers.N``); vision layers are not counted
_TEXT_LAYER = re.compile(r"(?:(?:^|\.)language_model\.(?:model\.)?|^model\.)layers\.(\d+)\.")


def nonfinite_value(value: Any, path: str = "") -> tuple[str, Any] | None:
    """``(key path, value)`` of the first number in ``value`` that is not finite (a float, or transformers'
    ``{"__float__": "Infinity"}`` encoding of one), or None."""
    stack = [(path, value)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return where, node
        if isinstance(node, dict):
            if set(node) == {"__float__"} and str(node["__float__"]) in ("Infinity", "-Infinity", "NaN"):
                return where, node["__float__"]
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(node))
    return None


def weight_headers(folder: str | Path) -> dict[str, tuple[str, tuple[int, ...], str]]:
    """Every tensor name of the ``*.safetensors`` files in ``folder`` with its file's name, shape and dtype
    (``"F32"``, ``"I32"``), from their headers; a file that cannot be read is left to the loader, which names it."""
    from safetensors import safe_open

    found: dict[str, tuple[str, tuple[int, ...], str]] = {}
    for path in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as fh:
                for name in fh.keys():
                    part = fh.get_slice(name)
                    found[name] = (path.name, tuple(part.get_shape()), str(part.get_dtype()))
        except Exception:  # noqa: BLE001 - safetensors' own error: the loader's check names the file
            continue
    return found


def weight_shapes(folder: str | Path) -> dict[str, tuple[int, ...]]:
    """Every tensor name of the ``*.safetensors`` files in ``folder`` with its shape (:func:`weight_headers`)."""
    return {name: shape for name, (_, shape, _) in weight_headers(folder).items()}


#: safetensors dtypes that hold no floating-point number
_INTEGER_DTYPES = ("BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64")


def integer_weight_problem(folder: str | Path, config: dict) -> str | None:
    """A weight or bias of ``folder``'s safetensors stored as an integer type, where ``config`` (its
    ``config.json`` or ``adapter_config.json``) declares no quantization, or None: a header relabelling float
    tensors as integers loads (cast to float: other numbers) and trains into non-finite losses, blamed on the
    learning rate (pass 24 F row 13)."""
    text = config.get("text_config")
    if "quantization_config" in config or (isinstance(text, dict) and "quantization_config" in text):
        return None
    for name, (file, _, dtype) in weight_headers(folder).items():
        if dtype in _INTEGER_DTYPES and name.endswith((".weight", ".bias")):
            return (f"{file}: tensor {name!r} is stored as {dtype}, an integer type, but it is a floating "
                    f"parameter (a weight or bias) and the config declares no quantization: the file's header is "
                    f"damaged or the weights are not this model's")
    return None


def pickled_weight_problem(path: Path) -> str | None:
    """:data:`~savi_plugin.errors.PICKLED_CHECKPOINT` said at ``path``'s name when the ``pytorch_model*.bin`` there
    holds pickled Python objects, or None: torch's own weights-only unpickler reads it (memory-mapped onto the meta
    device: no tensor is read), so nothing in it runs. Another error is left to the loader, which names it."""
    import torch

    from savi_plugin.errors import PICKLED_CHECKPOINT

    try:
        try:
            torch.load(str(path), weights_only=True, mmap=True, map_location="meta")
        except RuntimeError as exc:  # the legacy (non-zip) format cannot be mapped: read
            if "mmap" not in str(exc):
                raise
            torch.load(str(path), weights_only=True, map_location="meta")
    except Exception as exc:  # noqa: BLE001 - only the unpickler's refusal is named here
        if any(c.__name__ == "UnpicklingError" for c in type(exc).__mro__):
            return f"{path.name}: {PICKLED_CHECKPOINT}"
    return None


def read_config(path: Path) -> dict | None:
    """The JSON object at ``path``, or None when it is absent or unreadable (the loader's own check says so)."""
    from savi_plugin.data.files import read_json
    from savi_plugin.errors import DocumentTooLarge

    try:
        config = read_json(path, lambda message, line=None: ValueError(message), strict=False)
    except DocumentTooLarge:  # above the document caps: the same refusal as every reader's
        raise
    except (OSError, ValueError):  # absent or unreadable: the loader's own check says so
        return None
    return config if isinstance(config, dict) else None


def _finite_config(path: Path) -> tuple[dict | None, str | None]:
    """``(the config at path, None)``, or ``(None, why it is refused)`` when a number in it is not finite, or
    ``(None, None)`` when there is none to read (the loader's own check names that)."""
    config = read_config(path)
    bad = nonfinite_value(config) if config is not None else None
    if bad is not None:
        return None, f"{path.name}: {bad[0]}: {bad[1]} is not a finite number"
    return config, None


#: the JSON files transformers reads from a model folder when they are there (its config, generation config,
#: tokenizer, processors, legacy chat template, sharded weights' index): a torn ``generation_config.json`` is read as
#: absent (its ``eos_token_id`` lost, answers run on to ``max_new_tokens``), others fail deep inside the load
MODEL_JSON_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", "tokenizer.json",
                    "special_tokens_map.json", "added_tokens.json", "preprocessor_config.json",
                    "processor_config.json", "video_preprocessor_config.json", "chat_template.json",
                    "model.safetensors.index.json")
#: the weight files transformers reads from a model folder
MODEL_WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin")


def model_files_problem(folder: str | Path) -> str | None:
    """What is wrong with a file of ``folder`` that a model's loader reads, or None: one of
    :data:`MODEL_JSON_FILES` that is there (a broken link included) but is no regular file, is not JSON (torn,
    empty: named at its ``file:line`` and column) or holds no JSON object; or a weight file
    (:data:`MODEL_WEIGHT_FILES`) that is a broken link or no regular file, or a ``pytorch_model*.bin`` the
    loader would read that holds pickled Python objects (:func:`pickled_weight_problem`). Each is named relative
    to ``folder``.

    Raises:
        DocumentTooLarge: a JSON file above the document caps, as at every reader.
    """
    from savi_plugin.data.files import file_problem, read_json

    folder = Path(folder)
    for name in MODEL_JSON_FILES:
        path = folder / name
        if not path.is_symlink() and not path.exists():
            continue
        problem = file_problem(path, "JSON file")
        if problem:
            return f"{name} {problem}"
        try:
            value = read_json(path, lambda message, line=None: ValueError(
                f"{name}:{line}: {message}" if line else f"{name}: {message}"), strict=False)
        except DocumentTooLarge:  # above the document caps: the same refusal as every reader's
            raise
        except OSError as exc:
            return f"{name} cannot be read ({exc.strerror or exc})"
        except ValueError as exc:
            return str(exc)
        if not isinstance(value, dict):
            return f"{name}: holds a JSON {_json_kind(value)}, not an object"
    for pattern in MODEL_WEIGHT_FILES:
        for path in sorted(folder.glob(pattern)):
            problem = file_problem(path, "weight file")
            if problem:
                return f"{path.name}: the model's weight file {problem}"
    if next(folder.glob("*.safetensors"), None) is None:  # transformers reads a .bin only without safetensors
        for path in sorted(folder.glob("pytorch_model*.bin")):
            problem = pickled_weight_problem(path)
            if problem:
                return problem
    return None


def _json_kind(value: Any) -> str:
    """What JSON kind ``value`` is: ``list``, ``string``, ``number``, ``boolean`` or ``null``."""
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return {list: "list", str: "string"}.get(type(value), "number")


def model_config_problem(folder: str | Path) -> str | None:
    """What in ``folder``'s files its loader would misread (:func:`model_files_problem`), or what in
    ``folder/config.json`` its weights contradict, or None: a number that is not finite, a language model whose
    ``num_hidden_layers`` differs from the decoder layers its weights hold, or a weight stored as an integer type
    in a model that declares no quantization (:func:`integer_weight_problem`)."""
    folder = Path(folder)
    problem = model_files_problem(folder)
    if problem:
        return problem
    config, problem = _finite_config(folder / "config.json")
    if config is None:
        return problem
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    declared = text.get("num_hidden_layers")
    layers = {int(m.group(1)) for name in weight_shapes(folder) if (m := _TEXT_LAYER.search(name))}
    if layers and type(declared) is int and declared != len(layers):
        key = "text_config.num_hidden_layers" if text is not config else "num_hidden_layers"
        return (f"config.json: {key}: {declared}, but the weights hold {len(layers)} decoder layer(s); the config "
                f"does not describe these weights")
    return integer_weight_problem(folder, config)


def adapter_config_problem(folder: str | Path) -> str | None:
    """What in ``folder/adapter_config.json`` its weights contradict, or None: a number that is not finite, or a
    rank ``r`` other than the rank of its LoRA weights (each ``lora_A`` is ``r`` x in-features)."""
    folder = Path(folder)
    config, problem = _finite_config(folder / "adapter_config.json")
    if config is None:
        return problem
    rank = config.get("r")
    if type(rank) is int and not config.get("rank_pattern"):
        ranks = {shape[0] for name, shape in weight_shapes(folder).items() if "lora_A" in name and shape}
        if ranks and ranks != {rank}:
            return (f"adapter_config.json: r: {rank}, but its LoRA weights have rank {', '.join(map(str, sorted(ranks)))}"
                    f"; the config does not describe these weights")
    return integer_weight_problem(folder, config)


def model_folder_problem(path: str | Path) -> str | None:
    """What ``path`` is instead of a model folder (``config.json`` in it), or None: ``no such file or folder``, a
    file, an empty folder, a FIFO, or an adapter or training output folder (``adapter_config.json``: given where a
    base model belongs)."""
    from savi_plugin.data.files import folder_problem

    problem = folder_problem(path, "config.json", "a model folder")
    if problem and problem != "no such file or folder" and (Path(path) / "adapter_config.json").is_file():
        return "is an adapter folder (adapter_config.json), not a model folder; give it as the adapter"
    return problem


def loadable_model_problem(path: str | Path) -> str | None:
    """The one check of a local model folder before a loader reads it, whatever the role it is loaded in (the
    policy and the reference through :func:`savi_plugin.models.load_backend`, a judge or tagger, the similarity
    scorer), or None when it can be loaded: what ``path`` is instead of a model folder
    (:func:`model_folder_problem`), what in its files the loader would misread or its ``config.json`` contradicts
    (:func:`model_config_problem`), or a folder that holds no weight file. Said after the path
    (``<path>: <problem>``)."""
    # a file the loader reads that is torn or a broken link is named first: a broken config.json link is no
    # "folder without config.json"
    problem = (str(path).strip() and Path(path).is_dir() and model_config_problem(path)) or model_folder_problem(path)
    if problem:
        return problem
    if not any(next(Path(path).glob(pattern), None) is not None for pattern in MODEL_WEIGHT_FILES):
        return f"holds no weight file ({', '.join(MODEL_WEIGHT_FILES)}): config.json alone describes no weights"
    return None


def load_refusal(path: str | Path, backend: str | None = None) -> str | None:
    """What the loader (:func:`savi_plugin.models.load_backend`) refuses the local model ``path`` for before it
    reads a weight, in its words (``the model cannot be loaded: it is an empty folder, ...``, said after the path),
    or None: with a named ``backend``, a path that is here but no model folder (:func:`model_folder_problem`); any
    folder holding a ``config.json`` that :func:`loadable_model_problem` refuses. Asked by the loader and by every
    dry run alike (:mod:`savi_plugin.pipeline.dry_run`), so a dry run notes what the real run refuses."""
    if backend and Path(path).exists():
        problem = model_folder_problem(path)
        if problem:
            return f"the model cannot be loaded: it {problem}"
    config = Path(path) / "config.json"
    if config.is_file() or config.is_symlink():  # what transformers would misread or miss before a weight
        problem = loadable_model_problem(path)
        if problem:
            return f"the model cannot be loaded: {problem}"
    return None

"""Which device strings name a device this machine can run on: the one check every entry point that takes a
device uses (``savi generate --device``, ``savi eval run --device``, ``savi bench gpu --device``, the VideoSAVi
generator's ``scorer_device``, ``savi_video``'s ``device`` model_arg).

A string torch parses is not enough: ``meta`` holds no data (every forward fails per item), ``xla`` or ``hpu``
need a runtime this package does not drive, and ``cuda:3`` on a machine with one GPU fails at the first copy.
Each is a configuration error before anything is loaded, created or marked.
"""

from __future__ import annotations

from typing import Any

from savi_plugin.config.values import Rule

#: what a device string may be, named in every refusal
ACCEPTED = "auto, cpu, cuda, cuda:N or mps"


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def device_problem(device: Any, *, count_gpus: bool = True) -> str | None:
    """What keeps ``device`` from being a device this process can run on, or None when it can.

    Args:
        device: the string the user gave.
        count_gpus: False to accept any ``cuda``/``cuda:N`` unseen, for a caller that must set
            ``CUDA_VISIBLE_DEVICES`` before CUDA starts (asking for the GPU count starts it) and counts after.

    Returns:
        A sentence starting with ``repr(device)`` (so a caller prefixes its flag or key), naming what is
        accepted; None for ``auto``, ``cpu``, ``cuda``/``cuda:N`` with that GPU present, ``mps`` when available.
    """
    import torch

    if not isinstance(device, str):
        return f"{device!r} is not a device string; use {ACCEPTED}"
    if device == "auto":
        return None
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        detail = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"{device!r} is not a device ({detail}); use {ACCEPTED}"
    if parsed.type == "cpu":
        return None
    if parsed.type == "cuda":
        if not count_gpus:
            return None
        count = _cuda_count()
        if count == 0 or (parsed.index is not None and parsed.index >= count):
            return (f"{device!r}: this machine has {count} CUDA device(s)"
                    f"{'' if count else ' (no driver or no GPU)'}; use auto or cpu")
        return None
    if parsed.type == "mps":
        if not _mps_available():
            return f"{device!r}: MPS is not available on this machine; use auto or cpu"
        if parsed.index not in (None, 0):
            return f"{device!r}: there is one MPS device, mps or mps:0; use {ACCEPTED}"
        return None
    if parsed.type == "meta":
        return f"{device!r} holds no data, so no model can run on it; use {ACCEPTED}"
    return f"{device!r}: savi-plugin does not run on {parsed.type} devices; use {ACCEPTED}"


def resolve_device(device: str, flag: str = "--device") -> str:
    """The device to load onto: ``auto`` is ``cuda:<LOCAL_RANK>`` when CUDA is available, else ``cpu``; any other
    string is returned as given once :func:`device_problem` finds nothing wrong.

    Raises:
        ConfigError: ``flag: <problem>`` (exit status 2), before anything is loaded or marked.
    """
    problem = device_problem(device)
    if problem:
        from savi_plugin.errors import ConfigError

        raise ConfigError(flag, problem)
    if device != "auto":
        return device
    if _cuda_count():
        from savi_plugin.launch import current

        return f"cuda:{current().local_rank}"
    return "cpu"


class UsableDevice(Rule):
    """An options field naming a device (:func:`device_problem`), checked with every other value."""

    def __init__(self, *, count_gpus: bool = True):
        self.count_gpus = count_gpus

    def problem(self, value: Any) -> str | None:
        return device_problem(value, count_gpus=self.count_gpus)

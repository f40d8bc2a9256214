"""One device check for every entry point that takes a device (savi_plugin/device.py): a string torch parses but
nothing can run on here (``meta``, ``xla``, a GPU this machine lacks) or a malformed one stops before anything is
loaded or created, with one line naming the flag or the model_args key (red team 5: ``--device meta`` loaded the
model and failed every item as a machine error)."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from savi_plugin.device import ACCEPTED, device_problem, resolve_device

CUDA = torch.cuda.device_count() if torch.cuda.is_available() else 0
MPS = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())

#: strings no entry point may accept on this machine: no data, other runtimes, malformed, absent hardware
REFUSED = ["meta", "meta:0", "xla", "hpu", "ipu", "privateuseone", "gpu", "cuda:x", "cpu:0:1", "", " cpu", "CPU",
           "cuda:-1", f"cuda:{CUDA}", *([] if CUDA else ["cuda", "cuda:0"]), *([] if MPS else ["mps"])]
ACCEPTED_HERE = ["auto", "cpu", "cpu:0", *(["cuda", "cuda:0"] if CUDA else []), *(["mps"] if MPS else [])]


@pytest.mark.parametrize("device", REFUSED)
def test_resolve_device_refuses_what_cannot_run_here(device):
    from savi_plugin.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        resolve_device(device, "--device")
    message = str(err.value)
    assert message.startswith(f"--device: {device!r}") and "\n" not in message, message


@pytest.mark.parametrize("device", ACCEPTED_HERE)
def test_resolve_device_accepts_what_runs_here(device):
    resolved = resolve_device(device)
    assert torch.device(resolved).type in {"cpu", "cuda", "mps"}
    assert resolved == device or device == "auto"


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=12), st.from_regex(r"[a-z]{2,14}(:-?[0-9]{1,3})?", fullmatch=True)))
def test_any_string_is_accepted_only_as_a_device_that_runs_here(text):
    """Either None and a device of a kind this package runs on, or one line starting with the string's repr."""
    problem = device_problem(text)
    if problem is None:
        assert text == "auto" or torch.device(text).type in {"cpu", "cuda", "mps"}
        if text != "auto" and torch.device(text).type == "cuda":
            assert CUDA and (torch.device(text).index or 0) < CUDA
    else:
        assert problem.startswith(repr(text)) and "\n" not in problem and "use " in problem

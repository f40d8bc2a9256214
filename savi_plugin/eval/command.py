"""The one place that builds an lmms-eval command line (``savi eval run`` and the recipes' eval step use it).

lmms-eval reads ``--model_args`` as ``k=v,k=v``: a value holding ``,`` or ``=`` would be split into other
arguments, so :func:`savi_video_args` refuses such a value with a one-line error naming it.
"""

from __future__ import annotations

import sys
from pathlib import Path

_SUBCOMMANDS_WITHOUT_TASKS = ("models", "version", "ui", "serve", "power", "tui", "mcp")


def lmms_eval_command(lmms_eval_args: list[str], tasks_path: str | None = None) -> list[str]:
    """``python -m lmms_eval ARGS``, with our task folder added when ``tasks_path`` is given.

    ``--include_path tasks_path`` is added unless the arguments carry one (the ``tasks`` sub-command spells the
    flag ``--include-path``; sub-commands that take no tasks get none). Without ``tasks_path`` lmms-eval finds
    our tasks through the package's automatic registration.
    """
    args = [str(a) for a in lmms_eval_args]
    if tasks_path is not None and not any(a.split("=", 1)[0] in ("--include_path", "--include-path") for a in args):
        if args and args[0] == "tasks":
            args += ["--include-path", tasks_path]
        elif not (args and args[0] in _SUBCOMMANDS_WITHOUT_TASKS):
            args += ["--include_path", tasks_path]
    return [sys.executable, "-m", "lmms_eval", *args]


def _model_arg(name: str, value: object) -> str:
    text = str(value)
    if "," in text or "=" in text:
        raise ValueError(f"savi_video model_args: {name}={text!r} holds ',' or '=', which lmms-eval's "
                         f"--model_args parser would split")
    return f"{name}={text}"


def savi_video_args(model: str | Path, tasks: list[str], output_path: str | Path, *, num_frames: int,
                    adapter: str | Path | None = None, limit: float | None = None, batch_size: int = 1,
                    max_new_tokens: int | None = None, device: str | None = None,
                    dtype: str = "float32") -> list[str]:
    """lmms-eval arguments that evaluate ``model`` (+ ``adapter``) with the ``savi_video`` model on ``tasks``."""
    model_args = [_model_arg("pretrained", model), _model_arg("num_frames", num_frames), _model_arg("dtype", dtype)]
    if adapter:
        model_args.append(_model_arg("adapter", adapter))
    if max_new_tokens:
        model_args.append(_model_arg("max_new_tokens", max_new_tokens))
    args = ["--model", "savi_video", "--model_args", ",".join(model_args), "--tasks", ",".join(tasks),
            "--batch_size", str(batch_size), "--output_path", str(output_path)]
    if limit is not None:
        args += ["--limit", str(limit)]
    if device:
        args += ["--device", device]
    return args

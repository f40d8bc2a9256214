"""Which process of which job this is: the one place that reads the launchers' environment.

``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` are honoured only inside a launcher, recognised by the companion
variables each launcher sets beside them:

* ``torchrun`` (and ``accelerate launch`` on several processes, which runs torchrun): ``TORCHELASTIC_RUN_ID``,
  ``GROUP_RANK``, ``MASTER_ADDR`` + ``MASTER_PORT``;
* ``deepspeed`` (``deepspeed.launcher.launch``): ``MASTER_ADDR`` + ``MASTER_PORT`` and ``LOCAL_SIZE``;
* ``accelerate launch`` on one process: ``ACCELERATE_MIXED_PRECISION``, ``ACCELERATE_USE_CPU`` and
  ``ACCELERATE_DYNAMO_BACKEND`` together (rank 0 of 1; it sets no rank variables, so any found beside them are
  stray). ``ACCELERATE_*`` settings without the three are stray too: transformers would apply them (mixed
  precision) to a plain run.

The same variables left in a shell (``export RANK=1 WORLD_SIZE=2``, then a plain ``savi train``) would
otherwise shard a plain run, skip the output lock on a "rank 1", or make torch wait for a rendezvous that never
comes; :func:`clean_stray_launcher_env` (called by the ``savi`` command before anything else) drops them with one
warning. :func:`current` is what every module asks: generation's default shard, the output lock, training's main
process, the align loop's rank.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import Mapping

log = logging.getLogger(__name__)

#: the variables a launcher sets for each process, and that a plain run must not trust
PROCESS_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
#: what ``accelerate launch`` sets in every process it starts (accelerate.utils.launch.prepare_simple_launcher_
#: cmd_env and prepare_multi_gpu_env); one of them alone, e.g. ``ACCELERATE_MIXED_PRECISION=bf16`` left in a
#: shell, is not a launcher, and transformers' Trainer would silently train under its autocast
ACCELERATE_LAUNCH_VARIABLES = ("ACCELERATE_MIXED_PRECISION", "ACCELERATE_USE_CPU", "ACCELERATE_DYNAMO_BACKEND")


@dataclass(frozen=True)
class Process:
    """This process's place in its job: ``rank`` of ``world_size`` (``local_rank`` on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launcher_name(env: Mapping[str, str] | None = None) -> str | None:
    """``"torchrun"``, ``"deepspeed"``, ``"accelerate"`` when ``env`` (default: ``os.environ``) is a launcher's
    process environment, else None (see the module docstring for the companion variables)."""
    env = os.environ if env is None else env
    rendezvous = bool(env.get("MASTER_ADDR")) and bool(env.get("MASTER_PORT"))
    if env.get("TORCHELASTIC_RUN_ID") and "GROUP_RANK" in env and rendezvous:
        return "torchrun"
    if rendezvous and "LOCAL_SIZE" in env:
        return "deepspeed"
    if all(k in env for k in ACCELERATE_LAUNCH_VARIABLES):  # accelerate's one-process launcher (N: torchrun)
        return "accelerate"
    return None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError:
        raise ValueError(f"the launcher's {name}={value!r} is not an integer") from None


def current(env: Mapping[str, str] | None = None) -> Process:
    """This process's rank, world size and local rank: the launcher's, or rank 0 of 1 outside a launcher."""
    env = os.environ if env is None else env
    name = launcher_name(env)
    if name is None or name == "accelerate":
        return Process(launcher=name)
    process = Process(rank=_int(env, "RANK", 0), world_size=_int(env, "WORLD_SIZE", 1),
                      local_rank=_int(env, "LOCAL_RANK", 0), launcher=name)
    if process.world_size < 1 or not 0 <= process.rank < process.world_size:
        raise ValueError(f"{name}: RANK={process.rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE={process.world_size})")
    return process


def stray_process_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """The :data:`PROCESS_VARIABLES` set in ``env`` (default: ``os.environ``) although no launcher started this
    process (:func:`launcher_name`; accelerate's one-process launcher sets none of them), in that order."""
    env = os.environ if env is None else env
    if launcher_name(env) not in (None, "accelerate"):
        return []
    return [k for k in PROCESS_VARIABLES if k in env]


def clean_stray_launcher_env(env: dict | None = None) -> list[str]:
    """Drop ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``LOCAL_WORLD_SIZE`` when no launcher started this process
    (:func:`stray_process_variables`), and ``ACCELERATE_*`` when ``accelerate launch`` did not
    (:data:`ACCELERATE_LAUNCH_VARIABLES`).

    Returns the names dropped (a warning names them once). Torch and transformers read these variables
    themselves, so leaving them would make a plain run wait for a rendezvous or believe it is rank 1.
    """
    env = os.environ if env is None else env
    stray = stray_process_variables(env)
    if launcher_name(env) is None:  # accelerate's settings without its launcher
        stray += sorted(k for k in env if k.startswith("ACCELERATE_"))
    if stray:
        values = ", ".join(f"{k}={env[k]}" for k in stray)
        log.warning("ignoring %s: no launcher (torchrun, deepspeed, accelerate) started this process, so it runs "
                    "as one process; unset them, or start the command under a launcher", values)
        for k in stray:
            del env[k]
    return stray


#: what a launcher (or :func:`single_process_env`) sets beside :data:`PROCESS_VARIABLES` for the rendezvous
RENDEZVOUS_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "LOCAL_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE", "ROLE_RANK",
                        "ROLE_WORLD_SIZE", "ROLE_NAME", "CROSS_RANK", "CROSS_SIZE")


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default: ``os.environ``) for a child process that is a job of its own (the lmms-eval run
    of ``savi align``'s eval step, made by rank 0 alone): without this process's :data:`PROCESS_VARIABLES`,
    :data:`RENDEZVOUS_VARIABLES` and ``TORCHELASTIC_*``. Passed on, they would make the child join this job's
    rendezvous: accelerate, built by lmms-eval before any model, binds ``MASTER_PORT`` as rank 0, which this
    process (a DeepSpeed recipe run as rank 0 of 1, :func:`single_process_env`) already holds."""
    env = os.environ if env is None else env
    drop = set(PROCESS_VARIABLES) | set(RENDEZVOUS_VARIABLES)
    return {k: v for k, v in env.items() if k not in drop and not k.startswith("TORCHELASTIC_")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def single_process_env(env: dict | None = None) -> bool:
    """Set up the environment of a one-process job (rank 0 of 1 on 127.0.0.1) when no launcher did.

    DeepSpeed initialises ``torch.distributed`` even for one process; without ``MASTER_ADDR`` and the rank
    variables it falls back to MPI discovery (``mpi4py``). Returns True when it set the variables.
    """
    env = os.environ if env is None else env
    if launcher_name(env) not in (None, "accelerate"):  # accelerate's one-process launcher sets no rank variables
        return False
    env.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": env.get("MASTER_PORT") or str(free_port()),
                "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "LOCAL_SIZE": "1"})
    return True


def accelerate_single_process_warning(env: Mapping[str, str] | None = None, cuda_devices: int | None = None) -> str | None:
    """The one-line warning for ``accelerate launch --num_processes N`` that started a single process, or None.

    Without GPUs (and without ``--multi_gpu``) accelerate's launcher runs the command once, in one process,
    whatever ``--num_processes`` says; its environment then has ``ACCELERATE_USE_CPU`` and no ``WORLD_SIZE``.
    """
    env = os.environ if env is None else env
    if launcher_name(env) != "accelerate" or "WORLD_SIZE" in env:
        return None
    if cuda_devices is None:
        import torch

        cuda_devices = torch.cuda.device_count()
    if cuda_devices > 1:
        return None
    return ("accelerate launch started one process: on a machine without several GPUs it ignores --num_processes "
            "unless --multi_gpu is given; for N processes run `accelerate launch --multi_gpu --num_processes N "
            "-m savi_plugin ...` (on CPU add train.use_cpu=true)")

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

Variables alone are not proof: a debug dump of a torchrun worker's environment (``RANK``, ``WORLD_SIZE``,
``GROUP_RANK``, ``TORCHELASTIC_*``, ``MASTER_ADDR``/``MASTER_PORT``) exported into a shell carries every companion
variable, and torch's elastic agent sets none that names the agent itself. So on Linux the launcher must also
be there: an ancestor of this process (:func:`launcher_ancestor`, up to :data:`ANCESTOR_LEVELS` parents through
``/proc/<pid>/stat`` and ``/proc/<pid>/cmdline``) is a launcher's program -- ``torchrun``,
``python -m torch.distributed.run`` / ``torch.distributed.launch``, ``deepspeed`` or
``deepspeed.launcher.launch``, ``accelerate launch``, or a job starter that runs the processes itself
(``srun``/``slurmstepd``, ``mpirun``/``mpiexec`` and their node daemons). Where ``/proc`` cannot be read the
variables decide alone. A launcher's variables without its process are a dump: all of them are dropped
(:func:`clean_stray_launcher_env`), and the run is one process.

MPI's job starters (``mpirun``/``mpiexec`` and their node daemons, ``srun`` over PMI) set variables of their own
(:data:`MPI_PROCESS_VARIABLES`, ``OMPI_COMM_WORLD_RANK`` and the like), which accelerate and DeepSpeed read as a
rank and world size. They are the starter's only where one is among the ancestors (:func:`mpi_started`); left in a
shell they are dropped with the others. Several processes an MPI starter ran without torchrun's or deepspeed's
variables (a bare ``mpirun -np 2 savi train``; deepspeed's own MPI launchers set them) stop in one line
(:func:`current`): savi reads a process's place from ``RANK``/``WORLD_SIZE`` and joins its job through
``MASTER_ADDR:MASTER_PORT``, which such a start does not give.

Only what the user's environment held is left over: the one-process setup of a DeepSpeed recipe
(:func:`single_process_env`) is recorded where it is made, and a later look at the environment (the training step's
own :func:`clean_stray_launcher_env`) keeps it.

A launched process that connects to a rendezvous someone else hosts (every rank but 0; rank 0 too when the
torchrun agent hosts the store, ``TORCHELASTIC_USE_AGENT_STORE=True``) first waits for ``MASTER_ADDR:MASTER_PORT``
to accept a connection (:func:`wait_for_rendezvous`, at most ``SAVI_RENDEZVOUS_TIMEOUT`` seconds, 300 by
default), in Python: torch's own connect loop runs in C++ for 30 minutes, where neither Ctrl-C nor SIGTERM
stops it.

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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

log = logging.getLogger(__name__)

#: the variables a launcher sets for each process, and that a plain run must not trust
PROCESS_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
#: what MPI's job starters (OpenMPI's ``mpirun``, MPICH/Intel MPI's hydra, MVAPICH, and ``srun`` over PMI/PMIx) set
#: in every process they start, and that accelerate (``accelerate.utils.environment.get_cpu_distributed_information``,
#: ``PartialState._prepare_backend``: a world over 1 on CPU starts ``torch.distributed``) and DeepSpeed
#: (``deepspeed.comm.utils``, the engine's ``OMPI_COMM_WORLD_LOCAL_RANK`` check, ``launcher_helper``) read as the
#: process's rank, world size or local rank
MPI_PROCESS_VARIABLES = ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                         "OMPI_COMM_WORLD_LOCAL_SIZE", "PMI_RANK", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALRANKID",
                         "MPI_LOCALNRANKS", "PALS_LOCAL_RANKID", "MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE",
                         "MV2_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_SIZE")
#: the world size among :data:`MPI_PROCESS_VARIABLES`, as accelerate reads it (``PartialState._prepare_backend``)
MPI_WORLD_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
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
    launcher: str | None = None  #: the program that started the job, as messages name it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


#: how many parents up :func:`launcher_ancestor` looks (a launcher, a shell script, ``python -m savi_plugin``)
ANCESTOR_LEVELS = 8
#: programs (the name of a command line's first words) that start the processes of a job
LAUNCHER_PROGRAMS = frozenset({"torchrun", "deepspeed", "accelerate", "srun", "slurmstepd", "mpirun", "mpiexec",
                               "orterun", "orted", "prterun", "prted", "hydra_pmi_proxy", "mpiexec.hydra"})
#: the :data:`LAUNCHER_PROGRAMS` that set :data:`MPI_PROCESS_VARIABLES` (``srun`` too, over PMI/PMIx)
MPI_STARTERS = frozenset({"srun", "slurmstepd", "mpirun", "mpiexec", "orterun", "orted", "prterun", "prted",
                          "hydra_pmi_proxy", "mpiexec.hydra"})
#: the same launchers run as ``python -m MODULE``
LAUNCHER_MODULES = frozenset({"torch.distributed.run", "torch.distributed.launch", "deepspeed.launcher.launch",
                              "deepspeed.launcher.runner", "accelerate.commands.launch",
                              "accelerate.commands.accelerate_cli"})
#: no ancestor could be read (no ``/proc``): the variables decide alone
UNKNOWN = "unknown"


def _launcher_in(argv: list[str]) -> str | None:
    """The launcher a command line runs (``/usr/bin/python3 /venv/bin/torchrun ...`` -> ``"torchrun"``), or None."""
    for i, word in enumerate(argv[:4]):
        if word == "-m" and i + 1 < len(argv) and argv[i + 1] in LAUNCHER_MODULES:
            return argv[i + 1]
        name = os.path.basename(word.split(" ")[0]).rstrip(":")  # slurmstepd names itself "slurmstepd: [1.0]"
        if name in LAUNCHER_PROGRAMS:
            return name
    return None


def launcher_ancestor(pid: int | None = None, proc: str | Path = "/proc") -> str | None:
    """The launcher among the first :data:`ANCESTOR_LEVELS` ancestors of process ``pid`` (default: this one), by
    their command lines; None when none is one; :data:`UNKNOWN` when ``proc`` cannot be read."""
    proc = Path(proc)
    pid = os.getpid() if pid is None else pid
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return UNKNOWN
    for _ in range(ANCESTOR_LEVELS):
        try:
            pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the "(name)", which may hold spaces
        except (IndexError, ValueError):
            return None
        if pid <= 0:
            return None
        try:
            argv = (proc / str(pid) / "cmdline").read_bytes().decode("utf-8", "replace").split("\0")
            found = _launcher_in([a for a in argv if a])
            if found or pid == 1:
                return found
            stat = (proc / str(pid) / "stat").read_text()
        except OSError:  # the parent ended (or hides itself): nothing above it can be followed
            return None
    return None


def _claimed_launcher(env: Mapping[str, str]) -> str | None:
    """The launcher ``env``'s variables claim (the module docstring's companions), whether or not it is there."""
    rendezvous = bool(env.get("MASTER_ADDR")) and bool(env.get("MASTER_PORT"))
    if env.get("TORCHELASTIC_RUN_ID") and "GROUP_RANK" in env and rendezvous:
        return "torchrun"
    if rendezvous and "LOCAL_SIZE" in env:
        return "deepspeed"
    if all(k in env for k in ACCELERATE_LAUNCH_VARIABLES):  # accelerate's one-process launcher (N: torchrun)
        return "accelerate"
    return None


def launcher_name(env: Mapping[str, str] | None = None) -> str | None:
    """``"torchrun"``, ``"deepspeed"``, ``"accelerate"`` when ``env`` (default: ``os.environ``) is a launcher's
    process environment, else None (see the module docstring for the companion variables). For this process's
    own environment the launcher must also be an ancestor (:func:`launcher_ancestor`) where ``/proc`` tells; a
    mapping passed in describes another process, judged by its variables."""
    own = env is None or env is os.environ
    env = os.environ if env is None else env
    claimed = _claimed_launcher(env)
    if claimed is None or not own:
        return claimed
    return claimed if launcher_ancestor() is not None else None


def mpi_started(env: Mapping[str, str] | None = None) -> bool:
    """Whether an MPI job starter (:data:`MPI_STARTERS`) set the :data:`MPI_PROCESS_VARIABLES` of ``env`` (default:
    ``os.environ``): for this process's own environment, the nearest launcher among its ancestors is one (where
    ``/proc`` cannot be read the variables decide alone); a mapping passed in is judged by its variables."""
    if env is not None and env is not os.environ:
        return True
    ancestor = launcher_ancestor()
    return ancestor == UNKNOWN or ancestor in MPI_STARTERS


def _mpi_world(env: Mapping[str, str]) -> tuple[int, int]:
    """The rank and world size ``env``'s :data:`MPI_PROCESS_VARIABLES` give (accelerate's order of names)."""
    rank = next((env[k] for k in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")
                 if k in env), "0")
    size = next((env[k] for k in MPI_WORLD_SIZE_VARIABLES if k in env), "1")
    try:
        return int(rank), int(size)
    except ValueError:
        return 0, 1


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
    if name is None and any(k in env for k in MPI_PROCESS_VARIABLES) and mpi_started(env):
        rank, size = _mpi_world(env)
        if size > 1:
            from savi_plugin.errors import RunError

            values = ", ".join(f"{k}={env[k]}" for k in MPI_PROCESS_VARIABLES if k in env)
            starter = launcher_ancestor() if env is os.environ else None
            starter = starter if starter in MPI_STARTERS else "an MPI launcher"
            raise RunError(f"{starter} started this process as rank {rank} of {size} ({values}) without "
                           f"RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT: savi runs several processes under "
                           f"torchrun, deepspeed or accelerate launch (README, \"Many processes, many nodes\")")
    if name is None or name == "accelerate":
        return Process(launcher=name)
    if name == "torchrun" and env is os.environ and (launcher_ancestor() or "").startswith("accelerate"):
        name = "accelerate launch"  # accelerate's multi-process launcher starts its processes as torchrun does
    process = Process(rank=_int(env, "RANK", 0), world_size=_int(env, "WORLD_SIZE", 1),
                      local_rank=_int(env, "LOCAL_RANK", 0), launcher=name)
    if process.world_size < 1 or not 0 <= process.rank < process.world_size:
        raise ValueError(f"{name}: RANK={process.rank} is not in 0..WORLD_SIZE-1 (WORLD_SIZE={process.world_size})")
    return process


def stray_process_variables(env: Mapping[str, str] | None = None) -> list[str]:
    """The :data:`PROCESS_VARIABLES` set in ``env`` (default: ``os.environ``) although no launcher started this
    process (:func:`launcher_name`; accelerate's one-process launcher sets none of them), in that order; those
    :func:`single_process_env` set in this process are not."""
    env = os.environ if env is None else env
    if launcher_name(env) not in (None, "accelerate"):
        return []
    ours = _set_here(env)
    return [k for k in PROCESS_VARIABLES if k in env and k not in ours]


#: the variables :func:`single_process_env` set in this process, with their values: savi's own, never left over
_SET_HERE: dict[str, str] = {}


def _set_here(env: Mapping[str, str]) -> set[str]:
    """The names of :data:`_SET_HERE` when ``env`` is this process's environment and still holds every one of
    them as :func:`single_process_env` set it (its ``MASTER_PORT`` is a free port it chose), else none."""
    if env is not os.environ or not _SET_HERE or any(env.get(k) != v for k, v in _SET_HERE.items()):
        return set()
    return set(_SET_HERE)


def clean_stray_launcher_env(env: dict | None = None) -> list[str]:
    """Drop ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``LOCAL_WORLD_SIZE`` when no launcher started this process
    (:func:`stray_process_variables`), ``ACCELERATE_*`` when ``accelerate launch`` did not
    (:data:`ACCELERATE_LAUNCH_VARIABLES`), and :data:`MPI_PROCESS_VARIABLES` when no MPI job starter did
    (:func:`mpi_started`). What :func:`single_process_env` set in this process is savi's own and kept.

    Returns the names dropped (a warning names them once). Torch, transformers, accelerate and DeepSpeed read
    these variables themselves, so leaving them would make a plain run wait for a rendezvous or believe it is rank 1.
    """
    own = env is None or env is os.environ
    env = os.environ if env is None else env
    stray = stray_process_variables(env)
    if launcher_name(env) is None:  # accelerate's settings without its launcher
        stray += sorted(k for k in env if k.startswith("ACCELERATE_"))
        if own and _claimed_launcher(env) is not None:  # a launcher's whole environment, no launcher: a dump
            stray += [k for k in RENDEZVOUS_VARIABLES if k in env]
            stray += sorted(k for k in env if k.startswith("TORCHELASTIC_"))
    if any(k in env for k in MPI_PROCESS_VARIABLES) and not mpi_started(env):
        stray += [k for k in MPI_PROCESS_VARIABLES if k in env]
    ours = _set_here(env)
    stray = [k for k in dict.fromkeys(stray) if k not in ours]
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


def job_variable(name: str) -> bool:
    """Whether ``name`` places a process in a distributed job: one of :data:`PROCESS_VARIABLES`,
    :data:`RENDEZVOUS_VARIABLES`, :data:`MPI_PROCESS_VARIABLES` or ``TORCHELASTIC_*``, which only a launcher may
    set. torch, accelerate and DeepSpeed read them in whatever process has them: a process that is a job of its own
    given ``RANK=1`` waits for a rank 0 that never comes."""
    return (name in PROCESS_VARIABLES or name in RENDEZVOUS_VARIABLES or name in MPI_PROCESS_VARIABLES
            or name.startswith("TORCHELASTIC_"))


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default: ``os.environ``) for a child process that is a job of its own (the lmms-eval run
    of ``savi align``'s eval step, made by rank 0 alone): without this process's :func:`job_variable` variables.
    Passed on, they would make the child join this job's rendezvous: accelerate, built by lmms-eval before any
    model, binds ``MASTER_PORT`` as rank 0, which this process (a DeepSpeed recipe run as rank 0 of 1,
    :func:`single_process_env`) already holds, and reads an MPI world over 1 (deepspeed's MPI launchers) as a job
    to join."""
    env = os.environ if env is None else env
    return {k: v for k, v in env.items() if not job_variable(k)}


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
    values = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": env.get("MASTER_PORT") or str(free_port()), "RANK": "0",
              "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", "LOCAL_SIZE": "1"}
    env.update(values)
    if env is os.environ:  # a later clean_stray_launcher_env must not take them for the user's
        _SET_HERE.clear()
        _SET_HERE.update(values)
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


def wait_for_rendezvous(timeout: float, env: Mapping[str, str] | None = None, interval: float = 0.5) -> None:
    """Wait until ``MASTER_ADDR:MASTER_PORT`` accepts a connection, when this launched process connects to a
    rendezvous another process hosts (see the module docstring); at once otherwise.

    The wait polls in Python, so Ctrl-C and SIGTERM stop it (the ``savi`` command's boundary: 130, 143); torch's
    own connect (``TCPStore``) retries in C++ for ``ddp_timeout`` (30 minutes), deaf to both.

    Args:
        timeout: seconds before giving up (the callers pass ``SAVI_RENDEZVOUS_TIMEOUT``, 300 by default).

    Raises:
        RunError: one line naming the address, the seconds waited and the variables that asked for it.
    """
    env = os.environ if env is None else env
    process = current(env)
    if not process.distributed:
        return
    agent_store = env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    if process.is_main and not agent_store:  # rank 0 hosts the store itself
        return
    host, port = env.get("MASTER_ADDR", ""), _int(env, "MASTER_PORT", 0)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=min(2.0, max(timeout, 0.1))):
                return
        except OSError as exc:
            error = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    from savi_plugin.errors import RunError

    raise RunError(f"{process.launcher}: no rendezvous at MASTER_ADDR={host} MASTER_PORT={port} after {timeout:g} s "
                   f"(rank {process.rank} of {process.world_size}; {error.strerror or error}): is rank 0 (or the "
                   f"launcher) running? Variables left in a shell are ignored only where no launcher runs this "
                   f"process; raise SAVI_RENDEZVOUS_TIMEOUT for a slow start")

"""``savi align`` under a launcher: which rank does which step, and the one rule for resuming a run folder.

* generation: every rank generates its shard (:func:`~savi_plugin.generators.runner.parse_shard`: the
  launcher's rank), then rank 0 merges the shards into the iteration's ``pairs.jsonl`` after a barrier;
* training: every rank (DDP / DeepSpeed, :func:`~savi_plugin.training.run.run_training`);
* building a ``tiny://`` model, merging the adapter, evaluating and writing ``manifest.json``: rank 0 alone, the
  other ranks wait at a barrier and take rank 0's result.

A step that a run left unfinished resumes only under the number of processes it started with (generation
shards and checkpoints are cut for that number); a finished step is skipped under any number. Otherwise the
run is refused in one line (:func:`check_processes`).
"""

from __future__ import annotations

from typing import Any, Callable

from savi_plugin.errors import RunError
from savi_plugin.launch import current
from savi_plugin.training.distributed import barrier, broadcast


def join_process_group() -> None:
    """Start ``torch.distributed`` under a launcher (NCCL with GPUs, else gloo); nothing on one process."""
    if not current().distributed:
        return
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def on_main(fn: Callable[[], Any]) -> Any:
    """``fn()`` on rank 0 alone once every rank got here (it may use their work); every rank returns its result."""
    barrier()
    result = fn() if current().is_main else None
    barrier()
    return broadcast(result)


def main_first(fn: Callable[[], Any]) -> Any:
    """``fn()`` on rank 0, then (after a barrier) on the others, which find its work done (e.g. files built)."""
    result = fn() if current().is_main else None
    barrier()
    return result if current().is_main else fn()


def check_processes(iteration: dict, folder) -> None:
    """Refuse to resume ``iteration``'s unfinished steps under another number of processes than it started with;
    record the number when it starts."""
    processes = current().world_size
    started = iteration.get("processes")
    unfinished = "adapter" not in iteration
    if started is not None and started != processes and unfinished:
        raise RunError(f"{folder}: iteration {iteration.get('iteration', '?')} was started with {started} "
                       f"process(es) and is unfinished; resume it with {started} (its generation shards and "
                       f"checkpoints are cut for that number), or use a new --out")
    if unfinished:
        iteration["processes"] = processes

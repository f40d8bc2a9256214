"""The process group of a multi-process run: set up before the model is built, and the few collectives we use.

* :func:`setup_process_group` makes ``torch.distributed`` (and DeepSpeed's own communication layer, which
  ZeRO-3's ``zero.Init`` asks for the world size while the model is built) ready *before* the first model is
  loaded; otherwise ``zero.Init`` sees one process and its batch check fails (``train_batch_size 4 != 2*1*1``).
* :func:`gather`, :func:`broadcast`, :func:`barrier`: object collectives that are the identity on one process,
  used to merge what each rank counted (skipped pairs) into the one report rank 0 writes, and to share what one
  rank computed (the resume checkpoint, video probes) with the others.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)


def setup_process_group(config) -> None:
    """Initialise the process group the TrainingArguments ``config`` describes, now.

    ``config.device`` starts ``torch.distributed`` under a launcher (transformers does it lazily, at the first
    use); with a DeepSpeed config, DeepSpeed's communication layer is attached to the same group.
    """
    _ = config.device
    if getattr(config, "deepspeed", None):
        import deepspeed

        if not deepspeed.comm.is_initialized():
            with deepspeed_prints_to_log():
                deepspeed.init_distributed(dist_backend=_backend())


@contextlib.contextmanager
def deepspeed_prints_to_log():
    """What DeepSpeed ``print``s while the block runs (``DeepSpeed deepspeed.ops.comm.deepspeed_shm_comm_op built
    successfully`` when its communication layer starts) goes to the log, at debug level, not to standard output,
    which holds the command's results (its log records are routed by :func:`savi_plugin.cli.route_deepspeed_logs`).
    Used around each place savi makes DeepSpeed start it: the training arguments
    (:class:`~savi_plugin.training.config.PreferenceConfig`, whose device set-up starts it through accelerate),
    :func:`setup_process_group` and :func:`deepspeed_reference`.
    """
    import io

    caught = io.StringIO()
    try:
        with contextlib.redirect_stdout(caught):
            yield
    finally:
        for line in caught.getvalue().splitlines():
            if line.strip():
                logging.getLogger("DeepSpeed").debug("%s", line)


def _backend() -> str:
    import torch.distributed as dist

    return dist.get_backend() if dist.is_available() and dist.is_initialized() else "gloo"


def _active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if _active() else 1


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if _active() else 0


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` on one process)."""
    if not _active():
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (``obj`` itself on one process)."""
    if not _active():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    if _active():
        import torch.distributed as dist

        dist.barrier()


def merge_skipped(lists: list[list[dict]]) -> list[dict]:
    """One list of skipped records from every rank's list: each (file, line) once, in file order."""
    seen: dict[tuple, dict] = {}
    for entries in lists:
        for entry in entries:
            seen.setdefault((str(entry.get("file")), entry.get("line"), entry.get("reason")), entry)
    return sorted(seen.values(), key=lambda e: (str(e.get("file")), e.get("line") or 0))


_STAND_INS: dict[int, dict] = {}


def stand_in_batch(collator, dataset):
    """A one-pair batch of ``dataset`` that decodes, collated once per dataset and kept (on the CPU).

    Used by a rank whose micro-batch lost every pair to decoding, to run the same forward as the other ranks
    with a zero-weighted loss (:meth:`PreferenceTrainer._empty_batch_loss`).
    """
    key = id(dataset)
    if key not in _STAND_INS:
        for index in range(len(dataset)):
            batch = collator([dataset[index]])
            if batch.pair_ids:
                _STAND_INS[key] = batch
                break
        else:
            raise RuntimeError(f"no pair of {getattr(dataset, 'path', 'the dataset')} decodes: nothing to train on")
    return _STAND_INS[key]


def probed_once(build):
    """``build(probes)`` on every rank, with the videos probed once per run: rank 0 builds first (probing every
    video), then the others build from its results (``probes``) instead of each reading every file's header
    (at 100k videos: minutes per rank, every rank at once on the same metadata server)."""
    if not _active():
        return build(None)
    if rank() == 0:
        try:
            dataset = build(None)
        except BaseException:
            broadcast(None)  # the other ranks stop too (they build without shared probes and fail the same way)
            raise
        broadcast(dict(dataset._probed))
        return dataset
    return build(broadcast(None))


def shared_resume_point(chosen: str | None, output_dir) -> str | None:
    """Rank 0's resume checkpoint (``chosen``), the same on every rank, checked to exist on every node.

    With node-local disks rank 0's ``checkpoint-N`` is absent on the other nodes, which would start fresh
    beside a resumed rank 0 (mixed weights, a wrong step count): that is refused in one line naming the folder.
    """
    from pathlib import Path

    from savi_plugin.errors import RunError

    chosen = broadcast(chosen)
    if chosen is None:
        return None
    # every rank writes its RNG state into checkpoint-N, so the folder exists on every node; its trainer state and
    # weights only where rank 0 saved them
    present = gather((Path(chosen) / "trainer_state.json").is_file())
    if not all(present):
        missing = [r for r, ok in enumerate(present) if not ok]
        raise RunError(f"{chosen}: resume checkpoint missing on rank(s) {missing} (node-local disks?); put "
                       f"{output_dir} on a disk every node shares, or copy {Path(chosen).name} to each node's "
                       f"{output_dir}")
    return chosen


def every_rank_report(dataset) -> dict:
    """``dataset.report()`` with the records skipped on every rank (at decode time, each rank skips only its own
    pairs), merged once each; a collective: every rank calls it."""
    report = dataset.report()
    merged = merge_skipped(gather(report["skipped_records"]))
    reasons: dict[str, int] = {}
    for entry in merged:
        reasons[entry["reason"]] = reasons.get(entry["reason"], 0) + 1
    return {**report, "skipped": len(merged), "skipped_by_reason": reasons, "skipped_records": merged}


def deepspeed_reference(module, deepspeed_config: dict):
    """A separate frozen reference model (``reference="model"``) made ready to run beside a DeepSpeed policy.

    Under ZeRO-3 the reference is built inside ``zero.Init`` like the policy, so each rank holds only a shard of
    every weight; a forward outside a DeepSpeed engine would see empty tensors. An inference engine over it
    (``deepspeed.initialize`` with no optimizer) installs the hooks that gather each layer's weights for its
    forward, the way TRL prepares a DPO reference (``trl.models.utils.prepare_deepspeed``). Below ZeRO-3 the
    reference is whole on every rank and the engine runs it at stage 0. Every rank must run the reference forward
    the same number of times (a rank with a skipped batch scores a stand-in pair, :func:`stand_in_batch`).

    Args:
        module: the reference ``nn.Module`` (frozen, eval mode).
        deepspeed_config: the policy's DeepSpeed configuration (its "auto" values resolved by the Trainer); it is
            copied, without its optimizer and scheduler.

    Returns:
        The engine; ``module`` itself stays usable (its submodules gather their weights when called).
    """
    import copy

    import deepspeed

    config = copy.deepcopy(deepspeed_config)
    for key in ("optimizer", "scheduler"):
        config.pop(key, None)
    zero = config.setdefault("zero_optimization", {})
    if zero.get("stage") == 3:
        text = getattr(module.config, "text_config", None) or module.config
        hidden = int(getattr(text, "hidden_size", 0) or 0)
        sizes = {"reduce_bucket_size": hidden * hidden, "stage3_param_persistence_threshold": 10 * hidden,
                 "stage3_prefetch_bucket_size": int(0.9 * hidden * hidden)}
        for key, value in sizes.items():
            if zero.get(key) == "auto" and hidden:
                zero[key] = value
    else:
        zero["stage"] = 0
    with deepspeed_prints_to_log():
        engine, *_ = deepspeed.initialize(model=module, config=config)
    engine.eval()
    return engine



def close_process_group() -> None:
    """End a launcher process's group once its command succeeded: a barrier, then ``destroy_process_group``.

    Left to interpreter shutdown, the group's communication threads can be torn down while still attached
    ("terminate called without an active exception", SIGABRT after a finished run). Nothing happens outside a
    launcher or when no group was started.
    """
    import sys

    if "torch.distributed" not in sys.modules:
        return
    import torch.distributed as dist

    from savi_plugin.launch import current

    if not (dist.is_available() and dist.is_initialized() and current().distributed):
        return
    dist.barrier()
    release_deepspeed_shm()  # after the barrier every peer has long mapped it
    dist.destroy_process_group()


def release_deepspeed_shm(env=None) -> bool:
    """Unlink this rank's DeepSpeed shared-memory allreduce buffer, if it made one; True when it did.

    DeepSpeed's CPU communication (``ops/csrc/cpu/comm/shm.cpp``, 0.19) creates one POSIX shared-memory segment per
    rank, ``/dev/shm/deepspeed_allreduce_buffer_<uid>_<MASTER_ADDR>_<MASTER_PORT>_<RANK>`` (about 66 MB), and never
    unlinks it: every CPU run under DeepSpeed left its segments in RAM-backed ``/dev/shm`` until the machine filled.
    Unlinking removes the name only; the mappings of processes still using it stay valid. Call it when no peer can
    still be opening it: after a barrier, or in a run of one process.
    """
    import os
    from pathlib import Path

    env = os.environ if env is None else env
    addr, port, rank = env.get("MASTER_ADDR"), env.get("MASTER_PORT"), env.get("RANK", "0")
    if not addr or not port:
        return False
    segment = Path("/dev/shm") / f"deepspeed_allreduce_buffer_{os.getuid()}_{addr}_{port}_{rank}"
    try:
        segment.unlink()
    except OSError:
        return False
    return True

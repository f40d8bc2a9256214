"""Per-pair training diagnostics (``train.diagnostics: true``): at each evaluation point -- the start of training,
every ``diagnostics_steps`` optimizer steps, and the end -- every training pair is scored once more without a
gradient, by the trainer's own scoring path and loss (:meth:`PreferenceTrainer.statistics`, the ``Objective``),
and one JSON line per pair is appended to ``diagnostics.jsonl`` in the output folder:

``id``, ``pair_sha256`` (the pair's content, :func:`savi_plugin.data.identity.pair_digest`: a reader joining
rows to a pair file by id checks it), ``step``, ``loss`` (the pair's loss), ``margin`` (``rewards/margins``: chosen minus rejected implicit
reward), ``reward_chosen`` / ``reward_rejected``, ``logratio_chosen`` / ``logratio_rejected`` (summed
``log pi_theta - log pi_ref`` over each response, with a reference), ``tagged_tokens`` (``<MASK>`` tokens per side;
RRPO's sub-sequence reward reads only those), ``kl_chosen`` (summed token-wise KL(ref || policy) over the chosen
response, RRPO's regulariser, Sarkar et al. 2025 eq. 4) and, per chosen token, ``chosen_tokens`` and
``chosen_token_kl``. ``margin`` and ``kl_chosen`` are functions of other fields of the row (the rewards' difference,
the token KLs' sum): :data:`savi_plugin.data.diagnostics_rows.DERIVED` declares each, and a reader computes it
again, so a row whose margin disagrees with its rewards is not one training wrote.

A reader sees which pairs the model already prefers at step 0 (``margin > 0``), which it learns, and which it
never learns (``savi inspect --diagnostics``); RRPO's claim of a lower divergence from the reference than DPO is the
``chosen_token_kl`` column. The cost is one forward pass (no backward) over the training pairs per evaluation
point (``benchmarks/README.md``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

log = logging.getLogger(__name__)

DIAGNOSTICS_FILE = "diagnostics.jsonl"


def _number(value: torch.Tensor) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


@torch.no_grad()
def pair_rows(trainer, model, batch, step: int, digests: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One diagnostics row per pair of ``batch`` (a ``PreferenceBatch`` on the model's device) at ``step``;
    ``digests``: pair id -> :func:`~savi_plugin.data.identity.pair_digest`."""
    stats = trainer.statistics(model, batch)
    _, losses, metrics = trainer.objective(stats, batch)
    tokenizer = trainer.backend.tokenizer
    rows = []
    for b, pair_id in enumerate(batch.pair_ids):
        row: dict[str, Any] = {"id": pair_id, "pair_sha256": (digests or {}).get(pair_id), "step": step,
                               "loss": _number(losses[b])}
        for key, name in (("margin", "rewards/margins"), ("reward_chosen", "rewards/chosen"),
                          ("reward_rejected", "rewards/rejected"), ("kl_chosen", "kl/chosen")):
            if name in metrics:
                row[key] = _number(metrics[name][b])
        for side in ("chosen", "rejected"):
            side_stats, layout = stats[side], batch.sides[side]
            mask = side_stats.mask[b]
            if side_stats.reference_logps is not None:
                row[f"logratio_{side}"] = _number(((side_stats.policy_logps[b] - side_stats.reference_logps[b])
                                                   * mask).sum())
            row.setdefault("tagged_tokens", {})[side] = (
                int(((layout.phrase_ids[b] > 0) & mask).sum()) if layout.phrase_ids is not None else None)
        chosen = stats["chosen"]
        if chosen.kl is not None:
            mask = chosen.mask[b]
            ids = batch.sides["chosen"].targets[b][mask].tolist()
            row["chosen_tokens"] = [tokenizer.decode([i]) for i in ids]
            row["chosen_token_kl"] = chosen.kl[b][mask].float().cpu().tolist()
        rows.append(row)
    return rows


def diagnose(trainer, step: int) -> list[dict[str, Any]]:
    """Score every training pair at ``step`` (each rank its share) and return all rows on every rank."""
    from torch.utils.data import DataLoader, Subset

    dataset = trainer.train_dataset
    world, rank = trainer.accelerator.num_processes, trainer.accelerator.process_index
    loader = DataLoader(Subset(dataset, range(rank, len(dataset), world)), collate_fn=trainer.data_collator,
                        batch_size=trainer.args.per_device_eval_batch_size, shuffle=False)
    from savi_plugin.data.identity import pair_digest

    digests = {item.record.id: pair_digest(item.record) for item in getattr(dataset, "items", [])}
    model = trainer.model
    was_training = model.training
    model.eval()
    rows: list[dict[str, Any]] = []
    try:
        for batch in loader:
            if not batch.pair_ids:  # every video of the batch failed to decode: counted by the training report
                continue
            rows.extend(pair_rows(trainer, model, batch.to(trainer.args.device), step, digests))
    finally:
        model.train(was_training)
    if world > 1:
        gathered: list[list[dict[str, Any]]] = [[] for _ in range(world)]
        torch.distributed.all_gather_object(gathered, rows)
        rows = [row for part in gathered for row in part]
    return rows


def written_rows(path: str | Path) -> Iterator[tuple[bytes, int | None]]:
    """``(line, step)`` for each line of ``path`` (a ``diagnostics.jsonl``, which must exist), the line without its
    line feed; ``step`` None for a torn last line (a run killed while appending). Only training writes this file:
    a complete line that is not a row as training writes it, or a second row for a pair and step
    (:class:`~savi_plugin.data.diagnostics_rows.DiagnosticsLines`), was put there by someone else.

    Raises:
        DataError: ``diagnostics.jsonl:LINE:FIELD``, the first complete line that is not a diagnostics row.
    """
    from savi_plugin.data.diagnostics_rows import DiagnosticsLines
    from savi_plugin.data.readers import iter_lines, parse_line
    from savi_plugin.data.record import DataError

    lines = DiagnosticsLines()
    for number, raw, ended in iter_lines(path):  # at most MAX_LINE_BYTES of one line held
        if not ended:  # only the last line can be torn
            yield raw or b"", None
            return
        row, problem = parse_line(path, number, raw)
        bad = lines.problem(row, number) if problem is None else ("-", problem.message)
        if bad is not None:
            raise DataError(str(path), number, None if bad[0] == "-" else bad[0],
                            f"{bad[1]}: not a line training wrote (the file was edited); remove the line, or remove "
                            f"the file to measure every step again")
        yield raw, row["step"]


def check_rows(path: str | Path) -> None:
    """Refuse (:func:`written_rows`) a ``diagnostics.jsonl`` holding a complete line training did not write, before
    a run that appends to it loads anything; an absent file passes, and a link, folder or FIFO at its name is named
    as not savi's (:func:`savi_plugin.data.outputs.check_own_file`), never read as rows training wrote."""
    from savi_plugin.data.outputs import check_own_file

    check_own_file(path)
    if Path(path).is_file():
        for _ in written_rows(path):
            pass


def cut_from_step(path: str | Path, start: int) -> int:
    """Keep only the rows of ``path`` (a ``diagnostics.jsonl``) measured before ``start``, the step training
    (re)starts from, so a run that starts over (``start`` 0: the file starts afresh) or resumes from checkpoint-N
    never mixes a failed attempt's rows with its own; a torn last line goes too, and a complete line training did
    not write is refused (:func:`written_rows`), never dropped as an earlier attempt's row. The file is replaced
    by one rename; returns the number of lines dropped."""
    from savi_plugin.data.outputs import atomic_open, check_own_file

    path = Path(path)
    check_own_file(path)  # a link there is someone's file: never rewritten, nor its link replaced
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line, step in written_rows(path):
        if step is not None and step < start:
            kept.append(line + b"\n")
        else:
            dropped += 1
    if dropped:
        with atomic_open(path, "wb") as out:
            out.writelines(kept)
        log.info("%s: dropped %d line(s) from step %d on (an earlier attempt's), kept %d", path, dropped, start,
                 len(kept))
    return dropped


class DiagnosticsFile:
    """``diagnostics.jsonl``, appended through the one JSONL appender
    (:class:`savi_plugin.data.writer.JsonlAppender`) keyed by pair and step: opened once (at the first rows), it
    cuts a torn last line a killed run left, and a resumed run does not write again the rows of a step the
    interrupted run already wrote."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._writer = None

    def append(self, rows: list[dict[str, Any]]) -> int:
        """Append ``rows``; return how many were new."""
        from savi_plugin.data.diagnostics_rows import ROW_KEY
        from savi_plugin.data.writer import JsonlAppender

        if self._writer is None:
            self._writer = JsonlAppender(self.path, key=ROW_KEY)
        return sum(self._writer.write_object(row) for row in rows)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class DiagnosticsCallback(TrainerCallback):
    """Runs :func:`diagnose` at the start, every ``every`` optimizer steps (None: never in between) and at the end,
    appending the rows to ``<output_dir>/diagnostics.jsonl`` (rank 0, :class:`DiagnosticsFile`)."""

    def __init__(self, trainer, every: int | None = None):
        self.trainer, self.every = trainer, every
        self.file = DiagnosticsFile(Path(trainer.args.output_dir) / DIAGNOSTICS_FILE)
        self.path = self.file.path
        self._done: set[int] = set()

    def _run(self, step: int) -> None:
        if step in self._done:
            return
        self._done.add(step)
        rows = diagnose(self.trainer, step)
        if self.trainer.is_world_process_zero():
            written = self.file.append(rows)
            log.info("diagnostics for %d pairs at step %d -> %s%s", len(rows), step, self.path,
                     f" ({len(rows) - written} already there)" if written < len(rows) else "")

    def on_train_begin(self, args, state, control, **kwargs):
        if self.trainer.is_world_process_zero():  # before the appender opens the file
            cut_from_step(self.path, state.global_step)  # 0 when starting over, N when resuming checkpoint-N
        self._run(state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if self.every and state.global_step % self.every == 0:
            self._run(state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        try:
            self._run(state.global_step)
        finally:
            self.file.close()

"""Reference models for preference training: disabled adapter, separate frozen model, or precomputed statistics.

Three modes (``PreferenceConfig.reference``):

* ``"adapter"`` (default): the policy with its LoRA adapter disabled (peft's ``disable_adapter()``) *is* the
  reference -- LoRA starts at zero, so before training it equals the base model, and the base weights never
  change. No second copy of the model is held. Under DeepSpeed ZeRO-3 the base weights are partitioned across
  ranks and gathered layer by layer by ZeRO's forward hooks during *any* forward; disabling the adapter is a
  flag on the LoRA layers (the LoRA branch is skipped), so the reference pass gathers the same partitions as
  the policy pass and needs no extra memory and no second ``deepspeed.initialize``. (TRL does the same with
  ``use_adapter``.) The pass runs under ``no_grad`` on the same packed rows and the same vision features.
* ``"model"``: a separate frozen checkpoint (:func:`load_reference_backend`), e.g. the previous iteration's
  merged model. It runs its own vision encoder (its weights may differ from the policy's). It is not handed to
  DeepSpeed, so under ZeRO-3 every rank holds a full copy: prefer ``"adapter"`` or ``"precomputed"`` there.
* ``"precomputed"``: the reference statistics of every pair are computed once by :func:`precompute_reference`
  and stored beside the dataset; training then runs no reference forward at all. Stored per pair:

  - DPO/IPO and RRPO's reward: the reference log-prob of every response token (``[T]`` floats per response);
  - RRPO's KL on the chosen tokens needs the reference *distribution* at each chosen position. Two options:
    ``kl="full"`` stores the exact log-softmax, ``T x V`` floats per chosen response (64 tokens x 152k vocab x
    4 bytes = 39 MB per pair for Qwen2 -- about 0.9 TB for RRPO's ~24k pairs, so only for small vocabularies);
    ``kl="topk"`` stores the ``k`` largest reference log-probs, their ids and the log-mass of the rest
    (``T x 64 x 8`` bytes: 64 tokens x 64 x (4 + 4) = 33 KB per pair at ``k=64``), and the trainer computes the
    KL between the ``(k+1)``-bin coarsenings {top-k tokens, everything else} of reference and policy. That is a
    lower bound of the exact KL (data-processing inequality), equal to it when the reference puts no mass
    outside its top k. Its error depends on how peaked the reference is. Measured on the tiny random-weight
    test model (vocab 560, nearly flat distributions -- the worst case; ``tests/training/test_reference.py``):
    mean relative error of the summed chosen KL 0.93 at k=8, 0.71 at k=64, 0.33 at k=256, 0 at k=560. So the
    file records the reference mass left outside the top k (``meta["topk_tail_mass"]``) and
    :func:`precompute_reference` warns when it averages above 5%: then use a larger ``k`` or ``kl="full"``.
    The reference log-probs of the response tokens (the reward inputs) are exact in every mode.
  - the response token ids, to check at training time that the statistics belong to exactly these tokens
    (a changed tokenizer, chat template or ``max_length`` is caught, not silently used).

  Files are safetensors (no pickle): ``<data>.reference.safetensors`` with tensors ``<pair id>/chosen_ids``,
  ``/chosen_logps``, ``/rejected_ids``, ``/rejected_logps`` and, per ``kl``, ``/chosen_full`` or
  ``/chosen_topk_logprobs``, ``/chosen_topk_indices``, ``/chosen_tail``; metadata holds the model, adapter,
  frames, ``kl`` and ``top_k``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import torch

from savi_plugin.data import DataError
from savi_plugin.data.outputs import atomic_path

log = logging.getLogger(__name__)

FORMAT = "savi-reference/1"
KL_MODES = ("topk", "full", "none")


def default_reference_path(data: str | Path) -> Path:
    """``pairs.jsonl`` -> ``pairs.reference.safetensors`` beside it."""
    data = Path(data)
    return data.with_name(data.stem + ".reference.safetensors")


def load_reference_backend(path: str | Path, *, backend: str | None = None, dtype: str = "float32",
                           device: str = "cpu", num_frames: int = 16, adapter: str | Path | None = None):
    """Load a separate frozen reference model (``reference="model"``): eval mode, no gradients."""
    from savi_plugin.models import load_backend

    reference = load_backend(path, backend, adapter=adapter, dtype=dtype, device=device, num_frames=num_frames)
    reference.model.eval()
    reference.model.requires_grad_(False)
    return reference


def follow_device(reference_backend, device) -> None:
    """Put a separate frozen reference on ``device`` (where the policy and its batches are), once.

    The reference is loaded while the policy is still on the CPU (the Trainer, or DeepSpeed, places the policy
    later); scoring a batch on the GPU with a reference left on the CPU would fail at the first forward.
    """
    if reference_backend is None:
        return
    device = torch.device(device)
    if any(p.device != device for p in reference_backend.model.parameters()):
        reference_backend.model.to(device)


class ReferenceStore:
    """Read precomputed reference statistics and attach them to collated batches.

    Args:
        path: a file written by :func:`precompute_reference`.

    The file is opened lazily (per process), so the store can go to DataLoader workers.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no precomputed reference; run "
                                    f"savi_plugin.training.reference.precompute_reference first")
        from safetensors import safe_open

        with safe_open(str(self.path), framework="pt") as handle:
            raw = handle.metadata() or {}
            self.keys = set(handle.keys())
        if raw.get("format") != FORMAT:
            raise ValueError(f"{self.path}: not a savi reference file (format {raw.get('format')!r})")
        self.meta = json.loads(raw["meta"])
        self.kl = self.meta["kl"]
        self._handle = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handle"] = None
        return state

    def _get(self, key: str) -> torch.Tensor:
        if self._handle is None:
            from safetensors import safe_open

            self._handle = safe_open(str(self.path), framework="pt")
        return self._handle.get_tensor(key)

    def _response(self, item, side: str, ids: list[int]) -> dict[str, torch.Tensor]:
        pair = item.record.id
        if f"{pair}/{side}_ids" not in self.keys:
            raise DataError(item.file, item.line, "id", f"no precomputed reference for pair {pair!r} in {self.path}")
        stored = self._get(f"{pair}/{side}_ids").tolist()
        # A prefix is fine: truncating a response at its end does not change the earlier tokens' log-probs.
        if stored[:len(ids)] != list(ids):
            raise DataError(item.file, item.line, side,
                            f"the precomputed reference in {self.path} was computed for other tokens (tokenizer, "
                            f"chat template or data changed?); recompute it")
        n = len(ids)
        out = {"logps": self._get(f"{pair}/{side}_logps")[:n]}
        if side == "chosen" and self.kl == "full":
            out["full"] = self._get(f"{pair}/chosen_full")[:n]
        elif side == "chosen" and self.kl == "topk":
            out["topk_logprobs"] = self._get(f"{pair}/chosen_topk_logprobs")[:n]
            out["topk_indices"] = self._get(f"{pair}/chosen_topk_indices")[:n].long()
            out["tail"] = self._get(f"{pair}/chosen_tail")[:n]
        return out

    def batch(self, items: Sequence, chosen: Sequence[list[int]], rejected: Sequence[list[int]]) -> dict[str, Any]:
        """``reference_*`` batch entries for the pairs, padded like the collator's targets."""
        out: dict[str, Any] = {}
        for side, responses in (("chosen", chosen), ("rejected", rejected)):
            parts = [self._response(item, side, ids) for item, ids in zip(items, responses)]
            width = max(1, max(len(ids) for ids in responses))
            for name in parts[0]:
                tensors = [p[name] for p in parts]
                shape = (len(tensors), width, *tensors[0].shape[1:])
                padded = tensors[0].new_zeros(shape)
                for i, t in enumerate(tensors):
                    padded[i, :t.shape[0]] = t
                out[f"reference_{side}_{name}"] = padded
        return out


@torch.no_grad()
def precompute_reference(model: str | Path, data: str | Path, *, output: str | Path | None = None,
                         backend: str | None = None, adapter: str | Path | None = None, reference_backend=None,
                         kl: str = "topk", top_k: int = 64, num_frames: int = 16, frame_rule: str = "uniform",
                         max_length: int | None = None,
                         batch_size: int = 4, data_format: str = "savi", data_root: str | Path | None = None,
                         video_backend: str | None = None, dtype: str = "float32", device: str = "cpu",
                         packing: bool = True, bad_records: str = "raise", chunk_size: int = 256) -> Path:
    """Compute and store the reference statistics of every pair of ``data`` (``reference="precomputed"``).

    Args:
        model: the reference checkpoint (usually the base model the LoRA adapter will be trained on).
        data: the preference file.
        output: where to write; default ``<data>.reference.safetensors`` beside the dataset.
        backend: backend name (auto-detected from ``config.json`` when None).
        adapter: an adapter applied to ``model`` first (e.g. the previous iteration's), or None.
        reference_backend: an already loaded ``VideoLM`` to use instead of loading ``model``.
        kl: ``"topk"`` (default, approximate KL), ``"full"`` (exact KL, ``T x V`` per chosen response) or
            ``"none"`` (log-probs only: enough for DPO/IPO, not for RRPO's KL term).
        top_k: ``k`` for ``kl="topk"``.
        num_frames, frame_rule, max_length, data_format, data_root, video_backend: as in :class:`PreferenceConfig`
            (use the training values; a mismatch in tokens is detected at training time).
        batch_size: pairs per forward.
        dtype, device: where the reference runs.
        packing: pack chosen and rejected into one row (falls back when unsupported).
        bad_records: ``"raise"`` or ``"skip"``.
        chunk_size: response positions per LM-head call.

    Returns:
        The path written.
    """
    from safetensors.torch import save_file

    from savi_plugin.models import load_backend
    from savi_plugin.training.collator import PreferenceCollator
    from savi_plugin.training.dataset import PreferenceDataset
    from savi_plugin.training.forward import packing_support
    from savi_plugin.training.scoring import score_responses

    if kl not in KL_MODES:
        raise ValueError(f"kl must be one of {', '.join(KL_MODES)}, got {kl!r}")
    if kl == "topk" and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    ref = reference_backend or load_backend(model, backend, adapter=adapter, dtype=dtype, device=device,
                                            num_frames=num_frames)
    ref.model.eval()
    dataset = PreferenceDataset(data, ref.tokenizer, ref.end_of_turn, fmt=data_format, data_root=data_root,
                                bad_records=bad_records)
    supported, why = packing_support(ref)
    if packing and not supported:
        log.info("precompute_reference: packing off (%s)", why)
    collator = PreferenceCollator(ref, num_frames=num_frames, frame_rule=frame_rule, packing=packing and supported,
                                  max_length=max_length, video_backend=video_backend)
    tensors: dict[str, torch.Tensor] = {}
    tail_masses: list[torch.Tensor] = []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        batch = _to_device(collator(items), ref.device)
        scores = score_responses(ref, batch, reference="none", keep_top_k=top_k if kl == "topk" else None,
                                 keep_full=kl == "full", keep_sides=("chosen",) if kl != "none" else (),
                                 chunk_size=chunk_size)
        for side in ("chosen", "rejected"):
            stats = scores[side]
            targets = batch[f"{side}_targets"]
            counts = stats.mask.sum(-1).tolist()
            kept = stats.kept
            if kept is not None and kept.tail_logmass is not None:
                tail_masses.append(kept.tail_logmass.float().exp().cpu())
            fields = {"logps": stats.policy_logps[stats.mask].float()}
            if kept is not None:
                fields.update({"full": kept.full_logprobs, "topk_logprobs": kept.topk_logprobs,
                               "topk_indices": kept.topk_indices, "tail": kept.tail_logmass})
            split = {k: torch.split(v.cpu(), counts) for k, v in fields.items() if v is not None}
            for b, item in enumerate(items):
                pair = item.record.id
                tensors[f"{pair}/{side}_ids"] = targets[b, :counts[b]].to(torch.int64).cpu().contiguous()
                for name, parts in split.items():
                    value = parts[b].contiguous()
                    tensors[f"{pair}/{side}_{name}"] = value.to(torch.int32) if name == "topk_indices" else value
    output = Path(output) if output is not None else default_reference_path(data)
    tail = torch.cat(tail_masses) if tail_masses else None
    if tail is not None and tail.numel() and tail.mean() > 0.05:
        log.warning("precompute_reference: the reference puts %.1f%% of its probability outside its top %d tokens "
                    "on average; the stored top-k KL underestimates the exact KL there (raise top_k or use "
                    "kl='full')", 100 * tail.mean().item(), top_k)
    meta = {"model": str(model), "adapter": str(adapter) if adapter else None, "num_frames": num_frames,
            "frame_rule": frame_rule, "max_length": max_length, "kl": kl, "top_k": top_k if kl == "topk" else None, "data": str(data),
            "pairs": len(dataset), "skipped": dataset.report()["skipped"], "vocab_size": len(ref.tokenizer),
            # how much reference probability the top-k KL ignores (0 = exact): mean and max over chosen tokens
            "topk_tail_mass": None if tail is None or not tail.numel() else
            {"mean": tail.mean().item(), "max": tail.max().item()}}
    with atomic_path(output, suffix=".safetensors") as tmp:  # never a torn file under the final name
        save_file(tensors, str(tmp), metadata={"format": FORMAT, "meta": json.dumps(meta)})
    log.info("precomputed reference statistics of %d pairs -> %s (%.1f MB)", len(dataset), output,
             output.stat().st_size / 2**20)
    return output


def _to_device(batch: dict[str, Any], device) -> dict[str, Any]:
    def move(value):
        if torch.is_tensor(value):
            return value.to(device)
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        return value

    return move(batch)

"""An official-style RRPO training step: the baseline of ``savi bench train-step``.

Written from the description of the official code (pritamqu/RRPO; our notes: research/rrpo.md, sections 1, 3
and 6), not copied from it. Per step and pair it does what ``RRPOTrainer.compute_loss`` with
``LlavaQwenForCausalLM.forward(forward_mode="rrpo")`` does:

* the **policy** (base + LoRA) runs **chosen and rejected as two separate full forwards** (two LLM calls),
  each through the whole multimodal model, so the (frozen) **vision encoder runs once per sequence**;
* the **reference is a second full model copy**, frozen, run the same way under ``no_grad`` (two more
  forwards and two more vision encodings: four per pair in all);
* the **LM head is applied at every position** (full-vocabulary logits ``[L, V]`` for video, prompt and
  response tokens); chosen and rejected logits are stacked as rows ``[:B]`` / ``[B:]``;
* the loss is computed from those full logits: log-softmax over the vocabulary at every position, the
  label gather, the refined (phrase) reward and the token-wise KL(ref || policy) over the chosen response
  (:func:`savi_plugin.bench.official_loss.rrpo_loss_from_logits`).

Kept equal to our trainer so that only the layout differs: fp32, the same LoRA adapter, AdamW with a
constant learning rate and no weight decay, gradient clipping at 1.0 (the Hugging Face Trainer default that
both the official trainer and ours inherit), and the same gradient-checkpointing setting. Two things of the
official code are *not* charged to the baseline (they would only make it slower): the KL of the rejected
rows, computed there and thrown away, and ``softmax().log()`` (a second ``[L, V]`` tensor) for the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from savi_plugin.bench.official_loss import rrpo_loss_from_logits


@dataclass
class PairInputs:
    """One pair encoded the unpacked way: two sequences, each with its own copy of the video."""

    chosen: dict
    rejected: dict
    labels: torch.Tensor  # [2, L] chosen row first, -100 outside the responses and on padding
    phrase_ids: torch.Tensor  # [2, L] phrase id of each label token (0: untagged)


def encode_pair(video_lm, frames: np.ndarray, question: str, pair: dict[str, str]) -> PairInputs:
    """Encode chosen and rejected as two separate sequences (the official layout) with aligned phrase ids."""
    from savi_plugin.training.batch import labelled_inputs
    from savi_plugin.training.phrase_ids import phrase_ids_for_response

    sides, labels, phrase_rows = [], [], []
    for key in ("chosen", "rejected"):
        inputs, label = labelled_inputs(video_lm, [frames], [question], [pair[key]])
        ids, phrases = phrase_ids_for_response(video_lm.tokenizer, pair[f"{key}_tagged"], video_lm.end_of_turn)
        response = label[0] != -100
        if label[0][response].tolist() != ids:
            raise RuntimeError(f"{key}: the tagged response does not tokenize like the encoded one")
        phrase_row = torch.zeros_like(label[0])
        phrase_row[response] = torch.tensor(phrases, dtype=phrase_row.dtype)
        sides.append(inputs)
        labels.append(label[0])
        phrase_rows.append(phrase_row)
    length = max(len(row) for row in labels)
    pad = [length - len(row) for row in labels]
    return PairInputs(sides[0], sides[1],
                      torch.stack([F.pad(row, (0, n), value=-100) for row, n in zip(labels, pad)]),
                      torch.stack([F.pad(row, (0, n), value=0) for row, n in zip(phrase_rows, pad)]))


def _stack_rows(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """``[1, L1, V]`` and ``[1, L2, V]`` -> ``[2, max L, V]``, right-padded with zeros (labels there are -100)."""
    length = max(first.shape[1], second.shape[1])
    return torch.cat([F.pad(first, (0, 0, 0, length - first.shape[1])),
                      F.pad(second, (0, 0, 0, length - second.shape[1]))])


class OfficialStyleRRPO:
    """Policy (base + LoRA), a separate frozen reference copy, AdamW; :meth:`step` runs one training step.

    Args:
        model_path: the base checkpoint; loaded twice (policy and reference), as the official trainer does.
        adapter_path: a saved peft LoRA adapter to start the policy from (trainable).
        lr: AdamW learning rate (constant).
        beta, alpha: RRPO's reward scale and KL weight.
        gradient_checkpointing: recompute the decoder layers in backward (the official recipe turns it on).
        max_grad_norm: gradient clipping, as in the Hugging Face Trainer.
    """

    def __init__(self, model_path, adapter_path, *, lr: float, beta: float, alpha: float,
                 gradient_checkpointing: bool, max_grad_norm: float = 1.0):
        from peft import PeftModel
        from transformers import AutoModelForImageTextToText

        base = AutoModelForImageTextToText.from_pretrained(str(model_path), dtype=torch.float32)
        if gradient_checkpointing:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.policy = PeftModel.from_pretrained(base, str(adapter_path), is_trainable=True)
        self.policy.train()
        self.reference = AutoModelForImageTextToText.from_pretrained(str(model_path), dtype=torch.float32)
        self.reference.eval().requires_grad_(False)
        self.params = [p for p in self.policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=lr, weight_decay=0.0)
        self.beta, self.alpha, self.max_grad_norm = beta, alpha, max_grad_norm

    def loss(self, batch: PairInputs) -> torch.Tensor:
        """Forward only: the RRPO loss of the pair from full-vocabulary logits."""
        # Two policy forwards (chosen, rejected); each re-encodes the video and returns logits at every position.
        policy_logits = _stack_rows(self.policy(**batch.chosen, use_cache=False).logits,
                                    self.policy(**batch.rejected, use_cache=False).logits)
        with torch.no_grad():  # the second model copy, two more full forwards
            reference_logits = _stack_rows(self.reference(**batch.chosen, use_cache=False).logits,
                                           self.reference(**batch.rejected, use_cache=False).logits)
        losses, _, _ = rrpo_loss_from_logits(policy_logits, reference_logits, batch.labels, batch.phrase_ids,
                                             beta=self.beta, alpha=self.alpha)
        return losses.mean()

    def step(self, batch: PairInputs) -> float:
        """One optimizer step (forward, backward, clip, AdamW); returns the loss before the update."""
        loss = self.loss(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

"""A short supervised warm-up, used ONLY by the demo.

A tiny random-weight model answers at random and has no "errors" worth correcting, so RRPO and VideoSAVi
have nothing to learn from. The demo therefore first teaches it the answer format (the option's text) and
the warm-up world's tasks, language prior included (:mod:`savi_plugin.demo.world`), with cross-entropy steps
on the warm-up videos. Real checkpoints need no warm-up.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from savi_plugin.training.batch import labelled_inputs

log = logging.getLogger(__name__)


def supervised_warmup(lm, videos: Sequence[np.ndarray], prompts: Sequence[str], targets: Sequence[str], *,
                      steps: int, lr: float, batch_size: int = 8, seed: int = 0, out_dir: str | Path) -> Path:
    """Fine-tune every weight of ``lm.model`` on (video, prompt) -> target, then ``save_pretrained``.

    Args:
        lm: a loaded :class:`~savi_plugin.models.backends.base.VideoLM`.
        videos, prompts, targets: the training examples (decoded frames, prompt text, answer text).
        steps: optimizer steps; lr: AdamW learning rate; batch_size: examples per step.
        seed: shuffling seed.
        out_dir: where the warmed-up model and processor are saved: the temporary folder of
            :func:`~savi_plugin.data.outputs.step_product`, which keeps the model once made.

    Returns:
        ``out_dir``.
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = lm.model
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    order: list[int] = []
    losses = []
    for _ in tqdm(range(steps), desc="warm-up (demo only)", unit="step"):
        if len(order) < batch_size:
            order += rng.permutation(len(prompts)).tolist()
        batch, order = order[:batch_size], order[batch_size:]
        inputs, labels = labelled_inputs(lm, [videos[i] for i in batch], [prompts[i] for i in batch],
                                         [targets[i] for i in batch])
        loss = model(**lm._to_device(inputs), labels=labels.to(lm.device)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    model.eval()
    log.info("warm-up: loss %.3f -> %.3f over %d steps", losses[0], float(np.mean(losses[-5:])), steps)
    out_dir = Path(out_dir)  # a temporary folder that becomes the model by one rename (data.outputs.step_product)
    model.save_pretrained(out_dir)
    lm.processor.save_pretrained(out_dir)
    return out_dir

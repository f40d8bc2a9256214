"""Optional video-text similarity scoring of VideoSAVi pairs (the "CLIP-adjusted" variant).

The first version of VideoSAVi (arXiv 2412.00624 v1; the Dec 2024 README of the VideoSAVi repository)
described "CLIP-Adjusted DPO: a CLIP-based filtering mechanism to align responses with video content".
No code was released, so this is our design: a pair is scored by how much closer the revised (chosen)
answer is to the video than the initial (rejected) answer, ``gain = sim(video, chosen) - sim(video,
rejected)``, where ``sim`` is the cosine similarity between the mean of the frames' image embeddings and
the text embedding. ``mode="filter"`` drops pairs with ``gain < margin``; ``mode="weight"`` keeps every
pair and writes the record's ``weight = sigmoid(gain / temperature)``, which the DPO/RRPO losses use as the
pair's weight in a weighted mean (CLIP-adjusted DPO).

Any object with ``score(videos, texts) -> list[float]`` is a scorer. :class:`HFVideoTextScorer` loads a
CLIP or SigLIP checkpoint from a **local** directory through transformers' ``AutoModel`` (imported
lazily; nothing is downloaded).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np


class VideoTextScorer(Protocol):
    """Scores how well each text describes its video (higher = closer)."""

    def score(self, videos: Sequence[np.ndarray], texts: Sequence[str]) -> list[float]:
        """One similarity per ``(video, text)`` pair; ``videos`` are uint8 ``(T, H, W, 3)`` arrays."""


class HFVideoTextScorer:
    """CLIP / SigLIP video-text similarity from a local checkpoint.

    Args:
        path: a local directory with a CLIP- or SigLIP-style model (its forward returns ``image_embeds`` and
            ``text_embeds``), its tokenizer and its image processor.
        device: where to run it.
        num_frames: frames per video embedded (uniformly sampled from the decoded frames).
        max_length: text length in tokens (SigLIP is trained with ``max_length`` padding).
    """

    def __init__(self, path: str | Path, *, device: str = "cpu", num_frames: int = 8, max_length: int = 64):
        import torch  # noqa: F401  (fail here, not mid-run, if torch is missing)
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        from savi_plugin.data.model_config import loadable_model_problem
        from savi_plugin.models.backends.base import ModelLoadError

        path = Path(path)
        problem = loadable_model_problem(path)
        if problem and not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: {problem}; the similarity scorer loads local checkpoints only")
        if problem:
            raise ModelLoadError(f"{path}: the similarity scorer cannot be loaded: {problem}")
        self.model = AutoModel.from_pretrained(str(path)).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.image_processor = AutoImageProcessor.from_pretrained(str(path))
        self.device, self.num_frames, self.max_length = device, num_frames, max_length
        self.siglip = "siglip" in getattr(self.model.config, "model_type", "")

    def __repr__(self) -> str:
        return f"HFVideoTextScorer({self.model.config.model_type}, num_frames={self.num_frames})"

    def score(self, videos: Sequence[np.ndarray], texts: Sequence[str]) -> list[float]:
        import torch

        out = []
        with torch.no_grad():
            for video, text in zip(videos, texts):
                idx = np.round(np.linspace(0, len(video) - 1, min(self.num_frames, len(video)))).astype(int)
                pixels = self.image_processor(images=list(video[idx]), return_tensors="pt")["pixel_values"]
                tok = self.tokenizer([text], return_tensors="pt", truncation=True, max_length=self.max_length,
                                     padding="max_length" if self.siglip else True)
                result = self.model(input_ids=tok["input_ids"].to(self.device),
                                    pixel_values=pixels.to(self.device),
                                    **({"attention_mask": tok["attention_mask"].to(self.device)}
                                       if not self.siglip and "attention_mask" in tok else {}))
                image = torch.nn.functional.normalize(result.image_embeds.float(), dim=-1).mean(0)
                image = torch.nn.functional.normalize(image, dim=-1)
                txt = torch.nn.functional.normalize(result.text_embeds.float()[0], dim=-1)
                out.append(float(image @ txt))
        return out


def load_scorer(spec: Any, *, device: str = "cpu") -> VideoTextScorer | None:
    """A scorer from an option value: None, an object with ``score``, or a local checkpoint path."""
    if spec is None:
        return None
    if hasattr(spec, "score"):
        return spec
    if isinstance(spec, (str, Path)):
        return HFVideoTextScorer(spec, device=device)
    raise ValueError(f"scorer must be a local checkpoint path or an object with score(videos, texts), got {spec!r}")


def pair_weight(gain: float, temperature: float) -> float:
    """``sigmoid(gain / temperature)``: 0.5 for no gain, towards 1 when the revision is much closer."""
    z = gain / temperature
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

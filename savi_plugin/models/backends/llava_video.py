"""LLaVA-Video (lmms-lab/LLaVA-Video-7B-Qwen2, the RRPO paper's model) after ``savi convert llava-next``.

Same family as LLaVA-OneVision (SigLIP, 2-layer GELU projector, Qwen2, bilinear 2x2 pooling), with two differences
that this backend adds on top of :class:`LlavaOnevisionVideoLM`:

* the model: LLaVA-Video puts a newline embedding after every pooled row of every frame (210 tokens per 384-px
  frame), served by :class:`~savi_plugin.models.llava_next.modeling.LlavaVideoForConditionalGeneration`;
* the frames: LLaVA-NeXT resizes uint8 frames with PIL bicubic; transformers' video processor resizes float tensors
  with torchvision (up to one grey level apart), so frames are resized the LLaVA-NeXT way before the processor.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from savi_plugin.models.backends.llava_onevision import LlavaOnevisionVideoLM


class LlavaVideoVideoLM(LlavaOnevisionVideoLM):
    family = "llava_video"
    model_types = ("savi_llava_video",)

    @classmethod
    def from_pretrained(cls, path, **kwargs) -> "LlavaVideoVideoLM":
        """As :meth:`VideoLM.from_pretrained`; first lets transformers' Auto classes resolve the converted type."""
        from savi_plugin.models.llava_next.auto import register_auto_classes

        register_auto_classes()
        return super().from_pretrained(path, **kwargs)

    @classmethod
    def load_model(cls, path: str, **kwargs):
        from savi_plugin.models.llava_next.modeling import LlavaVideoForConditionalGeneration

        return LlavaVideoForConditionalGeneration.from_pretrained(path, **kwargs)

    def _process(self, texts: list[str], videos: Sequence[np.ndarray]):
        from savi_plugin.models.llava_next.processing import resize_frames_like_llava_next

        size = self.processor.video_processor.size
        resized = [resize_frames_like_llava_next(np.asarray(v), size["height"], size["width"]) for v in videos]
        return super()._process(texts, resized)

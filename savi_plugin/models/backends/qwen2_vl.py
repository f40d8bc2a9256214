"""Qwen2-VL and Qwen2.5-VL (transformers' native classes), e.g. ``Qwen/Qwen2-VL-7B-Instruct``.

Frames are given as decoded arrays; the processor merges each 2 consecutive frames into one temporal
patch, so an even frame count wastes nothing."""

from typing import Any

from savi_plugin.models.backends.base import VideoLM


class Qwen2VLVideoLM(VideoLM):
    family = "qwen2_vl"
    model_types = ("qwen2_vl", "qwen2_5_vl")
    supports_packing = True

    def processor_kwargs(self) -> dict[str, Any]:
        # Frames are already sampled by read_frames; the processor must not resample them.
        return {"do_sample_frames": False}

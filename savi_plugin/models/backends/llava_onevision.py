"""LLaVA-OneVision (transformers' ``LlavaOnevisionForConditionalGeneration``), e.g.
``llava-hf/llava-onevision-qwen2-7b-ov-hf``: SigLIP frames, 2x2 bilinear pooling, one newline per video."""

from savi_plugin.models.backends.base import VideoLM


class LlavaOnevisionVideoLM(VideoLM):
    family = "llava_onevision"
    model_types = ("llava_onevision",)
    supports_packing = True

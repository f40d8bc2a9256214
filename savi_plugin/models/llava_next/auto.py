"""Make transformers' Auto classes resolve converted LLaVA-Video checkpoints (model type ``savi_llava_video``).

Without this, ``AutoProcessor.from_pretrained`` on a converted checkpoint silently falls back to the bare
tokenizer (its ``processor_class`` is ours, not transformers'), and ``AutoModelForImageTextToText`` refuses the
model type. Called explicitly by the ``llava_video`` backend (no import side effect); safe to call repeatedly.
"""

from __future__ import annotations

_registered = False


def register_auto_classes() -> None:
    """Register LlavaVideoConfig / LlavaVideoForConditionalGeneration / LlavaVideoProcessor with the Auto classes."""
    global _registered
    if _registered:
        return
    from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor

    from savi_plugin.models.llava_next.modeling import LlavaVideoConfig, LlavaVideoForConditionalGeneration, LlavaVideoModel
    from savi_plugin.models.llava_next.processing import LlavaVideoProcessor

    AutoConfig.register(LlavaVideoConfig.model_type, LlavaVideoConfig, exist_ok=True)
    AutoModel.register(LlavaVideoConfig, LlavaVideoModel, exist_ok=True)
    AutoModelForImageTextToText.register(LlavaVideoConfig, LlavaVideoForConditionalGeneration, exist_ok=True)
    AutoProcessor.register(LlavaVideoConfig, LlavaVideoProcessor, exist_ok=True)
    _registered = True

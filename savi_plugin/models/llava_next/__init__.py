"""LLaVA-NeXT checkpoints (LLaVA-Video-Qwen2, LLaVA-OneVision-Qwen2) on transformers' own LLaVA-OneVision classes.

- :mod:`.mapping`: pure config / weight-name mapping from LLaVA-NeXT's format;
- :mod:`.convert`: ``convert_llava_next(src, dst)`` (the ``savi convert llava-next`` command) and ``load_converted``;
- :mod:`.modeling`: ``LlavaVideoForConditionalGeneration``, LLaVA-OneVision with LLaVA-Video's grid newlines;
- :mod:`.processing`: ``LlavaVideoProcessor`` (video-token count) and LLaVA-NeXT's exact PIL frame resize;
- :mod:`.tiny`: a tiny random checkpoint in LLaVA-NeXT's layout, for tests.

Imports are lazy so that ``import savi_plugin.models.llava_next`` does not pull in torch.
"""

__all__ = ["convert_llava_next", "load_converted", "ConversionError"]


def __getattr__(name):
    if name in ("convert_llava_next", "load_converted"):
        from savi_plugin.models.llava_next import convert

        return getattr(convert, name)
    if name == "ConversionError":
        from savi_plugin.models.llava_next.mapping import ConversionError

        return ConversionError
    raise AttributeError(name)

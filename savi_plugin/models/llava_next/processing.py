"""Processor side of converted LLaVA-NeXT checkpoints: the video-token count and LLaVA-NeXT's exact frame resize.

Two things must match LLaVA-NeXT for a converted checkpoint to see the same inputs:

* the number of ``<video>`` placeholders, which :class:`LlavaVideoProcessor` computes with
  :func:`~savi_plugin.models.llava_next.modeling.num_video_tokens` (grid newlines: 210 per 384-px frame);
* the pixels. LLaVA-NeXT's ``SigLipImageProcessor`` resizes each frame to 384x384 (aspect ratio not kept) with
  **PIL** bicubic on uint8 frames, then rescales by 1/255 and normalises with mean = std = 0.5. transformers' video
  processors resize float tensors with torchvision, which rounds differently, so :func:`resize_frames_like_llava_next`
  does the PIL resize first; the processor's own resize is then a no-op at the same size.
"""

from __future__ import annotations

import numpy as np
from transformers import LlavaOnevisionProcessor

from savi_plugin.models.llava_next.modeling import NEWLINE_POSITIONS, POOL_MODES, num_video_tokens

#: LLaVA-NeXT ``SigLipImageProcessor`` normalisation (mean = std = 0.5 per channel).
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)


def resize_frames_like_llava_next(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize uint8 frames ``(T, H, W, 3)`` to ``(T, height, width, 3)`` with PIL bicubic, as LLaVA-NeXT does.

    LLaVA-NeXT (transformers 4.40 ``image_transforms.resize``) converts each uint8 frame to a PIL image, resizes it
    with ``Image.BICUBIC`` and converts back to uint8; the result here is bit-identical.
    """
    from PIL import Image

    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack(
        [np.asarray(Image.fromarray(f).resize((width, height), resample=Image.BICUBIC)) for f in frames]
    )


class LlavaVideoProcessor(LlavaOnevisionProcessor):
    """:class:`LlavaOnevisionProcessor` whose ``<video>`` expansion follows LLaVA-NeXT's newline and pooling options.

    Args (beyond the parent's):
        newline_position: LLaVA-NeXT ``mm_newline_position`` (one of ``NEWLINE_POSITIONS``; "grid" for LLaVA-Video).
        spatial_pool_mode: ``mm_spatial_pool_mode`` ("bilinear", "average" or "max").
        spatial_pool_stride: pooling stride of the video path.
    """

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        video_processor=None,
        num_image_tokens=None,
        vision_feature_select_strategy=None,
        chat_template=None,
        image_token="<image>",
        video_token="<video>",
        vision_aspect_ratio="anyres_max_9",
        newline_position: str = "grid",
        spatial_pool_mode: str = "bilinear",
        spatial_pool_stride: int = 2,
        **kwargs,
    ):
        if newline_position not in NEWLINE_POSITIONS:
            raise ValueError(f"newline_position must be one of {NEWLINE_POSITIONS}, got {newline_position!r}")
        if spatial_pool_mode not in POOL_MODES:
            raise ValueError(f"spatial_pool_mode must be one of {POOL_MODES}, got {spatial_pool_mode!r}")
        self.newline_position = newline_position
        self.spatial_pool_mode = spatial_pool_mode
        self.spatial_pool_stride = int(spatial_pool_stride)
        super().__init__(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=video_processor,
            num_image_tokens=num_image_tokens,
            vision_feature_select_strategy=vision_feature_select_strategy,
            chat_template=chat_template,
            image_token=image_token,
            video_token=video_token,
            vision_aspect_ratio=vision_aspect_ratio,
            **kwargs,
        )

    def _video_tokens(self, num_frames: int) -> int:
        side = int(round(self.num_image_tokens**0.5))
        return num_video_tokens(num_frames, side, self.spatial_pool_stride, self.spatial_pool_mode, self.newline_position)

    def replace_video_token(self, video_inputs: dict, video_idx: int, **kwargs) -> str:
        processed = video_inputs["pixel_values_videos"][video_idx]
        num_frames = len(processed) if isinstance(processed, (list, tuple)) else processed.shape[0]
        return self.video_token * self._video_tokens(num_frames)

    def _get_num_multimodal_tokens(self, image_sizes=None, video_sizes=None, **kwargs):
        data = super()._get_num_multimodal_tokens(image_sizes=image_sizes, video_sizes=None, **kwargs)
        if video_sizes is not None:
            data.num_video_tokens = [self._video_tokens(frames) for frames, _, _ in video_sizes]
        return data

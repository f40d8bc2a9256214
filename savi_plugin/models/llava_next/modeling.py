"""LLaVA-Video's video-token layout on top of transformers' LLaVA-OneVision classes.

transformers' ``LlavaOnevisionForConditionalGeneration`` reproduces LLaVA-NeXT's *OneVision* video path: SigLIP
features -> 2-layer GELU projector -> 2x2 bilinear pooling -> all frames flattened, then **one** ``image_newline``
after the whole video (LLaVA-NeXT ``mm_newline_position: one_token``). LLaVA-Video-Qwen2 (arXiv 2410.02713) was
trained with ``mm_newline_position: grid``: LLaVA-NeXT's ``add_token_per_grid`` puts the newline embedding after
**every row of every pooled frame**, so a 384-px frame (27x27 patches, pooled to 14x14) costs 14 x (14 + 1) = 210
tokens instead of 196. That is the only architectural difference, so :class:`LlavaVideoModel` overrides just the
pooling (mode and stride as configured) and the newline layout; weights, vision tower, projector and language model
are transformers' own.
"""

from __future__ import annotations

import math

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import LlavaOnevisionConfig
from transformers.models.llava_onevision.modeling_llava_onevision import (
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionModel,
)

#: LLaVA-NeXT ``mm_newline_position`` values (``llava_arch.prepare_inputs_labels_for_multimodal``), plus "none"
#: for ``no_token`` / a ``flat`` patch-merge type (no newline at all).
NEWLINE_POSITIONS = ("grid", "frame", "one_token", "none")
#: LLaVA-NeXT ``mm_spatial_pool_mode`` values (``LlavaMetaForCausalLM.get_2dPool``).
POOL_MODES = ("bilinear", "average", "max")


def pooled_side(side: int, stride: int, mode: str) -> int:
    """Side of the pooled patch grid: bilinear rounds up (``ceil``), average/max pooling round down.

    Args:
        side: patches per side of one frame (image_size // patch_size, 27 for SigLIP-so400m at 384 px).
        stride: pooling stride (2 in LLaVA-Video).
        mode: one of :data:`POOL_MODES`.
    """
    if mode not in POOL_MODES:
        raise ValueError(f"spatial pool mode must be one of {POOL_MODES}, got {mode!r}")
    if stride <= 1:
        return side
    return math.ceil(side / stride) if mode == "bilinear" else side // stride


def num_video_tokens(num_frames: int, side: int, stride: int, mode: str, newline_position: str) -> int:
    """Number of visual tokens LLaVA-NeXT feeds the language model for one video.

    Args:
        num_frames: frames of the video.
        side, stride, mode: see :func:`pooled_side`.
        newline_position: one of :data:`NEWLINE_POSITIONS`: "grid" adds one newline per pooled row of each frame,
            "frame" one per frame, "one_token" one per video, "none" none.

    >>> num_video_tokens(1, 27, 2, "bilinear", "grid")  # LLaVA-Video at 384 px
    210
    >>> num_video_tokens(32, 27, 2, "bilinear", "one_token")  # LLaVA-OneVision
    6273
    """
    s = pooled_side(side, stride, mode)
    per_frame = {"grid": s * (s + 1), "frame": s * s + 1, "one_token": s * s, "none": s * s}[newline_position]
    return num_frames * per_frame + (1 if newline_position == "one_token" else 0)


def add_newlines(features: torch.Tensor, newline: torch.Tensor, side: int, newline_position: str) -> torch.Tensor:
    """Interleave the newline embedding into pooled video features the way LLaVA-NeXT does.

    Args:
        features: ``(batch, frames, side * side, dim)`` pooled, projected frame features (row-major patches).
        newline: ``(dim,)`` the learned ``image_newline`` embedding.
        side: pooled grid side.
        newline_position: one of :data:`NEWLINE_POSITIONS`.

    Returns:
        ``(batch, tokens, dim)`` with ``tokens`` as in :func:`num_video_tokens`.
    """
    batch, frames, _, dim = features.shape
    nl = newline.to(features.dtype)
    if newline_position == "grid":  # LLaVA-NeXT add_token_per_grid: a newline closes every row of every frame
        rows = features.reshape(batch, frames, side, side, dim)
        rows = torch.cat((rows, nl.expand(batch, frames, side, 1, dim)), dim=3)
        return rows.reshape(batch, frames * side * (side + 1), dim)
    if newline_position == "frame":  # add_token_per_frame: a newline closes every frame
        per_frame = torch.cat((features, nl.expand(batch, frames, 1, dim)), dim=2)
        return per_frame.reshape(batch, -1, dim)
    flat = features.reshape(batch, frames * side * side, dim)
    if newline_position == "one_token":
        return torch.cat((flat, nl.expand(batch, 1, dim)), dim=1)
    if newline_position == "none":
        return flat
    raise ValueError(f"newline position must be one of {NEWLINE_POSITIONS}, got {newline_position!r}")


@strict
class LlavaVideoConfig(LlavaOnevisionConfig):
    r"""LLaVA-OneVision config plus LLaVA-NeXT's video-token options.

    newline_position (`str`, defaults to `"grid"`): LLaVA-NeXT ``mm_newline_position`` (see ``NEWLINE_POSITIONS``).
    spatial_pool_mode (`str`, defaults to `"bilinear"`): LLaVA-NeXT ``mm_spatial_pool_mode``.
    spatial_pool_stride (`int`, defaults to 2): pooling stride (LLaVA-NeXT's video path pools with stride 2).
    """

    model_type = "savi_llava_video"
    newline_position: str = "grid"
    spatial_pool_mode: str = "bilinear"
    spatial_pool_stride: int = 2

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.newline_position not in NEWLINE_POSITIONS:
            raise ValueError(f"newline_position must be one of {NEWLINE_POSITIONS}, got {self.newline_position!r}")
        if self.spatial_pool_mode not in POOL_MODES:
            raise ValueError(f"spatial_pool_mode must be one of {POOL_MODES}, got {self.spatial_pool_mode!r}")


class LlavaVideoModel(LlavaOnevisionModel):
    """:class:`LlavaOnevisionModel` with LLaVA-NeXT's configurable pooling and newline layout for videos."""

    config_class = LlavaVideoConfig

    def apply_pooling(self, image_features):
        """Pool each frame's patch grid like LLaVA-NeXT ``get_2dPool`` (bilinear / average / max, any stride)."""
        side = self.config.vision_config.image_size // self.config.vision_config.patch_size
        stride, mode = self.config.spatial_pool_stride, self.config.spatial_pool_mode
        batch_frames, _, dim = image_features.shape
        grid = image_features.view(batch_frames, side, side, dim).permute(0, 3, 1, 2)
        if stride > 1:
            if mode == "bilinear":
                out = pooled_side(side, stride, mode)
                grid = nn.functional.interpolate(grid, size=[out, out], mode="bilinear")
            elif mode == "average":
                grid = nn.functional.avg_pool2d(grid, stride)
            else:
                grid = nn.functional.max_pool2d(grid, stride)
        return grid.permute(0, 2, 3, 1).reshape(batch_frames, -1, dim)

    def get_video_features(self, pixel_values_videos, *args, **kwargs):
        """Video features with the newline layout of ``config.newline_position``.

        The parent computes tower -> projector -> :meth:`apply_pooling` and appends one newline per video; that
        newline is removed and the configured layout applied instead.
        """
        outputs = super().get_video_features(pixel_values_videos, *args, **kwargs)
        pooled = outputs.pooler_output[:, :-1]  # drop the parent's single trailing newline
        batch, frames = pixel_values_videos.shape[:2]
        side = pooled_side(
            self.config.vision_config.image_size // self.config.vision_config.patch_size,
            self.config.spatial_pool_stride,
            self.config.spatial_pool_mode,
        )
        pooled = pooled.reshape(batch, frames, side * side, -1)
        outputs.pooler_output = add_newlines(pooled, self.image_newline, side, self.config.newline_position)
        return outputs


class LlavaVideoForConditionalGeneration(LlavaOnevisionForConditionalGeneration):
    """LLaVA-Video (LLaVA-NeXT grid newlines) on transformers' LLaVA-OneVision: loads with ``from_pretrained``."""

    config_class = LlavaVideoConfig

    def __init__(self, config: LlavaVideoConfig):
        super().__init__(config)
        self.model = LlavaVideoModel(config)
        self.post_init()

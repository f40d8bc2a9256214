"""InternVL 2.5 and 3 in transformers' format (``InternVLForConditionalGeneration``), e.g.
``OpenGVLab/InternVL3-1B-hf``.

InternViT encodes each frame as an image (448 px, pixel shuffle 0.5, 256 tokens), and the processor writes a video as
``Frame1: <img><IMG_CONTEXT>...</img>\\nFrame2: ...`` (transformers ``InternVLProcessor.replace_video_token``),
the layout of InternVL's own ``load_video`` chat code (OpenGVLab/InternVL ``internvl_chat`` README, video
example). The frames reach the model as ``pixel_values`` and their features as the ``"image"`` modality, one entry
per frame; the language model (Qwen2.5 for InternVL3, InternLM2 or Qwen2.5 for InternVL2.5) takes plain 1-D
positions, so shared-prefix packing and prefix reuse apply as for LLaVA-OneVision.

InternVL2.5's original checkpoints are remote code; they load here after transformers' own conversion
(``src/transformers/models/internvl/convert_internvl_weights_to_hf.py``; README, "Models").
"""

from __future__ import annotations

from typing import Any

import torch

from savi_plugin.models.backends.base import VideoLM


class InternVLVideoLM(VideoLM):
    family = "internvl"
    model_types = ("internvl",)
    supports_packing = True

    def video_features(self, vision: dict[str, Any]):
        """InternViT + pixel shuffle + projector over every frame of the batch's videos (``pooler_output``:
        ``[frames, image_seq_length, hidden]``, the videos' frames in order)."""
        decoder = self.decoder()
        pixels = vision["pixel_values"].to(self.floating_dtype(decoder))
        return decoder.get_image_features(pixel_values=pixels, return_dict=True)

    def mm_encoder_outputs(self, features, prompt) -> dict[str, Any]:
        """Each row's frame features, in row order, as the ``"image"`` modality (InternVL's only one).

        A video's share of the frames is its first row's count of ``<IMG_CONTEXT>`` tokens (frames x
        ``image_seq_length``), so videos of different lengths in one batch stay apart.
        """
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        pooled = features.pooler_output
        row_to_pair = prompt.row_to_pair.tolist()
        if row_to_pair == list(range(len(row_to_pair))):
            return {"image": features}
        context = (prompt.input_ids == self.model.config.image_token_id).sum(-1).tolist()
        first_row = {pair: row for row, pair in reversed(list(enumerate(row_to_pair)))}
        frames = [context[first_row[pair]] // pooled.shape[1] for pair in range(len(first_row))]
        per_video = torch.split(pooled, frames)
        return {"image": BaseModelOutputWithPooling(pooler_output=torch.cat([per_video[p] for p in row_to_pair]))}

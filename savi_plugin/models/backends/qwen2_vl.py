"""The Qwen-VL families (transformers' native classes): Qwen2-VL (``Qwen/Qwen2-VL-7B-Instruct``), Qwen2.5-VL
(``Qwen/Qwen2.5-VL-7B-Instruct``) and Qwen3-VL (``Qwen/Qwen3-VL-8B-Instruct``).

Frames are given as decoded arrays; the processor merges each 2 consecutive frames into one temporal patch, so
an even frame count wastes nothing. What differs between the three lives in transformers' model code and reaches
training through the hooks every backend uses: the model's own ``get_rope_index`` (Qwen2.5-VL: temporal positions
scaled by ``second_per_grid_ts``; Qwen3-VL: one temporal index per timestamped frame group, interleaved M-RoPE) gives
the positions, ``get_video_features`` runs the vision tower (Qwen2.5-VL: window attention; Qwen3-VL: deepstack
features, carried per row by :meth:`VideoLM.mm_encoder_outputs`). One backend serves the three.

Time reaches Qwen2.5-VL through ``second_per_grid_ts`` (temporal positions ``tokens_per_second`` x seconds per
temporal patch) and Qwen3-VL through ``<t seconds>`` written before each temporal patch, both computed by the
processor from each video's frame rate. Decoded frame arrays carry no time, and without it transformers assumes
24 fps, which squeezes a 16-frame clip into temporal positions ``0,0,0,0,0,0,1,1`` (Qwen2.5-VL-7B,
``tokens_per_second`` 2). The backend tells the processor that the frames were sampled at :data:`FRAME_RATE`, the
rate Qwen's own video loader samples at by default, so consecutive temporal patches are one second apart as in
Qwen's training; a clip's true spacing (its duration over the frame count) is not known here (README, "Models").
"""

from typing import Any, Sequence

import numpy as np

from savi_plugin.models.backends.base import VideoLM

#: Frames per second the processor is told the frames were sampled at: qwen-vl-utils' default ``FPS = 2.0``
#: (QwenLM/Qwen2.5-VL ``qwen-vl-utils/src/qwen_vl_utils/vision_process.py``).
FRAME_RATE = 2.0


class Qwen2VLVideoLM(VideoLM):
    family = "qwen2_vl"
    model_types = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
    supports_packing = True

    def processor_kwargs(self) -> dict[str, Any]:
        # Frames are already sampled by read_frames; the processor must not resample them.
        return {"do_sample_frames": False}

    def _process(self, texts: list[str], videos: Sequence[np.ndarray], **extra):
        metadata = [{"total_num_frames": len(frames), "fps": FRAME_RATE, "frames_indices": list(range(len(frames)))}
                    for frames in videos]
        return super()._process(texts, videos, video_metadata=metadata, **extra)

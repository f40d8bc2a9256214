"""The Qwen-VL families (transformers' native classes): Qwen2-VL (``Qwen/Qwen2-VL-7B-Instruct``), Qwen2.5-VL
(``Qwen/Qwen2.5-VL-7B-Instruct``) and Qwen3-VL (``Qwen/Qwen3-VL-8B-Instruct``).

Frames are given as decoded arrays; the processor merges each 2 consecutive frames into one temporal patch, so
an even frame count wastes nothing. What differs between the three lives in transformers' model code and reaches
training through the hooks every backend uses: the model's own ``get_rope_index`` (Qwen2.5-VL: temporal positions
scaled by ``second_per_grid_ts``; Qwen3-VL: one temporal index per timestamped frame group, interleaved M-RoPE) gives
the positions, ``get_video_features`` runs the vision tower (Qwen2.5-VL: window attention; Qwen3-VL: deepstack
features, carried per row by :meth:`VideoLM.mm_encoder_outputs`). One backend serves the three.

Qwen3-VL's processor writes ``<t seconds>`` before each temporal patch of frames. The decoded arrays carry no time,
so it stamps them as consecutive frames at 24 fps (transformers' default without ``video_metadata``:
``<0.0 seconds>``, ``<0.1 seconds>`` ...), not at their times in the source video (README, "Models").
"""

from typing import Any

from savi_plugin.models.backends.base import VideoLM


class Qwen2VLVideoLM(VideoLM):
    family = "qwen2_vl"
    model_types = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
    supports_packing = True

    def processor_kwargs(self) -> dict[str, Any]:
        # Frames are already sampled by read_frames; the processor must not resample them.
        return {"do_sample_frames": False}


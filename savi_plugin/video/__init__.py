"""Video input: decoding (decord / PyAV), frame rules, synthetic videos with ground truth, perturbations."""

from savi_plugin.video.decode import DecodedVideo, VideoDecodeError, read_frames
from savi_plugin.video.sampling import (
    BoundError,
    midpoint_indices,
    select_frames,
    uniform_indices,
)

__all__ = ["BoundError", "DecodedVideo", "VideoDecodeError", "midpoint_indices", "read_frames", "select_frames",
           "uniform_indices"]

"""Video input: decoding (decord / PyAV), synthetic videos with ground truth, perturbations."""

from savi_plugin.video.decode import DecodedVideo, VideoDecodeError, read_frames, uniform_indices

__all__ = ["DecodedVideo", "VideoDecodeError", "read_frames", "uniform_indices"]

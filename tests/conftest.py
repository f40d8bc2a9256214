"""Shared fixtures: tiny real models and real synthetic videos, built once per test session."""

from __future__ import annotations

import os

import pytest

# No test may reach a hub: fail fast instead of hanging on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def synthetic_samples(tmp_path_factory):
    """10 synthetic mp4 videos (two of each task) with their questions."""
    from savi_plugin.video.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), 10, seed=0)


@pytest.fixture(scope="session")
def tiny_llava_onevision(tmp_path_factory):
    """Path of a saved tiny random-weight LLaVA-OneVision with its processor."""
    from savi_plugin.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_llava_onevision"), "llava_onevision", seed=0)


@pytest.fixture(scope="session")
def tiny_qwen2_vl(tmp_path_factory):
    """Path of a saved tiny random-weight Qwen2-VL with its processor."""
    from savi_plugin.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_qwen2_vl"), "qwen2_vl", seed=0)

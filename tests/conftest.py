"""Shared fixtures: tiny real models and real synthetic videos, built once per test session."""

from __future__ import annotations

import os
import sys

import pytest

# No test may reach a hub: fail fast instead of hanging on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# transformers binds its log handler to the sys.stderr of its first log call; made here, that is pytest's
# session-long stream, not the stream of one test's capsys (closed after it: a later warning would print a
# "Logging error" traceback into another test's captured stderr)
import transformers.utils.logging  # noqa: E402

transformers.utils.logging.get_logger("transformers")


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
def tiny_adapter(tmp_path_factory, tiny_llava_onevision):
    """A saved random LoRA adapter of :func:`tiny_llava_onevision` with its ``savi_adapter.json`` (copy it to
    change it)."""
    from tests.builders import trained_adapter

    return trained_adapter(tiny_llava_onevision, tmp_path_factory.mktemp("tiny_adapter") / "adapter")


@pytest.fixture(scope="session")
def tiny_qwen2_vl(tmp_path_factory):
    """Path of a saved tiny random-weight Qwen2-VL with its processor."""
    from savi_plugin.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_qwen2_vl"), "qwen2_vl", seed=0)


@pytest.fixture(scope="session")
def tiny_qwen2_5_vl(tmp_path_factory):
    """Path of a saved tiny random-weight Qwen2.5-VL (windowed vision attention) with its processor."""
    from savi_plugin.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_qwen2_5_vl"), "qwen2_5_vl", seed=0)


@pytest.fixture(scope="session")
def tiny_qwen3_vl(tmp_path_factory):
    """Path of a saved tiny random-weight Qwen3-VL (timestamped frames, deepstack) with its processor."""
    from savi_plugin.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_qwen3_vl"), "qwen3_vl", seed=0)


@pytest.fixture(scope="session")
def tiny_internvl(tmp_path_factory):
    """Path of a saved tiny random-weight InternVL (transformers' format) with its processor."""
    from savi_plugin.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_internvl"), "internvl", seed=0)


@pytest.fixture(scope="session")
def tiny_llava_video(tmp_path_factory):
    """Path of a tiny LLaVA-Video (LLaVA-NeXT layout, a newline per pooled row) converted from the repository's
    LLaVA-NeXT fixture."""
    from savi_plugin.models.llava_next.convert import convert_llava_next
    from tests.builders import LLAVA_NEXT_FIXTURE

    source = LLAVA_NEXT_FIXTURE / "source"
    if not source.is_dir():
        pytest.skip("no LLaVA-NeXT fixture")
    out = tmp_path_factory.mktemp("tiny_llava_video")
    convert_llava_next(str(source), str(out), vision_config=str(source / "siglip_vision_config.json"))
    return out


@pytest.fixture(scope="session")
def response_logprobs():
    """``fn(lm, videos, questions, responses)``: each response's per-token log-probs (end-of-turn included, fp32,
    on the CPU) from the one scoring path, ``savi_plugin.training.scoring.score_responses``."""
    import torch

    from savi_plugin.training.batch import scoring_batch
    from savi_plugin.training.scoring import score_responses

    @torch.no_grad()
    def fn(lm, videos, questions, responses):
        ids = [lm.response_tokens(response)[0] for response in responses]
        batch = scoring_batch(lm, videos, questions, {"response": ids}).to(lm.device)
        stats = score_responses(lm, batch, sides=("response",))["response"]
        return [stats.policy_logps[b, stats.mask[b]].float().cpu() for b in range(len(ids))]

    return fn


@pytest.fixture(autouse=True)
def _restore_environment():
    """Each test sees the environment the session started with: a command run in-process may set launcher
    variables (DeepSpeed's one-process MASTER_ADDR/RANK/WORLD_SIZE), which must not leak into the next test."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)
    # A ZeRO-3 TrainingArguments built in-process (a recipe's dry run) registers itself as transformers' global
    # DeepSpeed config, held by a weak reference until garbage collection; a later test's from_pretrained would
    # then build its model under deepspeed.zero.Init, which reads the LOCAL_RANK just removed above.
    hf_deepspeed = sys.modules.get("transformers.integrations.deepspeed")
    if hf_deepspeed is not None:
        hf_deepspeed.unset_hf_deepspeed_config()
    # The one-process group such a TrainingArguments starts (rank 0 of 1) outlives the variables removed above; a
    # later test would see an initialised group and take it for a launcher's rendezvous.
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@pytest.fixture(scope="session", autouse=True)
def _no_deepspeed_segments_left():
    """DeepSpeed's CPU allreduce segments (66 MB each, RAM-backed ``/dev/shm``) that a test's failing or killed
    multi-process run could not unlink (``savi train`` unlinks them when a run ends:
    :func:`savi_plugin.training.distributed.release_deepspeed_shm`) are removed when the session ends, so repeated
    runs on one machine do not fill its memory."""
    from pathlib import Path

    pattern = f"deepspeed_allreduce_buffer_{os.getuid()}_*"
    before = set(Path("/dev/shm").glob(pattern))
    yield
    for segment in set(Path("/dev/shm").glob(pattern)) - before:
        segment.unlink(missing_ok=True)

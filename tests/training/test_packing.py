"""Shared-prefix packing: the block mask and positions, packed == unpacked log-probs, vision once per pair."""

from __future__ import annotations

import logging

import pytest
import torch

from savi_plugin.training.packing import block_attention_mask, restart_rejected_positions
from tests.builders import UNEVEN_PAIR, full_logits_logprobs, random_lora_backend, write_answer_pairs


def test_block_mask_semantics():
    # one packed row (P=3, C=2, R=2) padded to 9, one unpacked row (P=2, C=3)
    mask = block_attention_mask(torch.tensor([[3, 2, 2], [2, 3, 0]]), 9)[:, 0]
    packed = mask[0]
    # prefix and chosen: plain causal
    for q in range(5):
        assert packed[q, :q + 1].all() and not packed[q, q + 1:].any()
    # rejected (positions 5, 6): the prefix and earlier rejected tokens, never the chosen block
    assert packed[5].tolist() == [1, 1, 1, 0, 0, 1, 0, 0, 0]
    assert packed[6].tolist() == [1, 1, 1, 0, 0, 1, 1, 0, 0]
    # padding queries see only themselves (no empty softmax rows)
    assert packed[7].tolist() == [0] * 7 + [1, 0] and packed[8].tolist() == [0] * 8 + [1]
    unpacked = mask[1]
    for q in range(5):
        assert unpacked[q, :q + 1].all() and not unpacked[q, q + 1:].any()


def test_rejected_positions_restart_after_prefix():
    positions = torch.arange(9).view(1, 9)
    out = restart_rejected_positions(positions, torch.tensor([[3, 2, 3]]))
    assert out.tolist() == [[0, 1, 2, 3, 4, 3, 4, 5, 8]]
    mrope = torch.arange(9).view(1, 1, 9).expand(3, 1, 9)  # [axes, rows, L]
    assert restart_rejected_positions(mrope, torch.tensor([[3, 2, 3]]))[:, 0, 5].tolist() == [3, 3, 3]


@pytest.mark.parametrize("family,attention", [("llava_onevision", "sdpa"), ("llava_onevision", "eager"),
                                              ("qwen2_vl", "sdpa"), ("llava_video", "sdpa"),
                                              ("qwen2_5_vl", "sdpa"), ("qwen3_vl", "sdpa"), ("internvl", "sdpa")])
def test_packed_equals_unpacked_and_the_backends_own_logprobs(family, attention, request, synthetic_samples, tmp_path):
    from savi_plugin.training.collator import PreferenceCollator
    from savi_plugin.training.dataset import PreferenceDataset
    from savi_plugin.training.scoring import score_responses
    from savi_plugin.video import read_frames

    backend = random_lora_backend(request.getfixturevalue(f"tiny_{family}"), attn_implementation=attention)
    data = write_answer_pairs(tmp_path / "pairs.jsonl", synthetic_samples[:3], **UNEVEN_PAIR)
    dataset = PreferenceDataset(data, backend.tokenizer, backend.end_of_turn, require_tags=True)
    items = [dataset[i] for i in range(3)]
    stats = {}
    for packed in (True, False):
        batch = PreferenceCollator(backend, num_frames=4, packing=packed)(items)
        assert batch.prompt.input_ids.shape[0] == (3 if packed else 6)
        with torch.no_grad():
            stats[packed] = score_responses(backend, batch, reference="adapter", kl_sides=("chosen",))
    for side in ("chosen", "rejected"):
        a, b = getattr(stats[True], side), getattr(stats[False], side)
        assert torch.equal(a.mask, b.mask)
        torch.testing.assert_close(a.policy_logps, b.policy_logps, atol=1e-4, rtol=0)
        torch.testing.assert_close(a.reference_logps, b.reference_logps, atol=1e-4, rtol=0)
        # the adapter is random, so the comparison is not between two copies of the same numbers
        assert (a.policy_logps - a.reference_logps).abs().max() > 1e-2
    torch.testing.assert_close(stats[True].chosen.kl, stats[False].chosen.kl, atol=1e-5, rtol=0)

    # An independent path: the backend's own encode + the model's full forward (logits everywhere), one sequence
    # per response.
    videos = [read_frames(item.video_path, 4).frames for item in items]
    questions = [item.record.question for item in items]
    for side in ("chosen", "rejected"):
        own = full_logits_logprobs(backend, videos, questions, [getattr(i.record, side) for i in items])
        ours = getattr(stats[True], side)
        for b, expected in enumerate(own):
            n = int(ours.mask[b].sum())
            assert n == len(expected)
            torch.testing.assert_close(ours.policy_logps[b, :n], expected, atol=1e-4, rtol=0)


def test_vision_encoder_runs_once_per_pair(tiny_llava_onevision, synthetic_samples, tmp_path):
    from savi_plugin.training.collator import PreferenceCollator
    from savi_plugin.training.dataset import PreferenceDataset
    from savi_plugin.training.scoring import score_responses

    backend = random_lora_backend(tiny_llava_onevision, attn_implementation="sdpa")
    data = write_answer_pairs(tmp_path / "p.jsonl", synthetic_samples[:3], **UNEVEN_PAIR)
    dataset = PreferenceDataset(data, backend.tokenizer, backend.end_of_turn, require_tags=True)
    calls = []
    tower = backend.decoder().vision_tower
    handle = tower.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    try:
        for packed, checkpointing in ((True, False), (False, False), (True, True)):
            calls.clear()
            if checkpointing:  # transformers then makes every input embedding require grad
                backend.model.gradient_checkpointing_enable()
                backend.model.enable_input_require_grads()
            collator = PreferenceCollator(backend, num_frames=4, packing=packed)
            batch = collator([dataset[i] for i in range(3)])
            assert collator.videos_decoded == 3  # each video decoded once per pair
            # policy (with grad) + reference pass
            stats = score_responses(backend, batch, reference="adapter", kl_sides=("chosen",))
            # one vision call for the batch, 3 pairs x 4 frames, shared by chosen, rejected and the reference
            assert calls == [12] and stats.vision_calls == 1
            assert not any(p.grad is not None for p in tower.parameters())
            stats.chosen.policy_logps.sum().backward()
            assert all(p.grad is None for p in tower.parameters())  # no backward through the frozen tower
    finally:
        handle.remove()


def test_trainer_falls_back_to_unpacked_where_the_mask_cannot_go(tiny_llava_onevision, synthetic_samples,
                                                                 tmp_path, caplog):
    from savi_plugin.training.config import PreferenceConfig
    from savi_plugin.training.trainer import PreferenceTrainer

    backend = random_lora_backend(tiny_llava_onevision, attn_implementation="sdpa")
    text_config = backend.model.config.get_text_config()
    text_config._attn_implementation = "flex_attention"  # only inspected, never run: cannot pack
    data = write_answer_pairs(tmp_path / "p.jsonl", synthetic_samples[:2], **UNEVEN_PAIR)
    try:
        args = PreferenceConfig(output_dir=str(tmp_path / "out"), loss_type="dpo", num_frames=4, use_cpu=True)
        with caplog.at_level(logging.WARNING, logger="savi_plugin.training.trainer"):
            trainer = PreferenceTrainer(backend, args, train_dataset=str(data))
    finally:
        text_config._attn_implementation = "sdpa"
    assert trainer.packing is False and trainer.data_collator.packing is False
    messages = [r.getMessage() for r in caplog.records if "packing is off" in r.getMessage()]
    assert len(messages) == 1 and "flex_attention" in messages[0]

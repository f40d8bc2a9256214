"""Reference modes: disabled adapter (default), separate frozen model, precomputed statistics (exact and top-k)."""

from __future__ import annotations

import json

import pytest
import torch

from savi_plugin.data import DataError
from tests.builders import lora_policy, random_lora_backend, write_answer_pairs


@pytest.fixture(scope="module")
def setup(tiny_llava_onevision, synthetic_samples, tmp_path_factory):
    """A policy with a random (non-zero) LoRA adapter, its data, and the adapter-mode statistics."""
    from savi_plugin.training.collator import PreferenceCollator
    from savi_plugin.training.dataset import PreferenceDataset
    from savi_plugin.training.scoring import score_responses

    root = tmp_path_factory.mktemp("reference")
    data = write_answer_pairs(root / "pairs.jsonl", synthetic_samples[:4], chosen="The answer is {}, clearly.",
                              rejected="It is {}.")
    policy = random_lora_backend(tiny_llava_onevision, r=8, alpha=32, seed=5)
    dataset = PreferenceDataset(data, policy.tokenizer, policy.end_of_turn, require_tags=True)
    items = [dataset[i] for i in range(len(dataset))]
    with torch.no_grad():
        adapter = score_responses(policy, PreferenceCollator(policy, num_frames=4)(items), reference="adapter",
                                  kl_sides=("chosen",))
    return {"policy": policy, "data": data, "items": items, "adapter": adapter, "model": tiny_llava_onevision}


def _close(a, b, tol=1e-5):
    for side in ("chosen", "rejected"):
        x, y = getattr(a, side), getattr(b, side)
        torch.testing.assert_close(x.policy_logps, y.policy_logps, atol=tol, rtol=0)
        torch.testing.assert_close(x.reference_logps, y.reference_logps, atol=tol, rtol=0)
    torch.testing.assert_close(a.chosen.kl, b.chosen.kl, atol=tol, rtol=0)


def test_separate_reference_model_equals_the_disabled_adapter(setup):
    from savi_plugin.training.collator import PreferenceCollator
    from savi_plugin.training.scoring import score_responses
    from savi_plugin.training.reference import load_reference_backend

    reference = load_reference_backend(setup["model"], num_frames=4)
    assert not any(p.requires_grad for p in reference.model.parameters())
    batch = PreferenceCollator(setup["policy"], num_frames=4)(setup["items"])
    with torch.no_grad():
        separate = score_responses(setup["policy"], batch, reference="model", reference_backend=reference,
                                   kl_sides=("chosen",))
    _close(separate, setup["adapter"])
    assert setup["adapter"].vision_calls == 1 and separate.vision_calls == 2  # its own vision weights
    assert (setup["adapter"].chosen.kl * setup["adapter"].chosen.mask).sum() > 1e-3  # policy != reference


def test_precomputed_full_distribution_is_exact(setup, tmp_path):
    from savi_plugin.training.collator import PreferenceCollator
    from savi_plugin.training.scoring import score_responses
    from savi_plugin.training.reference import ReferenceStore, precompute_reference

    path = precompute_reference(setup["model"], setup["data"], output=tmp_path / "ref.safetensors", kl="full",
                                num_frames=4, batch_size=3)
    store = ReferenceStore(path)
    assert store.kl == "full" and store.meta["pairs"] == 4
    batch = PreferenceCollator(setup["policy"], num_frames=4, reference_store=store)(setup["items"])
    vocab = len(setup["policy"].tokenizer)
    assert batch["reference_chosen_full"].shape[-1] == vocab
    with torch.no_grad():
        stored = score_responses(setup["policy"], batch, reference="precomputed", kl_sides=("chosen",))
    _close(stored, setup["adapter"])
    assert stored.vision_calls == 1


def test_precomputed_topk_kl_is_a_lower_bound_whose_error_shrinks_with_k(setup, tmp_path, capsys):
    """Measures the top-k KL approximation error on the tiny model (reported in the README/report)."""
    from savi_plugin.training.collator import PreferenceCollator
    from savi_plugin.training.scoring import score_responses
    from savi_plugin.training.reference import ReferenceStore, precompute_reference

    adapter = setup["adapter"]
    exact = (adapter.chosen.kl * adapter.chosen.mask).sum(-1)
    vocab = len(setup["policy"].tokenizer)
    errors = {}
    for k in (8, 64, 256, vocab):
        path = precompute_reference(setup["model"], setup["data"], output=tmp_path / f"top{k}.safetensors",
                                    kl="topk", top_k=k, num_frames=4)
        store = ReferenceStore(path)
        tail = store.meta["topk_tail_mass"]["mean"]  # what the file says the approximation ignores
        assert (tail < 1e-6) if k == vocab else (tail > 0.05)
        batch = PreferenceCollator(setup["policy"], num_frames=4, reference_store=store)(setup["items"])
        with torch.no_grad():
            approx = score_responses(setup["policy"], batch, reference="precomputed", kl_sides=("chosen",))
        # the reward inputs are exact whatever k is
        torch.testing.assert_close(approx.chosen.reference_logps, adapter.chosen.reference_logps, atol=1e-5, rtol=0)
        token_exact, token_approx = adapter.chosen.kl[adapter.chosen.mask], approx.chosen.kl[adapter.chosen.mask]
        assert (token_approx <= token_exact + 1e-5).all()  # coarsening never increases the KL
        summed = (approx.chosen.kl * approx.chosen.mask).sum(-1)
        errors[k] = ((exact - summed).abs() / exact).mean().item()
    assert errors[vocab] < 1e-4
    assert errors[8] >= errors[64] >= errors[256] >= errors[vocab] - 1e-6
    with capsys.disabled():
        print("\ntop-k KL relative error (tiny model, vocab %d): %s" % (
            vocab, ", ".join(f"k={k}: {e:.3f}" for k, e in errors.items())))


def test_training_with_a_precomputed_reference(setup, tmp_path):
    from savi_plugin.training.config import PreferenceConfig
    from savi_plugin.training.reference import default_reference_path, precompute_reference
    from savi_plugin.training.trainer import DPOTrainer, RRPOTrainer

    data = tmp_path / "pairs.jsonl"
    data.write_text(setup["data"].read_text())
    written = precompute_reference(setup["model"], data, kl="topk", top_k=32, num_frames=4)
    assert written == default_reference_path(data) == tmp_path / "pairs.reference.safetensors"

    def config(**kw):
        return PreferenceConfig(output_dir=str(tmp_path / "out"), reference="precomputed", num_frames=4,
                                per_device_train_batch_size=2, max_steps=2, logging_steps=1, learning_rate=5e-3,
                                use_cpu=True, save_strategy="no", disable_tqdm=True, **kw)

    backend = lora_policy(setup["model"], r=4, alpha=8)
    trainer = RRPOTrainer(backend, config(), train_dataset=str(data))
    trainer.train()
    logged = [h for h in trainer.state.log_history if "rewards/chosen" in h]
    assert logged[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-5)  # stored reference == initial policy
    assert logged[0]["kl/chosen"] == pytest.approx(0.0, abs=1e-5) and logged[1]["kl/chosen"] > 0

    # log-probs only: fine for DPO, a clear error for RRPO's KL term
    only_logps = precompute_reference(setup["model"], data, output=tmp_path / "logps.safetensors", kl="none",
                                      num_frames=4)
    dpo = DPOTrainer(backend, config(reference_path=str(only_logps)), train_dataset=str(data))
    dpo.train()
    with pytest.raises(ValueError, match="needs the chosen-token KL"):  # refused before any step runs
        RRPOTrainer(backend, config(reference_path=str(only_logps)), train_dataset=str(data))


def test_precomputed_statistics_must_match_the_tokens(setup, tmp_path):
    from savi_plugin.training.collator import PreferenceCollator
    from savi_plugin.training.dataset import PreferenceDataset
    from savi_plugin.training.reference import ReferenceStore, precompute_reference

    path = precompute_reference(setup["model"], setup["data"], output=tmp_path / "ref.safetensors", kl="none",
                                num_frames=4)
    changed = tmp_path / "changed.jsonl"
    lines = setup["data"].read_text().splitlines()
    first = json.loads(lines[0])
    first["chosen"] = first["chosen"].replace("clearly", "surely")
    first["chosen_tagged"] = first["chosen_tagged"].replace("clearly", "surely")
    changed.write_text("\n".join([json.dumps(first)] + lines[1:]) + "\n")
    policy = setup["policy"]
    dataset = PreferenceDataset(changed, policy.tokenizer, policy.end_of_turn)
    collator = PreferenceCollator(policy, num_frames=4, reference_store=ReferenceStore(path))
    with pytest.raises(DataError, match=r"changed\.jsonl:1:chosen: .*computed for other tokens"):
        collator([dataset[0]])
    collator([dataset[1]])  # unchanged pairs are fine


def test_a_separate_reference_is_placed_where_the_policy_and_batches_are(setup, tmp_path, monkeypatch):
    """The reference is loaded while the policy is still on the CPU; the Trainer then places the policy on
    ``args.device``. Here that device is ``meta`` (a stand-in for a GPU on a CPU-only machine): the reference
    must follow the policy there, not stay on the CPU."""
    from savi_plugin.training.config import PreferenceConfig
    from savi_plugin.training.trainer import DPOTrainer
    from tests.builders import preference_config, random_lora_backend

    policy = random_lora_backend(setup["model"], seed=1)
    config = preference_config(tmp_path, reference="model", reference_model_path=str(setup["model"]))
    monkeypatch.setattr(PreferenceConfig, "device", property(lambda self: torch.device("meta")))
    trainer = DPOTrainer(policy, config, train_dataset=str(setup["data"]))
    assert {p.device.type for p in trainer.model.parameters()} == {"meta"}  # the Trainer placed the policy
    assert {p.device.type for p in trainer.reference_backend.model.parameters()} == {"meta"}

"""Reference modes: the disabled adapter (default) and a separate frozen model give the same statistics."""

from __future__ import annotations


import pytest
import torch

from tests.builders import random_lora_backend, write_answer_pairs


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
    from savi_plugin.training.trainer import load_reference_backend

    reference = load_reference_backend(setup["model"], num_frames=4)
    assert not any(p.requires_grad for p in reference.model.parameters())
    batch = PreferenceCollator(setup["policy"], num_frames=4)(setup["items"])
    with torch.no_grad():
        separate = score_responses(setup["policy"], batch, reference="model", reference_backend=reference,
                                   kl_sides=("chosen",))
    _close(separate, setup["adapter"])
    assert setup["adapter"].vision_calls == 1 and separate.vision_calls == 2  # its own vision weights
    assert (setup["adapter"].chosen.kl * setup["adapter"].chosen.mask).sum() > 1e-3  # policy != reference


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


def test_a_reference_of_another_tokenizer_is_a_configuration_error_naming_the_key(setup, tiny_internvl):
    """Red team 9 #10: README gives exit status 2 to a configuration error; this one ended with 1."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from savi_plugin.errors import ConfigurationError
    from savi_plugin.training.trainer import _check_same_tokenizer

    other = SimpleNamespace(tokenizer=AutoTokenizer.from_pretrained(tiny_internvl))
    assert other.tokenizer.get_vocab() != setup["policy"].tokenizer.get_vocab()
    with pytest.raises(ConfigurationError, match=r"^ref: train\.reference_model_path: .*tokenizer differs") as info:
        _check_same_tokenizer(setup["policy"], other, "ref")
    assert info.value.exit_code == 2
    _check_same_tokenizer(setup["policy"], SimpleNamespace(tokenizer=setup["policy"].tokenizer), "ref")  # same: fine


def test_a_reference_that_is_no_model_checkpoint_is_a_configuration_error(setup, tmp_path):
    """An adapter folder or a missing path as ``train.reference_model_path`` is exit status 2 naming the key (red
    team pass 10, A27/A28: exit 1 with a FileNotFoundError and advice meant for hub ids); a model folder and a
    hub id pass to the loader."""
    from savi_plugin.errors import ConfigurationError
    from savi_plugin.training.trainer import _check_reference_path

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    for path, why in [(adapter, "a LoRA adapter folder, not a model"), (tmp_path / "nowhere", "no such file or folder"),
                      (tmp_path, "is a folder without config.json, not a model folder"),
                      (tmp_path / "file", "is a file, not a model folder"),
                      (tmp_path / "empty", "is an empty folder, not a model folder")]:
        with pytest.raises(ConfigurationError, match=rf"^train\.reference_model_path: .*{why}") as info:
            _check_reference_path(str(path))
        assert info.value.exit_code == 2
    _check_reference_path(setup["model"])
    _check_reference_path("org/some-model")  # a hub id: the loader's to judge

"""The backend owns its family: a family registered from outside the package decides packing, video features,
positions and the LoRA targets through ``VideoLM`` alone; the training code needs no edit."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from tests.builders import write_jsonl


@pytest.fixture()
def throwaway_family(tmp_path, monkeypatch):
    """A throw-away distribution on sys.path registering two backends for the tiny LLaVA-OneVision checkpoint:
    one that does not declare packed rows and one that does (the family's own verified flag)."""
    (tmp_path / "toy_family.py").write_text(textwrap.dedent('''
        from savi_plugin.models.backends.base import VideoLM


        class ToyVideoLM(VideoLM):
            family = "toy"
            model_types = ("toy_never_detected",)


        class ToyPackedVideoLM(ToyVideoLM):
            family = "toy_packed"
            supports_packing = True
    '''))
    info = tmp_path / "toy_family-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-family\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[savi_plugin.backends]\ntoy = toy_family:ToyVideoLM\n"
                                           "toy_packed = toy_family:ToyPackedVideoLM\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "toy_family", raising=False)


def test_a_family_from_outside_the_package_trains_through_its_backend(throwaway_family, tiny_llava_onevision,
                                                                      synthetic_samples, tmp_path):
    from savi_plugin.models import load_backend
    from savi_plugin.training.collator import PreferenceCollator
    from savi_plugin.training.dataset import PreferenceDataset
    from savi_plugin.training.packing import packing_support
    from savi_plugin.training.run import apply_lora
    from savi_plugin.training.scoring import score_responses

    path = tmp_path / "pairs.jsonl"
    records = [{"id": f"p{i}", "video": s.video, "question": s.question, "chosen": s.answer, "rejected": "none"}
               for i, s in enumerate(synthetic_samples[:2])]
    write_jsonl(path, records)
    scores = {}
    for name in ("toy", "toy_packed"):
        backend = load_backend(tiny_llava_onevision, name, num_frames=4)
        assert backend.family == name
        supported, why = packing_support(backend)
        assert supported == (name == "toy_packed")
        assert supported or "VideoLM.supports_packing" in why
        # LoRA goes where the backend says: every linear layer of its language model, nothing else
        apply_lora(backend, {"r": 4, "alpha": 8, "dropout": 0.0}, seed=0)
        lora = [n for n, p in backend.model.named_parameters() if p.requires_grad]
        assert lora and all("language_model" in n for n in lora)
        dataset = PreferenceDataset(path, backend.tokenizer, backend.end_of_turn)
        batch = PreferenceCollator(backend, num_frames=4, packing=supported)([dataset[0], dataset[1]])
        assert batch.prompt.input_ids.shape[0] == (2 if supported else 4)
        with torch.no_grad():
            scores[name] = score_responses(backend, batch, reference="adapter", kl_sides=("chosen",))
    for side in ("chosen", "rejected"):  # packed (one family) == unpacked (the other): the same model underneath
        torch.testing.assert_close(scores["toy"][side].policy_logps, scores["toy_packed"][side].policy_logps,
                                   atol=1e-4, rtol=0)


def test_a_plugin_backend_serving_a_built_in_model_type_is_never_picked_by_name_order(tiny_llava_onevision, tmp_path,
                                                                                       monkeypatch):
    """Pass 26 O #41: detection took the first backend, in name order, that served the checkpoint's model_type, so a
    plugin's ``aaa`` backend declaring ``llava_onevision`` would silently replace the built-in one (one named
    ``myfam`` lost only by its name). Two backends serving one model_type are refused by name, and naming one
    chooses it."""
    from savi_plugin.models import detect_backend
    from tests.builders import install_distribution

    install_distribution(tmp_path / "site", monkeypatch, "twin", {"twin.py": '''
        from savi_plugin.api import load
        class Twin(load("savi_plugin.backends", "llava_onevision")):
            family = "twin"
    '''}, {"savi_plugin.backends": {"aaa_twin": "twin:Twin"}})
    with pytest.raises(ValueError, match=r"served by several backends \(aaa_twin, llava_onevision\)"):
        detect_backend(tiny_llava_onevision)

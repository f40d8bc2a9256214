"""``run_training`` keeps one identity for its inputs from start to end (:mod:`savi_plugin.training.run`).

A real tiny ``savi train`` run, in-process through ``main(argv)``, with a file of its inputs changed at the
boundaries of the run: the base model's weights written over after the load (the adapter records the base it
was trained on), before the load ends (refused, nothing marked), and a video the pairs name copied over while it
trains (the run stops naming it).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil

import pytest
import yaml

import savi_plugin.training.run as run_module
from savi_plugin.cli import main
from savi_plugin.data.identity import ADAPTER_FILE, IdentityMismatchError, check_adapter, model_identity
from savi_plugin.data.outputs import read_mark
from tests.builders import tiny_rrpo_files


@pytest.fixture()
def world(tmp_path, tiny_llava_onevision, synthetic_samples):
    """A copy of the tiny model (``mtr``), two pairs over copies of two videos, and the ``savi train`` argv."""
    model = tmp_path / "mtr"
    shutil.copytree(tiny_llava_onevision, model)
    samples = []
    for i, sample in enumerate(synthetic_samples[:2]):
        shutil.copyfile(sample.video, tmp_path / f"v{i}.mp4")
        samples.append(dataclasses.replace(sample, video=str(tmp_path / f"v{i}.mp4")))
    pairs, recipe = tiny_rrpo_files(tmp_path, model, samples, max_steps=2)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    argv = ["train", str(tmp_path / "r.yaml"), "--model", str(model), "--data", str(pairs),
            "--output-dir", str(tmp_path / "out")]
    return model, samples, argv, tmp_path / "out"


def _flip_a_weight_byte(model):
    """``dd conv=notrunc`` of other bytes into the weights: same size, same place, other content."""
    weights = min(model.glob("*.safetensors"))
    with open(weights, "r+b") as fh:
        fh.seek(-1, os.SEEK_END)
        last = fh.read(1)
        fh.seek(-1, os.SEEK_END)
        fh.write(bytes([last[0] ^ 1]))
    return weights.name


def test_an_adapter_records_the_base_it_was_trained_on_when_the_weights_are_replaced_during_the_run(
        world, tiny_llava_onevision, monkeypatch, caplog):
    """Pass 13 A #2: the base's weights written over while it trained; the adapter's record was read from disk
    at the save, so the adapter was refused on the base it was trained on and accepted on the replaced one."""
    model, _, argv, out = world
    apply_lora, swapped = run_module.apply_lora, []

    def swap_after_the_load(policy, *args, **kwargs):  # the weights are loaded (they own their memory)
        swapped.append(_flip_a_weight_byte(model))
        return apply_lora(policy, *args, **kwargs)

    monkeypatch.setattr(run_module, "apply_lora", swap_after_the_load)
    with caplog.at_level(logging.WARNING, logger="savi_plugin.training.run"):
        assert main(argv) == 0
    assert (f"{model}: the base model's files changed on disk while the run trained ({swapped[0]}); the adapter "
            f"records the base as it was loaded") in caplog.text
    recorded = json.loads((out / ADAPTER_FILE).read_text())["base_identity"]
    assert recorded["sha256"] == model_identity(tiny_llava_onevision)["sha256"]  # the weights it trained on
    assert recorded == read_mark(out, True)["config"]["identity"]["model"]  # one identity, in the mark and record
    check_adapter(out, tiny_llava_onevision)  # the base it was trained on: accepted
    with pytest.raises(IdentityMismatchError, match=f"whose files have changed since.*{swapped[0]} changed"):
        check_adapter(out, model)  # the replaced weights: refused


def test_weights_replaced_before_the_load_ends_are_refused_and_leave_nothing_marked(world, monkeypatch, capsys):
    import savi_plugin.models as models

    model, _, argv, out = world
    load = models.load_backend

    def swap_then_load(*args, **kwargs):
        _flip_a_weight_byte(model)
        return load(*args, **kwargs)

    monkeypatch.setattr(models, "load_backend", swap_then_load)
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert err == [f"error: {model}: the model's files changed while this job loaded it (model.safetensors); the "
                   f"run would train other weights than it records, so nothing was trained: re-run the command once "
                   f"the model is no longer being changed"]
    assert read_mark(out, True) is None


def test_a_video_copied_over_while_the_run_trains_stops_it_naming_the_video(world, monkeypatch, capsys):
    _, samples, argv, out = world
    apply_lora = run_module.apply_lora

    def swap_after_the_load(policy, *args, **kwargs):  # before the first step decodes a video
        shutil.copyfile(samples[0].video, samples[1].video)
        return apply_lora(policy, *args, **kwargs)

    monkeypatch.setattr(run_module, "apply_lora", swap_after_the_load)
    assert main(argv) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and err[0].startswith(f"error: {samples[1].video}: a video the pairs name was written to "
                                               f"while the job runs; its identity was taken at start"), err
    assert err[0].endswith("held no result yet and was removed); re-run the command"), err  # replay 14 A #7
    assert not (out / "adapter_model.safetensors").exists() and not (out / "train_report.json").exists()

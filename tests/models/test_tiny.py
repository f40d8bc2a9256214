"""A tiny model folder is published whole (one rename) and a half-written one is rebuilt, never loaded."""

from __future__ import annotations

import json

import pytest


def test_a_demo_rerun_rebuilds_a_tiny_model_a_kill_left_half_written(tmp_path, monkeypatch):
    """Red team 9 #19: SIGKILL while the demo saved its tiny model left config.json alone in models/tiny; every
    re-run then failed on the missing processor with Hugging Face hub advice. Now the folder appears by one
    rename with its mark written last, and a folder without the mark (an older build's part, or a temporary a
    killed build left beside it) is removed and built again."""
    from savi_plugin.demo import run
    from savi_plugin.models.tiny import TINY_MARK, resolve_model_path

    built = []
    monkeypatch.setattr(run, "_run", lambda cfg, demo, out, *rest: built.append(
        resolve_model_path(cfg.model.path, out, seed=cfg.seed)) or {})
    run.run_demo(tmp_path / "demo", "tiny_demo")
    tiny = tmp_path / "demo" / "models" / "tiny"
    assert (tiny / TINY_MARK).is_file() and (tiny / "tokenizer.json").is_file()
    assert not [p.name for p in tiny.parent.iterdir() if p.name.endswith(".tmp")]

    # what a kill left: a part of the model without the mark, and a temporary folder of a process that is gone
    config = (tiny / "config.json").read_text()
    for child in tiny.iterdir():
        child.unlink()
    (tiny / "config.json").write_text(config)
    stale = tiny.parent / ".tiny.4199999.0badc0de.tmp"
    stale.mkdir()
    (stale / "config.json").write_text(config)

    run.run_demo(tmp_path / "demo", "tiny_demo")  # the same command: rebuilt, not refused
    assert json.loads((tiny / TINY_MARK).read_text())["family"] == "llava_onevision"
    assert (tiny / "model.safetensors").is_file() and (tiny / "tokenizer.json").is_file()
    assert not stale.exists()

    from transformers import AutoProcessor

    assert AutoProcessor.from_pretrained(tiny).tokenizer is not None


def test_build_tiny_model_does_not_replace_a_folder_holding_other_files(tmp_path):
    from savi_plugin.models.tiny import build_tiny_model

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.md").write_text("keep me")
    with pytest.raises(ValueError, match="not a finished tiny model"):
        build_tiny_model(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.md").read_text() == "keep me"

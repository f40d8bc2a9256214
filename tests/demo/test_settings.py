"""The demo's own settings are ``savi demo``'s ``demo.*`` arguments, checked like recipe keys; the recipe it runs is
an ordinary one, and a recipe that holds a demo-only key is refused in one line naming the key path."""

from __future__ import annotations

import dataclasses

import pytest

from savi_plugin.cli import main
from savi_plugin.config.sections import DataSection, Recipe
from savi_plugin.config.values import ConfigError
from savi_plugin.demo.settings import DemoSettings, load_settings, split_overrides
from savi_plugin.recipe import load_recipe


def test_settings_are_the_defaults_with_the_demo_arguments_applied():
    assert load_settings() == DemoSettings()
    assert (DemoSettings().warmup_videos, DemoSettings().align_videos, DemoSettings().heldout_videos) == (200, 400, 400)
    s = load_settings(["demo.warmup_steps=60", "demo.compare_dpo=false", "demo={heldout_videos: 8}"])
    assert (s.warmup_steps, s.compare_dpo, s.heldout_videos, s.align_videos) == (60, False, 8, 400)
    own, rest = split_overrides(["demo.warmup_lr=0.1", "train.seed=3", "demo_x.y=1", "generate.seed=3"])
    assert own == ["demo.warmup_lr=0.1"] and rest == ["train.seed=3", "demo_x.y=1", "generate.seed=3"]
    with pytest.raises(ConfigError) as exc:
        load_settings(["demo.warmup_steps=10", "demo.warmup_lr=0"])
    assert str(exc.value) == "override 'demo.warmup_lr=0': demo.warmup_lr: must be > 0, got 0.0"


def test_the_core_recipe_has_no_demo_keys():
    assert "demo" not in {f.name for f in dataclasses.fields(Recipe)}
    assert not [f.name for f in dataclasses.fields(DataSection) if "synthetic" in f.name]
    recipe = load_recipe("tiny_demo")  # the demo's recipe loads like any other
    assert recipe.model.path == "tiny://llava_onevision" and recipe.data.qa is None


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("argv, line", [
    (["demo.warmup_lr=0"], "error: override 'demo.warmup_lr=0': demo.warmup_lr: must be > 0, got 0.0"),
    (["demo.warmup_videos=x"], "error: override 'demo.warmup_videos=x': demo.warmup_videos: expected int"),
    (["demo.warmup_lr=.inf"], "error: override 'demo.warmup_lr=.inf': demo.warmup_lr: must be a finite number"),
    ([f"demo.align_videos={10**30}"], f"error: override 'demo.align_videos={10**30}': demo.align_videos: must be "
                                      ">= 1 and <= 10000, got"),
    (["demo.eval_questions=5"], "error: override 'demo.eval_questions=5': demo.eval_questions: unknown key"),
    (["data.synthetic_videos=4"], "error: override 'data.synthetic_videos=4': data.synthetic_videos: unknown key"),
    (["--seeds", "2", "demo.warmup_steps=-1"], "error: override 'demo.warmup_steps=-1': demo.warmup_steps: "
                                                "must be >= 1 and <= 100000, got -1"),
    # a per-field maximum below the shared ceiling: 10^8 videos would be ~400 GB of mp4 files
    (["demo.warmup_videos=100000000"], "error: override 'demo.warmup_videos=100000000': demo.warmup_videos: "
                                       "must be >= 1 and <= 10000, got 100000000"),
    # pass 18 B #23: every item was too_few_frames and the demo ended after its warm-up blaming the model
    (["model.num_frames=715827882"], "error: override 'model.num_frames=715827882': model.num_frames: 715827882 is "
                                     "more than the 16 frames of each clip the demo draws"),
    (["--seeds", "2", "model.num_frames=17"], "error: override 'model.num_frames=17': model.num_frames: 17 is more"),
])
def test_a_bad_demo_argument_is_one_line_before_anything_is_written(argv, line, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "run"), *argv]) == 2
    assert _one_line(capsys).startswith(line)
    assert not (tmp_path / "run").exists()


def _counts():
    return [f.name for f in dataclasses.fields(DemoSettings) if f.type in (int, "int")]


@pytest.mark.parametrize("name", _counts())
def test_every_demo_count_of_zero_is_refused_before_anything_is_written(name, tmp_path, capsys):
    """``demo.warmup_steps=0`` passed the value check, built the videos and the model, then ended in an IndexError
    with the folder kept, so the corrected command was refused as another configuration (red team 23, row 14):
    every count of the demo is at least 1, checked before the claim."""
    assert main(["demo", "--out", str(tmp_path / "run"), f"demo.{name}=0"]) == 2
    assert _one_line(capsys).startswith(f"error: override 'demo.{name}=0': demo.{name}: must be >= 1")
    assert not (tmp_path / "run").exists()


def test_a_recipe_with_a_demo_section_is_refused_naming_the_key(tmp_path, capsys):
    recipe = tmp_path / "my.yaml"
    recipe.write_text("extends: tiny_demo\ndemo:\n  warmup_steps: 10\n")
    assert main(["demo", "--recipe", str(recipe), "--out", str(tmp_path / "run")]) == 2
    assert _one_line(capsys).startswith(f"error: {recipe}: demo: unknown key")
    assert not (tmp_path / "run").exists()

"""Every shipped recipe loads, validates and builds its trainer config; bad recipes name the key path."""

import subprocess
import sys

import pytest

from savi_plugin.pipeline.steps import training_kwargs
from savi_plugin.recipe import RecipeError, list_recipes, load_recipe

PAPER = {"llava_video_7b_rrpo_16f": 16, "llava_video_7b_rrpo_32f": 32}


def test_shipped_recipes_are_the_papers_settings():
    names = list_recipes()
    for required in ("llava_video_7b_rrpo_16f", "llava_video_7b_rrpo_32f", "llava_video_7b_dpo",
                     "llava_onevision_7b_videosavi", "llava_onevision_0.5b_videosavi", "qwen2_vl_7b_rrpo", "tiny_demo",
                     "internvl2_5_8b_videosavi", "internvl2_5_1b_videosavi", "qwen2_5_vl_7b_rrpo", "qwen3_vl_8b_rrpo"):
        assert required in names
    for name, frames in PAPER.items():
        r = load_recipe(name)
        assert r.model.num_frames == frames
        assert (r.lora.r, r.lora.alpha) == (128, 256)
        t = r.train
        assert (t["loss_type"], t["beta"], t["alpha"], t["learning_rate"]) == ("rrpo", 0.1, 0.01, 5e-6)
        assert (t["lr_scheduler_type"], t["warmup_steps"], t["num_train_epochs"]) == ("cosine", 0.03, 1)
        assert t["per_device_train_batch_size"] * t["gradient_accumulation_steps"] * 4 == 32  # 4 GPUs
        assert t["bf16"] and t["gradient_checkpointing"] and t["deepspeed"].endswith("zero3.json")
    assert load_recipe("llava_video_7b_dpo").train["loss_type"] == "dpo"
    assert load_recipe("llava_onevision_7b_videosavi").model.num_frames == 32
    for name in ("internvl2_5_8b_videosavi", "internvl2_5_1b_videosavi"):  # VideoSAVi's own base, 32 frames, 4 rounds
        r = load_recipe(name)
        assert (r.model.backend, r.model.num_frames, r.align.iterations) == ("internvl", 32, 4)
        assert r.model.source_checkpoint.startswith("OpenGVLab/InternVL2_5-")
    for name, path in (("qwen2_5_vl_7b_rrpo", "Qwen/Qwen2.5-VL-7B-Instruct"),
                       ("qwen3_vl_8b_rrpo", "Qwen/Qwen3-VL-8B-Instruct")):
        r = load_recipe(name)
        assert (r.model.path, r.model.backend, r.train["loss_type"]) == (path, "qwen2_vl", "rrpo")


@pytest.mark.parametrize("name", list_recipes())
def test_recipe_builds_its_trainer_config(name, tmp_path):
    from savi_plugin.training.config import PreferenceConfig

    recipe = load_recipe(name)
    kwargs = training_kwargs(recipe)
    kwargs.pop("bf16", None)  # bf16 needs an accelerator here; the rest must be accepted as written
    config = PreferenceConfig(output_dir=str(tmp_path), **kwargs)
    assert config.loss_type == recipe.train["loss_type"]
    assert config.num_frames == recipe.model.num_frames
    if recipe.train.get("deepspeed"):
        assert config.deepspeed.endswith(".json")
    lora = recipe.lora.peft_kwargs()
    assert lora["target_modules"] is None  # "all-linear-lm": every linear layer of the language model


@pytest.mark.parametrize("override, message", [
    ("train.bta=0.1", "train.bta: unknown key"),
    ("train.beta=high", "train.beta: expected float, got str"),
    ("model.num_frames=16.5", "model.num_frames: expected int, got float"),
    ("lora.rank=8", "lora.rank: unknown key"),
    ("eval.tasks=savi_mvbench", "eval.tasks: expected list, got str"),
    ("model.trust_remote_code=true", "model.trust_remote_code: unknown key"),
])
def test_bad_override_names_the_key_path(override, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe("tiny_demo", [override])


def test_extends_and_cli(tmp_path):
    child = tmp_path / "mine.yaml"
    child.write_text("extends: llava_video_7b_rrpo_16f\ntrain:\n  beta: 0.2\n")
    r = load_recipe(child)
    assert r.train["beta"] == 0.2 and r.train["alpha"] == 0.01 and r.lora.r == 128
    loop = tmp_path / "loop.yaml"
    loop.write_text("extends: loop.yaml\n")
    with pytest.raises(RecipeError, match="circular"):
        load_recipe(loop)
    out = subprocess.run([sys.executable, "-m", "savi_plugin", "recipes", "cp", "tiny_demo", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0 and (tmp_path / "tiny_demo.yaml").is_file()
    out = subprocess.run([sys.executable, "-m", "savi_plugin", "recipes", "show", "tiny_demo", "train.bta=1"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "train.bta: unknown key" in out.stderr  # a configuration error: argparse's 2


@pytest.mark.parametrize("typo", ["./tiny_dem.yaml", "./tiny_demo.yml", "recipes/tiny_demo.yaml", "sub/tiny_demo",
                                  "tiny_demo.yaml", "../tiny_demo.yaml"])
def test_a_recipe_path_that_does_not_exist_never_falls_back_to_a_shipped_recipe(typo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no recipes/ folder here
    with pytest.raises(RecipeError) as info:
        load_recipe(typo)
    assert str(info.value).startswith(typo) and "no such recipe file" in str(info.value)
    assert load_recipe("tiny_demo").name == "tiny_demo"  # a bare name is a shipped recipe


def test_a_loss_hyperparameter_the_chosen_loss_does_not_read_is_said(caplog):
    """``train.label_smoothing`` with RRPO, or RRPO's ``alpha`` with DPO, is allowed (one recipe serves several
    losses in ``savi ablate``) and said once, never silently ignored."""
    import logging

    from savi_plugin.recipe import load_recipe

    with caplog.at_level(logging.WARNING, logger="savi_plugin.training.arguments"):
        load_recipe("tiny_demo", ["train.label_smoothing=0.3"])
        load_recipe("tiny_demo", ["train.label_smoothing=0.3"])
        load_recipe("tiny_demo", ["train.loss_type=dpo", "train.alpha=0.7"])
    said = [r.getMessage() for r in caplog.records]
    assert sum("train.label_smoothing=0.3 is not used by loss 'rrpo'" in m for m in said) == 1, said
    assert any("train.alpha=0.7 is not used by loss 'dpo'" in m for m in said), said


def test_a_recipe_key_no_step_reads_is_unknown():
    """`model.adapter` was declared but read by no step: train, ablate and align took it and ignored it (a fresh
    LoRA where the user meant to continue one: red team 4). A key is declared only where a step reads it."""
    from savi_plugin.config.values import ConfigError

    with pytest.raises(ConfigError, match="model.adapter: unknown key"):
        load_recipe("tiny_demo", ["model.adapter=runs/a/adapter"])

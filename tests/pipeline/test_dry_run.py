"""Every shipped recipe runs: `savi align R --dry-run` and `savi train R --dry-run` build every step's real
configuration (generator and options, PreferenceConfig with DeepSpeed, LoraConfig, the lmms-eval command line)
from an empty working folder with relative paths, load no weights and write nothing. `savi recipes show` prints
the resolved values. A user's recipe resolves its relative paths against its own folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from savi_plugin.cli import main
from savi_plugin.recipe import list_recipes, load_recipe, shipped_recipes_dir


@pytest.mark.parametrize("name", list_recipes())
def test_align_dry_run_of_every_shipped_recipe(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["align", name, "--dry-run", "--out", f"runs/{name}"]) == 0
    out = capsys.readouterr().out
    recipe = load_recipe(name)
    assert f"run folder: runs/{name} ({recipe.align.iterations} iteration(s))" in out
    assert f"generate: {recipe.generate.generator} over " in out
    assert f"train: PreferenceConfig loss {recipe.train['loss_type']}" in out
    assert f"output runs/{name}/iter_0/train" in out
    assert f"lora: r {recipe.lora.r}, alpha {recipe.lora.alpha}" in out
    if recipe.train.get("deepspeed"):
        assert "recipes/deepspeed/zero" in out  # the shipped DeepSpeed file was found and loaded
    assert "eval: -m lmms_eval --model savi_video" in out and f"num_frames={recipe.eval.num_frames or recipe.model.num_frames}" in out
    assert out.rstrip().endswith("dry run: every step's configuration builds; nothing loaded")
    assert list(tmp_path.iterdir()) == []  # nothing written, not even the run folder


@pytest.mark.parametrize("name", [n for n in list_recipes() if load_recipe(n).train.get("output_dir")])
def test_train_dry_run_of_every_recipe_with_an_output_dir(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", name, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"output {load_recipe(name).train['output_dir']}" in out
    assert list(tmp_path.iterdir()) == []


def test_videosavi_recipes_use_the_generators_option_names(capsys):
    """The shipped VideoSAVi recipes named `questions_per_video`; the option is `num_questions`."""
    for name in ("llava_onevision_7b_videosavi", "llava_onevision_0.5b_videosavi"):
        assert main(["recipes", "show", name]) == 0
        shown = yaml.safe_load(capsys.readouterr().out)
        assert shown["generate"]["options"]["num_questions"] == 6
        assert shown["generate"]["options"]["max_new_tokens"] == 256


def test_show_prints_resolved_defaults(capsys):
    assert main(["recipes", "show", "tiny_demo", "eval.num_frames=null"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    # defaults filled in from the sections, the generator's options and PreferenceConfig
    assert shown["generate"]["options"]["tag_max_new_tokens"] > 0  # rrpo's own default, not the recipe's
    assert shown["generate"]["options"]["max_new_tokens"] == 8  # the recipe's, not a forced 128
    assert shown["lora"]["target_modules"] == "all-linear-lm"
    assert shown["eval"]["num_frames"] == shown["train"]["num_frames"] == shown["model"]["num_frames"] == 4
    assert shown["train"]["reference"] == "adapter" and shown["train"]["packing"] is True
    assert shown["align"]["iterations"] == 2 and shown["data"]["data_root"] is None


def test_user_recipe_paths_are_relative_to_its_folder(tmp_path, monkeypatch, capsys, tiny_llava_video):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "ckpt").symlink_to(tiny_llava_video)  # a model folder: the dry run checks it as the run does
    (folder / "ds.json").write_text((shipped_recipes_dir() / "deepspeed" / "zero2.json").read_text())
    (folder / "my.yaml").write_text(
        "extends: llava_video_7b_rrpo_16f\n"
        "model:\n  path: ./ckpt\n  backend: null\n"
        "data:\n  qa: data/qa.jsonl\n  pairs: pairs.jsonl\n"
        "train:\n  deepspeed: ds.json\n  output_dir: out/run\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    recipe = load_recipe("../project/my.yaml")
    assert recipe.model.path == str(folder / "ckpt")
    assert recipe.data.qa == str(folder / "data" / "qa.jsonl") and recipe.data.pairs == str(folder / "pairs.jsonl")
    assert recipe.train["deepspeed"] == str(folder / "ds.json")
    assert recipe.train["output_dir"] == str(folder / "out" / "run")
    # the shipped parent's relative paths stay relative to the working folder; a hub id stays a hub id
    assert load_recipe("qwen2_vl_7b_rrpo").model.path == "Qwen/Qwen2-VL-7B-Instruct"
    assert load_recipe("llava_video_7b_rrpo_16f").data.qa == "data/video_qa_train.jsonl"
    # an override is a command-line path: relative to the working folder
    assert load_recipe("../project/my.yaml", ["data.pairs=p.jsonl"]).data.pairs == "p.jsonl"
    assert main(["train", "../project/my.yaml", "--dry-run"]) == 0
    assert f"output {folder / 'out' / 'run'}" in capsys.readouterr().out


def test_without_the_deepspeed_package(tmp_path, capsys, monkeypatch):
    """A machine without deepspeed still checks a ZeRO recipe (and says so); a real run is refused up front."""
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else find_spec(name, *a))
    monkeypatch.chdir(tmp_path)
    assert main(["align", "llava_video_7b_rrpo_16f", "--dry-run", "--out", "run"]) == 0
    assert "note: train.deepspeed: the deepspeed package is not installed here" in capsys.readouterr().out
    assert main(["train", "llava_video_7b_rrpo_16f", "--data", "pairs.jsonl"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("llava_video_7b_rrpo_16f.yaml: train.deepspeed: needs the deepspeed package: pip install "
                        "'savi-plugin[deepspeed]' (or train.deepspeed=null for a run without it)")
    assert list(tmp_path.iterdir()) == []


def test_readme_align_dry_run_line(tmp_path, capsys, monkeypatch):
    """README's `savi align llava_onevision_7b_videosavi --dry-run`, as written (no --out: the recipe's run folder),
    from an empty working folder."""
    monkeypatch.chdir(tmp_path)
    assert main(["align", "llava_onevision_7b_videosavi", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "generate: videosavi over " in out and "lora: r " in out
    assert out.rstrip().endswith("dry run: every step's configuration builds; nothing loaded")
    assert list(tmp_path.iterdir()) == []


def test_readme_train_line_runs_the_7b_recipe_on_a_tiny_model(tiny_llava_video, synthetic_samples, tmp_path,
                                                                monkeypatch, capsys):
    """README's `savi train llava_video_7b_rrpo_16f data.pairs=pairs.jsonl model.path=checkpoints/llava-video-7b-qwen2`
    as written, with a tiny LLaVA-Video at that path and the recipe's sizes shrunk to a CPU step (overrides appended:
    no DeepSpeed, fp32, 4 frames, LoRA r 4, 1 step)."""
    from tests.builders import write_answer_pairs

    monkeypatch.chdir(tmp_path)
    Path("checkpoints").mkdir()
    Path("checkpoints/llava-video-7b-qwen2").symlink_to(tiny_llava_video, target_is_directory=True)
    write_answer_pairs(Path("pairs.jsonl"), synthetic_samples[:2])
    small = ["train.deepspeed=null", "train.bf16=false", "model.dtype=float32", "train.use_cpu=true",
             "train.gradient_checkpointing=false", "model.num_frames=4", "lora.r=4", "lora.alpha=8",
             "train.max_steps=1", "train.gradient_accumulation_steps=1", "train.save_strategy='no'"]
    assert main(["train", "llava_video_7b_rrpo_16f", "data.pairs=pairs.jsonl",
                 "model.path=checkpoints/llava-video-7b-qwen2", *small]) == 0
    report = json.loads(Path("runs/llava_video_7b_rrpo_16f/train_report.json").read_text())
    assert report["global_step"] == 1
    assert Path("runs/llava_video_7b_rrpo_16f/adapter_model.safetensors").is_file()


def test_checking_a_zero3_recipe_leaves_no_deepspeed_behind_in_the_process(tmp_path, capsys):
    """Loading a ZeRO-3 recipe and its dry run build training arguments only to check them: transformers'
    process-wide DeepSpeed configuration is dropped again, so a model loaded next in the same process is built
    whole (not inside zero.Init, which would need a launcher's LOCAL_RANK)."""
    import gc

    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    from savi_plugin.cli import main
    from savi_plugin.recipe import load_recipe

    gc.disable()  # the arguments may sit in a reference cycle: nothing may depend on when the collector runs
    try:
        recipe = load_recipe("llava_onevision_7b_videosavi")
        assert recipe.train["deepspeed"] and not is_deepspeed_zero3_enabled()
        assert main(["align", "llava_onevision_7b_videosavi", "--dry-run", "--out", str(tmp_path / "run")]) == 0
        assert not is_deepspeed_zero3_enabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("key", ["eval.data_root", "data.data_root"])
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_missing_data_root_is_refused_before_any_step(key, dry_run, tmp_path, capsys, monkeypatch):
    """A missing eval data root was found only after generation, training and merge (and the corrected root was
    then refused as another configuration); the dry run only noted it."""
    monkeypatch.chdir(tmp_path)
    argv = ["align", "tiny_demo", "--out", "run", f"{key}=nonexistent_root"] + (["--dry-run"] if dry_run else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {key}: nonexistent_root does not exist (a data root is the folder relative video paths "
                   f"start from)"], err
    assert list(tmp_path.iterdir()) == []  # nothing claimed


def test_stray_launcher_variables_are_named_once_per_job(tmp_path, monkeypatch, capsys, caplog):
    """``RANK=1 WORLD_SIZE=2 savi align R`` with no launcher: the variables are dropped before any step, with one
    warning (the ``savi`` command's; run_training's own check then finds none), and every step of the job is
    built as one process."""
    import logging

    monkeypatch.chdir(tmp_path)
    for var in ("LOCAL_RANK", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID", "LOCAL_SIZE", "GROUP_RANK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with caplog.at_level(logging.WARNING):
        assert main(["align", "tiny_demo", "--dry-run", "--out", "run"]) == 0
    shown = capsys.readouterr()
    lines = [r.getMessage() for r in caplog.records] + (shown.out + shown.err).splitlines()
    assert sum("RANK=1, WORLD_SIZE=2" in line for line in lines) == 1, lines
    assert "RANK" not in os.environ and "WORLD_SIZE" not in os.environ


#: every input path a dry run lists that its run reads as one kind, as (argv with X for the path, what it needs)
DRY_RUN_INPUTS = {
    "train --data": (["train", "tiny_demo", "--output-dir", "o", "--data", "X"], "file"),
    "train data.pairs": (["train", "tiny_demo", "--output-dir", "o", "data.pairs=X"], "file"),
    "ablate --pairs": (["ablate", "tiny_demo", "--out", "abl", "--pairs", "X", "--losses", "rrpo,dpo",
                        "--no-benchmarks"], "file"),
    "ablate --eval-pairs": (["ablate", "tiny_demo", "--out", "abl", "--pairs", "p.jsonl", "--eval-pairs", "X",
                             "--losses", "rrpo,dpo", "--no-benchmarks"], "file"),
    "align data.qa": (["align", "tiny_demo", "--out", "run", "align.eval_every_iteration=false", "data.qa=X"],
                      "file"),  # rrpo: a QA manifest (pass 26 M #36)
}
#: what an input is instead, as (how it is made, the note's reason; None: the input is fine where a folder is)
INPUT_KINDS = {
    "a folder": (lambda p: p.mkdir(), lambda needs: None if "folder" in needs else "is a folder, not a file"),
    "a FIFO": (lambda p: os.mkfifo(p), lambda needs: f"is a FIFO (named pipe), not a {needs}"),
    "a broken link": (lambda p: p.symlink_to("nowhere"), lambda needs: "is a broken symbolic link (to nowhere)"),
    "unreadable": (lambda p: (p.write_text(""), p.chmod(0)),
                   lambda needs: "cannot be read by this user (permission denied)"),
}


@pytest.mark.parametrize("kind", INPUT_KINDS)
@pytest.mark.parametrize("entry", DRY_RUN_INPUTS)
def test_every_dry_run_notes_an_input_its_run_refuses_for_its_kind(entry, kind, tmp_path, capsys, monkeypatch):
    """Pass 18 B #24, pass 24 H #43: a FIFO or a folder given as the pairs file was listed like any input (``data:
    d``, no note) while a missing one was noted; the real run refuses both. Every dry run notes every input its
    run would refuse for its kind, as what it is (never opening it), and still exits 0 as for a missing input."""
    if kind == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads a file without read permission")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.jsonl").write_text("")
    make, reason = INPUT_KINDS[kind]
    make(tmp_path / "given")
    argv, needs = DRY_RUN_INPUTS[entry]
    assert main([a.replace("X", "given") if "X" in a else a for a in argv] + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    why = reason(needs)
    if why is None:
        assert "given (" not in out and "given" in out, out
    else:
        assert f"given ({why}; the real run refuses it)" in out, out


@pytest.mark.parametrize("field, value, must", [
    ("zero_optimization.stage", 7, "0, 1, 2 or 3"), ("zero_optimization.stage", True, "0, 1, 2 or 3"),
    ("gradient_clipping", -1e308, 'a finite number >= 0 or "auto"'),
    ("train_micro_batch_size_per_gpu", 0, 'a whole number >= 1 or "auto"'),
    ("gradient_accumulation_steps", 2.5, 'a whole number >= 1 or "auto"'),
    ("zero_optimization.offload_optimizer.device", "gpu", "cpu, nvme or none")])
def test_a_deepspeed_value_out_of_range_is_refused_by_the_dry_run(field, value, must, tmp_path, monkeypatch, capsys):
    """Pass 21 D #25: ``stage: 7`` or ``gradient_clipping: -1e308`` passed the dry run; the real run failed after
    loading the model, naming neither the file nor ``train.deepspeed``."""
    monkeypatch.chdir(tmp_path)
    doc: dict = {"gradient_clipping": "auto"}
    inner = doc
    *parents, leaf = field.split(".")
    for part in parents:
        inner = inner.setdefault(part, {})
    inner[leaf] = value
    Path("ds.json").write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["train", "tiny_demo", "--dry-run", "--output-dir", "t", "train.deepspeed=ds.json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: override 'train.deepspeed=ds.json': train.deepspeed: ds.json: {field}: must be {must}, "
                   f"got {value!r}"], err


@pytest.mark.parametrize("field, value, key", [("gradient_clipping", 0.5, "max_grad_norm"),
                                               ("train_micro_batch_size_per_gpu", 8, "per_device_train_batch_size"),
                                               ("gradient_accumulation_steps", 3, "gradient_accumulation_steps")])
def test_a_deepspeed_value_contradicting_a_training_argument_is_refused_by_the_dry_run(field, value, key, tmp_path,
                                                                                      monkeypatch, capsys):
    """Pass 21 replay (D #25's neighbour): ``gradient_clipping: 0.5`` beside ``max_grad_norm`` 1.0 passed the dry
    run; the real run failed after loading the model with transformers' mismatch list, naming neither file nor key."""
    monkeypatch.chdir(tmp_path)
    Path("ds.json").write_text(json.dumps({"zero_optimization": {"stage": 2}, field: value}))
    capsys.readouterr()
    assert main(["train", "tiny_demo", "--dry-run", "--output-dir", "t", "train.deepspeed=ds.json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: override 'train.deepspeed=ds.json': train.deepspeed: ds.json: "
                                               f"{field}: {value!r}, but train.{key} is "), err
    Path("ds.json").write_text(json.dumps({"zero_optimization": {"stage": 2}, field: "auto"}))
    assert main(["train", "tiny_demo", "--dry-run", "--output-dir", "t", "train.deepspeed=ds.json"]) == 0


@pytest.mark.parametrize("spelling", ["recipe ''", "recipe null", "override empty", "override ''",
                                      "override null"])
@pytest.mark.parametrize("dry_run", [True, False])
def test_a_train_output_dir_left_empty_is_refused_by_the_run_and_its_dry_run(spelling, dry_run, tmp_path, capsys,
                                                                             monkeypatch):
    """A recipe's ``train.output_dir: ''`` passed ``savi train --dry-run`` (``output`` shown blank, exit 0) while the
    run refused it (pass 23 D #11): one check (``steps.train_output_dir``) is asked before either."""
    monkeypatch.chdir(tmp_path)
    where, value = spelling.split(" ", 1)
    value = {"empty": "", "''": "''", "null": "null"}[value]
    recipe = tmp_path / "r.yaml"
    recipe.write_text("extends: tiny_demo\n" + (f"train:\n  output_dir: {value}\n" if where == "recipe" else ""))
    overrides = [f"train.output_dir={value}"] if where == "override" else []
    argv = ["train", "r.yaml", *overrides, "data.pairs=p.jsonl"] + (["--dry-run"] if dry_run else [])
    if spelling == "override empty":  # an empty KEY=VALUE is refused by the argument parser, as every empty argument
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
    else:
        assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    said = ("train.output_dir: '' is an empty path: give a path, or leave the key out" if value == "''" else
            "argument override train.output_dir=: an empty value" if spelling == "override empty" else
            "train.output_dir: required (or --output-dir)")  # '' is refused at load, by the rule of every path key
    assert len(err) == 1 and "error: " in err[0] and said in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.yaml"]  # nothing written


#: every command with a ``--dry-run``, as (argv after the recipe, the key or flag that names the model)
DRY_RUN_ENTRY_POINTS = {
    "train": (["--output-dir", "o", "--data", "p.jsonl"], "model.path"),
    "train --model": (["--output-dir", "o", "--data", "p.jsonl", "--model", "./no_model"], "--model"),
    "align": (["--out", "run", "align.eval_every_iteration=false"], "model.path"),
    "ablate": (["--out", "abl", "--pairs", "p.jsonl", "--losses", "rrpo,dpo", "--no-benchmarks"], "model.path"),
}


@pytest.mark.parametrize("entry, missing", [
    (entry, missing) for entry, (_, key) in DRY_RUN_ENTRY_POINTS.items()
    for missing in (["./no_model"] if key == "--model" else ["./no_model", "/nonexistent/no_model",
                                                             "hub/id-without-backend"])])
def test_a_missing_model_is_refused_by_every_dry_run_as_by_its_run(entry, missing, tmp_path, capsys, monkeypatch):
    """A dry run listed a model that is not there (``(not found here; the real run needs it)``) and exited 0, and
    the real run refused it only when loading it, naming no key: both now ask the one model check
    (``config.checkpoint.check_model``) before anything starts, and say the same line at the key or flag."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.jsonl").write_text("")
    backend = "null" if missing.startswith("hub/") else "llava_onevision"
    (tmp_path / "r.yaml").write_text(f"extends: tiny_demo\nmodel:\n  path: {missing}\n  backend: {backend}\n")
    tail, key = DRY_RUN_ENTRY_POINTS[entry]
    lines = []
    for dry_run in (True, False):
        assert main([entry.split()[0], "r.yaml", *tail] + (["--dry-run"] if dry_run else [])) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        lines.append(err[0])
    assert lines[0] == lines[1]  # the dry run says what the run says
    shown = missing if key == "--model" or missing.startswith(("/", "hub")) else str(tmp_path / "no_model")
    prefix = "error: --model: " if key == "--model" else "error: r.yaml: model.path: "
    assert lines[0].startswith(f"{prefix}{shown}: no such file or folder; give a local model folder"), lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl", "r.yaml"]  # nothing written


#: folders that are no model folder, as (how one is made, what the loader says it is)
NOT_MODEL_FOLDERS = {
    "an empty folder": (lambda p: p.mkdir(), "it is an empty folder, not a model folder"),
    "a folder of videos": (lambda p: (p.mkdir(), (p / "a.mp4").write_bytes(b"\0" * 16)),
                           "it is a folder without config.json, not a model folder"),
    "an adapter folder": (lambda p: (p.mkdir(), (p / "adapter_config.json").write_text("{}")),
                          "is an adapter folder (adapter_config.json), not a model folder"),
}


@pytest.mark.parametrize("shape", NOT_MODEL_FOLDERS)
@pytest.mark.parametrize("entry", DRY_RUN_ENTRY_POINTS)
def test_every_dry_run_notes_a_model_folder_its_loader_refuses(entry, shape, tmp_path, capsys, monkeypatch):
    """Pass 25 R4 #87: ``savi train --dry-run --model <empty folder or the videos folder>`` listed the model with no
    note while a missing model and a file got one; the real run refuses it at load. Every dry run notes it in the
    loader's own words (``data.model_config.load_refusal``, asked by ``models.load_backend`` too), exit 0."""
    from savi_plugin.models import load_backend
    from savi_plugin.models.backends.base import ModelLoadError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.jsonl").write_text("")
    make, said = NOT_MODEL_FOLDERS[shape]
    make(tmp_path / "no_model")
    (tmp_path / "r.yaml").write_text("extends: tiny_demo\nmodel:\n  path: ./no_model\n  backend: llava_onevision\n")
    tail, _ = DRY_RUN_ENTRY_POINTS[entry]
    assert main([entry.split()[0], "r.yaml", *tail, "--dry-run"]) == 0
    out = capsys.readouterr().out
    with pytest.raises(ModelLoadError) as refused:  # the real run's refusal, by the loader itself
        load_backend(tmp_path / "no_model", "llava_onevision")
    path, refusal = str(refused.value).split(": ", 1)
    assert said in refusal and refusal.startswith("the model cannot be loaded: "), refusal
    shown = "./no_model" if entry == "train --model" else str(tmp_path / "no_model")
    assert f"model: {shown} ({refusal}; the real run refuses it)" in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_model", "p.jsonl", "r.yaml"]  # nothing written


#: outputs every writer's claim refuses, as (how the output is given, what is made before, the refusal's start)
REFUSED_OUTPUTS = {
    "the model folder": ("model", None, "is the same path as "),
    "a folder holding a user's file": ("ud", "ud/a.txt", "holds 1 file(s) not written by "),
    "inside an input": ("model/sub", None, "lies inside "),
}


@pytest.mark.parametrize("where", REFUSED_OUTPUTS)
@pytest.mark.parametrize("entry", DRY_RUN_ENTRY_POINTS)
def test_every_dry_run_refuses_the_output_its_run_refuses(entry, where, tmp_path, capsys, monkeypatch,
                                                          tiny_llava_onevision, synthetic_samples):
    """A dry run approved an output its run refused (the model folder, a folder holding a user's file, a folder
    inside an input: exit 0, "the configuration builds"): each dry run now asks its run's claim of the output
    (``data.outputs.check_claim``) and says the run's line with the run's exit code, writing nothing."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").symlink_to(tiny_llava_onevision)
    (tmp_path / "p.jsonl").write_text("")
    (tmp_path / "r.yaml").write_text("extends: tiny_demo\nmodel:\n  path: ./model\n  backend: llava_onevision\n"
                                     f"data:\n  qa: {Path(synthetic_samples[0].video).parent / 'samples.jsonl'}\n")
    output, made, said = REFUSED_OUTPUTS[where]
    if made:
        (tmp_path / made).parent.mkdir()
        (tmp_path / made).write_text("mine\n")
    tail, _ = DRY_RUN_ENTRY_POINTS[entry]
    given = {"--out": output, "--output-dir": output, "--model": "./model"}  # the flags' values, as the recipe's
    tail = [given.get(tail[i - 1], arg) if i else arg for i, arg in enumerate(tail)]
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    said_by = []
    for dry_run in (True, False):
        code = main([entry.split()[0], "r.yaml", *tail] + (["--dry-run"] if dry_run else []))
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        said_by.append((code, err[0]))
    assert said_by[0] == said_by[1], said_by  # the dry run says what the run says, with its exit code
    code, line = said_by[0]
    assert code == (1 if made else 2) and said in line and line.startswith(f"error: {output}: "), line
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before  # nothing written

"""Misuse, class "values": a value in the wrong range or of the wrong type, from a recipe, a command-line flag or a
generator option, stops before anything runs with ONE line naming where it came from (``file: key.path:
message``, ``argument --flag: message`` or ``--option key: message``) and exit status 2. The same rule
(:mod:`savi_plugin.config.values`) holds for all three routes.

Every case runs through the real entry point, in process: ``savi_plugin.cli.main(argv)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from savi_plugin.cli import main

# --------------------------------------------------------------------------------------------- recipes
# (YAML text added under `extends: tiny_demo`, key path named in the error, message fragment)
RECIPE_CASES = [
    ("train:\n  per_device_train_batch_size: 0", "train.per_device_train_batch_size", "must be >= 1, got 0"),
    ("train:\n  gradient_accumulation_steps: 0", "train.gradient_accumulation_steps", "must be >= 1, got 0"),
    ("train:\n  learning_rate: -1.0e-5", "train.learning_rate", "must be >= 0"),
    ("train:\n  beta: 0", "train.beta", "must be > 0"),
    ("train:\n  beta: -0.1", "train.beta", "must be > 0"),
    ("train:\n  alpha: -0.01", "train.alpha", "must be >= 0"),
    # pass 18 B #14: > 0 in Python's float64, 0 in float32: every step at loss ln 2, an adapter that learned nothing
    ("train:\n  beta: 1.0e-46", "train.beta", "1e-46 is below float32's smallest normal number (1.18e-38)"),
    ("train:\n  alpha: 1.0e-40", "train.alpha", "below float32's smallest normal number"),
    ("train:\n  learning_rate: 1.0e-45", "train.learning_rate", "below float32's smallest normal number"),
    ("train:\n  loss_options:\n    kl_scope: response\n    reward: refined\n  max_grad_norm: 1.0e-39",
     "train.max_grad_norm", "below float32's smallest normal number"),
    ("lora:\n  r: 0", "lora.r", "must be >= 1, got 0"),
    ("lora:\n  alpha: 0", "lora.alpha", "must be > 0"),
    ("lora:\n  dropout: 1.0", "lora.dropout", "must be >= 0 and < 1"),
    ("train:\n  loss_type: dpoo", "train.loss_type", "unknown loss 'dpoo'"),
    ("train:\n  deepspeed: deepspeed/zero4.json", "train.deepspeed", "deepspeed config not found"),
    ("train:\n  num_train_epochs: 0", "train.num_train_epochs", "must be > 0"),
    ("train:\n  max_steps: 0", "train.max_steps", "must be -1 (off) or >= 1"),
    ("train:\n  warmup_steps: -1", "train.warmup_steps", "must be >= 0"),
    ("train:\n  lr_scheduler_type: cosinus", "train.lr_scheduler_type", "unknown value 'cosinus'"),
    ("train:\n  loss_type: dpo\n  label_smoothing: 0.9", "train.label_smoothing", "must be >= 0 and < 0.5"),
    ("train:\n  loss_options:\n    kl_scope: everything", "train.loss_options.kl_scope", "unknown kl_scope"),
    ("train:\n  loss_options:\n    gamma: 1", "train.loss_options.gamma", "unknown option of loss 'rrpo'"),
    ("train:\n  reference: teacher", "train.reference", "unknown reference mode 'teacher'"),
    ("train:\n  seed: -1", "train.seed", "must be >= 0"),
    ("train:\n  save_strategy: no", "train.save_strategy", "YAML reads unquoted no/yes/on/off"),
    ("train:\n  beta: 0.5\n  loss_options:\n    beta: 0.2", "train.loss_options.beta", "set train.beta, not"),
    ("train:\n  loss_options:\n    alpha: 0.2", "train.loss_options.alpha", "set train.alpha, not"),
    ("train:\n  beta: \"\\u0663.\\u0665\"", "train.beta", "expected float, got str"),
    ("train:\n  beta: \"\\uff13\"", "train.beta", "expected float, got str"),
    ("train:\n  beta: \"0.5\"", "train.beta", "it is written in quotes, so YAML reads it as text"),
    ("train:\n  learning_rate: '1e-4'", "train.learning_rate", "it is written in quotes, so YAML reads it as text"),
    ("train:\n  seed: '3'", "train.seed", "it is written in quotes, so YAML reads it as text"),
    ("lora:\n  alpha: 1e3", "lora.alpha", "YAML 1.1 reads a number written as 1e3 (no dot) as text"),
    ("train:\n  per_device_train_batch_size: 2.5", "train.per_device_train_batch_size", "expected int, got float"),
    ("model:\n  dtype: float8", "model.dtype", "unknown dtype 'float8'"),
    ("model:\n  num_frames: 0", "model.num_frames", "must be >= 1, got 0"),
    ("model:\n  backend: llava_next_video", "model.backend", "unknown backend 'llava_next_video'"),
    ("data:\n  format: csv", "data.format", "unknown format 'csv'"),
    ("generate:\n  generator: rrhf", "generate.generator", "unknown generator 'rrhf'"),
    ("generate:\n  batch_size: 0", "generate.batch_size", "must be >= 1, got 0"),
    ("generate:\n  limit: -1", "generate.limit", "must be >= 1, got -1"),
    ("generate:\n  max_new_tokens: 8", "generate.max_new_tokens", "set generate.options.max_new_tokens"),
    ("generate:\n  options:\n    max_new_tokens: 0", "generate.options.max_new_tokens", "must be >= 1, got 0"),
    ("generate:\n  options:\n    temperature: -1", "generate.options.temperature", "must be > 0"),
    ("generate:\n  options:\n    top_p: 0", "generate.options.top_p", "must be > 0 and <= 1"),
    ("generate:\n  options:\n    perturbations: mask:2-3", "generate.options.perturbations", "fraction must satisfy"),
    ("generate:\n  options:\n    answer_format: letters", "generate.options.answer_format", "answer_format must be"),
    ("generate:\n  options:\n    num_perturbations: 0", "generate.options.num_perturbations", ">= 1"),
    ("extends: llava_onevision_7b_videosavi\ngenerate:\n  options:\n    questions_per_video: 6",
     "generate.options.questions_per_video", "unknown option"),
    ("train:\n  reference: model", "train.reference", "reference='model' needs reference_model_path"),
    ("train:\n  deepspeed: bad.yaml", "train.deepspeed", "not a DeepSpeed JSON config"),
    # a count with its own maximum: 4294967295 workers forked until killed and left orphans (red team 8)
    ("train:\n  dataloader_num_workers: 4294967295", "train.dataloader_num_workers",
     "must be >= 0 and <= 256, got 4294967295"),
    ("eval:\n  batch_size: 0", "eval.batch_size", "must be >= 1, got 0"),
    ("eval:\n  limit: -1", "eval.limit", "must be a whole number of items per task (>= 1) or a fraction of them "
                                         "strictly between 0 and 1, got -1"),
    ("eval:\n  tasks: savi_mvbench", "eval.tasks", "expected list, got str"),
    ("align:\n  iterations: 0", "align.iterations", "must be >= 1, got 0"),
    # the demo's settings are savi demo's own arguments (savi_plugin/demo/settings.py), not recipe keys
    ("demo:\n  warmup_lr: 0.01", "demo", "unknown key"),
    ("data:\n  synthetic_videos: 4", "data.synthetic_videos", "unknown key"),
]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, no traceback
    return err[0]


@pytest.mark.parametrize("command", ["train", "align"])
@pytest.mark.parametrize("yaml_text, key_path, fragment", RECIPE_CASES, ids=[c[1] for c in RECIPE_CASES])
def test_recipe_value(yaml_text, key_path, fragment, command, tmp_path, capsys, monkeypatch):
    recipe = tmp_path / "bad.yaml"
    base = "" if yaml_text.startswith("extends:") else "extends: tiny_demo\n"
    recipe.write_text(f"{base}{yaml_text}\n", encoding="utf-8")  # bad.yaml is also a file that is not JSON
    monkeypatch.chdir(tmp_path)
    code = main([command, str(recipe), "--dry-run"] + (["--out", "run"] if command == "align" else []))
    line = _one_error_line(capsys)
    assert code == 2
    assert line.startswith(f"error: {recipe}: {key_path}: "), line
    assert fragment in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # nothing written


def test_override_value_names_the_key_path(capsys):
    assert main(["recipes", "show", "tiny_demo", "train.gradient_accumulation_steps=0"]) == 2
    line = _one_error_line(capsys)  # the value came from the command line: the override is named, not the file
    assert line == ("error: override 'train.gradient_accumulation_steps=0': train.gradient_accumulation_steps: "
                    "must be >= 1, got 0")


def test_quoted_no_and_yaml11_float_are_accepted(capsys):
    # save_strategy 'no' quoted is the string; 1e-5 (YAML 1.1 reads it as a string) is the number it spells
    assert main(["recipes", "show", "tiny_demo", "train.save_strategy='no'", "train.learning_rate=1e-5"]) == 0
    out = capsys.readouterr().out
    assert "save_strategy: 'no'" in out and "learning_rate: 1.0e-05" in out


# --------------------------------------------------------------------------------------------- flags
GENERATE = ["generate", "--generator", "rrpo", "--model", "m", "--input", "qa.jsonl", "--output", "pairs.jsonl"]
FLAG_CASES = [
    (GENERATE + ["--num-frames", "0"], "argument --num-frames: must be >= 1, got 0"),
    (GENERATE + ["--num-frames", "-4"], "argument --num-frames: must be >= 1, got -4"),
    (GENERATE + ["--num-frames", "many"], "argument --num-frames: expected an integer, got 'many'"),
    (GENERATE + ["--limit", "-1"], "argument --limit: must be >= 1, got -1"),
    (GENERATE + ["--limit", "0"], "argument --limit: must be >= 1, got 0"),
    (GENERATE + ["--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    (GENERATE + ["--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    (GENERATE + ["--dtype", "float8"], "argument --dtype: unknown dtype 'float8'"),
    (GENERATE + ["--backend", "llava_next_video"], "argument --backend: unknown backend 'llava_next_video'"),
    (["generate", "--generator", "rrhf"], "argument --generator: unknown generator 'rrhf'"),
    (["align", "tiny_demo", "--iterations", "0", "--dry-run"], "argument --iterations: must be >= 1, got 0"),
    (["eval", "fixture", "data", "-n", "0"], "argument -n: must be >= 1 and <= 1000, got 0"),  # was an empty dataset, exit 0
    (["eval", "fixture", "data", "-n", "-1"], "argument -n: must be >= 1 and <= 1000, got -1"),
    (["eval", "fixture", "data", "-n", "abc"], "argument -n: expected an integer, got 'abc'"),
    (["eval", "fixture", "data", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    # a count with its own maximum, not the shared 2**32 - 1 ceiling (which rendered videos until killed)
    (["eval", "fixture", "data", "-n", "1001"], "argument -n: must be >= 1 and <= 1000, got 1001"),
    (["eval", "fixture", "data", "-n", "4294967295"], "argument -n: must be >= 1 and <= 1000, got 4294967295"),
]


@pytest.mark.parametrize("argv, message", FLAG_CASES, ids=[" ".join(c[0][-2:]) for c in FLAG_CASES])
def test_flag_value(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------- benchmark flags
# (savi bench <name> argv, message): each benchmark's options are one checked dataclass (savi_plugin.bench.*)
BENCH_CASES = [
    (["decode", "--size", "7"], "argument --size: must be even (H.264 frames), got 7"),
    (["decode", "--frames", "0"], "argument --frames: must be >= 1, got 0"),
    (["decode", "--samples", "16", "0"], "argument --samples: must be >= 1, got 0"),
    (["decode", "--keyframe-interval", "30", "-1"], "argument --keyframe-interval: must be >= 0, got -1"),
    (["decode", "--noise", "-1"], "argument --noise: must be >= 0, got -1.0"),
    (["decode", "--repeats", "0"], "argument --repeats: must be >= 1, got 0"),
    (["generation", "--videos", "0"], "argument --videos: must be >= 1, got 0"),
    (["generation", "--image-size", "100"], "argument --image-size: must be a multiple of 8"),
    (["generation", "--hidden", "12"], "argument --hidden: must be a multiple of 8"),
    (["generation", "--vision-hidden", "100"], "argument --vision-hidden: must divide into"),
    (["generation", "--max-new-tokens", "0"], "argument --max-new-tokens: must be >= 1, got 0"),
    (["generation", "--threads", "0"], "argument --threads: must be >= 1, got 0"),
    (["train-step", "--beta", "0"], "argument --beta: must be > 0, got 0.0"),
    (["train-step", "--alpha", "-0.1"], "argument --alpha: must be >= 0, got -0.1"),
    (["train-step", "--lr", "0"], "argument --lr: must be > 0, got 0.0"),
    (["train-step", "--loss-tolerance", "-1"], "argument --loss-tolerance: must be >= 0"),
    (["train-step", "--warmup", "-1"], "argument --warmup: must be >= 0, got -1"),
    (["train-step", "--steps", "0"], "argument --steps: must be >= 1, got 0"),
    (["train-step", "--lora-rank", "0"], "argument --lora-rank: must be >= 1, got 0"),
    (["trl", "--beta", "-1"], "argument --beta: must be > 0, got -1.0"),
    (["trl", "--rel-tolerance", "-1"], "argument --rel-tolerance: must be >= 0"),
    (["trl", "--response-tokens", "0"], "argument --response-tokens: must be >= 1, got 0"),
    (["trl", "--frames", "many"], "argument --frames: expected an integer, got 'many'"),
    (["gpu", "--steps", "0"], "argument --steps: must be >= 1, got 0"),
    (["gpu", "--parts", "train", "nope"], "argument --parts: unknown 'nope'; one of: train, generation"),
    (["gpu", "--dtype", "float8"], "argument --dtype: unknown 'float8'"),
]


@pytest.mark.parametrize("argv, message", BENCH_CASES, ids=[" ".join(c[0]) for c in BENCH_CASES])
def test_bench_flag_value_stops_before_any_work(argv, message, tmp_path, capsys, monkeypatch):
    import importlib
    import time

    from savi_plugin.cli.bench import MODULES

    module = importlib.import_module(f"savi_plugin.bench.{MODULES[argv[0]]}")
    monkeypatch.setattr(module, "run", lambda *a, **k: pytest.fail("the benchmark ran"))
    monkeypatch.chdir(tmp_path)
    work = ["--work-dir", str(tmp_path / "work")]
    start = time.perf_counter()
    for run in (lambda: main(["bench", *argv, *work]), lambda: module.main([*argv[1:], *work])):  # savi, script
        with pytest.raises(SystemExit) as exit_:
            run()
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert [line for line in err.splitlines() if "error:" in line] == [err.splitlines()[-1]], err
        assert message in err.splitlines()[-1], err  # argparse's one line: "<prog>: error: argument --flag: ..."
    assert time.perf_counter() - start < 10
    assert list(tmp_path.iterdir()) == []  # nothing written: no work folder, clip, model or report


# --------------------------------------------------------------------------------------------- savi_video settings
# lmms-eval's --model_args arrive as its parser made them (int, float or text); one line naming the argument
SAVI_VIDEO_CASES = [
    ({"num_frames": 0}, "num_frames must be >= 1, got 0"),
    ({"num_frames": "-2"}, "num_frames must be >= 1, got -2"),
    ({"num_frames": "32x"}, "num_frames must be a whole number, got '32x'"),
    ({"num_frames": 2.5}, "num_frames must be a whole number, got 2.5"),
    # pass 15 B #46: read as 4 and 1 frames, while a recipe refuses model.num_frames=4.0 (one rule, one answer)
    ({"num_frames": 4.0}, "num_frames must be a whole number, got 4.0 (lmms-eval reads '+4', '-3' and '1e9' as "
                          "decimal numbers; write it as digits alone, e.g. num_frames=4)"),
    # pass 18 C #2: "-3" reaches savi_video as -3.0 and was said not whole; what is wrong with it is its range
    ({"num_frames": -3.0}, "num_frames must be >= 1, got -3"),
    ({"max_new_tokens": -1.0}, "max_new_tokens must be >= 1 and <= 1048576, got -1"),
    ({"num_frames": "4.0"}, "num_frames must be a whole number, got '4.0'"),
    ({"num_frames": "1e0"}, "num_frames must be a whole number, got '1e0'"),
    ({"fps": "1e-400"}, "fps: '1e-400' is too small for a floating-point number (it would read as 0)"),
    ({"num_frames": "none"}, "num_frames must be a whole number, got 'none'"),  # no silent default
    ({"fps": "0"}, "fps must be > 0, got 0.0"),
    ({"fps": "nan"}, "fps must be a finite number, got nan"),
    ({"max_frames": 0}, "max_frames must be >= 1, got 0"),
    # pass 17 B #21: accepted and never applied (max_frames caps fps sampling only)
    ({"num_frames": 8, "max_frames": 2}, "max_frames: caps the frames sampled at fps and does nothing without fps: "
                                         "give fps too, or set num_frames"),
    ({"batch_size": "auto"}, "batch_size must be a whole number, got 'auto'"),
    ({"max_new_tokens": "0"}, "max_new_tokens must be >= 1 and <= 1048576, got 0"),
    # pass 18 C #35: 2000000 passed here while --gen_kwargs caps the same setting at 2^20
    ({"max_new_tokens": "2000000"}, "max_new_tokens must be >= 1 and <= 1048576, got 2000000"),
    ({"video_backend": "decrd"}, "video_backend: unknown video backend 'decrd'; one of: decord, pyav"),
]


class _Loading(Exception):
    """Raised by the load_backend spy: the settings were accepted."""


@pytest.fixture()
def load_backend_calls(monkeypatch):
    """Every ``load_backend`` call savi_video makes (none is carried out)."""
    import savi_plugin.models

    calls = []

    def spy(path, **kwargs):
        calls.append(kwargs)
        raise _Loading  # stop here: nothing is loaded

    monkeypatch.setattr(savi_plugin.models, "load_backend", spy)
    return calls


@pytest.mark.parametrize("kwargs, message", SAVI_VIDEO_CASES, ids=[repr(c[0]) for c in SAVI_VIDEO_CASES])
def test_savi_video_model_arg(kwargs, message, load_backend_calls):
    from savi_plugin.eval.model import SaviVideo, SettingError

    with pytest.raises(SettingError) as err:
        SaviVideo(pretrained="never-loaded", **kwargs)
    assert str(err.value) == f"savi_video: {message}" and isinstance(err.value, SystemExit)
    assert load_backend_calls == []  # refused before the model is loaded


def test_savi_video_model_args_as_lmms_eval_parses_them(load_backend_calls):
    from lmms_eval.utils import simple_parse_args_string

    from savi_plugin.eval.model import SaviVideo

    args = simple_parse_args_string("pretrained=m,num_frames=8,fps=none,max_frames=null,video_backend=pyav")
    with pytest.raises(_Loading):
        SaviVideo(**args)
    assert load_backend_calls[0]["num_frames"] == 8


@pytest.mark.parametrize("gen_kwargs, message", [
    ({"max_new_tokens": 0}, "max_new_tokens (gen_kwargs) must be >= 1 and <= 1048576, got 0"),
    ({"max_new_tokens": "many"}, "max_new_tokens (gen_kwargs) must be a whole number, got 'many'"),
    ({"max_new_tokens": 3.0}, "max_new_tokens (gen_kwargs) must be a whole number, got 3.0 (lmms-eval reads '+4', "
                              "'-3' and '1e9' as decimal numbers; write it as digits alone, e.g. max_new_tokens=3)"),
    ({"temperature": "-1"}, "temperature (gen_kwargs) must be >= 0, got -1.0"),
    ({"top_p": 0}, "top_p (gen_kwargs) must be > 0 and <= 1, got 0.0"),
    ({"top_p": 1.5}, "top_p (gen_kwargs) must be > 0 and <= 1, got 1.5"),
    # tester B pass 11 #18: accepted, not applied, recorded by lmms-eval as the setting used
    ({"num_beams": 4294967295}, ("num_beams (gen_kwargs) must be 1 (savi_video decodes one sequence: greedy, or "
                                 "sampled with do_sample), got 4294967295")),
    ({"num_beams": 0}, ("num_beams (gen_kwargs) must be 1 (savi_video decodes one sequence: greedy, or sampled with "
                        "do_sample), got 0")),
    ({"top_k": 5, "repetition_penalty": 1.2}, ("top_k, repetition_penalty (gen_kwargs): not applied by savi_video, "
                                               "which applies only max_new_tokens, temperature, top_p, do_sample, "
                                               "num_beams, until; remove them (lmms-eval would record them as the "
                                               "setting used)")),
    # pass 15 C #30: lmms-eval reads `--gen_kwargs =5` as the key "": it was shown as nothing
    ({"": 5}, ("--gen_kwargs holds an item with an empty key (an empty name before '='); write each item as "
               "key=value, with one of max_new_tokens, temperature, top_p, do_sample, num_beams, until")),
    ({"until": 5}, "until (gen_kwargs) must be a stop string or a list of them, got int 5"),
    ({"until": ["a", None]}, "until (gen_kwargs) must be a stop string or a list of them, got list ['a', None]"),
])
def test_savi_video_gen_kwargs(gen_kwargs, message):
    from savi_plugin.eval.model import SettingError, check_gen_kwargs

    with pytest.raises(SettingError) as err:
        check_gen_kwargs({"until": ["\n\n"], "do_sample": False, **gen_kwargs})
    assert str(err.value) == f"savi_video: {message}"
    check_gen_kwargs({"until": ["\n\n"], "max_new_tokens": None, "temperature": 0, "top_p": 1})  # all fine
    # our tasks' generation_kwargs, and lmms-eval's reading of `until=[]` on the command line: the stop text "[]",
    # as lmms-eval's own models take a text (an empty list, from a task's YAML, stops nothing)
    check_gen_kwargs({"max_new_tokens": 16, "temperature": 0, "top_p": 1.0, "num_beams": 1, "do_sample": False,
                      "until": "[]"})
    check_gen_kwargs({"until": []})


# --------------------------------------------------------------------------------------------- generator options
OPTION_CASES = [
    (["--option", "max_new_tokens=0"], "--option max_new_tokens: must be >= 1, got 0"),
    (["--option", "temperature=-1"], "--option temperature: must be > 0"),
    (["--option", "top_p=1.5"], "--option top_p: must be > 0 and <= 1"),
    (["--option", "num_perturbations=0"], "--option num_perturbations: must be >= 1 and <= 64, got 0"),
    (["--option", "answer_format=letters"], "--option answer_format: answer_format must be one of"),
    (["--option", "max_new_tokens=many"], "--option max_new_tokens: expected int, got str"),
    (["--option", "answer_fromat=option"], "--option answer_fromat: unknown option"),
    (["--perturb", "mask:2-3"], "--perturb: perturbation 'mask': fraction must satisfy 0 <= low <= high <= 1"),
    (["--perturb", "blur:0"], "--perturb: perturbation 'blur': blur factor must be a whole number in 1..4096"),
    (["--perturb", "wobble"], "--perturb: unknown perturbation 'wobble'"),
    (["--perturb", ","], "--perturb: no perturbation given"),
    (["--option", "perturbations=[]"], "--option perturbations: no perturbation given"),
]


@pytest.mark.parametrize("extra, message", OPTION_CASES, ids=[" ".join(c[0]) for c in OPTION_CASES])
def test_generator_option_value(extra, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(GENERATE + extra) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {message}"), line
    assert list(tmp_path.iterdir()) == []  # refused before any output, lock or progress file exists


def _strength_cases():
    """Every perturbation that takes a strength (its value after ':', ``perturb._MAIN``) x (the strength that changes
    no frame, a float32-subnormal, a negative one, the smallest that changes a frame): (spec, refusal or None)."""
    from savi_plugin.config.values import FLOAT32_TINY
    from savi_plugin.video.perturb import _MAIN

    cases = []
    for name, (param, _) in sorted(_MAIN.items()):
        if param == "fraction":
            cases += [(f"{name}:0", f"perturbation '{name}': fraction 0 changes no frame"),
                      (f"{name}:0-0", f"perturbation '{name}': fraction 0 changes no frame"),
                      (f"{name}:1e-39", f"perturbation '{name}': fraction 1e-39 is below float32's smallest normal"),
                      (f"{name}:0-1e-39", f"perturbation '{name}': fraction element [1] 1e-39 is below float32's"),
                      (f"{name}:-0.25", f"perturbation '{name}': fraction must satisfy 0 <= low"),
                      (f"{name}:{FLOAT32_TINY!r}", None), (f"{name}:0-{FLOAT32_TINY!r}", None)]
        else:  # blur's block side
            cases += [(f"{name}:1", f"perturbation '{name}': factor 1 (1x1 blocks) changes no frame"),
                      (f"{name}:1e-39", f"perturbation '{name}': factor (the value after ':') must be an integer"),
                      (f"{name}:-2", f"perturbation '{name}': blur factor must be a whole number in 1..4096"),
                      (f"{name}:2", None)]
    return cases


@pytest.mark.parametrize("spec, refusal", _strength_cases(), ids=[c[0] for c in _strength_cases()])
def test_a_perturbation_strength_that_changes_no_frame_is_refused(spec, refusal, tmp_path, capsys, monkeypatch):
    """``--perturb occlude:0`` (also mask:0, drop:0) wrote RRPO pairs whose ``meta.perturbation.frames`` was [], the
    "errors on a perturbed video" being errors on the real one, the case an empty pipeline is refused for (red team
    23, row 6). The smallest strength allowed changes a frame of a 4-frame clip, and of a 2-frame one."""
    import numpy as np

    from savi_plugin.video.perturb import apply_perturbations

    monkeypatch.chdir(tmp_path)
    if refusal is not None:
        assert main(GENERATE + ["--perturb", spec]) == 2
        assert _one_error_line(capsys).startswith(f"error: --perturb: {refusal}")
        assert list(tmp_path.iterdir()) == []
        return
    for frames in (4, 2):
        clip = np.random.default_rng(0).integers(0, 256, (frames, 16, 16, 3), dtype=np.uint8)
        for seed in range(4):
            out, _ = apply_perturbations(clip, spec, np.random.default_rng(seed))
            assert (out != clip).any(), (spec, frames, seed)


def _one_frame_cases():
    """Every perturbation x every way to give it (its flag, ``--option``, a recipe override): ``(argv, named)``."""
    from savi_plugin.video.perturb import PERTURBATIONS

    cases = []
    for name in sorted(PERTURBATIONS):
        cases += [(name, GENERATE + ["--perturb", name, "--num-frames", "1"], "error: --perturb: "),
                  (name, GENERATE + ["-o", f"perturbations=[{name}]", "--num-frames", "1"],
                   "error: --option perturbations: "),
                  (name, ["recipes", "show", "tiny_demo", "model.num_frames=1",
                          f"generate.options.perturbations=[{name}]", "generate.options.num_perturbations=1"],
                   "generate.options.perturbations: ")]
    return cases


#: the perturbations that change no frame of a one-frame clip (a reorder or a hold needs a second frame)
NO_CHANGE_ON_ONE_FRAME = {"shuffle", "reverse", "drop"}


@pytest.mark.parametrize("name, argv, named", _one_frame_cases(), ids=[f"{c[0]}-{c[2].split(':')[-2].strip()}"
                                                                       for c in _one_frame_cases()])
def test_a_perturbation_that_changes_no_frame_of_the_clips_is_refused(name, argv, named, tmp_path, capsys,
                                                                      monkeypatch):
    """``--perturb shuffle --num-frames 1`` wrote pairs whose "perturbed" clip was the real one, the case a fraction
    of 0 is refused for: refused the same way, at the same option, wherever the frame count is given."""
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    out, err = capsys.readouterr()
    if name not in NO_CHANGE_ON_ONE_FRAME:  # covers or blurs the one frame: past this check (to the missing input)
        assert "changes no frame" not in out + err and "perturb" not in err, (code, out, err)
        return
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, (code, err)
    assert named in lines[0] and f"perturbation '{name}': on clips of 1 frame changes no frame" in lines[0], lines
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["shuffle", "reverse", "drop", "mask", "occlude", "blur"])
def test_the_no_change_trial_of_a_huge_frame_count_allocates_no_clip_of_that_size(name):
    """The no-change trial tried each step on a clip of ``num_frames`` frames, so ``model.num_frames=715827882``
    ran out of memory before the frame count's own check: the trial is bounded, and a long clip is changed."""
    from savi_plugin.video.perturb import normalize_specs

    assert [spec["name"] for spec in normalize_specs([name], num_frames=715827882)] == [name]


@pytest.mark.parametrize("flag", ["--model", "--judge-model", "--tagger-model"])
@pytest.mark.parametrize("given, what", [("lmms-lab/LLaVA-Video-7B-Qwen2", "no such file or folder"),
                                         ("qa.jsonl", "is a file, not a"), ("empty", "is an empty folder, not a")])
def test_a_model_flag_naming_no_model_folder_is_one_line_at_the_flag(flag, given, what, tiny_llava_onevision,
                                                                     tmp_path, capsys, monkeypatch):
    """A hub id at --model was exit 1 naming no flag, while the same at --judge-model was exit 2 at the flag (red
    team 23, row 31): every model path of savi generate is a value to correct, said at its flag, before any output."""
    from misuse_kit import clip

    monkeypatch.chdir(tmp_path)
    video = clip(tmp_path / "videos" / "v.mp4")
    Path("qa.jsonl").write_text(json.dumps({"id": "q1", "video": str(video), "question": "Which way?",
                                            "options": ["left", "right"], "answer": "left"}) + "\n")
    Path("empty").mkdir()
    model = given if flag == "--model" else str(tiny_llava_onevision)
    argv = ["generate", "--generator", "rrpo", "--model", model, "--input", "qa.jsonl", "--output", "pairs.jsonl",
            "--num-frames", "4", "--no-progress"] + ([flag, given] if flag != "--model" else [])
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {flag}: ") and f"{given}: {what}" in line and "nothing is downloaded" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "qa.jsonl", "videos"]  # nothing claimed


class _RunsCode:
    """A pickled object whose unpickling would create ``ran`` beside it: a checkpoint payload."""

    def __init__(self, ran: Path):
        self.ran = ran

    def __reduce__(self):
        return Path.touch, (self.ran,)


def _broken_model(kind: str, good: Path, where: Path) -> Path:
    """A copy of the model folder ``good`` at ``where`` with one defect: a file in its place, its ``config.json``
    alone (no weights), a ``config.json`` that claims more decoder layers than its weights hold, its weights as a
    ``pytorch_model.bin`` that pickles an object (which would create ``ran`` if unpickled), or a safetensors
    header relabelling its float tensors as I32 (same byte size: a valid file)."""
    import shutil
    import struct

    if kind == "a file":
        where.write_text("not a model\n")
        return where
    where.mkdir()
    if kind == "no weights":
        shutil.copy(good / "config.json", where / "config.json")
        return where
    shutil.copytree(good, where, dirs_exist_ok=True)
    if kind == "pickled bin":
        import torch
        from safetensors.torch import load_file

        weights = where / "model.safetensors"
        torch.save({**load_file(weights), "payload": _RunsCode(where.parent / "ran")}, where / "pytorch_model.bin")
        weights.unlink()
        return where
    if kind == "integer weights":
        raw = (where / "model.safetensors").read_bytes()
        size = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8:8 + size])
        for name, entry in header.items():
            if name != "__metadata__" and entry["dtype"] == "F32":
                entry["dtype"] = "I32"
        text = json.dumps(header, separators=(",", ":")).encode()
        assert len(text) <= size
        (where / "model.safetensors").write_bytes(raw[:8] + text.ljust(size) + raw[8 + size:])
        return where
    config = json.loads((where / "config.json").read_text())
    text = config.get("text_config", config)
    text["num_hidden_layers"] = text["num_hidden_layers"] + 3
    (where / "config.json").write_text(json.dumps(config))
    return where


#: every role savi generate loads a model in: (generator, the words that give the path, how the refusal names it)
MODEL_ROLES = {"policy": ("rrpo", ["--model"], "--model: "),
               "judge": ("rrpo", ["--judge-model"], "--judge-model: judge_model: "),
               "tagger": ("rrpo", ["--tagger-model"], "--tagger-model: tagger_model: "),
               "scorer": ("videosavi", ["-o", "scorer="], "--option scorer: scorer: ")}
#: each defect and what the one loader check (data.model_config.loadable_model_problem) says of it
MODEL_DEFECTS = {"a file": "is a file, not a model folder",
                 "no weights": "holds no weight file",
                 "lying config": "config.json: text_config.num_hidden_layers: ",
                 "pickled bin": "pytorch_model.bin: refused to load a checkpoint that holds pickled Python objects",
                 "integer weights": "model.safetensors: tensor '"}


@pytest.mark.parametrize("defect", sorted(MODEL_DEFECTS))
@pytest.mark.parametrize("role", sorted(MODEL_ROLES))
def test_every_model_role_gets_the_one_loader_check(role, defect, tiny_llava_onevision, tmp_path, capsys,
                                                    monkeypatch):
    """The similarity scorer was checked for config.json only: one without weights, or whose config.json lies,
    passed and loaded (or not) mid-run. Every model savi generate loads is asked the same question
    (``data.model_config.loadable_model_problem``) before anything is claimed, and the refusal names the flag or
    option. A pickled ``pytorch_model.bin`` was refused naming no file, exit 1, and integer-relabelled weights
    loaded (pass 24 F rows 12/13): both are named at their file, exit 2, and the pickle's code never runs."""
    from misuse_kit import clip

    monkeypatch.chdir(tmp_path)
    video = clip(tmp_path / "videos" / "v.mp4")
    Path("qa.jsonl").write_text(json.dumps({"id": "q1", "video": str(video), "question": "Which way?",
                                            "options": ["left", "right"], "answer": "left"}) + "\n")
    broken = _broken_model(defect, Path(tiny_llava_onevision), tmp_path / "broken")
    generator, words, named = MODEL_ROLES[role]
    given = [words[0], f"{words[1]}{broken}"] if len(words) == 2 else [words[0], str(broken)]
    model = str(broken) if role == "policy" else str(tiny_llava_onevision)
    argv = ["generate", "--generator", generator, "--model", model, "--input",
            "qa.jsonl" if generator == "rrpo" else "videos", "--output", "pairs.jsonl", "--num-frames", "4",
            "--no-progress"] + (given if role != "policy" else [])
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"error: {named}{broken}: ") and MODEL_DEFECTS[defect] in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "qa.jsonl", "videos"]  # nothing claimed, nor run


@pytest.mark.parametrize("adapter, what", [("missing", "no such file or folder"),
                                           ("videos", "is a folder without adapter_config.json, not an adapter folder"),
                                           ("qa.jsonl", "is a file, not an adapter folder")])
def test_an_adapter_that_is_not_an_adapter_folder_is_refused_before_the_output_is_claimed(adapter, what, tmp_path,
                                                                                          capsys, monkeypatch):
    """peft refused it only after the output was claimed and the model loaded (exit 1), and the corrected command
    was then refused as another configuration."""
    from misuse_kit import clip

    monkeypatch.chdir(tmp_path)
    video = clip(tmp_path / "videos" / "v.mp4")
    Path("qa.jsonl").write_text(json.dumps({"id": "q1", "video": str(video), "question": "Which way?",
                                            "options": ["left", "right"], "answer": "left"}) + "\n")
    assert main(GENERATE + ["--adapter", adapter, "--num-frames", "4", "--no-progress"]) == 2
    assert _one_error_line(capsys) == (f"error: adapter {adapter}: {what}; an adapter is the folder `savi train` "
                                       f"(or peft's save_pretrained) writes, holding adapter_config.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.jsonl", "videos"]  # nothing claimed


@pytest.mark.parametrize("damage", ["torn record", "truncated weights", "torn peft config"])
def test_a_damaged_adapter_is_refused_naming_its_file_before_the_output_is_claimed(damage, tiny_adapter, tmp_path,
                                                                                   capsys, monkeypatch):
    """A torn savi_adapter.json was taken for "no record" and the adapter applied to another base with no word
    (blind test pass 11, B #40); truncated weights failed in peft after the model loaded. One line naming the file,
    exit 2, nothing claimed."""
    from misuse_kit import clip

    from tests.builders import damaged_adapter

    monkeypatch.chdir(tmp_path)
    video = clip(tmp_path / "videos" / "v.mp4")
    Path("qa.jsonl").write_text(json.dumps({"id": "q1", "video": str(video), "question": "Which way?",
                                            "options": ["left", "right"], "answer": "left"}) + "\n")
    adapter, damaged = damaged_adapter(tiny_adapter, tmp_path / "rr", damage)
    assert main(GENERATE + ["--adapter", str(adapter), "--num-frames", "4", "--no-progress"]) == 2
    assert _one_error_line(capsys).startswith(f"error: {damaged}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qa.jsonl", "rr", "videos"]  # nothing claimed


def test_videosavi_option_name_from_options_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "opts.yaml").write_text("questions_per_video: 6\n")
    argv = ["generate", "--generator", "videosavi", "--model", "m", "--input", "videos", "--output", "p.jsonl",
            "--options", "opts.yaml"]
    assert main(argv) == 2
    assert _one_error_line(capsys).startswith("error: opts.yaml: questions_per_video: unknown option (known: ")


def test_the_same_rule_holds_on_every_route(tmp_path, capsys, monkeypatch):
    """max_new_tokens 0 and num_frames 0: the same message from a recipe, an override and a flag."""
    monkeypatch.chdir(tmp_path)
    assert main(["recipes", "show", "tiny_demo", "generate.options={max_new_tokens: 0}"]) == 2
    from_recipe = _one_error_line(capsys).split("generate.options.max_new_tokens: ", 1)[1]
    assert main(GENERATE + ["--option", "max_new_tokens=0"]) == 2
    from_flag = _one_error_line(capsys).split("--option max_new_tokens: ", 1)[1]
    assert from_recipe == from_flag == "must be >= 1, got 0"
    assert main(["recipes", "show", "tiny_demo", "model.num_frames=0"]) == 2
    from_recipe = _one_error_line(capsys).split("model.num_frames: ", 1)[1]
    with pytest.raises(SystemExit):
        main(GENERATE + ["--num-frames", "0"])
    assert from_recipe in capsys.readouterr().err


def test_backend_that_does_not_fit_the_checkpoint_fails_before_the_run(tiny_llava_onevision, synthetic_samples,
                                                                       tmp_path, capsys):
    manifest = tmp_path / "qa.jsonl"
    manifest.write_text("".join(json.dumps({"id": f"v{i}", "video": str(s.video), "question": s.question,
                                            "answer": s.answer}) + "\n" for i, s in enumerate(synthetic_samples)))
    out = tmp_path / "pairs.jsonl"
    argv = ["generate", "--generator", "rrpo", "--model", str(tiny_llava_onevision), "--input", str(manifest),
            "--output", str(out), "--backend", "qwen2_vl", "--no-progress"]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert "--backend: backend 'qwen2_vl' does not serve model_type 'llava_onevision'" in line
    assert "use llava_onevision" in line
    assert not out.exists() and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"num_frames": 0}, "num_frames: must be >= 1, got 0"),  # was silently 32
    ({"limit": -1}, "limit: must be >= 1, got -1"),  # was "all but the last item"
    ({"batch_size": 0}, "batch_size: must be >= 1, got 0"),
    ({"seed": -1}, "seed: must be >= 0, got -1"),
    ({"options": {"max_new_tokens": 0}}, "options.max_new_tokens: must be >= 1, got 0"),
])
def test_run_generation_api_applies_the_same_rules(kwargs, message, tmp_path):
    from savi_plugin.config.values import ConfigError
    from savi_plugin.generators import run_generation

    with pytest.raises(ConfigError) as err:
        run_generation(generator="rrpo", model="m", inputs=[], output=tmp_path / "pairs.jsonl", **kwargs)
    assert message in str(err.value)
    assert list(tmp_path.iterdir()) == []



def test_a_bad_decode_budget_is_the_variable_s_error_not_the_frame_count_s(tmp_path, capsys, monkeypatch):
    """The frame-count bound reads the budget; a budget outside its own range is named as the variable's error
    (it was reported as an error of --num-frames)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAVI_MAX_DECODED_BYTES", "1000TiB")
    assert main(GENERATE + ["--num-frames", "4"]) == 2
    assert _one_error_line(capsys).startswith("error: $SAVI_MAX_DECODED_BYTES: must be >= 1 and <= ")
    assert list(tmp_path.iterdir()) == []


def test_a_generator_option_given_twice_is_refused(tmp_path, capsys):
    """Pass 17 B #41: ``-o num_questions=6 -o num_questions=7`` ran with 7, the first dropped silently."""
    capsys.readouterr()
    code = main(["generate", "--generator", "videosavi", "--model", str(tmp_path / "m"), "--input", str(tmp_path),
                 "--output", str(tmp_path / "o.jsonl"), "--option", "num_questions=6", "-o", "num_questions=7"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --option: num_questions is given twice ('num_questions=6' and 'num_questions=7'); give it once"]


@pytest.mark.parametrize("flag, option, value", [
    ("--perturb", "perturbations", "occlude"), ("--prompts", "prompts", "p.yaml"),
    ("--judge-model", "judge_model", "j"), ("--tagger-model", "tagger_model", "t")])
@pytest.mark.parametrize("order", ["flag first", "option first"])
def test_an_option_set_by_its_flag_and_by_option_is_refused(flag, option, value, order, tmp_path, capsys):
    """Pass 21 D #17: ``--perturb occlude -o perturbations=[shuffle]`` ran with occlude, the other dropped silently."""
    capsys.readouterr()
    pair = [[flag, value], ["-o", f"{option}=x"]]
    words = [w for part in (pair if order == "flag first" else pair[::-1]) for w in part]
    code = main(["generate", "--generator", "rrpo", "--model", str(tmp_path / "m"), "--input", str(tmp_path),
                 "--output", str(tmp_path / "o.jsonl"), *words])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {flag}: {option} is given twice ({flag} and '{option}=x'); give it once"]
    assert not (tmp_path / "o.jsonl").exists()


def test_the_command_line_replaces_an_options_file_s_value_and_says_so(tmp_path, monkeypatch, caplog):
    """Pass 21 D #18: ``--options o.yaml -o temperature=0.7`` replaced the file's 0.5 with no word."""
    import argparse

    from savi_plugin.cli.generate import parse_options

    monkeypatch.chdir(tmp_path)
    (tmp_path / "o.yaml").write_text("temperature: 0.5\nperturbations: [shuffle]\ntop_p: 0.9\n")
    args = argparse.Namespace(options="o.yaml", option=["temperature=0.7"], prompts=None, perturb="occlude",
                              judge_model=None, tagger_model=None)
    with caplog.at_level("WARNING", logger="savi_plugin.cli.generate"):
        options = parse_options(args)
    assert options == {"temperature": 0.7, "perturbations": "occlude", "top_p": 0.9}
    assert sorted(r.getMessage() for r in caplog.records) == [
        "--option temperature=0.7 replaces temperature: 0.5 of o.yaml",
        "--perturb replaces perturbations: ['shuffle'] of o.yaml"]


def test_a_gen_kwargs_value_that_reads_as_zero_is_refused_before_lmms_eval(tmp_path, capsys):
    """Pass 17 B #52: ``--gen-kwargs temperature=1e-400`` was stored in card.json as temperature 0.0."""
    capsys.readouterr()
    code = main(["eval", "suite", "savi_egoschema", "--model", str(tmp_path / "m"), "--adapter", str(tmp_path / "a"),
                 "--out", str(tmp_path / "o"), "--gen-kwargs", "temperature=1e-400,do_sample=True"])
    assert code == 2 and not (tmp_path / "o").exists()
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --gen-kwargs 'temperature=1e-400,do_sample=True': temperature: '1e-400' is too small for a "
        "floating-point number (it would read as 0)"]


@pytest.mark.parametrize("where", ["file", "override", "extends"])
def test_a_nul_character_in_a_recipe_text_is_named_at_its_key_path(where, tmp_path, monkeypatch, capsys):
    """Pass 19 C #12: a NUL in a recipe's path value ended as Python's ``embedded null byte`` (exit 1), naming no
    file or key."""
    monkeypatch.chdir(tmp_path)
    if where == "file":
        (tmp_path / "r.yaml").write_text('extends: tiny_demo\nmodel:\n  path: "m\\0"\n')
        argv, named = ["recipes", "show", "./r.yaml"], "error: r.yaml: model.path: 'm\\x00' contains a NUL character"
    elif where == "extends":
        (tmp_path / "r.yaml").write_text('extends: "tiny_demo\\0"\n')
        argv, named = ["recipes", "show", "./r.yaml"], "error: r.yaml: extends: 'tiny_demo\\x00' contains a NUL"
    else:
        argv, named = ["recipes", "show", "tiny_demo", 'model.path="m\\0"'], "model.path: 'm\\x00' contains a NUL"
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and named.split("error: ")[-1] in err[0], err


@pytest.mark.parametrize("command, flag, key, value", [
    ("train", "--model", "model.path", "a"), ("train", "--data", "data.pairs", "a"),
    ("train", "--output-dir", "train.output_dir", "a"), ("align", "--iterations", "align.iterations", "2"),
    ("ablate", "--pairs", "data.pairs", "a")])
@pytest.mark.parametrize("form", ["key", "section", "loss-prefixed"])
def test_a_flag_and_an_override_of_its_key_are_refused_as_given_twice(command, flag, key, value, form, tmp_path,
                                                                     monkeypatch, capsys):
    """Pass 21 D #34 (and its replay's neighbours): ``--output-dir a train.output_dir=b`` trained into ``a``, and
    ``savi align --iterations 2 align.iterations=1`` ran 2, the override dropped silently; a value the recipe file
    holds is still replaced by the flag (the flag's purpose)."""
    if form == "loss-prefixed" and command != "ablate":
        pytest.skip("LOSS:key=value is savi ablate's form")
    section, _, leaf = key.rpartition(".")
    override = {"key": f"{key}=1", "section": f"{section}={{{leaf}: 1}}", "loss-prefixed": f"dpo:{key}=1"}[form]
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    extra = ["--out", "o"] if command in ("align", "ablate") else []
    assert main([command, "tiny_demo", flag, value, override, *extra, "--dry-run"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {flag}: {key} is given twice ({flag} and override {override!r}); give it once"]
    assert list(tmp_path.iterdir()) == []

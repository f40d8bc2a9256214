"""Every entry point that takes a device refuses one it cannot run on here with one line naming its flag or
model_args key, exit 2, nothing created (red team 5: ``savi generate --device meta`` loaded the model, failed every
item as a machine error and left its output, progress and report files). The check is savi_plugin/device.py."""

from __future__ import annotations

import json

import pytest
import torch

from misuse_kit import assert_one_line_error, clip, qa_item, savi
from savi_plugin.device import ACCEPTED

CUDA = torch.cuda.device_count() if torch.cuda.is_available() else 0
MPS = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


# ------------------------------------------------------------------------------------------------ entry points
#: how each entry point is driven: argv for ``savi`` (the device in ``{}``), and the name its line must carry
ENTRY_POINTS = {
    "generate": (lambda model, qa, out, d: ["generate", "--generator", "rrpo", "--model", model, "--input", qa,
                                            "--num-frames", "4", "--no-progress", "--output", out, "--device", d],
                 "--device"),
    "generate scorer_device": (lambda model, qa, out, d: [
        "generate", "--generator", "videosavi", "--model", model, "--input", qa, "--num-frames", "4",
        "--no-progress", "--output", out, "--device", "cpu", "-o", f"scorer_device={json.dumps(d)}"],
        "scorer_device"),
    "eval run --device": (lambda model, qa, out, d: [
        "eval", "run", "--", "--model", "savi_video", "--model_args", f"pretrained={model}", "--tasks",
        "savi_mvbench", "--output_path", out, "--device", d], "--device"),
    "eval run model_args": (lambda model, qa, out, d: [
        "eval", "run", "--", "--model", "savi_video", "--model_args", f"pretrained={model},device={d}", "--tasks",
        "savi_mvbench", "--output_path", out], "--model_args device"),
    "eval suite": (lambda model, qa, out, d: ["eval", "suite", "savi_mvbench", "--model", model, "--adapter", model,
                                              "--out", out, "--device", d], "--device"),
    "bench gpu": (lambda model, qa, out, d: ["bench", "gpu", "--scale", "small", "--work-dir", out, "--device", d],
                  "--device"),
}
#: a cross-section of REFUSED for the slower paths (each kind of refusal once)
ENTRY_DEVICES = ["meta", "xla", "cuda:x", f"cuda:{CUDA}", *([] if MPS else ["mps"])]


@pytest.mark.parametrize("device", ENTRY_DEVICES)
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_every_entry_point_refuses_a_device_before_anything_is_created(entry, device, tiny_llava_onevision,
                                                                       tmp_path, capsys, monkeypatch):
    if entry == "eval run model_args" and "," in device:
        pytest.skip("a comma splits lmms-eval's model_args")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # bench gpu pins a GPU through it; restored after the test
    inputs = tmp_path / "in"
    inputs.mkdir()
    qa = inputs / "qa.jsonl"
    qa.write_text(json.dumps(qa_item("q1", clip(inputs / "v.mp4", frames=4))) + "\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    argv, flag = ENTRY_POINTS[entry]
    try:
        code, _, err = savi(capsys, *argv(str(tiny_llava_onevision), str(qa), str(tmp_path / "out"), device))
    except SystemExit as exit_:  # a flag argparse checks (bench options): its usage, then one error line
        code, err = exit_.code, capsys.readouterr().err
        err = "\n".join(line.split(": ", 1)[1] for line in err.splitlines() if ": error: " in line)
    line = assert_one_line_error(err, flag, repr(device))
    assert code == 2, (code, line)
    assert sorted(p.name for p in tmp_path.iterdir()) == before, line
    assert sorted(p.name for p in inputs.iterdir()) == ["qa.jsonl", "v.mp4"], line


@pytest.mark.parametrize("device", ENTRY_DEVICES)
def test_savi_video_refuses_a_device_before_loading(device):
    """The savi_video wrapper inside lmms-eval: one SettingError line naming the model_arg, before any model loads
    (``pretrained`` names nothing, so reaching the load would say 'cannot load')."""
    from savi_plugin.eval.model import SaviVideo, SettingError

    with pytest.raises(SettingError) as err:
        SaviVideo(pretrained="/never/loaded", device=device)
    message = str(err.value)
    assert message.startswith(f"savi_video: device={device!r}") and "\n" not in message, message
    assert ACCEPTED in message or "use auto or cpu" in message


# ------------------------------------------------------------------------------------------------ precision
#: every command that trains, driven with a recipe file (``{recipe}``) into ``{out}`` (pass 24 H #23)
TRAINING_ENTRY_POINTS = {
    "train": lambda recipe, pairs, out: ["train", recipe, "--data", pairs, "--output-dir", out],
    "align": lambda recipe, pairs, out: ["align", recipe, "--out", out],
    "ablate": lambda recipe, pairs, out: ["ablate", recipe, "--losses", "dpo,rrpo", "--pairs", pairs, "--out", out,
                                          "--no-benchmarks"],
    "demo": lambda recipe, pairs, out: ["demo", "--recipe", recipe, "--out", out],
    "demo --seeds": lambda recipe, pairs, out: ["demo", "--recipe", recipe, "--out", out, "--seeds", "2"],
}
#: the precision keys transformers (or accelerate, silently) cannot honour on a machine without a GPU
PRECISION_KEYS = ["bf16", "fp16", "tf32", "bf16_full_eval", "fp16_full_eval"]


@pytest.mark.skipif(CUDA > 0, reason="a GPU honours these keys")
@pytest.mark.parametrize("key", PRECISION_KEYS)
@pytest.mark.parametrize("entry", sorted(TRAINING_ENTRY_POINTS))
def test_a_precision_this_machine_lacks_is_refused_before_anything_by_every_command_that_trains(
        entry, key, tiny_llava_onevision, tmp_path, capsys):
    """A recipe that sets ``train.bf16`` (``fp16``, ``tf32`` ...) on a machine without a GPU: every command that
    trains refuses it before loading or writing anything, one line naming the recipe file and the key, with the
    remedy in the recipe's terms (``train.bf16=false``), exit 2 -- the dry run notes the same key by the same rule
    (``training.arguments.precision_problems``). transformers' own line named the section, not the key, and advised
    ``use_cpu``."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    video = clip(inputs / "v.mp4", frames=4)
    (inputs / "qa.jsonl").write_text(json.dumps(qa_item("q1", video)) + "\n")
    pairs = inputs / "pairs.jsonl"
    pairs.write_text(json.dumps({"id": "a", "video": str(video), "prompt": "Q?", "chosen": "red",
                                 "rejected": "blue"}) + "\n")
    recipe = inputs / "r.yaml"
    recipe.write_text(f"extends: tiny_demo\nmodel: {{path: {tiny_llava_onevision}}}\ndata: {{qa: qa.jsonl}}\n"
                      f"align: {{eval_every_iteration: false, iterations: 1}}\ntrain: {{{key}: true}}\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = savi(capsys, *TRAINING_ENTRY_POINTS[entry](recipe, pairs, tmp_path / "runs" / "x"))
    assert code == 2, err
    assert_one_line_error(err, str(recipe), f"train.{key}: this machine has no GPU", f"train.{key}=false")
    assert "use_cpu if you want" not in err and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing loaded, claimed or made
    if entry in ("train", "align"):  # the dry run notes what the run refuses, by the same rule
        code, out, err = savi(capsys, *TRAINING_ENTRY_POINTS[entry](recipe, pairs, tmp_path / "runs" / "x"),
                              "--dry-run")
        assert code == 0, err
        assert f"note: train.{key}: this machine has no GPU" in out and "the real run refuses it here" in out

"""Misuse: runs that would finish with exit code 0 and a wrong result.

* ``savi train --resume`` with another configuration (learning rate, loss, beta, data file, the data file's
  content, LoRA rank, model) is refused naming what changed -- the configuration fingerprint generation uses;
  a change that only extends the run (``max_steps``) resumes.
* ``savi align`` re-run in a run folder with another recipe, model or backend is refused naming what changed.
* A non-finite step is neither logged as loss 0.0 nor averaged into ``train_loss``, and a run that skipped more
  than ``max_nonfinite_fraction`` of its steps fails (no adapter).
* An item that failed for a transient reason (the model raised: out of memory) is not marked done: the command
  exits 1 saying so, and the next run retries it; an item that failed because of its input is final.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest
import yaml

from misuse_kit import assert_one_line_error, clip, pair, qa_item, savi, savi_process
from tests.builders import write_jsonl


# ------------------------------------------------------------------------------------------------ train resume
def recipe(path: Path, model, **train) -> Path:
    body = {"model": {"path": str(model), "num_frames": 4}, "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
            "train": {"loss_type": "rrpo", "learning_rate": 1.0e-4, "max_steps": 1, "per_device_train_batch_size": 2,
                      "save_strategy": "steps", "save_steps": 1, "use_cpu": True, "logging_steps": 1,
                      "disable_tqdm": True, "seed": 0, **train}}
    path.write_text(yaml.safe_dump(body))
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("videos")
    return [clip(folder / f"v{i}.mp4", frames=8, seed=i) for i in range(2)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_llava_onevision, videos) -> Path:
    """A folder with a finished one-step run (checkpoint-1), its recipe and data."""
    from savi_plugin.cli import main

    folder = tmp_path_factory.mktemp("trained")
    write_jsonl(folder / "pairs.jsonl", [pair("a", videos[0]), pair("b", videos[1], "green")])
    recipe(folder / "r.yaml", tiny_llava_onevision)
    assert main(["train", str(folder / "r.yaml"), "--data", str(folder / "pairs.jsonl"),
                 "--output-dir", str(folder / "out")]) == 0
    assert (folder / "out" / "checkpoint-1" / "trainer_state.json").exists()
    return folder


CHANGES = {
    "learning_rate": (["train.learning_rate=0.002"], "training.learning_rate"),
    "loss": (["train.loss_type=dpo"], "training.loss_type"),
    "beta": (["train.beta=0.5"], "training.beta"),
    "lora_rank": (["lora.r=8"], "lora.r"),
    "data_file": ([], "data_sha256"),
    "data_content": ([], "data_sha256"),
    "model": ([], "identity.model changed content"),  # compared by content, not by path
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_train_resume_with_another_configuration_is_refused(change, trained, tiny_qwen2_vl, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(trained, folder)
    overrides, named = CHANGES[change]
    data, argv = folder / "pairs.jsonl", []
    if change == "data_file":  # another file (the same content at another path is the same data)
        data = write_jsonl(folder / "other.jsonl", [json.loads(data.read_text().splitlines()[0])])
    elif change == "data_content":
        lines = data.read_text().splitlines()
        data.write_text(lines[1] + "\n" + lines[0] + "\n")
    elif change == "model":
        argv = ["--model", str(tiny_qwen2_vl)]
    before = sorted(p.name for p in (folder / "out").iterdir())
    code, _, err = savi(capsys, "train", folder / "r.yaml", "--data", data, "--output-dir", folder / "out",
                        "--resume", *argv, *overrides)
    assert code == 1
    assert_one_line_error(err, str(folder / "out"), "different configuration", named)
    assert sorted(p.name for p in (folder / "out").iterdir()) == before


def test_train_resume_that_only_extends_the_run_continues(trained, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(trained, folder)
    code, _, err = savi(capsys, "train", folder / "r.yaml", "--data", folder / "pairs.jsonl", "--output-dir",
                        folder / "out", "--resume", "train.max_steps=2")
    assert code == 0, err
    report = json.loads((folder / "out" / "train_report.json").read_text())
    assert report["global_step"] == 2
    assert [h["step"] for h in report["log_history"] if "loss" in h] == [1, 2]  # step 1 came from the checkpoint


# ------------------------------------------------------------------------------------------------ non-finite steps
@pytest.fixture
def nan_after_first_step(monkeypatch):
    """Every loss after the first is NaN, as after weights that blew up (the values layer refuses the absurd
    learning rate that used to provoke it: numbers are at most 2^32 - 1)."""
    from savi_plugin.training.scoring import Objective

    original, calls = Objective.__call__, []

    def poisoned(self, scores, batch):
        loss, losses, metrics = original(self, scores, batch)
        calls.append(1)
        return (loss * float("nan"), losses * float("nan"), metrics) if len(calls) > 1 else (loss, losses, metrics)

    monkeypatch.setattr(Objective, "__call__", poisoned)


def test_a_run_that_skips_most_steps_fails_and_logs_no_fake_zero(tiny_llava_onevision, videos, tmp_path, capsys,
                                                                  nan_after_first_step):
    data = write_jsonl(tmp_path / "pairs.jsonl", [pair("a", videos[0]), pair("b", videos[1], "green")])
    # Step 1 is finite, every later loss is NaN and skipped.
    r = recipe(tmp_path / "r.yaml", tiny_llava_onevision, learning_rate=1.0e-4, max_steps=6, save_strategy="no",
               per_device_train_batch_size=1)
    out = tmp_path / "out"
    code, _, err = savi(capsys, "train", r, "--data", data, "--output-dir", out)
    assert code == 1
    assert_one_line_error(err, "optimizer steps were skipped", "max_nonfinite_fraction")
    report = json.loads((out / "train_report.json").read_text())
    assert report["failed"] and report["nonfinite_steps"] >= 4
    assert not (out / "adapter_model.safetensors").exists()
    losses = [h["loss"] for h in report["log_history"] if "loss" in h]
    assert 0.0 not in losses and losses[0] is not None and losses[-1] is None
    assert report["train_metrics"]["train_loss"] == pytest.approx(losses[0])  # only the applied step


def test_skipped_steps_are_not_averaged_into_train_loss(tiny_llava_onevision, videos, tmp_path, capsys,
                                                         nan_after_first_step):
    data = write_jsonl(tmp_path / "pairs.jsonl", [pair("a", videos[0]), pair("b", videos[1], "green")])
    r = recipe(tmp_path / "r.yaml", tiny_llava_onevision, learning_rate=1.0e-4, max_steps=3, save_strategy="no",
               per_device_train_batch_size=1, max_nonfinite_fraction=1.0)
    code, _, err = savi(capsys, "train", r, "--data", data, "--output-dir", tmp_path / "out")
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "train_report.json").read_text())
    applied = [h["loss"] for h in report["log_history"] if h.get("loss") is not None]
    assert report["nonfinite_steps"] == 3 - len(applied) >= 1
    assert report["train_metrics"]["train_loss"] == pytest.approx(sum(applied) / len(applied))


# ------------------------------------------------------------------------------------------------ align re-run
@pytest.fixture(scope="module")
def align_qa(tmp_path_factory, videos) -> str:
    """The ``data.qa=`` override of the align runs: a two-video QA manifest."""
    qa = write_jsonl(tmp_path_factory.mktemp("align_qa") / "qa.jsonl",
                     [qa_item(f"q{i}", v) for i, v in enumerate(videos)])
    return f"data.qa={qa}"


@pytest.fixture(scope="module")
def align_folder(tmp_path_factory, align_qa) -> Path:
    """A run folder whose ``savi align tiny_demo`` was killed right after it recorded its recipe."""
    folder = tmp_path_factory.mktemp("align") / "run"
    proc = savi_process("align", "tiny_demo", align_qa, "--out", folder)
    deadline = time.time() + 240
    while not (folder / "manifest.json").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert (folder / "manifest.json").exists()
    return folder


@pytest.mark.parametrize("override,named", [("model.backend=qwen2_vl", "model.backend"),
                                            ("model.path=tiny://qwen2_vl", "model.path"),
                                            ("train.learning_rate=0.01", "train.learning_rate"),
                                            ("generate.batch_size=3", "generate.batch_size")])
def test_align_rerun_with_another_recipe_is_refused(override, named, align_folder, align_qa, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(align_folder, folder)
    before = (folder / "manifest.json").read_text()
    code, _, err = savi(capsys, "align", "tiny_demo", align_qa, "--out", folder, override)
    assert code == 1
    assert_one_line_error(err, str(folder), "different configuration", named)
    assert (folder / "manifest.json").read_text() == before


# ------------------------------------------------------------------------------------------------ transient failures
class FlakyModel:
    """The real tiny backend, except that its first ``generate`` calls raise what a full GPU raises."""

    def __init__(self, lm, failures: int):
        self._lm, self.failures = lm, failures

    def __getattr__(self, name):
        return getattr(self._lm, name)

    def generate(self, *args, **kwargs):
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self._lm.generate(*args, **kwargs)


def test_an_item_that_failed_for_a_transient_reason_is_retried(tiny_llava_onevision, videos, tmp_path, capsys):
    from savi_plugin.generators import run_generation
    from savi_plugin.models import load_backend

    lm = load_backend(tiny_llava_onevision, num_frames=4)
    manifest = write_jsonl(tmp_path / "qa.jsonl", [qa_item("q0", videos[0]), qa_item("q1", videos[1])])
    out = tmp_path / "pairs.jsonl"
    options = {"answer_format": "raw", "num_perturbations": 1, "max_new_tokens": 6}
    first = run_generation(generator="rrpo", model=FlakyModel(lm, failures=10), inputs=manifest, output=out,
                           batch_size=2, options=options, progress=False)
    assert not first["complete"] and first["counts"]["items_to_retry"] == 2
    assert {e["reason"] for e in first["failed"]} == {"generation_error"}
    second = run_generation(generator="rrpo", model=lm, inputs=manifest, output=out, batch_size=2,
                            options=options, progress=False)
    assert second["complete"] and second["counts"]["failed"] == 0 and second["throughput"]["items"] == 2
    assert second["counts"]["pairs"] == second["records_in_output"] > 0


def test_the_cli_retries_what_failed_transiently_and_never_what_failed_for_its_input(tiny_llava_onevision, videos,
                                                                                     tmp_path, capsys):
    from savi_plugin.generators import run_generation
    from savi_plugin.models import load_backend

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    manifest = write_jsonl(tmp_path / "qa.jsonl", [qa_item("bad", broken), qa_item("q0", videos[0])])
    out = tmp_path / "pairs.jsonl"
    options = {"answer_format": "raw", "num_perturbations": 1, "max_new_tokens": 6}
    lm = load_backend(tiny_llava_onevision, num_frames=4)
    first = run_generation(generator="rrpo", model=FlakyModel(lm, failures=10), inputs=manifest, output=out,
                           num_frames=4, batch_size=1, options=options, progress=False)
    assert {e["item"]: e["reason"] for e in first["failed"]} == {"bad": "decode_error", "q0": "generation_error"}
    code, printed, err = savi(capsys, "generate", "--generator", "rrpo", "--model", tiny_llava_onevision,
                              "--input", manifest, "--output", out, "--num-frames", "4", "--batch-size", "1",
                              "--no-progress", *[f"--option={k}={v}" for k, v in options.items()])
    assert code == 0, err
    report = json.loads(out.with_name("pairs.jsonl.report.json").read_text())
    assert report["complete"] and report["throughput"]["items"] == 1  # q0 again; "bad" is final
    assert [e["item"] for e in report["failed"]] == ["bad"] and report["counts"]["pairs"] > 0


def test_a_fresh_run_beside_another_configurations_checkpoints_is_refused(trained, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(trained, folder)  # checkpoint-1 of a learning rate 1e-4 run
    code, _, err = savi(capsys, "train", folder / "r.yaml", "--data", folder / "pairs.jsonl", "--output-dir",
                        folder / "out", "train.learning_rate=0.3")
    assert code == 1  # without --resume too: a later --resume would continue from the other run's checkpoint
    assert_one_line_error(err, "different configuration", "training.learning_rate")


# ------------------------------------------------------------------------------------------------ truncation
def test_pairs_the_token_budget_cuts_into_no_tagged_token_are_refused_counted_or_a_recipe_error(
        tiny_llava_onevision, videos, tmp_path, capsys):
    """red team 6: RRPO pairs whose max_length cut every tagged token trained at loss ln 2, reported as used. A pair
    cut that way is refused naming file:line and max_length, or skipped and counted (truncated_away); a budget
    that cuts every pair is a recipe error at train.max_length, before the first step."""
    from savi_plugin.models import load_backend
    from savi_plugin.training.collator import PreferenceCollator, needed_room
    from savi_plugin.training.dataset import PreferenceDataset

    late = "The shape is, after a long look at the whole clip from its first frame to its last, {}."
    data = write_jsonl(tmp_path / "pairs.jsonl", [
        pair("a", videos[0]), pair("b", videos[1], "green"),
        pair("late", videos[0], chosen=late.format("red"), chosen_tagged=late.format("<MASK>red</MASK>"))])
    backend = load_backend(tiny_llava_onevision, num_frames=4)
    items = PreferenceDataset(data, backend.tokenizer, backend.end_of_turn, require_tags=True).items
    prompt = PreferenceCollator(backend, num_frames=4)([items[0]]).prompt.segments[0, 0].item()
    need = {item.record.id: needed_room(item, True)[0] for item in items}
    max_length = prompt + need["late"] - 1  # one token short of the late pair's first tag; the others keep theirs
    assert prompt + max(need["a"], need["b"]) <= max_length

    code, _, err = savi(capsys, "train", recipe(tmp_path / "r.yaml", tiny_llava_onevision, max_length=max_length),
                        "--data", data, "--output-dir", tmp_path / "raised")
    assert code != 0
    assert_one_line_error(err, "pairs.jsonl:3:chosen_tagged", f"max_length={max_length}")
    assert not (tmp_path / "raised" / "adapter_model.safetensors").exists()

    skip = recipe(tmp_path / "s.yaml", tiny_llava_onevision, max_length=max_length, bad_records="skip")
    code, _, err = savi(capsys, "train", skip, "--data", data, "--output-dir", tmp_path / "skipped")
    assert code == 0, err
    report = json.loads((tmp_path / "skipped" / "train_report.json").read_text())
    assert report["dataset"]["pairs"] == 2 and report["dataset"]["skipped_by_reason"] == {"truncated_away": 1}
    assert [r["line"] for r in report["dataset"]["skipped_records"]] == [3]
    tagged = [e["rrpo/chosen_phrase_tokens"] for e in report["log_history"] if "rrpo/chosen_phrase_tokens" in e]
    assert tagged and all(t > 0 for t in tagged)  # every pair trained carries its tagged tokens

    code, _, err = savi(capsys, "train", recipe(tmp_path / "c.yaml", tiny_llava_onevision, max_length=prompt + 2),
                        "--data", data, "--output-dir", tmp_path / "cut")
    assert code == 2
    assert_one_line_error(err, "train.max_length", "cuts every one of the 3 pair(s)")
    assert not (tmp_path / "cut" / "adapter_model.safetensors").exists()


@pytest.mark.parametrize("bad_records", ["raise", "skip"])
def test_a_max_length_below_every_question_is_a_recipe_error_at_train_max_length(bad_records, tiny_llava_onevision,
                                                                                   videos, tmp_path, capsys):
    """`train.max_length=2` holds no pair's question: it was reported as the first line's `question` (exit 1), the
    recipe's value being what to correct (red team 23, row 29). Exit 2 at `train.max_length`, naming the shortest
    question; a budget that one question fits leaves the others the pairs' own refusals (`file:line:question`)."""
    from savi_plugin.models import load_backend

    long_question = "What colour is the shape that moves from the left edge of the clip to its right edge?"
    rows = [pair("a", videos[0], question=long_question), pair("b", videos[1], "green")]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    tokenizer = load_backend(tiny_llava_onevision, num_frames=4).tokenizer
    lengths = [len(tokenizer(r["question"], add_special_tokens=False)["input_ids"]) for r in rows]
    assert lengths[0] > lengths[1] >= 2

    every = recipe(tmp_path / "e.yaml", tiny_llava_onevision, max_length=lengths[1], bad_records=bad_records)
    code, _, err = savi(capsys, "train", every, "--data", data, "--output-dir", tmp_path / "every")
    assert code == 2
    assert_one_line_error(err, "train.max_length", f"shortest question is {lengths[1]} tokens")
    assert not (tmp_path / "every").exists()  # nothing marked: the corrected command is not another configuration

    one = recipe(tmp_path / "o.yaml", tiny_llava_onevision, max_length=lengths[1] + 1, bad_records="raise")
    code, _, err = savi(capsys, "train", one, "--data", data, "--output-dir", tmp_path / "one")
    assert code == 1
    assert_one_line_error(err, "pairs.jsonl:1:question", f"the question alone is {lengths[0]} tokens")

"""Checkpoints carry their run's identity: a re-run continues an unfinished run of the same configuration from its
last complete checkpoint (a torn one is removed, never used), and a checkpoint of another run is refused by name.

Every case goes through ``savi train`` (``savi_plugin.cli.main``) on the tiny real model; the interrupted states
(stopped after a checkpoint, stopped while saving one as a full disk stops it) are made from a finished run by
removing what a stop would not have written: its report, the later checkpoints, and a torn checkpoint's state.
Each checkpoint records the size and SHA-256 of every file a resume loads from it; the one resumed from is checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from tests.builders import write_answer_pairs

STEPS = 3


def _recipe(path: Path, model: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "model": {"path": str(model), "num_frames": 4}, "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {"loss_type": "rrpo", "learning_rate": 1.0e-3, "max_steps": STEPS, "per_device_train_batch_size": 2,
                  "save_strategy": "steps", "save_steps": 1, "use_cpu": True, "logging_steps": 1,
                  "disable_tqdm": True, "seed": 0}}))
    return path


def _savi(capsys, *argv) -> tuple[int, str]:
    from savi_plugin.cli import main

    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _losses(report: Path) -> dict[int, float]:
    history = json.loads(report.read_text())["log_history"]
    return {h["step"]: h["loss"] for h in history if "loss" in h}


def _files(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its modification time (ns): what a command rewrote, and what it left."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_llava_onevision, synthetic_samples):
    """A finished 3-step run (a checkpoint at every step) and the command that made it."""
    root = tmp_path_factory.mktemp("ckpt")
    data = write_answer_pairs(root / "pairs.jsonl", synthetic_samples[:6])
    recipe = _recipe(root / "r.yaml", tiny_llava_onevision)
    out = root / "run"
    argv = ["train", recipe, "--data", data, "--output-dir", out]
    from savi_plugin.cli import main

    assert main([str(a) for a in argv]) == 0
    return out, argv


def _copy(finished, tmp_path) -> tuple[Path, list]:
    out, argv = finished
    shutil.copytree(out, tmp_path / "run")
    return tmp_path / "run", [tmp_path / "run" if a == out else a for a in argv]


def test_every_checkpoint_carries_the_run_identity_of_the_folder(finished):
    from savi_plugin.training.checkpoints import read_identity
    from savi_plugin.training.run import last_complete_checkpoint

    out, _ = finished
    runs = {read_identity(out / f"checkpoint-{n}")["run"] for n in range(1, STEPS + 1)}
    assert len(runs) == 1 and len(runs.pop()) == 64
    assert last_complete_checkpoint(out) == str(out / f"checkpoint-{STEPS}")  # judged by the folder's mark


def test_an_interrupted_run_rerun_as_typed_continues_from_its_last_complete_checkpoint(finished, tmp_path, capsys,
                                                                                      caplog):
    """Stopped while saving checkpoint-2 (a full disk, or Ctrl-C): the command as typed, no --resume, continues
    from checkpoint-1, which it leaves as it was, and removes the torn checkpoint-2 before writing it again."""
    out, argv = _copy(finished, tmp_path)
    expected = _losses(out / "train_report.json")
    (out / "train_report.json").unlink()
    shutil.rmtree(out / "checkpoint-3")
    for name in ("trainer_state.json", "optimizer.pt"):  # torn: its state never written
        (out / "checkpoint-2" / name).unlink()
    (out / "checkpoint-2" / "stale.bin").write_bytes(b"half")  # what the stopped save left
    kept = _files(out / "checkpoint-1")

    caplog.set_level("INFO")
    code, err = _savi(capsys, *argv)
    assert code == 0, err
    assert f"continuing from {out / 'checkpoint-1'}" in caplog.text and "checkpoint-2 is incomplete" in caplog.text
    assert _files(out / "checkpoint-1") == kept  # not trained again
    assert not (out / "checkpoint-2" / "stale.bin").exists()
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()
    got = _losses(out / "train_report.json")
    assert sorted(got) == list(range(1, STEPS + 1))
    for step in got:
        assert abs(got[step] - expected[step]) <= 1e-6, (step, got, expected)
    # the report's train_loss is the whole run's (transformers' is this session's sum over the run's steps)
    whole = json.loads((finished[0] / "train_report.json").read_text())["train_metrics"]["train_loss"]
    metrics = json.loads((out / "train_report.json").read_text())["train_metrics"]
    assert abs(metrics["train_loss"] - sum(expected.values()) / STEPS) <= 1e-6, (metrics, expected)
    assert abs(metrics["train_loss"] - whole) <= 1e-5, (metrics, whole)
    assert "session_train_loss" in metrics  # transformers' own value for this session, kept beside it


def test_a_run_killed_after_its_last_checkpoint_resumes_without_a_step_past_max_steps(finished, tmp_path, capsys,
                                                                                      caplog):
    """Killed after saving checkpoint-1 of a 1-step run, before its report: the re-run continues from it and trains
    nothing more (transformers' loop would train step 2, past max_steps, and save checkpoint-2); the adapter it
    saves is checkpoint-1's."""
    from safetensors.torch import load_file

    out, argv = _copy(finished, tmp_path)
    (out / "train_report.json").unlink()
    for n in range(2, STEPS + 1):
        shutil.rmtree(out / f"checkpoint-{n}")
    kept = _files(out / "checkpoint-1")
    caplog.set_level("INFO")
    code, err = _savi(capsys, *argv, "train.max_steps=1")
    assert code == 0, err
    assert f"continuing from {out / 'checkpoint-1'}" in caplog.text
    report = json.loads((out / "train_report.json").read_text())
    assert report["global_step"] == 1 and sorted(_losses(out / "train_report.json")) == [1]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]
    assert "step 1: max_steps=1 is reached (resumed from its last checkpoint): nothing left to train" in caplog.text
    assert _files(out / "checkpoint-1") == kept
    saved, at_one = (load_file(folder / "adapter_model.safetensors") for folder in (out, out / "checkpoint-1"))
    assert saved.keys() == at_one.keys() and all(torch.equal(saved[k], at_one[k]) for k in saved)


@pytest.mark.parametrize("how", ["as typed, unfinished", "--resume"])
@pytest.mark.parametrize("shorter", ["train.max_steps=2", "train.max_steps=-1 train.num_train_epochs=0.5"])
def test_a_run_is_never_continued_past_the_end_its_configuration_asks_for(how, shorter, finished, tmp_path, capsys):
    """Pass 18 A #12, #13: a finished 6-step run resumed with ``max_steps=3``, or a run extended to 200 steps and
    killed at 23 then re-run with ``max_steps=3``, exited 0 with the longer run's adapter while the mark and report
    said 3. Every way of continuing refuses a checkpoint past the end, one line, before anything is written."""
    out, argv = _copy(finished, tmp_path)
    if how == "as typed, unfinished":
        (out / "train_report.json").unlink()
    extra = {"as typed, unfinished": [], "--resume": ["--resume"]}[how]
    before = _files(out)
    code, err = _savi(capsys, *argv, *extra, *shorter.split())
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(lines) == 1, err
    past = "at step 3, past train.max_steps=2" if "max_steps=2" in shorter else "past train.num_train_epochs=0.5"
    assert f"checkpoint-{STEPS}: this run's checkpoint is " in lines[0] and past in lines[0], lines[0]
    assert "a run is extended, never shortened" in lines[0]
    assert _files(out) == before


def test_a_finished_run_trained_anew_leaves_no_checkpoint_of_the_earlier_session(finished, tmp_path, capsys):
    """Pass 19 N10: a finished 6-step run re-run as typed with ``max_steps=3`` was trained anew beside the old
    ``checkpoint-4..6``, and ``--resume`` to 6 then "continued" from the older session's checkpoint-6, training no
    step. Trained anew, the folder holds only the new session's checkpoints."""
    out, argv = _copy(finished, tmp_path)
    code, err = _savi(capsys, *argv, "train.max_steps=2")
    assert code == 0, err
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert json.loads((out / "train_report.json").read_text())["global_step"] == 2
    code, err = _savi(capsys, *argv, "--resume", f"train.max_steps={STEPS}")
    assert code == 0, err
    assert sorted(_losses(out / "train_report.json")) == list(range(1, STEPS + 1))  # step 3 trained, not taken


def test_a_checkpoint_used_as_an_adapter_meets_only_its_run_s_base(finished, tiny_qwen2_vl):
    """``--adapter run/checkpoint-N``: the checkpoint's run identity names the base it was trained on, so another
    base is refused as it is for the run's final adapter."""
    from savi_plugin.data.identity import IdentityMismatchError, check_adapter_base

    out, _ = finished
    check_adapter_base(out / "checkpoint-1", json.loads((out / "train_report.json").read_text())["model"])
    with pytest.raises(IdentityMismatchError, match="checkpoint-1: the adapter was trained on"):
        check_adapter_base(out / "checkpoint-1", tiny_qwen2_vl)


def test_a_finished_run_rerun_trains_anew_and_resume_continues_it(finished, tmp_path, capsys):
    """A finished run re-run as typed is trained again (as before); with --resume it continues from its last
    checkpoint (here after raising max_steps, which a continuation may change)."""
    out, argv = _copy(finished, tmp_path)
    code, err = _savi(capsys, *argv, "--resume", f"train.max_steps={STEPS + 1}")
    assert code == 0, err
    assert json.loads((out / "train_report.json").read_text())["global_step"] == STEPS + 1
    assert sorted(_losses(out / "train_report.json")) == list(range(1, STEPS + 2))


def test_a_resumed_run_saves_and_logs_at_its_own_intervals(finished, tmp_path, capsys):
    """Pass 11 A #14: ``train.save_steps=20`` given with --resume to extend a run was accepted and not applied
    (transformers keeps the checkpoint's intervals), so a kill lost every step since the resume."""
    out, argv = _copy(finished, tmp_path)
    code, err = _savi(capsys, *argv, "--resume", f"train.max_steps={STEPS + 4}", "train.save_steps=2",
                      "train.logging_steps=2")
    assert code == 0, err
    new = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*") if int(p.name.split("-")[1]) > STEPS)
    assert new == [4, 6, 7], new  # every 2 steps and the last; the checkpoint's save_steps=1 would add 5
    assert sorted(step for step in _losses(out / "train_report.json") if step > STEPS) == [4, 6]


def test_a_checkpoint_of_another_configuration_is_refused_with_or_without_resume(finished, tmp_path, capsys):
    """``cp -r other/checkpoint-N run/``: refused in one line naming it and what differs, nothing touched;
    without its identity file it is refused as not this run's."""
    from savi_plugin.training.checkpoints import CHECKPOINT_FILE, ForeignCheckpointError
    from savi_plugin.training.run import last_complete_checkpoint

    out, argv = _copy(finished, tmp_path)
    other = tmp_path / "other"
    code, err = _savi(capsys, *[other if a == out else a for a in argv], "train.learning_rate=1e-5",
                      "train.max_steps=4", "train.save_steps=4")
    assert code == 0, err
    shutil.copytree(other / "checkpoint-4", out / "checkpoint-4")
    (out / "train_report.json").unlink()  # unfinished: the re-run would resume from the newest checkpoint
    before = _files(out)
    for extra in ((), ("--resume",)):
        code, err = _savi(capsys, *argv, *extra)
        lines = [line for line in err.splitlines() if line.startswith("error: ")]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert str(out / "checkpoint-4") in lines[0] and "another configuration" in lines[0]
        assert "learning_rate" in lines[0]
        assert _files(out) == before
    (out / "checkpoint-4" / CHECKPOINT_FILE).unlink()
    before = _files(out)
    code, err = _savi(capsys, *argv)
    assert code == 2 and "carries no savi run identity" in err and _files(out) == before
    with pytest.raises(ForeignCheckpointError, match="checkpoint-4"):  # savi align's resume decision agrees
        last_complete_checkpoint(out)


def test_resume_point_sorts_a_folder_by_identity_and_completeness(tmp_path, caplog):
    """No training: folders as a stop leaves them. A torn checkpoint of this run is removed only with ``clean``;
    one torn before its identity was written is left and named; neither is resumed from."""
    from savi_plugin.training.checkpoints import (
        ForeignCheckpointError,
        resume_point,
        write_identity,
    )

    def checkpoint(step, run, complete):
        folder = tmp_path / f"checkpoint-{step}"
        if run is not None:
            write_identity(folder, run, {"training": {"learning_rate": 1e-3}}, step)
        folder.mkdir(exist_ok=True)
        if complete:
            (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))

    checkpoint(1, "ours", True)
    checkpoint(2, "ours", True)
    checkpoint(3, "ours", False)
    checkpoint(4, None, False)
    assert resume_point(tmp_path, "ours") == str(tmp_path / "checkpoint-2")
    assert (tmp_path / "checkpoint-3").is_dir() and "checkpoint-4 is incomplete and carries no" in caplog.text
    assert resume_point(tmp_path, "ours", clean=True) == str(tmp_path / "checkpoint-2")
    assert not (tmp_path / "checkpoint-3").exists() and (tmp_path / "checkpoint-4").is_dir()
    shutil.copytree(tmp_path / "checkpoint-2", tmp_path / "checkpoint-7")  # a renamed copy: refused by name
    with pytest.raises(ForeignCheckpointError, match="checkpoint-7: holds step 2, not 7"):
        resume_point(tmp_path, "ours", clean=True)
    assert (tmp_path / "checkpoint-7").is_dir() and (tmp_path / "checkpoint-4").is_dir()


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error: ")]


def test_every_checkpoint_records_the_size_and_sha256_of_every_file_a_resume_loads(finished):
    """Recorded once the save is done: every file as it is on disk, ``trainer_state.json`` (the Trainer's last
    file) with its final content, the files transformers' resume reads among them."""
    from savi_plugin.training.checkpoints import CHECKPOINT_FILE, read_identity

    out, _ = finished
    for n in range(1, STEPS + 1):
        folder = out / f"checkpoint-{n}"
        recorded = dict(read_identity(folder)["contents"]["members"])
        on_disk = {p.relative_to(folder).as_posix(): f"{p.stat().st_size}:{hashlib.sha256(p.read_bytes()).hexdigest()}"
                   for p in folder.rglob("*") if p.is_file() and p.name != CHECKPOINT_FILE}
        assert recorded == on_disk, n
        assert {"adapter_model.safetensors", "adapter_config.json", "optimizer.pt", "scheduler.pt", "rng_state.pth",
                "trainer_state.json"} <= set(recorded), sorted(recorded)


def test_a_killed_run_s_last_checkpoint_with_replaced_weights_is_refused_naming_the_file(finished, tmp_path, capsys):
    """Pass 11 A #27: a killed run's last checkpoint's adapter replaced by other weights of the same shape
    (``savi_checkpoint.json`` untouched), then the same command: refused in one line naming the checkpoint and the
    file, with or without --resume, nothing touched (it resumed from the other weights with no word)."""
    out, argv = _copy(finished, tmp_path)
    (out / "train_report.json").unlink()  # killed after its last checkpoint: the command as typed continues it
    last = out / f"checkpoint-{STEPS}"
    other = out / "checkpoint-1" / "adapter_model.safetensors"  # the same tensors' shapes, other values
    assert other.read_bytes() != (last / "adapter_model.safetensors").read_bytes()
    shutil.copyfile(other, last / "adapter_model.safetensors")
    before = _files(out)
    for extra in ((), ("--resume",)):
        code, err = _savi(capsys, *argv, *extra)
        lines = _error_lines(err)
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert f"{last}: adapter_model.safetensors changed after the run wrote it" in lines[0], lines[0]
        assert "remove the checkpoint to resume from the one before it" in lines[0]
        assert _files(out) == before


def test_the_checkpoint_resumed_from_is_checked_for_files_added_removed_or_changed(finished, tmp_path, caplog):
    """No training: the newest checkpoint with a full model's weights added beside its adapter (transformers'
    resume loads ``model.safetensors`` first), its optimizer state removed, or its RNG state rewritten at the same
    size is refused naming that file; a changed older checkpoint is not what the resume loads; a resume from a
    checkpoint named by path is checked the same way; a record stopped before its contents resumes with a warning."""
    from savi_plugin.data.outputs import mark_path, read_mark
    from savi_plugin.training.checkpoints import CHECKPOINT_FILE, ForeignCheckpointError
    from savi_plugin.training.run import _resume_argument, last_complete_checkpoint
    from savi_plugin.training.stored_config import configuration_from_file

    out, _ = _copy(finished, tmp_path)
    last = out / f"checkpoint-{STEPS}"
    kept = tmp_path / "kept"
    shutil.copytree(last, kept)

    def rewrite(path):
        data = path.read_bytes()
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))

    cases = {"model.safetensors added": lambda: shutil.copyfile(last / "adapter_model.safetensors",
                                                                last / "model.safetensors"),
             "optimizer.pt removed": lambda: (last / "optimizer.pt").unlink(),
             "rng_state.pth changed": lambda: rewrite(last / "rng_state.pth")}
    for what, change in cases.items():
        change()
        with pytest.raises(ForeignCheckpointError, match=f"checkpoint-{STEPS}: {what} after the run wrote it"):
            last_complete_checkpoint(out, clean=True)
        shutil.rmtree(last)
        shutil.copytree(kept, last)
    rewrite(out / "checkpoint-1" / "adapter_model.safetensors")
    assert last_complete_checkpoint(out) == str(last)
    mark = read_mark(out, True)
    run_config = configuration_from_file(mark["config"], mark_path(out, True))
    with pytest.raises(ForeignCheckpointError, match="checkpoint-1: adapter_model.safetensors changed"):
        _resume_argument(str(out / "checkpoint-1"), out, run_config)

    record = json.loads((last / CHECKPOINT_FILE).read_text())
    (last / CHECKPOINT_FILE).write_text(json.dumps({**record, "contents": None}))  # stopped before the record
    (last / "optimizer.pt").unlink()
    assert last_complete_checkpoint(out) == str(last)
    assert "the run was stopped before it recorded the checkpoint's contents" in caplog.text


def test_a_checkpoint_saved_before_contents_were_recorded_resumes_and_says_it_is_unchecked(finished, tmp_path, capsys,
                                                                                          caplog):
    """A checkpoint whose ``savi_checkpoint.json`` has no ``contents`` (written by savi before they were recorded)
    resumes as it did, with one INFO line that its files cannot be checked."""
    from savi_plugin.training.checkpoints import CHECKPOINT_FILE

    out, argv = _copy(finished, tmp_path)
    (out / "train_report.json").unlink()
    last = out / f"checkpoint-{STEPS}"
    record = json.loads((last / CHECKPOINT_FILE).read_text())
    record.pop("contents", None)
    (last / CHECKPOINT_FILE).write_text(json.dumps(record))
    caplog.set_level("INFO")
    code, err = _savi(capsys, *argv)
    assert code == 0, err
    assert f"continuing from {last}" in caplog.text
    assert f"{last} was saved before savi recorded what a checkpoint holds" in caplog.text
    assert json.loads((out / "train_report.json").read_text())["global_step"] == STEPS


@pytest.mark.parametrize("extra", [(), ("--resume",)], ids=["anew", "resume"])
@pytest.mark.parametrize("content", ["trainer_file", "user_file", "hidden_file", "sub_folder", "symlink", "empty"])
def test_a_checkpoint_folder_savi_did_not_write_is_refused_never_removed(content, extra, finished, tmp_path, capsys,
                                                                       caplog):
    """Pass 24 G #80: a ``checkpoint-7`` a user made in a finished run's folder (no run identity, their notes in it)
    was taken for a save stopped as it began and removed with the earlier session's checkpoints. Only an empty
    folder (or one holding the identity's temporary file) is passed over (and removed when trained anew): a save
    writes its identity first; anything else is refused by name, nothing touched, with or without --resume."""
    out, argv = _copy(finished, tmp_path)
    stray = out / "checkpoint-7"
    stray.mkdir()
    name = {"trainer_file": "optimizer.pt", "user_file": "notes.txt", "hidden_file": ".notes",  # pass 25 R3 #56
            "sub_folder": "mine", "symlink": "link", "empty": None}[content]
    if content == "sub_folder":
        (stray / name).mkdir()
        (stray / name / "notes.txt").write_text("my notes\n")
    elif content == "symlink":
        (stray / name).symlink_to(tmp_path)
    elif content == "trainer_file":
        (stray / name).write_bytes(b"PK\x03\x04")  # the start of a torch zip archive
    elif name is not None:
        (stray / name).write_text("my notes\n")
    before = _files(out)
    code, err = _savi(capsys, *argv, *extra)
    if name is None:
        assert code == 0, err
        assert "checkpoint-7 is incomplete and carries no run identity" in caplog.text
        assert stray.is_dir() == bool(extra)  # passed over by --resume; removed with the earlier session anew
        return
    lines = _error_lines(err)
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert str(stray) in lines[0] and f"holds {name} and carries no savi run identity" in lines[0], lines[0]
    assert _files(out) == before and os.path.lexists(stray / name)


def _saved_files(finished, valid: bool) -> dict[str, bytes]:
    """Every file a save writes, by name: the files of the finished run's last checkpoint (its identity aside),
    what other saves write at names of their own (a full model's ``config.json`` and weights, DeepSpeed's
    ``latest``) and the identity's temporary file. ``valid``: content of its kind as a stopped save leaves it (the
    real file, ``trainer_state.json`` begun; a user's valid JSON ``config.json`` and another run's weights copied
    in, as pass 25 R4 #17 found removed); otherwise ``my notes``."""
    from savi_plugin.data.identity import CHECKPOINT_FILE

    last = finished[0] / f"checkpoint-{STEPS}"
    files = {p.name: p.read_bytes() for p in last.iterdir() if p.name != CHECKPOINT_FILE}
    files["trainer_state.json"] = files["trainer_state.json"][:40]  # written last: whole, the save was complete
    files |= {"config.json": b'{"my": "settings I keep here"}\n',
              "model.safetensors": (last / "adapter_model.safetensors").read_bytes(), "latest": b"global_step7",
              f".{CHECKPOINT_FILE}.4242.0123abcd.tmp": (last / CHECKPOINT_FILE).read_bytes()[:40]}
    assert {"adapter_model.safetensors", "adapter_config.json", "optimizer.pt", "scheduler.pt", "rng_state.pth",
            "trainer_state.json", "training_args.bin"} <= set(files), sorted(files)
    return files if valid else {name: b"my notes\n" for name in files}


@pytest.mark.parametrize("identity", [False, True], ids=["no_identity", "our_identity"])
@pytest.mark.parametrize("valid", [True, False], ids=["of_its_kind", "not_of_its_kind"])
def test_an_unfinished_checkpoint_without_the_run_identity_holds_nothing_a_save_writes(identity, valid, finished,
                                                                                       tmp_path, capsys, caplog):
    """Pass 25 R4 #17: ``{"my": "settings I keep here"}`` as ``checkpoint-8/config.json`` (valid JSON at a save's
    name), a ``trainer_state.json`` of ``{"a": 1}``, or another run's adapter copied into an unfinished
    ``checkpoint-N`` with no run identity passed as "stopped as it began saving" and was removed when the run was
    trained anew. A save writes its identity before any file (on every route a save takes: the trainer's
    ``_save_checkpoint``), so without it a folder holds at most the identity's temporary file: every other file a
    save writes, of its kind or not, is refused by name, nothing touched. With this run's identity the folder is
    this run's torn save, whatever it holds: removed before training."""
    from savi_plugin.data.identity import CHECKPOINT_FILE

    out, argv = _copy(finished, tmp_path)
    files = _saved_files(finished, valid)
    temporary = next(name for name in files if name.startswith(f".{CHECKPOINT_FILE}."))
    record = json.loads((out / f"checkpoint-{STEPS}" / CHECKPOINT_FILE).read_text())
    if identity:  # each file alone in a torn checkpoint of this run: all removed by one --resume
        folders = []
        for step, (name, data) in enumerate(sorted(files.items()), start=10):
            folder = out / f"checkpoint-{step}"
            folder.mkdir()
            (folder / CHECKPOINT_FILE).write_text(json.dumps({**record, "step": step, "contents": None}))
            (folder / name).write_bytes(data)
            folders.append(folder)
        code, err = _savi(capsys, *argv, "--resume")
        assert code == 0, err
        assert not any(folder.exists() for folder in folders), [f.name for f in folders if f.exists()]
        assert "(the run was stopped while saving it); removed" in caplog.text
        return
    stray = out / "checkpoint-8"
    for name, data in sorted(files.items()):
        stray.mkdir()
        (stray / name).write_bytes(data)
        before = _files(out)
        code, err = _savi(capsys, *argv, "--resume")
        if name == temporary:  # a stop while the identity was written: passed over by --resume, kept
            assert code == 0, err
            assert "checkpoint-8 is incomplete and carries no run identity" in caplog.text
            assert (stray / name).read_bytes() == data
        else:
            lines = _error_lines(err)
            assert code == 2 and len(lines) == 1 and "Traceback" not in err, (name, err)
            assert lines[0].startswith(f"error: {stray}: holds {name} and carries no savi run identity"), lines[0]
            assert "which a save of this run writes before anything else" in lines[0], lines[0]
            assert _files(out) == before, name
        shutil.rmtree(stray)


def test_a_user_file_in_a_deepspeed_shard_folder_is_refused_never_removed(finished, tmp_path, capsys):
    """DeepSpeed's ``global_stepN`` folder too is written after the identity: without it, it is someone else's."""
    out, argv = _copy(finished, tmp_path)
    shard = out / "checkpoint-7" / "global_step7"
    shard.mkdir(parents=True)
    (shard / "mp_rank_00_model_states.pt").write_text("my notes\n")
    before = _files(out)
    code, err = _savi(capsys, *argv)
    lines = _error_lines(err)
    assert code == 2 and len(lines) == 1, err
    assert "checkpoint-7: holds global_step7 and carries no savi run identity" in lines[0], lines[0]
    assert _files(out) == before


@pytest.mark.parametrize("name", ["checkpoint-0003", "checkpoint-3.bak", "checkpoint-best"])
def test_a_folder_named_like_a_checkpoint_that_no_save_writes_is_refused(name, finished, tmp_path, capsys):
    """Pass 25 R4 #17: ``checkpoint-0003`` (step 3 with a leading zero) was taken for checkpoint 3 and removed.
    transformers' rotation (``save_total_limit``) counts every ``checkpoint-*`` folder among the run's and removes
    the oldest, so one under a name the Trainer never saves at -- even a copy of the run's own checkpoint -- is
    refused by name, nothing touched."""
    out, argv = _copy(finished, tmp_path)
    shutil.copytree(out / f"checkpoint-{STEPS}", out / name)
    before = _files(out)
    code, err = _savi(capsys, *argv, "train.save_total_limit=1")
    lines = _error_lines(err)
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"error: {out / name}: is no checkpoint this run saved"), lines[0]
    assert _files(out) == before


def test_an_unfinished_run_resumes_only_under_the_number_of_processes_it_started_with(finished, tmp_path):
    """A run stopped after checkpoint-2 and re-run under another number of processes changed its global batch
    mid-run without a word (pass 25 K #30: 2 processes -> 1). The count is part of the run's identity: the re-run
    (here 1 -> 2, torchrun on CPU) stops on every rank in one line naming the number and the global batch, and
    the folder is left as it was."""
    import subprocess
    import sys

    from tests.builders import free_port, repo_pythonpath

    out, argv = _copy(finished, tmp_path)
    (out / "train_report.json").unlink()
    shutil.rmtree(out / "checkpoint-3")
    before = _files(out)
    env = {**os.environ, "PYTHONPATH": repo_pythonpath(), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(free_port()), "-m", "savi_plugin", *map(str, argv)], capture_output=True, text=True,
                          timeout=400, env=env)
    assert proc.returncode != 0
    # the two ranks write their one line each to one pipe at once: a line may run into the other's, so the lines
    # are read as what follows each "error: " up to the remedy's last words
    errors = {"error: " + part for part in re.findall(r"error: (.+?new output folder)", proc.stderr)}
    assert errors == {f"error: {out}: the run started with 1 process (global batch 2); it resumes only under the "
                      f"same number: start it with 1 again (this command has 2), or train into a new output "
                      f"folder"}, proc.stderr[-3000:]
    assert _files(out) == before

"""Misuse: two jobs on one output, and merging a shard set that is not all there.

Every output two processes could share -- a pairs file, a training output folder, an align run folder, a merge
output -- is locked by the job writing it; a second job is refused with one line naming the holder (pid, host),
the lock goes when its job ends however it ends, and a lock left by a dead process is taken over. ``savi
generate merge`` refuses a shard set with a missing shard or an unfinished run unless ``--allow-incomplete``,
and its report then says ``complete: false`` and what is missing.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from misuse_kit import assert_one_line_error, hold_lock, savi, savi_process

from savi_plugin.data.outputs import OutputLock, OutputLockedError, lock_path
from savi_plugin.generators.runner import report_path
from tests.builders import write_answer_pairs

GEN = ["--generator", "rrpo", "--num-frames", "4", "--batch-size", "2", "--no-progress",
       "--option", "answer_format=raw", "--option", "num_perturbations=1", "--option", "max_new_tokens=6"]


def generate_argv(model, inputs, output, *extra):
    return ["generate", "--model", str(model), "--input", str(inputs), "--output", str(output), *GEN, *extra]


@pytest.fixture(scope="module")
def manifest(synthetic_samples) -> Path:
    return Path(synthetic_samples[0].video).parent / "samples.jsonl"


# ------------------------------------------------------------------------------------------------ locks
def _held_output(kind: str, tmp_path: Path, model, manifest) -> tuple[Path, bool, list[str]]:
    """The output a ``kind`` command writes, whether its lock lies inside it (a folder), and the command."""
    if kind == "generate":
        out = tmp_path / "pairs.jsonl"
        return out, False, generate_argv(model, manifest, out)
    if kind == "train":
        out = tmp_path / "train_out"
        pairs = tmp_path / "pairs.jsonl"
        pairs.write_text("")
        return out, True, ["train", "tiny_demo", "--model", str(model), "--data", str(pairs), "--output-dir", str(out)]
    if kind == "align":
        out = tmp_path / "run"
        return out, True, ["align", "tiny_demo", f"data.qa={manifest}", "--out", str(out)]
    if kind == "inspect":  # a folder replaced whole: its lock lies beside it, site.lock
        out = tmp_path / "site"
        pairs = tmp_path / "pairs.jsonl"
        # one pair: a file of no pair (or no record) is refused before the lock
        pairs.write_text(json.dumps({"id": "p1", "video": "v.mp4", "question": "What moves?", "chosen": "the red ball",
                                     "rejected": "the blue ball"}) + "\n")
        return out, False, ["inspect", str(pairs), "--out", str(out), "--no-progress"]
    out = tmp_path / "merged.jsonl"
    shard = tmp_path / "a.jsonl"
    shard.write_text("")
    return out, False, ["generate", "merge", str(out), str(shard)]


WRITERS = ["generate", "train", "align", "merge", "inspect"]


@pytest.mark.parametrize("removed", [False, True], ids=["lock-file-kept", "lock-file-removed"])
@pytest.mark.parametrize("kind", WRITERS)
def test_a_second_job_on_a_locked_output_is_refused_naming_the_holder(kind, removed, tmp_path, tiny_llava_onevision,
                                                                      manifest, capsys):
    """Removing the lock file of a running job (a "stale-looking" ``.lock``) does not free its output: the
    holder's shadow lock still refuses the second job (red team 7, A1: two generations appended 532 duplicates;
    A26: two trainers shared one folder, both exit 0)."""
    out, folder, argv = _held_output(kind, tmp_path, tiny_llava_onevision, manifest)
    holder = hold_lock(out, folder, check_seconds=3600)  # it does not put its lock file back during the test
    try:
        if removed:
            lock_path(out, folder).unlink()
        code, _, err = savi(capsys, *argv)
    finally:
        holder.kill()
        holder.wait()
    assert code == 1
    line = assert_one_line_error(err, str(out), f"pid {holder.pid}", f"host {socket.gethostname()}", "in use")
    assert ("removed while that job runs" in line) == removed
    if kind in ("generate", "merge"):
        assert not out.exists()  # nothing was written beside the other job's work
    assert not lock_path(out, folder).exists() or not removed  # the refused job left no lock file of its own


def test_a_running_job_puts_back_its_removed_lock_file_and_warns_once(tmp_path):
    out = tmp_path / "pairs.jsonl"
    holder = hold_lock(out, folder=False, check_seconds=0.1)
    try:
        for _ in range(2):  # removed twice: put back each time, one warning
            lock_path(out).unlink()
            deadline = time.monotonic() + 10
            while not lock_path(out).exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert json.loads(lock_path(out).read_text())["pid"] == holder.pid
        with pytest.raises(OutputLockedError, match=rf"pid {holder.pid} .*\(lock file {lock_path(out)}\)"):
            OutputLock(out).acquire()
    finally:
        holder.terminate()
        _, err = holder.communicate()
    assert err.count("was removed while this job runs; put back") == 1, err


def test_the_lock_of_a_killed_job_is_taken_over_and_released_at_exit(tmp_path, tiny_llava_onevision, manifest,
                                                                     capsys, caplog):
    out = tmp_path / "pairs.jsonl"
    holder = hold_lock(out, folder=False)
    holder.kill()  # SIGKILL: no cleanup, the lock file stays behind naming a dead process
    holder.wait()
    assert json.loads(lock_path(out).read_text())["pid"] == holder.pid
    code, _, err = savi(capsys, *generate_argv(tiny_llava_onevision, manifest, out, "--limit", "2"))
    assert code == 0, err
    assert f"pid {holder.pid}" in caplog.text and "gone" in caplog.text
    assert not lock_path(out).exists()  # released when the job ended


def test_the_lock_is_released_when_the_job_fails(tmp_path, tiny_llava_onevision, manifest, capsys):
    out = tmp_path / "pairs.jsonl"
    assert savi(capsys, *generate_argv(tiny_llava_onevision, manifest, out, "--limit", "2"))[0] == 0
    code, _, err = savi(capsys, *generate_argv(tiny_llava_onevision, manifest, out, "--limit", "2", "--seed", "5"))
    assert code == 1 and "different configuration" in err
    assert not lock_path(out).exists()
    OutputLock(out).acquire().release()  # free for the next job


def test_one_lock_for_every_spelling_of_an_output(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    with OutputLock(tmp_path / "real" / "pairs.jsonl"):
        for spelling in (tmp_path / "alias" / "pairs.jsonl", tmp_path / "real" / ".." / "real" / "pairs.jsonl"):
            with pytest.raises(OutputLockedError):
                OutputLock(spelling).acquire()


def test_two_processes_racing_for_one_lock_exactly_one_wins(tmp_path):
    script = ("import sys\nfrom savi_plugin.data.outputs import OutputLock, OutputLockedError\n"
              "try:\n    lock = OutputLock(sys.argv[1]).acquire()\nexcept OutputLockedError:\n    sys.exit(3)\n"
              "sys.stdin.read()\n")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "o.jsonl")], stdin=subprocess.PIPE)
             for _ in range(4)]
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    codes = [p.returncode for p in procs]
    assert codes.count(None) == 1 and codes.count(3) == 3, codes  # one holds it, the others were refused
    for p in procs:
        if p.returncode is None:
            p.communicate(b"")
    with pytest.raises(OutputLockedError):
        with OutputLock(tmp_path / "x", folder=True):
            OutputLock(tmp_path / "x", folder=True).acquire()


def _eval_run_argv(model: Path, data: Path, out: Path) -> list[str]:
    return ["eval", "run", "--data-root", str(data), "--", "--model", "savi_video", "--model_args",
            f"pretrained={model},num_frames=4", "--tasks", "savi_egoschema", "--limit", "1", "--output_path", str(out)]


#: who else writes the folder ``savi eval run --output_path`` names: another ``savi eval run`` (a real process), a
#: folder output locked inside (``savi eval suite``'s ``--out``, a training folder) and one locked beside
#: (``out.lock``: a folder replaced whole, ``savi inspect``'s site)
EVAL_RUN_HOLDERS = ["eval-run", "folder-locked-inside", "folder-locked-beside"]


@pytest.mark.parametrize("other", EVAL_RUN_HOLDERS)
def test_eval_run_into_a_folder_another_job_writes_is_refused(other, tmp_path, tiny_llava_onevision, capsys):
    """``savi eval run`` holds its ``--output_path`` (:func:`savi_plugin.data.outputs.made_folder`'s lock) while
    lmms-eval fills it: a second ``savi eval run`` on one folder, or one into the folder of a running suite or any
    other writer, is refused in one line naming the holder, exit 1, and adds nothing there (pass 24: two lmms-eval
    runs wrote one folder at once)."""
    from savi_plugin.eval.fixtures import build_fixture

    data = tmp_path / "data"
    build_fixture(data, "egoschema", 1)
    out = tmp_path / "results"
    if other == "eval-run":  # it holds the folder once it says the lmms-eval command it starts
        holder = savi_process(*_eval_run_argv(tiny_llava_onevision, data, out))
        seen = []
        while not (seen and seen[-1].startswith("+ ")):
            line = holder.stderr.readline()
            assert line, "".join(seen)  # it ended before starting lmms-eval
            seen.append(line)
    else:
        holder = hold_lock(out, folder=other == "folder-locked-inside")
    before = sorted(p.name for p in out.iterdir()) if out.is_dir() else None
    try:
        code, _, err = savi(capsys, *_eval_run_argv(tiny_llava_onevision, data, out))
    finally:
        holder.kill()
        holder.communicate()
    assert code == 1, err
    assert_one_line_error(err, str(out), "in use by another savi process", f"pid {holder.pid}")
    assert before == (sorted(p.name for p in out.iterdir()) if out.is_dir() else None)  # none of its own there


# ------------------------------------------------------------------------------------------------ merge
@pytest.fixture(scope="module")
def two_shards(tmp_path_factory, tiny_llava_onevision, manifest) -> Path:
    """Both shards of a 2-way sharded run (limit 8), finished; tests copy the folder."""
    from savi_plugin.cli import main

    folder = tmp_path_factory.mktemp("shards")
    for shard in ("0/2", "1/2"):
        assert main(generate_argv(tiny_llava_onevision, manifest, folder / "pairs.jsonl", "--shard", shard,
                                  "--limit", "8")) == 0
    return folder


def _copy(folder: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "shards"
    shutil.copytree(folder, dst)
    return dst


@pytest.fixture(scope="module")
def run_with_videos(tmp_path_factory, tiny_llava_onevision, manifest) -> Path:
    """A folder holding its videos and manifest (``syn/``) and two finished generation outputs whose records name
    the videos relative to it: ``pairs.jsonl`` (limit 4) and ``other.jsonl`` (limit 2, seed 1); tests copy the
    folder."""
    from savi_plugin.cli import main

    folder = tmp_path_factory.mktemp("run_with_videos")
    shutil.copytree(manifest.parent, folder / "syn")
    for name, extra in (("pairs.jsonl", ["--limit", "4"]), ("other.jsonl", ["--limit", "2", "--seed", "1"])):
        assert main(generate_argv(tiny_llava_onevision, folder / "syn" / "samples.jsonl", folder / name, *extra)) == 0
    return folder


def _separate(run: Path, how: str) -> Path:
    """``run``'s ``pairs.jsonl`` separated from its sidecars ``how``; returns the file to merge."""
    shard, away = run / "pairs.jsonl", run / "away"
    away.mkdir()
    if how in ("moved", "copied"):  # the file alone, its sidecars left in the folder its run wrote it in
        (shutil.move if how == "moved" else shutil.copy)(shard, away / shard.name)
        return away / shard.name
    if how in ("moved-with-sidecars", "copied-with-sidecars"):
        for f in run.glob("pairs.jsonl*"):
            (shutil.move if how.startswith("moved") else shutil.copy)(f, away / f.name)
        return away / shard.name
    kind = how.split("-", 1)[1]  # "progress.jsonl" or "report.json"
    side = run / f"pairs.jsonl.{kind}"
    if how.startswith("deleted-"):
        side.unlink()
    else:  # another output's sidecar put in its place
        shutil.copy(run / f"other.jsonl.{kind}", side)
    return shard


#: how a shard is separated from its sidecars -> (exit status, what the one line says; None: a correct merge and
#: what its report's ``complete`` says)
SEPARATIONS = {
    "moved": (1, "a copy moved away from its folder"),
    "copied": (1, "a copy moved away from its folder"),
    "moved-with-sidecars": (1, "a copy moved away from its folder"),
    "copied-with-sidecars": (1, "a copy moved away from its folder"),
    "deleted-report.json": (1, "its generation run has not finished"),
    "deleted-progress.jsonl": (0, True),  # its report still vouches for every byte
    "another-report.json": (1, "its content is not what its run report vouches for"),
    "another-progress.jsonl": (1, "records another configuration than its run report (seed: 0 -> 1)"),
}


@pytest.mark.parametrize("how", list(SEPARATIONS))
def test_one_shard_separated_from_its_sidecars_is_refused_or_merged_correctly(how, run_with_videos, tmp_path,
                                                                              capsys):
    """Pass 24: ``savi generate merge`` of one shard moved away from the folder its run wrote it in exited 0 with
    records whose relative videos named nothing (two such shards were refused as a moved copy). A shard that is not
    what it claims -- moved or copied away, with or without its sidecars, a sidecar deleted or another output's --
    is refused in the one line of an incomplete set (exit 1, as for two shards), or merged with every record
    naming its video."""
    run = tmp_path / "run"
    shutil.copytree(run_with_videos, run)
    shard = _separate(run, how)
    out = tmp_path / "merged.jsonl"
    code, _, err = savi(capsys, "generate", "merge", out, shard)
    status, said = SEPARATIONS[how]
    assert code == status, err
    if status:
        assert_one_line_error(err, "refusing to merge an incomplete shard set", str(shard), said,
                              "--allow-incomplete")
        assert not out.exists()
        return
    report = json.loads(Path(f"{out}.report.json").read_text())
    assert report["complete"] is said and report["records"] > 0
    for line in out.read_text().splitlines():
        assert (out.parent / json.loads(line)["video"]).is_file()  # each record names its video from the output


def test_merging_with_a_shard_missing_is_refused_and_names_it(two_shards, tmp_path, capsys):
    folder = _copy(two_shards, tmp_path)
    missing = folder / "pairs.shard-00001-of-00002.jsonl"
    missing.unlink()
    code, _, err = savi(capsys, "generate", "merge", folder / "pairs.jsonl")
    assert code == 1
    assert_one_line_error(err, "incomplete", str(missing), "shard 1 of 2", "--allow-incomplete")
    assert not (folder / "pairs.jsonl").exists()


def test_merging_a_shard_whose_run_was_killed_is_refused(two_shards, tmp_path, capsys):
    folder = _copy(two_shards, tmp_path)
    shard = folder / "pairs.shard-00000-of-00002.jsonl"
    progress = folder / "pairs.shard-00000-of-00002.jsonl.progress.jsonl"
    # What a kill half-way leaves: fewer progress lines, no run report of the finished run.
    lines = progress.read_text().splitlines(keepends=True)
    progress.write_text("".join(lines[:2]))
    (folder / "pairs.shard-00000-of-00002.jsonl.report.json").unlink()
    code, _, err = savi(capsys, "generate", "merge", folder / "pairs.jsonl")
    assert code == 1
    assert_one_line_error(err, str(shard), "not finished")


def test_allow_incomplete_merges_and_the_report_says_what_is_missing(two_shards, tmp_path, capsys):
    folder = _copy(two_shards, tmp_path)
    kept = (folder / "pairs.shard-00000-of-00002.jsonl").read_text().count("\n")
    (folder / "pairs.shard-00001-of-00002.jsonl").unlink()
    code, out, err = savi(capsys, "generate", "merge", folder / "pairs.jsonl", "--allow-incomplete")
    assert code == 0, err
    printed = json.loads(out)
    report = json.loads((folder / "pairs.jsonl.report.json").read_text())
    for shown in (printed, report):
        assert shown["complete"] is False and shown["records"] == kept
        assert len(shown["missing"]) == 1 and "shard 1 of 2" in shown["missing"][0]


@pytest.mark.parametrize("pattern", ["pairs.shard*.jsonl", "pairs.shard-*"])
def test_the_readme_merge_example_with_a_shell_glob_works(pattern, two_shards, tmp_path, capsys, monkeypatch):
    """``pairs.shard-*`` matches every sidecar too: run reports and marks (pass 17 A #19: each line of them was
    called a damaged shard line, and the set incomplete) as well as progress files."""
    folder = _copy(two_shards, tmp_path)
    monkeypatch.chdir(folder)
    expanded = sorted(glob.glob(pattern))  # what the shell passes: shards AND their sidecars
    assert any(name.endswith(".progress.jsonl") for name in expanded)
    code, out, err = savi(capsys, "generate", "merge", "pairs.jsonl", *expanded)
    assert code == 0, err
    shards = [f for f in expanded if re.fullmatch(r"pairs\.shard-\d+-of-\d+\.jsonl", f)]
    total = sum(Path(f).read_text().count("\n") for f in shards)
    printed = json.loads(out)
    assert printed["records"] == total > 0 and printed["complete"] and printed["invalid"] == []
    assert sorted(printed["ignored_sidecars"]) == sorted(set(expanded) - set(shards))
    assert os.path.getsize("pairs.jsonl") > 0


def test_merging_shards_of_different_configurations_is_refused(two_shards, tmp_path, tiny_llava_onevision, manifest,
                                                               capsys):
    folder = _copy(two_shards, tmp_path)
    other = folder / "pairs.shard-00001-of-00002.jsonl"
    for path in folder.glob("pairs.shard-00001-of-00002*"):
        path.unlink()
    assert savi(capsys, *generate_argv(tiny_llava_onevision, manifest, folder / "pairs.jsonl", "--shard", "1/2",
                                       "--limit", "8", "--seed", "7"))[0] == 0  # shard 1 with another seed
    code, _, err = savi(capsys, "generate", "merge", folder / "pairs.jsonl")
    assert code == 1 and not (folder / "pairs.jsonl").exists()
    assert_one_line_error(err, str(other), "different configuration", "seed")


def test_a_shard_still_being_generated_is_not_merged(two_shards, tmp_path, capsys):
    folder = _copy(two_shards, tmp_path)
    shard = folder / "pairs.shard-00001-of-00002.jsonl"
    holder = hold_lock(shard, folder=False)  # its savi generate is still running
    try:
        code, _, err = savi(capsys, "generate", "merge", folder / "pairs.jsonl")
    finally:
        holder.kill()
        holder.wait()
    assert code == 1 and not (folder / "pairs.jsonl").exists()
    assert_one_line_error(err, str(shard), f"pid {holder.pid}")


# ------------------------------------------------------------------------------------------------ removed outputs
def test_a_training_folder_removed_mid_run_stops_the_job_naming_it(tmp_path, tiny_llava_onevision, synthetic_samples,
                                                                    capsys, monkeypatch):
    """``rm -rf`` of a running ``savi train`` output folder stops the job at its next step with one line; it does
    not finish (exit 0) into a recreated folder no mark claims (red team 8, A5)."""
    from transformers import TrainerCallback

    from savi_plugin.training import run

    class RemoveAtFirstStep(TrainerCallback):  # the user's rm -rf, between two steps
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                shutil.rmtree(args.output_dir)

    monkeypatch.setattr(run, "identity_callback", lambda *a: RemoveAtFirstStep())
    pairs = write_answer_pairs(tmp_path / "pairs.jsonl", synthetic_samples[:4])
    out = tmp_path / "train_out"
    code, _, err = savi(capsys, "train", "tiny_demo", "--model", tiny_llava_onevision, "--data", pairs,
                        "--output-dir", out, "train.max_steps=3", "train.per_device_train_batch_size=1",
                        "train.disable_tqdm=true")
    assert code == 1
    assert_one_line_error(err, str(out), "removed or replaced during the run", "it was removed")
    assert not out.exists()  # nothing more was written there


@pytest.mark.parametrize("when", ["before-the-save", "during-the-save", "replaced-during-the-save"])
def test_a_training_folder_moved_as_a_checkpoint_save_begins_is_not_recreated(when, tmp_path, tiny_llava_onevision,
                                                                              synthetic_samples, capsys, monkeypatch):
    """``mv out out2`` as the Trainer begins to save a checkpoint (red team 13, row 38): the outputs are checked
    just before the Trainer creates the checkpoint folder, and a move that lands after that check leaves no
    recreated ``out/`` (the save's own folder is removed) -- the same command runs again there; a folder that
    replaced ours keeps what the user put there, and the message names the checkpoint written into it."""
    from savi_plugin.training import run
    from savi_plugin.training.trainer import PreferenceTrainer

    out, moved = tmp_path / "train_out", tmp_path / "train_out2"

    def move():
        out.rename(moved)
        if when == "replaced-during-the-save":
            out.mkdir()
            (out / "notes.txt").write_text("the user's folder now\n")

    if when == "before-the-save":  # after the step's checks, before the Trainer asks for its run folder
        real = PreferenceTrainer._get_output_dir

        def moved_first(self, trial):
            if self.state.global_step == 1 and out.exists() and not moved.exists():
                move()
            return real(self, trial)

        monkeypatch.setattr(PreferenceTrainer, "_get_output_dir", moved_first)
    else:  # after the last check: the Trainer's save_model creates the checkpoint folder
        real = PreferenceTrainer.save_model

        def move_then_save(self, output_dir=None, _internal_call=False):
            if _internal_call and "checkpoint-1" in str(output_dir) and not moved.exists():
                move()
            return real(self, output_dir, _internal_call)

        monkeypatch.setattr(PreferenceTrainer, "save_model", move_then_save)
    pairs = write_answer_pairs(tmp_path / "pairs.jsonl", synthetic_samples[:4])
    argv = ["train", "tiny_demo", "--model", tiny_llava_onevision, "--data", pairs, "--output-dir", out,
            "train.max_steps=2", "train.per_device_train_batch_size=1", "train.disable_tqdm=true",
            "train.save_strategy=steps", "train.save_steps=1"]
    code, _, err = savi(capsys, *argv)
    assert code == 1
    line = assert_one_line_error(err, str(out), "removed or replaced during the run")
    assert (moved / ".savi-output.json").is_file()  # the moved run keeps its mark
    if when == "replaced-during-the-save":
        assert "it was replaced by another folder" in line
        assert f"had already saved {out / 'checkpoint-1'} there" in line
        assert (out / "notes.txt").read_text() == "the user's folder now\n"  # the user's file, untouched
        assert "move it away (or remove it) and run again" in line  # a re-run would refuse the user's folder
        return
    assert not out.exists()  # no recreated folder, no checkpoint no mark claims
    assert ("wrote nothing more there" if when == "before-the-save" else
            "removed the checkpoint-1 it had begun to save there") in line
    monkeypatch.undo()
    code, _, err = savi(capsys, *argv[:-2], "train.max_steps=1")  # the same command at that path is not refused
    assert code == 0, err


@pytest.mark.parametrize("removed", ["folder", "mark"])
def test_a_pairs_file_removed_mid_run_stops_the_generation_naming_it(removed, tmp_path, tiny_llava_onevision,
                                                                     manifest, capsys, monkeypatch):
    """The output layer, not the command: an appender's next line and the job's end find the output gone."""
    from savi_plugin.data.outputs import mark_path
    from savi_plugin.generators import runner

    out = tmp_path / "gen" / "pairs.jsonl"
    process = runner._process

    def remove_then_process(*args, **kwargs):
        if (tmp_path / "gen").exists():
            shutil.rmtree(tmp_path / "gen") if removed == "folder" else mark_path(out, False).unlink(missing_ok=True)
        return process(*args, **kwargs)

    monkeypatch.setattr(runner, "_process", remove_then_process)
    code, _, err = savi(capsys, *generate_argv(tiny_llava_onevision, manifest, out, "--limit", "4"))
    assert code == 1
    assert_one_line_error(err, str(out), "during the run")
    if removed == "folder":
        assert not (tmp_path / "gen").exists()
    else:
        assert not report_path(out).exists()  # no report vouches for an output that is not ours any more

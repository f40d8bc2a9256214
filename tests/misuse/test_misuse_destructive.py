"""Misuse: commands pointed at the user's own inputs. Each is refused with one line, and nothing is touched.

An output may not be an input (``--input qa.jsonl --output qa.jsonl`` would append pairs to the QA manifest;
a training ``--output-dir`` equal to the model's folder would make the model load with the adapter from then
on), ``savi eval fixture`` writes only into an empty folder or one it wrote, and ``savi convert`` never writes
over, into or around its source, ``--overwrite`` or not.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from misuse_kit import assert_one_line_error, savi
from tests.builders import read_jsonl, write_jsonl

GEN = ["--generator", "rrpo", "--num-frames", "4", "--no-progress", "--option", "answer_format=raw",
       "--option", "max_new_tokens=6"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the hash of its content."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture()
def qa(synthetic_samples, tmp_path) -> Path:
    """A copy of the synthetic QA manifest in its own folder."""
    src = Path(synthetic_samples[0].video).parent / "samples.jsonl"
    folder = tmp_path / "data"
    folder.mkdir()
    lines = read_jsonl(src)[:2]
    for obj in lines:
        obj["video"] = str(Path(src.parent, obj["video"]).resolve())
    return write_jsonl(folder / "qa.jsonl", lines)


@pytest.mark.parametrize("spelling", ["same", "dot-relative", "symlink", "progress-file", "report-file"])
def test_generate_refuses_to_write_into_its_input(spelling, qa, tiny_llava_onevision, tmp_path, capsys,
                                                 monkeypatch):
    monkeypatch.chdir(qa.parent)
    before = snapshot(qa.parent)
    if spelling == "same":
        output = str(qa)
    elif spelling == "dot-relative":
        output = "./sub/../qa.jsonl"
        (qa.parent / "sub").mkdir()
    elif spelling == "symlink":
        (tmp_path / "link.jsonl").symlink_to(qa)
        output = str(tmp_path / "link.jsonl")
    elif spelling == "progress-file":  # out.progress.jsonl would be the manifest
        qa.rename(qa.with_name("out.jsonl.progress.jsonl"))
        qa = qa.with_name("out.jsonl.progress.jsonl")
        before = snapshot(qa.parent)
        output = str(qa.with_name("out.jsonl"))
    else:  # out.report.json would be the manifest
        qa.rename(qa.with_name("out.jsonl.report.json"))
        qa = qa.with_name("out.jsonl.report.json")
        before = snapshot(qa.parent)
        output = str(qa.with_name("out.jsonl"))
    code, _, err = savi(capsys, "generate", "--model", tiny_llava_onevision, "--input", qa, "--output", output,
                        *GEN)
    assert code == 2  # a configuration error: nothing started
    assert_one_line_error(err, "--input", "its own input")
    assert snapshot(qa.parent) == before


def test_generate_refuses_the_model_folder_as_output(qa, tiny_llava_onevision, capsys):
    before = snapshot(Path(tiny_llava_onevision))
    code, _, err = savi(capsys, "generate", "--model", tiny_llava_onevision, "--input", qa,
                        "--output", tiny_llava_onevision, *GEN)
    assert code == 2  # a configuration error: nothing started
    assert_one_line_error(err, "--model")
    assert snapshot(Path(tiny_llava_onevision)) == before


@pytest.mark.parametrize("target", ["model-folder", "model-symlink", "data-file"])
def test_train_refuses_an_output_dir_that_is_an_input(target, qa, tiny_llava_onevision, tmp_path, capsys):
    model = Path(tiny_llava_onevision)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [])
    if target == "model-folder":
        output = model
    elif target == "model-symlink":
        output = tmp_path / "model_link"
        output.symlink_to(model, target_is_directory=True)
    else:
        output = pairs
    before = snapshot(model)
    code, _, err = savi(capsys, "train", "tiny_demo", "--model", model, "--data", pairs, "--output-dir", output)
    assert code == 2  # a configuration error: nothing started
    assert_one_line_error(err, "output_dir", "the model" if target != "data-file" else "the data")
    assert snapshot(model) == before and not (model / ".savi.lock").exists()


# ------------------------------------------------------------------------------------------------ eval fixture
FIXTURE = ["--benchmark", "egoschema", "-n", "1"]


def test_eval_fixture_refuses_a_folder_with_real_data(tmp_path, capsys):
    root = tmp_path / "savi_eval"
    (root / "egoschema").mkdir(parents=True)
    (root / "egoschema" / "annotations.json").write_text('{"real": "annotations"}')
    (root / "videos").mkdir()
    (root / "videos" / "clip.mp4").write_bytes(b"real video bytes")
    before = snapshot(root)
    code, _, err = savi(capsys, "eval", "fixture", root, *FIXTURE)
    assert code == 1
    assert_one_line_error(err, str(root), "not written by savi eval fixture")
    assert snapshot(root) == before


def test_eval_fixture_refuses_the_root_folder_without_walking_it(capsys):
    """Pass 16 A #2: ``savi eval fixture /`` walked the whole file system and stopped at ``/proc/1/cwd: Permission
    denied``; the command writes only its benchmarks' folders, so any other entry at the top is said at once."""
    code, _, err = savi(capsys, "eval", "fixture", "/", *FIXTURE)
    assert code == 1
    assert_one_line_error(err, "/: the folder holds", "entries not written by savi eval fixture")


@pytest.mark.parametrize("spelled", [".", "./"])
def test_eval_fixture_writes_into_the_working_folder_named_as_dot(spelled, tmp_path, capsys, monkeypatch):
    """Pass 16 A #43: ``savi eval fixture .`` in an empty folder said ``PosixPath('.') has an empty name`` and
    left its mark behind. (``""``, an unset variable, is a usage error: test_misuse_failures.py.)"""
    work = tmp_path / "e"
    work.mkdir()
    monkeypatch.chdir(work)
    assert savi(capsys, "eval", "fixture", spelled, *FIXTURE)[0] == 0
    assert (work / ".savi-eval-fixture").is_file() and (work / "egoschema").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e"]  # no temporary left beside it


def test_eval_fixture_refuses_a_file(tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    code, _, err = savi(capsys, "eval", "fixture", target, *FIXTURE)
    assert code == 1 and target.read_text() == "keep me"
    assert_one_line_error(err, "exists and is a file; a folder is needed here")


def test_eval_fixture_writes_a_new_folder_and_rewrites_its_own(tmp_path, capsys):
    root = tmp_path / "fresh"
    assert savi(capsys, "eval", "fixture", root, *FIXTURE)[0] == 0
    first = snapshot(root)
    assert ".savi-eval-fixture" in first and len(first) > 2
    assert savi(capsys, "eval", "fixture", root, *FIXTURE)[0] == 0  # its own folder: allowed, same content
    again = snapshot(root)
    assert again.pop(".savi-eval-fixture") and first.pop(".savi-eval-fixture")  # it records when each was written
    assert again == first


def test_eval_fixture_rerun_replaces_its_own_files_and_keeps_other_benchmarks(tmp_path, capsys):
    root = tmp_path / "fx"
    assert savi(capsys, "eval", "fixture", root, "--benchmark", "perceptiontest", "-n", "1")[0] == 0
    kept = {k: v for k, v in snapshot(root).items() if k.startswith("perceptiontest/")}
    assert savi(capsys, "eval", "fixture", root, "--benchmark", "egoschema", "-n", "3")[0] == 0
    assert savi(capsys, "eval", "fixture", root, "--benchmark", "egoschema", "-n", "2", "--seed", "1")[0] == 0
    files = snapshot(root)
    # the second egoschema run's two videos only (no stale ones from -n 3 / seed 0); perceptiontest untouched
    assert sorted(f for f in files if f.startswith("egoschema/videos/")) == [
        "egoschema/videos/ego00100000.mp4", "egoschema/videos/ego00100001.mp4"]
    assert {k: v for k, v in files.items() if k.startswith("perceptiontest/")} == kept


def test_eval_fixture_refuses_its_own_folder_once_someone_else_added_a_file(tmp_path, capsys):
    root = tmp_path / "fx"
    assert savi(capsys, "eval", "fixture", root, *FIXTURE)[0] == 0
    (root / "egoschema" / "real.json").write_text('{"real": "annotations"}')
    before = snapshot(root)
    code, _, err = savi(capsys, "eval", "fixture", root, *FIXTURE)
    assert code == 1 and snapshot(root) == before
    assert_one_line_error(err, str(root), "not written by savi eval fixture", "egoschema/real.json")


@pytest.mark.parametrize("how", ["written over", "replaced by another file", "same size and time"])
def test_eval_fixture_refuses_its_own_folder_once_someone_replaced_a_file_it_wrote(how, tmp_path, capsys):
    """A re-run overwrote a parquet file and deleted a video the user had put under names it once wrote."""
    root = tmp_path / "fx"
    assert savi(capsys, "eval", "fixture", root, *FIXTURE)[0] == 0
    video = next((root / "egoschema").rglob("*.mp4"))
    if how == "written over":
        video.write_bytes(b"the user's real video")
    elif how == "same size and time":  # cp -p / rsync -a / touch -r
        st = video.stat()
        video.write_bytes(bytes(reversed(video.read_bytes())))
        os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:
        mine = tmp_path / "mine.mp4"
        mine.write_bytes(b"the user's real video")
        os.replace(mine, video)
    before = snapshot(root)
    code, _, err = savi(capsys, "eval", "fixture", root, *FIXTURE)
    assert code == 1 and snapshot(root) == before
    assert_one_line_error(err, str(root), str(video.relative_to(root)), "changed after savi eval fixture wrote it")


def test_eval_fixture_stopped_midway_is_replaced_by_the_next_run(tmp_path, capsys):
    from savi_plugin.eval.fixture_folder import FixtureFolder

    root = tmp_path / "fx"
    FixtureFolder(root).claim().begin("egoschema")  # what a run stopped while writing egoschema leaves
    (root / "egoschema" / "videos").mkdir(parents=True)
    (root / "egoschema" / "videos" / "half.mp4").write_bytes(b"partial")
    assert savi(capsys, "eval", "fixture", root, *FIXTURE)[0] == 0
    assert not (root / "egoschema" / "videos" / "half.mp4").exists()
    assert json.loads((root / ".savi-eval-fixture").read_text())["writing"] == []


def test_eval_fixture_stopped_midway_says_what_it_left_and_its_data_is_refused_until_finished(tmp_path, capsys,
                                                                                             monkeypatch):
    """Pass 15 A #45: SIGTERM after ~60 of 285 files said "nothing was written" and left them, and lmms-eval then
    scored the half-written data root with exit 0. The line now says the folder was left unfinished, and every savi
    task reading that benchmark from it refuses it (its marker still says which benchmark was being written)."""
    from savi_plugin.eval import fixtures
    from savi_plugin.eval.data import EvalDataError, benchmark, local_annotation_files

    build = fixtures.build_fixture

    def stopped(root, name, n, **kwargs):
        build(root, name, n, **kwargs)  # its files are written; the stop lands before the folder records them
        raise KeyboardInterrupt

    monkeypatch.setattr(fixtures, "build_fixture", stopped)
    root = tmp_path / "fx"
    code, _, err = savi(capsys, "eval", "fixture", root, *FIXTURE)
    assert code == 130 and err.strip().splitlines() == ["interrupted: stopped before finishing; re-run the command"]
    with pytest.raises(EvalDataError, match="savi eval fixture was stopped while writing egoschema/ into"):
        local_annotation_files(root, benchmark("egoschema"), "Subset", "test")
    monkeypatch.setattr(fixtures, "build_fixture", build)
    assert savi(capsys, "eval", "fixture", root, *FIXTURE)[0] == 0
    assert local_annotation_files(root, benchmark("egoschema"), "Subset", "test")  # finished: read


@pytest.mark.parametrize("between", ["another-finished", "another-stopped"])
@pytest.mark.parametrize("stopped,other", [("mvbench", "egoschema"), ("egoschema", "perceptiontest")])
def test_a_benchmark_a_stopped_fixture_left_stays_its_own_after_runs_of_other_benchmarks(stopped, other, between,
                                                                                         tmp_path, capsys,
                                                                                         monkeypatch):
    """Red team 23 #2: a fixture killed while writing mvbench, then a run of egoschema, then mvbench again was
    refused as "files not written by savi eval fixture" -- the egoschema run had forgotten the unfinished mvbench.
    Every benchmark a stopped run left stays named as unfinished (its data refused) until it is written again."""
    from savi_plugin.eval import fixtures
    from savi_plugin.eval.data import EvalDataError, benchmark, local_annotation_files
    from savi_plugin.eval.fixture_folder import unfinished_benchmarks

    build = fixtures.build_fixture

    def stopped_build(root, name, n, **kwargs):
        build(root, name, n, **kwargs)  # its files are written; the stop lands before the folder records them
        raise KeyboardInterrupt

    root = tmp_path / "fx"
    monkeypatch.setattr(fixtures, "build_fixture", stopped_build)
    assert savi(capsys, "eval", "fixture", root, "--benchmark", stopped, "-n", "1")[0] == 130
    if between == "another-stopped":
        assert savi(capsys, "eval", "fixture", root, "--benchmark", other, "-n", "1")[0] == 130
    monkeypatch.setattr(fixtures, "build_fixture", build)
    if between == "another-finished":
        assert savi(capsys, "eval", "fixture", root, "--benchmark", other, "-n", "1")[0] == 0
    unfinished = [stopped] + ([other] if between == "another-stopped" else [])
    assert unfinished_benchmarks(root) == unfinished
    with pytest.raises(EvalDataError, match=f"stopped while writing {stopped}/"):
        local_annotation_files(root, benchmark(stopped), None, None)
    for name in unfinished:  # each written again: its stopped run's files are replaced, not refused
        code, _, err = savi(capsys, "eval", "fixture", root, "--benchmark", name, "-n", "2")
        assert code == 0, err
    assert unfinished_benchmarks(root) == []
    assert sorted(json.loads((root / ".savi-eval-fixture").read_text())["written"]) == sorted({stopped, other})


def test_a_complete_fixture_rewritten_and_stopped_as_it_removes_the_old_files_is_marked_unfinished(tmp_path,
                                                                                                  capsys,
                                                                                                  monkeypatch):
    """Pass 16 A #18: a complete fixture written again and stopped while its old files were being removed left a
    mark saying "complete" over a benchmark missing its annotation files. The mark says which benchmark is being
    written before the first old file goes."""
    from savi_plugin.eval import fixture_folder
    from savi_plugin.eval.data import EvalDataError, benchmark, local_annotation_files

    root = tmp_path / "fx"
    assert savi(capsys, "eval", "fixture", root, *FIXTURE)[0] == 0
    unlink, seen = Path.unlink, []

    def stop_after_one(self, *args, **kwargs):  # Ctrl-C once the first old file is gone
        unlink(self, *args, **kwargs)
        seen.append(self)
        if len(seen) == 1 and self.is_relative_to(root / "egoschema"):
            raise KeyboardInterrupt

    monkeypatch.setattr(Path, "unlink", stop_after_one)
    code, _, _ = savi(capsys, "eval", "fixture", root, *FIXTURE)
    monkeypatch.setattr(Path, "unlink", unlink)
    assert code == 130 and seen
    assert fixture_folder.unfinished_benchmarks(root) == ["egoschema"]
    with pytest.raises(EvalDataError, match="stopped while writing egoschema/"):
        local_annotation_files(root, benchmark("egoschema"), "Subset", "test")


# ------------------------------------------------------------------------------------------------ convert
@pytest.fixture()
def source_checkpoint(tmp_path) -> Path:
    src = tmp_path / "llava-video-src"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"architectures": ["LlavaQwenForCausalLM"]}))
    (src / "model-00001-of-00001.safetensors").write_bytes(b"weights the user cannot download again")
    return src


@pytest.mark.parametrize("where", ["same", "inside", "parent"])
def test_convert_never_writes_over_into_or_around_its_source(where, source_checkpoint, capsys):
    src = source_checkpoint
    dst = {"same": src, "inside": src / "converted", "parent": src.parent}[where]
    before = snapshot(src)
    code, _, err = savi(capsys, "convert", "llava-next", src, dst, "--overwrite")
    assert code == 2  # a configuration error, as for every writer's output and input (the output layer's check)
    assert_one_line_error(err, "DST", "SRC", str(src))
    assert snapshot(src) == before and not (src / "converted").exists()


def test_merge_refuses_an_output_that_is_one_of_its_shards(tmp_path, capsys):
    shard = write_jsonl(tmp_path / "pairs.shard-00000-of-00001.jsonl",
                        [{"id": "a", "video": "v.mp4", "question": "q", "chosen": "x", "rejected": "y"}])
    before = shard.read_bytes()
    code, _, err = savi(capsys, "generate", "merge", shard, shard)
    # a configuration error, exit 2, as convert's refusal below
    assert code == 2 and shard.read_bytes() == before
    assert_one_line_error(err, "the merge output")


def test_data_convert_refuses_to_replace_its_source(tmp_path, capsys):
    src = write_jsonl(tmp_path / "release.jsonl", [{"id": "a", "video": "v.mp4", "question": "q", "chosen": "x",
                                                    "rejected": "y"}])
    before = src.read_bytes()
    code, _, err = savi(capsys, "data", "convert", src, tmp_path / "." / "release.jsonl", "--from", "savi",
                        "--to", "trl")
    assert code == 2 and src.read_bytes() == before
    assert_one_line_error(err, "OUT is the same path as IN")  # `savi data convert ... IN OUT`, as its usage says


def test_generate_refuses_to_append_to_a_file_it_did_not_write(qa, tiny_llava_onevision, tmp_path, capsys):
    foreign = write_jsonl(tmp_path / "curated_pairs.jsonl", [{"id": "mine", "video": "v.mp4", "question": "q",
                                                              "chosen": "x", "rejected": "y"}])
    before = foreign.read_bytes()
    code, _, err = savi(capsys, "generate", "--model", tiny_llava_onevision, "--input", qa, "--output", foreign,
                        *GEN)
    assert code == 1 and foreign.read_bytes() == before
    assert_one_line_error(err, str(foreign), "not written by savi generate")


def test_eval_fixture_builds_beside_its_root_and_clears_what_a_killed_run_left(tmp_path, capsys):
    """It built in the system /tmp: a full disk named a temporary file there, and SIGKILL left folders no later run
    found (red team 3)."""
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = tmp_path / f".fx.{dead.stdout.strip()}.0badc0de.tmp"  # what a run killed mid-build leaves
    (left / "moving_attribute").mkdir(parents=True)
    (left / "moving_attribute" / "half.mp4").write_bytes(b"partial")
    alive = tmp_path / f".fx.{os.getpid()}.0badc0df.tmp"  # a live process's: kept
    alive.mkdir()
    assert savi(capsys, "eval", "fixture", tmp_path / "fx", *FIXTURE)[0] == 0
    assert not left.exists() and alive.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, "fx"])

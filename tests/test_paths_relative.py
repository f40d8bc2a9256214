"""README's flows from a fresh working folder with relative paths (the paths rule of savi_plugin.data.paths).

Every path a file stores is relative to that file's folder or absolute; a path on the command line is relative
to the working folder. Each test starts in a new empty working folder, names everything relatively, and checks
that what was written still names the right files when read from another working folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from savi_plugin.cli import main
from savi_plugin.data.paths import path_for_file, path_from_file
from savi_plugin.video.synthetic import load_synthetic_samples, make_synthetic_dataset
from tests.builders import read_jsonl

TRAIN = ["train.max_steps=1", "train.per_device_train_batch_size=2", "train.save_strategy='no'",
         "train.logging_steps=1"]
ALIGN = ["generate.batch_size=6", "generate.options={answer_format: raw}",
         *TRAIN, "align.iterations=1", "align.eval_every_iteration=false"]


def stored_paths_are_by_the_rule(value, holder: Path, found: list[str]) -> None:
    """Every string of ``value`` that names a path: absolute, or an existing path relative to ``holder``'s
    folder (never one relative to the working folder the file was written from)."""
    if isinstance(value, (dict, list)):
        # a model identity's ``members`` are file names inside the model folder, not paths stored by the rule
        for v in ([v for k, v in value.items() if k != "members"] if isinstance(value, dict) else value):
            stored_paths_are_by_the_rule(v, holder, found)
    elif isinstance(value, str) and ("/" in value or value.endswith((".json", ".jsonl", ".mp4"))):
        if not os.path.isabs(value):
            assert path_from_file(value, holder).exists(), f"{holder}: {value!r} is not relative to its folder"
        found.append(value)


def test_path_for_file_and_path_from_file_are_inverse(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert path_for_file("out/vids/a.mp4", "out/pairs.jsonl") == "vids/a.mp4"
    assert path_for_file("vids/a.mp4", "out/pairs.jsonl") == str(tmp_path / "vids" / "a.mp4")
    for video, holder in [("out/vids/a.mp4", "out/pairs.jsonl"), ("vids/a.mp4", "out/p.jsonl"),
                          ("/abs/a.mp4", "x.jsonl")]:
        assert os.path.abspath(path_from_file(path_for_file(video, holder), holder)) == os.path.abspath(video)


def test_synthetic_manifest_stores_paths_relative_to_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_synthetic_dataset(Path("runs/d/videos"), 2, seed=0, num_frames=4)
    rows = read_jsonl(Path("runs/d/videos/samples.jsonl"))
    assert [r["video"] for r in rows] == ["synth_0_00000.mp4", "synth_0_00001.mp4"]
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    samples = load_synthetic_samples("../runs/d/videos/samples.jsonl")
    assert all(Path(s.video).is_file() for s in samples)


def test_generate_then_train_with_outputs_in_subfolders(tiny_llava_onevision, tmp_path, monkeypatch):
    """README: ``savi generate ... --input vids/qa.jsonl --output out/pairs.jsonl``, then train on it."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    make_synthetic_dataset(Path("vids"), 6, seed=0, num_frames=4)
    Path("vids/samples.jsonl").rename("vids/qa.jsonl")
    rc = main(["generate", "--generator", "rrpo", "--model", str(tiny_llava_onevision), "--input", "vids/qa.jsonl",
               "--output", "out/pairs.jsonl", "--num-frames", "4", "-o", "answer_format=raw", "--no-progress"])
    assert rc == 0
    pairs = read_jsonl(Path("out/pairs.jsonl"))
    assert pairs, "the tiny model made no error to turn into a pair"
    for rec in pairs:  # outside out/: absolute; and it names the real video
        assert os.path.isabs(rec["video"]) and Path(rec["video"]).is_file()
    report = json.loads(Path("out/pairs.jsonl.report.json").read_text())
    assert report["output"] == "pairs.jsonl" and report["report"] == "pairs.jsonl.report.json"

    model = os.path.relpath(tiny_llava_onevision)  # a model named relative to the working folder
    rc = main(["train", "tiny_demo", "--model", model, "--data", "out/pairs.jsonl", "--output-dir", "out/train",
               *TRAIN, "train.save_strategy='steps'", "train.save_steps=1"])
    assert rc == 0
    assert Path("out/train/adapter_model.safetensors").is_file()
    # no run folder: the run's configuration names the model and the pairs (outside the output folder) absolute in
    # each file that holds it -- the folder's mark, savi_train_config.json, every checkpoint's identity
    for holder in ("out/train/.savi-output.json", "out/train/savi_train_config.json",
                   "out/train/checkpoint-1/savi_checkpoint.json"):
        stored = json.loads(Path(holder).read_text())
        stored = stored.get("config", stored)
        assert (stored["model"], stored["data"]) == (str(tiny_llava_onevision), str(work / "out" / "pairs.jsonl"))
    report = json.loads(Path("out/train/train_report.json").read_text())
    assert report["data"] == str(work / "out" / "pairs.jsonl") and report["output_dir"] == report["adapter"] == "."
    assert report["dataset"]["path"] == str(work / "out" / "pairs.jsonl")
    adapter = json.loads(Path("out/train/savi_adapter.json").read_text())
    assert adapter["base_model"] == str(tiny_llava_onevision)  # outside the adapter's folder: absolute
    # peft's own file: peft reads base_model_name_or_path against the loading process's working folder
    peft = json.loads(Path("out/train/adapter_config.json").read_text())
    assert peft["base_model_name_or_path"] == str(tiny_llava_onevision)
    every_json_stores_paths_by_the_rule(work, "savi_adapter.json", "train_report.json", "adapter_config.json",
                                        "pairs.jsonl.report.json")


def every_json_stores_paths_by_the_rule(root: Path, *expected: str) -> None:
    """Every JSON file savi wrote under ``root`` (reports, marks, manifests, adapter records, peft's config) stores
    each path relative to its own folder or absolute: none is relative to the working folder it was written from.
    ``expected``: file names that must be among them."""
    holders = sorted(p for p in root.rglob("*.json") if p.is_file())
    assert set(expected) <= {p.name for p in holders}, (expected, holders)
    for holder in holders:
        for value in strings(json.loads(holder.read_text()), skip=NAME_KEYS):
            relative = value and "\n" not in value and len(value) < 1000 and not os.path.isabs(value)
            if relative and os.path.exists(value) and value not in (".", ".."):  # names something from here...
                # ...so it must name the same thing from the holder's folder
                assert os.path.realpath(path_from_file(value, holder)) == os.path.realpath(value), \
                    f"{holder}: {value!r} is relative to the working folder, not to its own folder"


#: keys whose values are names, never paths: a suite's adapter label is its folder's name (``aligned``), in its
#: ``done.json`` and its table's rows
NAME_KEYS = ("label", "rows")


def strings(value, skip: tuple[str, ...] = ()):
    """Every string inside a JSON value (but the values of keys in ``skip``)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k not in skip:
                yield from strings(v, skip)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v, skip)
    elif isinstance(value, str):
        yield value


def nothing_names_the_old_place(moved: Path, old: Path, *expected: str, skip: tuple[str, ...] = ()) -> None:
    """A run folder moved whole from ``old`` to ``moved``: no string in any JSON file under it names anything at the
    old place (every path into the run folder is stored relative; the user's files outside it stay absolute).
    peft's ``adapter_config.json`` is not ours: it keeps its base absolute (README, "Paths, everywhere": peft reads
    it against the working folder of the process that loads the adapter). ``expected``: file names that must be
    among those scanned; ``skip``: names of files not checked."""
    holders = sorted(p for p in moved.rglob("*.json") if p.is_file() and p.name not in ("adapter_config.json", *skip))
    assert set(expected) <= {p.name for p in holders}, (expected, holders)
    places = {str(old), os.path.realpath(old)}
    for holder in holders:
        for value in strings(json.loads(holder.read_text())):
            assert not any(value == place or place + os.sep in value for place in places), \
                f"{holder}: {value!r} names the run folder's old place"


def test_an_adapter_names_its_base_from_where_the_user_stands(tiny_llava_onevision, tmp_path, monkeypatch, capsys):
    """Red team 5: an adapter trained in ``demo/`` on ``demo/models/warm`` stored that cwd-relative path, and
    ``cd demo && savi generate --adapter rrpo --model models/tiny`` named 'demo/models/warm' (nothing from there).
    The base is stored relative to the adapter's folder, and a refusal names it from the working folder."""
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_llava_onevision, "demo/models/warm")
    shutil.copytree(tiny_llava_onevision, "demo/models/tiny")
    config = json.loads(Path("demo/models/tiny/config.json").read_text())
    Path("demo/models/tiny/config.json").write_text(json.dumps({**config, "savi_test": 1}))  # other files
    from savi_plugin.data.identity import ADAPTER_FILE, write_adapter_identity

    Path("demo/rrpo").mkdir()  # the record is what check_adapter_base reads (the weights are not needed here)
    write_adapter_identity("demo/rrpo", "demo/models/warm", "llava_onevision")
    stored = json.loads(Path("demo/rrpo", ADAPTER_FILE).read_text())["base_model"]
    assert stored == str(tmp_path / "demo/models/warm")  # outside the adapter's folder: absolute
    for cwd, adapter, model, named in [("demo", "rrpo", "models/tiny", "models/warm"),
                                       ("demo/rrpo", ".", "../models/tiny", stored),
                                       (".", "demo/rrpo", "demo/models/tiny", "demo/models/warm")]:
        monkeypatch.chdir(tmp_path / cwd)
        from savi_plugin.data.identity import IdentityMismatchError, check_adapter_base

        with pytest.raises(IdentityMismatchError) as err:
            check_adapter_base(adapter, model)
        assert f"the adapter was trained on {named} and would be applied to {model}" in str(err.value), err.value
        assert (Path(named) / "config.json").is_file()

    # an adapter an older savi wrote, its base stored relative to the folder it ran in: said, not guessed
    monkeypatch.chdir(tmp_path / "demo")
    record = Path("rrpo", ADAPTER_FILE)
    record.write_text(json.dumps({**json.loads(record.read_text()), "base_model": "demo/models/warm"}))
    with pytest.raises(IdentityMismatchError) as err:
        check_adapter_base("rrpo", "models/tiny")
    assert "trained on demo/models/warm (as rrpo/savi_adapter.json names it; nothing of that name beside it" in \
        str(err.value), err.value


def test_pairs_inside_the_output_folder_are_stored_relative(tiny_llava_onevision, tmp_path, monkeypatch):
    """Videos under the pairs file's folder are stored relative to it, so the folder can move as a whole."""
    monkeypatch.chdir(tmp_path)
    make_synthetic_dataset(Path("data/vids"), 6, seed=0, num_frames=4)
    assert main(["generate", "--generator", "rrpo", "--model", str(tiny_llava_onevision), "--input",
                 "data/vids/samples.jsonl", "--output", "data/pairs.jsonl", "--num-frames", "4",
                 "-o", "answer_format=raw", "--no-progress"]) == 0
    pairs = read_jsonl(Path("data/pairs.jsonl"))
    assert pairs and all(rec["video"].startswith("vids/") for rec in pairs)
    Path("data").rename("moved")
    assert main(["data", "validate", "moved/pairs.jsonl"]) == 0
    assert all(path_from_file(rec["video"], "moved/pairs.jsonl").is_file() for rec in pairs)


def test_merge_into_another_folder_keeps_every_video_path(tiny_llava_onevision, tmp_path, monkeypatch):
    """``savi generate --shard i/2`` into ``data/``, then ``savi generate merge`` into ``merged/``."""
    monkeypatch.chdir(tmp_path)
    make_synthetic_dataset(Path("data/vids"), 4, seed=0, num_frames=4)
    for shard in ("0/2", "1/2"):
        assert main(["generate", "--generator", "rrpo", "--model", str(tiny_llava_onevision), "--input",
                     "data/vids/samples.jsonl", "--output", "data/pairs.jsonl", "--num-frames", "4", "--batch-size",
                     "2", "-o", "answer_format=raw", "--no-progress", "--shard", shard]) == 0
    shards = sorted(str(p) for p in Path("data").glob("pairs.shard-*-of-00002.jsonl"))
    assert main(["generate", "merge", "merged/all.jsonl", *shards]) == 0
    merged = read_jsonl(Path("merged/all.jsonl"))
    assert merged and all(rec["video"].startswith("../data/vids/") or os.path.isabs(rec["video"]) for rec in merged)
    assert all(path_from_file(rec["video"], "merged/all.jsonl").is_file() for rec in merged)
    every_json_stores_paths_by_the_rule(tmp_path, "all.jsonl.report.json")


def test_align_relative_out_then_resumed_from_another_folder(tiny_llava_onevision, tmp_path, monkeypatch):
    """``savi align --out runs/a``; the run is killed after its generate step and resumed from another folder,
    every path typed relative to the working folder (the model and the QA file outside the run folder)."""
    first, second = tmp_path / "first", tmp_path / "second" / "sub"
    first.mkdir()
    second.mkdir(parents=True)
    make_synthetic_dataset(tmp_path / "qa", 6, seed=0)
    (tmp_path / "tiny").symlink_to(tiny_llava_onevision)
    monkeypatch.chdir(first)
    model, qa = "model.path=../tiny", "data.qa=../qa/samples.jsonl"
    assert main(["align", "tiny_demo", model, qa, *ALIGN, "--out", "runs/a"]) == 0
    manifest_path = first / "runs/a/manifest.json"
    manifest = json.loads(manifest_path.read_text())
    # the recipe's paths by the rule (red team 7 stored them as typed, relative to the first working folder)
    stored = manifest["recipe"]
    assert (stored["model"]["path"], stored["data"]["qa"]) == (str(tmp_path / "tiny"),
                                                               str(tmp_path / "qa" / "samples.jsonl"))
    model, qa = "model.path=../../tiny", "data.qa=../../qa/samples.jsonl"  # the same files, from second/sub
    found: list[str] = []
    stored_paths_are_by_the_rule(manifest["iterations"], manifest_path, found)
    assert manifest["iterations"][0]["data"] == "iter_0/pairs.jsonl" and found

    # as if killed after generation: the train and merge steps are still to do
    it = manifest["iterations"][0]
    for key in ("adapter", "train", "next_model"):
        it.pop(key)
    from savi_plugin.data.kept import seal

    manifest_path.write_text(json.dumps(seal(manifest)))  # as the run's own save would have sealed it
    for folder in ("train", "model"):
        for p in sorted((first / "runs/a/iter_0" / folder).rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
    monkeypatch.chdir(second)
    assert main(["align", "tiny_demo", model, qa, *ALIGN, "--out", "../../first/runs/a"]) == 0
    resumed = json.loads(manifest_path.read_text())["iterations"][0]
    assert resumed["adapter"] == "iter_0/train" and resumed["next_model"] == "iter_0/model"
    assert (first / "runs/a/iter_0/model/config.json").is_file()
    assert not (second / "runs").exists()
    every_json_stores_paths_by_the_rule(first / "runs/a", "manifest.json", "savi_adapter.json", "train_report.json",
                                        ".savi-output.json")
    assert json.loads(manifest_path.read_text())["recipe"] == stored

    # the run folder moved whole with shutil.move, the old place gone, killed again after generation: resumed there
    import shutil

    moved = tmp_path / "moved"
    shutil.move(str(first / "runs/a"), str(moved))
    shutil.rmtree(first)
    nothing_names_the_old_place(moved, first / "runs/a", "manifest.json", "savi_train_config.json",
                                ".savi-output.json", "train_report.json", "pairs.jsonl.report.json",
                                "pairs.jsonl.savi-output.json")
    manifest_path = moved / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for key in ("adapter", "train", "next_model"):
        manifest["iterations"][0].pop(key)
    manifest_path.write_text(json.dumps(seal(manifest)))
    for folder in ("train", "model"):
        shutil.rmtree(moved / "iter_0" / folder)
    assert main(["align", "tiny_demo", model, qa, *ALIGN, "--out", "../../moved"]) == 0
    assert json.loads(manifest_path.read_text())["iterations"][0]["next_model"] == "iter_0/model"
    assert (moved / "iter_0/model/config.json").is_file() and not first.exists()
    for rec in read_jsonl(moved / "iter_0/pairs.jsonl"):  # the user's videos, outside the run folder: absolute
        assert os.path.isabs(rec["video"]) and Path(rec["video"]).is_file()
    every_json_stores_paths_by_the_rule(moved, "manifest.json", "savi_adapter.json", "train_report.json")


def test_demo_with_a_relative_run_folder_that_moves_whole(tmp_path, monkeypatch, capsys, caplog):
    """``savi demo --out runs/d`` (a small world): generation finds the videos, training gets pairs; the run folder
    moved elsewhere (the old place gone) names nothing at its old place, still trains from its pairs, and the demo
    killed during training continues there from its checkpoint."""
    import shutil

    monkeypatch.chdir(tmp_path)
    small = ["demo.align_videos=16", "demo.heldout_videos=8", "demo.warmup_videos=16", "demo.warmup_steps=60",
             "demo.compare_dpo=false", "train.max_steps=2", "train.save_steps=1"]
    rc = main(["demo", "--out", "runs/d", *small])
    assert rc == 0
    report = json.loads(Path("runs/d/data/rrpo_pairs.jsonl.report.json").read_text())
    assert report["counts"]["failed"] == 0 and report["counts"]["pairs"] > 0  # every video was found
    for rec in map(json.loads, Path("runs/d/data/rrpo_pairs.jsonl").read_text().splitlines()):
        assert path_from_file(rec["video"], "runs/d/data/rrpo_pairs.jsonl").is_file()
    assert Path("runs/d/demo.png").is_file() and not Path("runs/d/runs").exists()
    results = json.loads(Path("runs/d/results.json").read_text())
    assert (results["plot"], results["out_dir"]) == ("demo.png", ".")
    every_json_stores_paths_by_the_rule(tmp_path / "runs/d", "results.json", "savi_adapter.json", "train_report.json")
    # the pairs under data/ name the videos under videos/ and the model under models/ relative to themselves
    pairs = [json.loads(line) for line in Path("runs/d/data/rrpo_pairs.jsonl").read_text().splitlines()]
    assert pairs and all(rec["video"].startswith("../videos/align/") for rec in pairs)
    assert "/runs/d/" not in Path("runs/d/rrpo/savi_adapter.json").read_text()
    # the training run's configuration, in each file that holds it, names the model and the pairs relative to itself
    mark = json.loads(Path("runs/d/rrpo/.savi-output.json").read_text())["config"]
    config = json.loads(Path("runs/d/rrpo/savi_train_config.json").read_text())
    checkpoint = json.loads(Path("runs/d/rrpo/checkpoint-1/savi_checkpoint.json").read_text())["config"]
    assert (mark["model"], mark["data"]) == (config["model"], config["data"]) == (
        "../models/warm", "../data/rrpo_pairs.jsonl")
    assert (checkpoint["model"], checkpoint["data"]) == ("../../models/warm", "../../data/rrpo_pairs.jsonl")
    # so does the generation run's, in its mark, its progress file's first line and its report; each pair names its model
    gen_files = [Path("runs/d/data/rrpo_pairs.jsonl" + suffix) for suffix in (".savi-output.json", ".report.json")]
    stored = [json.loads(f.read_text())["config"] for f in gen_files]
    stored.append(json.loads(Path("runs/d/data/rrpo_pairs.jsonl.progress.jsonl").read_text().splitlines()[0])["config"])
    assert {(c["model"], c["inputs"], c["adapter"], c["data_root"]) for c in stored} == {
        ("../models/warm", "../videos/align/samples.jsonl", None, None)}
    assert {rec["meta"]["model"] for rec in pairs} == {"../models/warm"}

    shutil.move("runs/d", "elsewhere/d")  # the run folder moved whole, the old place gone
    Path("runs").rmdir()
    nothing_names_the_old_place(tmp_path / "elsewhere/d", tmp_path / "runs/d", ".savi-output.json",
                                "savi_train_config.json", "savi_checkpoint.json", "train_report.json",
                                "savi_adapter.json", "results.json", "rrpo_pairs.jsonl.report.json",
                                "rrpo_pairs.jsonl.savi-output.json")
    from savi_plugin.training.run import last_complete_checkpoint

    # its checkpoints are still this run's, judged by the configuration its moved mark stores
    assert last_complete_checkpoint("elsewhere/d/rrpo") == "elsewhere/d/rrpo/checkpoint-2"
    capsys.readouterr()  # another configuration into the moved training folder is still refused, nothing touched
    before = sorted((p, p.stat().st_mtime_ns) for p in Path("elsewhere/d/rrpo").rglob("*"))
    retrain = ["train", "tiny_demo", "--data", "elsewhere/d/data/rrpo_pairs.jsonl", "--model",
               "elsewhere/d/models/warm", "--output-dir", "elsewhere/d/rrpo", "train.learning_rate=1e-5"]
    assert main(retrain) == 1  # a step of the demo's run: the demo alone writes there
    assert "lies at a step of the savi demo run in elsewhere/d" in capsys.readouterr().err
    demo_mark = Path("elsewhere/d/.savi-output.json")
    kept_mark = demo_mark.read_bytes()
    demo_mark.unlink()  # no longer a claimed run folder: the training run's own mark decides
    assert main(retrain) == 1
    demo_mark.write_bytes(kept_mark)
    assert "was made with a different configuration (training.learning_rate: 0.0003 -> 1e-05;" in \
        capsys.readouterr().err  # only what changed: the paths, relative at the new place, name the same files
    assert sorted((p, p.stat().st_mtime_ns) for p in Path("elsewhere/d/rrpo").rglob("*")) == before
    capsys.readouterr()
    assert main(["train", "tiny_demo", "--data", "elsewhere/d/data/rrpo_pairs.jsonl", "--model",
                 "elsewhere/d/models/warm", "--output-dir", "t", "train.max_steps=1"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed[printed.index("\n{\n") + 1:])  # the run's summary, after the trainer's lines
    assert summary["pairs"] == len(pairs) and summary["skipped"] == 0  # every video found at the new place
    Path("elsewhere/d/rrpo/train_report.json").unlink()  # as if killed after its first checkpoint: continued
    shutil.rmtree("elsewhere/d/rrpo/checkpoint-2")
    caplog.set_level("INFO")
    assert main(["demo", "--out", "elsewhere/d", *small]) == 0  # resumed: the same demo, moved
    assert "holds an unfinished run of this configuration: continuing from elsewhere/d/rrpo/checkpoint-1" in \
        caplog.text, caplog.text[-3000:]
    assert json.loads(Path("elsewhere/d/rrpo/train_report.json").read_text())["global_step"] == 2
    report = json.loads(Path("elsewhere/d/data/rrpo_pairs.jsonl.report.json").read_text())
    assert report["counts"]["failed"] == 0 and report["counts"]["pairs"] == len(pairs)
    assert not Path("runs").exists()


def test_recipe_paths_are_relative_to_the_recipe_file(tiny_llava_onevision, tmp_path, monkeypatch):
    """A recipe's relative ``model.path`` names the model next to the recipe, from any working folder."""
    from savi_plugin.recipe import load_recipe

    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    os.symlink(tiny_llava_onevision, project / "models" / "tiny")
    (project / "my.yaml").write_text("extends: tiny_demo\nmodel:\n  path: models/tiny\n")
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe("project/my.yaml")
    assert Path(recipe.model.path).resolve() == Path(tiny_llava_onevision).resolve()

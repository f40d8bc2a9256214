"""Data-parallel sharding by item (item k to shard k mod n): shards + merge reproduce the unsharded output (greedy
decoding, or any decoding with one item per batch), and a shard made under another split is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from savi_plugin.cli import main
from savi_plugin.data.fingerprint import ConfigMismatchError
from savi_plugin.generators import find_shards, merge_shards, run_generation, shard_output_path
from savi_plugin.generators.merge import IncompleteShardsError


def test_rrpo_two_shards_via_cli_merge_equal_unsharded(tiny_qwen2_vl, synthetic_samples, tmp_path, capsys):
    inputs = Path(synthetic_samples[0].video).parent / "samples.jsonl"
    options = {"answer_format": "raw", "num_perturbations": 2, "pairs_per_question": 2, "max_new_tokens": 10}
    full = tmp_path / "full.jsonl"
    unsharded = run_generation(generator="rrpo", model=tiny_qwen2_vl, inputs=inputs, output=full, num_frames=4,
                               batch_size=2, seed=3, options=options, progress=False)
    expected = full.read_bytes()
    assert expected.count(b"\n") == unsharded["counts"]["pairs"] >= 18

    out = tmp_path / "sharded.jsonl"
    for shard in ("0/2", "1/2"):
        argv = ["generate", "--generator", "rrpo", "--model", str(tiny_qwen2_vl), "--input", str(inputs),
                "--output", str(out), "--num-frames", "4", "--batch-size", "2", "--seed", "3", "--shard", shard,
                "--no-progress"] + [f"--option={k}={v}" for k, v in options.items()]
        assert main(argv) == 0
    shards = find_shards(out)
    assert [p.name for p in shards] == ["sharded.shard-00000-of-00002.jsonl", "sharded.shard-00001-of-00002.jsonl"]
    sizes = [p.read_bytes().count(b"\n") for p in shards]
    assert all(sizes) and sum(sizes) == expected.count(b"\n")  # each shard did part of the work
    capsys.readouterr()
    assert main(["generate", "merge", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["records"], printed["duplicates"], printed["invalid"]) == (expected.count(b"\n"), 0, [])
    assert out.read_bytes() == expected
    merged_report = json.loads(out.with_name("sharded.jsonl.report.json").read_text())
    assert merged_report["run"]["counts"]["by_reason"] == unsharded["counts"]["by_reason"]
    assert merged_report["run"]["complete"]

    # Merging overlapping inputs (a copy of a shard, a torn tail) de-duplicates by id; the same name given twice
    # (overlapping globs) is read once, so it counts no duplicate and is listed once (pass 19 C #24)
    torn = tmp_path / "torn.jsonl"
    shutil.copy(shards[1], torn)
    with open(torn, "ab") as fh:
        fh.write(b'{"id": "half')
    again = merge_shards([shards[0], shards[1], shards[0], torn], tmp_path / "again.jsonl", allow_incomplete=True)
    assert again["duplicates"] == sizes[1] and again["conflicts"] == []
    assert [Path(p).name for p in json.loads((tmp_path / "again.jsonl.report.json").read_text())["inputs"]] == [
        shards[0].name, shards[1].name, torn.name]
    assert again["truncated"] == [f"{torn}:{sizes[1] + 1}"]
    assert (tmp_path / "again.jsonl").read_bytes() == expected

    # pass 16 A #4: a copy of shard 0 (with its report) under shard 1's name is named as what its report says
    for suffix in ("", ".report.json"):
        shutil.copy(f"{shards[0]}{suffix}", tmp_path / f"cp.shard-00001-of-00002.jsonl{suffix}")
    capsys.readouterr()
    assert main(["generate", "merge", str(tmp_path / "cm.jsonl"), str(shards[0]),
                 str(tmp_path / "cp.shard-00001-of-00002.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "named as shard 1 of 2, but its run report says it is shard 0 of 2 (a copy or a rename)" in err, err


def test_torchrun_ranks_and_videosavi_shards(tiny_llava_onevision, synthetic_samples, tmp_path, monkeypatch):
    inputs = Path(synthetic_samples[0].video).parent / "samples.jsonl"
    kwargs = dict(generator="videosavi", model=str(tiny_llava_onevision), inputs=inputs, num_frames=4, batch_size=2,
                  limit=8, seed=1, progress=False,
                  options={"question_source": "input", "max_new_tokens": 10, "min_edit_distance": 0.0})
    full = tmp_path / "full.jsonl"
    run_generation(output=full, **kwargs)
    out = tmp_path / "ranked.jsonl"
    monkeypatch.setattr("savi_plugin.launch.launcher_ancestor", lambda: "torchrun")  # the launcher is there
    for rank in (0, 1):  # what torchrun --nproc_per_node 2 sets in each process
        for key, value in {"WORLD_SIZE": "2", "RANK": str(rank), "TORCHELASTIC_RUN_ID": "none", "GROUP_RANK": "0",
                           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}.items():
            monkeypatch.setenv(key, value)
        report = run_generation(output=out, **kwargs)
        assert report["output"] == str(shard_output_path(out, rank, 2))
        assert report["config"]["shard"] == [rank, 2] and report["counts"]["items"] == 4
    result = merge_shards(find_shards(out), out)
    assert result["records"] == full.read_bytes().count(b"\n") > 0
    assert out.read_bytes() == full.read_bytes()


def _rrpo(tiny_qwen2_vl, inputs, output, **kwargs):
    options = {"answer_format": "raw", "num_perturbations": 1, "max_new_tokens": 6, **kwargs.pop("options", {})}
    return run_generation(generator="rrpo", model=tiny_qwen2_vl, inputs=inputs, output=output, num_frames=4,
                          seed=2, options=options, progress=False, **kwargs)


def test_shards_split_items_not_batches(tiny_qwen2_vl, synthetic_samples, tmp_path):
    """5 items, batches of 4, 3 shards: 2/2/1 items (none idle; by whole batches two shards had nothing), and the
    merge holds every item's records once, in input order."""
    inputs = Path(synthetic_samples[0].video).parent / "samples.jsonl"
    ids = [s.id for s in synthetic_samples[:5]]
    out = tmp_path / "p.jsonl"
    reports = [_rrpo(tiny_qwen2_vl, inputs, out, batch_size=4, limit=5, shard=(i, 3)) for i in range(3)]
    assert [r["counts"]["items"] for r in reports] == [2, 2, 1]
    assert [r["throughput"]["batches"] for r in reports] == [1, 1, 1]
    for i, report in enumerate(reports):  # shard i did items i, i+3 and nothing else
        rows = [json.loads(line) for line in Path(report["progress"]).read_text().splitlines()][1:]
        assert [row["id"] for row in rows] == ids[i::3] and {row["batch"] for row in rows} == {i}
        assert report["complete"] and report["config"]["shard_split"] == "items-round-robin"
    result = merge_shards(find_shards(out), out)
    assert result["complete"] and (result["duplicates"], result["conflicts"]) == (0, [])
    assert result["run"]["counts"]["items"] == result["run"]["counts"]["items_done"] == 5
    merged = [json.loads(line) for line in out.read_text().splitlines()]
    shard_ids = [json.loads(line)["id"] for path in find_shards(out) for line in path.read_text().splitlines()]
    assert len(merged) == result["records"] == len(shard_ids) > 0
    assert sorted(r["id"] for r in merged) == sorted(shard_ids)  # each record exactly once
    assert [r["meta"]["order"] for r in merged] == sorted(r["meta"]["order"] for r in merged)  # input order
    assert {ids[r["meta"]["order"][0]] for r in merged} <= set(ids)
    # greedy decoding here: the shards' other batches give the one-process run's bytes
    full = tmp_path / "full.jsonl"
    _rrpo(tiny_qwen2_vl, inputs, full, batch_size=4, limit=5)
    assert out.read_bytes() == full.read_bytes()


def test_sampled_shards_of_batch_size_one_equal_the_unsharded_run(tiny_qwen2_vl, synthetic_samples, tmp_path):
    """A shard's batch keeps its global index (batch j of shard i of n: j*n + i), which seeds its sampling: with
    one item per batch, sampled shards merge into the unsharded run's bytes."""
    inputs = Path(synthetic_samples[0].video).parent / "samples.jsonl"
    kwargs = dict(batch_size=1, limit=4, options={"do_sample": True, "temperature": 1.5})
    full, out = tmp_path / "full.jsonl", tmp_path / "sharded.jsonl"
    _rrpo(tiny_qwen2_vl, inputs, full, **kwargs)
    for i in range(2):
        _rrpo(tiny_qwen2_vl, inputs, out, shard=(i, 2), **kwargs)
    merge_shards(find_shards(out), out)
    assert out.read_bytes() == full.read_bytes() and out.stat().st_size > 0


def test_a_shard_with_no_item_says_why(tiny_qwen2_vl, synthetic_samples, tmp_path, caplog):
    """Fewer items than shards leave the last shards idle, which they say (red team 5 saw "0 pair(s) from 0
    item(s)" with no word)."""
    inputs = Path(synthetic_samples[0].video).parent / "samples.jsonl"
    report = run_generation(generator="rrpo", model=tiny_qwen2_vl, inputs=inputs, output=tmp_path / "p.jsonl",
                            num_frames=4, batch_size=8, limit=2, shard=(2, 3), progress=False)
    assert report["counts"]["items"] == 0 and report["complete"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["shard 2/3 has no item: items go to the shards in turn, and there are 2 item(s) for 3 shards"]


def test_a_shard_made_under_another_split_is_refused_not_continued(tiny_qwen2_vl, synthetic_samples, tmp_path):
    """A shard output whose configuration names no split (made when shards took whole batches) holds other items
    than this split gives the shard: resuming it, or merging it with shards of this split, is refused."""
    inputs = Path(synthetic_samples[0].video).parent / "samples.jsonl"
    out = tmp_path / "p.jsonl"
    for i in range(2):
        _rrpo(tiny_qwen2_vl, inputs, out, batch_size=2, limit=3, shard=(i, 2))
    old = shard_output_path(out, 1, 2)
    progress = old.with_name(old.name + ".progress.jsonl")
    mark = old.with_name(old.name + ".savi-output.json")
    lines = progress.read_text().splitlines()
    head = json.loads(lines[0])
    del head["config"]["shard_split"]  # the configuration the earlier split stored
    progress.write_text("\n".join([json.dumps(head)] + lines[1:]) + "\n")
    stored = json.loads(mark.read_text())
    del stored["config"]["shard_split"]
    mark.write_text(json.dumps(stored))
    with pytest.raises(ConfigMismatchError, match="shard_split: \"items-round-robin\" -> null"):
        merge_shards(find_shards(out), out)
    assert not out.exists()
    with pytest.raises(ConfigMismatchError, match="shard_split: null -> \"items-round-robin\""):
        _rrpo(tiny_qwen2_vl, inputs, out, batch_size=2, limit=4, shard=(1, 2))
    assert progress.read_text().splitlines()[1:] == lines[1:]  # nothing added to the old shard


def test_shards_run_with_different_limits_are_an_incomplete_set(tiny_qwen2_vl, synthetic_samples, tmp_path):
    """Each shard finished its share, but shard 1 split 2 items and shard 0 split 4: item 3 was nobody's."""
    inputs = Path(synthetic_samples[0].video).parent / "samples.jsonl"
    out = tmp_path / "p.jsonl"
    for i, limit in ((0, 4), (1, 2)):
        assert _rrpo(tiny_qwen2_vl, inputs, out, batch_size=2, limit=limit, shard=(i, 2))["complete"]
    with pytest.raises(IncompleteShardsError, match=r"p.shard-00001-of-00002.jsonl: its run split 2 item\(s\) among "
                                                    r"the shards, p.shard-00000-of-00002.jsonl's 4 \(another --limit\)"):
        merge_shards(find_shards(out), out)
    _rrpo(tiny_qwen2_vl, inputs, out, batch_size=2, limit=4, shard=(1, 2))  # the same --limit: item 3 is done
    assert merge_shards(find_shards(out), out)["run"]["counts"]["items_done"] == 4

def test_a_converted_file_named_like_a_shard_is_not_counted_into_a_shard_set(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    record = {"id": "p0", "video": "v.mp4", "question": "q?", "chosen": "a red car", "rejected": "a blue car"}
    (tmp_path / "v.mp4").write_bytes(b"a video")  # what the records name, from their folder
    (tmp_path / "src.jsonl").write_text(json.dumps(record) + "\n")
    (tmp_path / "pairs.shard-0-of-2.jsonl").write_text(json.dumps({**record, "id": "p1"}) + "\n")
    assert main(["data", "convert", "src.jsonl", "pairs.shard-1-of-2.jsonl", "--to", "savi"]) == 0
    capsys.readouterr()
    assert main(["generate", "merge", "merged.jsonl", "pairs.shard-1-of-2.jsonl"]) == 1
    err = capsys.readouterr().err
    assert "is savi data convert's, not a generation run's" in err and "shard 0 of 2" not in err, err
    # a real shard set's missing member is named by its own file, however its numbers are padded
    (tmp_path / "pairs.shard-1-of-2.jsonl.report.json").unlink()
    assert main(["generate", "merge", "merged.jsonl", "pairs.shard-1-of-2.jsonl"]) == 1
    err = capsys.readouterr().err
    assert "pairs.shard-0-of-2.jsonl: shard 0 of 2 is not given" in err and "00000" not in err, err


@pytest.mark.parametrize("link", ["symbolic", "hard"])
def test_one_shard_given_under_a_second_shards_name_is_refused_naming_both(link, tmp_path, capsys, monkeypatch):
    """Pass 15 A #23: a link named as shard 1 to shard 0's file drew "dup.shard-00000...: shard 0 of 2 is not
    found", naming a file nobody gave; the same name twice (overlapping globs) is still read once."""
    monkeypatch.chdir(tmp_path)
    record = {"id": "p0", "video": "v.mp4", "question": "q?", "chosen": "a red car", "rejected": "a blue car"}
    (tmp_path / "m.shard-0-of-2.jsonl").write_text(json.dumps(record) + "\n")
    dup = tmp_path / "dup.shard-1-of-2.jsonl"
    dup.symlink_to("m.shard-0-of-2.jsonl") if link == "symbolic" else dup.hardlink_to("m.shard-0-of-2.jsonl")
    assert main(["generate", "merge", "mm.jsonl", "m.shard-0-of-2.jsonl", "dup.shard-1-of-2.jsonl"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: dup.shard-1-of-2.jsonl: is the same file as m.shard-0-of-2.jsonl (a link to it, or it to "
                   "this one), given under a second name: give each shard once, by its own name"], err
    assert not (tmp_path / "mm.jsonl").exists()
    main(["generate", "merge", "mm.jsonl", "m.shard-0-of-2.jsonl", "m.shard-0-of-2.jsonl"])
    assert "same file" not in capsys.readouterr().err
    # pass 16 A #37: the same file spelled through its folder's parent is one set, not two with a shard each missing
    (tmp_path / "m.shard-1-of-2.jsonl").write_text(json.dumps({**record, "id": "p1"}) + "\n")
    main(["generate", "merge", "mm2.jsonl", f"../{tmp_path.name}/m.shard-0-of-2.jsonl", "m.shard-0-of-2.jsonl",
          "m.shard-1-of-2.jsonl"])
    assert "is not given" not in capsys.readouterr().err


def test_a_shard_count_beyond_the_bound_is_refused_at_the_flag_and_by_merge(tmp_path, capsys, monkeypatch):
    from savi_plugin.generators.runner import MAX_SHARDS, parse_shard

    monkeypatch.chdir(tmp_path)
    assert parse_shard(f"0/{MAX_SHARDS}") == (0, MAX_SHARDS)
    with pytest.raises(SystemExit) as exit_:
        main(["generate", "--output", "gx.jsonl", "--shard", f"0/{10**30}"])
    assert exit_.value.code == 2
    assert f"argument --shard: shard count must be at most {MAX_SHARDS}, got {10**30}" in capsys.readouterr().err
    # a file named as shard 0 of 10^30 (made by hand or by an older savi): refused before any work, in no time
    name = f"gx.shard-00000-of-{10**30}.jsonl"
    (tmp_path / name).write_text(json.dumps({"id": "p0", "video": "v.mp4", "question": "q?", "chosen": "a red car",
                                             "rejected": "a blue car"}) + "\n")
    assert main(["generate", "merge", "gm.jsonl", name]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {name}: named as a shard that --shard refuses"), err
    assert not (tmp_path / "gm.jsonl").exists()


def test_shards_in_run_folders_store_paths_by_the_rule_and_merge_by_what_they_name(tiny_qwen2_vl, synthetic_samples,
                                                                                    tmp_path):
    """Inside a declared run folder a shard's configuration (mark, progress line, report) and each pair's
    ``meta.model`` name the run folder's model and inputs relative to their own file, outside one absolute as
    always; shards spelling them differently (another folder, or no run folder) are one run -- read back, they name
    the same files -- and a shard of another configuration is refused naming only what changed."""
    from savi_plugin.data.paths import run_folder
    from savi_plugin.generators.merge import check_same_run

    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    (run / "models" / "m").symlink_to(tiny_qwen2_vl)
    (run / "videos").symlink_to(Path(synthetic_samples[0].video).parent)
    model, inputs = run / "models" / "m", run / "videos" / "samples.jsonl"
    kwargs = dict(batch_size=2, limit=3)
    near, deep, other = run / "a" / "p.jsonl", run / "b" / "deep" / "p.jsonl", tmp_path / "d" / "p.jsonl"
    with run_folder(run):
        _rrpo(model, inputs, near, shard=(0, 2), **kwargs)
        _rrpo(model, inputs, deep, shard=(1, 2), **kwargs)
    _rrpo(model, inputs, near, shard=(1, 2), **kwargs)  # beside shard 0, with no run folder declared: absolute
    _rrpo(model, inputs, other, shard=(1, 2), **{**kwargs, "batch_size": 1})
    near0, near1, deep1 = shard_output_path(near, 0, 2), shard_output_path(near, 1, 2), shard_output_path(deep, 1, 2)

    def stored(shard: Path) -> list[dict]:
        return [json.loads(shard.with_name(shard.name + ".savi-output.json").read_text())["config"],
                json.loads(shard.with_name(shard.name + ".report.json").read_text())["config"],
                json.loads(shard.with_name(shard.name + ".progress.jsonl").read_text().splitlines()[0])["config"],
                *({"model": json.loads(line)["meta"]["model"]} for line in shard.read_text().splitlines())]

    for shard, model_named, inputs_named in ((near0, "../models/m", "../videos/samples.jsonl"),
                                             (deep1, "../../models/m", "../../videos/samples.jsonl"),
                                             (near1, str(model), str(inputs))):
        assert len(stored(shard)) > 3 and {c["model"] for c in stored(shard)} == {model_named}
        assert {c["inputs"] for c in stored(shard)[:3]} == {inputs_named}

    check_same_run([near0, deep1])  # one configuration, spelled from two folders
    with run_folder(run):
        merged = merge_shards([near0, near1], run / "merged" / "all.jsonl")
    assert merged["complete"] and merged["records"] > 0 and merged["conflicts"] == []
    records = [json.loads(line) for line in (run / "merged" / "all.jsonl").read_text().splitlines()]
    assert {r["meta"]["model"] for r in records} == {"../models/m", str(model)}  # re-expressed, or absolute
    mark = json.loads((run / "merged" / "all.jsonl.savi-output.json").read_text())["config"]
    assert {s["model"] for s in mark["shards"]} == {"../models/m"}
    with pytest.raises(ConfigMismatchError, match=r"a different configuration than .*\(batch_size: 2 -> 1\)"):
        merge_shards([near0, shard_output_path(other, 1, 2)], tmp_path / "refused.jsonl")
    assert not (tmp_path / "refused.jsonl").exists()


@pytest.mark.parametrize("lines, unverified", [
    ([], False),  # an empty plain file: no run report, no record
    (['{"id": "h0", "video": "v.mp4", "question": "q?", "chosen": "a", "rejected": "b"}'], False),  # hand-made
    (['{"id": "c0", "video": "v.mp4", "question": "q?", "chosen": "a", "rejected": "b", '
      '"meta": {"generator": "rrpo", "model": "m"}}'], True),  # a copy of a run's pairs without its report
])
def test_a_merge_of_files_no_finished_run_vouches_for_says_complete_null(lines, unverified, tmp_path, capsys):
    """Red team 10 A#35: a merge of an empty plain file (no sidecars, no savi output) said complete: true, while a
    plain copy of a run's lines said null. complete is true only when every input's finished run vouches for it."""
    plain = tmp_path / "plain.jsonl"
    (tmp_path / "v.mp4").write_bytes(b"a video")  # what the records name, from their folder
    plain.write_text("".join(line + "\n" for line in lines))
    assert main(["generate", "merge", str(tmp_path / "m.jsonl"), str(plain)]) == 0
    report = json.loads((tmp_path / "m.jsonl.report.json").read_text())
    assert report["complete"] is None and report["records"] == len(lines) and report["missing"] == []
    assert ("unverified" in report) is unverified


@pytest.mark.parametrize("field", ["video", "meta.model"])
@pytest.mark.parametrize("edited", [False, True])
def test_a_copy_of_lines_in_another_folder_is_refused_for_where_its_paths_start_not_as_edited(
        field, edited, tmp_path, capsys, monkeypatch):
    """Pass 23 C #26: ``head -5 data/pairs.jsonl > p5.jsonl`` (its relative paths now start from another folder)
    merged with the file it was cut from was called "edited after its run", one line of the message per id, and
    cut mid-word. The same lines as written, naming other files from each folder, are one problem saying so,
    naming the path and what it names from each file's folder; a line edited is still said to be edited."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "videos").mkdir()
    (tmp_path / "models" / "m").mkdir(parents=True)
    (tmp_path / "videos" / "v.mp4").write_bytes(b"a video")
    records = [{"id": f"p{i}", "video": "../videos/v.mp4" if field == "video" else "/abs/v.mp4", "question": "q?",
                "chosen": "a red car", "rejected": "a blue car",
                "meta": {"generator": "rrpo", "model": "../models/m" if field == "meta.model" else "hub/m"}}
               for i in range(5)]
    (tmp_path / "data" / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    copy = records[:3] if not edited else [{**records[0], "chosen": "a green car"}, *records[1:3]]
    (tmp_path / "p3.jsonl").write_text("".join(json.dumps(r) + "\n" for r in copy))
    assert main(["generate", "merge", "m.jsonl", "data/pairs.jsonl", "p3.jsonl"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: m.jsonl: refusing to merge an incomplete shard set: "), err
    line = err[0]
    assert " ... " not in line, line  # said whole
    moved = (f"p3.jsonl holds {2 if edited else 3} record(s) of data/pairs.jsonl as written there, but a relative "
             f"path starts from its own file's folder: {field} '../{'videos/v.mp4' if field == 'video' else 'models/m'}'"
             f" names nothing from p3.jsonl's folder, {'videos/v.mp4' if field == 'video' else 'models/m'} from "
             f"data/pairs.jsonl's (is p3.jsonl a copy moved away from its folder?)")
    assert moved in line, line
    assert ("id 'p0' has different content in two shards (edited after its run)" in line) is edited, line
    assert "'p1' has different content" not in line and not (tmp_path / "m.jsonl").exists()


#: where each shard of a finished 2-shard run is copied (with its sidecars) before the merge; "." leaves it in place
SPREADS = {"two folders": ("moved", "mv2"), "one moved deep": (".", "deep/a")}


@pytest.mark.parametrize("spread", list(SPREADS))
def test_a_complete_shard_set_given_in_two_folders_is_merged(spread, tiny_qwen2_vl, synthetic_samples, tmp_path,
                                                             capsys, monkeypatch):
    """Pass 25 R3 #37, #38: both shards given, each in its own folder, were refused as "not found" / "not given"
    (the set was looked for in each shard's folder): a complete set given explicitly is merged wherever its files
    lie; a shard neither given nor beside a given one is named as such."""
    monkeypatch.chdir(tmp_path)
    inputs = Path(synthetic_samples[0].video).parent / "samples.jsonl"
    for index in (0, 1):
        _rrpo(tiny_qwen2_vl, inputs, Path("p.jsonl"), shard=(index, 2), batch_size=2, limit=4)
    given = []
    for index, folder in enumerate(SPREADS[spread]):
        shard = shard_output_path(Path("p.jsonl"), index, 2)
        if folder != ".":
            Path(folder).mkdir(parents=True)
            for file in Path(".").glob(f"{shard.name}*"):  # the shard and its sidecars, as `cp -a` copies them
                shutil.copy2(file, Path(folder) / file.name)
        given.append(str(Path(folder) / shard.name))
    capsys.readouterr()
    assert main(["generate", "merge", "m.jsonl", *given]) == 0, capsys.readouterr().err
    merged = [json.loads(line)["id"] for line in Path("m.jsonl").read_text().splitlines()]
    whole = [json.loads(line)["id"] for index in (0, 1)
             for line in shard_output_path(Path("p.jsonl"), index, 2).read_text().splitlines()]
    assert merged and sorted(merged) == sorted(whole)
    if spread == "two folders":  # one of the set alone: the other is neither given nor beside it
        assert main(["generate", "merge", "m1.jsonl", given[0]]) == 1
        err = capsys.readouterr().err
        assert "moved/p.shard-00001-of-00002.jsonl: shard 1 of 2 is not found" in err and "not given" not in err, err

"""Data-parallel sharding: 2 shards + merge reproduce the unsharded output byte for byte (CLI and API)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from savi_plugin.cli import main
from savi_plugin.generators import find_shards, merge_shards, run_generation, shard_output_path


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

    # Merging overlapping inputs (a shard given twice, a torn tail) de-duplicates by id.
    torn = tmp_path / "torn.jsonl"
    shutil.copy(shards[1], torn)
    with open(torn, "ab") as fh:
        fh.write(b'{"id": "half')
    again = merge_shards([shards[0], shards[1], shards[0], torn], tmp_path / "again.jsonl", allow_incomplete=True)
    assert again["duplicates"] == sizes[0] + sizes[1] and again["conflicts"] == []
    assert again["truncated"] == [f"{torn}:{sizes[1] + 1}"]
    assert (tmp_path / "again.jsonl").read_bytes() == expected


def test_torchrun_ranks_and_videosavi_shards(tiny_llava_onevision, synthetic_samples, tmp_path, monkeypatch):
    inputs = Path(synthetic_samples[0].video).parent / "samples.jsonl"
    kwargs = dict(generator="videosavi", model=str(tiny_llava_onevision), inputs=inputs, num_frames=4, batch_size=2,
                  limit=8, seed=1, progress=False,
                  options={"question_source": "input", "max_new_tokens": 10, "min_edit_distance": 0.0})
    full = tmp_path / "full.jsonl"
    run_generation(output=full, **kwargs)
    out = tmp_path / "ranked.jsonl"
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


def test_a_shard_with_no_batch_says_why(tiny_qwen2_vl, synthetic_samples, tmp_path, caplog):
    """Shards take whole batches in turn: two items in one batch leave shard 1/2 idle, which it says (red team 5
    saw "0 pair(s) from 0 item(s)" with no word)."""
    inputs = Path(synthetic_samples[0].video).parent / "samples.jsonl"
    report = run_generation(generator="rrpo", model=tiny_qwen2_vl, inputs=inputs, output=tmp_path / "p.jsonl",
                            num_frames=4, batch_size=8, limit=2, shard=(1, 2), progress=False)
    assert report["counts"]["items"] == 0 and report["complete"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["shard 1/2 has no item: shards take whole batches in turn, and the 2 item(s) make 1 batch(es) "
                        "of --batch-size 8"]


def test_a_converted_file_named_like_a_shard_is_not_counted_into_a_shard_set(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    record = {"id": "p0", "video": "v.mp4", "question": "q?", "chosen": "a red car", "rejected": "a blue car"}
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

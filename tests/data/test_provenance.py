"""Provenance of a pair file: the advice for a file whose run's end cannot be checked."""

from __future__ import annotations

import logging

from tests.builders import write_jsonl


def _run_records(seed: int, ids: range) -> list[dict]:
    meta = {"generator": "rrpo", "prompts_version": "rrpo-prompts-v2", "model": "m", "backend": "qwen2_vl",
            "num_frames": 4, "seed": seed}
    return [{"id": f"s{seed}-{i}", "video": "v.mp4", "question": "q?", "chosen": "a red car",
             "rejected": "a blue car", "meta": {**meta, "order": [i, 0]}} for i in ids]


def test_a_cat_of_two_runs_outputs_is_named_as_joined_runs_with_advice_that_can_work(tmp_path, caplog):
    from savi_plugin.data.provenance import check_finished, unvouched_copy

    joined = write_jsonl(tmp_path / "all.jsonl", _run_records(0, range(3)) + _run_records(1, range(3)))
    why = unvouched_copy(joined)
    assert why.startswith("its records were written by 2 savi generate runs") and "seed=0" in why and "seed=1" in why
    with caplog.at_level(logging.WARNING):
        assert check_finished(joined) is None
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "copy the report beside it" not in warning and "no one run report can vouch for it" in warning
    assert "savi data convert" in warning and "\n" not in warning


def test_a_copy_of_one_run_is_told_to_copy_its_report_or_merge_its_shards(tmp_path, caplog):
    from savi_plugin.data.provenance import check_finished

    one = write_jsonl(tmp_path / "copy.jsonl", _run_records(0, range(0, 6, 2)) + _run_records(0, range(1, 6, 2)))
    with caplog.at_level(logging.WARNING):
        check_finished(one)
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "no run report is beside it" in warning and "copy that run's report beside it" in warning
    assert "savi generate merge" in warning


def test_a_torn_report_is_one_verdict_for_every_reader(tmp_path, capsys, monkeypatch):
    """Red team 9, row 58: a run report beside a pair file cut short (a kill while it was written) is not "no
    report": inspect, convert and train's check all refuse the file naming the report at its line, and convert
    with --allow-incomplete carries the reason into its own report (complete: false)."""
    import json

    import pytest

    from savi_plugin.cli import main
    from savi_plugin.data.provenance import UNREADABLE, UnfinishedDataError
    from savi_plugin.training.run import check_pairs_source

    monkeypatch.chdir(tmp_path)
    pairs = write_jsonl(tmp_path / "p.jsonl", _run_records(0, range(2)))
    (tmp_path / "p.jsonl.report.json").write_text('{\n "output": "p.jsonl",\n "complete": tr')
    where = "p.jsonl.report.json:3: run report: invalid JSON"
    assert main(["inspect", "p.jsonl", "--out", "site", "--no-progress"]) == 1
    assert capsys.readouterr().err.startswith(f"error: {where}")
    assert main(["data", "convert", "p.jsonl", "out.jsonl"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: p.jsonl: {UNREADABLE}: {where}") and "--allow-incomplete" \
        in err[0], err
    assert not (tmp_path / "out.jsonl").exists()
    with pytest.raises(UnfinishedDataError, match=f"{UNREADABLE}: .*{where}.*--allow-incomplete-data"):
        check_pairs_source(pairs, "m")
    assert main(["data", "convert", "p.jsonl", "out.jsonl", "--allow-incomplete"]) == 0
    carried = json.loads((tmp_path / "out.jsonl.report.json").read_text())
    assert carried["complete"] is False and where in carried["missing"][0]

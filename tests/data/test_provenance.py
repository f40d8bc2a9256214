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

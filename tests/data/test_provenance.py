"""Provenance of a pair file: the advice for a file whose run's end cannot be checked."""

from __future__ import annotations

import json
import logging
import os

import pytest

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


def test_a_copy_in_a_subfolder_names_its_missing_report_from_where_the_user_stands(tmp_path, caplog, monkeypatch):
    """Red team 12, row 21: ``sub/c1.jsonl`` (a copy) was said to have no ``(c1.jsonl.report.json)`` beside it --
    from the working folder that name is the original's report, which exists. A sidecar is named by its path."""
    from savi_plugin.data.provenance import check_finished

    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "c1.jsonl", _run_records(0, range(3)))
    (tmp_path / "c1.jsonl.report.json").write_text("{}")  # the original's, in the working folder
    (tmp_path / "sub").mkdir()
    write_jsonl(tmp_path / "sub" / "c1.jsonl", _run_records(0, range(3)))
    with caplog.at_level(logging.WARNING):
        check_finished("sub/c1.jsonl")
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "(sub/c1.jsonl.report.json)" in warning and "(c1.jsonl.report.json)" not in warning


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


def test_a_link_to_an_unfinished_runs_output_is_that_run_for_every_reader(tmp_path, capsys, monkeypatch, caplog):
    """Red team 11, A4: ``proj/uf.jsonl -> ../gen/uf.jsonl``, a generation killed mid-run (progress, no report),
    trained with only the plain-copy warning: the report and progress were looked for beside the link. They are
    the file's own (``data.outputs.sidecar``), so training, conversion and merging refuse it as by its real path,
    naming where the report should be; a link to a finished run's output is vouched for, with no warning."""
    import os

    import pytest

    from savi_plugin.cli import main
    from savi_plugin.data.provenance import UnfinishedDataError, vouch
    from savi_plugin.training.run import check_pairs_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "gen").mkdir()
    (tmp_path / "proj").mkdir()
    write_jsonl(tmp_path / "gen/uf.jsonl", _run_records(0, range(2)))
    (tmp_path / "gen/uf.jsonl.progress.jsonl").write_text("")
    os.symlink("../gen/uf.jsonl", "proj/uf.jsonl")
    unfinished = "proj/uf.jsonl: its generation run has not finished (no gen/uf.jsonl.report.json)"
    with pytest.raises(UnfinishedDataError) as err:
        check_pairs_source("proj/uf.jsonl", "m")
    assert str(err.value).startswith(unfinished + "; re-run the same savi generate command")
    assert main(["data", "convert", "proj/uf.jsonl", "out.jsonl"]) == 1
    assert capsys.readouterr().err.startswith(f"error: {unfinished}")
    assert main(["generate", "merge", "merged.jsonl", "proj/uf.jsonl"]) == 1
    assert "its generation run has not finished" in capsys.readouterr().err
    with caplog.at_level(logging.WARNING):
        assert main(["inspect", "proj/uf.jsonl", "--out", "site", "--frames", "0", "--no-progress"]) == 0
    assert f"{unfinished.replace(': its', ': the generation run of this file did not finish: its')}" in caplog.text
    assert not os.path.exists("out.jsonl") and not os.path.exists("merged.jsonl")

    (tmp_path / "gen/uf.jsonl.progress.jsonl").unlink()
    (tmp_path / "gen/uf.jsonl.report.json").write_text(json.dumps({"complete": True, **vouch("gen/uf.jsonl")}))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        check_pairs_source("proj/uf.jsonl", "m")  # the run's own model: no word at all
    assert caplog.records == []


def test_a_model_a_copy_names_relative_to_its_new_folder_is_named_from_where_the_user_stands(tmp_path, monkeypatch,
                                                                                             caplog):
    """Red team 11, A11: ``cp c1.jsonl sub/c1.jsonl``, trained from the parent on the same model: the warning said
    "generated by demo/models/tiny, not by the model being trained (demo/models/tiny)". The stored path is read
    from the file's folder (``sub/demo/models/tiny``, nothing there) and said so."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo/models/tiny").mkdir(parents=True)
    (tmp_path / "sub").mkdir()
    records = [dict(r, meta={**r["meta"], "model": "demo/models/tiny"}) for r in _run_records(0, range(2))]
    write_jsonl(tmp_path / "sub/c1.jsonl", records)
    from savi_plugin.training.run import check_pairs_source

    with caplog.at_level(logging.WARNING):
        check_pairs_source("sub/c1.jsonl", "demo/models/tiny")
    (warned,) = [r.getMessage() for r in caplog.records if "not by the model being trained" in r.getMessage()]
    assert warned.startswith("sub/c1.jsonl: 2 of these pairs were generated by demo/models/tiny (as sub/c1.jsonl "
                             "names it; nothing of that name beside it, at sub/demo/models/tiny: a hub id, or a path "
                             "stored relative to another folder), not by the model being trained "
                             "(demo/models/tiny)"), warned


@pytest.mark.parametrize("command", ["data convert", "generate merge"])
def test_a_product_whose_command_stopped_before_its_report_is_unfinished_not_a_copy(command, tmp_path, capsys,
                                                                                    monkeypatch):
    """Red team 11, A25/A26: a full disk between a conversion's (or merge's) data and its report left the file and
    our mark with no report; training took it for a plain copy and trained (rc 0). The mark of a command that
    writes its report last, with no report, is an unfinished run of that command; re-running it finishes it."""
    from savi_plugin.cli import main
    from savi_plugin.data.provenance import UnfinishedDataError
    from savi_plugin.training.run import check_pairs_source

    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "p.jsonl", _run_records(0, range(2)))
    (tmp_path / "v.mp4").write_bytes(b"a video")  # what the records name, from their folder
    argv = ["data", "convert", "p.jsonl", "o.jsonl"] if command == "data convert" else \
        ["generate", "merge", "o.jsonl", "p.jsonl"]
    assert main(argv) == 0
    (tmp_path / "o.jsonl.report.json").unlink()  # what the full disk left: the data and our mark
    with pytest.raises(UnfinishedDataError) as err:
        check_pairs_source("o.jsonl", "m")
    assert str(err.value) == (f"o.jsonl: the savi {command} run that wrote it has not finished (its mark "
                              f"o.jsonl.savi-output.json is there, no o.jsonl.report.json: it stopped before writing "
                              f"its report, e.g. killed or on a full disk); re-run the same savi {command} command "
                              f"to finish it, or pass --allow-incomplete-data to train on what is there")
    assert main(argv) == 0 and (tmp_path / "o.jsonl.report.json").is_file()
    from savi_plugin.data.provenance import unfinished_run

    assert unfinished_run("o.jsonl") is None


def _unfinished_product(tmp_path, writer: str) -> tuple[list[str], str]:
    """``savi data convert`` of an unfinished run's file, or ``savi generate merge`` of shard 0 of 2 (shard 1
    missing), each with ``--allow-incomplete``: the argv and its output's name."""
    if writer == "convert":
        write_jsonl(tmp_path / "run.jsonl", _run_records(0, range(6)))
        (tmp_path / "run.jsonl.progress.jsonl").write_text("")  # a generation run that has not finished
        return ["data", "convert", "run.jsonl", "out.jsonl", "--allow-incomplete"], "out.jsonl"
    write_jsonl(tmp_path / "sh.shard-00000-of-00002.jsonl", _run_records(0, range(6)))
    return ["generate", "merge", "out.jsonl", "sh.shard-00000-of-00002.jsonl", "--allow-incomplete"], "out.jsonl"


def _disk_full_at_reports(monkeypatch) -> None:
    """A device that fills up when a run report is written (the last write of convert and merge)."""
    import errno
    import os

    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if str(dst).endswith(".report.json"):
            raise OSError(errno.ENOSPC, "No space left on device", str(src))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("writer", ["convert", "merge"])
def test_a_full_disk_at_the_report_leaves_no_data_without_it(writer, tmp_path, capsys, monkeypatch):
    """Red team 11, rows 25-26: a full disk between the data and its report left the data (and its mark) with no
    report saying "incomplete", and training took it as a plain copy. The data takes its name only after its
    report: the failed run leaves nothing under the output's name, no temporary, and the re-run with room writes
    both (complete: false), which training refuses."""
    from savi_plugin.cli import main
    from savi_plugin.data.provenance import UnfinishedDataError
    from savi_plugin.training.run import check_pairs_source

    monkeypatch.chdir(tmp_path)
    argv, out = _unfinished_product(tmp_path, writer)
    before = sorted(p.name for p in tmp_path.iterdir())
    with monkeypatch.context() as full:
        _disk_full_at_reports(full)
        assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {out}") and "no space left" in err[0], err
    assert not (tmp_path / out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no mark, temporary or report left
    assert main(argv) == 0
    assert json.loads((tmp_path / f"{out}.report.json").read_text())["complete"] is False
    with pytest.raises(UnfinishedDataError, match="its run report says incomplete"):
        check_pairs_source(tmp_path / out, "m")


def test_a_conversion_into_another_folder_carries_the_model_path_to_the_same_place(tmp_path, monkeypatch):
    """Pass 17 A #6: the data folder copied without the model beside it, converted into ``data/sub/``: the report
    carried ``../models/warm`` verbatim, which from ``data/sub/`` names ``data/models/warm``. A stored path spelled
    as a path names the place it names from its own file, there or not."""
    import json

    from savi_plugin.data.convert import convert_file

    monkeypatch.chdir(tmp_path)
    records = [dict(r, meta={**r["meta"], "model": "../models/warm"}) for r in _run_records(0, range(2))]
    write_jsonl(tmp_path / "data/p.jsonl", records)
    convert_file("data/p.jsonl", "data/sub/t.jsonl", "savi", "trl")
    carried = json.loads((tmp_path / "data/sub/t.jsonl.report.json").read_text())["record_models"]
    assert [os.path.normpath(os.path.join(tmp_path / "data/sub", name)) for name in carried] == \
        [str(tmp_path / "models/warm")], carried


#: every form a pair file's records are read in: one record per line, and a JSON array on one line, spread over
#: many, or after blank space (``iter_json_objects``), each with one record and with several
_FORMS = {
    "jsonl": lambda records: "".join(json.dumps(r) + "\n" for r in records),
    "json list": lambda records: json.dumps(records) + "\n",
    "json list, indented": lambda records: json.dumps(records, indent=2),
    "json list after blank lines": lambda records: "\n\n  " + json.dumps(records),
}


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("form", sorted(_FORMS))
def test_a_copy_without_its_report_is_unverified_in_every_form_its_records_are_read_in(form, n, tmp_path, caplog,
                                                                                         monkeypatch):
    """Pass 20, #30: a run's record copied as a one-element JSON list (``[{...}]``) into a ``.jsonl`` file read as
    one valid record, but training gave no "no run report is beside it" warning and its conversion's report had no
    ``unverified``: the generator was looked for on the first text line only. It is the first record's now."""
    from savi_plugin.cli import main
    from savi_plugin.training.run import check_pairs_source

    monkeypatch.chdir(tmp_path)
    (tmp_path / "copy.jsonl").write_text(_FORMS[form](_run_records(0, range(n))), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="savi_plugin.data.provenance"):
        check_pairs_source("copy.jsonl", "m")
        assert main(["data", "convert", "copy.jsonl", "cv.jsonl", "--to", "trl"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "savi_plugin.data.provenance"]
    assert len(warnings) == 2 and all("no run report is beside it" in w for w in warnings), warnings
    report = json.loads((tmp_path / "cv.jsonl.report.json").read_text())
    assert "no run report is beside it" in report["unverified"] and report.get("complete") is not True
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="savi_plugin.data.provenance"):
        check_pairs_source("cv.jsonl", "m")  # carried forward: the conversion says it too
    assert any("no run report is beside it" in r.getMessage() for r in caplog.records)

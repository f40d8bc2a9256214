"""A generation report's counts are a function of its own lists (:mod:`savi_plugin.data.run_counts`): the writer
stores what that function gives, and the one reader of run reports computes it again, so a hand-edited report is
refused in one line, never shown as the run's (red team pass 15 C #5/#6: ``counts.skipped`` set to 0 with the list
emptied while ``by_reason`` still counted the skips drew "0 skipped item(s)"; a list whose reasons were rewritten,
or made of one entry copied, was listed as the run's).

Generated variants, each from a report a real run wrote (the RRPO generator on a scripted model over real videos:
pairs, skips under several reasons, an item with two records, a missing and a broken video, a model crash retried
by the next run): every derived count edited up and down, each list emptied (its count kept, or set to match),
its reasons rewritten, its entries duplicated. And every report real runs write -- interrupted, resumed, sharded,
merged -- reads back.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from savi_plugin.cli import main
from savi_plugin.data.provenance import load_report, run_problem
from savi_plugin.data.run_counts import DERIVED, counts_problem, generation_counts
from savi_plugin.generators import run_generation
from savi_plugin.generators.merge import merge_shards
from savi_plugin.generators.runner import report_path, shard_output_path
from tests.builders import write_jsonl

ANSWERS = {"Where does it go?": "(C) left", "Which colour?": "Blue.", "How many?": "I cannot tell from this."}
EDITED = "the report was edited; give --run-report the report its run wrote"


class ScriptedLM:
    """The ``VideoLM`` generation interface: a fixed answer per question; ``Crash?`` raises while ``crash`` is set."""

    family, name_or_path, num_frames = "scripted", "scripted-model", 4

    def __init__(self, crash: bool):
        self.crash = crash

    def generate(self, videos, questions, **kwargs):
        if self.crash and any("Crash?" in q for q in questions):
            raise RuntimeError("the model crashed")
        return [ANSWERS.get(next((q for q in ANSWERS if q in p), ""), "(A) a") for p in questions]


def generate(root: Path, output: Path, *, crash: bool, shard=None) -> dict:
    return run_generation(generator="rrpo", model=ScriptedLM(crash), inputs=root / "qa.jsonl", output=output,
                          batch_size=2, progress=False, options={"num_perturbations": 2}, shard=shard)


@pytest.fixture(scope="module")
def run(tmp_path_factory, synthetic_samples) -> tuple[Path, Path]:
    """``(pairs, report)`` of a real run whose report lists skips under four reasons, two failures (one retried)."""
    root = tmp_path_factory.mktemp("run")
    (root / "broken.mp4").write_bytes(b"not a video")
    v = [s.video for s in synthetic_samples]
    write_jsonl(root / "qa.jsonl", [
        {"id": "wrong", "video": v[0], "question": "Where does it go?", "options": ["up", "down", "left"],
         "answer": "up"},
        {"id": "right", "video": v[1], "question": "Which colour?", "options": ["red", "blue"], "answer": "blue"},
        {"id": "garbage", "video": v[2], "question": "How many?", "options": ["1", "2"], "answer_index": 0},
        {"id": "missing", "video": str(root / "gone.mp4"), "question": "Where?", "answer": "left"},
        {"id": "broken", "video": str(root / "broken.mp4"), "question": "Where?", "answer": "left"},
        {"id": "crash", "video": v[3], "question": "Crash?", "options": ["a", "b"], "answer": "b"}])
    pairs = root / "pairs.jsonl"
    report = generate(root, pairs, crash=True)
    c = report["counts"]
    assert (c["pairs"], c["skipped"], c["failed"], c["items_to_retry"]) == (1, 6, 2, 1), c
    assert len({e["reason"] for e in report["skipped"]}) == 4 and not report["complete"]
    return pairs, report_path(pairs)


def _bump(value, by: int):
    if isinstance(value, dict):  # by_reason: its first reason
        first = next(iter(value))
        return {**value, first: value[first] + by}
    return value + by


def _counts_edit(key: str, by: int):
    def edit(report):
        report["counts"][key] = _bump(report["counts"][key], by)
    return edit


def _emptied(status: str, recount: bool):
    def edit(report):
        report[status] = []
        if recount:  # pass 15 C #5: the count set to match the emptied list; by_reason still counts the skips
            report["counts"][status] = 0
    return edit


def _rewritten(status: str, reason: str):
    def edit(report):  # pass 15 C #6: every reason rewritten, the list's length kept
        for entry in report[status]:
            entry["reason"] = reason
    return edit


def _copies_of_first(status: str):
    def edit(report):  # pass 15 C #6: the list made of its first entry, its length kept
        report[status] = [dict(report[status][0]) for _ in report[status]]
    return edit


def _one_listed_again(status: str, k: int):
    def edit(report):  # an entry listed twice, and every count made to agree with the longer list
        report[status].append(dict(report[status][k]))
        fixed = generation_counts(report["skipped"], report["failed"], report["counts"]["pairs"],
                                  report["counts"]["items_done"])
        report["counts"].update({key: fixed[key] for key in DERIVED})
    return edit


VARIANTS = {
    **{f"counts.{key} edited {'up' if by > 0 else 'down'}": (_counts_edit(key, by), f"counts.{key}")
       for key in DERIVED for by in (1, -1)},
    "skipped emptied": (_emptied("skipped", False), "counts.skipped"),
    "skipped emptied, counts.skipped 0": (_emptied("skipped", True), "counts.by_reason"),
    "failed emptied": (_emptied("failed", False), "counts.failed"),
    "failed emptied, counts.failed 0": (_emptied("failed", True), "counts.by_reason"),
    "skipped reasons rewritten": (_rewritten("skipped", "missing_video"), "counts.by_reason"),
    "failed reasons rewritten": (_rewritten("failed", "decode_error"), "counts.by_reason"),
    "skipped entries duplicated": (_copies_of_first("skipped"), "skipped[1]"),
    "failed entries duplicated": (_copies_of_first("failed"), "failed[1]"),
    "a skipped record listed twice": (_one_listed_again("skipped", 1), "skipped[6]"),
    "an item without a record id listed twice": (_one_listed_again("failed", 0), "failed[2]"),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_an_edited_generation_report_is_refused_naming_the_field(variant, run, tmp_path, capsys):
    pairs, written = run
    edit, field = VARIANTS[variant]
    report = json.loads(written.read_text())
    edit(report)
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(report))
    code = main(["inspect", str(pairs), "--out", str(tmp_path / "site"), "--run-report", str(edited),
                 "--frames", "0", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith(f"error: {edited}: run report: {field}: ") and err[0].endswith(EDITED), err[0]
    assert not (tmp_path / "site").exists()


def test_counts_name_what_the_lists_give(run, tmp_path, capsys):
    """Pass 15 C #5 whole: the line says what the stored count is and what the lists give."""
    pairs, written = run
    report = json.loads(written.read_text())
    report["skipped"], report["counts"]["skipped"] = [], 0
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(report))
    assert main(["inspect", str(pairs), "--out", str(tmp_path / "site"), "--run-report", str(edited),
                 "--frames", "0", "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {edited}: run report: counts.by_reason: {report['counts']['by_reason']!r} is not what "
                   f"its lists give ({{'decode_error': 1, 'generation_error': 1, 'written': 1}}): {EDITED}")


def test_the_report_beside_the_file_edited_vouches_for_nothing(run, tmp_path):
    """Every reader of a pair file's report reads it by the same rule: an edited one is no finished run's."""
    pairs, written = run
    copy_of = tmp_path / "pairs.jsonl"
    copy_of.write_bytes(pairs.read_bytes())
    report = json.loads(written.read_text())
    report["counts"]["items_to_retry"], report["complete"] = 0, True
    report_path(copy_of).write_text(json.dumps(report))
    problem = run_problem(copy_of)
    assert problem is not None and "counts.items_to_retry: 0 is not what its lists give (1)" in problem, problem


def test_every_report_a_real_run_writes_reads_back(run, tmp_path, capsys):
    """The writer's counts are the reader's: an interrupted run's report, the resumed run's, each shard's and the
    merge of the shards read back, and the inspect site lists every entry."""
    pairs, written = run
    root = pairs.parent
    reports = [written]
    resumed = tmp_path / "resumed.jsonl"
    assert not generate(root, resumed, crash=True)["complete"]
    reports.append(report_path(resumed))
    assert load_report(reports[-1])["counts"]["items_to_retry"] == 1
    assert generate(root, resumed, crash=False)["complete"]  # the crashed item retried, now done
    reports.append(report_path(resumed))
    shards = [shard_output_path(tmp_path / "sharded.jsonl", i, 2) for i in range(2)]
    for i in range(2):
        generate(root, tmp_path / "sharded.jsonl", crash=False, shard=(i, 2))
    merged = merge_shards(shards, tmp_path / "merged.jsonl")
    assert merged["run"]["counts"]["skipped"] == len(merged["run"]["skipped"]) > 0
    reports += [report_path(s) for s in shards] + [report_path(tmp_path / "merged.jsonl")]
    for path in reports:
        report = load_report(path)
        assert counts_problem(report.get("run") or report) is None, path
    site = tmp_path / "site"
    assert main(["inspect", str(pairs), "--out", str(site), "--run-report", str(written), "--frames", "0",
                 "--no-progress"]) == 0
    assert "1 pair page(s), 0 bad record(s), 8 skipped item(s)" in capsys.readouterr().out  # 6 skipped, 2 failed


def test_a_report_of_an_older_writer_is_compared_on_what_it_holds(run, tmp_path):
    """Counts a report of an older savi lacks (``items_final``, ``items_to_retry``) are not asked for."""
    _, written = run
    report = json.loads(written.read_text())
    del report["counts"]["items_final"], report["counts"]["items_to_retry"]
    older = tmp_path / "older.json"
    older.write_text(json.dumps(report))
    assert load_report(older)["counts"]["skipped"] == 6


def test_a_generator_giving_one_record_two_outcomes_stops_the_run(run, tmp_path):
    """The writer never lists a record twice: a generator whose outcomes break that is refused before its progress
    row is written."""
    from savi_plugin.generators.runner import progress_path, resolve_generator

    pairs, _ = run
    gen = resolve_generator("rrpo", {"num_perturbations": 2})
    process = gen.process
    gen.process = lambda lm, batch, ctx: [o for o in process(lm, batch, ctx) for _ in range(2)]
    out = tmp_path / "twice.jsonl"
    with pytest.raises(RuntimeError, match="one outcome per would-be record"):
        run_generation(generator=gen, model=ScriptedLM(False), inputs=pairs.parent / "qa.jsonl", output=out,
                       batch_size=2, progress=False)
    assert not report_path(out).exists()
    assert all(json.loads(line)["id"] == "__config__" for line in progress_path(out).read_text().splitlines())

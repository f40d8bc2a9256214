"""The output is the truth about a generation run: every way of losing its lines, or its progress file, during
the run or after it ends with every item in the output exactly once and a report that agrees with the file.

Generated variants: {emptied, deleted, truncated mid-line, its first / a middle / its last line removed, progress
file deleted} x {during the run (between two batches), after the run}. Each runs the real RRPO generator on a real
tiny model (loaded once) over real videos, in-process, and compares the final output with an undisturbed run's,
line for line and in order: a pair generated again is written where an uninterrupted run writes it.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
from pathlib import Path

import pytest

from savi_plugin.data.outputs import OutputRemovedError
from savi_plugin.generators import run_generation
from savi_plugin.generators.runner import progress_path, report_path, resolve_generator
from tests.builders import write_jsonl

OPTIONS = {"answer_format": "raw", "max_new_tokens": 6, "num_perturbations": 1}
ITEMS = 4


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_llava_onevision):
    """A loaded tiny model, a manifest of :data:`ITEMS` real clips, and an undisturbed run's output lines."""
    import numpy as np

    from savi_plugin.models import load_backend
    from savi_plugin.video.synthetic import render_sample, write_mp4

    root = tmp_path_factory.mktemp("gen")
    rows = []
    for i in range(ITEMS):
        frames = render_sample(np.random.default_rng(i), "moving_direction", size=32, num_frames=8)[0]
        video = root / "videos" / f"v{i}.mp4"
        video.parent.mkdir(exist_ok=True)
        write_mp4(video, frames)
        rows.append({"id": f"q{i}", "video": str(video), "question": "Which way does the shape move?",
                     "options": ["left", "right", "up", "down"], "answer": "left"})
    manifest = write_jsonl(root / "qa.jsonl", rows)
    lm = load_backend(tiny_llava_onevision, num_frames=4)
    reference = root / "ref" / "reference.jsonl"  # outside the videos' folder: absolute video paths, as below
    generate(lm, manifest, reference)
    lines = reference.read_text().splitlines()  # in the order the run writes them
    assert len(lines) >= 3, "the undisturbed run makes a pair for most items"
    return lm, manifest, lines


def generate(lm, manifest, out, hook=None, at=2):
    gen = resolve_generator("rrpo", OPTIONS)
    if hook is not None:
        process = gen.process

        def hooked(model, batch, ctx):
            if ctx.batch_index == at:  # `at` batches written: their records and progress rows are on disk
                hook(out)
            return process(model, batch, ctx)

        gen.process = hooked
    return run_generation(generator=gen, model=lm, inputs=manifest, output=out, batch_size=1, progress=False)


def _empty(out: Path):
    with open(out, "r+b") as fh:
        fh.truncate(0)


def _cut_mid_line(out: Path):
    with open(out, "r+b") as fh:
        fh.truncate(out.stat().st_size - 10)


def _remove_line(out: Path, index: int):
    lines = out.read_bytes().splitlines(keepends=True)
    index %= len(lines)  # -1: the last line
    with open(out, "r+b") as fh:  # in place, as an editor that keeps the file's inode
        fh.write(b"".join(lines[:index] + lines[index + 1:]))
        fh.truncate()


DAMAGE = {
    "emptied": _empty,
    "deleted": lambda out: out.unlink(),
    "truncated mid-line": _cut_mid_line,
    "first line removed": functools.partial(_remove_line, index=0),
    "a middle line removed": functools.partial(_remove_line, index=1),
    "last line removed": functools.partial(_remove_line, index=-1),
    "progress deleted": lambda out: progress_path(out).unlink(),
}


def assert_whole(out: Path, reference: list[str], result: dict):
    lines = out.read_text().splitlines()
    assert lines == reference  # every item's pairs exactly once, byte for byte and in the undisturbed run's order
    report = json.loads(report_path(out).read_text())
    assert report["complete"] is True and result["complete"] is True
    assert report["counts"]["pairs"] == report["records_in_output"] == len(lines)
    assert report["counts"]["pairs_missing"] == 0


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("when", ["during the run", "after the run"])
def test_lost_output_lines_or_progress_are_generated_again_never_reported_complete(damage, when, setup, tmp_path,
                                                                                   caplog):
    lm, manifest, reference = setup
    out = tmp_path / "pairs.jsonl"
    if when == "during the run":
        with pytest.raises(OutputRemovedError) as stopped:  # the writer's next line notices
            generate(lm, manifest, out, hook=DAMAGE[damage])
        assert str(out) in str(stopped.value) and "\n" not in str(stopped.value)
        assert not report_path(out).exists()  # nothing vouches for the damaged file
    else:
        generate(lm, manifest, out)
        DAMAGE[damage](out)
    with caplog.at_level(logging.WARNING):
        result = generate(lm, manifest, out)
    assert_whole(out, reference, result)
    if when == "after the run" and damage != "progress deleted":
        assert any("generating those items again" in r.getMessage() for r in caplog.records)


def test_a_line_edited_after_the_run_is_refused_naming_it(setup, tmp_path):
    from savi_plugin.data.record import DataError

    lm, manifest, _ = setup
    out = tmp_path / "pairs.jsonl"
    generate(lm, manifest, out)
    lines = out.read_text().splitlines()
    record = json.loads(lines[1])
    lines[1] = json.dumps({**record, "rejected": record["rejected"] + " indeed"}, ensure_ascii=False)
    out.write_text("\n".join(lines) + "\n")
    edited = out.read_bytes()
    with pytest.raises(Exception) as refused:  # the mark's content check or the progress digests: one line
        generate(lm, manifest, out)
    assert isinstance(refused.value, (DataError, ValueError)) and str(out) in str(refused.value)
    assert out.read_bytes() == edited


def test_an_output_moved_away_from_its_videos_is_refused_never_mixed(setup, tmp_path):
    lm, manifest, _ = setup
    work = tmp_path / "work"
    shutil.copytree(manifest.parent / "videos", work)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    for row in rows:  # videos beside the output: stored relative to its folder
        row["video"] = Path(row["video"]).name
    write_jsonl(work / "qa.jsonl", rows)
    out = work / "pairs.jsonl"
    run_generation(generator=resolve_generator("rrpo", OPTIONS), model=lm, inputs=work / "qa.jsonl", output=out,
                   batch_size=1, progress=False, limit=2)
    assert not json.loads(out.read_text().splitlines()[0])["video"].startswith("/")
    (work / "moved").mkdir()
    for f in work.glob("pairs.jsonl*"):
        f.rename(work / "moved" / f.name)
    moved = work / "moved" / "pairs.jsonl"
    before = moved.read_bytes()
    with pytest.raises(ValueError, match="moved away from the folder it was written in") as refused:
        run_generation(generator=resolve_generator("rrpo", OPTIONS), model=lm, inputs=work / "qa.jsonl",
                       output=moved, batch_size=1, progress=False, limit=4)
    assert f"{moved}:1:" in str(refused.value)
    assert moved.read_bytes() == before


@pytest.mark.parametrize("line", ['{"id": 5, "status": ["x"]}', '{"id": "q1", "batch": "x", "outcomes": 7}',
                                  'not json', '[1, 2]',
                                  # well formed, for an item the input does not hold (pass 11 B #31: counted as done)
                                  '{"id": "zz-foreign", "batch": 0, "outcomes": [{"id": "zz-foreign", "status": '
                                  '"skipped", "reason": "missing_video"}]}',
                                  # one record's outcome twice, or an outcome without a reason: the report would
                                  # list what its reader refuses (data/run_counts.py)
                                  '{"id": "q1", "batch": 1, "outcomes": [{"id": "q1-rrpo-0", "status": "skipped", '
                                  '"reason": "correct_answer"}, {"id": "q1-rrpo-0", "status": "skipped", '
                                  '"reason": "correct_answer"}]}',
                                  '{"id": "q1", "batch": 1, "outcomes": [{"id": "q1-rrpo-0", "status": "skipped"}]}'])
def test_a_progress_line_the_run_did_not_write_is_refused_naming_it(line, setup, tmp_path):
    """The progress file is the run's own: an edited line is not counted as a finished item (red team pass 10,
    B17: a garbage line made ``items_done`` 5 of 4 items and the report complete) nor passed over in silence."""
    from savi_plugin.data.record import DataError
    from savi_plugin.generators.runner import progress_path

    lm, manifest, _ = setup
    out = tmp_path / "pairs.jsonl"
    generate(lm, manifest, out)
    progress = progress_path(out)
    lines = progress.read_text().splitlines()
    lines.insert(2, line)
    progress.write_text("\n".join(lines) + "\n")
    before = out.read_bytes(), out.with_name(out.name + ".report.json").read_bytes()
    with pytest.raises(DataError) as refused:
        generate(lm, manifest, out)
    assert (refused.value.file, refused.value.line) == (str(progress), 3), str(refused.value)
    assert "not a line this run wrote" in str(refused.value) and "\n" not in str(refused.value)
    assert (out.read_bytes(), out.with_name(out.name + ".report.json").read_bytes()) == before


@pytest.mark.parametrize("reason, contradiction", [
    ("missing_video", "yet its video is there"),
    # pass 15 C #35: an item counted outside a data root the run does not have was skipped forever
    ("outside_data_root", "yet its video lies inside the data root (or the run has none)")])
def test_a_forged_input_reason_row_for_an_item_its_input_contradicts_is_refused(reason, contradiction, setup,
                                                                                  tmp_path):
    """Red team 13, B4: a ``skipped missing_video`` row added to the progress file for an item not yet run (its
    video there) was taken as final: the item was never generated. The videos are part of the run's identity, so
    a video missing when the row was written is missing still; the row is refused at its line."""
    import json

    from savi_plugin.data.record import DataError

    lm, manifest, _ = setup
    out = tmp_path / "pairs.jsonl"

    def stop(_out):  # Ctrl-C after two items
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(lm, manifest, out, hook=stop)  # items q0, q1 done
    progress = progress_path(out)
    forged = {"id": "q3", "batch": 0, "outcomes": [{"id": "q3", "status": "skipped", "reason": reason}]}
    with open(progress, "a") as fh:
        fh.write(json.dumps(forged) + "\n")
    number = len(progress.read_text().splitlines())
    with pytest.raises(DataError) as refused:
        generate(lm, manifest, out)
    assert (refused.value.file, refused.value.line) == (str(progress), number), str(refused.value)
    assert f"'q3' is counted as {reason}, {contradiction}" in str(refused.value)


def test_a_progress_file_replaced_by_a_link_to_a_users_file_is_named_as_a_link_savi_did_not_write(setup, tmp_path):
    """Red team 11, A1: the progress file replaced by a symlink to the user's file; the re-run said "<progress>:1:
    ... not a line this run wrote; remove the line" -- a line of the user's own file. It says the name is a link to
    a file savi did not write, and neither that file, the output nor its report is touched."""
    from savi_plugin.data.outputs import ForeignOutputError

    lm, manifest, _ = setup
    out = tmp_path / "S1.jsonl"
    generate(lm, manifest, out)
    user = tmp_path / "user1.txt"
    user.write_bytes(b"my own notes\nno newline at the end")
    progress_path(out).unlink()
    progress_path(out).symlink_to("user1.txt")
    before = out.read_bytes(), report_path(out).read_bytes()
    with pytest.raises(ForeignOutputError) as refused:
        generate(lm, manifest, out)
    assert str(refused.value) == (f"{progress_path(out)}: is a symbolic link to user1.txt, which savi did not write "
                                  f"(savi keeps its progress file at that name); remove the link to redo every item")
    assert user.read_bytes() == b"my own notes\nno newline at the end"
    assert (out.read_bytes(), report_path(out).read_bytes()) == before


def test_model_weights_replaced_while_the_job_loads_them_are_refused_and_leave_nothing_marked(setup, tmp_path,
                                                                                           tiny_llava_onevision,
                                                                                           monkeypatch):
    """Red team 11, A35: the weights copied into the model folder between the claim (which records the model's
    identity) and the load: the pairs were the new weights' work under the old identity, and training on them
    named no other model. The identity is checked again once the model is loaded; a new output is left unmarked,
    so the re-run records what it loads."""
    import os

    import savi_plugin.models as models
    from savi_plugin.data.identity import IdentityMismatchError
    from savi_plugin.data.outputs import read_mark

    lm, manifest, _ = setup
    model = tmp_path / "mswap"
    shutil.copytree(tiny_llava_onevision, model)
    weights = min(p.name for p in model.glob("*.safetensors"))

    def swap_then_load(*args, **kwargs):  # what `cp warm/model.safetensors mswap/` does while the job starts
        with open(model / weights, "r+b") as fh:
            fh.seek(-1, os.SEEK_END)
            last = fh.read(1)
            fh.seek(-1, os.SEEK_END)
            fh.write(bytes([last[0] ^ 1]))
        return lm

    monkeypatch.setattr(models, "load_backend", swap_then_load)
    out = tmp_path / "SW.jsonl"
    gen = resolve_generator("rrpo", OPTIONS)
    with pytest.raises(IdentityMismatchError) as refused:
        run_generation(generator=gen, model=model, inputs=manifest, output=out, batch_size=1, progress=False,
                       num_frames=4)
    assert str(refused.value).startswith(f"{model}: the model's files changed while this job loaded it ({weights} "
                                         f"changed)")
    assert read_mark(out, False) is None and not progress_path(out).exists() and not out.exists()
    monkeypatch.setattr(models, "load_backend", lambda *args, **kwargs: lm)  # the same weights from now on
    result = run_generation(generator=resolve_generator("rrpo", OPTIONS), model=model, inputs=manifest, output=out,
                            batch_size=1, progress=False, num_frames=4)
    assert result["complete"] and out.read_bytes(), result


def test_a_done_item_in_a_batch_run_again_keeps_what_its_progress_row_says(setup, tmp_path):
    """Pass 12 B #28: a batch holding a done item is run again whole; the done item's new pair was written while
    its progress row (here a forged "skipped") stayed, so the report counted 3 pairs of an output holding 4. What a
    done item's row says stands: nothing of it is written again."""
    lm, manifest, _ = setup
    out = tmp_path / "pairs.jsonl"
    run = functools.partial(run_generation, generator=resolve_generator("rrpo", OPTIONS), model=lm, inputs=manifest,
                            output=out, batch_size=2, progress=False)
    run(limit=2)
    ids = [json.loads(line)["id"] for line in manifest.read_text().splitlines()]
    progress = out.with_name(out.name + ".progress.jsonl")
    with open(progress, "a") as fh:
        fh.write(json.dumps({"id": ids[3], "batch": 1, "outcomes": [{"id": ids[3], "status": "skipped",
                                                                      "reason": "too_few_frames"}]}) + "\n")
    report = run(limit=4)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert report["counts"]["pairs"] == len(lines) and report["counts"]["pairs_missing"] == 0
    assert not [r for r in lines if r["id"].startswith(ids[3] + "-")]
    assert report["counts"]["by_reason"].get("too_few_frames") == 1


def test_a_video_replaced_while_the_job_runs_stops_it_and_the_output_holds_one_version(setup, tmp_path):
    """Pass 13 A #5: a video the manifest names copied over (same path) while ``savi generate`` ran: items before
    the copy used the old file, later ones the new, exit 0, under the one ``identity.videos`` taken at the start.
    The loader compares the file with what the identity read: the job stops naming it, what it made before is the
    old file's work (equal to an undisturbed run's lines) and is kept; a re-run with the new file is refused, and
    with the file put back it finishes equal to the undisturbed run."""
    from savi_plugin.data.fingerprint import ConfigMismatchError
    from savi_plugin.errors import InputChangedError

    lm, manifest, reference = setup
    last = json.loads(manifest.read_text().splitlines()[-1])["video"]  # decoded only after batch 2 is under way
    first = json.loads(manifest.read_text().splitlines()[0])["video"]
    original = Path(last).read_bytes()
    out = tmp_path / "VS.jsonl"

    def swap(_):  # batch 1 is with the model, batch 2 being decoded: batch 3's video is copied over
        shutil.copyfile(first, last)

    try:
        with pytest.raises(InputChangedError) as stopped:
            generate(lm, manifest, out, hook=swap, at=1)
        assert str(stopped.value).startswith(f"{last}: a video the input names was written to while the job runs; "
                                             f"its identity was taken at start")
        kept = out.read_text().splitlines()
        assert kept and set(kept) <= set(reference), "only lines of the old videos, as an undisturbed run wrote them"
        assert not any(json.loads(line)["id"].startswith(f"q{ITEMS - 1}-") for line in kept)
        with pytest.raises(ConfigMismatchError, match="identity.videos"):  # the new file: another run's input
            generate(lm, manifest, out)
    finally:
        Path(last).write_bytes(original)
    generate(lm, manifest, out)  # the file as it was: the run continues and finishes
    assert sorted(out.read_text().splitlines()) == reference


@pytest.mark.parametrize("index", [0, 1, -1], ids=["first", "middle", "last"])
def test_savi_generate_rerun_after_a_pair_line_was_removed_writes_the_uninterrupted_file(index, setup, tmp_path,
                                                                                         tiny_llava_onevision):
    """Pass 25 J #48: ``savi demo`` (its generate step) re-run after a line of its finished pairs file was removed
    generated that pair again at the END of the file (the same records in another order, a file no run writes),
    so the demo's training step then refused the folder for good. A re-run of ``savi generate`` (the step's own
    layer) now cuts the output back to the batch that lost the pair and generates from there: the file is the
    uninterrupted run's, byte for byte, and its report vouches for it."""
    from savi_plugin.cli import main

    _, manifest, _ = setup
    out = tmp_path / "pairs.jsonl"
    argv = ["generate", "--generator", "rrpo", "--model", str(tiny_llava_onevision), "--input", str(manifest),
            "--output", str(out), "--num-frames", "4", "--batch-size", "1", "--no-progress",
            *[f"--option={key}={value}" for key, value in OPTIONS.items()]]
    assert main(argv) == 0
    uninterrupted = out.read_bytes()
    assert len(uninterrupted.splitlines()) >= 3
    _remove_line(out, index)
    assert main(argv) == 0
    assert out.read_bytes() == uninterrupted
    report = json.loads(report_path(out).read_text())
    assert report["complete"] is True and report["counts"]["pairs_missing"] == 0

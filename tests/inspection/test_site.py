"""``savi inspect``: the static site over real videos and pair files (with RRPO perturbation records, bad records,
a missing video, skipped items), the output folder's rules, and the pages rendered by a real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from savi_plugin.cli import main
from savi_plugin.video.decode import read_frames
from savi_plugin.video.perturb import apply_perturbations
from tests.builders import CHROMIUM, write_jsonl
from tests.builders import chromium as _chromium

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium; "
                                                              ".ci/run installs it)")


@pytest.fixture(scope="module")
def pair_file(tmp_path_factory) -> Path:
    """Three pairs on real videos (one RRPO pair with its perturbation record), a missing video, a bad record, and
    a generation report with a skipped item."""
    from savi_plugin.video.synthetic import render_sample, write_mp4

    folder = tmp_path_factory.mktemp("pairs")
    for i in range(2):
        write_mp4(folder / f"v{i}.mp4", render_sample(np.random.default_rng(i), "moving_direction", size=64,
                                                      num_frames=12)[0])
    frames = read_frames(folder / "v0.mp4", 8).frames
    _, applied = apply_perturbations(frames, None, np.random.default_rng(3))  # the default: occluder + shuffle
    records = [
        {"id": "rrpo-pair", "video": "v0.mp4", "question": "Which way does it move?", "chosen": "It moves up.",
         "rejected": "It moves left.", "chosen_tagged": "It moves <MASK>up</MASK>.",
         "rejected_tagged": "It moves <MASK>left</MASK>.", "source": "rrpo",
         "meta": {"num_frames": 8, "perturbation": applied}},
        {"id": "plain-pair", "video": "v1.mp4", "question": "Q <b>bold</b>?", "chosen": "yes <script>x</script>",
         "rejected": "no", "source": "videosavi", "weight": 0.5, "meta": {}},
        {"id": "lost-video", "video": "gone.mp4", "question": "Q?", "chosen": "a", "rejected": "b", "source": "rrpo"},
    ]
    path = write_jsonl(folder / "pairs.jsonl", records)
    with open(path, "a") as fh:
        fh.write('{"id": "bad", "video": 3, "question": "Q", "chosen": "a", "rejected": "b"}\n')
    (folder / "pairs.jsonl.report.json").write_text(json.dumps({"counts": {"skipped": 1, "failed": 0}, "config": {},
                                                                "skipped": [
        {"item": "v9", "id": "v9-rrpo-0", "reason": "correct_answer", "detail": "the model was right"}],
        "failed": []}))
    return path


@pytest.fixture(scope="module")
def site(pair_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sites") / "site"
    assert main(["inspect", str(pair_file), "--out", str(out), "--no-progress"]) == 0
    return out


def _data(site: Path) -> dict:
    text = (site / "index-data.js").read_text()
    return {name: json.loads(value) for name, value in re.findall(r"window\.(SAVI_\w+)=(.*?);\n", text)}


def test_the_index_lists_pairs_bad_records_and_skipped_items(site, pair_file):
    data = _data(site)
    assert [row[1] for row in data["SAVI_PAIRS"]] == ["rrpo-pair", "plain-pair", "lost-video"]
    assert [row[3] for row in data["SAVI_PAIRS"]] == [1, 0, 0]  # tagged or not
    (where, message), = data["SAVI_BAD"]
    assert where == f"{pair_file}:4:video" and "string" in message
    (skipped,) = data["SAVI_SKIPPED"]
    assert skipped[:2] == ["v9-rrpo-0", "correct_answer"] and skipped[4] == "skipped"
    for row in data["SAVI_PAIRS"]:
        assert (site / row[5]).is_file()


def test_a_pair_page_shows_frames_perturbed_frames_and_tagged_phrases(site, pair_file):
    from PIL import Image

    html = (site / "pairs/0/1.html").read_text()
    frames = re.findall(r'<img src="\.\./\.\./(thumbs/[^"]+)" alt="frame">', html)
    perturbed = re.findall(r'<img src="\.\./\.\./(thumbs/[^"]+)" alt="perturbed frame">', html)
    assert len(frames) == len(perturbed) == 8
    assert '<mark class="tag">up</mark>' in html and '<mark class="tag">left</mark>' in html
    # the perturbed thumbnails are the frames the generator's record describes: the occluder's grey box is there
    info = json.loads(json.dumps(read_frames(pair_file.parent / "v0.mp4", 8).frames.shape))
    assert info == [8, 64, 64, 3]
    occluder = next(step for step in json.loads(pair_file.read_text().splitlines()[0])["meta"]["perturbation"]
                    if step["name"] == "occlude")
    y0, x0, y1, x1 = occluder["box"]
    scale = 160 / 64
    box = np.asarray(Image.open(site / perturbed[0]))[int(y0 * scale) + 4:int(y1 * scale) - 4,
                                                       int(x0 * scale) + 4:int(x1 * scale) - 4]
    assert abs(box.mean() - occluder["fill"]) < 6
    original = np.asarray(Image.open(site / frames[0]))[int(y0 * scale) + 4:int(y1 * scale) - 4,
                                                        int(x0 * scale) + 4:int(x1 * scale) - 4]
    assert abs(original.mean() - occluder["fill"]) > 60


def test_text_is_escaped_and_a_missing_video_is_a_placeholder(site):
    page = (site / "pairs/0/2.html").read_text()
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "weight: 0.5" in page
    lost = (site / "pairs/0/3.html").read_text()
    assert 'class="missing"' in lost and "video not found" in lost


def test_the_site_folder_is_new_empty_or_ours(pair_file, tmp_path, capsys):
    import json

    out = tmp_path / "site"
    bigger = pair_file.with_name("bigger.jsonl")  # an older site of more pairs: more pages
    lines = pair_file.read_text().splitlines()
    bigger.write_text("\n".join(lines + [json.dumps({**json.loads(line), "id": json.loads(line)["id"] + "-more"})
                                         for line in lines]) + "\n")
    assert main(["inspect", str(bigger), "--out", str(out), "--no-progress", "--frames", "0"]) == 0
    older = {p.relative_to(out) for p in out.rglob("*.html")}
    assert main(["inspect", str(pair_file), "--out", str(out), "--no-progress", "--frames", "0"]) == 0
    newer = {p.relative_to(out) for p in out.rglob("*.html")}
    assert newer < older  # replaced whole, never merged with the old site: no page of it is left
    (out / "pairs" / "NOTES.html").write_text("the user's own page")  # red team 4: a re-run deleted it
    capsys.readouterr()
    assert main(["inspect", str(pair_file), "--out", str(out), "--no-progress", "--frames", "0"]) == 1
    assert "NOTES.html was added" in capsys.readouterr().err and (out / "pairs" / "NOTES.html").exists()
    foreign = tmp_path / "project"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    capsys.readouterr()
    for target in (foreign, pair_file.parent, pair_file):
        assert main(["inspect", str(pair_file), "--out", str(target), "--no-progress"]) in (1, 2)  # 2: an input
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ")
    assert (foreign / "notes.txt").read_text() == "mine"
    assert not list(tmp_path.glob(".site.*"))  # no temporary folder left behind


@pytest.mark.parametrize("argv", [["--frames", "-1"], ["--frames", "inf"], ["--page-size", "0"],
                                  ["--page-size", "1e9"]])
def test_bad_flags_stop_before_any_work(argv, pair_file, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["inspect", str(pair_file), "--out", str(tmp_path / "s"), *argv])
    assert exc.value.code == 2 and not (tmp_path / "s").exists()


@needs_chromium
def test_chromium_renders_the_index_and_a_pair_page_from_disk(site, tmp_path):
    from PIL import Image

    copy = tmp_path / "site"
    shutil.copytree(site, copy)
    profile = tmp_path / "chromium-profile"
    index = _chromium(profile, "--dump-dom", (copy / "index.html").as_uri())
    assert index.returncode == 0
    assert len(re.findall(r'<tr class="pair">', index.stdout)) == 3  # index.js drew the rows from index-data.js
    assert "3 shown of 3 pairs, 1 skipped items, 1 bad records" in index.stdout
    assert "Uncaught" not in index.stderr and "CONSOLE" not in index.stderr.replace("CONSOLE(0)", "")
    pair = _chromium(profile, "--dump-dom", (copy / "pairs/0/1.html").as_uri())
    assert '<mark class="tag">up</mark>' in pair.stdout and "Uncaught" not in pair.stderr
    shot = tmp_path / "pair.png"
    _chromium(profile, "--window-size=1100,900", f"--screenshot={shot}", (copy / "pairs/0/1.html").as_uri())
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    dark = (pixels.sum(axis=2) < 120).mean()  # the thumbnails' dark backgrounds: images loaded, not broken icons
    assert dark > 0.05, f"only {dark:.1%} dark pixels: the thumbnails did not render"


@pytest.mark.parametrize("flag, given, line", [
    ("--run-report", "absent.json", "absent.json: --run-report: run report not found"),
    ("--run-report", "folder", "folder: --run-report: is a directory, not a run report"),
    ("--run-report", "bad.json", "bad.json:1: run report: invalid JSON"),
    ("--diagnostics", "folder", "folder: --diagnostics: is a directory, not a diagnostics file"),
    ("--run-report", "deep.json", "deep.json: run report: nested deeper than 64 levels"),
])
def test_a_named_report_that_is_not_there_or_not_json_is_one_line(flag, given, line, tmp_path, monkeypatch, capsys):
    """A report asked for by name is read or refused, never silently replaced by an empty section."""
    from savi_plugin.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "bad.json").write_text("garbage{")
    (tmp_path / "deep.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    (tmp_path / "nan.jsonl").write_text('{"id": "a", "margin": NaN}\n')
    (tmp_path / "p.jsonl").write_text('{"id": "a", "video": "v.mp4", "question": "q?", "chosen": "A", '
                                      '"rejected": "B", "source": "x"}\n')
    assert main(["inspect", "p.jsonl", "--out", "site", flag, given, "--no-progress"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {line}"), err
    assert not (tmp_path / "site").exists()


@pytest.mark.parametrize("document", [{}, {"results": {"accuracy": 1.0}, "adapter": "demo/rrpo"},
                                      {"dataset": {"skipped_records": []}}, {"skipped": []}])
def test_a_run_report_no_savi_writer_wrote_is_refused_naming_what_it_lacks(document, pair_file, tmp_path, capsys):
    """``--run-report`` given ``{}`` or another JSON object (the demo's results.json) drew "0 skipped item(s)" as
    if it were the generation's report (red team pass 13, B32): one line naming the file and the keys each of
    savi's report writers puts in a report, nothing written."""
    report = tmp_path / "other.json"
    report.write_text(json.dumps(document))
    code = main(["inspect", str(pair_file), "--out", str(tmp_path / "site"), "--run-report", str(report),
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1, err
    assert err[0].startswith(f"error: {report}: run report: not a report savi wrote (it lacks the keys each "
                             f"writer puts in one -- savi generate: "), err[0]
    assert "savi train: " in err[0] and not (tmp_path / "site").exists()


@pytest.mark.parametrize("document, field", [
    ({"counts": {"skipped": 0, "failed": 0}, "config": {}}, "content"), ({"converted_from": "x"}, "content"),
    ({"dataset": {}, "log_history": []}, "dataset.content"),
    ({"counts": {"skipped": 0, "failed": 0}, "config": {}, "skipped": []}, "content")])
def test_a_run_report_given_by_hand_must_vouch_for_the_pair_file(document, field, pair_file, tmp_path, capsys):
    """Replay 14, B18: an object with a writer's key names only, or a real report with its ``content`` removed and
    its ``skipped`` emptied, drew "0 skipped item(s)". A report given by hand that stores no content of the file
    it reports on is refused; one that does, and matches, is read."""
    from savi_plugin.data.provenance import vouch

    report = tmp_path / "by_hand.json"
    report.write_text(json.dumps(document))
    code = main(["inspect", str(pair_file), "--out", str(tmp_path / "site"), "--run-report", str(report),
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and err[0].startswith(f"error: {report}: run report: {field}: absent"), err
    assert not (tmp_path / "site").exists()
    vouching = {**json.loads((pair_file.parent / "pairs.jsonl.report.json").read_text()), **vouch(pair_file)}
    report.write_text(json.dumps(vouching))
    assert main(["inspect", str(pair_file), "--out", str(tmp_path / "site"), "--run-report", str(report),
                 "--no-progress"]) == 0
    assert "1 skipped item(s)" in capsys.readouterr().out


@pytest.mark.parametrize("edit", ["skipped list emptied", "counts emptied", "no lists"])
def test_a_generation_report_whose_counts_do_not_count_its_lists_is_refused(edit, pair_file, tmp_path, capsys):
    """Replay 14 C #11/#12: a report vouching for the file (its content right) with its skipped list emptied, or
    with counts and no lists, drew "0 skipped item(s)" while the run skipped one."""
    from savi_plugin.data.provenance import vouch

    report = {**json.loads((pair_file.parent / "pairs.jsonl.report.json").read_text()), **vouch(pair_file)}
    if edit == "skipped list emptied":
        report["skipped"] = []
    elif edit == "counts emptied":
        report["counts"] = {}
    else:
        del report["skipped"], report["failed"]
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(report))
    code = main(["inspect", str(pair_file), "--out", str(tmp_path / "site"), "--run-report", str(path),
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1, err
    assert err[0].startswith(f"error: {path}: run report: counts.") and "is not what its lists give" in err[0], err
    assert not (tmp_path / "site").exists()


@pytest.mark.parametrize("lines, problems", [
    (['{"torn', "ROW", "ROW"], ["dg.jsonl:1:-: invalid JSON"]),
    (["ROW", "[" * 100_000 + "]" * 100_000, "ROW"], ["dg.jsonl:2:-: nested deeper than 64 levels"]),  # red team 4
    (["ROW", '{"id": "a", "margin": NaN}', "ROW"], ["dg.jsonl:2:-: NaN is not a JSON number"]),
    (["ROW", "ROW", "ROW"[:2]], ["dg.jsonl:3:-: torn last line (no line feed at its end"]),  # a killed training
    (["ROW", '{"step": 1}', '{"id": "a", "step": "x"}', "ROW"],
     ["dg.jsonl:2:id: not a diagnostics row", "dg.jsonl:3:step: must be a whole number"]),
    # red team 9 row 37: a value of the wrong type is listed, not dropped; steps and values out of range are
    # listed, never drawn (a step of 10^18 became the pair's "latest")
    (["ROW", '{"id": "a", "step": 2, "margin": "x"}', '{"id": "a", "step": -1e308}',
      '{"id": "a", "step": 1000000000000000000}', '{"id": "a", "step": 3, "margin": 1e308}',
      '{"id": "a", "step": 4, "chosen_tokens": ["x"], "chosen_token_kl": [1.0, 1.0]}', '{"id": "a", "step": 1.5}',
      "ROW"],
     ["dg.jsonl:2:margin: must be a number", "dg.jsonl:3:step: must be a whole number of steps in [0, 4294967295]",
      "dg.jsonl:4:step: must be a whole number", "dg.jsonl:5:margin: must be a number within +-3.403e+38",
      "dg.jsonl:6:chosen_token_kl: has 2 value(s) for 1 chosen token(s)", "dg.jsonl:7:step: must be a whole"]),
    # pass 11, B34: training appends a pair's rows once per step, in step order; a row repeating its pair's step
    # (margin 9) or going back is listed, never drawn
    (["ROW", '{"id": "a", "step": 101, "margin": 9.0, "reward_chosen": 9.0, "reward_rejected": 0.0}',
      '{"id": "a", "step": 50, "margin": 9.0, "reward_chosen": 9.0, "reward_rejected": 0.0}', "ROW"],
     ["dg.jsonl:2:step: step 101 repeats the step of line 1", "dg.jsonl:3:step: step 50 comes after step 101 of "
      "line 1"]),
    # red team 11 B#46: finite but impossible values (a negative KL, a negative or fractional token count)
    (["ROW", '{"id": "a", "step": 102, "kl_chosen": -5.0}',
      '{"id": "a", "step": 103, "chosen_tokens": ["x", "y"], "chosen_token_kl": [0.5, -1.0]}',
      '{"id": "a", "step": 104, "tagged_tokens": {"chosen": -3, "rejected": 1}}',
      '{"id": "a", "step": 105, "tagged_tokens": {"chosen": 1, "rejected": 2.5}}',
      '{"id": "a", "step": 106, "tagged_tokens": {"chosen": 1, "kept": 2}}', "ROW"],
     ["dg.jsonl:2:kl_chosen: must be a number in [-0.001, 3.403e+38] or null (a KL divergence is never negative",
      "dg.jsonl:3:chosen_token_kl[1]: must be a number in [-0.001,",
      "dg.jsonl:4:tagged_tokens.chosen: must be a whole number of tokens in [0, 4294967295] or null, got -3",
      "dg.jsonl:5:tagged_tokens.rejected: must be a whole number of tokens", "dg.jsonl:6:tagged_tokens: must be"]),
])
def test_a_bad_diagnostics_line_is_one_problem_and_the_site_is_built(lines, problems, tmp_path, monkeypatch, capsys):
    """Red team B49: the diagnostics of a training killed while appending (a torn last line), or a torn line in the
    middle, follow the one JSONL rule: each bad line is named at its file:line, the other rows are shown."""
    from savi_plugin.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.jsonl").write_text('{"id": "a", "video": "v.mp4", "question": "q?", "chosen": "A", '
                                      '"rejected": "B", "source": "x"}\n')
    # line k at step 100 + k: a pair's rows in step order
    row = '{{"id": "a", "step": {}, "margin": -0.5, "reward_chosen": -0.25, "reward_rejected": 0.25}}'
    text = "\n".join(row.format(100 + k) if line == "ROW" else '{"' if line == "RO" else line
                     for k, line in enumerate(lines, 1))
    (tmp_path / "dg.jsonl").write_text(text + ("" if lines[-1] == "RO" else "\n"))
    capsys.readouterr()
    assert main(["inspect", "p.jsonl", "--out", "site", "--diagnostics", "dg.jsonl", "--no-progress"]) == 0
    out = capsys.readouterr()
    assert f"{len(problems)} bad diagnostics line(s)" in out.out
    assert "diagnostics for 1 pair(s), 1 never learned" in out.out
    listed = [line.strip() for line in out.err.splitlines() if line.startswith("  ")]
    assert len(listed) == len(problems) and all(g.startswith(w) for g, w in zip(listed, problems)), listed
    bad = json.loads(re.search(r"window\.SAVI_BAD=(.*);", (tmp_path / "site/index-data.js").read_text()).group(1))
    assert [w for w, _ in bad] == [":".join(p.split(":")[:3]) for p in problems]  # as listed: DataError.where
    page = (tmp_path / "site/pairs/0/1.html").read_text()
    latest = 100 + max(k for k, line in enumerate(lines, 1) if line == "ROW")
    assert f"step: {latest} " in page and "1000000000000000000" not in page  # the latest row drawn is a good one
    assert ": 9</title>" not in page and ": -0.5</title>" in page  # a listed row's margin is never drawn


def test_each_diagnostics_number_is_checked_against_its_own_range(tmp_path):
    """Red team 11 B#46, the edges of the ranges: a KL may read below 0 by float32 rounding only (1e-3 nats per
    token, a summed KL that much per chosen token), a loss may be negative (a plugin's loss is not bounded by the
    loss contract), a token count is a whole number >= 0."""
    from savi_plugin.data.diagnostics_rows import KL_TOLERANCE
    from savi_plugin.inspection.site import read_diagnostics

    tokens = {"chosen_tokens": ["x", "y"], "chosen_token_kl": [-0.9 * KL_TOLERANCE, 0.25]}
    below = [-0.9 * KL_TOLERANCE, -KL_TOLERANCE]  # each token's KL at its rounding's edge; kl_chosen is their sum
    rows = [dict(tokens, id="a", step=0, loss=-7.0, chosen_token_kl=below, kl_chosen=sum(below),
                 tagged_tokens={"chosen": 0, "rejected": None}),
            dict(tokens, id="a", step=1, kl_chosen=-2.1 * KL_TOLERANCE),  # below 2 tokens' rounding
            dict(tokens, id="a", step=2, chosen_token_kl=[-1.1 * KL_TOLERANCE, 0.25]),
            {"id": "a", "step": 3, "tagged_tokens": {"chosen": 2.0, "rejected": 1}},
            {"id": "a", "step": 4, "tagged_tokens": {"chosen": True}}]
    path = tmp_path / "dg.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    problems: list = []
    drawn = read_diagnostics(path, problems)
    assert [r["step"] for r in drawn["a"]] == [0]
    assert [(p.line, p.field) for p in problems] == [(2, "kl_chosen"), (3, "chosen_token_kl[0]"),
                                                     (4, "tagged_tokens.chosen"), (5, "tagged_tokens.chosen")]
    assert "must be a number in [-0.002," in str(problems[0])


def test_a_diagnostics_row_whose_id_names_no_pair_is_counted_and_said(tmp_path, monkeypatch, capsys, caplog):
    """Red team 10 B#30: a diagnostics row whose id is in no pair of the file was dropped with no word. It is
    counted in one warning naming the diagnostics file and in the summary, as the rows of other pairs are."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.jsonl").write_text('{"id": "a", "video": "v.mp4", "question": "q?", "chosen": "A", '
                                      '"rejected": "B", "source": "x"}\n')
    (tmp_path / "dg.jsonl").write_text('{"id": "a", "step": 1, "margin": -0.5, "reward_chosen": 0.0, '
                                       '"reward_rejected": 0.5}\n{"id": "nope", "step": 1}\n'
                                       '{"id": "nope", "step": 2}\n')
    capsys.readouterr()
    with caplog.at_level("WARNING"):
        assert main(["inspect", "p.jsonl", "--out", "site", "--diagnostics", "dg.jsonl", "--no-progress"]) == 0
    assert "diagnostics for 1 pair(s), 1 never learned, 2 diagnostics row(s) naming an id of no pair not shown" \
        in capsys.readouterr().out
    assert [r.getMessage() for r in caplog.records if "of no pair" in r.getMessage()] == [
        "dg.jsonl: 2 row(s) name an id of no pair in p.jsonl: not shown"]
    # the site's mark names the pair file by the paths rule (absolute outside a run folder), not from where the
    # command ran (pass 11 B: "pairs": "p.jsonl" named a file relative to the working folder)
    mark = json.loads((tmp_path / "site" / ".savi-output.json").read_text())
    assert mark["config"]["pairs"] == str(tmp_path / "p.jsonl")


def test_a_perturbation_record_that_does_not_fit_its_clip_is_said_on_its_page(pair_file, tmp_path):
    """Red team B48: a shuffle order of 10^5 entries and a drop of frames [-5, 99] are named on the pair's page
    (as a blur without a factor is), and the other pages are built; nothing is drawn from them."""
    from savi_plugin.inspection.site import build_site

    base = {"video": str(pair_file.parent / "v0.mp4"), "question": "Which way?", "chosen": "up", "rejected": "left",
            "source": "rrpo"}
    bad = {"order": [{"name": "shuffle", "order": [0] * 10**5}], "drop": [{"name": "drop", "frames": [-5, 99]}],
           "blur": [{"name": "blur"}]}
    records = [{**base, "id": name, "meta": {"num_frames": 4, "perturbation": p}} for name, p in bad.items()]
    records.append({**base, "id": "fine", "meta": {"num_frames": 4, "perturbation": [{"name": "reverse"}]}})
    pairs = write_jsonl(tmp_path / "pi.jsonl", records)
    summary = build_site(pairs, tmp_path / "site", frames=2, progress=False)
    assert summary.pairs == 4 and summary.bad_records == 0
    pages = [(tmp_path / "site" / f"pairs/0/{n}.html").read_text() for n in range(1, 5)]
    assert "order (100000) is not a permutation of the 4 frames" in pages[0]
    assert len(pages[0]) < 100_000  # the page shows the start of so long a meta
    assert "frames holds -5, not a frame index in 0..3" in pages[1]
    assert "factor None is not a whole number" in pages[2]
    assert 'id="perturbed"' in pages[3] and "does not fit" not in pages[3]


def test_the_index_of_an_unfinished_generation_says_so_at_its_top(site, pair_file, tmp_path, caplog):
    """Red team 9 #25: a generation stopped by SIGTERM (progress, no report) drew a site that never said the run
    did not finish. The index's first line after its title says it; a finished run's index does not."""
    assert 'id="unfinished"' not in (site / "index.html").read_text()
    folder = tmp_path / "stopped"
    folder.mkdir()
    for name in ("v0.mp4", "v1.mp4"):
        shutil.copy(pair_file.parent / name, folder / name)
    stopped = folder / "pairs.jsonl"
    shutil.copy(pair_file, stopped)
    (folder / "pairs.jsonl.progress.jsonl").write_text("")  # a run's progress beside it, no report: unfinished
    assert main(["inspect", str(stopped), "--out", str(tmp_path / "s"), "--frames", "0", "--no-progress"]) == 0
    index = (tmp_path / "s" / "index.html").read_text()
    note = re.search(r'<h1>[^<]*</h1>\s*<p id="unfinished">(.*?)</p>', index, re.DOTALL)
    assert note and "did not finish" in note.group(1) and "pairs.jsonl.report.json" in note.group(1)
    assert "did not finish" in caplog.text


#: a pair's video that leaves the data root, as (how the record names it, made before the run (link, target))
OUTSIDE_THE_ROOT = {
    "..": ("../v.mp4", None),
    "absolute": ("{tmp}/v.mp4", None),
    "a link pointing out": ("link.mp4", ("root/link.mp4", "../v.mp4")),
}


@pytest.mark.parametrize("frames", [0, 1])
@pytest.mark.parametrize("how", OUTSIDE_THE_ROOT)
def test_a_video_outside_the_data_root_is_named_as_validate_names_it(how, frames, tmp_path, monkeypatch, capsys):
    """Pass 24 H #88: with ``--data-root``, pairs whose video leaves the root drew pages saying ``video not given:
    None`` and ``0 bad record(s)``. Each is named by training's rule (``resolve_video_path``), in the words ``savi
    data validate --data-root`` says, on its page and with the bad records, and counted in the summary line."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "root").mkdir()
    (tmp_path / "v.mp4").write_bytes(b"")
    video, link = OUTSIDE_THE_ROOT[how]
    if link:
        (tmp_path / link[0]).symlink_to(link[1])
    pair = {"id": "p", "video": video.format(tmp=tmp_path), "question": "Q?", "chosen": "a", "rejected": "b"}
    write_jsonl(tmp_path / "p.jsonl", [pair, {**pair, "id": "q"}])
    assert main(["data", "validate", "p.jsonl", "--data-root", "root"]) == 1
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 2 and said[0].startswith("p.jsonl:1:video: ") and "outside the data root" in said[0], said
    assert main(["inspect", "p.jsonl", "--out", "site", "--data-root", "root", "--frames", str(frames),
                 "--no-progress"]) == 0
    assert ("site/index.html: 2 pair page(s), 2 bad record(s) (2 of them pairs whose video training would skip: "
            "each page says why), 0 skipped item(s)") in capsys.readouterr().out
    from html import unescape

    for number, line in enumerate(said, start=1):
        page = unescape((tmp_path / f"site/pairs/0/{number}.html").read_text())
        assert f"video refused: {line.split(': ', 1)[1]}" in page and "not given" not in page, page
    assert [f"{where}: {message}" for where, message in _data(tmp_path / "site")["SAVI_BAD"]] == said


#: files of which no record is a pair, as (the text, the first bad record's ``file:line:field``)
NO_PAIR_AT_ALL = {
    "a training report": (json.dumps({"dataset": {"skipped_records": []}, "log_history": []}), "1:dataset"),
    "a JSON array of numbers": ("[1, 2]", "1:-"),
    "two lines of other objects": ('{"a": 1}\n{"b": 2}\n', "1:a"),
    "not JSON": ("hello\n", "1:-"),
}


@pytest.mark.parametrize("fmt", ["savi", "rrpo", "trl"])
@pytest.mark.parametrize("what", NO_PAIR_AT_ALL)
def test_a_file_of_which_no_record_is_a_pair_is_refused_as_validate_refuses_it(what, fmt, tmp_path, monkeypatch,
                                                                              capsys):
    """Pass 24 G #11: ``savi inspect train_report.json`` drew a site of ``0 pair page(s), 1 bad record(s)`` and
    exited 0. A file of which no record is a pair is refused as ``savi data validate`` refuses it (exit 1), in
    one line naming the file and its first bad record, and no site is written; a file with some pairs is drawn."""
    monkeypatch.chdir(tmp_path)
    text, first = NO_PAIR_AT_ALL[what]
    (tmp_path / "x.json").write_text(text)
    assert main(["data", "validate", "x.json", "--format", fmt]) == 1
    said = capsys.readouterr().out.strip().splitlines()
    assert main(["inspect", "x.json", "--out", "site", "--format", fmt, "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {said[0]} (no record of x.json is a preference pair"), err
    if fmt == "savi":
        assert err[0].startswith(f"error: x.json:{first}"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]  # no site, no lock

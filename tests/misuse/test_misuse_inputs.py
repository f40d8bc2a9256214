"""The bad-input corpus (tests/misuse/bad_inputs/cases.yaml): every case through the real entry point it targets.

Each case must end in a clear error naming file, record and field, or in a counted skip listed with its
reason -- never a traceback from deep inside torch, never a silent substitute. Videos are real files made
here (synthetic mp4s, a 0-frame stream, a valid MJPEG stream declaring 16000x16000 frames, ...); the model
is a tiny random-weight LLaVA-OneVision built locally.
"""

from __future__ import annotations

import json
import resource
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from misuse_kit import write_mjpeg, write_zero_frame_mp4

from savi_plugin.data import DataError, read_records
from tests.builders import read_jsonl, write_jsonl

CORPUS = Path(__file__).parent / "bad_inputs"
CASES = yaml.safe_load((CORPUS / "cases.yaml").read_text(encoding="utf-8"))
BY_ENTRY: dict[str, list[dict]] = {}
for _case in CASES:
    BY_ENTRY.setdefault(_case["entry"], []).append(_case)

GEN_OPTIONS = {"answer_format": "raw", "num_perturbations": 1, "max_new_tokens": 6}


def params(entry: str):
    return [pytest.param(c, id=c["id"]) for c in BY_ENTRY.get(entry, [])]


def test_the_corpus_is_complete_and_well_formed():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 30
    assert set(BY_ENTRY) == {"read_records", "generation", "dataset", "collator", "recipe", "eval_records",
                             "eval_videos"}
    for case in CASES:
        assert case["expect"] in ("error", "skip", "ok"), case["id"]
        assert case["expect"] == "ok" or case.get("fragment"), case["id"]
        assert case["expect"] != "skip" or case.get("reason"), case["id"]
        target = CORPUS / case["file"]
        assert target.exists() or case["id"] == "preference-file-not-found", case["id"]


# --------------------------------------------------------------------------------------------- videos
def build_videos(root: Path) -> None:
    from savi_plugin.video.synthetic import render_sample, write_mp4

    videos, outside = root / "videos", root / "outside"
    videos.mkdir()
    outside.mkdir()
    frames = render_sample(np.random.default_rng(0), "moving_direction", size=32, num_frames=8)[0]
    write_mp4(videos / "ok.mp4", frames)
    write_mp4(videos / "one_frame.mp4", frames[:1])
    write_zero_frame_mp4(videos / "zero_frames.mp4")
    (videos / "zero_bytes.mp4").write_bytes(b"")
    (videos / "notes.mp4").write_text("meeting notes, not a video\n" * 40)
    good = (videos / "ok.mp4").read_bytes()
    (videos / "truncated.mp4").write_bytes(good[: len(good) // 3])
    write_mjpeg(videos / "huge_16000x16000.mkv", 16000, 16000)
    write_mjpeg(videos / "short_2_frames.mkv", 32, 32, frames=2)
    shutil.copy(videos / "ok.mp4", outside / "secret.mp4")
    (videos / "link_to_outside.mp4").symlink_to(Path("..") / "outside" / "secret.mp4")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A copy of tests/misuse/bad_inputs with ``{corpus}`` filled in and the videos built."""
    root = tmp_path_factory.mktemp("corpus")
    for src in CORPUS.rglob("*"):
        if src.is_file():
            dst = root / src.relative_to(CORPUS)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes().replace(b"{corpus}", str(root).encode()))
    build_videos(root)
    return root


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    from savi_plugin.models import load_backend
    from savi_plugin.models.tiny import build_tiny_model

    return load_backend(build_tiny_model(tmp_path_factory.mktemp("tiny"), "llava_onevision", seed=0), num_frames=4)


def where(case: dict) -> tuple:
    return case.get("line", case.get("record")), case.get("field")


def eval_where(case: dict) -> tuple:
    """:func:`where` for benchmark records: the corpus names a record by its index in the file (``record: 1`` is
    the second record, or the JSONL line it gives as ``line``), and an eval data error prints and carries the
    record's position counting from 1, as every data error numbers records and lines."""
    record, field = where(case)
    if "line" not in case and isinstance(record, int):
        record += 1
    return record, field


# --------------------------------------------------------------------------------------------- data files
@pytest.mark.parametrize("case", params("read_records"))
def test_preference_files(case, corpus, capsys):
    from savi_plugin.cli import main

    path = corpus / case["file"]
    fmt = (case.get("options") or {}).get("fmt", "savi")
    with pytest.raises(DataError) as err:
        list(read_records(path, fmt))
    exc = err.value
    assert (exc.file, exc.line, exc.field) == (str(path), *where(case)), str(exc)
    assert case["fragment"] in exc.message
    # file:line:field, the line the text line a record starts at (a JSON array's record: pass 25 L #19)
    assert str(exc).startswith(f"{exc.where}: ") and exc.where.startswith(f"{path}:")
    assert exc.where.endswith(f":{exc.field or '-'}")

    # `savi data validate` reports the same problem, exits 1, and goes on past it.
    capsys.readouterr()
    assert main(["data", "validate", str(path), "--format", fmt]) == 1
    out = capsys.readouterr()
    assert str(exc) in out.out.splitlines()
    assert "problem(s)" in out.err


# --------------------------------------------------------------------------------------------- generation
class Untouchable:
    """A model stand-in that fails the test if the runner uses it (input errors come first)."""

    def __getattr__(self, name):
        raise AssertionError(f"the model was used ({name}) before the input was checked")


@pytest.mark.parametrize("case", [c for c in params("generation") if c.values[0]["expect"] == "error"])
def test_generation_inputs_are_refused_before_the_model(case, corpus, tmp_path):
    from savi_plugin.generators import run_generation

    options = case.get("options") or {}
    kwargs = {"data_root": str(corpus / options["data_root"])} if "data_root" in options else {}
    path = corpus / case["file"]
    with pytest.raises(DataError) as err:
        run_generation(generator="rrpo", model=Untouchable(), inputs=path, output=tmp_path / "out.jsonl",
                       progress=False, **kwargs)
    exc = err.value
    assert (exc.file, exc.line, exc.field) == (str(path), *where(case)), str(exc)
    assert case["fragment"] in exc.message
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("case", [c for c in params("generation") if c.values[0]["expect"] != "error"])
def test_generation_items_are_counted_and_listed(case, corpus, tiny_lm, tmp_path):
    from savi_plugin.generators import run_generation

    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = tmp_path / "pairs.jsonl"
    report = run_generation(generator="rrpo", model=tiny_lm, inputs=corpus / case["file"], output=out,
                            num_frames=4, batch_size=2, seed=0, options=GEN_OPTIONS, progress=False)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mb < 1024, f"peak RSS grew by {grown_mb:.0f} MB"

    saved = json.loads(Path(report["report"]).read_text())
    assert saved["counts"] == report["counts"] and report["complete"]
    listed = saved["skipped"] + saved["failed"]
    records = read_jsonl(out) if out.exists() else []
    good = [r for r in records if r["meta"]["item_id"] == "q1"]
    assert good, "the good item of the same run must still become a record"
    mine = [e for e in listed if e["item"] == case["item"]]
    assert len(mine) == 1, listed
    assert mine[0]["reason"] == case["reason"] and case["fragment"] in mine[0]["detail"], mine[0]
    assert saved["counts"]["by_reason"][case["reason"]] == 1
    assert not any(r["meta"]["item_id"] == case["item"] for r in records), "a bad item left a record"


# --------------------------------------------------------------------------------------------- training data
def _dataset(case, corpus, tiny_lm, bad_records):
    from savi_plugin.training.dataset import PreferenceDataset

    options = dict(case.get("options") or {})
    if "data_root" in options:
        options["data_root"] = str(corpus / options["data_root"])
    options.pop("max_length", None)
    return PreferenceDataset(corpus / case["file"], tiny_lm.tokenizer, tiny_lm.end_of_turn, bad_records=bad_records,
                             token_budget=tiny_lm.context_length, **options)


@pytest.mark.parametrize("case", params("dataset"))
def test_training_records_are_skipped_and_counted_or_refused(case, corpus, tiny_lm):
    path = str(corpus / case["file"])
    dataset = _dataset(case, corpus, tiny_lm, "skip")
    assert [item.record.id for item in dataset.items] == ["p1"]  # the good pair is kept, nothing substituted
    assert len(dataset.skipped) == 1, dataset.skipped
    skip = dataset.skipped[0]
    assert (skip["file"], skip["line"], skip["field"], skip["reason"]) == (path, *where(case), case["reason"])
    assert case["fragment"] in skip["message"]
    report = dataset.report()
    assert report["skipped_by_reason"] == {case["reason"]: 1}
    assert report["skipped_records"][0]["reason"] == case["reason"]

    if case["reason"] == "untagged":  # skipped whatever bad_records says (documented)
        assert len(_dataset(case, corpus, tiny_lm, "raise").skipped) == 1
        return
    with pytest.raises(DataError) as err:
        _dataset(case, corpus, tiny_lm, "raise")
    assert (err.value.file, err.value.line, err.value.field) == (path, *where(case))
    assert case["fragment"] in err.value.message


@pytest.mark.parametrize("case", params("collator"))
def test_collator(case, corpus, tiny_lm):
    from savi_plugin.training.collator import PreferenceCollator

    dataset = _dataset(case, corpus, tiny_lm, "raise")
    max_length = (case.get("options") or {}).get("max_length")
    collator = PreferenceCollator(tiny_lm, num_frames=4, max_length=max_length)
    if case["expect"] == "ok":
        batch = collator(dataset.items)
        assert batch.chosen.targets.shape[0] == len(dataset.items) == 2
        assert collator.videos_decoded == 2
        return
    with pytest.raises(DataError) as err:
        collator(dataset.items)
    assert (err.value.file, err.value.line, err.value.field) == (str(corpus / case["file"]), *where(case))
    assert case["fragment"] in err.value.message


# --------------------------------------------------------------------------------------------- recipes
@pytest.mark.parametrize("case", params("recipe"))
def test_recipes(case, corpus):
    from savi_plugin.recipe import RecipeError, load_recipe

    path = corpus / case["file"]
    with pytest.raises(RecipeError) as err:
        load_recipe(path, (case.get("options") or {}).get("overrides"))
    message = str(err.value)
    assert message.startswith(str(path) + ":") or message.startswith(f"override {case['options']['overrides'][0]!r}")
    if case["field"]:
        assert f": {case['field']}:" in message, message
    assert case["fragment"] in message
    assert not (corpus / "PWNED").exists(), "a YAML tag ran a command"


# --------------------------------------------------------------------------------------------- eval tasks
def _eval_records(case, corpus):
    from savi_plugin.eval.data import benchmark, load_local_records

    options = case["options"]
    root = corpus / case["file"]
    spec = benchmark(options["benchmark"])
    return root, spec, load_local_records(root, spec, options["config"], options.get("split"))


@pytest.mark.parametrize("case", params("eval_records"))
def test_eval_records(case, corpus):
    from savi_plugin.eval.data import EvalDataError

    with pytest.raises(EvalDataError) as err:
        _eval_records(case, corpus)
    exc = err.value
    assert Path(exc.file).is_relative_to(corpus / case["file"]), exc.file
    assert (exc.record, exc.field) == eval_where(case), str(exc)
    assert case["fragment"] in exc.message


@pytest.mark.parametrize("case", params("eval_videos"))
def test_eval_videos_stay_under_the_data_root(case, corpus, monkeypatch):
    from lmms_eval.utils import load_yaml_config

    from savi_plugin.eval.command import DATA_ERROR_PREFIX
    from savi_plugin.eval.data import EvalDataError, resolve_video, video_base
    from savi_plugin.eval.registration import tasks_path
    from savi_plugin.eval.settings import SettingError
    from savi_plugin.eval.task import SaviVideoTask

    root, spec, records = _eval_records(case, corpus)
    base = video_base(spec, root)
    subtask = case["options"]["config"]
    assert resolve_video(spec, records[0], base, subtask, root=root)[0].startswith(str(root))
    with pytest.raises(EvalDataError) as err:
        for index, doc in enumerate(records):
            resolve_video(spec, doc, base, subtask, root=root, record=index)
    assert (err.value.record, err.value.field) == eval_where(case)
    assert case["fragment"] in err.value.message
    # Without a data root (lmms-eval's hub cache) nothing is confined: the path is returned as written.
    assert resolve_video(spec, records[1], base, subtask)[0].endswith("../outside/secret.mp4")

    # The real entry point: lmms-eval building our task from its YAML with SAVI_DATA_ROOT set: one line naming the
    # record's file, record and field (pass 24 E #63: it named the task/split), exit status 2
    monkeypatch.setenv("SAVI_DATA_ROOT", str(root))
    config = load_yaml_config(f"{tasks_path()}/{case['options']['benchmark']}/savi_mvbench_{subtask}.yaml", mode="full")
    with pytest.raises(SettingError) as err:
        SaviVideoTask(config=config)
    record, field = eval_where(case)
    assert err.value.code == 2 and str(err.value).startswith(
        f"{DATA_ERROR_PREFIX}{root / 'mvbench/json' / subtask}.json:{record}:{field}: "), err.value
    assert case["fragment"] in str(err.value)


def test_training_run_report_lists_every_skipped_record(corpus, tiny_llava_onevision, tmp_path):
    """One real ``run_training`` over every bad training record at once (``bad_records="skip"``)."""
    from savi_plugin.training.run import run_training

    cases = [c for c in BY_ENTRY["dataset"] if c["expect"] == "skip"]
    lines, expected = [], {}
    for case in cases:  # line 1 of each file is a good pair, line 2 the bad one
        good, bad = (json.loads(x) for x in (corpus / case["file"]).read_text().splitlines()[:2])
        bad["id"] = f"bad-{case['id']}"  # video paths are relative to videos/, the data root below
        expected[bad["id"]] = case["reason"]
        lines.append(bad)
    lines += [dict(good, id="good-1"), dict(good, id="good-2")]
    data = corpus / "records" / "all_bad_training_records.jsonl"
    write_jsonl(data, lines)

    result = run_training(model=tiny_llava_onevision, data=data, output_dir=tmp_path / "out",
                          training=dict(loss_type="rrpo", bad_records="skip", data_root=str(corpus / "videos"),
                                        num_frames=4, per_device_train_batch_size=2, max_steps=1,
                                        save_strategy="no", use_cpu=True, disable_tqdm=True, report_to="none"))
    assert (result["pairs"], result["skipped"]) == (2, len(cases))
    report = json.loads(Path(result["report"]).read_text())["dataset"]
    by_line = {entry["line"]: entry for entry in report["skipped_records"]}
    assert len(by_line) == len(cases)
    for line, obj in enumerate(lines[:-2], start=1):
        entry = by_line[line]
        assert entry["reason"] == expected[obj["id"]], (obj["id"], entry)
        assert entry["file"] == str(data) and entry["message"]
    counts = {}
    for reason in expected.values():
        counts[reason] = counts.get(reason, 0) + 1
    assert report["skipped_by_reason"] == counts


# --------------------------------------------------------------------------------------------- text and the CLI
SURROGATE = "\\ud800"  # as written in a JSON file: a lone UTF-16 surrogate, not valid Unicode text


@pytest.mark.parametrize("field", ["id", "question", "answer", "options"])
def test_a_lone_surrogate_in_a_generation_input_is_one_line_naming_file_line_field(field, tiny_llava_onevision,
                                                                                    tmp_path, capsys):
    from misuse_kit import assert_one_line_error, clip, savi

    video = clip(tmp_path / "v.mp4")
    good = {"id": "q1", "video": str(video), "question": "Which way?", "options": ["left", "right"], "answer": "left"}
    bad = dict(good, id="q2")
    if field == "options":
        bad["options"] = ["left", "ri@ght"]
    elif field == "answer":  # an answer must be one of the options: the option carries it too
        bad.update(options=["le@ft", "right"], answer="le@ft")
    else:
        bad[field] = {"id": "q@2", "question": "Which@ way?"}[field]
    manifest = tmp_path / "qa.jsonl"
    manifest.write_text(json.dumps(good) + "\n" + json.dumps(bad).replace("@", SURROGATE) + "\n", encoding="ascii")
    out = tmp_path / "pairs.jsonl"
    code, _, err = savi(capsys, "generate", "--generator", "rrpo", "--model", tiny_llava_onevision, "--input",
                        manifest, "--output", out, "--num-frames", "4", "--no-progress")
    assert code == 1
    line = assert_one_line_error(err, f"{manifest}:2:", "lone surrogate")
    assert f":2:{field}:" in line or (field == "answer" and ":2:options:" in line), line
    assert not out.exists()


LONG = "very " * 14_000  # 70 000 characters: over untrusted.MAX_TEXT_CHARS
GENERATION_TEXT_CASES = {
    "option line feed": ("options", {"options": ["green", "yellow\n(E) purple", "red"]}, "contains a line feed"),
    "option carriage return": ("options", {"options": ["green", "yellow\r(E) purple", "red"]},
                               "contains a carriage return"),
    "option U+2028": ("options", {"options": ["green", "yellow\u2028(E) purple", "red"]}, "U+2028 (LINE SEPARATOR)"),
    "option U+2029": ("options", {"options": ["green", "yellow\u2029(E)", "red"]}, "U+2029 (PARAGRAPH SEPARATOR)"),
    "option U+0085": ("options", {"options": ["green", "yellow\u0085(E)", "red"]}, "U+0085 (NEXT LINE)"),
    "long question": ("question", {"question": f"What color {LONG}?"}, "characters long, more than the 65536"),
    "long option": ("options", {"options": ["green", LONG, "red"]}, "characters long, more than the 65536"),
    "long answer": ("answer", {"answer": LONG}, "characters long, more than the 65536"),
}


@pytest.mark.parametrize("case", list(GENERATION_TEXT_CASES))
def test_a_line_break_in_an_option_or_an_overlong_text_is_a_bad_record_naming_file_line_field(case, tmp_path,
                                                                                               capsys):
    """An option is one line of the prompt: ``"yellow\\n(E) purple"`` would draw a fifth option the record does
    not have. A text over the character cap is refused before any tokenizer sees it (a 30 MB question aborted
    the process)."""
    from misuse_kit import assert_one_line_error, clip, savi

    field, change, message = GENERATION_TEXT_CASES[case]
    video = clip(tmp_path / "v.mp4")
    good = {"id": "q1", "video": str(video), "question": "Which color?", "options": ["green", "yellow", "red"],
            "answer": "green"}
    manifest = tmp_path / "qa.jsonl"
    manifest.write_text(json.dumps(good) + "\n" + json.dumps(dict(good, id="q2", **change)) + "\n")
    out = tmp_path / "pairs.jsonl"
    code, _, err = savi(capsys, "generate", "--generator", "rrpo", "--model", "no-model-needed", "--input",
                        manifest, "--output", out, "--num-frames", "4", "--no-progress")
    assert code == 1
    line = assert_one_line_error(err, f"{manifest}:2:{field}", message)
    assert len(line) < 400, line  # the long text is not echoed
    assert not out.exists()


@pytest.mark.parametrize("field", ["question", "chosen", "rejected"])
def test_an_overlong_text_in_a_preference_file_is_reported_by_validate(field, tmp_path, capsys):
    from misuse_kit import savi

    obj = {"id": "p1", "video": "v.mp4", "question": "What is it?", "chosen": "A cat.", "rejected": "A dog."}
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(obj) + "\n" + json.dumps(dict(obj, id="p2", **{field: LONG})) + "\n")
    code, out, err = savi(capsys, "data", "validate", path)
    assert code == 1 and "Traceback" not in err
    assert f"{path}:2:{field}: is 70000 characters long, more than the 65536" in out


@pytest.mark.parametrize("field", ["id", "question", "chosen"])
def test_a_lone_surrogate_in_a_preference_file_is_reported_by_validate(field, tmp_path, capsys):
    from misuse_kit import savi

    obj = {"id": "p1", "video": "v.mp4", "question": "What is it?", "chosen": "A cat.", "rejected": "A dog."}
    bad = dict(obj, id="p2")
    bad[field] = bad[field][:1] + "@" + bad[field][1:]
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(obj) + "\n" + json.dumps(bad).replace("@", SURROGATE) + "\n", encoding="ascii")
    code, out, err = savi(capsys, "data", "validate", path)
    assert code == 1 and "Traceback" not in err
    assert f"{path}:2:{field}: contains a lone surrogate" in out


@pytest.mark.parametrize("problem,where", [("malformed", ":2:-: invalid JSON"), ("missing-field", ":1:chosen:"),
                                           ("wrong-type", ":1:question: expected a string"),
                                           ("no-file", "not found")])
def test_savi_train_prints_a_data_error_as_one_line(problem, where, tiny_llava_onevision, tmp_path, capsys):
    from misuse_kit import assert_one_line_error, clip, pair, savi

    good = pair("a", clip(tmp_path / "v.mp4"))
    data = tmp_path / "pairs.jsonl"
    if problem == "malformed":
        data.write_text(json.dumps(good) + '\n{"id": "b", "video": \n')
    elif problem == "missing-field":
        write_jsonl(data, [{k: v for k, v in good.items() if k != "chosen"}])
    elif problem == "wrong-type":
        write_jsonl(data, [dict(good, question=["not", "a", "string"])])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(json.dumps({"model": {"path": str(tiny_llava_onevision), "num_frames": 4},
                                  "train": {"max_steps": 1, "use_cpu": True, "save_strategy": "no"}}))
    code, _, err = savi(capsys, "train", recipe, "--data", data, "--output-dir", tmp_path / "out")
    assert code == (2 if problem == "no-file" else 1)  # a --data that names no file: a configuration error
    assert_one_line_error(err, str(data), where)


# ------------------------------------------------------------------------------------------------ JSON values
#: what ``json`` accepts but the untrusted-input boundary refuses: (raw text spliced into line 2, message fragment)
BAD_JSON_VALUES = {
    "duplicate-key": ('"question": "What shape is it?"', "appears twice"),
    "5000-digit-integer": ('"weight": ' + "9" * 5000, "5000 digits"),
    "5000-digit-negative": ('"weight": -' + "9" * 5000, "5000 digits"),
    "float-beyond-range": ('"weight": 1e999', "beyond the range"),
    "negative-float-beyond-range": ('"weight": -1.5e400', "beyond the range"),
}
#: every command that reads a JSON-lines input: (argv builder (input, tmp) -> argv, exit code, where the line is)
JSON_READERS = {
    "data validate": (lambda f, tmp: ["data", "validate", f], 1, "stdout"),
    "data convert": (lambda f, tmp: ["data", "convert", f, tmp / "out.jsonl", "--to", "trl"], 1, "stderr"),
    "inspect": (lambda f, tmp: ["inspect", f, "--out", tmp / "site", "--no-progress"], 0, "site"),  # counted
    "generate": (lambda f, tmp: ["generate", "--generator", "rrpo", "--model", tmp / "no-model", "--input", f,
                                 "--output", tmp / "out.jsonl", "--no-progress"], 1, "stderr"),
}


@pytest.mark.parametrize("reader", list(JSON_READERS))
@pytest.mark.parametrize("value", list(BAD_JSON_VALUES))
def test_json_values_beyond_the_boundary_name_file_and_line(reader, value, tmp_path, capsys):
    from misuse_kit import qa_item, savi

    text, fragment = BAD_JSON_VALUES[value]
    build, exit_code, stream = JSON_READERS[reader]
    first = (qa_item("q1", "v.mp4") if reader == "generate" else
             {"id": "p1", "video": "v.mp4", "question": "What is it?", "chosen": "A cat.", "rejected": "A dog."})
    second = json.dumps(dict(first, id="x2"))
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(first) + "\n" + second[:-1] + ", " + text + "}\n", encoding="utf-8")
    code, out, err = savi(capsys, *build(path, tmp_path))
    assert code == exit_code and "Traceback" not in err, err
    if stream == "site":  # the site lists bad records with their reason and counts them
        assert "1 bad record(s)" in out
        listed = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "site").glob("index*"))
        assert fragment in listed and ":2" in listed
        return
    assert f"{path}:2:" in (out if stream == "stdout" else err) and fragment in out + err, out + err
    assert not (tmp_path / "out.jsonl").exists()

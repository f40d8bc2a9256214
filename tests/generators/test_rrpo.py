"""RRPO generator: tiny real models on real synthetic videos, SIGKILL + resume, and a scripted backend.

The scripted backend (a small class with the ``VideoLM.generate`` / ``generate_text`` interface returning
fixed strings) tests the pipeline's decisions deterministically; everything else runs the real thing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from savi_plugin.data import validate_record
from savi_plugin.data.tags import parse_tags
from savi_plugin.generators import run_generation
from savi_plugin.generators.base import stable_int
from savi_plugin.video.decode import read_frames
from savi_plugin.video.perturb import DEFAULT_PERTURBATIONS, apply_perturbations
from tests.builders import outside_tokens, read_jsonl, write_jsonl

TINY_OPTIONS = {"answer_format": "raw", "num_perturbations": 2, "pairs_per_question": None, "max_new_tokens": 10}


def samples_jsonl(samples) -> Path:
    return Path(samples[0].video).parent / "samples.jsonl"


def content_outside(tagged: str) -> list[str]:
    """The untagged tokens that carry content: no option letter, punctuation, function or framing word (what the
    default ``figure`` tag rule leaves untagged on purpose)."""
    from savi_plugin.generators.content import FRAME_WORDS, FUNCTION_WORDS

    return [t for t in outside_tokens(tagged) if t[:1].isalnum() and len(t) > 1
            and t.lower() not in FUNCTION_WORDS and t.lower() not in FRAME_WORDS]


def check_tagged_pairs(records: list[dict]) -> None:
    """Every record validates and its tags mark phrases that differ; with the word diff (``rule``), the
    untagged content of the two responses is token for token the same, i.e. the tags cover every difference
    in content (the ``figure`` rule leaves option letters, framing and function words untagged)."""
    for n, obj in enumerate(records, start=1):
        rec = validate_record(obj, "out.jsonl", n)
        chosen, rejected = parse_tags(rec.chosen_tagged), parse_tags(rec.rejected_tagged)
        assert chosen.spans and rejected.spans and chosen.phrases != rejected.phrases
        if rec.meta["tagging"] in ("rule", "rule_fallback"):
            assert content_outside(rec.chosen_tagged) == content_outside(rec.rejected_tagged)


@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_vl"])
def test_rrpo_with_tiny_model_writes_valid_tagged_pairs(request, family, synthetic_samples, tmp_path):
    model = request.getfixturevalue(f"tiny_{family}")
    out = tmp_path / "pairs.jsonl"
    report = run_generation(generator="rrpo", model=model, inputs=samples_jsonl(synthetic_samples), output=out,
                            num_frames=4, batch_size=4, seed=0, options=TINY_OPTIONS, progress=False)
    records = read_jsonl(out)
    c = report["counts"]
    # A random-weight model answers garbage: every answer is wrong, so every attempt becomes a pair, unless its
    # garbage holds a word mixing Latin with look-alikes of another script (Unicode TR39), a counted invalid_record
    # (which tokens a random model draws depends on the torch/transformers versions).
    assert c["items"] == c["items_done"] == 10 and c["pairs"] + c["skipped"] + c["failed"] == 20
    mixed = [s for s in report["skipped"] if s["reason"] == "invalid_record"]
    assert all("mixes Latin letters with" in s["detail"] for s in mixed), mixed
    assert c["pairs"] == len(records) == report["records_in_output"] and c["pairs"] + len(mixed) >= 18
    assert report["complete"] and report["throughput"]["pairs"] == c["pairs"] > 0
    assert sorted(r["id"] for r in records) == sorted(f"{s.id}-rrpo-{k}" for s in synthetic_samples for k in (0, 1)
                                                       if f"{s.id}-rrpo-{k}" in {r["id"] for r in records})
    check_tagged_pairs(records)
    for r in records:
        meta = r["meta"]
        assert (meta["generator"], meta["prompts_version"], meta["model"], meta["backend"]) == \
            ("rrpo", "rrpo-prompts-v2", str(model), family)
        assert meta["num_frames"] == 4 and meta["seed"] == 0
        assert [p["name"] for p in meta["perturbation"]] == ["occlude", "shuffle"]
        assert meta["perturbation"][0]["frames"] == [0, 1, 2, 3]  # perturb.png: the box on every frame
        sample = next(s for s in synthetic_samples if s.id == meta["item_id"])
        assert r["chosen"] == f"({sample.answer_letter}) {sample.answer}"
        assert r["question"] == sample.mcq_prompt()  # the packaged template renders MVBench's prompt
    saved = json.loads(Path(report["report"]).read_text())
    assert saved["counts"] == c and saved["config"]["options"]["num_perturbations"] == 2


KILL_SCRIPT = textwrap.dedent("""
    import json, sys
    from savi_plugin.generators import run_generation
    args = json.loads(sys.argv[1])
    run_generation(generator="rrpo", progress=False, **args)
""")


def _run_and_kill(script: Path, args: dict, out: Path, kill_after_lines: int) -> int:
    """Run the generation in its own process and SIGKILL it once ``out`` holds ``kill_after_lines`` lines."""
    proc = subprocess.Popen([sys.executable, str(script), json.dumps(args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= kill_after_lines:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=30)
    return proc.returncode


def test_rrpo_sigkill_mid_run_then_resume_gives_exactly_the_full_set(tiny_llava_onevision, synthetic_samples,
                                                                        tmp_path):
    args = dict(model=str(tiny_llava_onevision), inputs=str(samples_jsonl(synthetic_samples)), num_frames=4,
                batch_size=2, seed=0, options=TINY_OPTIONS)
    reference = tmp_path / "reference.jsonl"
    run_generation(generator="rrpo", output=reference, progress=False, **args)
    expected = reference.read_bytes()
    n_expected = expected.count(b"\n")
    assert n_expected >= 12  # of 20 attempts (see above: a garbage answer mixing scripts is a counted skip)

    script = tmp_path / "gen.py"
    script.write_text(KILL_SCRIPT)
    out = tmp_path / "killed.jsonl"
    run_args = {**args, "output": str(out)}
    kills = 0
    for target in (3, 11):  # kill early, then again half-way through the resumed run
        rc = _run_and_kill(script, run_args, out, target)
        kills += rc == -signal.SIGKILL
        lines = out.read_bytes().count(b"\n")
        assert target <= lines < n_expected
    assert kills == 2, "the generation finished before it could be killed; the test did not test resuming"
    # Simulate a write torn by a kill: half a record at the end of the output and of the progress file.
    with open(out, "ab") as fh:
        fh.write(b'{"id": "synth-0-9-rrpo-1", "video": "/x.mp4", "ques')
    with open(out.with_name("killed.jsonl.progress.jsonl"), "ab") as fh:
        fh.write(b'{"id": "synth-0-9", "bat')
    run_generation(generator="rrpo", output=out, progress=False, **args)  # the resume to the end: in-process

    got = out.read_bytes()
    assert got == expected  # same records, same order, no duplicate, no torn line
    ids = [json.loads(line)["id"] for line in got.splitlines()]
    assert len(ids) == len(set(ids))
    report = json.loads(out.with_name("killed.jsonl.report.json").read_text())
    assert report["complete"] and report["counts"]["pairs"] == n_expected == report["records_in_output"]
    # A further re-run has nothing to do.
    again = run_generation(generator="rrpo", output=out, progress=False, **args)
    assert again["throughput"]["items"] == 0 and out.read_bytes() == expected
    assert again["throughput"]["model_load_seconds"] == 0.0  # nothing left to do: the model is not even loaded


# --------------------------------------------------------------------------- scripted backend
class ScriptedLM:
    """The ``VideoLM`` generation interface, answering from a function of (prompt, frames)."""

    family, name_or_path, num_frames = "scripted", "scripted-model", 4

    def __init__(self, respond, respond_text=None):
        self.respond, self.respond_text = respond, respond_text
        self.seen: list[tuple[str, np.ndarray]] = []
        self.batch_sizes: list[int] = []

    def generate(self, videos, questions, *, max_new_tokens=64, do_sample=False, temperature=1.0, top_p=1.0,
                 seed=None):
        self.batch_sizes.append(len(questions))
        self.seen += list(zip(questions, videos))
        return [self.respond(q) for q in questions]

    def generate_text(self, conversations, *, max_new_tokens=64, do_sample=False, temperature=1.0, top_p=1.0,
                      seed=None):
        return [self.respond_text(c) for c in conversations]


LONG_GT = "the red circle moves from the left side to the right side of the frame"
LONG_BAD = "the blue square stays still in the middle of the frame for the whole video"
LONG_GT2 = "a green triangle appears first and then a yellow circle appears below it"
LONG_BAD2 = "nothing happens at all because the screen stays black during the entire clip"


@pytest.fixture()
def qa_manifest(synthetic_samples, tmp_path):
    v = [s.video for s in synthetic_samples]
    rows = [
        {"id": "mcq-wrong", "video": v[0], "question": "Where does it go?", "options": ["up", "down", "left"], "answer": "up"},
        {"id": "mcq-right", "video": v[1], "question": "Which colour?", "options": ["red", "blue"], "answer": "blue"},
        {"id": "mcq-garbage", "video": v[2], "question": "How many?", "options": ["1", "2"], "answer_index": 0},
        {"id": "yes-no", "video": v[3], "question": "Does it move?", "answer": "yes"},
        {"id": "long", "video": v[4], "question": "Describe the motion.", "answer": LONG_GT},
        {"id": "long-badtags", "video": v[5], "question": "What happens?", "answer": LONG_GT2},
        {"id": "missing-video", "video": "/nonexistent/clip.mp4", "question": "Where?", "answer": "left"},
    ]
    path = tmp_path / "qa.jsonl"
    write_jsonl(path, rows)
    return path


ANSWERS = {"Where does it go?": "(C) left", "Which colour?": "Blue.", "How many?": "I cannot tell from this.",
           "Does it move?": "No, it does not.", "Describe the motion.": LONG_BAD, "What happens?": LONG_BAD2}


def scripted_answer(prompt: str) -> str:
    return next(a for q, a in ANSWERS.items() if q in prompt)


def scripted_tagger(conversation: list[dict]) -> str:
    last = conversation[-1]["content"]
    if len(conversation) == 1:
        return "Sentence 1 has a red circle that moves; Sentence 2 has a blue square that stays still."
    if LONG_GT in last and "Sentence 1:" in last:
        return "the <MASK>red circle moves</MASK> from the left side to the right side of the frame"
    if LONG_BAD in last:
        return "Sentence 2: the <MASK>blue square stays still</MASK> in the middle of the frame for the whole video"
    return "a <MASK>purple</MASK> triangle appears"  # changes the text: must fall back to the word diff


def test_rrpo_scripted_pairs_skips_and_tagging(qa_manifest, tmp_path):
    lm = ScriptedLM(scripted_answer, scripted_tagger)
    out = tmp_path / "pairs.jsonl"
    report = run_generation(generator="rrpo", model=lm, inputs=qa_manifest, output=out, batch_size=3, seed=5,
                            progress=False, options={"tagger_model": "policy"})
    records = {r["id"]: r for r in read_jsonl(out)}
    assert list(records) == ["mcq-wrong-rrpo-0", "yes-no-rrpo-0", "long-rrpo-0", "long-badtags-rrpo-0"]
    r = records["mcq-wrong-rrpo-0"]
    assert (r["chosen"], r["rejected"]) == ("(A) up", "(C) left")
    # the option text is the phrase, never the letter (tag_rule: figure, as data.png bolds its MCQ example)
    assert (r["chosen_tagged"], r["rejected_tagged"]) == ("(A) <MASK>up</MASK>", "(C) <MASK>left</MASK>")
    assert r["meta"]["judge"] == {"kind": "mcq", "method": "letter", "predicted": 2, "score": 0.0}
    r = records["yes-no-rrpo-0"]
    # the figure rule keeps punctuation out of a phrase
    assert (r["chosen_tagged"], r["rejected_tagged"]) == ("<MASK>yes</MASK>", "<MASK>No, it does not</MASK>.")
    r = records["long-rrpo-0"]
    assert r["meta"]["tagging"] == "model"
    assert r["chosen_tagged"] == "the <MASK>red circle moves</MASK> from the left side to the right side of the frame"
    assert r["rejected_tagged"] == "the <MASK>blue square stays still</MASK> in the middle of the frame for the whole video"
    r = records["long-badtags-rrpo-0"]
    assert r["meta"]["tagging"] == "rule_fallback" and "did not strip" in r["meta"]["tagging_note"]
    check_tagged_pairs(list(records.values()))

    c = report["counts"]
    assert c["by_reason"] == {"correct_answer": 1, "unmapped_answer": 1, "missing_video": 1, "written": 4}
    assert c["tagging"] == {"model": 1, "rule": 2, "rule_fallback": 1}
    assert (c["pairs"], c["skipped"], c["failed"]) == (4, 3, 0)  # a video not there is skipped, not failed
    assert report["failed"] == []
    missing = [s for s in report["skipped"] if s["reason"] == "missing_video"]
    assert [s["item"] for s in missing] == ["missing-video"] and "/nonexistent/clip.mp4" in missing[0]["detail"]
    assert {(s["id"], s["reason"]) for s in report["skipped"] if s["reason"] != "missing_video"} == {
        ("mcq-right-rrpo-0", "correct_answer"), ("mcq-garbage-rrpo-0", "unmapped_answer")}
    # Batches of at most 3 sequences; the model saw the perturbed frames drawn from (seed, item, k).
    assert max(lm.batch_sizes) <= 3
    prompt, frames = next((q, f) for q, f in lm.seen if "Where does it go?" in q)
    original = read_frames(json.loads(qa_manifest.read_text().splitlines()[0])["video"], 4).frames
    expected, _ = apply_perturbations(original, DEFAULT_PERTURBATIONS, np.random.default_rng([5, stable_int("mcq-wrong"), 0]))
    assert np.array_equal(frames, expected) and not np.array_equal(frames, original)


@pytest.mark.parametrize("fmt, chosen, rejected", [("option", "up", "left"), ("letter", "(A)", "(C)"),
                                                   ("raw", "(A) up", "(C) left")])
def test_rrpo_answer_formats(qa_manifest, tmp_path, fmt, chosen, rejected):
    out = tmp_path / "pairs.jsonl"
    run_generation(generator="rrpo", model=ScriptedLM(scripted_answer, scripted_tagger), inputs=qa_manifest,
                   output=out, limit=3, progress=False, options={"answer_format": fmt, "keep_unmapped": True,
                                                                 # letters alone are a phrase only by difflib
                                                                 "tag_rule": "difflib" if fmt == "letter" else "figure"})
    records = {r["id"]: r for r in read_jsonl(out)}
    assert (records["mcq-wrong-rrpo-0"]["chosen"], records["mcq-wrong-rrpo-0"]["rejected"]) == (chosen, rejected)
    # keep_unmapped keeps the answer that picks no option, verbatim
    assert records["mcq-garbage-rrpo-0"]["rejected"] == "I cannot tell from this."
    check_tagged_pairs(list(records.values()))


def test_generation_error_costs_only_its_item_and_config_change_is_refused(qa_manifest, tmp_path):
    def respond(prompt):
        if "Does it move?" in prompt:
            raise RuntimeError("CUDA out of memory (simulated)")
        return scripted_answer(prompt)

    lm = ScriptedLM(respond, scripted_tagger)
    out = tmp_path / "pairs.jsonl"
    report = run_generation(generator="rrpo", model=lm, inputs=qa_manifest, output=out, batch_size=4,
                            progress=False, options={"tagging": "rule"})
    assert [(f["item"], f["reason"]) for f in report["failed"]] == [("yes-no", "generation_error")]
    assert ("missing-video", "missing_video") in {(s["item"], s["reason"]) for s in report["skipped"]}
    assert "CUDA out of memory" in report["failed"][0]["detail"]
    assert report["counts"]["pairs"] == 3  # the other items of the failed batch were retried one by one
    with pytest.raises(ValueError, match="different configuration.*seed"):
        run_generation(generator="rrpo", model=lm, inputs=qa_manifest, output=out, batch_size=4, seed=1,
                       progress=False, options={"tagging": "rule"})
    with pytest.raises(ValueError, match="unknown option"):
        run_generation(generator="rrpo", model=lm, inputs=qa_manifest, output=out, options={"answer_fromat": "x"})


def test_rrpo_needs_ground_truth(synthetic_samples, tmp_path):
    from savi_plugin.data import DataError

    manifest = tmp_path / "videos.jsonl"
    manifest.write_text(json.dumps({"video": synthetic_samples[0].video}) + "\n")
    with pytest.raises(DataError) as err:
        run_generation(generator="rrpo", model=ScriptedLM(scripted_answer), inputs=manifest,
                       output=tmp_path / "o.jsonl")
    assert (err.value.line, err.value.field) == (1, "question")


@pytest.mark.parametrize("family", ["llava_onevision", "qwen2_vl"])
def test_rrpo_model_based_tagging_runs_on_the_real_backend(request, family, synthetic_samples, tmp_path):
    """Long open-ended answers go through the two-turn tagging prompt with the same (text-only) backend; a
    random model's tags never check out, so every pair falls back to the word diff, and says why."""
    model = request.getfixturevalue(f"tiny_{family}")
    manifest = tmp_path / "open.jsonl"
    manifest.write_text("".join(json.dumps({"id": f"open{i}", "video": s.video, "question": "Describe the video.",
                                            "answer": LONG_GT}) + "\n" for i, s in enumerate(synthetic_samples[:2])))
    out = tmp_path / "pairs.jsonl"
    report = run_generation(generator="rrpo", model=model, inputs=manifest, output=out, num_frames=4, batch_size=2,
                            progress=False, options={"tagging": "model", "tagger_model": "policy", "max_new_tokens": 8,
                                                     "tag_max_new_tokens": 8})
    records = read_jsonl(out)
    assert len(records) == report["counts"]["pairs"] == 2
    assert report["counts"]["tagging"] == {"rule_fallback": 2}
    assert all(r["meta"]["tagging_note"] for r in records)
    check_tagged_pairs(records)

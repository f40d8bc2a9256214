"""VideoSAVi generator: exact pairs and drops with a scripted backend, end to end with tiny real models,
and the optional video-text similarity scorer (a tiny random SigLIP built locally)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from savi_plugin.data import validate_record
from savi_plugin.generators import run_generation
from savi_plugin.video.decode import read_frames
from tests.builders import read_jsonl, write_jsonl

# Marker prompts (a user override of every template) so the scripted backend knows each stage.
PROMPTS = {
    "version": "test-prompts",
    "spatial_questions": "[SPATIAL x{num_questions}]",
    "temporal_questions": "[TEMPORAL x{num_questions}]",
    "answer": "[ANSWER] {question}",
    "critique": "[CRITIQUE] {question} || {answer}",
    "revision": "[REVISE] {question} || {answer} || {critique}",
}

QUESTIONS = {
    "A": ("1. Where is the red circle?\n2. Where is the red circle?\n3. What colour is the square on the left?",
          "Q1: What moves first?\nQ2: Where is the red circle?"),
    "B": ("I cannot see any video.", ""),
    "C": ('["How many shapes are visible?", "Which shape is largest here?"]',
          "- In which direction does the triangle move?"),
}
ANSWERS = {
    "Where is the red circle?": "The red circle is at the top left.",
    "What colour is the square on the left?": "It is blue.",
    "What moves first?": "The circle moves first, then the square.",
    "How many shapes are visible?": "",
    "Which shape is largest here?": "The square is largest.",
    "In which direction does the triangle move?": "It moves up.",
}
CRITIQUES = {
    "Where is the red circle?": "Spatial error: the circle is at the bottom right, not the top left.",
    "What colour is the square on the left?": "NO ERRORS",
    "What moves first?": "Temporal error: the order is reversed.",
    "Which shape is largest here?": "Spatial error: the triangle is the largest shape.",
    "In which direction does the triangle move?": "\x18\x05 #",
}
REVISIONS = {
    "Where is the red circle?": "Revised answer: The red circle is at the bottom right.",
    "What moves first?": "The circle moves first, then the square!",
    "Which shape is largest here?": "The triangle is the largest shape.",
}


def frames_key(frames: np.ndarray) -> str:
    return hashlib.sha256(frames.tobytes()).hexdigest()


class ScriptedLM:
    """The ``VideoLM.generate`` interface, answering from fixed strings chosen by stage and video."""

    family, name_or_path, num_frames = "scripted", "scripted-model", 4

    def __init__(self, video_ids: dict[str, str]):
        self.video_ids = video_ids  # frames hash -> video id
        self.prompts: list[str] = []

    def generate(self, videos, questions, *, max_new_tokens=64, do_sample=False, temperature=1.0, top_p=1.0,
                 seed=None):
        self.prompts += questions
        return [self.respond(q, self.video_ids[frames_key(v)]) for q, v in zip(questions, videos)]

    @staticmethod
    def respond(prompt: str, video: str) -> str:
        if prompt.startswith("[SPATIAL x2]"):
            return QUESTIONS[video][0]
        if prompt.startswith("[TEMPORAL x2]"):
            return QUESTIONS[video][1]
        question = prompt.split("] ", 1)[1].split(" || ")[0]
        stage = prompt.split("]")[0] + "]"
        return {"[ANSWER]": ANSWERS, "[CRITIQUE]": CRITIQUES, "[REVISE]": REVISIONS}[stage][question]


@pytest.fixture()
def three_videos(synthetic_samples, tmp_path):
    rows = [{"id": vid, "video": s.video} for vid, s in zip("ABC", synthetic_samples)]
    path = tmp_path / "videos.jsonl"
    write_jsonl(path, rows)
    keys = {frames_key(read_frames(s.video, 4).frames): vid for vid, s in zip("ABC", synthetic_samples)}
    return path, keys


def run(three_videos, tmp_path, name="pairs.jsonl", **options):
    path, keys = three_videos
    lm = ScriptedLM(keys)
    out = tmp_path / name
    report = run_generation(generator="videosavi", model=lm, inputs=path, output=out, batch_size=2, seed=0,
                            progress=False, options={"prompts": PROMPTS, "num_questions": 4, **options})
    records = read_jsonl(out) if out.exists() else []
    return report, records, lm


def test_videosavi_scripted_exact_pairs_and_drops(three_videos, tmp_path):
    report, records, lm = run(three_videos, tmp_path)
    assert [(r["id"], r["chosen"], r["rejected"]) for r in records] == [
        ("A-videosavi-0", "The red circle is at the bottom right.", "The red circle is at the top left."),
        ("C-videosavi-1", "The triangle is the largest shape.", "The square is largest."),
    ]
    first = records[0]
    assert first["question"] == "[ANSWER] Where is the red circle?" and first["source"] == "videosavi"
    assert "chosen_tagged" not in first  # VideoSAVi trains with DPO on untagged pairs by default
    meta = first["meta"]
    assert (meta["question_kind"], meta["prompts_version"], meta["model"], meta["num_frames"], meta["order"]) == \
        ("spatial", "test-prompts", "scripted-model", 4, [0, 0])
    assert meta["critique"] == CRITIQUES["Where is the red circle?"] and meta["edit_distance"] > 0.15
    for n, r in enumerate(records, 1):
        validate_record(r, "pairs.jsonl", n)

    drops = {(s["item"], s["id"], s["reason"]) for s in report["skipped"]}
    assert drops == {("A", "A-videosavi-1", "no_error_found"), ("A", "A-videosavi-2", "revision_too_similar"),
                     ("B", None, "unparseable_questions"), ("C", "C-videosavi-0", "empty_answer"),
                     ("C", "C-videosavi-2", "unparseable_critique")}
    c = report["counts"]
    assert (c["pairs"], c["skipped"], c["failed"], c["items_done"]) == (2, 5, 0, 3)
    # Each stage ran only on what survived the previous one (no critique of an empty answer, ...).
    assert sum(p.startswith("[CRITIQUE]") for p in lm.prompts) == 5
    assert sum(p.startswith("[REVISE]") for p in lm.prompts) == 3
    # Duplicates were dropped across the spatial and temporal lists: A asked 3 distinct questions.
    assert sum(p.startswith("[ANSWER]") for p in lm.prompts) == 6

    # Re-running is a no-op; a lower edit-distance threshold keeps the near-identical revision.
    again, records_again, _ = run(three_videos, tmp_path)
    assert records_again == records and again["throughput"]["items"] == 0
    _, loose, _ = run(three_videos, tmp_path, name="loose.jsonl", min_edit_distance=0.0)
    assert [r["id"] for r in loose] == ["A-videosavi-0", "A-videosavi-2", "C-videosavi-1"]
    _, tagged, _ = run(three_videos, tmp_path, name="tagged.jsonl", tagging="rule")
    assert tagged[0]["chosen_tagged"] == "The red circle is at the <MASK>bottom right</MASK>."


class KeywordScorer:
    """A deterministic stand-in scorer: texts naming the triangle are 'closer' to the video."""

    def score(self, videos, texts):
        assert len(videos) == len(texts) and all(v.ndim == 4 for v in videos)
        return [1.0 if "triangle" in t else 0.5 for t in texts]


def test_videosavi_similarity_filter_and_weight(three_videos, tmp_path):
    report, records, _ = run(three_videos, tmp_path, scorer=KeywordScorer(), scorer_margin=0.1)
    assert [r["id"] for r in records] == ["C-videosavi-1"]
    assert records[0]["meta"]["similarity"] == {"chosen": 1.0, "rejected": 0.5, "gain": 0.5}
    assert ("A-videosavi-0", "low_similarity_gain") in {(s["id"], s["reason"]) for s in report["skipped"]}
    _, weighted, _ = run(three_videos, tmp_path, name="w.jsonl", scorer=KeywordScorer(), scorer_mode="weight")
    # CLIP-adjusted DPO: the weight is the record's top-level field the losses read, not a note in meta
    assert [(r["id"], r["weight"]) for r in weighted] == [("A-videosavi-0", 0.5),
                                                          ("C-videosavi-1", pytest.approx(1.0, abs=1e-4))]
    assert all("weight" not in r["meta"] and validate_record(r).weight == r["weight"] for r in weighted)


@pytest.mark.parametrize("kind, says", [("nowhere", "no such file or folder"), ("file", "is a file, not a model folder"),
                                        ("empty", "is an empty folder, not a model folder")])
def test_a_scorer_path_that_is_no_model_folder_is_refused_before_the_first_item(three_videos, tmp_path, kind, says):
    path = tmp_path / kind
    if kind == "file":
        path.write_text("x")
    elif kind == "empty":
        path.mkdir()
    with pytest.raises(ValueError, match=f"scorer: .*{kind}: {says}; the similarity scorer loads a local"):
        run(three_videos, tmp_path, scorer=str(path))
    assert not (tmp_path / "pairs.jsonl").exists()


def build_tiny_siglip(path: Path) -> Path:
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    from savi_plugin.models.tiny import build_tokenizer

    import torch

    torch.manual_seed(0)
    config = SiglipConfig(
        text_config=dict(vocab_size=600, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=None,
                         eos_token_id=None),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8))
    SiglipModel(config).save_pretrained(path)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    build_tokenizer().save_pretrained(path)
    return path


def test_videosavi_with_a_local_siglip_scorer(three_videos, tmp_path, synthetic_samples):
    from savi_plugin.generators.similarity import HFVideoTextScorer

    siglip = build_tiny_siglip(tmp_path / "siglip")
    scorer = HFVideoTextScorer(siglip, num_frames=4)
    video = read_frames(synthetic_samples[0].video, 4).frames
    s = scorer.score([video, video], ["the red circle moves left", "the blue square"])
    assert len(s) == 2 and all(-1.0 <= x <= 1.0 for x in s) and s[0] != s[1]
    assert scorer.score([video], ["the red circle moves left"]) == [s[0]]  # deterministic
    _, records, _ = run(three_videos, tmp_path, scorer=str(siglip), scorer_mode="weight")
    assert [r["id"] for r in records] == ["A-videosavi-0", "C-videosavi-1"]
    for r in records:
        sim = r["meta"]["similarity"]
        assert sim["gain"] == pytest.approx(sim["chosen"] - sim["rejected"], abs=1e-5) and 0 < r["weight"] < 1


@pytest.mark.parametrize("family, source", [("llava_onevision", "generate"), ("qwen2_vl", "input"),
                                            ("internvl", "input")])
def test_videosavi_end_to_end_with_tiny_model(request, family, source, synthetic_samples, tmp_path):
    model = request.getfixturevalue(f"tiny_{family}")
    out = tmp_path / "pairs.jsonl"
    inputs = Path(synthetic_samples[0].video).parent / "samples.jsonl"
    report = run_generation(generator="videosavi", model=model, inputs=inputs, output=out, num_frames=4,
                            batch_size=3, limit=6, seed=0, progress=False,
                            options={"num_questions": 2, "max_new_tokens": 12, "question_source": source})
    c = report["counts"]
    assert c["items_done"] == 6 and report["complete"] and c["failed"] == 0
    reasons = set(c["by_reason"])
    assert reasons <= {"written", "unparseable_questions", "empty_answer", "no_error_found", "unparseable_critique",
                       "empty_revision", "revision_too_similar", "invalid_record"}
    lines = out.read_text().splitlines() if out.exists() else []
    assert len(lines) == c["pairs"] == report["records_in_output"]
    for n, line in enumerate(lines, 1):
        rec = validate_record(json.loads(line), str(out), n)
        assert rec.source == "videosavi" and rec.meta["backend"] == family
    if source == "generate":
        # A random model writes no parseable question list: every video is counted and skipped, with the
        # model's output in the reason.
        assert c["by_reason"].get("unparseable_questions", 0) + c["pairs"] + c["skipped"] >= 6
        assert all(s["detail"] for s in report["skipped"])
    else:
        # One question per input line, carried through answer, critique and revision.
        assert c["pairs"] + c["skipped"] == 6


def test_readme_command_over_a_folder_of_videos(tiny_llava_onevision, synthetic_samples, tmp_path, monkeypatch):
    """README's `savi generate --generator videosavi --model PATH --input videos/ --output pairs.jsonl
    --num-frames 32`, as written from a working folder with a `videos/` folder (the tiny model for PATH; short
    answers and one question per video to keep it fast): every video is read and counted, the report is complete."""
    import shutil

    from savi_plugin.cli import main

    monkeypatch.chdir(tmp_path)
    Path("videos").mkdir()
    for s in synthetic_samples[:2]:
        shutil.copy(s.video, "videos")
    assert main(["generate", "--generator", "videosavi", "--model", str(tiny_llava_onevision), "--input", "videos/",
                 "--output", "pairs.jsonl", "--num-frames", "32", "--no-progress", "-o", "num_questions=1",
                 "-o", "max_new_tokens=8"]) == 0
    report = json.loads(Path("pairs.jsonl.report.json").read_text())
    assert report["complete"] and report["counts"]["items_done"] == 2 and report["counts"]["failed"] == 0
    assert report["config"]["num_frames"] == 32

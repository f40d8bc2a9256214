"""VidHalluc scoring against the official code's recorded outputs (tests/fixtures/vidhalluc_official.json:
Vid-Halluc/VidHalluc 936fb3c ``eval/evaluation/eval_bqa.py`` ``compute``, ``eval_mcq.py`` ``match_model_answer`` +
``compute_MCQ``, ``eval_tsh.py`` ``model_answer_to_correct_answer`` and ``eval_sth.py`` ``main`` (its SimCSE
description score stubbed; MCC and classification score do not use it), run on hand-written predictions), and the
task's records and items."""

import json

import pytest

from savi_plugin.eval import vidhalluc as vl
from savi_plugin.eval.data import EvalDataError
from savi_plugin.eval.results import LmmsEvalRun
from tests.builders import REPO_ROOT

OFFICIAL = json.loads((REPO_ROOT / "tests" / "fixtures" / "vidhalluc_official.json").read_text())


def test_bqa_equals_eval_bqa():
    bqa = OFFICIAL["bqa"]
    per_question = [[vl.bqa_hit(gt_q["a"][clip], pred_q["a"][clip]) for clip in gt_q["a"]]
                    for key in bqa["gt"] for gt_q, pred_q in zip(bqa["gt"][key], bqa["pred"][key])]
    assert [int(all(q)) for q in per_question] == bqa["per_question"]
    assert vl.bqa_question_accuracy(per_question) == bqa["correct"] / bqa["total"]


def test_mcq_equals_eval_mcq():
    mcq = OFFICIAL["mcq"]
    items = [item for clips in mcq["items"].values() for item in clips.values()]
    letters = [sorted(vl.mcq_letters(i["Model Answer"], list(i["Choices"].items()))) for i in items]
    hits = [vl.mcq_hit(i["Correct Answer"], i["Model Answer"], list(i["Choices"].items())) for i in items]
    assert [int(h) for h in hits] == mcq["per_item"] and sum(hits) == mcq["correct"] == 4
    # the official letter regex alone (before its choice-text fallback)
    assert [sorted(vl.mcq_letters(i["Model Answer"], [])) for i in items] == mcq["letters"]
    assert letters[6] == ["A"]  # "running in the park": no letter, the choice text A


def test_tsh_equals_eval_tsh():
    tsh = OFFICIAL["tsh"]
    ours = [vl.tsh_order(r) for r in tsh["responses"]]
    assert [o if o is not None else "None" for o in ours] == tsh["official"]


def test_sth_equals_eval_sth():
    sth = OFFICIAL["sth"]
    assert [vl.sth_reading(r)[0] for r in sth["responses"]] == sth["read"]
    truth = [t == "Yes" for t in sth["truth"]]
    figures = vl.sth_classification(truth, [vl.sth_says_change(r) for r in sth["responses"]])
    assert figures["mcc"] == pytest.approx(sth["mcc"], abs=1e-12)
    assert figures["classification_score"] == pytest.approx(sth["classification_score"], abs=1e-12)
    one_label = vl.sth_classification([t == "Yes" for t in sth["all_no"]["truth"]], [False] * 4)
    assert one_label == {"mcc": sth["all_no"]["mcc"], "classification_score": sth["all_no"]["classification_score"]}


def _doc(part, answer, group="0", size=1, **extra):
    return {"part": part, "group": group, "group_size": size, "video": "v", "question": "q", "answer": answer,
            "choice_keys": [], "choice_texts": [], "savi_video": "/nonexistent/v.mp4", "savi_video_found": True,
            **extra}


def test_bqa_question_needs_every_clip_and_is_the_paired_item():
    replies = [("Yes", "Yes", "No"), ("No", "No", "No"), ("Yes", "I think so", "No")]
    samples, doc_id = [], 0
    for q, (answer, first, second) in enumerate(replies):
        for clip_answer, reply in ((answer, first), ("No", second)):
            out = vl.process_results(_doc("ach_binaryqa", clip_answer, group=f"g/{q}", size=2), [reply])
            samples.append(dict(out, doc_id=doc_id))
            doc_id += 1
    items = [s["accuracy"] for s in samples]
    assert vl.aggregate_accuracy(items) == pytest.approx(200 / 3)
    assert sum(s["unparsed"] for s in samples) == 1  # "I think so" names neither YES nor NO
    run = LmmsEvalRun({"results": {}}, {"t": samples})
    assert run.item_scores("t") == {"t/ach_binaryqa/g/0": 100.0, "t/ach_binaryqa/g/1": 100.0,
                                    "t/ach_binaryqa/g/2": 0.0}
    # a question cut by --limit is left out of the accuracy and counted
    assert vl.aggregate_accuracy(items[:5]) == 100.0 and vl.aggregate_incomplete(items[:5]) == 1


def test_sth_records_feed_the_mcc():
    docs = [_doc("sth", a, group=str(i)) for i, a in enumerate(["Yes", "No", "Yes", "No"])]
    replies = ["Scene change: Yes, Locations: from a to b.", "Scene change: No, Locations: None",
               "Scene change: No, Locations: None", "gibberish"]
    outs = [vl.process_results(d, [r]) for d, r in zip(docs, replies)]
    items = [o["mcc"] for o in outs]
    assert vl.aggregate_mcc(items) == pytest.approx(vl.matthews([1, 0, 1, 0], [1, 0, 0, 0]))
    # the MCC reads "gibberish" as no change (right here); the item score needs a yes or no, so it is wrong
    assert vl.aggregate_accuracy(items) == 50.0 and sum(o["unparsed"] for o in outs) == 1


def test_prompts_are_the_official_ones():
    assert vl.doc_to_text(_doc("ach_binaryqa", "Yes", question="Is the man running?")) == (
        "Is the man running? Only answer with a single word 'Yes' or 'No'.")
    mcq = _doc("ach_mcq", "A", question="What happens?", choice_keys=["A", "B"], choice_texts=["run", "swim"])
    assert vl.doc_to_text(mcq) == ("What happens? Please select the correct answer (one or more options), only return "
                                   "your answer(s). (e.g., ABCD)\nChoices:\nA. run\nB. swim\n")
    assert vl.doc_to_text(_doc("tsh", "AB", question="Action A: x. ")).startswith("Action A: x. Sort these two")
    assert vl.doc_to_text(_doc("sth", "No")) == vl.STH_PROMPT


def test_bad_records_are_one_line_errors(tmp_path):
    with pytest.raises(EvalDataError, match=r"ach_binaryqa.json:k\[0\]:a.c1: expected Yes or No"):
        vl.flatten({"k": [{"q": "q", "a": {"c1": "Maybe"}}]}, tmp_path / "ach_binaryqa.json")
    with pytest.raises(EvalDataError, match=r"ach_mcq.json:k.c1:Correct Answer: missing"):
        vl.flatten({"k": {"c1": {"Question": "q", "Choices": {"A": "x", "B": "y"}}}}, tmp_path / "ach_mcq.json")
    with pytest.raises(EvalDataError, match=r"sth.json:v1:Scene change: expected Yes or No"):
        vl.flatten({"v1": {"Scene change": "Perhaps", "Locations": "None"}}, tmp_path / "sth.json")
    with pytest.raises(EvalDataError, match="unknown VidHalluc part"):
        vl.flatten({}, tmp_path / "other.json")

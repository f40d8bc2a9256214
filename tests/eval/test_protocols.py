"""Protocols by name: each variant's prompt equals its reference's, token for token.

lmms-eval variants are compared with lmms-eval 0.7.3's own ``doc_to_text`` functions (imported from the installed
package) on the same documents, with the ``lmms_eval_specific_kwargs`` of lmms-eval's own YAMLs; the official
MVBench and RRPO variants with the prompt strings those references build (fixture below)."""

from __future__ import annotations

import re
from pathlib import Path

import lmms_eval
import pytest
from lmms_eval.tasks.egoschema.utils import egoschema_doc_to_text
from lmms_eval.tasks.mvbench.utils import (
    mvbench_doc_to_text as lmms_mvbench_doc_to_text,
)
from lmms_eval.tasks.perceptiontest.val.utils import perceptiontest_val_doc_to_text
from lmms_eval.utils import load_yaml_config

from savi_plugin.eval import task as savi_task
from savi_plugin.eval.fixtures import build_fixture
from savi_plugin.eval.protocols import (
    PROTOCOLS,
    grade_official_mvbench,
    grade_rrpo_mvbench,
)
from savi_plugin.eval.benchmarks import get as get_benchmark
from savi_plugin.eval.registration import tasks_path
from savi_plugin.eval.task import SaviVideoTask
from tests.builders import FIXTURES

LMMS_TASKS = Path(lmms_eval.__file__).parent / "tasks"

MVBENCH_DOCS = [
    {"video": "a.mp4", "question": "What happened after the person took the food?",
     "candidates": ["Ate the medicine.", "Tidied up the blanket.", "Put down the cup/glass/bottle.", "Took the box."],
     "answer": "Took the box."},
    {"video": "b.mp4", "question": " How many times did the object move? ", "candidates": ["3", "2", "5 "],
     "answer": "2"},
    {"video": "c.mp4", "question": "Which one is (A)?", "candidates": ["A. weird label", "(B) another"],
     "answer": "(B) another"},
]
EGOSCHEMA_DOCS = [
    {"question_idx": "q1", "video_idx": "v1", "question": "What is c doing overall?",
     "option": ["A. c cooks", "B. c cleans the kitchen", "C. c reads", "D. c sleeps", "E. c paints a wall"],
     "answer": "1"},
    {"question_idx": "q2", "video_idx": "v2", "question": " Summarise the video.  ",
     "option": ["A.  spaced  ", "B. b", "C. c", "D. d", "E. e"], "answer": "4"},
]
PERCEPTION_DOCS = [
    {"video_name": "v1", "question_id": "1", "question": "What is the person doing?",
     "options": ["cutting", "washing", "A. labelled"], "answer_id": 2, "area": "x", "reasoning": "y", "tag": ["z"]},
    {"video_name": "v2", "question_id": "2", "question": "How many? ", "options": [" 1", "2 ", "3"], "answer_id": 0,
     "area": "x", "reasoning": "y", "tag": ["z"]},
]


def _lmms_kwargs(yaml_path: Path) -> dict:
    """The ``default`` ``lmms_eval_specific_kwargs`` lmms-eval's own YAML gives its doc_to_text."""
    return load_yaml_config(str(yaml_path), mode="simple")["lmms_eval_specific_kwargs"]["default"]


def _ours(benchmark: str, doc: dict, name: str) -> str:
    return savi_task.doc_to_text({**doc, "savi_benchmark": benchmark, "savi_protocol": name}, {})


@pytest.mark.parametrize("doc", MVBENCH_DOCS)
def test_mvbench_lmms_prompt_equals_lmms_eval(doc):
    kwargs = _lmms_kwargs(LMMS_TASKS / "mvbench/mvbench_action_sequence.yaml")
    assert _ours("mvbench", doc, "lmms") == lmms_mvbench_doc_to_text(doc, kwargs)


@pytest.mark.parametrize("doc", EGOSCHEMA_DOCS)
def test_egoschema_lmms_prompt_equals_lmms_eval(doc):
    kwargs = _lmms_kwargs(LMMS_TASKS / "egoschema/egoschema_subset.yaml")
    assert _ours("egoschema", doc, "lmms") == egoschema_doc_to_text(doc, kwargs)


@pytest.mark.parametrize("doc", PERCEPTION_DOCS)
def test_perceptiontest_lmms_prompt_equals_lmms_eval(doc):
    kwargs = _lmms_kwargs(LMMS_TASKS / "perceptiontest/val/_default_template_yaml")
    assert _ours("perceptiontest", doc, "lmms") == perceptiontest_val_doc_to_text(doc, kwargs)


@pytest.fixture
def reference_mvbench_prompts() -> dict[str, str]:
    """The prompts the two MVBench references build for ``MVBENCH_DOCS[0]``.

    ``official``: OpenGVLab/Ask-Anything ``video_chat2/mvbench.ipynb`` (commit 4631cd6): ``qa_template`` gives
    ``"Question: {question}\\nOptions:\\n(A) ...\\n(B) ..."`` (right-stripped); ``infer_mvbench(...,
    system=<the system prompt>, question_prompt="\\nOnly give the best option.", answer_prompt="Best option:(",
    system_llm=True)`` sends ``system + question + question_prompt`` as the user turn; the notebook's printed
    example output shows exactly this text. ``rrpo``: pritamqu/RRPO ``eval/mvbench/mvbench.py`` (commit 1bd88bb),
    the same ``qa_template`` and, for ``llavavideo_qwen_7b``, the question alone (no instruction).
    """
    question = ("Question: What happened after the person took the food?\nOptions:\n(A) Ate the medicine.\n"
                "(B) Tidied up the blanket.\n(C) Put down the cup/glass/bottle.\n(D) Took the box.")
    system = ("Carefully watch the video and pay attention to the cause and sequence of events, the detail and "
              "movement of objects, and the action and pose of persons. Based on your observations, select the best "
              "option that accurately addresses the question.\n")
    return {"official": system + question + "\nOnly give the best option.", "rrpo": question}


@pytest.mark.parametrize("name", ["official", "rrpo"])
def test_mvbench_reference_prompts(name, reference_mvbench_prompts):
    assert _ours("mvbench", MVBENCH_DOCS[0], name) == reference_mvbench_prompts[name]


def test_protocol_settings_per_paper():
    mv = PROTOCOLS["mvbench"]
    assert (mv["official"].num_frames, mv["official"].max_new_tokens, mv["official"].answer_prefix) == (16, 100, "Best option:(")
    assert (mv["rrpo"].num_frames, mv["rrpo"].max_new_tokens) == (64, 512)
    assert all(PROTOCOLS[b]["lmms"].num_frames == 32 and PROTOCOLS[b]["lmms"].frames == "lmms" for b in PROTOCOLS)
    # lmms-eval's perceptiontest_val_mc sets no answer length (the model's default applies); the others 16
    assert [PROTOCOLS[b]["lmms"].max_new_tokens for b in PROTOCOLS] == [16, 16, None]
    with pytest.raises(ValueError, match="unknown protocol 'rrpo' for 'egoschema'"):
        get_benchmark("egoschema").protocol("rrpo")


@pytest.mark.parametrize("folder, protocol_name, tokens", [
    ("mvbench/lmms", "lmms", 16), ("mvbench/official", "official", 100), ("mvbench/rrpo", "rrpo", 512)])
def test_variant_yamls_name_their_protocol(folder, protocol_name, tokens):
    files = sorted((Path(tasks_path()) / folder).glob("savi_mvbench_*_*.yaml"))
    assert len(files) == 20
    config = load_yaml_config(str(files[0]), mode="full")
    assert config["metadata"]["protocol"] == protocol_name
    assert config["generation_kwargs"]["max_new_tokens"] == tokens
    extra = {"accuracy_all"} if protocol_name == "lmms" else set()  # beside lmms-eval's answered-only accuracy
    assert {m["metric"] for m in config["metric_list"]} == {"accuracy", "unparsed", "missing_video", "bad_video",
                                                            "control_token_in_text"} | extra


def test_perceptiontest_lmms_sets_no_answer_length_as_lmms_eval():
    from lmms_eval.tasks.perceptiontest import val as lmms_val

    ours = load_yaml_config(f"{tasks_path()}/perceptiontest/savi_perceptiontest_lmms.yaml", mode="full")
    theirs = load_yaml_config(str(Path(lmms_val.__path__[0]) / "perceptiontest_mc.yaml"), mode="full")
    assert "generation_kwargs" not in theirs and "generation_kwargs" not in ours


def test_loaded_variant_task_builds_the_lmms_eval_prompt(monkeypatch, tmp_path):
    build_fixture(tmp_path, "mvbench", 2, subtasks=("object_shuffle",))
    monkeypatch.setenv("SAVI_DATA_ROOT", str(tmp_path))
    config = load_yaml_config(f"{tasks_path()}/mvbench/lmms/savi_mvbench_lmms_object_shuffle.yaml", mode="full")
    task = SaviVideoTask(config=config)
    kwargs = _lmms_kwargs(LMMS_TASKS / "mvbench/mvbench_object_shuffle.yaml")
    for doc in task.test_docs():
        assert doc["savi_num_frames"] == 32 and doc["savi_protocol"] == "lmms"
        plain = {k: v for k, v in doc.items() if not k.startswith("savi_")}
        assert task.doc_to_text(doc) == lmms_mvbench_doc_to_text(plain, kwargs)


def test_reference_graders_follow_their_sources():
    opts = ["a", "b", "c", "d"]
    # official check_ans on "(" + first line: an empty reply matches every option (reported as unparsed)
    assert grade_official_mvbench("B) the dog", opts, 1) == (True, True)
    assert grade_official_mvbench("", opts, 2) == (True, False)
    assert grade_official_mvbench("I think B", opts, 1) == (False, False)  # "(i": read as no option (pass 26 N #61)
    # RRPO: the first letter of the reply, any case ("The answer is B" reads as T)
    assert grade_rrpo_mvbench("(B) the dog", opts, 1) == (True, True)
    assert grade_rrpo_mvbench("The answer is B", opts, 1) == (False, False)  # T: no option of four
    assert grade_rrpo_mvbench("", opts, 1) == (False, False)
    assert grade_rrpo_mvbench("green", opts, 1) == (False, False)  # "g": a letter beyond the options
    assert re.match(r"savi", PROTOCOLS["mvbench"]["savi"].name)


def test_lmms_variants_score_like_lmms_eval_on_the_answer_corpus():
    """The _lmms tasks' per-answer score equals lmms-eval's own process_results on the same documents."""
    import json
    import random

    from lmms_eval.tasks.egoschema.utils import egoschema_process_results_generation
    from lmms_eval.tasks.mvbench.utils import mvbench_process_results
    from lmms_eval.tasks.perceptiontest.val.utils import (
        perceptiontest_val_process_results_mc,
    )

    from savi_plugin.eval.data import BENCHMARKS
    from savi_plugin.eval.task import process_mcq

    corpus = json.loads((FIXTURES / "mcq_answer_corpus.json").read_text())
    responses = [row["response"] for row in corpus]
    mv = dict(MVBENCH_DOCS[0], savi_benchmark="mvbench", savi_protocol="lmms")
    pt = dict(PERCEPTION_DOCS[0], savi_benchmark="perceptiontest", savi_protocol="lmms")
    ego = dict(EGOSCHEMA_DOCS[0], savi_benchmark="egoschema", savi_protocol="lmms")
    for response in responses:
        ours = process_mcq(BENCHMARKS["mvbench"], mv, response)["accuracy"]
        assert ours["score"] == 100 * mvbench_process_results(MVBENCH_DOCS[0], [response])["mvbench_accuracy"]["score"]
        assert ours["answered"] == (response != "")
        ours = process_mcq(BENCHMARKS["perceptiontest"], pt, response)["accuracy"]
        theirs = perceptiontest_val_process_results_mc(PERCEPTION_DOCS[0], [response])["accuracy"]
        assert ours["score"] == 100 * theirs["correct"]
        random.seed(1)
        ours = process_mcq(BENCHMARKS["egoschema"], ego, response)["accuracy"]
        random.seed(1)
        theirs = egoschema_process_results_generation(EGOSCHEMA_DOCS[0], [response])["score"]
        assert ours["score"] == 100 * (str(theirs["pred"]) == str(theirs["ground_truth"]))

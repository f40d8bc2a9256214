"""VideoHallucer (Wang et al., arXiv 2406.16338): paired yes/no questions, a pair right only when both answers are.

Each subset's official file (patrick-tssn/VideoHallucer ``videohallucer_datasets/<subset>/<subset>.json``) is a
list of pairs ``{"basic": {video, question, answer}, "hallucination": {video, question, answer}, "type"}``; the
basic question's answer is ``yes``, the hallucinated one's ``no`` (``fact_detect``: both ``no``). The model answers
every question on its own, the question followed by ``"\\nAnswer the question using 'yes' or 'no'."``
(``evaluations/evaluation_utils.py`` ``evaluate``). Here each question is one lmms-eval document, marked with its
pair (``group``), and the pair-level figures are computed from the documents' per-question results:

* :func:`pair_scores`: ``basic_accuracy``, ``halluc_accuracy`` and ``accuracy`` (both right), the official
  ``cal_score``; the overall score is the mean over the five subsets (``evaluations/evaluation.py``; ``fact_detect``
  is reported apart, with its ``fact score`` ``(basic + halluc) / 2``).
* :func:`bias_figures`: the yes/no difference percentages and the false positive ratio of
  ``evaluations/evaluation_bias.py`` (pooled over the five subsets there; per subset here, and in the group the
  difference percentages pooled exactly, see eval_tasks/README.md).

Two rules read a reply (:data:`PROTOCOLS`): ``official``, the official ``cal_score`` (the expected word anywhere in
the reply, ``\\b(yes)\\b``, any case: ``"Yes and no."`` is right for both questions), and ``savi``, our careful
reader :func:`savi_plugin.data.yes_no.parse_yes_no` (a reply naming neither or both is unparsed and wrong).
Checked against the official functions on recorded predictions: ``tests/fixtures/videohallucer_official.json``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from savi_plugin.data.yes_no import yes_no_answer
from savi_plugin.eval import data
from savi_plugin.eval.answers import PromptFormat
from savi_plugin.eval.bad_videos import unusable_counts
from savi_plugin.eval.protocols import Protocol

#: The subsets (official file and folder names); the overall score averages the first five.
SUBSETS = ("object_relation", "temporal", "semantic_detail", "external_factual", "external_nonfactual", "fact_detect")
OVERALL_SUBSETS = SUBSETS[:5]
#: The official prompt suffix (``evaluation_utils.py`` ``evaluate``; RRPO ``eval/videohallucer`` uses the same).
POST_PROMPT = "\nAnswer the question using 'yes' or 'no'."
ROLES = ("basic", "hallucination")


# ------------------------------------------------------------------------------------ answer rules (pure)
def official_hit(answer: str, response: str) -> bool:
    """The official per-question rule (``cal_score``): the expected word occurs in the reply as a word, any case."""
    return re.search(rf"\b{re.escape(answer)}\b", response, re.IGNORECASE) is not None


def careful_hit(answer: str, response: str) -> bool:
    """Our rule: :func:`~savi_plugin.data.yes_no.yes_no_answer` reads the expected answer (unparsed is wrong)."""
    return yes_no_answer(response) == answer.strip().lower()


def _grade_official(response: str, options: list[str], target: int) -> tuple[bool, bool]:
    said = official_hit("yes", response) or official_hit("no", response)
    return official_hit(options[target], response), said


def _grade_careful(response: str, options: list[str], target: int) -> tuple[bool, bool]:
    answer = yes_no_answer(response)
    return answer == options[target], answer is not None


_LAYOUT = PromptFormat(question_label="", options_header="", option_line="")
PROTOCOLS: dict[str, Protocol] = {
    "savi": Protocol("savi", _LAYOUT, POST_PROMPT, None, 16, _grade_careful,
                     "VideoHallucer's prompt; answers read by savi_plugin.data.yes_no (never a guess)"),
    "official": Protocol("official", _LAYOUT, POST_PROMPT, None, 1024, _grade_official,
                         "patrick-tssn/VideoHallucer evaluations/evaluation_utils.py cal_score; 1024 new tokens as "
                         "RRPO's eval/videohallucer/evaluate_llavavideo.py"),
}


# ------------------------------------------------------------------------------------ pair figures (pure)
def pair_scores(hits: Iterable[tuple[bool, bool]]) -> dict[str, float]:
    """``cal_score`` over pairs given as ``(basic right, hallucinated right)``: fractions of pairs with the basic
    question right, the hallucinated one right, and both right (``accuracy``). No pairs: every figure 0."""
    hits = list(hits)
    n = len(hits) or 1
    return {"basic_accuracy": sum(b for b, _ in hits) / n, "halluc_accuracy": sum(h for _, h in hits) / n,
            "accuracy": sum(b and h for b, h in hits) / n}


def bias_figures(pairs: Iterable[tuple[bool, bool]]) -> dict[str, float | None]:
    """``evaluation_bias.py``'s figures over yes/no pairs given as ``(the basic reply says yes, the hallucinated
    reply says no)`` (its two regex tests; the basic answer is ``yes``, the hallucinated one ``no``).

    Its counting, in closed form over the ``P`` pairs with ``Y`` = basic replies saying yes, ``N`` = hallucinated
    replies saying no and ``F`` = pairs whose basic reply says yes but whose hallucinated reply does not say no:
    ``n_yes = Y + F`` (the second term: a false yes charged to the hallucinated question), ``n_no = N + #(no yes,
    says no)``, the false-positive base ``n = (P - Y) + (P - N)``; then ``yes_difference = (n_yes - P) / 2P``,
    ``no_difference = (n_no - P) / 2P``, ``false_positive_ratio = F / n`` (0 when ``n`` is 0) and
    ``hallucination_score = F / Y`` (None when ``Y`` is 0, where the official script divides by zero).
    """
    pairs = list(pairs)
    p = len(pairs)
    says_yes = sum(y for y, _ in pairs)
    says_no = sum(n for _, n in pairs)
    false_yes = sum(y and not n for y, n in pairs)
    no_without_yes = sum(n and not y for y, n in pairs)
    base = (p - says_yes) + (p - says_no)
    return {
        "yes_difference": (says_yes + false_yes - p) / (2 * p) if p else 0.0,
        "no_difference": (says_no + no_without_yes - p) / (2 * p) if p else 0.0,
        "false_positive_ratio": false_yes / base if base else 0.0,
        "hallucination_score": false_yes / says_yes if says_yes else None,
    }


# ------------------------------------------------------------------------------------ data
def _field(pair: Any, role: str, key: str, path: Path, i: int) -> str:
    value = pair.get(role, {}).get(key) if isinstance(pair.get(role), dict) else None
    if not isinstance(value, str) or not value.strip():
        raise data.EvalDataError(path, i, f"{role}.{key}", f"missing or not a string: {value!r}")
    return value


def flatten(raw: Any, path: Path) -> list[dict]:
    """One subset's official file -> two records per pair (basic, then hallucinated), each with ``video``,
    ``question``, ``answer`` (``yes``/``no``), ``role``, ``group`` (the pair's index in the file) and ``type``."""
    if not isinstance(raw, list):
        raise data.EvalDataError(path, None, None, f"expected a JSON list of pairs, got {type(raw).__name__}")
    subset = path.stem
    records = []
    for i, pair in enumerate(raw):
        if not isinstance(pair, dict):
            raise data.EvalDataError(path, i, None, f"expected a pair object, got {type(pair).__name__}")
        for role in ROLES:
            answer = _field(pair, role, "answer", path, i).strip().lower()
            if answer not in ("yes", "no"):
                raise data.EvalDataError(path, i, f"{role}.answer", f"expected yes or no, got {answer!r}")
            records.append({"subset": subset, "group": i, "role": role, "video": _field(pair, role, "video", path, i),
                            "question": _field(pair, role, "question", path, i), "answer": answer,
                            "type": str(pair.get("type", "")),
                            data.SOURCE_KEY: data.source_of(i, question=f"{role}.question", video=f"{role}.video")})
    return records


SPEC = data.BenchmarkSpec(
    name="videohallucer", hub_cache_dir="videohallucer", local_video_dir="",
    fields=("video", "question", "answer", "role", "group", "subset"),
    video_relpaths=lambda doc, subtask=None: [f"{doc['subset']}/videos/{doc['video']}"],
    options=lambda doc: ["yes", "no"],
    target=lambda doc: ["yes", "no"].index(doc["answer"]),
    record_id=lambda doc: f"{doc['subset']}/{doc['group']}/{doc['role']}",
    annotation_file=lambda config: f"{config}/{config}.json",
    flatten=flatten,
)


# ------------------------------------------------------------------------------------ doc functions (YAML)
def _protocol(doc: dict) -> Protocol:
    return PROTOCOLS[doc.get("savi_protocol", "savi")]


def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The official prompt: the question, then ``"\\nAnswer the question using 'yes' or 'no'."``."""
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{doc['question']}{kwargs.get('post_prompt', POST_PROMPT)}"


def doc_to_target(doc: dict) -> str:
    return doc["answer"]


def process_results(doc: dict, results: list[str]) -> dict[str, Any]:
    """Per question: one record shared by every metric (the aggregations pair them by ``group``).

    ``score`` is 0/100 for this question; ``group``/``group_size`` make the pair the item of paired comparisons
    (:meth:`savi_plugin.eval.results.LmmsEvalRun.item_scores`); ``says_yes``/``says_no`` are the protocol's reading
    of the reply (for the bias figures); a missing or undecodable video is wrong and says neither.
    """
    response = results[0] if results else ""
    unusable = unusable_counts(doc)
    found, bad = not unusable["missing_video"], any(unusable.values())
    proto = _protocol(doc)
    correct = parsed = says_yes = says_no = False
    if found and not bad:
        correct, parsed = proto.grade(response, ["yes", "no"], ["yes", "no"].index(doc["answer"]))
        says_yes = proto.grade(response, ["yes", "no"], 0)[0]
        says_no = proto.grade(response, ["yes", "no"], 1)[0]
    item = {"score": 100.0 * correct, "group": f"{doc['subset']}/{doc['group']}", "group_size": 2,
            "role": doc["role"], "answer": doc["answer"], "says_yes": says_yes, "says_no": says_no}
    out = {name: item for name in (FACT_METRICS if doc["subset"] == "fact_detect" else METRICS)}
    out.update(unusable, unparsed=int(not bad and not parsed))
    return out


def complete_pairs(items: list[dict]) -> list[tuple[dict, dict]]:
    """``(basic, hallucinated)`` per pair with both questions scored, in first-seen order (``--limit`` can cut a
    pair in two; such a half pair is left out of every pair figure and counted by :func:`aggregate_incomplete`)."""
    by_pair: dict[str, dict[str, dict]] = {}
    for item in items:
        by_pair.setdefault(item["group"], {})[item["role"]] = item
    return [(p["basic"], p["hallucination"]) for p in by_pair.values() if len(p) == 2]


def _hits(items: list[dict]) -> list[tuple[bool, bool]]:
    return [(b["score"] > 0, h["score"] > 0) for b, h in complete_pairs(items)]


def aggregate_accuracy(items: list[dict]) -> float:
    """Pair accuracy in percent: both questions of the pair right (``cal_score``'s ``accuracy``)."""
    return 100.0 * pair_scores(_hits(items))["accuracy"]


def aggregate_basic_accuracy(items: list[dict]) -> float:
    return 100.0 * pair_scores(_hits(items))["basic_accuracy"]


def aggregate_halluc_accuracy(items: list[dict]) -> float:
    return 100.0 * pair_scores(_hits(items))["halluc_accuracy"]


def aggregate_fact_score(items: list[dict]) -> float:
    """``fact_detect``'s ``Fact Score`` (``evaluation.py``): the mean of basic and hallucinated accuracy, percent."""
    scores = pair_scores(_hits(items))
    return 50.0 * (scores["basic_accuracy"] + scores["halluc_accuracy"])


def _bias(items: list[dict]) -> dict[str, float | None]:
    pairs = [(b["says_yes"], h["says_no"]) for b, h in complete_pairs(items)
             if b["answer"] == "yes" and h["answer"] == "no"]
    return bias_figures(pairs)


def aggregate_yes_difference(items: list[dict]) -> float:
    return _bias(items)["yes_difference"]


def aggregate_no_difference(items: list[dict]) -> float:
    return _bias(items)["no_difference"]


def aggregate_false_positive_ratio(items: list[dict]) -> float:
    return _bias(items)["false_positive_ratio"]


def aggregate_incomplete(items: list[dict]) -> int:
    """Scored questions whose pair partner was not scored (a ``--limit`` that cuts a pair)."""
    return len(items) - 2 * len(complete_pairs(items))


#: Metrics that receive the per-question record: the five subsets' and ``fact_detect``'s (as their YAMLs list them).
METRICS = ("accuracy", "basic_accuracy", "halluc_accuracy", "yes_difference", "no_difference", "false_positive_ratio",
           "incomplete_pairs")
FACT_METRICS = ("accuracy", "basic_accuracy", "halluc_accuracy", "fact_score", "incomplete_pairs")

"""VidHalluc (Li et al., CVPR 2025): action, temporal-sequence and scene-transition hallucination, scored by the
benchmark's own rules (Vid-Halluc/VidHalluc ``eval/evaluation/*.py`` and the prompts of ``eval/inference/*.py``).

Parts (one lmms-eval task each; the annotation files as the benchmark ships them, read from
``$SAVI_DATA_ROOT/vidhalluc/<part>.json``, videos from ``data/ACH``, ``data/TSH``, ``data/STH``):

* ``ach_binaryqa`` (ACH binary QA): ``{id: [{"q": question, "a": {clip: "Yes"|"No"}}]}``. Every clip is asked
  ``"<q> Only answer with a single word 'Yes' or 'No'."``; a question counts only when all its clips are right
  (``eval_bqa.py``: the reply up to the first ``.`` then ``,``, stripped, upper case, equal to the answer).
* ``ach_mcq`` (ACH multiple choice): ``{id: {clip: {"Question", "Choices": {letter: text}, "Correct Answer"}}}``;
  right when the set of standalone capitals A-D in the reply is the answer's set, or, with none, the first
  choice whose text the reply contains (``eval_mcq.py``).
* ``tsh`` (temporal sequence): ``{id: {"video", "Question", "Correct Answer"}}``; the order read by
  ``eval_tsh.py``'s ``model_answer_to_correct_answer`` equals the answer (``AB``, ``BA``, ``A``, ``B``).
* ``sth`` (scene transition): ``{video: {"Scene change": "Yes"|"No", "Locations": "from X to Y."}}``; the reply's
  ``Scene change: <word>`` read as ``eval_sth.py`` does; reported: the Matthews correlation ``mcc`` and the
  classification score ``((mcc + 1) / 2) ** 2``. Not computed: the description accuracy and the overall STH score
  (``0.6 * classification + 0.4 * description``), which need the ``princeton-nlp/sup-simcse-roberta-large``
  sentence encoder (weights this project does not download).

Checked against the official functions on recorded predictions: ``tests/fixtures/vidhalluc_official.json``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from savi_plugin.eval import data
from savi_plugin.eval.answers import PromptFormat
from savi_plugin.eval.bad_videos import unusable_counts
from savi_plugin.eval.protocols import Protocol

PARTS = ("ach_binaryqa", "ach_mcq", "tsh", "sth")
#: Part -> folder of its videos under ``$SAVI_DATA_ROOT/vidhalluc/``.
VIDEO_FOLDERS = {"ach_binaryqa": "data/ACH", "ach_mcq": "data/ACH", "tsh": "data/TSH", "sth": "data/STH"}
#: The official prompts (``eval/inference/video_hallu_{bqa,mcq,tsh,sth}.py``).
BQA_SUFFIX = " Only answer with a single word 'Yes' or 'No'."
MCQ_SUFFIX = " Please select the correct answer (one or more options), only return your answer(s). (e.g., ABCD)"
TSH_SUFFIX = ("Sort these two actions in the order they occur in the video, and return the order you detect (i.e., "
              "AB or BA). If you only detect one action of these two in the video, return that action.")
STH_PROMPT = ("Watch the given video and determine if a scene change occurs. If no change occurs, respond: 'Scene "
              "change: No, Locations: None'. If there is a scene change, respond in the format: 'Scene change: Yes, "
              "Locations: from [location1] to [location2].'")


# ------------------------------------------------------------------------------------ answer rules (pure)
def bqa_answer(response: str) -> str:
    """``eval_bqa.py``'s reading: up to the first ``.``, then up to the first ``,``, stripped, upper case."""
    return response.strip().split(".")[0].split(",")[0].strip().upper()


def bqa_hit(answer: str, response: str) -> bool:
    return bqa_answer(response) == answer.strip().upper()


def mcq_letters(response: str, choices: Sequence[tuple[str, str]]) -> set[str]:
    """``eval_mcq.py``'s reading: every standalone capital A-D of the reply; with none, the key of the first choice
    (in file order) whose text, lower-cased, the lower-cased reply contains; else the empty set."""
    letters = set(re.findall(r"\b[A-D]\b", response))
    if letters:
        return letters
    text = response.lower()
    return next(({key.strip().upper()} for key, value in choices if value.lower() in text), set())


def mcq_hit(answer: str, response: str, choices: Sequence[tuple[str, str]]) -> bool:
    """Right when the reply's letter set is the answer's (``set(re.findall("[A-D]", answer.upper()))``)."""
    return mcq_letters(response, choices) == set(re.findall(r"[A-D]", answer.strip().upper()))


_MENTION = r"(action [ab]|[ab][\.\)])"
# eval_tsh.py's context rules as written there: ``[^before]``, ``[^then]``, ``[^after]`` and ``[^action]`` are
# character classes (any character but those letters), which decides what the rule reads; kept as they are.
_ORDER_CUES = (("before", re.compile(_MENTION + r"[^before]+before[^action]*?" + _MENTION), False),
               ("then", re.compile(_MENTION + r"[^then]+then[^action]*?" + _MENTION), False),
               ("after", re.compile(_MENTION + r"[^after]+after[^action]*?" + _MENTION), True))


def tsh_order(response: str) -> str | None:
    """``eval_tsh.py``'s ``model_answer_to_correct_answer`` on the reply (stripped, as the inference script stores
    it): ``AB``/``BA``/``A``/``B`` said alone; ``not clear`` -> None; with both ``action a`` and ``action b`` the
    first of ``before``/``then``/``after`` present decides by its pattern (``after`` reverses), else the letters in
    order of mention (which may repeat, e.g. ``ABA``); one action mentioned -> its letter; else None."""
    text = response.strip().lower()
    if text in ("ab", "ba", "a", "b"):
        return text.upper()
    if "not clear" in text or "no clear" in text:
        return None
    has_a, has_b = "action a" in text, "action b" in text
    if has_a and has_b:
        cue = next((c for c in _ORDER_CUES if c[0] in text), None)
        if cue is not None:
            found = cue[1].search(text)
            if found:
                first, second = found.group(1)[-1].upper(), found.group(2)[-1].upper()
                return second + first if cue[2] else first + second
        return "".join(m.group(1)[-1].upper() for m in re.finditer(_MENTION, text))
    if has_a or has_b:
        return "A" if has_a else "B"
    return None


def tsh_hit(answer: str, response: str) -> bool:
    return tsh_order(response) == answer


def sth_reading(response: str) -> tuple[str, str]:
    """``eval_sth.py``'s split of ``"Scene change: <word>, Locations: <text>"`` -> ``(word, locations)``."""
    if ", Locations: " in response:
        head, locations = response.split(", Locations: ", 1)
        return head.split(": ", 1)[-1].split(",")[0].strip(), locations.strip()
    return response.split(": ", 1)[-1].split(",")[0].strip(), ""


def sth_says_change(response: str) -> bool:
    """The official classification input: the scene-change word is ``yes`` (anything else reads as no change)."""
    return sth_reading(response)[0].lower() == "yes"


def matthews(truth: Iterable[bool], pred: Iterable[bool]) -> float:
    """The Matthews correlation of two binary label lists; 0.0 when a margin is empty (as scikit-learn's
    ``matthews_corrcoef``, which ``eval_sth.py`` calls)."""
    pairs = list(zip(truth, pred, strict=True))
    tp = sum(t and p for t, p in pairs)
    tn = sum(not t and not p for t, p in pairs)
    fp = sum(p and not t for t, p in pairs)
    fn = sum(t and not p for t, p in pairs)
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denominator if denominator else 0.0


def sth_classification(truth: Iterable[bool], pred: Iterable[bool]) -> dict[str, float]:
    """``eval_sth.py``'s ``MCC`` and ``Classification Score`` = ``((mcc + 1) / 2) ** 2``."""
    mcc = matthews(truth, pred)
    return {"mcc": mcc, "classification_score": ((mcc + 1) / 2) ** 2}


def bqa_question_accuracy(questions: Iterable[Sequence[bool]]) -> float:
    """``eval_bqa.py``'s accuracy: the fraction of questions whose every clip is right (0 without questions)."""
    questions = list(questions)
    return sum(all(q) for q in questions) / len(questions) if questions else 0.0


# ------------------------------------------------------------------------------------ data
def _need(obj: Any, key: str, path: Path, where: str) -> str:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise data.EvalDataError(path, where, key, f"missing or not a string: {value!r}")
    return value


def _record(part: str, group: str, size: int, video: str, question: str, answer: str, choices=(), *,
            where: str, question_field: str | None = None, video_field: str | None = None) -> dict:
    """One flattened record; ``where`` and ``question_field`` say where the file holds it (its
    :data:`~savi_plugin.eval.data.SOURCE_KEY`, for the checks of ``data.validate_records``)."""
    fields = {name: path for name, path in (("question", question_field), ("video", video_field)) if path}
    if choices:
        fields.update(options="Choices", **{f"options[{k}]": f"Choices.{key}" for k, (key, _) in enumerate(choices)})
    return {"part": part, "group": group, "group_size": size, "video": video, "question": question, "answer": answer,
            "choice_keys": [k for k, _ in choices], "choice_texts": [v for _, v in choices],
            data.SOURCE_KEY: data.source_of(where, **fields)}


def _dict(raw: Any, path: Path, where: Any = None) -> dict:
    if not isinstance(raw, dict):
        raise data.EvalDataError(path, where, None, f"expected a JSON object, got {type(raw).__name__}")
    return raw


def flatten(raw: Any, path: Path) -> list[dict]:
    """One part's official file -> one record per clip the model answers (see the module docstring)."""
    part = path.stem
    if part not in PARTS:
        raise data.EvalDataError(path, None, None, f"unknown VidHalluc part {part!r}; expected one of {PARTS}")
    records = []
    for key, value in _dict(raw, path).items():
        if part == "ach_binaryqa":
            if not isinstance(value, list):
                raise data.EvalDataError(path, key, None, f"expected a list of questions, got {type(value).__name__}")
            for qi, question in enumerate(value):
                where = f"{key}[{qi}]"
                clips = _dict(question.get("a") if isinstance(question, dict) else None, path, f"{where}.a")
                for clip, answer in clips.items():
                    if str(answer).strip().lower() not in ("yes", "no"):
                        raise data.EvalDataError(path, where, f"a.{clip}", f"expected Yes or No, got {answer!r}")
                    records.append(_record(part, f"{key}/{qi}", len(clips), clip, _need(question, "q", path, where),
                                           str(answer), where=where, question_field="q", video_field=f"a.{clip}"))
        elif part == "ach_mcq":
            for clip, item in _dict(value, path, key).items():
                where = f"{key}.{clip}"
                choices = list(_dict(item.get("Choices") if isinstance(item, dict) else None, path, where).items())
                answer = _need(item, "Correct Answer", path, where)
                if len(choices) < 2 or not re.search(r"[A-D]", answer.upper()):
                    raise data.EvalDataError(path, where, "Choices", f"need two or more choices and an answer "
                                             f"naming A-D, got {len(choices)} and {answer!r}")
                records.append(_record(part, f"{key}/{clip}", 1, clip, _need(item, "Question", path, where), answer,
                                       [(str(k), v) for k, v in choices], where=where, question_field="Question"))
        elif part == "tsh":
            records.append(_record(part, str(key), 1, _need(value, "video", path, key),
                                   _need(value, "Question", path, key), _need(value, "Correct Answer", path, key),
                                   where=str(key), question_field="Question", video_field="video"))
        else:
            answer = _need(value, "Scene change", path, key)
            if answer.strip().lower() not in ("yes", "no"):
                raise data.EvalDataError(path, key, "Scene change", f"expected Yes or No, got {answer!r}")
            records.append(_record(part, str(key), 1, str(key), STH_PROMPT, answer, where=str(key)))
    return records


SPEC = data.BenchmarkSpec(
    name="vidhalluc", hub_cache_dir="vidhalluc", local_video_dir="",
    fields=("part", "group", "video", "question", "answer"),
    video_relpaths=lambda doc, subtask=None: [f"{VIDEO_FOLDERS[doc['part']]}/{doc['video']}.mp4"],
    # records are checked by flatten (their answers are strings: Yes/No, letter sets, orders), not by option index;
    # options/target are here for the spec's interface only
    options=lambda doc: list(doc["choice_texts"]),
    target=lambda doc: 0,
    record_id=lambda doc: f"{doc['part']}/{doc['group']}/{doc['video']}",
    annotation_file=lambda config: f"{config}.json",
    flatten=flatten,
    record_depth=lambda path: 2 if path.stem in ("ach_binaryqa", "ach_mcq") else 1,
)


def _grade_bqa(response: str, options: list[str], target: int) -> tuple[bool, bool]:
    return bqa_hit(options[target], response), bqa_answer(response) in ("YES", "NO")


PROTOCOLS: dict[str, Protocol] = {
    "official": Protocol("official", PromptFormat(), BQA_SUFFIX, None, 1024, _grade_bqa,
                         "Vid-Halluc/VidHalluc eval/inference (prompts, max_new_tokens=1024) and eval/evaluation "
                         "(rules)"),
}


# ------------------------------------------------------------------------------------ doc functions (YAML)
def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
    """The part's official prompt (see the module constants)."""
    part, question = doc["part"], doc["question"]
    if part == "ach_binaryqa":
        return f"{question}{BQA_SUFFIX}"
    if part == "ach_mcq":
        lines = "".join(f"{k}. {v}\n" for k, v in zip(doc["choice_keys"], doc["choice_texts"]))
        return f"{question}{MCQ_SUFFIX}\nChoices:\n{lines}"
    if part == "tsh":
        return f"{question}{TSH_SUFFIX}"
    return STH_PROMPT


def doc_to_target(doc: dict) -> str:
    return doc["answer"]


def grade(doc: dict, response: str) -> tuple[bool, bool]:
    """``(right, read)`` of one reply by its part's official rule; ``read`` False: the rule found no answer in it
    (BQA: neither YES nor NO; MCQ: no letter and no choice text; TSH: no order; STH: no yes/no word)."""
    part, answer = doc["part"], doc["answer"]
    if part == "ach_binaryqa":
        return bqa_hit(answer, response), bqa_answer(response) in ("YES", "NO")
    if part == "ach_mcq":
        choices = list(zip(doc["choice_keys"], doc["choice_texts"]))
        return mcq_hit(answer, response, choices), bool(mcq_letters(response, choices))
    if part == "tsh":
        return tsh_hit(answer, response), tsh_order(response) is not None
    word = sth_reading(response)[0].lower()  # the MCC reads any other word as "no"; an item needs a yes or no
    return word in ("yes", "no") and (word == "yes") == (answer.strip().lower() == "yes"), word in ("yes", "no")


def process_results(doc: dict, results: list[str]) -> dict[str, Any]:
    """Per clip: one record for every metric; ``group``/``group_size`` make the BQA question (all its clips) the
    item of paired comparisons; STH records the truth and the official reading for the MCC."""
    response = results[0] if results else ""
    unusable = unusable_counts(doc)
    found, bad = not unusable["missing_video"], any(unusable.values())
    right = read = False
    if found and not bad:
        right, read = grade(doc, response)
    item = {"score": 100.0 * right, "group": f"{doc['part']}/{doc['group']}", "group_size": int(doc.get("group_size")
            or 1), "truth": doc["answer"].strip().lower() == "yes",
            "says_change": found and not bad and sth_says_change(response)}
    out = {name: item for name in METRICS[doc["part"]]}
    out.update(unusable, unparsed=int(not bad and not read))
    return out


def _groups(items: list[dict]) -> list[list[dict]]:
    by_group: dict[str, list[dict]] = {}
    for item in items:
        by_group.setdefault(item["group"], []).append(item)
    return [g for g in by_group.values() if len(g) == g[0]["group_size"]]


def aggregate_accuracy(items: list[dict]) -> float:
    """Percent of items right; an item is a question with all its clips (BQA) or one clip (MCQ, TSH; STH: the
    scene-change word right). A BQA question cut by ``--limit`` is left out (:func:`aggregate_incomplete`)."""
    return 100.0 * bqa_question_accuracy([[i["score"] > 0 for i in g] for g in _groups(items)])


def aggregate_mcc(items: list[dict]) -> float:
    return matthews([i["truth"] for i in items], [i["says_change"] for i in items])


def aggregate_classification_score(items: list[dict]) -> float:
    return sth_classification([i["truth"] for i in items], [i["says_change"] for i in items])["classification_score"]


def aggregate_incomplete(items: list[dict]) -> int:
    """Scored clips of BQA questions not all of whose clips were scored (a ``--limit`` that cuts a question)."""
    return len(items) - sum(len(g) for g in _groups(items))


#: Per part, the metrics that receive the per-clip record (as the part's YAML lists them).
METRICS = {"ach_binaryqa": ("accuracy", "incomplete_groups"), "ach_mcq": ("accuracy",), "tsh": ("accuracy",),
           "sth": ("mcc", "classification_score", "accuracy")}

"""Evaluation protocols by name: prompt, frame count, answer length and answer handling of each reference.

A published number can be compared with ours only under the same protocol. Each benchmark has:

* ``savi``: our default (``savi_mvbench``, ``savi_egoschema``, ``savi_perceptiontest``): lmms-eval's
  instruction, the model's frame count (``savi_video``: 32, VideoSAVi), 16 new tokens, answers read by the careful parser
  :func:`savi_plugin.data.choices.parse_choice` (never a random or first-letter guess).
* ``lmms``: lmms-eval 0.7.3's built-in task (``mvbench``, ``egoschema_subset``, ``perceptiontest_val_mc``)
  exactly: its prompt, 16 new tokens, its own answer extraction and aggregation (lmms-eval's functions are
  called), at 32 frames: the protocol behind VideoSAVi's numbers (arXiv 2412.00624, Sec. 4).
* ``official`` (MVBench only): OpenGVLab/Ask-Anything ``video_chat2/mvbench.ipynb``: a system prompt,
  ``"\\nOnly give the best option."``, the reply pre-filled with ``"Best option:("``, 100 new tokens, the
  first line of ``"(" + reply`` graded by the notebook's ``check_ans``, 16 frames.
* ``rrpo`` (MVBench only): pritamqu/RRPO ``eval/mvbench/mvbench.py`` for LLaVA-Video: the bare question
  and options, no instruction, 512 new tokens, the first letter of the reply, 64 frames (its README's #F
  column and the script's ``--max_frames`` default).

Frame counts and rules apply to the ``savi_video`` model (the task marks each doc with its protocol's count,
rule and bound); other lmms-eval models take frames from their own ``--model_args``. The rules
(:mod:`savi_plugin.video.sampling`):

* ``official`` and ``rrpo``: segment midpoints (``get_index`` of the notebook and of RRPO's script) with the
  record's ``start``/``end`` bound for the subtasks that carry one, read from the full source videos where
  the data folder has them (``star/Charades_v1_480``, ``sta/sta_video``, ``tvqa/frames_fps3_hq``).
* ``lmms``: uniform over the pre-trimmed clip, no bound: lmms-eval reads the trimmed clips
  (``star/Charades_segment`` ...) and never applies ``start``/``end``; its models sample frames themselves,
  ``savi_video`` uniformly.
* ``savi``: uniform, and the record's bound applied when the file is an untrimmed full video, because the
  question is about the segment (a pre-trimmed clip already is the segment).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from savi_plugin.data.choices import LETTERS, parse_choice
from savi_plugin.eval.answers import PromptFormat

#: lmms-eval's instruction for EgoSchema / PerceptionTest (and our default for all three).
LETTER_INSTRUCTION = "\nAnswer with the option's letter from the given choices directly."
#: The official MVBench system prompt (``video_chat2/mvbench.ipynb``, passed as ``system`` with ``system_llm=True``).
MVBENCH_SYSTEM = ("Carefully watch the video and pay attention to the cause and sequence of events, the detail and "
                  "movement of objects, and the action and pose of persons. Based on your observations, select the "
                  "best option that accurately addresses the question.\n")


@dataclass(frozen=True)
class Protocol:
    """One benchmark's evaluation protocol.

    Attributes:
        name: ``savi``, ``lmms``, ``official`` or ``rrpo``.
        layout: the prompt layout (:class:`~savi_plugin.eval.answers.PromptFormat`).
        post_prompt: the instruction after the options.
        num_frames: frames per video the protocol uses; None: the model's ``num_frames`` (``savi_video``:
            32 by default, VideoSAVi's count).
        max_new_tokens: the generation length; None: the task sets none and the model's default applies.
        answer_prefix: text the reply is pre-filled with (official MVBench: ``"Best option:("``).
        grade: ``(response, options, target) -> (correct, parsed)``; ``parsed`` False counts as unparsed: the
            protocol's own rule read no one option (:func:`read_as_one_option`; lmms-eval's EgoSchema rule: it
            found no label or option text, and scored its random pick).
        source: where the protocol comes from.
        frames: the frame rule, ``uniform`` or ``midpoints`` (:data:`savi_plugin.video.sampling.SAMPLING_RULES`), or
            ``lmms``: the rule of lmms-eval's own wrapper for the model's family (``savi_video`` resolves it from
            its backend or its ``frame_rule`` argument; :data:`savi_plugin.video.sampling.LMMS_EVAL_RULES`).
        bounds: whether a record's ``start``/``end`` bound is applied to an untrimmed full video (MVBench's
            bounded subtasks, :data:`savi_plugin.eval.data.MVBENCH_FULL_VIDEO_FOLDERS`); without it, full
            videos are not used (the whole video is not the segment the question is about).
    """

    name: str
    layout: PromptFormat
    post_prompt: str
    num_frames: int | None
    max_new_tokens: int | None
    grade: Callable[[str, list[str], int], tuple[bool, bool]]
    source: str
    answer_prefix: str = ""
    frames: str = "uniform"
    bounds: bool = False


# ---------------------------------------------------------------------------------------- graders
def grade_careful(response: str, options: list[str], target: int) -> tuple[bool, bool]:
    """Our grader: :func:`~savi_plugin.data.choices.parse_choice`; unparsed is wrong."""
    index = parse_choice(response, options).index
    return index == target, index is not None


def read_as_one_option(rule: Callable[[str, list[str], int], bool]) -> Callable[[str, list[str], int],
                                                                               tuple[bool, bool]]:
    """A grader from a reference's rule ``(response, options, target) -> right``: the reply is parsed where the rule
    reads it as exactly one of the options (it would score it right for that target alone), so ``unparsed`` counts
    what the rule it is scored by could not read -- a reply it reads as no option (``green`` under a letter rule, a
    letter beyond the options) or as every option (an empty reply under the notebook's substring test)."""

    def grade(response: str, options: list[str], target: int) -> tuple[bool, bool]:
        read = sum(bool(rule(response, options, k)) for k in range(len(options)))
        return bool(rule(response, options, target)), read == 1

    grade.__doc__ = rule.__doc__
    return grade


def _official_mvbench_rule(response: str, options: list[str], target: int) -> bool:
    """``check_ans`` of ``video_chat2/mvbench.ipynb`` on ``"(" + first line of the reply``.

    The notebook compares the first space-separated token of the lower-cased prediction with ``"(b)"``
    both ways by substring, so an empty reply (prediction ``"("``) counts as correct; such replies are
    reported as unparsed (:func:`read_as_one_option`).
    """
    pred = "(" + response.strip().split("\n")[0]
    pred_option = pred.lower().split(" ")[0]
    gt_option = f"({LETTERS[target].lower()})"
    return pred_option.replace(".", "") in gt_option or gt_option in pred_option


grade_official_mvbench = read_as_one_option(_official_mvbench_rule)

_RRPO_LETTER = re.compile(r"\(?\[?([A-Z])\]?\)?\.?", re.IGNORECASE)


def _rrpo_mvbench_rule(response: str, options: list[str], target: int) -> bool:
    """``check_ans`` of RRPO's ``eval/mvbench/mvbench.py``: the first letter of the reply, any case."""
    match = _RRPO_LETTER.search(response)
    return match is not None and match.group(1).lower() == LETTERS[target].lower()


grade_rrpo_mvbench = read_as_one_option(_rrpo_mvbench_rule)


def _lmms_mvbench_rule(response: str, options: list[str], target: int) -> bool:
    from lmms_eval.tasks.mvbench.utils import mcq_acc

    return bool(mcq_acc(LETTERS[target], response))


_lmms_mvbench = read_as_one_option(_lmms_mvbench_rule)


def _lmms_egoschema(response: str, options: list[str], target: int) -> tuple[bool, bool]:
    from lmms_eval.tasks.egoschema.utils import parse_multi_choice_response

    letters = LETTERS[:len(options)]
    parsed, matched = parse_multi_choice_response(response, list(letters), dict(zip(letters, (o.strip() for o in options))))
    return letters.find(parsed) == target, bool(matched)


def _lmms_perceptiontest_rule(response: str, options: list[str], target: int) -> bool:
    match = re.search(r"\b([A-D])\b", response.strip())  # perceptiontest/val/utils.py
    return match is not None and "ABCD".index(match.group(1)) == target


_lmms_perceptiontest = read_as_one_option(_lmms_perceptiontest_rule)


# ---------------------------------------------------------------------------------------- protocols
_SAVI_LAYOUT = PromptFormat()
_DOT_LAYOUT = PromptFormat(option_line="{letter}. {text}")
#: our default for EgoSchema and PerceptionTest (``A. text`` options)
_SAVI_DOT = Protocol("savi", _DOT_LAYOUT, LETTER_INSTRUCTION, None, 16, grade_careful,
                     "savi-plugin default (VideoSAVi frame count)")

PROTOCOLS: dict[str, dict[str, Protocol]] = {
    "mvbench": {
        "savi": Protocol("savi", _SAVI_LAYOUT, LETTER_INSTRUCTION, None, 16, grade_careful,
                         "savi-plugin default (VideoSAVi frame count)", bounds=True),
        "lmms": Protocol("lmms", PromptFormat(question_label="Question:", strip_question=False, options_header="\nOption:\n",
                                              option_line="({letter}) {raw}", options_end="\n"),
                         "Only give the best option.\n", 32, 16, _lmms_mvbench,
                         "lmms-eval 0.7.3 tasks/mvbench (VideoSAVi, arXiv 2412.00624)", frames="lmms"),
        "official": Protocol("official", PromptFormat(strip_question=False, option_line="({letter}) {raw}",
                                           system=MVBENCH_SYSTEM, strip_end=True),
                             "\nOnly give the best option.", 16, 100, grade_official_mvbench,
                             "OpenGVLab/Ask-Anything video_chat2/mvbench.ipynb", answer_prefix="Best option:(",
                             frames="midpoints", bounds=True),
        "rrpo": Protocol("rrpo", PromptFormat(strip_question=False, option_line="({letter}) {raw}", strip_end=True), "", 64, 512, grade_rrpo_mvbench,
                         "pritamqu/RRPO eval/mvbench/mvbench.py (LLaVA-Video, arXiv 2504.12083)",
                         frames="midpoints", bounds=True),
    },
    "egoschema": {
        "savi": _SAVI_DOT,
        "lmms": Protocol("lmms", PromptFormat(question_label="", strip_question=False, options_header="\n",
                                              option_line="{raw}"),
                         LETTER_INSTRUCTION, 32, 16, _lmms_egoschema,
                         "lmms-eval 0.7.3 tasks/egoschema egoschema_subset (VideoSAVi, arXiv 2412.00624)",
                         frames="lmms"),
    },
    "perceptiontest": {
        "savi": _SAVI_DOT,
        "lmms": Protocol("lmms", PromptFormat(question_label="", strip_question=False, options_header="\n",
                                              option_line="{letter}. {raw}"),
                         LETTER_INSTRUCTION, 32, None, _lmms_perceptiontest,
                         "lmms-eval 0.7.3 tasks/perceptiontest/val perceptiontest_val_mc (VideoSAVi, arXiv 2412.00624)",
                         frames="lmms"),
    },
}


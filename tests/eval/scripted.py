"""A model that replays given responses, to audit a task's answer extraction and scoring end to end.

``ScriptedResponses`` answers each lmms-eval request with a response read from a JSON file
(``{task name: [response for doc 0, doc 1, ...]}``) or with one constant string. Run through the real
``lmms-eval`` CLI, it shows exactly what a task's answer extraction and aggregation make of known
responses (an oracle must score 100%, an always-"A" model the share of "A" answers). Test scaffolding:
``tests/eval/test_scoring.py`` registers it with a throw-away ``lmms_eval.models`` entry point and runs
lmms-eval with the repository root on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
from pathlib import Path

from lmms_eval.api.model import lmms


class ScriptedResponses(lmms):
    """Replays responses.

    Args:
        responses: JSON file mapping task name -> list of responses indexed by ``doc_id``.
        constant: the response to every request instead (e.g. ``A``).
    """

    is_simple = True

    def __init__(self, responses: str | None = None, constant: str | None = None, **_lmms_eval_kwargs) -> None:
        super().__init__()
        if (responses is None) == (constant is None):
            raise ValueError("ScriptedResponses needs exactly one of responses=<json file> or constant=<text>")
        self.constant = None if constant is None else str(constant)
        self.responses = json.loads(Path(responses).read_text(encoding="utf-8")) if responses else {}

    def _response(self, task: str, doc_id: int) -> str:
        if self.constant is not None:
            return self.constant
        if task not in self.responses or doc_id >= len(self.responses[task]):
            raise KeyError(f"no scripted response for task {task!r} doc {doc_id}")
        return self.responses[task][doc_id]

    def generate_until(self, requests) -> list[str]:
        return [self._response(r.args[4], r.args[3]) for r in requests]

    def loglikelihood(self, requests):
        raise NotImplementedError("ScriptedResponses only replays generated text")

    def generate_until_multi_round(self, requests):
        raise NotImplementedError("ScriptedResponses only replays single-round answers")


def manifest():
    """An ``lmms_eval.models`` entry-point payload registering ``savi_scripted``."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id="savi_scripted", simple_class_path="tests.eval.scripted.ScriptedResponses")

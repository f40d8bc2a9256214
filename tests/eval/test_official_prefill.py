"""``savi_video`` on MVBench's official protocol (OpenGVLab/Ask-Anything ``video_chat2/mvbench.ipynb``): the system
prompt goes to the chat template's system turn (``system_llm=True``) and the reply is pre-filled with
``Best option:(`` (``answer_prompt``); the grader reads ``"(" +`` the first line of the continuation.

What the backend got is recorded at ``VideoLM.prompt`` / ``VideoLM.generate`` (the real methods run; their
inputs and outputs are written down), in-process and in a real ``lmms-eval`` run on the local fixture."""

from __future__ import annotations

import glob
import json
import subprocess
import sys
from pathlib import Path

import pytest
from lmms_eval.api.instance import Instance

from savi_plugin.eval import task as savi_task
from savi_plugin.eval.fixtures import build_fixture, offline_env
from savi_plugin.eval.model import PromptFraming, SaviVideo, prompt_framing
from savi_plugin.eval.protocols import MVBENCH_SYSTEM, grade_official_mvbench
from tests.builders import mvbench_fixture_doc

PREFILL = "Best option:("
DOC = {"video": "a.mp4", "question": "What happened after the person took the food?",
       "candidates": ["Ate the medicine.", "Took the box.", "Put down the cup."], "answer": "Took the box.",
       "savi_benchmark": "mvbench", "savi_protocol": "official"}


def _official_context(doc: dict, **kwargs) -> str:
    return savi_task.doc_to_text(doc, kwargs)


# ------------------------------------------------------------------------------------- framing rule
def test_the_system_prompt_is_given_twice_and_the_reply_is_prefilled():
    context = _official_context(DOC)
    assert context.startswith(MVBENCH_SYSTEM + "Question: ")  # other lmms-eval models get it inline
    framing = prompt_framing(context, DOC)
    # twice, as the notebook (system_llm=True): the system turn, and inline at the start of the user's text
    assert framing == PromptFraming(context, MVBENCH_SYSTEM.rstrip("\n"), PREFILL)
    assert framing.context.startswith(MVBENCH_SYSTEM + "Question: What happened") and framing.context.endswith(
        "\nOnly give the best option.")
    # an edited pre_prompt comes after the system prompt and stays in the user's text
    edited = prompt_framing(_official_context(DOC, pre_prompt="Watch closely. "), DOC)
    assert edited.context.startswith(MVBENCH_SYSTEM + "Watch closely. Question: ") and edited.system == framing.system


def test_a_context_that_does_not_start_with_the_system_prompt_keeps_its_text():
    context = "Look first. " + _official_context(DOC)
    framing = prompt_framing(context, DOC)
    assert framing == PromptFraming(context, None, PREFILL)
    cut = _official_context(DOC)[5:]  # starts inside the system prompt
    assert prompt_framing(cut, DOC).context == cut


def test_other_protocols_and_other_tasks_are_asked_as_before():
    for doc in ({**DOC, "savi_protocol": "savi"}, {**DOC, "savi_protocol": "rrpo"}, {**DOC, "savi_protocol": "lmms"},
                {k: v for k, v in DOC.items() if not k.startswith("savi_")}, None):
        context = _official_context(DOC)
        assert prompt_framing(context, doc) == PromptFraming(context)


def test_each_task_yaml_generates_its_protocols_length():
    """The protocol's answer length reaches every model through the YAML's ``generation_kwargs`` (official MVBench:
    100, RRPO: 512, lmms-eval's and ours: 16, the hallucination benchmarks' official scripts: 1024)."""
    from lmms_eval.utils import load_yaml_config

    from savi_plugin.eval.benchmarks import get
    from savi_plugin.eval.registration import tasks_path

    lengths = {}
    for path in sorted(Path(tasks_path()).rglob("*.yaml")):
        config = load_yaml_config(str(path), mode="simple")
        if path.name.startswith("_") or "generation_kwargs" not in config:
            continue  # templates and groups
        meta = config["metadata"]
        expected = get(meta["benchmark"]).protocol(meta.get("protocol", "savi")).max_new_tokens
        assert config["generation_kwargs"]["max_new_tokens"] == expected, path
        lengths[meta["benchmark"], meta.get("protocol", "savi")] = expected
    assert lengths == {("mvbench", "savi"): 16, ("egoschema", "savi"): 16, ("perceptiontest", "savi"): 16,
                       ("mvbench", "lmms"): 16, ("egoschema", "lmms"): 16, ("mvbench", "official"): 100,
                       ("mvbench", "rrpo"): 512, ("videohallucer", "savi"): 16, ("videohallucer", "official"): 1024,
                       ("vidhalluc", "official"): 1024}


# ------------------------------------------------------------------------------------- in-process
class PromptRecording:
    """Writes down every prompt a VideoLM renders (the real ``prompt`` runs)."""

    def __init__(self, lm) -> None:
        self.calls: list[dict] = []
        real = lm.prompt

        def prompt(question, *, system=None, prefill=""):
            rendered = real(question, system=system, prefill=prefill)
            self.calls.append({"question": question, "system": system, "prefill": prefill, "rendered": rendered})
            return rendered

        lm.prompt = prompt

    def rendered_for(self, question: str) -> set[str]:
        return {c["rendered"] for c in self.calls if c["question"] == question}


@pytest.fixture(scope="module")
def savi_video(tmp_path_factory, tiny_llava_onevision):
    base = mvbench_fixture_doc(tmp_path_factory.mktemp("official_prefill"))
    model = SaviVideo(pretrained=str(tiny_llava_onevision), num_frames=4, batch_size=3)
    docs = [{**base, "savi_protocol": "official"}, {**base, "savi_protocol": "official"}, {**base, "savi_protocol": "savi"}]
    model.task_dict = {"t": {"train": docs}}
    return model, docs


def _request(context: str, doc_id: int, max_new_tokens: int = 8) -> Instance:
    return Instance(request_type="generate_until", idx=0, metadata={"task": "t", "doc_id": doc_id, "repeats": 1},
                    arguments=(context, {"max_new_tokens": max_new_tokens}, lambda d: [d["savi_video"]], doc_id, "t",
                               "train"))


def test_savi_video_gives_the_backend_the_system_turn_and_the_prefill(savi_video):
    model, docs = savi_video
    lm = model.lm
    official = _official_context(docs[0])
    edited = "Look first. " + official
    plain = savi_task.doc_to_text(docs[2], {})
    recording = PromptRecording(lm)
    try:
        answers = model.generate_until([_request(official, 0), _request(edited, 1), _request(plain, 2)])
    finally:
        del lm.prompt
    body = official  # the user's text keeps the system prompt inline (system_llm=True)
    system_turn = [{"role": "system", "content": [{"type": "text", "text": MVBENCH_SYSTEM.rstrip("\n")}]}]
    expected = lm.processor.apply_chat_template(system_turn + lm.messages(body), add_generation_prompt=True,
                                                tokenize=False) + PREFILL
    assert recording.rendered_for(body) == {expected}
    assert expected.startswith(f"<|im_start|>system\n{MVBENCH_SYSTEM.rstrip()}<|im_end|>\n<|im_start|>user\n")
    # the edited context is asked whole, with no system turn, still pre-filled; the default task as before
    assert recording.rendered_for(edited) == {lm.prompt(edited) + PREFILL}
    assert recording.rendered_for(plain) == {lm.prompt(plain)}
    assert all(not c["rendered"].startswith("<|im_start|>system") for c in recording.calls if c["question"] != body)
    # the notebook's printed prompt: the system text, then the user's turn starting with it again
    assert expected.count(MVBENCH_SYSTEM.rstrip("\n")) == 2
    frames = model.load_visual([docs[0]["savi_video"]], 4)
    assert answers[0] == lm.generate([frames], [body], max_new_tokens=8, system=MVBENCH_SYSTEM.rstrip("\n"),
                                     prefill=PREFILL)[0]
    assert answers[2] == lm.generate([frames], [plain], max_new_tokens=8)[0]


# ------------------------------------------------------------------------------------- lmms-eval CLI
#: Runs ``python -m lmms_eval`` with ``VideoLM.prompt`` and ``VideoLM.generate`` recording into a JSONL file.
RECORDING_LAUNCHER = """
import json, runpy, sys
from savi_plugin.models.backends.base import VideoLM

path, sys.argv = sys.argv[1], ["lmms-eval", *sys.argv[2:]]
real_prompt, real_generate, rendered = VideoLM.prompt, VideoLM.generate, []

def prompt(self, question, *, system=None, prefill=""):
    text = real_prompt(self, question, system=system, prefill=prefill)
    rendered.append(text)
    return text

def generate(self, videos, questions, *, system=None, prefill="", **kwargs):
    rendered.clear()
    answers = real_generate(self, videos, questions, system=system, prefill=prefill, **kwargs)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"questions": list(questions), "system": system, "prefill": prefill,
                            "max_new_tokens": kwargs.get("max_new_tokens"), "rendered": list(rendered),
                            "answers": answers}) + "\\n")
    return answers

VideoLM.prompt, VideoLM.generate = prompt, generate
runpy.run_module("lmms_eval", run_name="__main__", alter_sys=True)
"""


def _jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory, tiny_llava_onevision):
    tmp = tmp_path_factory.mktemp("official_prefill_cli")
    build_fixture(tmp / "data", "mvbench", 1)
    out, record = tmp / "out", tmp / "backend.jsonl"
    proc = subprocess.run(
        [sys.executable, "-c", RECORDING_LAUNCHER, str(record), "--model", "savi_video",
         "--model_args", f"pretrained={tiny_llava_onevision},num_frames=4",
         "--tasks", "savi_mvbench_official,savi_mvbench_action_antonym", "--limit", "1", "--batch_size", "4",
         "--output_path", str(out), "--log_samples"],
        env=offline_env(tmp / "data", tmp / "hf"), capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    samples = {}
    for path in glob.glob(str(out / "**" / "*_samples_savi_mvbench_*.jsonl"), recursive=True):
        task = Path(path).name.split("_samples_", 1)[1].rsplit(".", 1)[0]
        samples[task] = _jsonl(path)
    return _jsonl(record), samples


def test_lmms_eval_official_run_prefills_and_grades_the_first_line(cli_run, tiny_llava_onevision):
    from transformers import AutoProcessor

    calls, samples = cli_run
    processor = AutoProcessor.from_pretrained(str(tiny_llava_onevision))
    official = [c for c in calls if c["prefill"]]
    assert {(c["system"], c["prefill"], c["max_new_tokens"]) for c in official} == {
        (MVBENCH_SYSTEM.rstrip("\n"), PREFILL, 100)}
    answer_of = {}
    for call in official:
        for question, answer in zip(call["questions"], call["answers"]):
            assert question.startswith(MVBENCH_SYSTEM + "Question: ") and question.endswith("\nOnly give the best option.")
            turns = [{"role": "system", "content": [{"type": "text", "text": call["system"]}]},
                     {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": question}]}]
            assert processor.apply_chat_template(turns, add_generation_prompt=True, tokenize=False) + PREFILL \
                in call["rendered"]
            answer_of[question] = answer
    official_tasks = {t: s for t, s in samples.items() if t.startswith("savi_mvbench_official_")}
    assert len(official_tasks) == 20 and len(answer_of) == 20  # one document per subtask, each asked once
    for task, (sample,) in official_tasks.items():
        assert sample["input"].startswith(MVBENCH_SYSTEM)  # inline, as the notebook's user turn
        response = sample["filtered_resps"][0] if isinstance(sample["filtered_resps"], list) else \
            sample["filtered_resps"]
        answer = answer_of[sample["input"]]  # the logged input is exactly the user turn the model saw
        assert answer.startswith(response) and not response.startswith(PREFILL)  # the continuation, maybe cut
        options = [line[4:] for line in sample["input"].splitlines() if line[:1] == "(" and line[2:4] == ") "]
        correct, parsed = grade_official_mvbench(response, options, sample["accuracy"]["target"])
        assert sample["accuracy"]["score"] == 100.0 * correct, task
        assert sample["unparsed"] == int(not parsed), task
    # the default task in the same run: no system turn, no pre-fill, its own 16 tokens
    default = [c for c in calls if not c["prefill"]]
    assert [(c["system"], c["max_new_tokens"]) for c in default] == [(None, 16)]
    assert all(text.startswith("<|im_start|>user\n") for text in default[0]["rendered"])

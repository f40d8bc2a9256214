"""lmms-eval 0.7.3's own tasks for the papers' benchmarks, run unchanged through `savi_video` on offline fixtures.

One `savi eval suite` over every built-in task (base model, then a random LoRA adapter: two real `python -m lmms_eval`
processes, one model load each, `--limit 2`) on a fixture in each task's own format under `HF_HOME`, with the hub
switched off. Checked: every task's metric in lmms-eval's results equals its own aggregation of the per-sample
verdicts we read back, the built-in's prompt (question and options) reached the model, every video was decoded, the
suite's table (Δ and its paired interval) equals a direct computation; the facts of `BUILTINS` equal the installed
YAMLs; a built-in task whose data is not here is refused in one line before any model loads.
"""

import contextlib
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from savi_plugin.cli import main
from savi_plugin.eval.builtin_fixtures import build_builtin_fixture
from savi_plugin.eval.builtin_tasks import BUILTINS, LEAVES, sample_score
from savi_plugin.eval.compare import paired_bootstrap
from savi_plugin.eval.fixtures import offline_env
from tests.builders import random_lora_adapter
from tests.eval.judge import LocalJudge

LIMIT = 2
TASKS = [b.task for b in BUILTINS.values()]


@contextlib.contextmanager
def _environ(env: dict):
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _savi(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _samples(folder: Path, leaf: str) -> list[dict]:
    (path,) = folder.rglob(f"*_samples_{leaf}.jsonl")
    return sorted((json.loads(line) for line in path.read_text().splitlines() if line.strip()),
                  key=lambda s: s["doc_id"])


def _results(folder: Path) -> dict:
    (path,) = folder.rglob("*_results.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def suite(tmp_path_factory, tiny_llava_onevision):
    tmp = tmp_path_factory.mktemp("builtins")
    fixture = build_builtin_fixture(tmp / "hf", n=LIMIT)
    adapter = random_lora_adapter(tiny_llava_onevision, tmp / "aligned", seed=1)
    with LocalJudge() as judge:
        env = offline_env(tmp / "unused", tmp / "hf")
        env.pop("SAVI_DATA_ROOT")
        env.update(OPENAI_API_KEY="local-judge", OPENAI_API_URL=judge.url)
        with _environ(env):
            code, _out, err = _savi(["eval", "suite", ",".join(TASKS), "--model", str(tiny_llava_onevision),
                                    "--adapter", str(adapter), "--out", str(tmp / "suite"), "--limit", str(LIMIT),
                                    "--num-frames", "4", "--batch-size", "4"])
    assert code == 0, err[-3000:]
    return tmp, fixture, judge.requests, json.loads((tmp / "suite" / "table.json").read_text()), err


def _aggregate(leaf: str, samples: list[dict]) -> float:
    """The built-in's own aggregation (lmms-eval 0.7.3 ``utils.py``) recomputed from the per-sample verdicts."""
    right = [sample_score(leaf, s) / 100 for s in samples]
    name = LEAVES[leaf].benchmark
    if name == "mvbench":  # mvbench_aggregate_results: 100 * correct / non-empty answers
        answered = [r for r, s in zip(right, samples) if s["mvbench_accuracy"]["pred_answer"] != ""]
        return 100 * sum(answered) / len(answered) if answered else 0
    if name == "mlvu":  # mlvu_aggregate_results_dev: mean over its 7 task types, a type without items counts 0
        types = ("anomaly_reco", "count", "ego", "needle", "order", "plotQA", "topic_reasoning")
        per = [[r for r, s in zip(right, samples) if s["mlvu_percetion_score"]["task_type"] == t] for t in types]
        return sum(100 * sum(p) / len(p) if p else 0 for p in per) / len(types)
    scale = 100 if name in ("tempcompass", "videomme") else 1
    return scale * float(np.mean(right))


def test_every_builtin_task_runs_and_its_metric_is_its_own_aggregation_of_the_verdicts(suite):
    tmp, _, _, _, err = suite
    base = tmp / "suite" / "runs" / "base" / "lmms_eval"
    results = _results(base)
    assert f"base: {sys.executable} -m lmms_eval --model savi_video --model_args pretrained=" in err
    for group in ("mvbench", "tvbench"):  # lmms-eval 0.7.3 ran the groups (they have no aggregate of their own)
        assert set(results["group_subtasks"][group]) == {leaf for leaf, b in LEAVES.items() if b.task == group}
    assert len(LEAVES) == 9 - 2 + 20 + 10
    for leaf, builtin in LEAVES.items():
        metric = results["results"][leaf][f"{builtin.metric},none"]
        assert results["n-samples"][leaf]["effective"] == LIMIT, leaf
        samples = _samples(base, leaf)
        assert [s["doc_id"] for s in samples] == list(range(LIMIT))
        assert metric == pytest.approx(_aggregate(leaf, samples)), leaf


def test_the_builtin_prompt_reached_the_model_and_every_video_was_decoded(suite):
    tmp, fixture, _, _, _ = suite
    base = tmp / "suite" / "runs" / "base"
    log = (base / "lmms_eval.log").read_text()
    assert "4 frames" in log  # num_frames reached savi_video
    assert "savi_video generate: 100%" in log and f"{LIMIT * len(LEAVES)}/{LIMIT * len(LEAVES)}" in log
    for leaf in LEAVES:
        for sample in _samples(base / "lmms_eval", leaf):
            doc = sample["doc_id"]
            assert fixture.questions[leaf][doc] in sample["input"], (leaf, sample["input"])
            assert all(option in sample["input"] for option in fixture.options[leaf][doc]), leaf
            assert sample["filtered_resps"] not in ("", [""]), leaf  # savi_video answers "" when a video fails
    # savi_video logs "savi_video: <task> doc <n>: <reason>" for a video it cannot find or decode
    assert not [line for line in log.splitlines() if "savi_video: " in line and " doc " in line]


def test_tempcompass_falls_back_on_its_own_judge_prompt(suite):
    tmp, _, requests, _, _ = suite
    samples = _samples(tmp / "suite" / "runs" / "base" / "lmms_eval", "tempcompass_multi_choice")
    unmatched = [s for s in samples if not s["avg_accuracy"]["match_success"]]
    asked = [r["messages"][-1]["content"] for r in requests]
    for s in unmatched:  # both runs ask; the base run's questions are among the requests
        pred = s["avg_accuracy"]["video-llm-prediction"]
        assert any(f"Model Prediction: {pred}" in a and s["avg_accuracy"]["question"] in a for a in asked)
        assert s["avg_accuracy"]["rating"] == 0  # the local judge says "Incorrect"
    assert all(r["model"] == "gpt-3.5-turbo-1106" for r in requests)


def test_suite_table_over_the_builtins_equals_a_direct_computation(suite):
    tmp, _, _, table, _ = suite
    runs = tmp / "suite" / "runs"
    assert [r["task"] for r in table["rows"]] == TASKS and table["missing"] == []
    for row in table["rows"]:
        leaves = [leaf for leaf, b in LEAVES.items() if b.task == row["task"]]
        b = [sample_score(leaf, s) for leaf in leaves for s in _samples(runs / "base" / "lmms_eval", leaf)]
        a = [sample_score(leaf, s) for leaf in leaves for s in _samples(runs / "aligned" / "lmms_eval", leaf)]
        assert row["n"] == LIMIT * len(leaves)
        direct = paired_bootstrap(b, a)
        assert (row["base"], row["aligned"], row["delta"]) == pytest.approx((direct.base, direct.aligned,
                                                                             direct.delta))
        assert (row["low"], row["high"]) == pytest.approx((direct.low, direct.high))
    card = table["card"]
    assert card["tasks"]["videomme"]["benchmark"] == "videomme"
    assert card["tasks"]["mvbench_action_antonym"]["protocol"] == "lmms-eval built-in"
    assert "| videomme | aligned | 2 |" in (tmp / "suite" / "table.md").read_text()
    from savi_plugin.eval.suite import read_table

    assert read_table(tmp / "suite") == table  # the declared shape holds the built-ins' cards (lmms-eval's YAMLs)


# ------------------------------------------------------------------ the facts, against the installed YAMLs
class _Loader(yaml.SafeLoader):
    pass


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # !function: not needed here


def _task_yaml(folder: Path, name: str) -> dict:
    data = yaml.load((folder / name).read_text(), Loader=_Loader)
    if "include" in data:
        data = {**_task_yaml(folder, data.pop("include")), **data}
    return data


def _installed_tasks() -> dict[str, dict]:
    import lmms_eval

    tasks = {}
    folders = ("mvbench", "tvbench", "tempcompass", "videomme", "mlvu", "longvideobench", "nextqa", "perceptiontest",
               "egoschema")
    root = Path(lmms_eval.__file__).parent / "tasks"
    for path in (p for folder in folders for p in (root / folder).rglob("*.yaml")):
        try:
            data = _task_yaml(path.parent, path.name)
        except (yaml.YAMLError, OSError):
            continue
        if isinstance(data, dict) and isinstance(data.get("task"), str):
            tasks[data["task"]] = data
        if isinstance(data, dict) and isinstance(data.get("group"), str):
            tasks[data["group"]] = data
    return tasks


def test_builtin_facts_equal_the_installed_lmms_eval_yamls():
    installed = _installed_tasks()
    for builtin in BUILTINS.values():
        if builtin.task in ("mvbench", "tvbench"):  # a group: its YAML's task list is our leaves
            assert set(installed[builtin.task]["task"]) == set(builtin.configs)
        for leaf, config in builtin.configs.items():
            data = installed[leaf]
            assert data["dataset_path"] == builtin.dataset_path, leaf
            assert data.get("dataset_name") == config, leaf
            assert data["test_split"] == builtin.split, leaf
            assert data["dataset_kwargs"]["cache_dir"] == builtin.cache_dir, leaf
            assert data["dataset_kwargs"]["video"] is True, leaf
            assert any(m["metric"] == builtin.metric for m in data["metric_list"]), leaf


# ------------------------------------------------------------------ one line before the model loads
def _run(argv: list[str], monkeypatch, **env) -> tuple[int, str]:
    for key in ("HF_HOME", "HF_DATASETS_CACHE", "LMMS_EVAL_DATASETS_CACHE", "OPENAI_API_KEY", "HF_DATASETS_OFFLINE",
                "HF_HUB_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, _, err = _savi(argv)
    return code, err


def test_missing_builtin_data_is_one_line_before_the_model_loads(tmp_path, monkeypatch):
    run = ["eval", "run", "--", "--model", "savi_video", "--model_args", "pretrained=/no/model,num_frames=4",
           "--tasks", "perceptiontest_val_mc,videomme", "--limit", "1", "--output_path", str(tmp_path / "out")]
    hf = tmp_path / "hf"
    code, err = _run(run, monkeypatch, HF_HOME=str(hf), HF_HUB_OFFLINE="1")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.strip() == (
        f"error: perceptiontest_val_mc: no videos folder {hf}/perceptiontest_val and HF_HUB_OFFLINE=1 forbids "
        f"lmms-eval's download of lmms-eval/PerceptionTest_Val; run it once online with HF_HOME={hf}, or copy a "
        f"Hugging Face home that has it there (and 1 more built-in task(s) likewise)")
    (hf / "perceptiontest_val").mkdir(parents=True)  # videos, but no prepared dataset
    build_builtin_fixture(hf, ("videomme",), n=1)
    code, err = _run(run, monkeypatch, HF_HOME=str(hf), HF_DATASETS_OFFLINE="1")
    assert code == 2 and err.strip().startswith(
        f"error: perceptiontest_val_mc: lmms-eval/PerceptionTest_Val (config mc_question_val) is not in the "
        f"datasets cache {hf}/datasets and HF_DATASETS_OFFLINE=1 forbids its download; run it once online")
    assert "more built-in" not in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    code, err = _run(run, monkeypatch, HF_HOME=str(hf))  # online: the download needs a token (token: True)
    assert code == 2 and err.strip().startswith(
        "error: perceptiontest_val_mc: lmms-eval downloads lmms-eval/PerceptionTest_Val with token=True (its YAML) "
        "and no Hugging Face token is set; log in (hf auth login) or set HF_TOKEN")


def test_tempcompass_without_a_judge_key_and_suites_are_refused_before_any_folder(tmp_path, monkeypatch):
    hf = tmp_path / "hf"
    build_builtin_fixture(hf, ("tempcompass",), n=1)
    code, err = _run(["eval", "suite", "rrpo", "--model", "m", "--adapter", str(tmp_path / "a"), "--out",
                      str(tmp_path / "s")], monkeypatch, HF_HOME=str(hf), HF_HUB_OFFLINE="1")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.strip().splitlines()[-1].startswith(f"error: tvbench: no videos folder {hf}/tvbench and "
                                                   f"HF_HUB_OFFLINE=1 forbids lmms-eval's download of FunAILab/TVBench")
    assert not (tmp_path / "s").exists()
    out = tmp_path / "align"  # savi align: before the first iteration's generation and training, not after them
    code, err = _run(["align", "tiny_demo", "--out", str(out), "align.eval_every_iteration=true",
                      "eval.tasks=[savi_mvbench,tvbench]"], monkeypatch, HF_HOME=str(hf), HF_HUB_OFFLINE="1")
    assert code == 2 and err.strip().startswith("error: tvbench: no videos folder"), err
    assert not out.exists()
    code, err = _run(["eval", "run", "--", "--model", "savi_video", "--tasks", "tempcompass_multi_choice"],
                     monkeypatch, HF_HOME=str(hf), HF_HUB_OFFLINE="1")
    assert code == 2 and err.strip() == (
        "error: tempcompass_multi_choice: answers its rules cannot match are graded by an OpenAI judge "
        "(gpt-3.5-turbo-1106 at OPENAI_API_URL, default api.openai.com) and OPENAI_API_KEY is not set; set it (and "
        "OPENAI_API_URL for a compatible server), or leave the task out")


def test_a_sample_without_the_tasks_verdict_is_one_line_naming_task_doc_and_key():
    with pytest.raises(ValueError, match=r"^task 'videomme' doc 3: no per-sample 'videomme_perception_score' verdict"):
        sample_score("videomme", {"doc_id": 3, "accuracy": {"score": 100.0}})
    assert sample_score("egoschema_subset", {"doc_id": 0, "score": {"pred": 2, "ground_truth": "2"}}) == 100.0
    assert sample_score("mlvu_dev", {"doc_id": 0, "mlvu_percetion_score": {"pred_answer": "", "answer": "A"}}) == 0.0

"""Scoring is exact: through the real lmms-eval CLI, an oracle (answers from the fixture, in the forms
models write them) scores 100% on every task and on the MVBench group, and a model that always answers
"A" scores exactly the share of "A" answers in the fixture."""

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from savi_plugin.eval.fixtures import build_fixture, offline_env
from tests.builders import REPO_ROOT

TASKS = "savi_mvbench,savi_egoschema,savi_perceptiontest"
LIMIT = 6
SUBTASKS = ("moving_direction", "action_count", "state_change")


def _oracle_response(i: int, letter: str, text: str) -> str:
    """The correct answer in one of the forms real models produce, cycling through them."""
    forms = [letter, f"({letter}) {text}", f"The answer is {letter}.", text, f"Answer: {letter.lower()}",
             f"{letter}. {text}", f"I think it is {letter}."]
    return forms[i % len(forms)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("savi_scoring")
    root = tmp / "data"
    fixtures = [build_fixture(root, "mvbench", 3), build_fixture(root, "egoschema", 8, seed=1),
                build_fixture(root, "perceptiontest", 8, seed=2)]
    answers, records = {}, {}
    for fx in fixtures:
        answers.update(fx.answers)
        records.update(fx.records)
    # a throw-away distribution whose lmms_eval.models entry point registers the scripted model (tests/eval/scripted.py,
    # imported from the repository root)
    site = tmp / "site"
    dist = site / "savi_scripted_test-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: savi-scripted-test\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[lmms_eval.models]\nsavi_scripted = tests.eval.scripted:manifest\n")
    env = offline_env(root, tmp / "hf")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), str(REPO_ROOT), env.get("PYTHONPATH")]))
    return tmp, answers, records, env


def _options(task: str, record: dict) -> list[str]:
    if task == "savi_egoschema":
        return [o[3:] for o in record["option"]]  # stored as "A. text"
    return record["options"] if task == "savi_perceptiontest" else record["candidates"]


def _start(tmp, env, name: str, model_args: str) -> subprocess.Popen:
    out = tmp / name
    return subprocess.Popen(
        [sys.executable, "-m", "lmms_eval", "--model", "savi_scripted", "--model_args", model_args,
         "--tasks", TASKS, "--limit", str(LIMIT), "--output_path", str(out), "--log_samples"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _results(tmp, name: str, proc: subprocess.Popen) -> dict:
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output[-4000:]
    files = glob.glob(str(tmp / name / "**" / "*_results.json"), recursive=True)
    assert len(files) == 1, output[-2000:]
    return json.loads(Path(files[0]).read_text())


def test_oracle_scores_100_and_always_a_scores_the_share_of_a(setup):
    tmp, answers, records, env = setup
    responses = {}
    for task, recs in records.items():
        responses[task] = [_oracle_response(i, "ABCDE"[answers[task][i]], _options(task, r)[answers[task][i]])
                           for i, r in enumerate(recs)]
    (tmp / "oracle.json").write_text(json.dumps(responses))

    # the two runs are independent processes: run them side by side
    running = {"oracle": _start(tmp, env, "oracle", f"responses={tmp / 'oracle.json'}"),
               "always_a": _start(tmp, env, "always_a", "constant=A")}
    oracle, always_a = (_results(tmp, name, proc) for name, proc in running.items())

    scored = [t for t in oracle["results"] if t != "savi_mvbench"]
    assert len(scored) == 22  # 20 MVBench subtasks + EgoSchema + PerceptionTest
    total_a = total = 0
    for task in scored:
        n = min(LIMIT, len(answers[task]))
        share_a = 100.0 * sum(a == 0 for a in answers[task][:n]) / n
        total_a += sum(a == 0 for a in answers[task][:n])
        total += n
        assert oracle["results"][task]["accuracy,none"] == 100.0, task
        assert oracle["results"][task]["unparsed,none"] == 0
        assert always_a["results"][task]["accuracy,none"] == pytest.approx(share_a, abs=1e-9), task
        assert always_a["n-samples"][task]["effective"] == n
    # the group score is over all scored MVBench questions
    mv = [t for t in scored if t.startswith("savi_mvbench_")]
    mv_a = sum(sum(a == 0 for a in answers[t][:LIMIT]) for t in mv)
    mv_n = sum(min(LIMIT, len(answers[t])) for t in mv)
    assert oracle["results"]["savi_mvbench"]["accuracy,none"] == pytest.approx(100.0)
    assert always_a["results"]["savi_mvbench"]["accuracy,none"] == pytest.approx(100.0 * mv_a / mv_n, abs=1e-9)
    # the fixtures are not degenerate: "A" is right sometimes but not always
    assert 0 < total_a < total


def test_scoring_functions_directly(setup):
    """process_results + aggregation, without lmms-eval's runner: unparsed counts as wrong, never a guess."""
    from savi_plugin.eval.task import (
        aggregate_accuracy,
        aggregate_count,
        process_results,
    )

    _, answers, records, _ = setup
    doc = dict(records["savi_perceptiontest"][0], savi_video="x.mp4", savi_video_found=True,
               savi_benchmark="perceptiontest")
    target = answers["savi_perceptiontest"][0]
    right = process_results(doc, ["ABC"[target]])
    wrong = process_results(doc, ["ABC"[(target + 1) % 3]])
    unparsed = process_results(doc, ["no idea"])
    missing = process_results(dict(doc, savi_video_found=False), ["ABC"[target]])
    items = [r["accuracy"] for r in (right, wrong, unparsed, missing)]
    assert [i["score"] for i in items] == [100.0, 0.0, 0.0, 0.0]
    assert aggregate_accuracy(items) == 25.0
    assert aggregate_count([r["unparsed"] for r in (right, wrong, unparsed, missing)]) == 1
    assert aggregate_count([r["missing_video"] for r in (right, wrong, unparsed, missing)]) == 1
    ego = dict(records["savi_egoschema"][0], savi_video="x.mp4", savi_video_found=True, savi_benchmark="egoschema")
    labelled = ego["option"][answers["savi_egoschema"][0]]  # the option string itself, "X. " label included
    assert process_results(ego, [labelled])["accuracy"]["score"] == 100.0

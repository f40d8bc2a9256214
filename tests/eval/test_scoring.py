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
    build_fixture(root, "videohallucer", 3)  # for the variants' run only
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


#: replies in forms models write, and whether each reference rule reads them as one option (1: parsed): lmms-eval's
#: MVBench ``mcq_acc``, EgoSchema MMMU parse (no label found: its random pick), PerceptionTest's first standalone A-D;
#: the MVBench notebook's ``check_ans`` on ``"(" +`` the reply, RRPO's first letter; VideoHallucer's yes/no anywhere
READ_BY_RULE = {
    #                   lmms_mv  lmms_ego  lmms_pt  official  rrpo  vh_official
    "B":                (1,      1,        1,       1,        1,    0),
    "(B) the dog":      (1,      1,        1,       1,        1,    0),
    "green":            (0,      0,        0,       0,        0,    0),  # N #61: no letter, no option read
    "":                 (0,      0,        0,       0,        0,    0),
    "yes":              (0,      0,        0,       0,        0,    1),
    "The answer is B":  (1,      1,        1,       0,        0,    0),  # "(the" / "T": no option
}
VARIANTS = {"savi_mvbench_lmms_action_count": 0, "savi_mvbench_lmms_moving_direction": 0,
            "savi_egoschema_lmms": 1, "savi_perceptiontest_lmms": 2,
            "savi_mvbench_official_action_count": 3, "savi_mvbench_official_moving_direction": 3,
            "savi_mvbench_rrpo_action_count": 4, "savi_mvbench_rrpo_moving_direction": 4,
            "savi_videohallucer_official_temporal": 5}


@pytest.fixture(scope="module")
def variant_run(setup):
    """One lmms-eval run of every reference variant (``_lmms``, ``_official``, ``_rrpo``) on the replies of
    :data:`READ_BY_RULE`, cycled by document (MVBench's second subtask from the fourth reply on)."""
    tmp, _, _, env = setup
    replies = list(READ_BY_RULE)
    responses = {task: [replies[(i + (3 if task.endswith("moving_direction") else 0)) % len(replies)]
                        for i in range(8)] for task in VARIANTS}
    (tmp / "variants.json").write_text(json.dumps(responses))
    proc = subprocess.run(
        [sys.executable, "-m", "lmms_eval", "--model", "savi_scripted", "--model_args",
         f"responses={tmp / 'variants.json'}", "--tasks", ",".join(VARIANTS), "--limit", str(LIMIT),
         "--output_path", str(tmp / "variants"), "--log_samples"],
        env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (results,) = glob.glob(str(tmp / "variants" / "**" / "*_results.json"), recursive=True)
    return json.loads(Path(results).read_text()), tmp / "variants", responses


@pytest.mark.parametrize("task", VARIANTS)
def test_every_variant_counts_unparsed_by_the_rule_it_scores_by(variant_run, task):
    """Pass 26 N #61: ``savi_egoschema_lmms`` looked to count scored replies as unparsed, and lmms-eval's MVBench
    rule counted every non-empty reply as parsed (``green`` too, which it reads as no option). Each variant's
    ``unparsed`` is what its own rule could not read as one option, per sample in the log and summed in the
    results (EgoSchema's: no label found, the item scored by lmms-eval's random pick)."""
    results, out, responses = variant_run
    (log,) = glob.glob(str(out / "**" / f"*_samples_{task}.jsonl"), recursive=True)
    samples = [json.loads(line) for line in Path(log).read_text().splitlines() if line.strip()]
    assert samples
    for sample in samples:
        reply = responses[task][sample["doc_id"]]
        read = READ_BY_RULE[reply][VARIANTS[task]]
        assert sample["unparsed"] == 1 - read, (task, sample["doc_id"], reply)
    assert results["results"][task]["unparsed,none"] == sum(s["unparsed"] for s in samples)

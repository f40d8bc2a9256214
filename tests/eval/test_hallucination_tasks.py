"""VideoHallucer and VidHalluc through the real lmms-eval CLI, offline on their synthetic fixtures:

* the tiny ``savi_video`` model answers both groups (``--limit``); every reported figure equals the pure scoring
  functions applied to the replies lmms-eval logged, and the paired items are pairs / questions;
* a scripted model (tests/eval/scripted.py) replays known replies in one run: an oracle (answers in the forms models
  write them) scores 100 on every task of our rule and of VidHalluc, and always-"Yes" on the official-rule tasks
  gives the yes-bias figures of evaluation_bias.py (+0.5, -0.5, 1.0).
"""

import glob
import json
import subprocess
import sys
from pathlib import Path

import pytest

from savi_plugin.data.yes_no import yes_no_answer
from savi_plugin.eval import videohallucer as vh
from savi_plugin.eval import vidhalluc as vl
from savi_plugin.eval.fixtures import build_fixture, offline_env
from savi_plugin.eval.results import read_run, unusable_items
from savi_plugin.eval.suite import compare_runs
from savi_plugin.models.tiny import build_tiny_model
from tests.builders import REPO_ROOT, install_distribution

N = 2  # pairs per VideoHallucer subset, items per VidHalluc part
LIMIT = 4
FIVE = [f"savi_videohallucer_{s}" for s in vh.OVERALL_SUBSETS]
PARTS = [f"savi_vidhalluc_{p}" for p in vl.PARTS]


def _run(env, out: Path, model: str, model_args: str, tasks: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lmms_eval", "--model", model, "--model_args", model_args,
                             "--tasks", tasks, "--output_path", str(out), "--log_samples", *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, out: Path):
    output, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, output[-4000:]
    assert len(glob.glob(str(out / "**" / "*_results.json"), recursive=True)) == 1, output[-2000:]
    return read_run(out)


def _docs(root: Path) -> dict[str, list[dict]]:
    """Each task's documents in lmms-eval's order (the benchmarks' own flatten of the fixture's files)."""
    docs = {}
    for subset in vh.SUBSETS:
        path = root / "videohallucer" / subset / f"{subset}.json"
        docs[f"savi_videohallucer_{subset}"] = vh.flatten(json.loads(path.read_text()), path)
        docs[f"savi_videohallucer_official_{subset}"] = docs[f"savi_videohallucer_{subset}"]
    for part in vl.PARTS:
        path = root / "vidhalluc" / f"{part}.json"
        docs[f"savi_vidhalluc_{part}"] = vl.flatten(json.loads(path.read_text()), path)
    return docs


def _oracle(task: str, doc: dict, i: int) -> str:
    if task.startswith("savi_videohallucer_official"):
        return "Yes"
    if task.startswith("savi_videohallucer"):
        forms = ("Yes", "yes.", "Yes, it is.") if doc["answer"] == "yes" else ("No", "No, it is not.", "The answer is no.")
        return forms[i % 3]
    part = doc["part"]
    if part == "ach_binaryqa":
        return f"{doc['answer']}."
    if part == "sth":
        return ("Scene change: Yes, Locations: from a kitchen to a garden." if doc["answer"] == "Yes"
                else "Scene change: No, Locations: None")
    return doc["answer"]  # MCQ letter, TSH order


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("halluc_cli")
    root = tmp / "data"
    build_fixture(root, "videohallucer", N)
    build_fixture(root, "vidhalluc", N)
    gone = root / "videohallucer" / "temporal" / "videos" / "temporal_0_0001.mp4"
    gone.unlink()  # pair 1 of temporal has no video: both its questions are missing_video
    docs = _docs(root)
    responses = {task: [_oracle(task, d, i) for i, d in enumerate(ds)] for task, ds in docs.items()}
    (tmp / "oracle.json").write_text(json.dumps(responses))
    site = install_distribution(tmp / "site", None, "savi-scripted-halluc", {},
                                {"lmms_eval.models": {"savi_scripted": "tests.eval.scripted:manifest"}})
    env = offline_env(root, tmp / "hf")
    env["PYTHONPATH"] = f"{site}:{REPO_ROOT}:{env.get('PYTHONPATH', '')}"
    model = build_tiny_model(tmp / "tiny", "llava_onevision")
    scripted = "savi_videohallucer,savi_videohallucer_official,savi_videohallucer_fact_detect,savi_vidhalluc"
    procs = {
        "tiny": (_run(env, tmp / "tiny_out", "savi_video", f"pretrained={model},num_frames=4",
                      "savi_videohallucer,savi_vidhalluc", "--limit", str(LIMIT), "--batch_size", "2",
                      "--gen_kwargs", "max_new_tokens=6"), tmp / "tiny_out"),
        "oracle": (_run(env, tmp / "oracle_out", "savi_scripted", f"responses={tmp / 'oracle.json'}", scripted),
                   tmp / "oracle_out"),
    }
    return {name: _finish(proc, out) for name, (proc, out) in procs.items()}, docs


def _reply(sample: dict) -> str:
    resp = sample["filtered_resps"]
    return resp[0] if isinstance(resp, list) else resp


def _metric(run, task, name):
    return run.results["results"][task][f"{name},none"]


def test_tiny_savi_video_figures_are_the_scoring_functions_on_its_replies(runs):
    by_name, docs = runs
    run = by_name["tiny"]
    for task in FIVE:
        samples = sorted(run.samples[task], key=lambda s: s["doc_id"])
        assert len(samples) == LIMIT and _metric(run, task, "incomplete_pairs") == 0
        hits, bias = [], []
        for k in range(0, LIMIT, 2):
            basic, halluc = samples[k], samples[k + 1]
            found = [docs[task][s["doc_id"]]["video"] != "temporal_0_0001.mp4" for s in (basic, halluc)]
            b, h = _reply(basic), _reply(halluc)
            hits.append((found[0] and vh.careful_hit("yes", b), found[1] and vh.careful_hit("no", h)))
            bias.append((found[0] and yes_no_answer(b) == "yes", found[1] and yes_no_answer(h) == "no"))
        scores, figures = vh.pair_scores(hits), vh.bias_figures(bias)
        assert _metric(run, task, "accuracy") == pytest.approx(100 * scores["accuracy"])
        assert _metric(run, task, "basic_accuracy") == pytest.approx(100 * scores["basic_accuracy"])
        assert _metric(run, task, "yes_difference") == pytest.approx(figures["yes_difference"])
        assert _metric(run, task, "false_positive_ratio") == pytest.approx(figures["false_positive_ratio"])
        unparsed = sum(yes_no_answer(_reply(s)) is None for s in samples
                       if docs[task][s["doc_id"]]["video"] != "temporal_0_0001.mp4")
        assert _metric(run, task, "unparsed") == unparsed
    assert _metric(run, "savi_videohallucer_temporal", "missing_video") == 2
    group = run.results["results"]["savi_videohallucer"]
    assert group["accuracy,none"] == pytest.approx(sum(_metric(run, t, "accuracy") for t in FIVE) / 5)
    assert group["missing_video,none"] == 2
    # paired items: the pairs (LIMIT / 2 per subset)
    items = run.item_scores("savi_videohallucer")
    assert len(items) == 5 * LIMIT // 2 and all(v in (0.0, 100.0) for v in items.values())
    assert "savi_videohallucer_temporal/temporal/1" in items
    delta = compare_runs(run, run, ["savi_videohallucer", "savi_vidhalluc"])  # what `savi eval suite` pairs
    # the pair whose video is missing is left out of the comparison and counted
    (gone,) = unusable_items(run, "savi_videohallucer")
    assert gone.startswith("savi_videohallucer_temporal/") and gone in items
    assert (delta["savi_videohallucer"].n, delta["savi_videohallucer"].excluded) == (5 * LIMIT // 2 - 1, 1)
    assert delta["savi_videohallucer"].delta == 0.0
    for task in PARTS:
        samples = run.samples[task]
        graded = [vl.grade(docs[task][s["doc_id"]], _reply(s)) for s in samples]
        assert _metric(run, task, "unparsed") == sum(not read for _, read in graded), task
    mcq = [vl.grade(docs["savi_vidhalluc_ach_mcq"][s["doc_id"]], _reply(s))[0]
           for s in run.samples["savi_vidhalluc_ach_mcq"]]
    assert _metric(run, "savi_vidhalluc_ach_mcq", "accuracy") == pytest.approx(100 * sum(mcq) / len(mcq))
    sth = run.samples["savi_vidhalluc_sth"]
    truth = [docs["savi_vidhalluc_sth"][s["doc_id"]]["answer"] == "Yes" for s in sth]
    said = [vl.sth_says_change(_reply(s)) for s in sth]
    assert _metric(run, "savi_vidhalluc_sth", "mcc") == pytest.approx(vl.matthews(truth, said))


def test_oracle_scores_100_and_always_yes_gives_the_bias_figures(runs):
    by_name, docs = runs
    run = by_name["oracle"]
    for subset in vh.OVERALL_SUBSETS:
        ours, official = f"savi_videohallucer_{subset}", f"savi_videohallucer_official_{subset}"
        complete = 1.0 if subset != "temporal" else 0.5  # temporal pair 1 has no video
        assert _metric(run, ours, "accuracy") == 100 * complete and _metric(run, ours, "unparsed") == 0
        # always "Yes" (official rule): every basic question right, every hallucinated one wrong
        assert _metric(run, official, "basic_accuracy") == 100 * complete
        assert _metric(run, official, "halluc_accuracy") == 0.0 and _metric(run, official, "accuracy") == 0.0
        if subset != "temporal":
            assert _metric(run, official, "yes_difference") == 0.5
            assert _metric(run, official, "no_difference") == -0.5
            assert _metric(run, official, "false_positive_ratio") == 1.0
    assert _metric(run, "savi_videohallucer_fact_detect", "fact_score") == 100.0
    assert run.results["results"]["savi_videohallucer"]["accuracy,none"] == pytest.approx(90.0)
    official_group = run.results["results"]["savi_videohallucer_official"]
    assert official_group["yes_difference,none"] == pytest.approx((4 * 0.5 + 0.0) / 5)  # temporal: 0 (size-weighted)
    for task in PARTS:
        assert _metric(run, task, "accuracy") == 100.0, task
    assert _metric(run, "savi_vidhalluc_sth", "mcc") == 1.0
    assert _metric(run, "savi_vidhalluc_sth", "classification_score") == 1.0
    items = run.item_scores("savi_vidhalluc")
    assert len(items) == 4 * N and all(v == 100.0 for v in items.values())  # a BQA item: a question, two clips
    assert len(docs["savi_vidhalluc_ach_binaryqa"]) == 2 * N

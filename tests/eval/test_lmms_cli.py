"""The real `lmms-eval` command runs the tiny savi_video model on savi_mvbench, savi_egoschema and
savi_perceptiontest from a local SAVI_DATA_ROOT, fully offline, and writes the metrics; a missing video is
a counted failure, not a crash."""

import glob
import json
import subprocess
import sys
from pathlib import Path

import pytest

from savi_plugin.eval.answers import extract_choice
from savi_plugin.eval.fixtures import build_fixture, offline_env
from savi_plugin.eval.results import overall_counts
from savi_plugin.models.tiny import build_tiny_model
from tests.builders import LMMS_EVAL, random_lora_adapter, repo_pythonpath

LIMIT = 2


def _jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("savi_lmms_cli")
    root = tmp / "data"
    build_fixture(root, "mvbench", LIMIT)
    pt = build_fixture(root, "perceptiontest", 3)
    broken = pt.records["savi_perceptiontest"][1]["video_name"]
    (root / "perceptiontest" / "videos" / f"{broken}.mp4").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300))  # undecodable
    ego = build_fixture(root, "egoschema", 3)
    gone = ego.records["savi_egoschema"][1]["video_idx"]
    (root / "egoschema" / "videos" / f"{gone}.mp4").unlink()  # doc 1's video is missing
    model = build_tiny_model(tmp / "tiny", "llava_onevision")
    adapter = random_lora_adapter(model, tmp / "adapter")
    out = tmp / "out"
    refusals = _start_refusals(tmp)  # their lmms-eval processes start (~15 s each) while this one runs
    # README's lines (README.md, eval_tasks/README.md "Running"): a model, its adapter, frames and dtype
    proc = subprocess.run(
        [*LMMS_EVAL, "--model", "savi_video", "--model_args",
         f"pretrained={model},adapter={adapter},num_frames=4,dtype=bfloat16",
         "--tasks", "savi_mvbench,savi_egoschema,savi_perceptiontest", "--limit", str(LIMIT), "--batch_size", "4",
         "--output_path", str(out), "--log_samples"],
        env=offline_env(root, tmp / "hf"), capture_output=True, text=True, timeout=400, check=False)
    try:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        results = glob.glob(str(out / "**" / "*_results.json"), recursive=True)
        assert len(results) == 1, proc.stdout[-2000:]
        yield json.loads(Path(results[0]).read_text()), out, proc.stdout + proc.stderr, gone, tmp, refusals
    finally:
        for refusal in refusals.values():
            if refusal.poll() is None:
                refusal.kill()
            refusal.communicate()


def _start_refusals(tmp: Path) -> dict[str, subprocess.Popen]:
    """The lmms-eval runs that savi_video stops before any document, started together (each spends its time
    importing torch and lmms-eval): ``num_frames=0``, and launcher variables left in the shell (:func:`_finished`
    gives each one's result)."""
    model = tmp / "tiny"
    bad = tmp / "bad_num_frames"
    build_fixture(bad / "data", "perceptiontest", 1)
    stray_env = {k: v for k, v in offline_env(tmp / "data", tmp / "hf").items()
                 if k not in ("LOCAL_RANK", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID", "LOCAL_SIZE", "GROUP_RANK")}
    runs = {
        "bad_num_frames": ([*LMMS_EVAL, "--model", "savi_video", "--model_args", f"pretrained={model},num_frames=0",
                            "--tasks", "savi_perceptiontest", "--limit", "1", "--output_path", str(bad / "out")],
                           offline_env(bad / "data", bad / "hf")),
        "stray": ([*LMMS_EVAL, "--model", "savi_video", "--model_args", f"pretrained={model},num_frames=4",
                   "--tasks", "savi_perceptiontest", "--limit", "1", "--output_path", str(tmp / "stray")],
                  {**stray_env, "RANK": "1", "WORLD_SIZE": "2"}),
    }
    return {name: subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for name, (cmd, env) in runs.items()}


def _finished(run, name: str) -> subprocess.CompletedProcess:
    """The finished refusal run ``name`` of the :func:`run` fixture."""
    proc = run[-1][name]
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_results_json_holds_the_metrics(run):
    results, *_ = run
    res = results["results"]
    assert len([t for t in res if t.startswith("savi_mvbench_")]) == 20
    for task in ("savi_mvbench", "savi_egoschema", "savi_perceptiontest", "savi_mvbench_moving_direction"):
        assert 0.0 <= res[task]["accuracy,none"] <= 100.0, task
    for task in ("savi_egoschema", "savi_perceptiontest", "savi_mvbench_moving_direction"):
        assert results["n-samples"][task]["effective"] == LIMIT
        assert res[task]["missing_video,none"] + res[task]["unparsed,none"] <= LIMIT
    assert "savi_mvbench" in results["groups"]
    assert results["config"]["model"] == "savi_video"


def test_missing_video_is_a_counted_failure(run):
    results, out, log, gone, *_ = run
    assert results["results"]["savi_egoschema"]["missing_video,none"] == 1
    assert results["results"]["savi_perceptiontest"]["missing_video,none"] == 0
    # the undecodable video is a bad video, not an unparsed answer
    assert results["results"]["savi_perceptiontest"]["bad_video,none"] == 1
    assert results["results"]["savi_egoschema"]["bad_video,none"] == 0
    assert {"unparsed,none", "missing_video,none", "bad_video,none"} <= set(results["groups"]["savi_mvbench"])
    overall = overall_counts(results)  # the run's totals: groups count once
    assert (overall["missing_video"], overall["bad_video"]) == (1, 1)
    assert overall["unparsed"] == sum(results["results"][t]["unparsed,none"]
                                      for t in ("savi_mvbench", "savi_egoschema", "savi_perceptiontest"))
    assert f"{gone}.mp4" in log and "scored wrong" in log  # the message names the file
    samples = _jsonl(glob.glob(str(out / "**" / "*_samples_savi_egoschema.jsonl"), recursive=True)[0])
    by_doc = {s["doc_id"]: s for s in samples}
    assert by_doc[1]["missing_video"] == 1 and by_doc[1]["accuracy"]["score"] == 0.0


def test_prompts_frames_and_per_sample_scores(run):
    _, out, log, *_ = run
    assert "4 frames" in log  # num_frames from --model_args reached the model
    assert " + adapter " in log and "bfloat16" in log  # so did the adapter and the dtype
    for path in glob.glob(str(out / "**" / "*_samples_savi_*.jsonl"), recursive=True):
        for sample in _jsonl(path):
            prompt = sample["input"]
            assert prompt.startswith("Question: ") and ("\n(A) " in prompt or "\nA. " in prompt), prompt
            assert prompt.endswith("Answer with the option's letter from the given choices directly.")
            if sample["missing_video"] or sample["bad_video"]:
                continue
            # the stored score is exactly what answer extraction makes of the stored response
            options = [ln.split(" ", 1)[1] for ln in prompt.splitlines() if ln[:2] in {"(A", "(B", "(C", "(D", "(E"}
                       or ln[:3] in {"A. ", "B. ", "C. ", "D. ", "E. "}]
            pred = extract_choice(sample["filtered_resps"][0] if isinstance(sample["filtered_resps"], list)
                                  else sample["filtered_resps"], options)
            assert sample["accuracy"]["pred"] == pred
            assert sample["accuracy"]["score"] == (100.0 if pred == sample["accuracy"]["target"] else 0.0)


def test_bad_num_frames_is_one_line_before_any_document(run):
    """``num_frames=0`` (the run started by the :func:`run` fixture, on its own one-document data root)."""
    tmp = run[-2] / "bad_num_frames"
    proc = _finished(run, "bad_num_frames")
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == "savi_video: num_frames must be >= 1, got 0"
    assert "Traceback" not in proc.stderr
    assert not glob.glob(str(tmp / "out" / "**" / "*_results.json"), recursive=True)


def test_savi_eval_run_adds_the_include_path(run):
    """eval_tasks/README.md's `savi eval run -- --model savi_video ... --tasks savi_mvbench` where lmms-eval does not
    register our tasks itself (SAVI_LMMS_EVAL_AUTOLOAD=0): `savi eval run` passes our task folder and the real
    lmms-eval evaluates (the run fixture's model for `...`, one document per subtask). The model folder is named
    ``1e5`` and given relative, as a user types it: lmms-eval's parser would read it as the float 100000.0, so it
    goes as a link (:func:`savi_plugin.eval.command.safe_model_args`), and lmms-eval names its results folder as it
    would for the folder itself. The model and tasks come from lmms-eval's own ``--config`` file, whose checked keys
    take the same route as flags (:mod:`savi_plugin.eval.lmms_config`)."""
    import shutil

    tmp = run[-2]
    if not (tmp / "1e5").exists():
        shutil.copytree(tmp / "tiny", tmp / "1e5")
    env = {**offline_env(tmp / "data", tmp / "hf"), "SAVI_LMMS_EVAL_AUTOLOAD": "0", "PYTHONPATH": repo_pythonpath()}
    # the model, its arguments and the tasks in lmms-eval's own --config file (keys savi checks, given to lmms-eval
    # as flags), log_samples left for lmms-eval to read from the file; --limit and --output_path as flags
    (tmp / "run.yaml").write_text("model: savi_video\nmodel_args: pretrained=1e5,num_frames=4\ntasks: savi_mvbench\n"
                                  "log_samples: true\n")
    proc = subprocess.run(
        [sys.executable, "-m", "savi_plugin", "eval", "run", "--", "--config", "run.yaml", "--limit", "1",
         "--output_path", str(tmp / "eval_run")],
        env=env, cwd=tmp, capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "--include_path" in proc.stderr  # the command it ran, printed
    assert glob.glob(str(tmp / "eval_run" / "**" / "*_samples_savi_mvbench_*.jsonl"), recursive=True)
    (results,) = glob.glob(str(tmp / "eval_run" / "**" / "*_results.json"), recursive=True)
    assert Path(results).parent.name == f"{tmp.name}__1e5"  # lmms-eval's name for {tmp}/1e5: its last two parts
    kept = json.loads(Path(results).read_text())  # names the model evaluated, not the link removed at exit
    assert kept["model_name"] == str(tmp / "1e5") and kept["config"]["model_args"].startswith(f"pretrained={tmp}/1e5,")
    res = kept["results"]
    assert len([t for t in res if t.startswith("savi_mvbench_")]) == 20 and "savi_mvbench" in res


def test_launcher_variables_left_in_the_shell_stop_savi_video_in_one_line(run):
    """``RANK=1 WORLD_SIZE=2 python -m lmms_eval --model savi_video ...`` with no launcher: lmms-eval 0.7.3 would
    evaluate as rank 1 of 2 (it reads them after the model is built); savi_video's constructor refuses, naming the
    variables, with a non-zero exit and no results file (our task hook's warning comes first). The run is started
    by the :func:`run` fixture."""
    tmp = run[-2]
    proc = _finished(run, "stray")
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert last.startswith("savi_video: RANK=1, WORLD_SIZE=2 set but no launcher") and "unset RANK WORLD_SIZE" in last
    assert not glob.glob(str(tmp / "stray" / "**" / "*_results.json"), recursive=True)

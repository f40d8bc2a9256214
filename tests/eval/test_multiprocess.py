"""savi_video under a two-process launch (torchrun, which `accelerate launch` uses; accelerate's multi-CPU
mode with gloo here): each rank loads the model and answers its own share of the documents, and rank 0
reports them all, each exactly once."""

import glob
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from savi_plugin.eval.fixtures import build_fixture, offline_env
from savi_plugin.models.tiny import build_tiny_model


def test_two_processes_split_the_documents(tmp_path):
    build_fixture(tmp_path / "data", "perceptiontest", 5)
    model = build_tiny_model(tmp_path / "tiny")
    env = offline_env(tmp_path / "data", tmp_path / "hf")
    env.update(OMP_NUM_THREADS="1", ACCELERATE_USE_CPU="1")  # no GPU here: accelerate's multi-CPU (gloo) mode
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "lmms_eval", "--model", "savi_video", "--model_args", f"pretrained={model},num_frames=2",
         "--tasks", "savi_perceptiontest", "--output_path", str(tmp_path / "out"), "--log_samples",
         "--verbosity", "DEBUG"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:  # never leave the two workers behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, log[-4000:]
    assert "rank 0/2" in log and "rank 1/2" in log  # the wrapper took rank and world size from accelerate
    assert "number of requests on this rank: 3" in log and "number of requests on this rank: 2" in log
    results = json.loads(Path(glob.glob(str(tmp_path / "out" / "**" / "*_results.json"), recursive=True)[0]).read_text())
    assert results["n-samples"]["savi_perceptiontest"]["effective"] == 5
    samples = glob.glob(str(tmp_path / "out" / "**" / "*_samples_savi_perceptiontest.jsonl"), recursive=True)
    assert sorted(json.loads(line)["doc_id"] for line in Path(samples[0]).read_text().splitlines()) == [0, 1, 2, 3, 4]

"""The documented multi-process command line, on CPU: `torchrun ... -m savi_plugin train RECIPE key=value ...`."""

import json
import os
import subprocess
import sys

from tests.builders import free_port, write_answer_pairs


def test_torchrun_savi_train_runs_two_ranks(tiny_llava_onevision, synthetic_samples, tmp_path):
    data = write_answer_pairs(tmp_path / "pairs.jsonl", synthetic_samples[:8], rotate=False, chosen="{}", rejected="{}")
    port = free_port()
    out = tmp_path / "out"
    # On a CPU-only machine transformers stays single-process unless use_cpu is set (README says so).
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "-m", "savi_plugin", "train", "tiny_demo", "--model", str(tiny_llava_onevision), "--data", str(data),
           "--output-dir", str(out), "train.max_steps=2", "train.per_device_train_batch_size=2",
           "train.save_strategy='no'", "train.use_cpu=true", "model.num_frames=4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads((out / "train_report.json").read_text())
    # 8 pairs, 2 per device, 2 ranks: 2 optimizer steps are exactly one epoch only if both ranks trained
    assert report["global_step"] == 2 and report["train_metrics"]["epoch"] == 1.0
    assert (out / "adapter_model.safetensors").is_file()

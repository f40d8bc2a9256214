"""Every launch line README documents, run as written on CPU with 2 processes (gloo), against a one-process run.

`savi train` under torchrun (DDP and ZeRO-3), accelerate launch and deepspeed's own launcher (ZeRO-2, which
appends `--local_rank=N`), and a DeepSpeed recipe with no launcher at all (ZeRO-3, one process, with stray
`RANK=1 WORLD_SIZE=2` left in the shell). With the same global batch (2 x 2 pairs against 1 x 4) and sequential
order, each run logs the same losses and saves the same adapter as the plain one-process run. Two nodes are
simulated on localhost (`torchrun --nnodes 2 --node_rank 0/1`, each "node" in its own working folder).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import free_port, repo_pythonpath, write_answer_pairs

COMMON = ["train.max_steps=2", "train.save_strategy='no'", "train.use_cpu=true", "model.num_frames=4",
          "train.train_sampling_strategy=sequential", "train.learning_rate=0.01", "lora.r=4", "lora.alpha=8"]
ZERO2, ZERO3 = "zero2", "zero3"  # shipped configs by their bare names, as README names them


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONPATH": repo_pythonpath(), **extra}


def _train_args(model, data, out, batch: int, *extra) -> list[str]:
    return ["train", "tiny_demo", "--model", str(model), "--data", str(data), "--output-dir", str(out),
            f"train.per_device_train_batch_size={batch}", *COMMON, *extra]


def _launch(kind: str, port: int) -> list[str]:
    py = sys.executable
    return {
        # README: torchrun --nproc_per_node N -m savi_plugin train RECIPE
        "torchrun": [py, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
                     "-m", "savi_plugin"],
        # README: accelerate launch --multi_gpu --num_processes N -m savi_plugin train RECIPE
        "accelerate": [py, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                       "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                       "--main_process_port", str(port), "-m", "savi_plugin"],
        # README: deepspeed --num_gpus N --module savi_plugin train RECIPE (appends --local_rank=N)
        "deepspeed": [py, "-m", "deepspeed.launcher.runner", "--num_gpus", "2", "--master_port", str(port),
                      "--module", "savi_plugin"],
        # no launcher: one process
        "none": [py, "-m", "savi_plugin"],
    }[kind]


def _run(cmd, out, env=None, timeout=900):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or _env())
    assert proc.returncode == 0, proc.stdout[-2500:] + proc.stderr[-4000:]
    report = json.loads((out / "train_report.json").read_text())
    return proc, report


def _adapter(out) -> dict:
    from safetensors.torch import load_file

    return load_file(str(out / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def one_process(tiny_llava_onevision, synthetic_samples, tmp_path_factory):
    """The plain one-process run: 1 x 4 pairs per step, 2 steps."""
    folder = tmp_path_factory.mktemp("launch")
    data = write_answer_pairs(folder / "pairs.jsonl", synthetic_samples[:8], rotate=False)
    out = folder / "plain"
    _, report = _run(_launch("none", 0) + _train_args(tiny_llava_onevision, data, out, 4), out)
    return data, report, _adapter(out)


def _losses(report) -> list[float]:
    return [h["loss"] for h in report["log_history"] if "rewards/margins" in h]


@pytest.mark.parametrize("kind, deepspeed, reference", [
    ("torchrun", None, "adapter"), ("torchrun", ZERO3, "adapter"), ("accelerate", None, "adapter"),
    ("deepspeed", ZERO2, "adapter"), ("none", ZERO3, "adapter"), ("torchrun", ZERO3, "model")],
    ids=["torchrun-ddp", "torchrun-zero3", "accelerate-ddp", "deepspeed-zero2", "no-launcher-zero3",
         "torchrun-zero3-reference-model"])
def test_launch_line_matches_the_one_process_run(kind, deepspeed, reference, one_process, tiny_llava_onevision,
                                                 tmp_path):
    """Each launch line gives the one-process run's losses and adapter. With ``reference: model`` the reference is
    a second, frozen copy of the base checkpoint (partitioned by its own engine under ZeRO-3): the same numbers as
    the policy with its adapter disabled."""
    if deepspeed:
        pytest.importorskip("deepspeed")
    data, plain, plain_adapter = one_process
    out = tmp_path / "out"
    batch = 4 if kind == "none" else 2
    extra = [f"train.deepspeed={deepspeed}"] if deepspeed else []
    if reference == "model":
        extra += ["train.reference=model", f"train.reference_model_path={tiny_llava_onevision}"]
    # left in the shell by an earlier job: a plain run must ignore them (not wait for a rank 0, not skip the lock)
    port = free_port()
    env = _env(RANK="1", WORLD_SIZE="2", LOCAL_RANK="1", MASTER_PORT=str(port)) if kind == "none" else None
    proc, report = _run(_launch(kind, port) + _train_args(tiny_llava_onevision, data, out, batch, *extra), out, env)
    # DeepSpeed's CPU allreduce segments (66 MB each, in RAM) are unlinked when the run ends, not left behind; the
    # run's segments carry its port (another job on this machine may hold segments of its own meanwhile)
    assert not list(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{port}_*"))
    assert report["global_step"] == 2 and report["train_metrics"]["epoch"] == 1.0  # 2 x 4 pairs: both ranks
    assert _losses(report) == pytest.approx(_losses(plain), abs=2e-5)
    adapter = _adapter(out)
    assert adapter.keys() == plain_adapter.keys()
    moved = 0.0
    for name, tensor in adapter.items():
        assert (tensor - plain_adapter[name]).abs().max().item() < 2e-5, name
        moved = max(moved, tensor.abs().max().item() if "lora_B" in name else 0.0)
    assert moved > 1e-4  # lora_B starts at zero: the adapter trained
    assert proc.stdout.count('"global_step"') == 1  # the summary is printed once, by rank 0
    if kind == "none":
        assert "ignoring RANK=1, WORLD_SIZE=2, LOCAL_RANK=1" in proc.stderr



def _node_launch(launcher: str, node: int, port: int, root) -> list[str]:
    """README's 2-node lines with 1 process per node on localhost: torchrun's rendezvous, or DeepSpeed's launcher
    with a hostfile run on each node (``--no_ssh``); the hostfile names this machine twice, by two names."""
    if launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node),
                "--nproc_per_node", "1", "--master_addr", "127.0.0.1", "--master_port", str(port)]
    hostfile = root / "hostfile"
    hostfile.write_text("127.0.0.1 slots=1\nlocalhost slots=1\n")
    return [sys.executable, "-m", "deepspeed.launcher.runner", "--hostfile", str(hostfile), "--no_ssh",
            "--node_rank", str(node), "--master_addr", "127.0.0.1", "--master_port", str(port)]


def _two_nodes(model, data, output_dir: str, root, *extra, timeout=900,
               launcher: str = "torchrun") -> list[subprocess.CompletedProcess]:
    """Two "nodes" of one process each on localhost (:func:`_node_launch`), each in its own folder (its working
    directory; a relative output_dir is then on the node's own disk)."""
    port = free_port()
    procs = []
    for node in (0, 1):
        cwd = root / f"node{node}"
        cwd.mkdir(exist_ok=True)
        module = ["--module", "savi_plugin"] if launcher == "deepspeed" else ["-m", "savi_plugin"]
        cmd = [*_node_launch(launcher, node, port, root), *module,
               *_train_args(model, data, output_dir, 2, *extra)]
        procs.append(subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def test_two_nodes_resume_from_a_shared_disk_and_refuse_node_local_checkpoints(one_process, tiny_llava_onevision,
                                                                                tmp_path):
    """2 nodes x 1 process on localhost. With the output folder on each node's own disk only node 0 holds the
    checkpoint: the resume is refused in one line naming it. On a shared disk the same run resumes."""
    data = one_process[0]
    save = ("train.save_strategy=steps", "train.save_steps=2")
    first = _two_nodes(tiny_llava_onevision, data, "out", tmp_path, *save)
    assert all(p.returncode == 0 for p in first), first[0].stderr[-3000:] + first[1].stderr[-3000:]
    local = tmp_path / "node0" / "out"
    assert (local / "checkpoint-2" / "trainer_state.json").is_file()
    assert not (tmp_path / "node1" / "out" / "checkpoint-2" / "trainer_state.json").exists()  # rank 1's RNG only
    refused = _two_nodes(tiny_llava_onevision, data, "out", tmp_path, *save, "train.max_steps=3", "--resume")
    assert all(p.returncode != 0 for p in refused)
    # node 1 refuses its own folder (checkpoint-2 there holds only its RNG state, not our run), or rank 0 refuses
    # the checkpoint that node 1 lacks: either way one line naming it, per node that stops
    lines = [l for p in refused for l in p.stderr.splitlines() if l.startswith("error:")]
    assert lines and all("checkpoint-2" in l for l in lines), refused[0].stderr[-2000:] + refused[1].stderr[-2000:]
    shared = tmp_path / "shared"  # the same run folder on a disk both nodes see
    import shutil

    shutil.copytree(local, shared)
    resumed = _two_nodes(tiny_llava_onevision, data, str(shared), tmp_path, *save, "train.max_steps=3", "--resume")
    assert all(p.returncode == 0 for p in resumed), resumed[0].stderr[-3000:] + resumed[1].stderr[-3000:]
    report = json.loads((shared / "train_report.json").read_text())
    assert report["global_step"] == 3
    assert [h["step"] for h in report["log_history"] if "rewards/margins" in h] == [1, 2, 3]  # 1-2 restored


def test_two_nodes_with_deepspeeds_hostfile_match_the_one_process_run(one_process, tiny_llava_onevision, tmp_path):
    """README's DeepSpeed 2-node line (a hostfile, run on each node with ``--no_ssh --node_rank``) under ZeRO-2:
    2 nodes x 2 pairs per step give the one-process run's losses and adapter."""
    pytest.importorskip("deepspeed")
    data, plain, plain_adapter = one_process
    shared = tmp_path / "shared"
    done = _two_nodes(tiny_llava_onevision, data, str(shared), tmp_path, f"train.deepspeed={ZERO2}",
                      launcher="deepspeed")
    assert all(p.returncode == 0 for p in done), done[0].stderr[-3000:] + done[1].stderr[-3000:]
    report = json.loads((shared / "train_report.json").read_text())
    assert report["global_step"] == 2
    assert _losses(report) == pytest.approx(_losses(plain), abs=2e-5)
    adapter = _adapter(shared)
    assert max((adapter[k] - plain_adapter[k]).abs().max().item() for k in plain_adapter) < 2e-5


@pytest.mark.parametrize("launcher, named", [("torchrun", "torchrun"), ("accelerate", "accelerate launch")])
def test_several_processes_on_a_machine_without_gpu_need_use_cpu_and_warnings_are_said_once(launcher, named,
                                                                                          tiny_llava_onevision,
                                                                                          tmp_path):
    """torchrun with 2 processes, no GPU, a recipe without ``train.use_cpu=true``: each rank trained alone on every
    pair into the one output folder, exit 0 (pass 25 K #17, #41). Now every rank stops before anything loads, one
    line naming the recipe file and ``train.use_cpu``; the recipe's warning (a loss key it does not read) is said
    once, by rank 0 (K #28, #44). The line names the launcher the user ran: accelerate's multi-process launcher
    starts its ranks as torchrun does, and was named "torchrun" (pass 26 R5 #3)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU machine joins the processes without train.use_cpu")
    port = free_port()
    cmd = _launch(launcher, port) + ["train", "tiny_demo", "--model", str(tiny_llava_onevision), "--data",
                                       str(tmp_path / "none.jsonl"), "--output-dir", str(tmp_path / "run"),
                                       "train.label_smoothing=0.1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_env(), cwd=tmp_path)
    assert proc.returncode != 0
    # both ranks write their line to one pipe at once (one may run into the other): read each by its words
    errors = set(re.findall(r"error: .+?\(gloo\)", proc.stderr))
    assert len(errors) == 1, proc.stderr[-3000:]
    line = errors.pop()
    assert "tiny_demo.yaml: train.use_cpu:" in line and "set train.use_cpu=true to train the 2 processes" in line
    assert f"{named} started 2 processes" in line, line
    assert proc.stderr.count("is not used by loss 'rrpo'") == 1, proc.stderr[-3000:]
    assert "parallel_mode" not in proc.stderr and not (tmp_path / "run").exists()

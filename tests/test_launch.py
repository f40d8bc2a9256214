"""savi_plugin.launch: launcher variables count only inside a launcher; deepspeed's --local_rank is accepted."""

from __future__ import annotations

import os

import pytest

from savi_plugin.launch import (
    accelerate_single_process_warning,
    clean_stray_launcher_env,
    current,
    launcher_name,
    single_process_env,
)

TORCHRUN = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0",
            "TORCHELASTIC_RUN_ID": "none", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
#: what ``accelerate launch`` sets in every process (accelerate.utils.launch.prepare_simple_launcher_cmd_env)
ACCELERATE = {"ACCELERATE_USE_CPU": "False", "ACCELERATE_MIXED_PRECISION": "no", "ACCELERATE_DYNAMO_BACKEND": "NO"}
DEEPSPEED = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
             "MASTER_PORT": "29500"}


def test_each_launcher_is_recognised_by_its_companion_variables():
    assert launcher_name(TORCHRUN) == "torchrun" and current(TORCHRUN).rank == 1
    assert launcher_name(DEEPSPEED) == "deepspeed" and current(DEEPSPEED).world_size == 2
    accelerate = {**ACCELERATE, "MASTER_ADDR": "h", "MASTER_PORT": "1"}
    assert launcher_name(accelerate) == "accelerate"
    stray = {**accelerate, "RANK": "1", "WORLD_SIZE": "2"}  # accelerate's one-process launcher sets neither
    assert current(stray).world_size == 1 and clean_stray_launcher_env(stray) == ["RANK", "WORLD_SIZE"]


@pytest.mark.parametrize("stray", [{"RANK": "1", "WORLD_SIZE": "2"}, {"WORLD_SIZE": "4", "LOCAL_RANK": "3"},
                                   {**TORCHRUN, "TORCHELASTIC_RUN_ID": ""}, {**DEEPSPEED, "MASTER_PORT": ""},
                                   {"ACCELERATE_MIXED_PRECISION": "bf16"},
                                   {"ACCELERATE_USE_CPU": "1", "ACCELERATE_MIXED_PRECISION": "fp16"}])
def test_stray_variables_outside_a_launcher_are_one_process_and_dropped(stray, caplog):
    env = dict(stray)
    assert launcher_name(env) is None and current(env).world_size == 1 and current(env).is_main
    with caplog.at_level("WARNING"):
        dropped = clean_stray_launcher_env(env)
    assert dropped and not set(dropped) & set(env) and "no launcher" in caplog.text


def test_inside_a_launcher_nothing_is_dropped_and_a_bad_rank_is_one_line():
    env = dict(TORCHRUN)
    assert clean_stray_launcher_env(env) == [] and env == TORCHRUN
    with pytest.raises(ValueError, match="RANK=2 is not in 0..WORLD_SIZE-1"):
        current({**TORCHRUN, "RANK": "2"})


def test_single_process_env_is_what_deepspeed_needs_without_a_launcher():
    env = {}
    assert single_process_env(env) and current(env).world_size == 1
    assert env["MASTER_ADDR"] == "127.0.0.1" and env["MASTER_PORT"].isdigit() and env["RANK"] == "0"
    assert not single_process_env(dict(TORCHRUN))  # a launcher's environment is kept


def test_deepspeed_local_rank_argument_is_accepted_in_both_spellings(monkeypatch, tmp_path):
    from savi_plugin.cli import launcher_arguments, main

    monkeypatch.setenv("LOCAL_RANK", "0")  # recorded as it was, so that teardown restores it (absent, usually)
    for argv in (["train", "x", "--local_rank=0"], ["train", "--local_rank", "0", "x"]):
        monkeypatch.delenv("LOCAL_RANK")
        assert launcher_arguments(argv) == ["train", "x"]
    monkeypatch.delenv("LOCAL_RANK")
    assert main(["recipes", "ls", "--local_rank=0"]) == 0  # was: savi: error: unrecognized arguments
    with pytest.raises(SystemExit):
        launcher_arguments(["train", "--local_rank"])


def test_accelerate_single_process_is_named():
    env = {**ACCELERATE, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    message = accelerate_single_process_warning(env, cuda_devices=0)
    assert message is not None and "--multi_gpu" in message and "one process" in message
    assert accelerate_single_process_warning({**env, "WORLD_SIZE": "2"}, cuda_devices=0) is None
    assert accelerate_single_process_warning({}, cuda_devices=0) is None


def test_a_child_job_gets_no_launcher_variables_of_its_parent():
    """``savi align``'s eval step starts lmms-eval as a job of its own: neither a DeepSpeed recipe's one-process
    rendezvous (single_process_env) nor torchrun's variables reach it, so it is no launcher's process and binds no
    port its parent holds."""
    from savi_plugin.launch import RENDEZVOUS_VARIABLES, child_env, launcher_name, single_process_env

    for parent in ({"PATH": "/bin"}, {**TORCHRUN, "TORCHELASTIC_RUN_ID": "x", "PATH": "/bin"}, {**DEEPSPEED, "PATH": "/bin"}):
        env = dict(parent)
        single_process_env(env)
        child = child_env(env)
        assert child == {"PATH": "/bin"} and launcher_name(child) is None
        assert not set(RENDEZVOUS_VARIABLES) & set(child)


def _fake_proc(root, chain):
    """A /proc with ``chain``: ``[(pid, ppid, argv), ...]``, this process first."""
    for pid, ppid, argv in chain:
        folder = root / str(pid)
        folder.mkdir(parents=True)
        (folder / "stat").write_text(f"{pid} (a name) with spaces) S {ppid} 1 1 0")
        (folder / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    return root


@pytest.mark.parametrize("argv, found", [
    (["/venv/bin/python3", "/venv/bin/torchrun", "--nproc-per-node", "2", "-m", "savi_plugin"], "torchrun"),
    (["python", "-m", "torch.distributed.run", "--nproc_per_node=2"], "torch.distributed.run"),
    (["/usr/bin/python", "-u", "-m", "deepspeed.launcher.launch", "--world_info=x"], "deepspeed.launcher.launch"),
    (["/venv/bin/python", "/venv/bin/accelerate", "launch", "-m", "savi_plugin"], "accelerate"),
    (["slurmstepd: [1234.0]"], "slurmstepd"),
    (["bash"], None),
], ids=["torchrun", "python-m", "deepspeed", "accelerate", "slurm", "a-shell"])
def test_the_launcher_is_found_among_the_ancestors(argv, found, tmp_path):
    from savi_plugin.launch import launcher_ancestor

    proc = _fake_proc(tmp_path, [(40, 30, ["python", "-m", "savi_plugin"]), (30, 20, ["/bin/sh", "run.sh"]),
                                 (20, 10, argv), (10, 1, ["sshd"]), (1, 0, ["/sbin/init"])])
    assert launcher_ancestor(40, proc) == found
    assert launcher_ancestor(40, tmp_path / "none") == "unknown"  # no /proc: the variables decide alone


def test_a_launchers_environment_without_the_launcher_is_one_process_with_one_warning(monkeypatch, caplog):
    """A torchrun worker's whole environment exported in a plain shell (a debug dump): no torchrun among the
    ancestors, so every launcher variable is dropped, named in one warning, and the run is rank 0 of 1."""
    import logging

    from savi_plugin import launch

    dump = {**TORCHRUN, "ROLE_RANK": "1", "ROLE_WORLD_SIZE": "2", "ROLE_NAME": "default", "GROUP_WORLD_SIZE": "1",
            "TORCHELASTIC_RESTART_COUNT": "0", "TORCHELASTIC_MAX_RESTARTS": "0",
            "TORCHELASTIC_USE_AGENT_STORE": "False"}
    monkeypatch.setattr(os, "environ", {"PATH": "/bin", **dump})
    monkeypatch.setattr(launch, "launcher_ancestor", lambda: "torchrun")
    assert launch.current().rank == 1 and launch.clean_stray_launcher_env() == []  # the launcher is there
    monkeypatch.setattr(launch, "launcher_ancestor", lambda: None)
    assert launcher_name(dict(os.environ)) == "torchrun" and launcher_name() is None  # another process's: variables
    with caplog.at_level(logging.WARNING):
        dropped = launch.clean_stray_launcher_env()
    assert set(dropped) == set(dump) and os.environ == {"PATH": "/bin"} and launch.current().world_size == 1
    assert len(caplog.records) == 1 and "RANK=1" in caplog.records[0].getMessage()


def test_the_real_ancestry_of_a_process_under_a_launcher_and_under_a_shell(tmp_path):
    """Through the real /proc: a child of a program named ``torchrun`` finds it; a plain child does not."""
    import subprocess
    import sys

    if not os.path.exists(f"/proc/{os.getpid()}/stat"):
        pytest.skip("no /proc here: the variables decide alone")
    probe = "from savi_plugin.launch import launcher_ancestor; print(launcher_ancestor())"
    torchrun = tmp_path / "torchrun"
    torchrun.write_text(f"import subprocess, sys\nsys.exit(subprocess.call([sys.executable, '-c', {probe!r}]))\n")
    under = subprocess.run([sys.executable, str(torchrun)], capture_output=True, text=True, check=True)
    assert under.stdout.strip() == "torchrun"
    from savi_plugin.launch import launcher_ancestor

    if launcher_ancestor() is None:  # the tests themselves run under no launcher
        plain = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
        assert plain.stdout.strip() == "None"


def test_the_rendezvous_wait_is_bounded_and_stops_on_sigterm(monkeypatch, capsys):
    """A rank that connects to a rendezvous nobody hosts: a one-line error after the timeout, and SIGTERM during
    the wait ends the command with 143 (torch's own connect loop in C++ would ignore both for 30 minutes)."""
    import signal
    import socket
    import threading
    import time

    from savi_plugin.cli import run_guarded
    from savi_plugin.errors import RunError
    from savi_plugin.launch import free_port, wait_for_rendezvous

    env = {**TORCHRUN, "MASTER_PORT": str(free_port())}  # nothing listens there
    start = time.monotonic()
    with pytest.raises(RunError, match=r"torchrun: no rendezvous at MASTER_ADDR=127.0.0.1 MASTER_PORT=\d+ after 1 s"):
        wait_for_rendezvous(1, env, interval=0.1)
    assert time.monotonic() - start < 5
    wait_for_rendezvous(1, {**env, "RANK": "0"})  # rank 0 hosts it: no wait
    with socket.socket() as server:  # hosted: returns at once
        server.bind(("127.0.0.1", 0))
        server.listen()
        wait_for_rendezvous(1, {**env, "MASTER_PORT": str(server.getsockname()[1])})
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    start = time.monotonic()
    assert run_guarded(lambda: wait_for_rendezvous(60, env), "train") == 143
    assert time.monotonic() - start < 10
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("terminated (SIGTERM): nothing was written")

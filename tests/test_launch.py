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
        monkeypatch.delenv("LOCAL_RANK", raising=False)
        assert launcher_arguments(argv) == ["train", "x"]
    monkeypatch.delenv("LOCAL_RANK", raising=False)
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

    mpich = {"PMI_RANK": "1", "PMI_SIZE": "2", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2"}  # --launcher mpich
    for parent in ({"PATH": "/bin"}, {**TORCHRUN, "TORCHELASTIC_RUN_ID": "x", "PATH": "/bin"},
                   {**DEEPSPEED, "PATH": "/bin"}, {**DEEPSPEED, **mpich, "PATH": "/bin"}):
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


#: each launcher family's per-process variables as a launcher sets them, here left in a shell that starts a plain
#: command: torchrun's and deepspeed's whole environments (debug dumps), accelerate's settings, and the MPI starters'
#: (OpenMPI, MPICH/Intel MPI's PMI, PMIx, MVAPICH), which accelerate and DeepSpeed read as a rank and world size
LEFT_IN_A_SHELL = {
    "torchrun": {**TORCHRUN, "TORCHELASTIC_RUN_ID": "x", "TORCHELASTIC_USE_AGENT_STORE": "False"},
    "deepspeed": DEEPSPEED,
    "accelerate": {"ACCELERATE_MIXED_PRECISION": "no", "ACCELERATE_USE_CPU": "true"},
    "openmpi": {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
                "OMPI_COMM_WORLD_LOCAL_SIZE": "2"},
    "mpich": {"PMI_RANK": "1", "PMI_SIZE": "2", "MPI_LOCALRANKID": "1", "MPI_LOCALNRANKS": "2"},
    "pmix": {"PMIX_RANK": "1", "PMI_SIZE": "2"},
    "mvapich": {"MV2_COMM_WORLD_RANK": "1", "MV2_COMM_WORLD_SIZE": "2", "MV2_COMM_WORLD_LOCAL_RANK": "1",
                "MV2_COMM_WORLD_LOCAL_SIZE": "2"},
}


def _run_launch_command(kind: str, inputs, out, caplog) -> list[str]:
    """Run ``kind`` (:func:`_command`) as ``savi`` would, expecting exit 0; the launcher warnings it logged. A
    DeepSpeed recipe runs in a child process (DeepSpeed's communication state outlives a process group closed
    in-process); the others in-process."""
    import subprocess
    import sys

    from savi_plugin.cli import main
    from tests.builders import repo_pythonpath

    argv = _command(kind, inputs, out)
    if kind != "train-deepspeed":
        with caplog.at_level("WARNING"):
            assert main(argv) == 0
        return [r.getMessage() for r in caplog.records if r.name == "savi_plugin.launch" and r.levelname == "WARNING"]
    proc = subprocess.run([sys.executable, "-m", "savi_plugin", *argv], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": repo_pythonpath()})
    assert proc.returncode == 0, proc.stderr[-3000:]
    tag = " WARNING savi_plugin.launch: "
    return [line.split(tag, 1)[1] for line in proc.stderr.splitlines() if tag in line]


@pytest.fixture(scope="module")
def launch_inputs(tiny_llava_onevision, synthetic_samples, tmp_path_factory):
    """A tiny model, 2 preference pairs and a 2-question manifest for the in-process commands below."""
    from tests.builders import write_answer_pairs, write_jsonl

    folder = tmp_path_factory.mktemp("launch_inputs")
    pairs = write_answer_pairs(folder / "pairs.jsonl", synthetic_samples[:2], rotate=False)
    qa = write_jsonl(folder / "qa.jsonl", [{"id": f"q{i}", "video": s.video, "question": s.question,
                                            "answer": s.answer} for i, s in enumerate(synthetic_samples[:2])])
    return tiny_llava_onevision, pairs, qa


def _command(kind: str, inputs, out) -> list[str]:
    model, pairs, qa = inputs
    if kind == "generate":
        return ["generate", "--generator", "rrpo", "--model", str(model), "--input", str(qa), "--output",
                str(out / "pairs.jsonl"), "--num-frames", "4", "--no-progress", "-o", "max_new_tokens=2",
                "-o", "tag_max_new_tokens=2"]
    extra = ["train.deepspeed=zero2"] if kind == "train-deepspeed" else []
    return ["train", "tiny_demo", "--model", str(model), "--data", str(pairs), "--output-dir", str(out / "train"),
            "train.max_steps=1", "train.save_strategy='no'", "train.use_cpu=true", "model.num_frames=4",
            "train.per_device_train_batch_size=2", "lora.r=2", "lora.alpha=4", *extra]


def _one_process_result(kind: str, out) -> None:
    import json

    if kind == "generate":
        report = json.loads((out / "pairs.jsonl.report.json").read_text())
        assert report["config"]["shard"] == [0, 1] and report["counts"]["items"] == 2  # not rank 1's share
    else:
        report = json.loads((out / "train" / "train_report.json").read_text())
        assert report["global_step"] == 1


@pytest.mark.parametrize("kind", ["train-deepspeed", "train", "generate"])
@pytest.mark.parametrize("family", list(LEFT_IN_A_SHELL))
def test_each_launchers_variables_left_in_a_shell_are_named_once_and_the_command_runs_as_one_process(
        family, kind, launch_inputs, tmp_path, monkeypatch, caplog):
    """No launcher among the ancestors (the tests run under none): one warning naming exactly the variables the
    shell held, exit 0, one process -- also where accelerate or DeepSpeed would read them (OpenMPI's made a
    DeepSpeed recipe fail in torch's rendezvous, naming MASTER_ADDR and the recipe), and a DeepSpeed recipe's
    own one-process variables (rank 0 of 1 on 127.0.0.1) are never among them."""
    from savi_plugin.launch import launcher_ancestor

    if launcher_ancestor() is not None:
        pytest.skip("the tests run under a launcher here")
    left = LEFT_IN_A_SHELL[family]
    for name, value in left.items():
        monkeypatch.setenv(name, value)
    warnings = _run_launch_command(kind, launch_inputs, tmp_path, caplog)
    assert len(warnings) == 1, warnings
    named = warnings[0].split(": no launcher")[0].removeprefix("ignoring ").split(", ")
    assert sorted(named) == sorted(f"{k}={v}" for k, v in left.items())
    _one_process_result(kind, tmp_path)


def test_a_deepspeed_recipe_in_a_clean_shell_warns_of_no_launcher_variables(launch_inputs, tmp_path, caplog):
    """The one-process rank 0 of 1 that savi sets up for a DeepSpeed recipe is savi's own: no warning tells the
    user to unset variables they never set (the training step's second look at the environment took them for a
    shell's leftovers)."""
    from savi_plugin.launch import MPI_PROCESS_VARIABLES, PROCESS_VARIABLES, RENDEZVOUS_VARIABLES

    for name in (*PROCESS_VARIABLES, *RENDEZVOUS_VARIABLES, *MPI_PROCESS_VARIABLES):
        assert name not in os.environ
    assert _run_launch_command("train-deepspeed", launch_inputs, tmp_path, caplog) == []
    _one_process_result("train-deepspeed", tmp_path)


@pytest.mark.parametrize("family", ["openmpi", "mpich", "pmix", "mvapich"])
def test_mpi_variables_belong_to_an_mpi_starter_and_a_bare_mpi_launch_is_refused_in_one_line(family, monkeypatch,
                                                                                             caplog):
    """Under ``mpirun`` (or ``srun`` over PMI) its variables are its own, never dropped; several processes that it
    started without torchrun's or deepspeed's variables stop in one line (each would otherwise run alone as rank 0
    of 1). Under another launcher, or none, they are a shell's leftovers and dropped."""
    from savi_plugin import launch
    from savi_plugin.errors import RunError

    left = LEFT_IN_A_SHELL[family]
    monkeypatch.setattr(os, "environ", {"PATH": "/bin", **left})
    for starter in ("mpirun", "hydra_pmi_proxy", "srun"):
        monkeypatch.setattr(launch, "launcher_ancestor", lambda: starter)
        assert launch.clean_stray_launcher_env() == [] and os.environ == {"PATH": "/bin", **left}
        with pytest.raises(RunError, match=rf"{starter} started this process as rank 1 of 2 \(.*=1.*\) without "
                                           r"RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT"):
            launch.current()
    launched = {**DEEPSPEED, "RANK": "1", "WORLD_SIZE": "2"}  # deepspeed's MPI runners set its variables too
    monkeypatch.setattr(os, "environ", {"PATH": "/bin", **left, **launched})
    assert launch.current().rank == 1 and launch.clean_stray_launcher_env() == []
    monkeypatch.setattr(launch, "launcher_ancestor", lambda: "torchrun")
    monkeypatch.setattr(os, "environ", {"PATH": "/bin", **left, **TORCHRUN})
    with caplog.at_level("WARNING"):
        assert sorted(launch.clean_stray_launcher_env()) == sorted(left)
    assert os.environ == {"PATH": "/bin", **TORCHRUN} and len(caplog.records) == 1
    monkeypatch.setattr(launch, "launcher_ancestor", lambda: "mpirun")
    one = {k: ("0" if "RANK" in k or "ID" in k else "1") for k in left}  # mpirun -np 1: one process, as it is
    monkeypatch.setattr(os, "environ", {"PATH": "/bin", **one})
    assert launch.current().world_size == 1 and launch.clean_stray_launcher_env() == []


def _minimal_argv(parser, words: list[str]) -> list[str]:
    """``words`` and a value for each required argument of ``parser`` (its first choice, else ``x``)."""
    import argparse

    out = list(words)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or not (action.required or not action.option_strings):
            continue
        if action.nargs == 0 or action.nargs in ("?", "*"):
            continue
        value = str(next(iter(action.choices))) if action.choices else "x"
        out += ([action.option_strings[0]] if action.option_strings else []) + [value]
    return out


def _one_process_commands() -> list[list[str]]:
    """Every command (with its sub-command) that :data:`savi_plugin.cli.LAUNCHED_COMMANDS` does not hold, as the
    words of a command line argparse accepts."""
    import argparse

    from savi_plugin.cli import LAUNCHED_COMMANDS, build_parser

    found = []
    top = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in top.choices.items():
        subs = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        pairs = [([name, sub], child) for sub, child in subs.choices.items()] if subs else []
        if subs is None or not subs.required:
            pairs.append(([name], parser))
        found += [_minimal_argv(p, w) for w, p in pairs if " ".join(w) not in LAUNCHED_COMMANDS]
    return found


@pytest.fixture
def launched(monkeypatch):
    """This process as rank 1 of a 2-process torchrun job (the launcher is its ancestor)."""
    monkeypatch.setattr("savi_plugin.launch.launcher_ancestor", lambda *a, **k: "torchrun")
    for key, value in TORCHRUN.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize("argv", _one_process_commands(), ids=lambda argv: " ".join(w for w in argv if w != "x"))
def test_every_one_process_command_is_refused_under_a_launcher_of_several(argv, launched, tmp_path, monkeypatch,
                                                                         capsys):
    """Under torchrun with 2 processes, a command that does not share its work among the ranks (pass 25 K #22,
    #23: both ranks built one site, merged one file) is refused on every rank before it starts, one line naming it
    and the launcher, exit 2; nothing is written."""
    from savi_plugin.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "runs in one process; start it without torchrun" in lines[0], err
    assert lines[0].startswith(f"error: savi {argv[0]}") and "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_shard_under_a_launcher_is_refused_naming_the_flag(launched, tmp_path, capsys):
    """``--shard 0/2`` under torchrun: both ranks took shard 0 and one blamed "another savi process" (pass 25 K
    #21); now one line naming ``--shard`` and the launcher, exit 2."""
    from savi_plugin.cli import main

    code = main(["generate", "--generator", "rrpo", "--model", "m", "--input", str(tmp_path / "q.jsonl"),
                 "--output", str(tmp_path / "o.jsonl"), "--shard", "0/2"])
    err = capsys.readouterr().err
    assert code == 2 and "--shard 0/2 is given under torchrun" in err and "drop --shard" in err, err
    assert list(tmp_path.iterdir()) == []


def test_local_rank_typed_without_a_launcher_is_named_as_typed_and_a_bad_value_is_exit_2(monkeypatch, caplog,
                                                                                         capsys):
    """``savi --local_rank=1 ...`` with no launcher warned about a ``LOCAL_RANK`` variable that was not set, and
    ``--local_rank=abc`` exited 1 (pass 25 K #24, #25)."""
    from savi_plugin.cli import main

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with caplog.at_level("WARNING"):
        assert main(["--local_rank=1", "recipes", "ls"]) == 0
    assert "ignoring --local_rank=1: no launcher" in caplog.text and "drop the flag" in caplog.text
    assert "LOCAL_RANK=1" not in caplog.text and "LOCAL_RANK" not in os.environ
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        main(["--local_rank=abc", "recipes", "ls"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == "savi: error: --local_rank needs a non-negative integer, got 'abc'"

"""savi_plugin.launch: launcher variables count only inside a launcher; deepspeed's --local_rank is accepted."""

from __future__ import annotations

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

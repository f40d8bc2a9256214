"""The eval data pre-flight: our tasks' hub sources read from their YAMLs, and a refusal in one line when the data
cannot be had (not cached, offline, or the hub's host not answering) -- before anything is written."""

import socket

import pytest

from savi_plugin.eval.hub_check import (
    EvalDataUnavailableError,
    eval_data_env,
    hub_unreachable,
    task_sources,
)


def closed_endpoint() -> str:
    """An ``HF_ENDPOINT`` on this machine where nothing listens (a real refused connection, no network needed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_task_sources_follow_groups_includes_and_name_the_local_only_benchmarks():
    mvbench = task_sources("savi_mvbench")
    assert len(mvbench) == 20 and {s.dataset_path for s in mvbench} == {"OpenGVLab/MVBench"}
    assert {s.cache_dir for s in mvbench} == {"mvbench_video"} and not any(s.local_only for s in mvbench)
    assert [s.dataset_name for s in task_sources("savi_mvbench_action_count")] == ["action_count"]
    assert [(s.dataset_path, s.dataset_name) for s in task_sources("savi_egoschema")] == [
        ("lmms-eval/egoschema", "Subset")]
    assert all(s.local_only for s in task_sources("savi_videohallucer"))
    assert task_sources("mvbench") == []  # lmms-eval's built-in: checked by builtin_check


def test_an_unreachable_hub_refuses_our_tasks_and_an_offline_one_names_its_flag(tmp_path):
    env = {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": closed_endpoint()}
    assert "Connection" in hub_unreachable(env)
    with pytest.raises(EvalDataUnavailableError) as caught:
        eval_data_env(["savi_mvbench", "savi_egoschema"], env)
    message = str(caught.value)
    assert message.startswith("savi_mvbench: OpenGVLab/MVBench is not in the Hugging Face cache and the hub cannot "
                              "be reached (127.0.0.1:")
    assert message.endswith("(likewise savi_egoschema)") and "\n" not in message
    with pytest.raises(EvalDataUnavailableError, match="HF_HUB_OFFLINE=1 forbids its download"):
        eval_data_env(["savi_perceptiontest"], {**env, "HF_HUB_OFFLINE": "1"})
    with pytest.raises(EvalDataUnavailableError, match="read from its official files only"):
        eval_data_env(["savi_vidhalluc"], env)
    local = {**env, "SAVI_DATA_ROOT": str(tmp_path)}  # a local copy: the hub is not asked
    assert eval_data_env(["savi_mvbench", "savi_vidhalluc"], local) == local


def test_savi_eval_run_refuses_before_lmms_eval_starts(tmp_path, capsys, monkeypatch):
    from savi_plugin.cli import main

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", closed_endpoint())
    for var in ("SAVI_DATA_ROOT", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy",
                "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "results"
    assert main(["eval", "run", "--", "--model", "savi_video", "--model_args", f"pretrained={tmp_path / 'm'}",
                 "--tasks", "savi_mvbench", "--output_path", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: savi_mvbench: OpenGVLab/MVBench is not in the Hugging Face "
                                               "cache and the hub cannot be reached")
    assert not out.exists()

"""SaviVideoTask's two data sources, built from our real YAML: the local folder, and the hub path (lmms-eval's
own download, replaced here by a local stand-in since tests never touch a hub) with videos under $HF_HOME."""

import shutil

import datasets
import pytest
from lmms_eval.api.task import ConfigurableTask
from lmms_eval.utils import load_yaml_config

from savi_plugin.eval.data import EvalDataError
from savi_plugin.eval.fixtures import build_fixture
from savi_plugin.eval.registration import tasks_path
from savi_plugin.eval.task import SaviVideoTask


def _config(name: str) -> dict:
    return load_yaml_config(f"{tasks_path()}/{name}", mode="full")


def test_local_folder(monkeypatch, tmp_path):
    fx = build_fixture(tmp_path, "mvbench", 3, subtasks=("object_shuffle",))
    monkeypatch.setenv("SAVI_DATA_ROOT", str(tmp_path))
    task = SaviVideoTask(config=_config("mvbench/savi_mvbench_object_shuffle.yaml"))
    docs = list(task.test_docs())
    assert [d["video"] for d in docs] == [r["video"] for r in fx.records["savi_mvbench_object_shuffle"]]
    assert all(d["savi_video_found"] for d in docs)
    assert docs[0]["savi_video"] == str(tmp_path / "mvbench/video/perception/videos" / docs[0]["video"])
    assert task.doc_to_text(docs[0]).startswith("Question: ")
    assert task.doc_to_target(docs[0]) == "ABCDE"[fx.answers["savi_mvbench_object_shuffle"][0]]


def test_hub_path_keeps_lmms_eval_download_and_cache_layout(monkeypatch, tmp_path):
    fx = build_fixture(tmp_path / "src", "perceptiontest", 3)
    hf_home = tmp_path / "hf"
    # what lmms-eval's download leaves behind: videos unpacked in $HF_HOME/<cache_dir>/videos
    shutil.copytree(tmp_path / "src/perceptiontest/videos", hf_home / "perceptiontest_val/videos")
    monkeypatch.delenv("SAVI_DATA_ROOT", raising=False)
    monkeypatch.setenv("HF_HOME", str(hf_home))
    seen = {}

    def fake_hub_download(self, dataset_kwargs=None):
        seen.update(path=self.DATASET_PATH, name=self.DATASET_NAME, kwargs=dict(dataset_kwargs))
        dataset_kwargs.pop("cache_dir")  # lmms-eval mutates the kwargs it is given
        self.dataset = datasets.DatasetDict({"validation": datasets.Dataset.from_list(fx.records["savi_perceptiontest"])})

    monkeypatch.setattr(ConfigurableTask, "download", fake_hub_download)
    task = SaviVideoTask(config=_config("perceptiontest/savi_perceptiontest.yaml"))
    assert seen["path"] == "lmms-eval/PerceptionTest_Val" and seen["name"] == "mc_question_val"
    assert seen["kwargs"]["cache_dir"] == "perceptiontest_val" and seen["kwargs"]["video"] is True
    assert task.config.dataset_kwargs["cache_dir"] == "perceptiontest_val"  # our copy was consumed, not the config
    doc = task.test_docs()[0]
    assert doc["savi_video_found"] and doc["savi_video"] == str(hf_home / "perceptiontest_val/videos" /
                                                                f"{doc['video_name']}.mp4")


def test_hub_records_are_validated_too(monkeypatch, tmp_path):
    monkeypatch.delenv("SAVI_DATA_ROOT", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))

    def fake_hub_download(self, dataset_kwargs=None):
        self.dataset = datasets.DatasetDict({"test": datasets.Dataset.from_list([
            {"question_idx": "q", "question": "?", "video_idx": "v", "option": ["A. x", "B. y"], "answer": "7"}])})

    monkeypatch.setattr(ConfigurableTask, "download", fake_hub_download)
    with pytest.raises(EvalDataError, match=r"lmms-eval/egoschema:Subset/test:1:answer: answer=7 is outside 0..1"):
        SaviVideoTask(config=_config("egoschema/savi_egoschema.yaml"))


def test_metadata_must_name_the_benchmark():
    config = _config("egoschema/savi_egoschema.yaml")
    config["metadata"] = {"version": 1}
    with pytest.raises(ValueError, match="metadata.benchmark is required"):
        SaviVideoTask(config=config)


def test_mvbench_lmms_reports_the_accuracy_over_all_items_beside_lmms_evals():
    """lmms-eval's MVBench aggregation drops empty answers: 1 right + 2 missing videos (empty answers) is its 100%;
    ``accuracy_all`` beside it is 33.3%, and the counts say why."""
    from savi_plugin.eval.task import (
        aggregate_accuracy,
        aggregate_accuracy_answered,
        aggregate_count,
        process_results_all_items,
    )

    doc = {"video": "a.mp4", "question": "Which?", "candidates": ["up", "down"], "answer": "down",
           "savi_benchmark": "mvbench", "savi_protocol": "lmms", "savi_video": "a.mp4", "savi_video_found": True}
    right = process_results_all_items(doc, ["(B) down"])
    gone = [process_results_all_items(dict(doc, savi_video_found=False), [""]) for _ in range(2)]
    rows = [right, *gone]
    assert aggregate_accuracy_answered([r["accuracy"] for r in rows]) == 100.0  # lmms-eval's number
    assert aggregate_accuracy([r["accuracy_all"] for r in rows]) == pytest.approx(100 / 3)
    assert aggregate_count([r["missing_video"] for r in rows]) == 2
    config = _config("mvbench/lmms/savi_mvbench_lmms_moving_direction.yaml")
    assert [m["metric"] for m in config["metric_list"]][:2] == ["accuracy", "accuracy_all"]
    assert config["process_results"] is process_results_all_items

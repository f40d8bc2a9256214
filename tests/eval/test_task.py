"""SaviVideoTask's two data sources, built from our real YAML: the local folder, and the hub path (lmms-eval's
own download, replaced here by a local stand-in since tests never touch a hub) with videos under $HF_HOME."""

import shutil

import datasets
import pytest
from lmms_eval.api.task import ConfigurableTask
from lmms_eval.utils import load_yaml_config

from savi_plugin.eval.command import DATA_ERROR_PREFIX
from savi_plugin.eval.fixtures import build_fixture
from savi_plugin.eval.registration import tasks_path
from savi_plugin.eval.settings import SettingError
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
    with pytest.raises(SettingError, match=rf"^{DATA_ERROR_PREFIX}lmms-eval/egoschema:Subset/test:1:answer: answer=7 "
                                           r"is outside 0..1") as err:
        SaviVideoTask(config=_config("egoschema/savi_egoschema.yaml"))
    assert err.value.code == 2


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


#: every benchmark of ``savi eval fixture``: a task of it, its annotation file (under the data root), the steps to the
#: first record's video in that file, and ``record:field`` as an error prints them (the field as the file spells it)
VIDEO_SITES = {
    "mvbench": ("mvbench/savi_mvbench_action_antonym.yaml", "mvbench/json/action_antonym.json", [0, "video"],
                "1:video"),
    "egoschema": ("egoschema/savi_egoschema.yaml", "egoschema/Subset/test-00000-of-00001.json", [0, "video_idx"],
                  "1:video_idx"),
    "perceptiontest": ("perceptiontest/savi_perceptiontest.yaml",
                       "perceptiontest/mc_question_val/validation-00000-of-00001.json", [0, "video_name"],
                       "1:video_name"),
    "videohallucer": ("videohallucer/savi_videohallucer_temporal.yaml", "videohallucer/temporal/temporal.json",
                      [0, "hallucination", "video"], "1:hallucination.video"),
    "vidhalluc": ("vidhalluc/savi_vidhalluc_tsh.yaml", "vidhalluc/tsh.json", [None, "video"], ":video"),
}


def test_the_video_sites_cover_every_fixture_benchmark():
    from savi_plugin.eval.fixtures import FIXTURE_BENCHMARKS

    assert sorted(VIDEO_SITES) == sorted(FIXTURE_BENCHMARKS)


@pytest.mark.parametrize("name", VIDEO_SITES)
def test_a_video_leaving_the_data_root_names_the_record_s_file_in_every_benchmark(monkeypatch, tmp_path, name):
    """Pass 24 E #63/#64: a record's video leaving ``SAVI_DATA_ROOT`` was refused as
    ``savi_mvbench_action_antonym/train:1:video`` behind the class name ``savi_plugin.eval.data.EvalDataError:``,
    where every other data error names the file. lmms-eval's task (the real class, from its YAML) ends with the one
    line ``file:record:field`` (the benchmark's video field as the file spells it) and exit status 2."""
    import json

    task_yaml, relpath, steps, where = VIDEO_SITES[name]
    build_fixture(tmp_path, name, 2, subtasks=("action_antonym",), annotation_format="json")
    path = tmp_path / relpath
    doc = json.loads(path.read_text())
    if steps[0] is None:  # VidHalluc's TSH: records keyed by their id
        steps, where = [next(iter(doc)), *steps[1:]], f"{next(iter(doc))}{where}"
    holder = doc
    for step in steps[:-1]:
        holder = holder[step]
    holder[steps[-1]] = "../" * 8 + "outside"
    path.write_text(json.dumps(doc))
    monkeypatch.setenv("SAVI_DATA_ROOT", str(tmp_path))
    with pytest.raises(SettingError) as err:
        SaviVideoTask(config=_config(task_yaml))
    line = str(err.value)
    assert err.value.code == 2 and line.startswith(f"{DATA_ERROR_PREFIX}{path}:{where}: "), line
    assert "outside the data root" in line and "EvalDataError" not in line and "\n" not in line


@pytest.mark.parametrize("name", VIDEO_SITES)
def test_an_annotation_file_behind_a_symlink_out_of_the_data_root_is_refused_in_every_benchmark(
        monkeypatch, tmp_path, name):
    """Pass 26 N #35: an annotation file replaced by a symlink to a file outside ``SAVI_DATA_ROOT`` was read
    silently, while a video behind the same kind of link was refused. One rule for every file read under the data
    root: the file's one line, ``... resolves to ..., outside the data root``, exit status 2."""
    task_yaml, relpath, _, _ = VIDEO_SITES[name]
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    build_fixture(root, name, 2, subtasks=("action_antonym",), annotation_format="json")
    path = root / relpath
    elsewhere.mkdir()
    path.rename(elsewhere / path.name)
    path.symlink_to(elsewhere / path.name)
    monkeypatch.setenv("SAVI_DATA_ROOT", str(root))
    with pytest.raises(SettingError) as err:
        SaviVideoTask(config=_config(task_yaml))
    line = str(err.value)
    assert err.value.code == 2 and line.startswith(f"{DATA_ERROR_PREFIX}{path}: "), line
    assert f"resolves to {elsewhere / path.name}, outside the data root" in line and "\n" not in line


def test_savi_eval_run_ends_on_a_question_given_twice_with_its_line_and_exit_2(monkeypatch, tmp_path, capsys,
                                                                                tiny_llava_onevision):
    """Pass 24 E #19b through the real entry point: ``savi eval run`` with the real lmms-eval on a data root whose
    EgoSchema file holds a record twice. It was scored twice with exit 0; now lmms-eval ends before any document
    with the data error's one line, and ``savi`` exits 2 naming the file, record and field."""
    import json

    from savi_plugin.cli import main

    root = tmp_path / "data"
    fx = build_fixture(root, "egoschema", 2, annotation_format="json")
    path = root / "egoschema/Subset/test-00000-of-00001.json"
    records = fx.records["savi_egoschema"]
    path.write_text(json.dumps([*records, records[0]]))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    capsys.readouterr()
    code = main(["eval", "run", "--data-root", str(root), "--", "--model", "savi_video", "--model_args",
                 f"pretrained={tiny_llava_onevision},num_frames=2", "--tasks", "savi_egoschema",
                 "--output_path", str(tmp_path / "out")])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert code == 2, err[-3000:]
    assert (f"lmms-eval's error: {DATA_ERROR_PREFIX}{path}:3:question_idx: {records[0]['question_idx']} appears "
            f"twice (first at record 1)") in last, last
    assert "EvalDataError" not in err and "Traceback" not in err
    assert not list((tmp_path / "out").rglob("*_results.json"))


def test_an_annotation_file_above_the_document_cap_ends_the_task_with_its_line(monkeypatch, tmp_path):
    """The cap on a document's bytes is a configuration error (exit 2) wherever a file is read: inside lmms-eval too,
    as the task's one line naming the file, not lmms-eval's traceback and exit 0."""
    build_fixture(tmp_path, "mvbench", 2, subtasks=("action_antonym",))
    monkeypatch.setenv("SAVI_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("SAVI_MAX_DOCUMENT_BYTES", "100")
    with pytest.raises(SettingError) as err:
        SaviVideoTask(config=_config("mvbench/savi_mvbench_action_antonym.yaml"))
    path = tmp_path / "mvbench/json/action_antonym.json"
    assert err.value.code == 2 and str(err.value).startswith(f"{DATA_ERROR_PREFIX}{path}: "), err.value
    assert "SAVI_MAX_DOCUMENT_BYTES" in str(err.value)

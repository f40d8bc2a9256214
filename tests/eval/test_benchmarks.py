"""The benchmark extension point: a throw-away distribution adds a benchmark with one folder and one entry point
(the real lmms-eval run of its task is in tests/eval/test_suite.py); a broken entry is one line naming it."""

import pytest

from savi_plugin.eval import benchmarks
from savi_plugin.eval.task import doc_to_target, doc_to_text, process_results
from tests.builders import third_party_benchmark


@pytest.fixture
def fresh_registry():
    benchmarks.registered.cache_clear()
    yield
    benchmarks.registered.cache_clear()


def test_a_third_party_benchmark_is_registered_with_its_task_folder(tmp_path, monkeypatch, fresh_registry):
    site = third_party_benchmark(tmp_path / "site", tmp_path / "data", [], [])
    monkeypatch.syspath_prepend(str(site))
    found = benchmarks.registered()
    assert {"mvbench", "egoschema", "perceptiontest", "toybench"} <= set(found)
    assert str((site / "toybench" / "tasks").resolve()) in benchmarks.task_folders()
    doc = {"id": 7, "clip": "c.mp4", "question": "Which way?", "choices": ["up", "down"], "answer": 1,
           "savi_benchmark": "toybench", "savi_protocol": "savi", "savi_video": "c.mp4", "savi_video_found": True}
    assert doc_to_text(doc) == "Question: Which way?\nOptions:\nA. up\nB. down\nAnswer with the option's letter " \
                               "from the given choices directly."
    assert doc_to_target(doc) == "B"
    result = process_results(doc, ["B. down"])
    assert result["accuracy"]["score"] == 100.0 and result["accuracy"]["id"] == "7"


def test_a_broken_entry_is_one_line_naming_it(tmp_path, monkeypatch, fresh_registry):
    site = tmp_path / "site"
    (site / "badbench-0.1.dist-info").mkdir(parents=True)
    (site / "badbench-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: badbench\nVersion: 0.1\n")
    (site / "badbench-0.1.dist-info" / "entry_points.txt").write_text("[savi_plugin.benchmarks]\nbad = json:dumps\n")
    monkeypatch.syspath_prepend(str(site))
    with pytest.raises(benchmarks.BenchmarkError) as info:
        benchmarks.registered()
    assert str(info.value) == ("savi_plugin.benchmarks entry bad = json:dumps: expected a savi_plugin.eval.benchmarks."
                               "Benchmark, got function")
    monkeypatch.undo()
    benchmarks.registered.cache_clear()
    with pytest.raises(benchmarks.BenchmarkError, match="unknown benchmark 'nope'; registered: egoschema, mvbench"):
        benchmarks.get("nope")

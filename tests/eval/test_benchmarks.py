"""The benchmark extension point: a throw-away distribution adds a benchmark with one folder and one entry point
(the real lmms-eval run of its task is in tests/eval/test_suite.py); a broken entry is one line naming it."""

import os
import subprocess
import sys

import pytest

from savi_plugin.eval import benchmarks
from savi_plugin.eval.task import doc_to_target, doc_to_text, process_results
from tests.builders import third_party_benchmark


@pytest.fixture
def fresh_registry():
    benchmarks.cache_clear()
    yield
    benchmarks.cache_clear()


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


BROKEN_ENTRIES = {  # entry name -> (entry value, its one line)
    "bad": ("json:dumps", ("savi_plugin.benchmarks entry bad = json:dumps: expected a savi_plugin.eval.benchmarks."
                           "Benchmark, got function")),
    "missingmod": ("nomod_zz:B", ("savi_plugin.benchmarks entry missingmod = nomod_zz:B: cannot load "
                                  "(ModuleNotFoundError: No module named 'nomod_zz')")),
}


@pytest.mark.parametrize("name", sorted(BROKEN_ENTRIES))
def test_a_broken_entry_is_one_line_naming_it_and_the_built_in_tasks_still_load(name, tmp_path, monkeypatch, capsys,
                                                                               fresh_registry):
    """A third party's broken benchmark entry costs its own benchmark only (pass 26 O #42): the built-in MVBench
    task still loads its records, the entry is said once on stderr, and asking for it gives its line."""
    from savi_plugin.eval.fixtures import build_fixture
    from savi_plugin.eval.task import SaviVideoTask
    from tests.eval.test_task import _config

    value, line = BROKEN_ENTRIES[name]
    site = tmp_path / "site"
    (site / "badbench-0.1.dist-info").mkdir(parents=True)
    (site / "badbench-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: badbench\nVersion: 0.1\n")
    (site / "badbench-0.1.dist-info" / "entry_points.txt").write_text(f"[savi_plugin.benchmarks]\n{name} = {value}\n")
    monkeypatch.syspath_prepend(str(site))
    fx = build_fixture(tmp_path / "data", "mvbench", 2, subtasks=("object_shuffle",))
    monkeypatch.setenv("SAVI_DATA_ROOT", str(tmp_path / "data"))
    task = SaviVideoTask(config=_config("mvbench/savi_mvbench_object_shuffle.yaml"))
    assert [d["video"] for d in task.test_docs()] == [r["video"] for r in fx.records["savi_mvbench_object_shuffle"]]
    assert {"mvbench", "egoschema", "perceptiontest"} <= set(benchmarks.registered())
    assert name not in benchmarks.registered() and benchmarks.broken() == {name: line}
    assert not benchmarks.task_folders() or all("badbench" not in f for f in benchmarks.task_folders())
    with pytest.raises(benchmarks.BenchmarkError) as info:
        benchmarks.get(name)
    assert str(info.value) == line
    assert capsys.readouterr().err.count(line) == 1  # said once, however often the registry is asked
    # nor again by a process this one starts (lmms-eval under `savi eval run`), which still leaves it out
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    code = "from savi_plugin.eval import benchmarks; print(sorted(benchmarks.broken()))"
    child = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert child.stdout.strip() == f"[{name!r}]" and line not in child.stderr, child.stderr
    monkeypatch.undo()
    benchmarks.cache_clear()
    with pytest.raises(benchmarks.BenchmarkError, match="unknown benchmark 'nope'; registered: egoschema, mvbench"):
        benchmarks.get("nope")


def test_a_benchmark_name_two_packages_register_is_refused_not_picked(tmp_path, monkeypatch, capsys, fresh_registry):
    """Pass 26 R6 #16: a package registering ``mvbench`` beside ours was marked a conflict by ``savi plugins`` while
    the tasks used one of the two without a word. One name, one object, as in every other group: the name is left out
    with one line naming both packages, and asking for it gives that line."""
    site = tmp_path / "site"
    (site / "twinbench-0.1.dist-info").mkdir(parents=True)
    (site / "twinbench-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: twinbench\nVersion: 0.1\n")
    (site / "twinbench-0.1.dist-info" / "entry_points.txt").write_text("[savi_plugin.benchmarks]\nmvbench = json:dumps\n")
    monkeypatch.syspath_prepend(str(site))
    assert "mvbench" not in benchmarks.registered() and {"egoschema", "perceptiontest"} <= set(benchmarks.registered())
    with pytest.raises(benchmarks.BenchmarkError, match=r"entry mvbench is registered by several packages with "
                                                        r"different objects \(.*json:dumps from twinbench.*\)"):
        benchmarks.get("mvbench")
    assert capsys.readouterr().err.count("benchmark left out: savi_plugin.benchmarks entry mvbench") == 1

"""``eval/fixtures.py``: the synthetic eval data of a ``tiny://`` run (``RUN/eval_data``) is built once per
benchmark its tasks need and kept; a benchmark added to the tasks later is built then; a file changed or added
there since is refused naming it, so every evaluation of the run (each iteration's and the base model's) reads the
same data."""

from __future__ import annotations

import pytest


def _recipe(*tasks):
    from savi_plugin.recipe import load_recipe

    return load_recipe("tiny_demo", [f"eval.tasks=[{', '.join(tasks)}]"])


def _contents(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and not p.name.startswith(".")}


def test_the_synthetic_eval_data_is_built_once_extended_by_task_and_refused_when_changed(tmp_path):
    from savi_plugin.errors import RunError
    from savi_plugin.data.outputs import FIXTURE_MARK_NAME
    from savi_plugin.eval.fixtures import offline_eval_root

    root = offline_eval_root(_recipe("savi_egoschema"), tmp_path)
    assert root == tmp_path / "eval_data" and (root / FIXTURE_MARK_NAME).is_file()
    first = _contents(root)
    assert first and all(name.startswith("egoschema") for name in first)
    assert offline_eval_root(_recipe("savi_egoschema"), tmp_path) == root and _contents(root) == first  # kept
    # a task added later (pass 23: the `.built` flag kept the folder as it was, with no data for the new task)
    offline_eval_root(_recipe("savi_egoschema", "savi_perceptiontest"), tmp_path)
    both = _contents(root)
    assert {n: b for n, b in both.items() if n.startswith("egoschema")} == first
    assert any(name.startswith("perceptiontest") for name in both)
    # a file changed since, or one added: refused naming it, nothing rebuilt over it
    changed = root / next(name for name in first if name.endswith((".json", ".jsonl", ".parquet")))
    changed.write_bytes(changed.read_bytes() + b" ")
    with pytest.raises(RunError) as caught:
        offline_eval_root(_recipe("savi_egoschema"), tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{root}: {changed.relative_to(root)} was changed after savi eval fixture wrote it")
    assert message.endswith(f"remove {root} to build it again)") and "\n" not in message
    changed.unlink()
    (root / "egoschema" / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="notes.txt"):
        offline_eval_root(_recipe("savi_egoschema"), tmp_path)
    assert (root / "egoschema" / "notes.txt").read_text() == "mine"


def test_an_earlier_savis_unrecorded_synthetic_data_is_built_again(tmp_path):
    """A folder an earlier savi built (its ``.built`` flag, no record of its files) is built again, the same data
    (a pure function of its arguments)."""
    from savi_plugin.data.outputs import FIXTURE_MARK_NAME
    from savi_plugin.eval.fixtures import offline_eval_root

    root = offline_eval_root(_recipe("savi_egoschema"), tmp_path / "a")
    (tmp_path / "b" / "eval_data" / "egoschema").mkdir(parents=True)
    (tmp_path / "b" / "eval_data" / ".built").write_text("ok")
    (tmp_path / "b" / "eval_data" / "egoschema" / "stale.json").write_text("{}")
    again = offline_eval_root(_recipe("savi_egoschema"), tmp_path / "b")
    assert (again / FIXTURE_MARK_NAME).is_file() and not (again / ".built").exists()
    assert _contents(again).keys() == _contents(root).keys()

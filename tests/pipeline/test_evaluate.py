"""The eval step's folders: each carries the eval configuration it was made with, and another one replaces it
whole through the output layer (``eval_base`` is evaluated again on that ground)."""

import pytest


def test_an_eval_folder_of_another_configuration_is_replaced_whole_and_a_foreign_one_is_refused(tmp_path):
    from savi_plugin.data.outputs import ForeignOutputError
    from savi_plugin.pipeline.evaluate import fresh_eval_folder, stored_eval_config

    folder = tmp_path / "eval_base"
    first, second = {"tasks": ["savi_mvbench"], "limit": 1}, {"tasks": ["savi_mvbench"], "limit": 2}
    assert stored_eval_config(folder) is None
    with fresh_eval_folder(folder, first) as tmp:
        (tmp / "results.json").write_text("{}")
        (tmp / "samples_limit1.jsonl").write_text("a\n")
    assert stored_eval_config(folder) == first
    with pytest.raises(RuntimeError), fresh_eval_folder(folder, second) as tmp:  # a failed run leaves the old one
        (tmp / "results.json").write_text("{}")
        raise RuntimeError("lmms-eval failed")
    assert stored_eval_config(folder) == first and (folder / "samples_limit1.jsonl").is_file()
    with fresh_eval_folder(folder, second) as tmp:
        (tmp / "results.json").write_text("{}")
    assert stored_eval_config(folder) == second and not (folder / "samples_limit1.jsonl").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval_base"]  # no temporary or lock left

    user = tmp_path / "mine"
    user.mkdir()
    (user / "results.json").write_text("{}")  # not ours: no mark
    assert stored_eval_config(user) is None
    with pytest.raises(ForeignOutputError, match="not written by savi align eval"), fresh_eval_folder(user, first):
        pass
    assert (user / "results.json").read_text() == "{}"

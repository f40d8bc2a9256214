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


def test_a_failed_eval_keeps_lmms_eval_s_log_where_the_error_names_it(tmp_path):
    """The eval folder is a temporary one removed with a failure (red team B44: the line named a removed
    ``.eval.<pid>.<rand>.tmp/``): the log is moved beside the folder, the error names it there, and a later
    success removes it."""
    from savi_plugin.eval.command import EvalRunError, EvalSettingError
    from savi_plugin.pipeline.evaluate import fresh_eval_folder

    folder = tmp_path / "iter_0" / "eval"
    with pytest.raises(EvalRunError) as err, fresh_eval_folder(folder, {"limit": 1}) as tmp:
        (tmp / "lmms_eval.log").write_text("EvalDataError: options C and D are the same\n")
        raise EvalRunError("evaluation did not finish: lmms-eval wrote no results file", tmp / "lmms_eval.log")
    kept = tmp_path / "iter_0" / "eval.failed.log"
    assert str(err.value).endswith(f"; full log: {kept}") and "options C and D" in kept.read_text()
    assert sorted(p.name for p in kept.parent.iterdir()) == ["eval.failed.log"]  # no temporary folder left
    with pytest.raises(EvalSettingError) as err, fresh_eval_folder(folder, {"limit": 1}) as tmp:
        (tmp / "lmms_eval.log").write_text("savi_video: dtype='int8' is unknown\n")
        raise EvalSettingError("evaluation did not finish (exit status 2)", tmp / "lmms_eval.log")
    assert err.value.exit_code == 2 and "dtype='int8'" in kept.read_text()  # still a configuration error
    with fresh_eval_folder(folder, {"limit": 1}) as tmp:
        (tmp / "results.json").write_text("{}")
    assert sorted(p.name for p in kept.parent.iterdir()) == ["eval"]


def test_a_first_configuration_error_keeps_the_log_its_line_names(tmp_path):
    """A configuration error (lmms-eval's exit status 2) undoes what a new output's job made, and the undo took the
    kept log beside the folder with it, though the line named it (red team pass 13, B8, in the suite): the output
    layer keeps that name (:func:`savi_plugin.data.outputs.failed_log_path`)."""
    from savi_plugin.eval.command import EvalSettingError
    from savi_plugin.pipeline.evaluate import fresh_eval_folder

    folder = tmp_path / "iter_0" / "eval"
    with pytest.raises(EvalSettingError) as err, fresh_eval_folder(folder, {"limit": 1}) as tmp:
        (tmp / "lmms_eval.log").write_text("savi_video: dtype='int8' is unknown\n")
        raise EvalSettingError("evaluation did not finish (exit status 2)", tmp / "lmms_eval.log")
    kept = tmp_path / "iter_0" / "eval.failed.log"
    assert str(err.value).endswith(f"; full log: {kept}") and "dtype='int8'" in kept.read_text()
    assert sorted(p.name for p in kept.parent.iterdir()) == ["eval.failed.log"]


def test_the_eval_step_starts_lmms_eval_outside_this_job_s_rendezvous(tmp_path, monkeypatch):
    """A DeepSpeed recipe run with no launcher is rank 0 of 1 on 127.0.0.1 (single_process_env): the lmms-eval it
    starts gets none of those variables (its accelerate would bind the same MASTER_PORT and fail), nor a launcher's."""
    from savi_plugin.launch import PROCESS_VARIABLES, RENDEZVOUS_VARIABLES, single_process_env
    from savi_plugin.pipeline import evaluate
    from savi_plugin.recipe import load_recipe

    for var in (*PROCESS_VARIABLES, *RENDEZVOUS_VARIABLES):  # recorded as they are, so that teardown restores them
        monkeypatch.setenv(var, "0")
        monkeypatch.delenv(var)
    assert single_process_env()
    seen = {}

    def judged(command, *, env, **_):
        seen.update(env)
        raise RuntimeError("stop")

    monkeypatch.setattr(evaluate, "run_judged", judged)
    recipe = load_recipe("tiny_demo", ["eval.data_root=" + str(tmp_path)])
    with pytest.raises(RuntimeError, match="stop"):
        evaluate._lmms_eval(recipe, tmp_path / "model", tmp_path / "out", tmp_path)
    assert seen and not {*PROCESS_VARIABLES, *RENDEZVOUS_VARIABLES} & set(seen)
    assert seen["SAVI_DATA_ROOT"] == str(tmp_path)

"""Which lmms-eval task names a run may ask for (:mod:`savi_plugin.eval.task_names`): the user's own task folders
(``--include_path``, ``$LMMS_EVAL_PLUGINS``) count, as lmms-eval's ``TaskManager`` reads them."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from savi_plugin.cli import main
from savi_plugin.eval.registration import tasks_path
from savi_plugin.eval.task_names import include_folders

pytest.importorskip("lmms_eval")


def _user_task(folder, name: str = "my_antonym"):
    """A copy of one of our tasks under another name, as a user writes their own task folder."""
    folder.mkdir(parents=True, exist_ok=True)
    text = next(Path(tasks_path()).rglob("savi_mvbench_action_antonym.yaml")).read_text()
    assert "task: savi_mvbench_action_antonym" in text
    (folder / f"{name}.yaml").write_text(text.replace("task: savi_mvbench_action_antonym", f"task: {name}"))


def _eval_run(tmp_path, *extra):
    """``savi eval run`` with a device this machine refuses: the first check after the task names, so exit 2
    naming the device means every task name was accepted (and lmms-eval never starts)."""
    return main(["eval", "run", "--", "--model", "savi_video", "--model_args",
                 f"pretrained={tmp_path / 'm'},num_frames=4,device=nodevice", "--tasks", "my_antonym", "--limit", "1",
                 "--output_path", str(tmp_path / "out"), *extra])


def test_a_task_of_the_user_s_include_path_is_accepted(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _user_task(tmp_path / "mytasks" / "sub")
    capsys.readouterr()
    assert _eval_run(tmp_path) == 2  # without the folder: unknown
    err = capsys.readouterr().err
    assert "--tasks[0]: unknown lmms-eval task 'my_antonym'" in err
    assert _eval_run(tmp_path, "--include_path", "mytasks") == 2  # read recursively, relative to the cwd
    err = capsys.readouterr().err.strip()
    assert "unknown lmms-eval task" not in err and "nodevice" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_name_in_no_folder_names_the_include_path_it_searched(tmp_path, capsys):
    _user_task(tmp_path / "mytasks", "other_task")
    capsys.readouterr()
    assert _eval_run(tmp_path, f"--include_path={tmp_path / 'mytasks'}") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown lmms-eval task 'my_antonym'" in err
    assert f"nor a task under {tmp_path / 'mytasks'}" in err


def _plugin(site: Path, name: str = "my_plugin") -> None:
    """A package lmms-eval 0.7.3 accepts in ``$LMMS_EVAL_PLUGINS``: ``name.models`` (``AVAILABLE_MODELS``) and
    a ``name.tasks`` package holding one task."""
    _user_task(site / name / "tasks")
    (site / name / "__init__.py").write_text("")
    (site / name / "tasks" / "__init__.py").write_text("")
    (site / name / "models.py").write_text("AVAILABLE_MODELS = {}\n")


#: values of $LMMS_EVAL_PLUGINS lmms-eval fails on at its start, and what the refusal says
BAD_PLUGINS = [("bogus_pkg", "'bogus_pkg': ModuleNotFoundError"), (",", "holds an empty module name"),
               ("ok_plugin,", "holds an empty module name"), ("ok_plugin, ok_plugin", "is no Python module name"),
               ("json", "'json' has no json.models module"), ("ok_plugin.tasks", "has no ok_plugin.tasks.models"),
               ("a-b", "is no Python module name")]


@pytest.mark.parametrize("value, says", BAD_PLUGINS)
def test_a_plugin_variable_lmms_eval_cannot_start_with_is_refused_before_it_starts(value, says, tmp_path, capsys,
                                                                                  monkeypatch):
    """Pass 23 D #19/#20: ``LMMS_EVAL_PLUGINS=bogus_pkg savi eval run`` started lmms-eval, which failed naming no
    variable (exit 1), and ``savi doctor --eval`` said to reinstall savi-plugin. ``task_names.check_plugins`` is
    asked before every evaluation (eval run, suite, align: ``hub_check.eval_data_env``) and by the doctor."""
    from savi_plugin.eval.hub_check import eval_data_env
    from savi_plugin.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    _plugin(tmp_path / "site", "ok_plugin")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("LMMS_EVAL_PLUGINS", value)
    capsys.readouterr()
    assert _eval_run(tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: $LMMS_EVAL_PLUGINS: ") and says in err[0], err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match=r"^\$LMMS_EVAL_PLUGINS: "):  # what savi eval suite and align ask
        eval_data_env(["savi_egoschema"], {"LMMS_EVAL_PLUGINS": value})
    from savi_plugin.doctor import eval_checks

    failed = [c for c in eval_checks() if c.status != "ok"]
    assert failed and "$LMMS_EVAL_PLUGINS" in failed[0].name and says in failed[0].detail, failed
    assert all("reinstall" not in c.fix for c in failed), failed


def test_lmms_eval_plugins_add_their_tasks_package(tmp_path, monkeypatch, capsys):
    """``LMMS_EVAL_PLUGINS=pkg``: lmms-eval adds the folder of ``pkg.tasks`` to its include path; so does the check."""
    _plugin(tmp_path / "site")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("LMMS_EVAL_PLUGINS", "my_plugin")
    assert include_folders(None) == [str(tmp_path / "site" / "my_plugin" / "tasks")]
    capsys.readouterr()
    assert _eval_run(tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown lmms-eval task" not in err and "nodevice" in err, err


@pytest.mark.parametrize("tasks", ["savi_egoschema,", ",savi_egoschema", "savi_egoschema,,savi_perceptiontest",
                                   "savi_egoschema, ,savi_perceptiontest"])
def test_an_empty_task_name_is_refused_before_lmms_eval_starts(tasks, tmp_path, capsys):
    """Pass 15 B #38: the check dropped the empty name a stray comma makes, and lmms-eval loaded the model to
    look for it ("Tasks not found: ."), exit 1."""
    capsys.readouterr()
    assert main(["eval", "run", "--", "--model", "savi_video", "--model_args", f"pretrained={tmp_path / 'm'}",
                 "--tasks", tasks, "--limit", "1", "--output_path", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --tasks: {tasks!r} holds an empty task name (a comma at its start or end, or two in a "
                   f"row): remove it"], err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("tasks, name", [(" savi_egoschema", " savi_egoschema"),
                                         ("savi_egoschema, savi_perceptiontest", " savi_perceptiontest")])
def test_a_task_name_with_white_space_around_it_is_refused_before_lmms_eval_starts(tasks, name, tmp_path, capsys):
    """Pass 16 B #46: the check stripped the space, lmms-eval did not, and it loaded the model to look for it."""
    capsys.readouterr()
    assert main(["eval", "run", "--", "--model", "savi_video", "--model_args", f"pretrained={tmp_path / 'm'}",
                 "--tasks", tasks, "--limit", "1", "--output_path", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --tasks: {name!r}: a task name with white space around it (lmms-eval would not find "
                   f"it): write {name.strip()!r}"], err


def _shipped(name: str = "savi_egoschema") -> Path:
    return next(Path(tasks_path()).rglob(f"{name}.yaml"))


#: task folders a run may add, each with a task under a shipped name: (how it holds it, refused)
SHADOWS = {
    "edited copy": (lambda folder: (folder / "savi_egoschema.yaml").write_text(
        _shipped().read_text().replace("max_new_tokens: 16", "max_new_tokens: 1")), True),
    "another file, same task name": (lambda folder: (folder / "sub" / "mine.yaml").write_text(
        "task: savi_egoschema\nclass: !function my.Task\n"), True),
    "exact copy": (lambda folder: (folder / "savi_egoschema.yaml").write_bytes(_shipped().read_bytes()), False),
    "link to ours": (lambda folder: (folder / "savi_egoschema.yaml").symlink_to(_shipped()), False),
}


@pytest.mark.parametrize("route", ["--include_path", "$LMMS_EVAL_PLUGINS"])
@pytest.mark.parametrize("shadow", list(SHADOWS))
def test_a_user_task_named_like_a_shipped_one_is_refused_naming_both_files(shadow, route, tmp_path, capsys,
                                                                          monkeypatch):
    """Pass 23 F #55: ``mytasks/savi_egoschema.yaml`` (the shipped task with ``max_new_tokens: 1``) under
    ``--include_path`` replaced the shipped ``savi_egoschema`` with no word: lmms-eval keeps the first declaration
    it indexes, and the user's folders come before ours, so answers cut to one token were kept under the shipped
    name. Refused naming both files; the shipped file itself, or a byte-for-byte copy, is no other task."""
    monkeypatch.chdir(tmp_path)
    if route == "--include_path":
        folder, extra = tmp_path / "mytasks", ["--include_path", "mytasks"]
    else:
        plugin = f"shadow_plugin_{uuid.uuid4().hex}"  # a name no earlier test imported
        folder, extra = tmp_path / "site" / plugin / "tasks", []
        # a plugin lmms-eval can start with: a package with .models and .tasks (task_names.check_plugins)
        for init in (folder.parent / "__init__.py", folder.parent / "models" / "__init__.py", folder / "__init__.py"):
            init.parent.mkdir(parents=True, exist_ok=True)
            init.write_text("")
        monkeypatch.syspath_prepend(str(tmp_path / "site"))
        monkeypatch.setenv("LMMS_EVAL_PLUGINS", plugin)
    _user_task(folder)
    (folder / "sub").mkdir()
    make, refused = SHADOWS[shadow]
    make(folder)
    capsys.readouterr()
    assert _eval_run(tmp_path, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    if refused:
        assert err.startswith(f"error: {route}: ") and "declares task 'savi_egoschema', a task savi-plugin ships" in err
        assert str(_shipped()) in err and "give your task another name" in err, err
    else:
        assert "nodevice" in err, err  # the next check: the task folder was accepted
    assert not (tmp_path / "out").exists()


def test_our_own_task_folder_given_as_include_path_is_no_shadow(tmp_path, capsys):
    """README's ``--include_path $(savi eval tasks-path)``: the shipped files themselves."""
    capsys.readouterr()
    assert main(["eval", "run", "--", "--model", "savi_video", "--model_args",
                 f"pretrained={tmp_path / 'm'},num_frames=4,device=nodevice", "--tasks", "savi_egoschema",
                 "--include_path", tasks_path(), "--output_path", str(tmp_path / "out")]) == 2
    assert "nodevice" in capsys.readouterr().err

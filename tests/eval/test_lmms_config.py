"""lmms-eval's own ``--config`` file through ``savi eval run`` (:mod:`savi_plugin.eval.lmms_config`): each run in it
meets every check the same arguments meet as flags, before lmms-eval starts; a form savi cannot check is refused.
In-process through ``main(argv)``; lmms-eval is never started here (a start fails the test)."""

from __future__ import annotations

import pytest
import yaml

from savi_plugin.cli import main
from savi_plugin.eval import command
from savi_plugin.eval.lmms_config import CHECKED_KEYS, LMMS_EVAL_KEYS, expand_variables

TASK = "savi_mvbench_action_antonym"


@pytest.fixture()
def place(tmp_path, monkeypatch):
    """A model folder, a local data root, and lmms-eval replaced by a failure: nothing here may start it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("SAVI_DATA_ROOT", str(tmp_path / "data"))

    def started(args, tasks_path=None):
        raise AssertionError(f"lmms-eval was started: {args}")

    monkeypatch.setattr(command, "lmms_eval_command", started)
    return tmp_path


def _refused(capsys, config, *flags: str) -> str:
    path = "cfg.yaml"
    with open(path, "w") as fh:
        fh.write(config if isinstance(config, str) else yaml.safe_dump(config))
    capsys.readouterr()
    code = main(["eval", "run", "--", "--config", path, *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


RUN = {"model": "savi_video", "model_args": "pretrained=model,num_frames=4", "tasks": TASK, "limit": 1,
       "batch_size": 1, "output_path": "out"}


@pytest.mark.parametrize("change, fragments", [
    # tester B pass 11 #2: an output_path inside the model folder was written into
    ({"output_path": "model/evalout"}, ["output_path of cfg.yaml lies inside pretrained= of model_args of cfg.yaml"]),
    # #3: an unknown task (lmms-eval logs "Tasks not found" and exits 0)
    ({"tasks": f"{TASK},no_such_task_zz"}, ["cfg.yaml: tasks[1]: unknown lmms-eval task 'no_such_task_zz'"]),
    ({"limit": 1.5}, ["cfg.yaml: limit:", "cut it to 1"]),
    ({"limit": 0}, ["cfg.yaml: limit:", "every item"]),
    ({"limit": "2"}, ["cfg.yaml: limit: must be a number"]),
    ({"model_args": "pretrained=model,pretrained=other"}, ["cfg.yaml: model_args: pretrained= is given twice"]),
    ({"model_args": "pretrained=model,device=meta"}, ["cfg.yaml: model_args device"]),
    ({"gen_kwargs": "num_beams=4294967295"}, ["cfg.yaml: gen_kwargs", "num_beams (gen_kwargs) must be 1"]),
    # pass 17 B #42: savi_video's setting values, checked only when lmms-eval reached that run
    ({"model_args": "pretrained=model,num_frames=0"}, ["cfg.yaml: model_args num_frames must be >= 1, got 0"]),
    ({"model_args": "pretrained=model,fps=nan"}, ["cfg.yaml: model_args fps must be a finite number, got nan"]),
    ({"tasks": [TASK]}, ["cfg.yaml: tasks: lmms-eval reads it as text"]),
    ({"model": None}, ["cfg.yaml: model: must be a model name"]),
    ({"tasks": None}, ["no task to evaluate"]),
    ({"env": "x"}, ["cfg.yaml: env: must be a mapping"]),
])
def test_a_config_run_meets_the_checks_of_the_same_flags(change, fragments, place, capsys):
    err = _refused(capsys, {**RUN, **change})
    for fragment in fragments:
        assert fragment in err, err
    assert not (place / "model" / "evalout").exists()


def test_every_run_of_a_config_list_is_checked_before_the_first_starts(place, capsys):
    """lmms-eval runs a list's items in order in one process; a bad second run is refused before the first runs."""
    err = _refused(capsys, [RUN, {**RUN, "tasks": "no_such_task_zz"}])
    assert "cfg.yaml: [1].tasks[0]: unknown lmms-eval task" in err
    err = _refused(capsys, [RUN, {**RUN, "model_args": "pretrained=model,num_frames=0"}])
    assert "[1]" in err and "num_frames must be >= 1, got 0" in err, err


def test_command_line_flags_override_the_file_as_lmms_eval_does(place, capsys):
    """lmms-eval: a flag given with a value other than its default overrides the file; one equal to its default
    (``--model hf``) does not."""
    err = _refused(capsys, {**RUN, "output_path": "fine"}, "--output_path", "model/x")
    assert "model/x: --output_path lies inside pretrained= of model_args of cfg.yaml" in err
    err = _refused(capsys, {**RUN, "tasks": "no_such_task_zz"}, "--model", "hf", "--gen_kwargs", "top_k=3")
    assert "cfg.yaml: tasks[0]: unknown" in err  # the file's savi_video is checked, not the default hf
    err = _refused(capsys, RUN, "--gen_kwargs", "top_k=3")
    assert "--gen_kwargs 'top_k=3': top_k (gen_kwargs): not applied by savi_video" in err


def test_the_config_s_env_is_the_environment_checked(place, capsys):
    """``env: {SAVI_DATA_ROOT: ...}`` is set by lmms-eval before its runs: the output check compares with it."""
    (place / "data" / "sub").mkdir()
    err = _refused(capsys, {**RUN, "env": {"ROOT_X": str(place), "SAVI_DATA_ROOT": "${ROOT_X}/data"},
                            "output_path": "data/sub/out"})
    assert "lies inside the data root (SAVI_DATA_ROOT)" in err, err


@pytest.mark.parametrize("config, fragment", [
    ("", "holds no run"), ("[]", "holds no run"), ("- {tasks: x}\n- 3\n", "cfg.yaml: [1]: a run must be a mapping"), ("- 3\n", "cfg.yaml: a run must be"),
    ("a: [", "cfg.yaml: invalid YAML"), ("{1: x}", "key 1 is no argument name"),
    ("tasks: x\noutput-path: o\n", ("cfg.yaml: output-path: unknown key: lmms-eval 0.7.3 takes the names of its "
                                    "flags (--output-path is none); did you mean output_path?")),
    ("- {tasks: x}\n- {limitt: 2}\n", "cfg.yaml: [1].limitt: unknown key"),
    # pass 21 D #26: seed .nan reached lmms-eval: "'float' object is not subscriptable", exit 1, naming no key
    ("tasks: x\nseed: .nan\n", "cfg.yaml: seed: must be a finite number, got nan"),
    ("tasks: x\nseed: 1.5\n", "cfg.yaml: seed: expected a whole number"),
    ("tasks: x\nnum_fewshot: .inf\n", "cfg.yaml: num_fewshot: must be a finite number, got inf"),
    ("- {tasks: x}\n- {tasks: x, wandb_args: {a: [1, .nan]}}\n", "cfg.yaml: [1].wandb_args: must be a finite"),
])
def test_a_config_savi_cannot_read_is_refused_in_one_line(config, fragment, place, capsys):
    assert fragment in _refused(capsys, config)


def test_a_config_that_is_a_fifo_is_named_not_opened(place, capsys):
    import os

    os.mkfifo("cfg.fifo")
    capsys.readouterr()
    assert main(["eval", "run", "--", "--config", "cfg.fifo"]) == 2
    assert "cfg.fifo: is a FIFO (named pipe)" in capsys.readouterr().err


@pytest.mark.parametrize("argv, fragment", [
    (["eval"], "interactive wizard"),
    (["--tui"], "terminal UI"),
    (["--conf", "cfg.yaml"], "--conf: write lmms-eval's flag in full (--config)"),
    (["--gen", "top_k=1", "--model", "savi_video", "--tasks", TASK], "--gen: write lmms-eval's flag in full"),
    # lmms-eval's `eval` sub-command is the flat form: the same checks
    (["eval", "--model", "savi_video", "--model_args", "pretrained=model", "--tasks", TASK, "--output_path",
      "model/x"], "--output_path lies inside pretrained= of --model_args"),
    # pass 24 E #36: no --model: lmms-eval's default hf is no model of lmms-eval 0.7.3; it failed after it started,
    # listing its ~150 model names twice
    (["--model_args", "pretrained=model", "--tasks", TASK, "--output_path", "model/x"],
     "error: --model: not given: lmms-eval would use its default model 'hf'"),
    # pass 24 E #38: an --include_path that is no folder was accepted with no word
    (["--model", "savi_video", "--model_args", "pretrained=model", "--tasks", TASK, "--include_path", "nothere"],
     "error: --include_path: nothere does not exist"),
])
def test_every_route_to_an_evaluation_is_checked_or_refused(argv, fragment, place, capsys):
    capsys.readouterr()
    assert main(["eval", "run", "--", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and fragment in err, err


@pytest.mark.parametrize("form", ["--model X", "--model=X", "--config"])
@pytest.mark.parametrize("name, words", [
    ("savi_vidoe", "'savi_vidoe': unknown lmms-eval model (nearest of the"),
    ("qqq", "'qqq': unknown lmms-eval model (none of the")])
def test_a_model_lmms_eval_does_not_have_is_refused_before_it_starts(form, name, words, place, capsys,
                                                                     monkeypatch):
    """Pass 24 R2 row 10: ``--model=savi_vidoe`` started lmms-eval, which failed after ~24 s listing its ~150 model
    names. GENERATED: each way to name the model, a near miss (the nearest names, savi_video first) and a name
    near none, refused in one line at the key that gave it, from lmms-eval's own model registry (exit 2)."""
    monkeypatch.delenv("LMMS_EVAL_PLUGINS", raising=False)
    if form == "--config":
        err = _refused(capsys, {**RUN, "model": name})
        where = "cfg.yaml: model"
    else:
        model = ["--model", name] if form == "--model X" else [f"--model={name}"]
        capsys.readouterr()
        assert main(["eval", "run", "--", *model, "--model_args", "pretrained=model", "--tasks", TASK]) == 2
        err = capsys.readouterr().err.strip()
        where = "--model"
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {where}: {words}"), err
    if name == "savi_vidoe":
        assert "known: savi_video," in err, err


def test_a_config_run_without_a_model_or_with_no_include_folder_is_refused_at_its_key(place, capsys):
    run = {k: v for k, v in RUN.items() if k != "model"}
    assert "cfg.yaml [1]: model: not given" in _refused(capsys, [RUN, run])
    (place / "afile.yaml").write_text("task: x\n")
    err = _refused(capsys, {**RUN, "include_path": "afile.yaml"})
    assert err == ("error: cfg.yaml: include_path: afile.yaml is not a folder (lmms-eval reads task YAMLs from a "
                   "folder)"), err


def test_the_checked_keys_and_defaults_are_lmms_eval_s():
    """:data:`CHECKED_KEYS` holds lmms-eval 0.7.3's own defaults of those flags (a flag equal to its default does
    not override the file), read from its ``parse_eval_args`` source (importing it loads torch and accelerate), and
    each key is a flag savi reads by its full name."""
    import ast
    import importlib.util
    from pathlib import Path

    source = Path(importlib.util.find_spec("lmms_eval").submodule_search_locations[0]) / "__main__.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    function = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "parse_eval_args")
    defaults, dests = {}, {"help"}
    for call in ast.walk(function):
        if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "add_argument" and call.args:
            flag = call.args[0].value
            keywords = {k.arg: k.value for k in call.keywords}
            dests.add(keywords["dest"].value if "dest" in keywords else flag.lstrip("-").replace("-", "_"))
            default = keywords.get("default")
            if default is None or isinstance(default, ast.Constant):
                defaults[flag.lstrip("-")] = default.value if default is not None else None
    assert {key: defaults[key] for key in CHECKED_KEYS} == CHECKED_KEYS
    assert dests == LMMS_EVAL_KEYS
    assert {f"--{key}" for key in CHECKED_KEYS} | {"--config"} <= set(command.INSPECTED_FLAGS)


def test_env_values_are_expanded_as_os_path_expandvars_does(monkeypatch):
    import os

    env = {"A": "1", "B_2": "x y"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("NOPE", raising=False)
    for text in ["$A", "${A}/$B_2", "$NOPE/x", "${NOPE", "a$", "$$A", "${}", "plain"]:
        assert expand_variables(text, env) == os.path.expandvars(text), text


@pytest.mark.parametrize("target", ["model", "elsewhere"])
def test_an_output_folder_holding_a_link_is_refused_before_lmms_eval_writes_through_it(target, place, capsys):
    """Pass 21 F #39: ``out/model -> ../model`` with ``--output_path out``: lmms-eval wrote its results into the
    model folder (an input) through the link, while the place checks saw ``out`` only."""
    (place / "elsewhere").mkdir()
    (place / "out").mkdir()
    (place / "out" / "model").symlink_to(f"../{target}")
    capsys.readouterr()
    assert main(["eval", "run", "--", "--model", "savi_video", "--model_args", "pretrained=model,num_frames=4",
                 "--tasks", TASK, "--limit", "1", "--output_path", "out"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --output_path: out/model is a symbolic link (to ../{target}): lmms-eval writes into "
                   f"out/<model name>/ and would write through it; remove the link, or give another --output_path"], err


@pytest.mark.parametrize("key", ["log_samples", "predict_only"])
@pytest.mark.parametrize("how", ["flag", "config"])
def test_samples_asked_for_without_an_output_path_are_refused_not_written_to_a_temporary_folder(key, how, place,
                                                                                            capsys):
    """Pass 21 F #41, #42: ``--log_samples`` (or ``--predict_only``) without ``--output_path``: savi gave lmms-eval a
    temporary results folder, removed after the run, with the samples asked for; exit 0."""
    run = {k: v for k, v in RUN.items() if k != "output_path"}
    if how == "flag":
        err = _refused(capsys, run, f"--{key}")
        assert err == (f"error: --{key}: lmms-eval writes what {key} asks for into --output_path, and none was "
                       f"given: give --output_path (savi's results folder for a run without one is temporary)"), err
    else:
        err = _refused(capsys, {**run, key: True})
        assert err.startswith(f"error: cfg.yaml: {key}: lmms-eval writes what {key} asks for into --output_path"), err


def _swap_videos(root):
    videos = root / "data" / "egoschema" / "videos"
    a, b = (videos / "a.mp4").read_bytes(), (videos / "b.mp4").read_bytes()
    (videos / "a.mp4").write_bytes(b)
    (videos / "b.mp4").write_bytes(a)


#: what decides the answers besides what lmms-eval's own cache key holds, each changed in place: (args, env) after
CACHE_CHANGES = {
    "adapter weights replaced": lambda root, args, env: (root / "ad" / "adapter_model.safetensors").write_bytes(b"w"),
    "model config edited": lambda root, args, env: (root / "m" / "config.json").write_text('{"a": 1}'),
    # pass 23 F #31: a data root with two videos swapped was answered from the first root's cache
    "data root videos swapped": lambda root, args, env: _swap_videos(root),
    "data root file added": lambda root, args, env: (root / "data" / "egoschema" / "videos" / "c.mp4").write_bytes(b"c"),
    "include_path task edited": lambda root, args, env: (root / "mytasks" / "t.yaml").write_text("task: t2\n"),
    "decode cap set": lambda root, args, env: env.update(SAVI_MAX_FRAME_PIXELS="100"),
    "gen_kwargs given": lambda root, args, env: args.extend(["--gen_kwargs", "max_new_tokens=4"]),
}


@pytest.mark.parametrize("change", [None, *CACHE_CHANGES])
def test_lmms_eval_s_cache_is_keyed_by_what_decides_the_answers(change, tmp_path, monkeypatch):
    """Pass 21 F #60: ``--use_cache c`` after an adapter was replaced at the same path answered every document from
    the old adapter's cache (lmms-eval keys it by the model arguments as text), exit 0. Pass 23 F #31: so did
    another data root whose videos were swapped. Each thing that decides an answer, changed, keys another cache
    folder; nothing changed, the same one."""
    from savi_plugin.cli.eval import _content_keyed_cache
    from savi_plugin.eval.command import flag_value

    monkeypatch.chdir(tmp_path)
    for name in ("m", "ad", "mytasks", "data/egoschema/videos"):
        (tmp_path / name).mkdir(parents=True)
    for name in ("m", "ad"):
        (tmp_path / name / "config.json").write_text("{}")
    (tmp_path / "mytasks" / "t.yaml").write_text("task: t\n")
    for video in ("a", "b"):
        (tmp_path / "data" / "egoschema" / "videos" / f"{video}.mp4").write_bytes(video.encode() * 10)
    args = ["--model", "savi_video", "--model_args", "pretrained=m,adapter=ad", "--include_path", "mytasks",
            "--use_cache", "c/cache"]
    env = {"SAVI_DATA_ROOT": str(tmp_path / "data")}
    first = flag_value(_content_keyed_cache(args, env), "--use_cache")
    assert first.startswith("c/cache.") and first == flag_value(_content_keyed_cache(args, env), "--use_cache")
    if change is not None:
        CACHE_CHANGES[change](tmp_path, args, env)
    assert (flag_value(_content_keyed_cache(args, env), "--use_cache") == first) == (change is None)
    assert _content_keyed_cache(args[:6], env) == args[:6]  # no cache asked for: unchanged


def test_a_config_file_s_use_cache_becomes_the_flag_savi_keys_by_content(place):
    """Pass 21 replay (F #60's neighbour): ``use_cache:`` inside a ``--config`` file was passed to lmms-eval as
    written, so a replaced adapter was answered from the old adapter's cache; it is read as the flag is."""
    from savi_plugin.eval.lmms_config import config_runs

    with open("cfg.yaml", "w") as fh:
        fh.write(yaml.safe_dump({**RUN, "use_cache": "c/cache"}))
    with config_runs("cfg.yaml", [], {}) as (runs, _):
        (run,) = runs
        assert command.flag_value(run.args, "--use_cache") == "c/cache" and "use_cache" not in run.rest


def _job_variables() -> list[str]:
    from savi_plugin.launch import MPI_PROCESS_VARIABLES, PROCESS_VARIABLES, RENDEZVOUS_VARIABLES

    return [*PROCESS_VARIABLES, *RENDEZVOUS_VARIABLES, *MPI_PROCESS_VARIABLES, "TORCHELASTIC_RUN_ID"]


@pytest.mark.parametrize("runs", [1, 2], ids=["one-run", "second-of-two"])
@pytest.mark.parametrize("name", _job_variables())
def test_a_config_env_that_sets_a_launcher_variable_is_refused_naming_its_key(name, runs, place, capsys):
    """Pass 23 F #19, #20: ``env: {RANK: "1", WORLD_SIZE: "2", ...}`` put back the launcher variables ``savi eval
    run`` drops; lmms-eval failed for want of ``MASTER_ADDR`` (exit 1, the warning telling to unset variables the
    shell did not hold), or, given one, waited for a rank 0 that never came. Refused before lmms-eval starts,
    naming the file, the run and the key, whatever sits beside it in ``env``."""
    run = {**RUN, "env": {"MY_SETTING": "x", name: "1"}}
    err = _refused(capsys, run if runs == 1 else [RUN, run])
    where = "env" if runs == 1 else "[1].env"
    assert err.startswith(f"error: cfg.yaml: {where}.{name}: {name} places a process in a distributed job"), err
    assert "remove it from env" in err and "warning" not in err


def test_a_config_env_without_launcher_variables_still_reaches_the_checks(place, capsys):
    """The refusal is by name: another variable in ``env`` is applied as before (here: it sets the data root)."""
    err = _refused(capsys, {**RUN, "tasks": "no_such_task_zz", "env": {"LMMS_EVAL_NOTE": "1", "RANKING": "2"}})
    assert "unknown lmms-eval task 'no_such_task_zz'" in err, err


@pytest.mark.parametrize("same", [True, False], ids=["same-root", "two-roots"])
def test_a_config_env_data_root_other_than_data_root_flag_is_refused(same, place, capsys):
    """Pass 26 N #41: ``savi eval run --data-root fx -- --config cfg.yaml`` with ``env: {SAVI_DATA_ROOT: m4}`` read
    m4, the file's env silently winning over the flag. Two data roots that differ: one line naming both, exit 2,
    before lmms-eval starts; the same folder named twice (here through a symlink) is one root and goes on to the
    other checks (an unknown task here)."""
    (place / "other").mkdir()
    (place / "link").symlink_to(place / "data")
    run = {**RUN, "tasks": "no_such_task_zz", "env": {"SAVI_DATA_ROOT": "link" if same else "other"}}
    with open("cfg.yaml", "w") as fh:
        fh.write(yaml.safe_dump(run))
    capsys.readouterr()
    code = main(["eval", "run", "--data-root", "data", "--", "--config", "cfg.yaml"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    if same:
        assert "unknown lmms-eval task 'no_such_task_zz'" in err, err
    else:
        assert err == (f"error: cfg.yaml: env.SAVI_DATA_ROOT: other and --data-root {place / 'data'} give two "
                       f"different SAVI_DATA_ROOTs: give one (remove it from env, or the flag)"), err


HOLD = """
import sys, time
from savi_plugin.data import outputs
with outputs.OutputLock(sys.argv[1], folder=True, what="run folder"):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("how", ["flag", "config"])
@pytest.mark.parametrize("cache, fragment, code", [
    ("model/cache", "lies inside pretrained= of", 2),  # F #30: lmms-eval wrote cache.db into the model folder
    ("data/cache", "lies inside the data root", 2),
    ("notes.txt/c", "notes.txt is a file, not a folder", 2),  # F #46: NotADirectoryError after the model loaded
    ("run/cache", "/run, which another savi process is writing", 1),  # as a second job's claim
])
def test_the_response_cache_folder_meets_the_output_place_rule(cache, fragment, code, how, place, capsys):
    """Pass 23 F #30, #46: ``--use_cache PATH`` is a folder lmms-eval writes (``cache.db``, ``runs/``), and was not
    checked as ``--output_path`` is: inside the model folder it was written there, below a file it failed after
    the model loaded (exit 1). The folder lmms-eval is given (``PATH.<content key>``) meets the output layer's
    place rule: one line, nothing written, before lmms-eval starts."""
    import subprocess
    import sys

    (place / "notes.txt").write_text("hi\n")
    with open("cfg.yaml", "w") as fh:
        fh.write(yaml.safe_dump({**RUN, "use_cache": cache}))
    argv = ["--config", "cfg.yaml"] if how == "config" else [
        *[f"--{k}={v}" for k, v in RUN.items()], "--use_cache", cache]
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(place / "run")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert main(["eval", "run", "--", *argv]) == code
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err.strip()
    name = "--use_cache" if how == "flag" else "use_cache of cfg.yaml"
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {cache}.") and fragment in err, err
    assert name in err, err
    assert list((place / "model").iterdir()) == [] and not (place / "out").exists()
    assert not any(p.name.startswith("cache") for p in (place / "data").iterdir())


@pytest.mark.parametrize("value, said", [
    ("no_such_plugin_mod", "'no_such_plugin_mod': ModuleNotFoundError"),
    (",savi_plugin", "holds an empty module name"),
    ("not a module", "'not a module' is no Python module name"),
    ("json", "'json' has no json.models module"),
])
@pytest.mark.parametrize("runs", [1, 2])
def test_lmms_eval_plugins_set_by_the_config_env_is_named_at_its_file_and_key(value, said, runs, place, capsys,
                                                                           monkeypatch):
    """A ``LMMS_EVAL_PLUGINS`` that lmms-eval cannot start with, set by the ``--config`` file's ``env``, was refused
    as ``$LMMS_EVAL_PLUGINS: ...``, as if the user's shell had set it: the file and key that set it are named."""
    monkeypatch.delenv("LMMS_EVAL_PLUGINS", raising=False)
    config = [dict(RUN)] * (runs - 1) + [dict(RUN, env={"LMMS_EVAL_PLUGINS": value})]
    err = _refused(capsys, config if runs > 1 else config[0])
    where = "[1].env" if runs > 1 else "env"
    assert err.startswith(f"error: cfg.yaml: {where}.LMMS_EVAL_PLUGINS: ") and said in err, err

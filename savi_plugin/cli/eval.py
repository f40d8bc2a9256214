"""``savi eval tasks-path|run|fixture|suite|compare``: evaluate with lmms-eval on our tasks, and compare models.

    savi eval tasks-path                       # the folder of our task YAMLs (for --include_path)
    savi eval run --data-root /data/savi_eval -- --model savi_video \\
        --model_args pretrained=/ckpt,num_frames=32 --tasks savi_mvbench,savi_egoschema,savi_perceptiontest \\
        --output_path results/
    savi eval fixture /tmp/savi_eval_data -n 4  # a small synthetic dataset in the SAVI_DATA_ROOT layout
    savi eval suite videosavi --model /ckpt --adapter runs/a/adapter --out suite/   # base vs aligned, Δ and CI
    savi eval compare suite_a/ suite_b/        # two tables side by side, or refused as incomparable
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from savi_plugin.cli import say
from savi_plugin.config.values import AtLeast, ConfigError, EvalLimit, FrameCount, OneOf, Range, add_flag, checked
from savi_plugin.data.paths import absolute_path, check_data_root
from savi_plugin.video.decode import DEFAULT_NUM_FRAMES

BENCHMARK_CHOICES = ("all", "mvbench", "egoschema", "perceptiontest", "videohallucer", "vidhalluc")


#: most records per fixture task: each is a rendered video (MVBench has 20 subtasks), so 1000 is ~20 000 clips,
#: far more than a test of the plumbing needs; the shared ceiling (2**32 - 1) ran until killed
MAX_FIXTURE_RECORDS = 1000


@dataclass(frozen=True)
class FixtureOptions:
    """The options of ``savi eval fixture``."""

    benchmark: str = checked("all", OneOf(*BENCHMARK_CHOICES, what="benchmark"))
    n: int = checked(4, Range(1, MAX_FIXTURE_RECORDS), help="records per task (MVBench: per subtask)")
    seed: int = checked(0, AtLeast(0), help="synthetic-video seed (the dataset is a pure function of it)")


@dataclass(frozen=True)
class SuiteOptions:
    """The options of ``savi eval suite``."""

    num_frames: int = checked(DEFAULT_NUM_FRAMES, FrameCount(), help="frames per video for the default tasks")
    limit: int | float | None = checked(None, EvalLimit(),
                                        help="lmms-eval --limit: items per task (>= 1), or a fraction of them "
                                             "between 0 and 1 (testing only)")
    batch_size: int = checked(1, AtLeast(1), help="lmms-eval --batch_size")
    dtype: str = checked("float32", OneOf("float32", "bfloat16", "float16", what="dtype"))


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("eval", help="run lmms-eval on the savi_ video QA tasks")
    sub = parser.add_subparsers(dest="eval_command", metavar="ACTION", required=True)

    path = sub.add_parser("tasks-path", help="print the folder holding our lmms-eval task YAMLs")
    path.set_defaults(func=run_tasks_path)

    run = sub.add_parser(
        "run", help="run the real lmms-eval CLI with our tasks included",
        description="Runs `python -m lmms_eval <args>` with --include_path set to our task folder "
                    "(unless given), so it works even where the automatic registration is off.")
    run.add_argument("--data-root", default=None,
                     help="read benchmark data from this folder (sets SAVI_DATA_ROOT; see eval_tasks/README.md)")
    run.add_argument("lmms_eval_args", nargs="*", metavar="LMMS_EVAL_ARG",
                     help="arguments for lmms-eval, after `--` (e.g. -- --model savi_video --tasks savi_mvbench)")
    run.set_defaults(func=run_lmms_eval, forwards=("lmms-eval", ("eval", "run"), {"--data-root"}))

    fixture = sub.add_parser("fixture", help="write a small synthetic benchmark dataset in the SAVI_DATA_ROOT layout")
    fixture.add_argument("root", metavar="ROOT", help="destination data root (new, empty, or written by this command before)")
    add_flag(fixture, "--benchmark", FixtureOptions, "benchmark", choices=BENCHMARK_CHOICES)
    add_flag(fixture, "-n", FixtureOptions, "n")
    add_flag(fixture, "--seed", FixtureOptions, "seed")
    fixture.set_defaults(func=run_fixture)

    suite = sub.add_parser(
        "suite", help="a base model and its adapters on a paper's benchmarks: Δ with its paired 95%% interval",
        description="Runs lmms-eval once per model (base first; resumable) on the suite's tasks and writes OUT/table.md, "
                    "table.json, card.json and delta.png. SUITE: rrpo, videosavi, or a comma-separated task list.")
    suite.add_argument("suite", metavar="SUITE")
    suite.add_argument("--model", required=True, help="the base model (path or hub id)")
    suite.add_argument("--adapter", action="append", default=[], help="an aligned LoRA adapter (repeatable)")
    suite.add_argument("--out", required=True, help="the suite folder (a killed suite continues here)")
    suite.add_argument("--data-root", default=None, help="benchmark data folder (SAVI_DATA_ROOT)")
    suite.add_argument("--device", default=None, help="lmms-eval --device")
    suite.add_argument("--gen-kwargs", default=None, help="lmms-eval --gen_kwargs for every task")
    add_flag(suite, "--num-frames", SuiteOptions, "num_frames")
    add_flag(suite, "--limit", SuiteOptions, "limit")
    add_flag(suite, "--batch-size", SuiteOptions, "batch_size")
    add_flag(suite, "--dtype", SuiteOptions, "dtype")
    suite.set_defaults(func=run_suite)

    compare = sub.add_parser("compare", help="two suite tables side by side, refused when their eval cards differ")
    compare.add_argument("a", metavar="A", help="a suite folder or its table.json")
    compare.add_argument("b", metavar="B", help="another suite folder or table.json")
    compare.set_defaults(func=run_compare)


def run_tasks_path(args) -> int:
    from savi_plugin.eval.registration import tasks_path

    say(tasks_path())
    return 0


#: lmms-eval's ``--tasks`` values that list tasks instead of evaluating them (``cli_evaluate_single``)
LISTINGS = ("list", "list_groups", "list_tags", "list_subtasks")


def run_lmms_eval(args) -> int:
    """Run lmms-eval; an evaluation is judged by its results file, since lmms-eval exits 0 on every error: every
    requested task must have results, else one ``error:`` line and exit 1.

    Every route to an evaluation meets the same checks (:func:`_check_evaluation`) before lmms-eval starts: flags
    (``--tasks`` given, not a listing; ``--model`` given: lmms-eval's default ``hf`` is no model of lmms-eval 0.7.3;
    ``--include_path`` an existing folder), the same after lmms-eval's
    ``eval`` sub-command, and each run of lmms-eval's own ``--config`` file (:mod:`savi_plugin.eval.lmms_config`:
    its keys and the flags that override them, by lmms-eval's rule). An ``--output_path`` that is, lies inside or
    holds what the evaluation reads (``pretrained=``, ``adapter=``, the data root) is refused; one lmms-eval would
    re-parse (a ``,`` or ``=`` in it) is passed as a link without them, and so are ``savi_video``'s path values
    lmms-eval would misread (``pretrained=1e5``, :func:`~savi_plugin.eval.command.safe_model_args`); without
    ``--output_path`` the results go to a temporary folder, read, then removed. An ``--output_path`` is held (the
    output layer's lock) while lmms-eval fills it: another live job writing it (a second ``savi eval run``, a suite)
    is refused. Runs that savi cannot see
    (lmms-eval's interactive wizard and terminal UI) are refused."""
    from savi_plugin.data.outputs import start_child
    from savi_plugin.eval.command import check_full_flags, flag_value, lmms_eval_command, stopped_with_us
    from savi_plugin.eval.lmms_config import config_runs
    from savi_plugin.eval.registration import tasks_path

    env = dict(os.environ)
    check_data_root(args.data_root)
    if args.data_root:
        env["SAVI_DATA_ROOT"] = absolute_path(args.data_root)
    lmms_args = list(args.lmms_eval_args)
    unseen = _unchecked_form(lmms_args)
    if unseen:
        from savi_plugin.config.values import ConfigError

        raise ConfigError("", unseen)
    if lmms_args and lmms_args[0] == "eval":  # lmms-eval's `eval` sub-command: the flat form after it
        lmms_args = lmms_args[1:]
    sub_command = bool(lmms_args) and not lmms_args[0].startswith("-")
    if not sub_command:
        check_full_flags(lmms_args)  # `--output X` is lmms-eval's --output_path, unseen by the checks below
    config = flag_value(lmms_args, "--config")
    tasks = flag_value(lmms_args, "--tasks")
    if sub_command or not (config or (tasks and tasks not in LISTINGS)):
        command = lmms_eval_command(lmms_args, tasks_path())  # a listing or another sub-command: passed through
        say("+ " + " ".join(command), file=sys.stderr)
        with start_child(command, env=env) as proc, stopped_with_us(proc):
            return proc.wait()
    if not config:
        _run_evaluation(_check_evaluation(lmms_args, env), args.verbose)
        return 0
    given = {"SAVI_DATA_ROOT": "--data-root"} if args.data_root else {}  # the file may not name another
    with config_runs(config, lmms_args, env, given) as (plans, env):
        runs = [_check_evaluation(plan.args, env, plan.names(), plan.label, plan.phrases(), plan.rest)
                for plan in plans]  # every run checked before the first starts
        for run in runs:
            _run_evaluation(run, args.verbose)
    return 0


def _unchecked_form(lmms_args: list[str]) -> str | None:
    """Why savi cannot check the evaluation ``lmms_args`` would start, or None: lmms-eval's interactive wizard
    (``eval`` alone) and terminal UI (``--tui`` anywhere, ``lmms_eval/cli/dispatch.py``) take their settings after
    lmms-eval starts."""
    if lmms_args == ["eval"]:
        return ("lmms-eval's interactive wizard (`eval` with no argument) takes its settings after it starts, where "
                "savi cannot check them: give lmms-eval's flags or its --config file")
    if "--tui" in lmms_args:
        return ("--tui: lmms-eval's terminal UI takes its settings after it starts, where savi cannot check them: "
                "give lmms-eval's flags or its --config file")
    return None


@dataclass
class _Evaluation:
    """One checked lmms-eval evaluation: its arguments, environment, tasks and label (a --config run's place)."""

    args: list[str]
    env: dict
    tasks: list[str]
    label: str | None = None
    #: how a refusal names its --output_path (``output_path of cfg.yaml`` for a --config run's key)
    output_name: str = "--output_path"


def _check_evaluation(lmms_args: list[str], env: dict, names: dict[str, str] | None = None,
                      label: str | None = None, phrases: dict[str, str] | None = None,
                      rest: dict | None = None) -> _Evaluation:
    """Every check ``savi eval run`` makes on one evaluation's lmms-eval arguments, before lmms-eval starts.
    ``names``/``phrases``: how a flag's value was given when not as the flag, in an error's location
    (``cfg.yaml: tasks``) and in a sentence (``output_path of cfg.yaml``); ``rest``: a ``--config`` run's keys
    lmms-eval reads itself.

    Raises:
        ConfigError, OutputIsInputError, EvalDataUnavailableError: one line (exit status 2).
    """
    from savi_plugin.config.values import ConfigError
    from savi_plugin.data.outputs import check_no_enclosing_job, check_place
    from savi_plugin.eval.command import (
        check_devices,
        check_limit,
        check_model_args,
        flag_value,
        read_paths,
    )
    from savi_plugin.eval.hub_check import eval_data_env
    from savi_plugin.eval.task_names import (
        check_include_path,
        check_model_name,
        check_no_shadowed_task,
        check_plugins,
        check_task_names,
        include_folders,
    )

    names, phrases = names or {}, phrases or {}
    model = flag_value(lmms_args, "--model")
    if model is None:  # lmms-eval's default, `hf`, is no model of lmms-eval 0.7.3: it fails once it has started
        key = "" if label else "--"  # a --config run's keys, or the flags
        raise ConfigError(f"{key}model", f"not given: lmms-eval would use its default model 'hf', which lmms-eval "
                                         f"0.7.3 does not have; give {key}model savi_video (with {key}model_args "
                                         f"pretrained=MODEL_FOLDER) or another lmms-eval model", label)
    given = flag_value(lmms_args, "--tasks") or ""
    requested = [t.strip() for t in given.split(",") if t.strip()]
    if not requested:  # lmms-eval: "Need to specify task to evaluate." and exit status 0
        raise ConfigError("", "no task to evaluate: give tasks (--tasks, or tasks: in the --config file)",
                          label)
    if len(requested) != len(given.split(",")):  # lmms-eval looks for the empty name, after loading the model
        raise ConfigError(names.get("--tasks", "--tasks"), f"{given!r} holds an empty task name (a comma at its "
                                                           f"start or end, or two in a row): remove it", label)
    spaced = next((t for t in given.split(",") if t != t.strip()), None)
    if spaced is not None:  # lmms-eval looks the name up as written, spaces included
        raise ConfigError(names.get("--tasks", "--tasks"), f"{spaced!r}: a task name with white space around it "
                                                           f"(lmms-eval would not find it): write {spaced.strip()!r}",
                          label)
    check_plugins(env)  # before the task names its plugins' folders would add
    check_model_name(model, "model" if label else "--model", env, label)  # a misspelt model: now, not after ~24 s
    check_include_path(flag_value(lmms_args, "--include_path"), names.get("--include_path", "--include_path"))
    # a misspelt task: one line now, not after lmms-eval loaded the model; the user's own task folders count
    check_task_names(requested, names.get("--tasks", "--tasks"),
                     include=include_folders(flag_value(lmms_args, "--include_path"), env))
    check_no_shadowed_task(flag_value(lmms_args, "--include_path"), env,  # another task under a shipped name
                           names.get("--include_path", "--include_path"))
    check_devices(lmms_args, names)  # meta, xla, a GPU that is not here: one line now, not per document
    if flag_value(lmms_args, "--limit") is not None:  # 1.5: lmms-eval would evaluate int(1.5) = 1 item, no word
        check_limit(flag_value(lmms_args, "--limit"), names.get("--limit", "--limit"))
    model_args_name = names.get("--model_args", "--model_args")
    check_model_args(model, flag_value(lmms_args, "--model_args"), model_args_name)  # a path lmms-eval
    # cannot be given (pretrained=/a,b; a typed name that is no folder): one line now, not after it loaded
    gen_kwargs = flag_value(lmms_args, "--gen_kwargs")
    if model == "savi_video" and gen_kwargs:  # what savi_video would refuse at its first request: now
        check_gen_kwargs_text(gen_kwargs, names.get("--gen_kwargs", "--gen_kwargs"))
    env = eval_data_env(requested, env)  # data that cannot be had: one line, before lmms-eval loads the model
    lmms_args = _content_keyed_cache(lmms_args, env)
    inputs = read_paths(flag_value(lmms_args, "--model_args"), env.get("SAVI_DATA_ROOT"),
                        phrases.get("--model_args", "--model_args"))
    output = flag_value(lmms_args, "--output_path")
    # the folders lmms-eval writes: the output layer's place rule, never an input, inside one or a checkpoint,
    # below a file (exit 2) or inside a folder another savi job is writing
    for flag, place in (("--output_path", output), ("--use_cache", flag_value(lmms_args, "--use_cache"))):
        if place:
            check_place(place, inputs, output_name=phrases.get(flag, flag), folder=True, claims_none=True)
            check_no_enclosing_job(place, phrases.get(flag, flag))
    if output:
        _refuse_links_inside(output, phrases.get("--output_path", "--output_path"))
    kept, as_flag = _kept_products(lmms_args, rest or {})
    if kept and not output:  # savi's own results folder is a temporary one: what was asked for would be deleted
        raise ConfigError(f"--{kept}" if as_flag else kept, f"lmms-eval writes what {kept} asks for into "
                                                              f"--output_path, and none was given: give "
                                                              f"--output_path (savi's results folder for a run "
                                                              f"without one is temporary)",
                          None if as_flag else label)
    return _Evaluation(lmms_args, env, requested, label, phrases.get("--output_path", "--output_path"))


def _content_keyed_cache(lmms_args: list[str], env: dict) -> list[str]:
    """``lmms_args`` with lmms-eval's ``--use_cache`` path keyed by what decides the answers that lmms-eval's own
    key cannot see. lmms-eval keys each response by the task's configuration, the request's generation settings
    and prompt text, and the model's arguments as text, so an adapter replaced at the same path, or the videos of
    another data root (``env``'s ``SAVI_DATA_ROOT``), were answered from the old cache. The folder's name adds the
    content of the model and adapter of ``--model_args`` (:func:`~savi_plugin.data.identity.model_identity`), of
    the data root and of the task folders the run reads (:func:`~savi_plugin.data.identity.input_identity`: our
    tasks, ``--include_path``, ``$LMMS_EVAL_PLUGINS``), the decode caps
    (:func:`~savi_plugin.environment.item_limits`: which videos are refused) and the ``--gen_kwargs`` given.
    Said once (log line); unchanged without ``--use_cache``."""
    import hashlib
    import json
    import logging

    from savi_plugin.data.identity import input_identity, model_identity
    from savi_plugin.environment import item_limits
    from savi_plugin.eval.command import args_items, flag_value, read_paths, with_flag
    from savi_plugin.eval.registration import tasks_path
    from savi_plugin.eval.task_names import include_folders

    cache = flag_value(lmms_args, "--use_cache")
    if not cache:
        return lmms_args
    read = read_paths(flag_value(lmms_args, "--model_args"), None)  # pretrained= and adapter= found here
    key = {name: model_identity(path) if os.path.isdir(path) else None for name, path in sorted(read.items())}
    root = env.get("SAVI_DATA_ROOT")
    key["data root"] = input_identity(root) if root else None
    folders = [tasks_path(), *include_folders(flag_value(lmms_args, "--include_path"), env)]
    key["tasks"] = [input_identity(folder) for folder in folders]
    key["limits"] = item_limits(env)
    key["gen_kwargs"] = sorted((k, v) for _, k, v in args_items(flag_value(lmms_args, "--gen_kwargs") or "",
                                                                "--gen_kwargs"))
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    keyed = f"{cache}.{digest}"
    logging.getLogger(__name__).info("--use_cache: %s (the cache is kept per content of the model, adapter, data "
                                     "root and task files read, decode caps and --gen_kwargs)", keyed)
    return with_flag(lmms_args, "--use_cache", keyed)


def _kept_products(lmms_args: list[str], rest: dict) -> tuple[str | None, bool]:
    """``(log_samples or predict_only, given as a flag)`` when the run asks lmms-eval for a product beyond its
    scores (as a flag, or among a ``--config`` run's other keys, ``rest``), else ``(None, False)``."""
    for key in ("log_samples", "predict_only"):
        if any(arg == f"--{key}" or arg.startswith(f"--{key}=") for arg in lmms_args):
            return key, True
    return next((key for key in ("log_samples", "predict_only") if rest.get(key)), None), False


def _refuse_links_inside(output: str, name: str) -> None:
    """Refuse an existing output folder holding a symbolic link: lmms-eval writes into ``<output>/<model name>/``,
    and a link there (``out/m -> ../m``, the model folder) would take its results into whatever it names -- an
    input, a user's folder -- while the place checks saw ``out`` only.

    Raises:
        ConfigError: naming the link and where it points.
    """
    folder = Path(output)
    if folder.is_symlink() or not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink():
            raise ConfigError(name, f"{entry} is a symbolic link (to {os.readlink(entry)}): lmms-eval writes into "
                                    f"{folder}/<model name>/ and would write through it; remove the link, or give "
                                    f"another {name}")


def _run_evaluation(run: _Evaluation, verbose: bool) -> None:
    """Run one checked evaluation and judge it by its results file (:func:`~savi_plugin.eval.command.run_judged`);
    its paths lmms-eval would misread go as temporary links.

    Raises:
        EvalRunError: one line, led by the run's label when it came from a --config file.
    """
    import tempfile

    from savi_plugin.data.outputs import made_folder
    from savi_plugin.eval.command import (
        EvalRunError,
        flag_value,
        lmms_eval_command,
        name_linked_paths,
        run_judged,
        safe_model_args,
        safe_paths,
        with_flag,
    )
    from savi_plugin.eval.registration import tasks_path

    lmms_args = run.args
    output = flag_value(lmms_args, "--output_path")
    model_args = flag_value(lmms_args, "--model_args")
    try:
        with safe_model_args(flag_value(lmms_args, "--model"), model_args) as safe_args, \
                tempfile.TemporaryDirectory(prefix="savi-eval-results-") as scratch:
            if model_args is not None:  # pretrained=1e5: a link lmms-eval does not read as the float 100000.0
                lmms_args = with_flag(lmms_args, "--model_args", safe_args)
            given, output = output, output or scratch
            # one job fills a folder: another live job holding it (a savi eval run, a suite) is refused (exit 1);
            # failed, a folder it made is removed
            with made_folder(output, lock=run.output_name if given else None), \
                    safe_paths(output) as (safe_output,):
                command = lmms_eval_command(with_flag(lmms_args, "--output_path", str(safe_output)), tasks_path())
                say("+ " + " ".join(command), file=sys.stderr)
                run_judged(command, env=run.env, output_path=output, tasks=run.tasks, verbose=verbose)
                name_linked_paths(output)  # the kept results name the model, not a link removed below
    except EvalRunError as exc:
        if run.label is None:
            raise
        raise type(exc)(f"{run.label}: {exc.problem}", exc.log_path) from None


def run_fixture(args) -> int:
    """Write the synthetic dataset into a folder it may write into (:mod:`savi_plugin.eval.fixture_folder`)."""
    from savi_plugin.eval.fixture_folder import FixtureFolder
    from savi_plugin.eval.fixtures import build_fixture

    names = BENCHMARK_CHOICES[1:] if args.benchmark == "all" else (args.benchmark,)
    root = args.root if os.path.basename(os.path.normpath(args.root)) not in ("", ".", "..") else \
        os.path.abspath(args.root)  # `.`, `..`: by their names (temporaries are made beside the folder)
    with FixtureFolder(root).claim() as folder:  # FixtureFolderError: one line, exit 1
        for name in names:
            folder.begin(name)
            fixture = build_fixture(folder.root, name, args.n, seed=args.seed)
            folder.done(name, fixture.files)
            say(f"{name}: {sum(len(r) for r in fixture.records.values())} record(s) in {len(fixture.records)} "
                f"task(s)")
    say(f"use it with: SAVI_DATA_ROOT={absolute_path(args.root)} lmms-eval --tasks ...")
    return 0


def check_gen_kwargs_text(text: str, flag: str = "--gen-kwargs") -> None:
    """An lmms-eval ``--gen_kwargs`` text (``savi eval suite --gen-kwargs``, ``savi eval run``'s ``--gen_kwargs``
    or ``gen_kwargs:`` of its ``--config`` file for ``savi_video``), parsed as lmms-eval parses it and checked by
    the rules ``savi_video`` applies to every request (:func:`savi_plugin.eval.settings.check_gen_kwargs`: only
    the settings it applies, each in a finite range), and sampling settings it would not apply as written
    (:func:`savi_plugin.eval.settings.unapplied_sampling`: ``temperature=5`` without ``do_sample=true``).

    Raises:
        ConfigError: one line naming ``flag``, the setting and its value (exit status 2); a setting given twice.
    """
    from lmms_eval.utils import simple_parse_args_string

    from savi_plugin.config.values import ConfigError
    from savi_plugin.eval.command import args_items
    from savi_plugin.eval.settings import (
        SettingError,
        check_gen_kwargs,
        unapplied_sampling,
    )
    from savi_plugin.untrusted import underflow_problem

    seen: dict[str, str] = {}
    for _, key, value in args_items(text, flag):
        if key in seen:  # lmms-eval's dict keeps the last value silently
            raise ConfigError("", f"{flag} {text!r}: {key}= is given twice ({key}={seen[key]} and {key}={value}); "
                                  f"give each setting once (lmms-eval would use the last)")
        seen[key] = value
        try:  # lmms-eval types it: 1e-400 arrives as 0.0, and what was written is lost
            problem = underflow_problem(value, float(value))
        except ValueError:
            problem = None
        if problem:
            raise ConfigError("", f"{flag} {text!r}: {key}: {problem}")
    try:
        parsed = simple_parse_args_string(text)
    except (ValueError, SyntaxError) as exc:
        raise ConfigError("", f"{flag} {text!r}: {exc}") from None
    try:
        settings = check_gen_kwargs(parsed)
    except SettingError as exc:
        raise ConfigError("", f"{flag} {text!r}: {exc.message.removeprefix('savi_video: ')}") from None
    problem = unapplied_sampling(parsed, settings)  # recorded as used, not applied: refused as an unknown key is
    if problem:
        raise ConfigError("", f"{flag} {text!r}: {problem}")


def run_suite(args) -> int:
    from savi_plugin.eval.suite import (
        SuiteError,
        SuitePlan,
        adapter_labels,
        suite_tasks,
    )
    from savi_plugin.eval.suite import run_suite as run
    from savi_plugin.eval.task_names import check_task_names

    if args.device is not None:
        from savi_plugin.device import resolve_device

        resolve_device(args.device, "--device")  # ConfigError (exit 2) before any model is evaluated
    if args.gen_kwargs:
        check_gen_kwargs_text(args.gen_kwargs)  # ConfigError (exit 2) before the suite folder is claimed
    try:
        tasks, missing = suite_tasks(args.suite)
        check_data_root(args.data_root)
        check_task_names(tasks, "SUITE")  # a misspelt task: one line now, not after a model was evaluated
        if not args.adapter:  # a usage error: exit 2, as argparse's own
            say("error: savi eval suite: at least one --adapter is needed, to compare with the base model",
                file=sys.stderr)
            return 2
        for flag, value in [("--model", args.model)] + [("--adapter", a) for a in args.adapter]:
            if not str(value).strip():  # what --adapter "$VAR" gives when the variable is unset
                raise ConfigError("", f"savi eval suite: {flag} is empty (what {flag} \"$VAR\" gives when the "
                                      f"variable is unset): name the {'adapter folder' if flag == '--adapter' else 'model'}")
        if missing:
            say(f"suite {args.suite}: not offered by savi-plugin yet, left out: {', '.join(missing)}", file=sys.stderr)
        plan = SuitePlan(model=args.model, adapters=adapter_labels(args.adapter), tasks=tasks,
                         num_frames=args.num_frames, limit=args.limit, batch_size=args.batch_size, dtype=args.dtype,
                         device=args.device, gen_kwargs=args.gen_kwargs,
                         data_root=absolute_path(args.data_root) if args.data_root else None)
        table = run(plan, args.out, missing=missing)
    except SuiteError as exc:
        say(f"error: savi eval suite: {exc}", file=sys.stderr)
        return 1
    from savi_plugin.eval.suite import format_table

    print(format_table(table["rows"], table["missing"]), end="")
    plotted = ", delta.png" if any(r["n"] for r in table["rows"]) else ""  # no Δ to draw: no usable item
    say(f"wrote {os.path.join(args.out, 'table.md')}, table.json, card.json{plotted}")
    return 0


def run_compare(args) -> int:
    from savi_plugin.eval.card import differences
    from savi_plugin.eval.suite import SuiteError, read_table

    try:
        a, b = read_table(args.a), read_table(args.b)
    except SuiteError as exc:
        say(f"error: savi eval compare: {exc}", file=sys.stderr)
        return 1
    diff = differences(a["card"], b["card"])
    if diff:
        say(f"savi eval compare: the tables are not comparable ({len(diff)} eval-card field(s) differ):",
            file=sys.stderr)
        for line in diff:
            say(f"  {line}", file=sys.stderr)
        return 1
    from savi_plugin.eval.compare import format_delta
    from savi_plugin.eval.suite import markdown_row, unusable_rows

    # read_table refused a (task, adapter) given twice: each key is one row
    rows_b = {(r["task"], r["adapter"]): r for r in b["rows"]}
    keys_a = {(r["task"], r["adapter"]) for r in a["rows"]}
    say(markdown_row(["task", "adapter", "A", "B"]), "|---|---|---|---|")
    for r in a["rows"]:
        o = rows_b.get((r["task"], r["adapter"]))
        say(markdown_row([r["task"], r["adapter"], format_delta(r), format_delta(o) if o else "-"]))
    for key, o in rows_b.items():
        if key not in keys_a:
            say(markdown_row([key[0], key[1], "-", format_delta(o)]))
    # a row over items none of which had a usable video is no result: flagged, and the exit status says so
    flagged = [f"{name} {', '.join(rows)}" for name, rows in (("A", unusable_rows(a)), ("B", unusable_rows(b)))
               if rows]
    if flagged:
        say(f"error: savi eval compare: no item had a usable video in {'; '.join(flagged)}: no Δ to compare "
            f"there (see each suite's lmms_eval.log)", file=sys.stderr)
        return 1
    return 0

"""lmms-eval's own ``--config`` file, read as lmms-eval reads it and turned into the lmms-eval argument lists that
``savi eval run`` checks as it checks flags (issue 21: a guarantee lives in the one layer every route goes
through, so a value given in the file meets the same checks as the same value given as a flag).

lmms-eval 0.7.3 (``cli_evaluate`` in ``lmms_eval/__main__.py``) reads ``--config`` with ``yaml.safe_load``: a mapping
is one run, a list holds one run per item, all run in order in one process. Before the first run, each item's
``env`` mapping (a truthy non-mapping is refused) is set in ``os.environ``, each value through ``str`` and
``os.path.expandvars``, item after item. A key that is not the ``dest`` of one of its flags is refused. Each run
starts from the flags' defaults, takes the item's values as they are (no type conversion: ``tasks`` is split with
``str.split``, ``model_args``/``gen_kwargs`` go through ``simple_parse_args_string``, so each must be text), then
every flag given on the command line whose value differs from the flag's default.

:func:`config_runs` mirrors that: the file is read through the untrusted-input boundary
(:func:`savi_plugin.data.files.read_document_text`'s byte cap, :func:`savi_plugin.untrusted.load_yaml`'s limits);
the keys savi checks (:data:`CHECKED_KEYS`) take their value by lmms-eval's rule and become flags of the run's
argument list, named in messages by where they came from (``cfg.yaml: [1].tasks``); the item's other keys go to
lmms-eval in a one-run file of their own; ``env`` is applied to the environment savi checks with and passes to
lmms-eval. A form savi cannot check (a value of a checked key that is not text or a number, an ``env`` that is no
mapping of names) is refused with one line, as lmms-eval would fail on it, and so is an ``env`` that sets a
launcher's variable (``RANK``, ``MASTER_ADDR`` ...): lmms-eval, started as one process, would wait for its job.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from savi_plugin.errors import ConfigError

#: the keys of an lmms-eval run that ``savi eval run`` checks, with lmms-eval 0.7.3's defaults of their flags
#: (``parse_eval_args``): a flag given on the command line with its default value does not override the file
CHECKED_KEYS: dict[str, object] = {"model": "hf", "model_args": "", "tasks": None, "output_path": None,
                                   "limit": None, "device": None, "include_path": None, "gen_kwargs": "",
                                   "use_cache": None}

#: the keys lmms-eval 0.7.3 takes in a ``--config`` run: the ``dest`` of each of its flags (``parse_eval_args``;
#: ``help`` included, as lmms-eval's own check lets it pass); ``tests/eval/test_lmms_config.py`` reads them from its
#: source. Another key is refused before any run starts (lmms-eval refuses it too, after the runs before it)
LMMS_EVAL_KEYS = frozenset({
    "agentic_trace_mode", "alpha", "apply_chat_template", "baseline", "batch_size", "cache_requests",
    "check_integrity", "config", "correlation", "device", "effect_size", "fewshot_as_multiturn", "force_simple",
    "gen_kwargs", "help", "hf_hub_log_args", "include_path", "launcher_args", "limit", "log_samples",
    "log_samples_suffix", "max_batch_size", "max_tokens", "model", "model_args", "num_fewshot", "offset",
    "output_path", "power", "power_analysis", "predict_only", "process_docs_parallel", "process_with_media",
    "reasoning_tags", "repeats", "seed", "show_config", "std_a", "std_b", "swanlab_args", "swanlab_log_samples",
    "system_instruction", "tasks", "timezone", "trust_remote_code", "tui", "use_cache", "verbosity", "wandb_args",
    "wandb_log_samples", "write_out"})

#: the subset of :data:`CHECKED_KEYS` lmms-eval reads as text (``str.split``, ``simple_parse_args_string``, a path)
_TEXT_KEYS = ("model", "model_args", "tasks", "output_path", "device", "include_path", "gen_kwargs", "use_cache")

#: ``$name`` and ``${name}``, as ``posixpath.expandvars`` finds them
_VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})", re.ASCII)


@dataclass
class ConfigRun:
    """One run of a ``--config`` file: lmms-eval's argument list for it alone (the checked keys as flags, its other
    keys in a one-run ``--config`` file), where each checked flag's value was given (``keys``: flag -> (file, key
    path); a flag absent there came from the command line) and the run's place in the file (``label``)."""

    args: list[str]
    label: str
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: the run's keys lmms-eval reads itself (in its one-run ``--config`` file), as the file gave them
    rest: dict = field(default_factory=dict)

    def names(self) -> dict[str, str]:
        """flag -> its name in a one-line error's location (``cfg.yaml: [1].tasks``)."""
        return {flag: f"{file}: {key}" for flag, (file, key) in self.keys.items()}

    def phrases(self) -> dict[str, str]:
        """flag -> its name inside a sentence (``[1].output_path of cfg.yaml``)."""
        return {flag: f"{key} of {file}" for flag, (file, key) in self.keys.items()}


def expand_variables(text: str, env: dict[str, str]) -> str:
    """``os.path.expandvars(text)`` with ``env`` in place of ``os.environ`` (lmms-eval expands a config's ``env``
    values in its own process, whose environment is the one savi passes): ``$name``/``${name}`` of a set variable
    is replaced, any other left as written."""
    def value(match: re.Match) -> str:
        name = match.group(1)
        name = name[1:-1] if name.startswith("{") else name
        return env[name] if name in env else match.group(0)

    return _VARIABLE.sub(value, text) if "$" in text else text


def read_config(path: str) -> list[dict]:
    """The runs of lmms-eval's ``--config`` file ``path``: a mapping is one run, a list one per item.

    Raises:
        ConfigError: the file cannot be read, is above a cap of the untrusted-input boundary, holds no run, or a
            run that is not a mapping of names (exit status 2).
    """
    from savi_plugin.data.files import file_problem, read_document_text
    from savi_plugin.untrusted import load_yaml

    problem = file_problem(path, "YAML file")
    if problem:
        raise ConfigError("--config", f"{path}: {problem}")
    try:
        text = read_document_text(path)  # a ConfigError at the file above $SAVI_MAX_DOCUMENT_BYTES
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("--config", f"{path}: cannot read: {exc}") from None
    data = load_yaml(text, path)
    runs = data if isinstance(data, list) else [data]
    if not runs or data is None:
        raise ConfigError("", "lmms-eval's --config file holds no run (a mapping of lmms-eval's arguments, or a "
                              "list of them)", path)
    for n, run in enumerate(runs):
        where = f"[{n}]" if len(runs) > 1 else ""  # as every message about a run names it
        if not isinstance(run, dict):
            raise ConfigError(where, f"a run must be a mapping of lmms-eval's arguments, got {type(run).__name__}",
                              path)
        bad = next((k for k in run if not isinstance(k, str)), None)
        if bad is not None:
            raise ConfigError(where, f"key {bad!r} is no argument name (lmms-eval's keys are its flags' names)", path)
        unknown = next((k for k in run if k not in LMMS_EVAL_KEYS and k != "env"), None)
        if unknown is not None:
            import difflib

            from savi_plugin.untrusted import read_as_known, shown_name

            close = difflib.get_close_matches(unknown, sorted(LMMS_EVAL_KEYS), n=1)
            like = read_as_known(unknown, sorted(LMMS_EVAL_KEYS))
            hint = f"; {like}" if like else f"; did you mean {close[0]}?" if close else ""
            named = shown_name(unknown)
            raise ConfigError(f"{where}.{named}" if where else named, f"unknown key: lmms-eval 0.7.3 takes the names "
                              f"of its flags (--{named} is none){hint}", path)
        for key, value in run.items():
            problem = _value_problem(key, value)
            if problem:
                raise ConfigError(f"{where}.{key}" if where else key, problem, path)
    return runs


#: keys whose value lmms-eval 0.7.3 uses as a whole number with no conversion of its own from a config file
#: (``seed``: an int, or its flag's text ``0,1234,1234,1234``; a float fails inside lmms-eval as "'float' object is
#: not subscriptable", naming no key)
_WHOLE_NUMBER_KEYS = ("seed", "num_fewshot", "max_batch_size", "repeats", "offset")


def _value_problem(key: str, value: object) -> str | None:
    """What lmms-eval would fail on in a run's value, said at its key: a number that is not finite or beyond
    savi's magnitude bound anywhere in it (:func:`savi_plugin.config.values.number_problem`), or a float where a
    whole number (or its text) goes."""
    from savi_plugin.config.values import number_problem

    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            problem = number_problem(item)
            if problem:
                return problem
    if key in _WHOLE_NUMBER_KEYS and isinstance(value, float):
        return f"expected a whole number (or lmms-eval's text for --{key}), got {value!r}"
    return None


#: the variable naming lmms-eval's plugin packages (:func:`savi_plugin.eval.task_names.plugins_problem`)
PLUGINS_VARIABLE = "LMMS_EVAL_PLUGINS"


def config_env(path: str, runs: list[dict], env: dict[str, str],
               flags: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` with every run's ``env`` mapping applied in order, as lmms-eval applies them before its first run.
    ``flags``: the variables savi's own flags set (``SAVI_DATA_ROOT`` -> ``--data-root``); the file may repeat one,
    never give it another value (lmms-eval's rule would let the file silently win over the flag).

    Raises:
        ConfigError: an ``env`` that lmms-eval refuses (not a mapping) or that cannot name variables, and one that
            sets a launcher's variable (:func:`savi_plugin.launch.job_variable`: ``RANK``, ``MASTER_ADDR`` ...),
            which ``savi eval run`` drops from its own environment before it starts lmms-eval as one process; and
            a ``LMMS_EVAL_PLUGINS`` lmms-eval cannot start with (``file: env.LMMS_EVAL_PLUGINS: ...``); a variable
            of ``flags`` set to another value (two data roots).
    """
    from savi_plugin.data.paths import absolute_path
    from savi_plugin.launch import job_variable

    flags, given = flags or {}, dict(env)
    env = dict(env)
    plugins_where = None  # the key that last set $LMMS_EVAL_PLUGINS, checked once every env is applied
    for n, run in enumerate(runs):
        values = run.get("env")
        if not values:  # lmms-eval skips a missing or empty env
            continue
        where = f"[{n}].env" if len(runs) > 1 else "env"
        if not isinstance(values, dict):
            raise ConfigError(where, f"must be a mapping of environment variables, got {type(values).__name__}",
                              path)
        for name, value in values.items():
            if not isinstance(name, str) or not name or "=" in name or "\0" in name:
                raise ConfigError(where, f"{name!r} is no environment variable name", path)
            if job_variable(name):  # lmms-eval would wait for, or fail to reach, the job they describe
                raise ConfigError(f"{where}.{name}", f"{name} places a process in a distributed job, and only a "
                                                     f"launcher may set it: savi eval run starts lmms-eval as one "
                                                     f"process (lmms-eval would wait for the other ranks); remove "
                                                     f"it from env", path)
            if isinstance(value, (dict, list)):
                raise ConfigError(f"{where}.{name}", f"must be one value, got {type(value).__name__}", path)
            env[name] = expand_variables(str(value), env)
            if name in flags and os.path.realpath(absolute_path(env[name])) != os.path.realpath(given[name]):
                raise ConfigError(f"{where}.{name}", f"{env[name]} and {flags[name]} {given[name]} give two "
                                                     f"different {name}s: give one (remove it from env, or the "
                                                     f"flag)", path)
            if name == PLUGINS_VARIABLE:
                plugins_where = f"{where}.{name}"
    if plugins_where is not None:  # said at the file and key that set it, not as the caller's own variable
        from savi_plugin.eval.task_names import plugins_problem

        problem = plugins_problem(env)
        if problem:
            raise ConfigError(plugins_where, problem, path)
    return env


def _checked_value(path: str, where: str, key: str, value: object) -> str:
    """A checked key's value from the file, as the text of its flag.

    Raises:
        ConfigError: a value lmms-eval could not use as that flag's (not text; a limit that is no number).
    """
    if key in _TEXT_KEYS and not isinstance(value, str):
        raise ConfigError(f"{where}{key}", f"lmms-eval reads it as text (as its --{key} flag), got "
                                           f"{type(value).__name__} {value!r}", path)
    if key == "limit" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{where}{key}", f"must be a number, got {type(value).__name__} {value!r}", path)
    return str(value)


def _without_flags(args: list[str], flags: set[str]) -> list[str]:
    """``args`` without each ``--flag value`` / ``--flag=value`` of ``flags``."""
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in flags:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


@contextmanager
def config_runs(path: str, cli_args: list[str], env: dict[str, str],
                flags: dict[str, str] | None = None) -> Iterator[tuple[list[ConfigRun], dict]]:
    """The runs of ``--config path`` as lmms-eval would run them with the command line ``cli_args``, each an
    argument list of its own (valid for the ``with`` block, which holds their one-run files), and the environment
    with the file's ``env`` applied (``flags``: as :func:`config_env`).

    Raises:
        ConfigError: as :func:`read_config`, :func:`config_env`, and a checked key whose value is not text (or, for
            ``limit``, a number), one line naming the file, run and key (exit status 2).
    """
    import yaml

    from savi_plugin.data.outputs import write_text
    from savi_plugin.eval.command import flag_value

    runs = read_config(path)
    env = config_env(path, runs, env, flags)
    flags = {f"--{key}" for key in CHECKED_KEYS} | {"--config"}
    rest_of_command = _without_flags(cli_args, flags)
    plans = []
    for n, run in enumerate(runs):
        where = f"[{n}]." if len(runs) > 1 else ""
        label = f"{path} [{n}]" if len(runs) > 1 else path
        values, names = {}, {}
        for key, default in CHECKED_KEYS.items():
            flag = f"--{key}"
            given = flag_value(cli_args, flag)
            if given is not None and given != default:  # lmms-eval: a flag differing from its default wins
                values[flag] = given
            elif run.get(key) is not None:
                values[flag] = _checked_value(path, where, key, run[key])
                names[flag] = (path, f"{where}{key}")
            elif key == "model" and key in run:  # lmms-eval would look up the model None
                raise ConfigError(f"{where}model", "must be a model name, got None", path)
        rest = {k: v for k, v in run.items() if k not in CHECKED_KEYS and k != "env"}
        plans.append((label, values, names, rest))
    with tempfile.TemporaryDirectory(prefix="savi-lmms-config-") as folder:
        result = []
        for n, (label, values, names, rest) in enumerate(plans):
            args = list(rest_of_command)
            if rest:  # the run's other keys, read by lmms-eval itself (CLI flags still override them)
                one = write_text(Path(folder) / f"run{n}.yaml", yaml.safe_dump(rest, sort_keys=False))
                args += ["--config", str(one)]
            for flag, value in values.items():
                args += [flag, value]
            result.append(ConfigRun(args, label, names, rest))
        yield result, env

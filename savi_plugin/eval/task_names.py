"""Which lmms-eval task names exist, without loading lmms-eval's task registry or a model.

lmms-eval's ``TaskManager`` indexes every task YAML by importing and parsing it (~16 s of CPU for its ~2000
files). The names a run may ask for are the scalar ``task:``, ``group:`` and ``tag:`` values of those YAMLs
(lmms-eval's own rule: a YAML whose ``task`` is a string defines that task; a ``group`` names a group; a ``tag``
groups tasks), so they are read here from the files' text, in ~0.4 s: our task folder
(:func:`savi_plugin.eval.registration.tasks_path`), lmms-eval's built-in ``lmms_eval/tasks`` folder, and the folders
a run adds (:func:`include_folders`: ``--include_path`` and ``$LMMS_EVAL_PLUGINS``, as lmms-eval's ``TaskManager``
adds them).
Checked against ``TaskManager().all_tasks`` of lmms-eval 0.7.3: every savi task, group and tag is found, and
all but a handful of built-ins (tasks whose names only Python code generates) are.

:func:`check_task_names` refuses a name found in neither (a configuration error naming the key and the closest
known names) -- ``savi align --dry-run`` and ``savi align`` call it before anything runs.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

_KEY = re.compile(r"""^["']?(task|group|tag)["']?\s*:\s*(.*?)\s*(?:#.*)?$""")
_ITEM = re.compile(r"^\s+-\s*(.+?)\s*(?:#.*)?$")


def _clean(value: str) -> str:
    return value.strip().strip("'\"").strip()


def _declarations(path: Path) -> list[tuple[str, str]]:
    """The ``(task|group|tag, name)`` pairs the YAML file ``path`` declares, read from its text (none when it
    cannot be read)."""
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError:
        return []
    found: list[tuple[str, str]] = []
    for i, line in enumerate(lines):
        match = _KEY.match(line)
        if not match:
            continue
        key, value = match.groups()
        if value.startswith("["):  # tag: [a, b]; task: [list] names the members of a group, not new tasks
            if key == "tag":
                found += [(key, v) for v in map(_clean, value.strip("[]").split(",")) if v]
        elif value and not value.startswith(("!", "{", "|", ">")):
            found.append((key, _clean(value)))
        elif key == "tag":
            for item in lines[i + 1:]:
                listed = _ITEM.match(item)
                if not listed:
                    break
                found.append((key, _clean(listed.group(1))))
    return [(key, name) for key, name in found if name]


def scan_task_names(folder: str | Path) -> set[str]:
    """Task, group and tag names declared by the YAML files under ``folder``."""
    return {name for path in Path(folder).rglob("*.yaml") for _, name in _declarations(path)}


def task_files(folder: str | Path) -> dict[str, list[Path]]:
    """Each task name declared (``task: name``) under ``folder`` -> the YAML files declaring it."""
    files: dict[str, list[Path]] = {}
    for path in sorted(Path(folder).rglob("*.yaml")):
        for key, name in _declarations(path):
            if key == "task":
                files.setdefault(name, []).append(path)
    return files


def check_include_path(include_path: str | None, key: str = "--include_path") -> None:
    """Refuse an ``--include_path`` (named ``key``) that is no folder: lmms-eval 0.7.3 walks it for task YAMLs and
    says nothing when there is none (a missing path, a file), so a misspelt folder of the user's own task copies
    would go unnoticed where tasks of the same names exist elsewhere.

    Raises:
        ConfigError: naming ``key`` and the path (exit status 2).
    """
    from savi_plugin.config.values import ConfigError

    if not include_path:
        return
    if not os.path.exists(include_path):
        raise ConfigError(key, f"{include_path} does not exist (lmms-eval reads task YAMLs from that folder)")
    if not os.path.isdir(include_path):
        raise ConfigError(key, f"{include_path} is not a folder (lmms-eval reads task YAMLs from a folder)")


def check_no_shadowed_task(include_path: str | None, env: Mapping[str, str] | None = None,
                           key: str = "--include_path") -> None:
    """Refuse a task folder of the run (:func:`include_folders`: ``include_path``, named ``key`` in the message, and
    ``$LMMS_EVAL_PLUGINS``' folders) that declares a task under the name of one savi-plugin ships, with other
    content. lmms-eval keeps the first declaration it indexes, and the run's own
    folders come before ours (``savi eval run`` gives ours only when ``--include_path`` names none; the package's
    registration appends it), so the copy would be evaluated, and its results kept and compared, under the
    shipped task's name with no word. The shipped files themselves, or a byte-for-byte copy, are no other task.

    Raises:
        ConfigError: naming the user's file, the task and the shipped file (exit status 2).
    """
    from savi_plugin.config.values import ConfigError
    from savi_plugin.eval.registration import tasks_path

    shipped = task_files(tasks_path())
    for n, folder in enumerate(include_folders(include_path, env)):
        where = key if include_path and n == 0 else "$LMMS_EVAL_PLUGINS"
        for name, paths in task_files(folder).items():
            for path in paths if name in shipped else ():
                if any(_same_content(path, ours) for ours in shipped[name]):
                    continue
                raise ConfigError(where, f"{path} declares task {name!r}, a task savi-plugin ships "
                                         f"({shipped[name][0]}): lmms-eval would evaluate yours under that name in "
                                         f"its place; give your task another name (task: my_{name})")


def _same_content(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b) or a.read_bytes() == b.read_bytes()
    except OSError:
        return False


@functools.cache
def _shipped_task_names() -> frozenset[str]:
    """Our task folder's names and lmms-eval's built-in ones (empty when lmms-eval is not installed)."""
    from savi_plugin.eval.registration import tasks_path

    names = scan_task_names(tasks_path())
    try:
        import lmms_eval
    except ImportError:
        return frozenset()
    return frozenset(names | scan_task_names(Path(lmms_eval.__file__).parent / "tasks"))


def known_task_names() -> frozenset[str]:
    """Every task name lmms-eval will find with our model: ours, lmms-eval's built-in ones, and those of the
    benchmarks other distributions register (``savi_plugin.benchmarks``); empty when lmms-eval is not installed."""
    from savi_plugin.eval.registration import benchmark_task_folders

    shipped = _shipped_task_names()
    if not shipped:
        return shipped
    extra: set[str] = set()
    for folder in benchmark_task_folders():
        extra |= scan_task_names(folder)
    return shipped | extra


def include_folders(include_path: str | None, env: Mapping[str, str] | None = None) -> list[str]:
    """The task folders an lmms-eval run reads besides its built-in ones, as lmms-eval 0.7.3 finds them: its
    ``--include_path`` (one path, walked recursively by ``TaskManager.initialize_tasks`` in
    ``lmms_eval/tasks/__init__.py``) and, for each module named in the comma-separated ``$LMMS_EVAL_PLUGINS``, the
    folder of its ``<module>.tasks`` package (``lmms_eval/__main__.py`` appends those to the include path). A plugin
    that cannot be found adds nothing here; :func:`check_plugins` refuses it."""
    env = os.environ if env is None else env
    folders = [include_path] if include_path else []
    for plugin in filter(None, (p.strip() for p in env.get("LMMS_EVAL_PLUGINS", "").split(","))):
        try:
            spec = importlib.util.find_spec(f"{plugin}.tasks")
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            folders.append(next(iter(spec.submodule_search_locations)))
    return folders


def plugins_problem(env: Mapping[str, str] | None = None) -> str | None:
    """Why lmms-eval cannot start with the ``$LMMS_EVAL_PLUGINS`` of ``env``, or None: lmms-eval 0.7.3 splits it
    at commas as written and, for each name, imports ``<name>.models`` (``lmms_eval/models/__init__.py``) and
    finds the ``<name>.tasks`` package (``lmms_eval/__main__.py``); an empty name (``,``), a name that is no
    module or a module without those fails there, after lmms-eval started, with a traceback that never names the
    variable. Asked before any evaluation (:func:`savi_plugin.eval.hub_check.eval_data_env`) and by
    ``savi doctor --eval``."""
    env = os.environ if env is None else env
    value = env.get("LMMS_EVAL_PLUGINS")
    if not value:
        return None
    fix = "install that package, or correct or unset the variable"
    for plugin in value.split(","):
        if not plugin.strip():
            return (f"{value!r} holds an empty module name (a comma at its start or end, or two in a row); lmms-eval "
                    f"imports each comma-separated name: remove it, or unset the variable")
        if plugin != plugin.strip() or not all(part.isidentifier() for part in plugin.split(".")):
            return f"{plugin!r} is no Python module name (lmms-eval imports each comma-separated name as written)"
        for sub in ("models", "tasks"):
            try:
                spec = importlib.util.find_spec(f"{plugin}.{sub}")
            except Exception as exc:  # noqa: BLE001 -- the package is missing or its import fails: lmms-eval's too
                return f"{plugin!r}: {type(exc).__name__}: {exc} (lmms-eval imports {plugin}.{sub}); {fix}"
            if spec is None or (sub == "tasks" and not spec.submodule_search_locations):
                return (f"{plugin!r} has no {plugin}.{sub} {'package' if sub == 'tasks' else 'module'}, which "
                        f"lmms-eval imports for each plugin it names: correct or unset the variable")
    return None


def check_plugins(env: Mapping[str, str] | None = None) -> None:
    """Refuse a ``$LMMS_EVAL_PLUGINS`` lmms-eval cannot start with (:func:`plugins_problem`): one line naming the
    variable, a configuration error (exit status 2), before lmms-eval starts."""
    from savi_plugin.errors import ConfigError

    problem = plugins_problem(env)
    if problem:
        raise ConfigError("$LMMS_EVAL_PLUGINS", problem)


def check_model_name(model: str, key: str = "--model", env: Mapping[str, str] | None = None,
                     source: str | None = None) -> None:
    """Refuse a model name lmms-eval would not find in its model registry: lmms-eval 0.7.3 looks it up only after
    it started and loaded the tasks (~24 s), then lists every name it has. The registry
    (``lmms_eval.models.MODEL_REGISTRY_V2``: its built-in models and the ``lmms_eval.models`` entry points, our
    ``savi_video`` among them) is read here without starting an evaluation. With ``$LMMS_EVAL_PLUGINS`` set (in
    ``env`` or this process), the plugins' models count too, and only importing their code would tell which they
    are: the name is then left to lmms-eval. Without lmms-eval installed, the evaluation names that itself.

    Raises:
        ConfigError: ``key: 'x': unknown lmms-eval model (nearest of the N known: ...)``
            (:func:`savi_plugin.untrusted.unknown_name`), exit status 2.
    """
    from savi_plugin.config.values import ConfigError

    env = os.environ if env is None else env
    if env.get("LMMS_EVAL_PLUGINS") or os.environ.get("LMMS_EVAL_PLUGINS"):
        return
    try:
        from lmms_eval.models import MODEL_REGISTRY_V2
    except ImportError:
        return
    known = MODEL_REGISTRY_V2.list_model_names()
    if model not in known:
        from savi_plugin.untrusted import shown_value, unknown_name

        raise ConfigError(key, f"{shown_value(model)}: {unknown_name(model, known, 'lmms-eval model')}", source)


def check_task_names(tasks: list[str], key: str = "eval.tasks", source: str | None = None,
                     include: Iterable[str | Path] = ()) -> None:
    """Refuse a task name lmms-eval would not find: in none of our tasks, lmms-eval's built-in ones, those of the
    registered benchmarks, and the folders ``include`` (:func:`include_folders`: the run's own ``--include_path``).

    Raises:
        ConfigError: ``source: eval.tasks[i]: unknown lmms-eval task 'x'; did you mean ...``.
    """
    from savi_plugin.config.values import ConfigError

    known = known_task_names()
    if not known:  # lmms-eval not installed: the eval step names that itself
        return
    include = [str(folder) for folder in include]
    if any(name not in known for name in tasks):
        for folder in include:
            known = known | scan_task_names(folder)
    for i, name in enumerate(tasks):
        if name not in known:
            from savi_plugin.untrusted import read_as_known, shown_value

            close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
            like = read_as_known(name, sorted(known))
            hint = (f"; {like}" if like else f"; did you mean {', '.join(close)}?" if close
                    else "; `lmms-eval --tasks list` lists them")
            where = "neither a savi task nor an lmms-eval built-in"
            if include:
                where = f"not a savi task, an lmms-eval built-in, nor a task under {', '.join(include)}"
            raise ConfigError(f"{key}[{i}]", f"unknown lmms-eval task {shown_value(name)} ({where}){hint}", source)

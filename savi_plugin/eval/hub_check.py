"""Before a job that evaluates: can the data of every task it names be had here? One line when not.

A savi task without ``SAVI_DATA_ROOT`` reads its benchmark from the hub, as lmms-eval's built-in tasks do: lmms-eval
(0.7.3, ``api/task.py`` ``ConfigurableTask.download``) fetches the YAML's ``dataset_path`` (the videos into
``$HF_HOME/<dataset_kwargs.cache_dir>``, the annotations through ``datasets.load_dataset(dataset_path,
dataset_name)`` into the datasets cache). On a machine that cannot reach the hub this fails only when the task
loads -- in ``savi align``, after generation, training and merge. :func:`eval_data_env` looks first, for every task
of the job, at what its data need, and reads nothing but the task YAMLs, the cache folders and (at most once, a
connection attempt of :data:`HUB_TIMEOUT` seconds, nothing sent) the hub's host:

* lmms-eval's built-in tasks: :func:`savi_plugin.eval.builtin_check.builtin_problems`;
* our tasks (:func:`task_sources`: the ``dataset_path``, ``dataset_name`` and ``cache_dir`` of their YAMLs, includes,
  groups and tags followed) when no data root is set: a benchmark read from its official files only needs one;
  offline (``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE``) the videos folder and a prepared copy of each config must
  be in the cache (:mod:`savi_plugin.eval.hf_cache`); online, data not cached need the hub to answer.

It refuses with :class:`EvalDataUnavailableError` (a configuration error: exit 2, nothing written) naming the
task(s) and how to get the data: a local copy in the ``SAVI_DATA_ROOT`` layout (``eval.data_root`` / ``--data-root``).
"""

from __future__ import annotations

import functools
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import yaml

from savi_plugin.errors import ConfigurationError

#: seconds a connection attempt to the hub's host may take (name lookup included)
HUB_TIMEOUT = 3.0
#: the hub's address when ``HF_ENDPOINT`` is unset (huggingface_hub's default)
DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = ("1", "on", "yes", "true")


class EvalDataUnavailableError(ConfigurationError):
    """The data of a task the job evaluates cannot be had here (one line: task(s), why, how to get them)."""


@dataclass(frozen=True)
class TaskSource:
    """Where one leaf task of ours reads its data from the hub (the facts of its YAML)."""

    task: str
    dataset_path: str
    dataset_name: str | None
    cache_dir: str | None
    local_only: bool  #: the benchmark is read from its official files under ``SAVI_DATA_ROOT`` only


class _TaskLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads lmms-eval's ``!function`` tags (any ``!`` tag) as None: only plain keys are
    needed here, and no tag builds an object."""


_TaskLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def _read(path: Path) -> dict:
    """One installed task YAML (ours or a benchmark distribution's, read as lmms-eval reads them)."""
    try:
        doc = yaml.load(path.read_text(encoding="utf-8-sig"), Loader=_TaskLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):  # lmms-eval cannot read it either; its run names it
        return {}
    return doc if isinstance(doc, dict) else {}


def _merged(path: Path, seen: frozenset = frozenset()) -> dict:
    """The YAML at ``path`` with its ``include:`` chain applied (lmms-eval's rule: the file's keys win)."""
    doc = _read(path)
    include = doc.get("include")
    if isinstance(include, str) and path not in seen:
        base = _merged((path.parent / include).resolve(), seen | {path})
        doc = {**base, **{k: v for k, v in doc.items() if k != "include"}}
    return doc


@functools.cache
def _index(folders: tuple[str, ...]) -> tuple[dict, dict, dict]:
    """``(tasks, groups, tags)`` of the YAMLs under ``folders``: leaf name -> merged YAML, group -> member names,
    tag -> leaf names."""
    tasks, groups, tags = {}, {}, {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.yaml")):
            doc = _merged(path.resolve())
            name, group = doc.get("task"), doc.get("group")
            if isinstance(group, str) and isinstance(name, list):
                groups[group] = [m.get("task") if isinstance(m, dict) else m for m in name]
            elif isinstance(name, str):
                tasks[name] = doc
                tag = doc.get("tag")
                for t in ([tag] if isinstance(tag, str) else tag if isinstance(tag, list) else []):
                    tags.setdefault(t, []).append(name)
    return tasks, groups, tags


def _our_folders() -> tuple[str, ...]:
    from savi_plugin.eval.registration import benchmark_task_folders, tasks_path

    return (tasks_path(), *benchmark_task_folders())


def _local_only(doc: dict) -> bool:
    from savi_plugin.eval import benchmarks

    name = (doc.get("metadata") or {}).get("benchmark") if isinstance(doc.get("metadata"), dict) else None
    try:
        return bool(name) and benchmarks.get(name).spec.local_only
    except Exception:  # noqa: BLE001 - an unknown benchmark: the task's own load names it
        return False


def task_sources(task: str, folders: tuple[str, ...] | None = None) -> list[TaskSource]:
    """The hub sources of our task, group or tag ``task`` (empty: not one of ours)."""
    tasks, groups, tags = _index(folders or _our_folders())
    out, todo, seen = [], [task], set()
    while todo:
        name = todo.pop(0)
        if name in seen or not isinstance(name, str):
            continue
        seen.add(name)
        if name in groups:
            todo += groups[name]
        elif name in tasks:
            doc = tasks[name]
            kwargs = doc.get("dataset_kwargs") if isinstance(doc.get("dataset_kwargs"), dict) else {}
            if isinstance(doc.get("dataset_path"), str):
                out.append(TaskSource(name, doc["dataset_path"], doc.get("dataset_name"), kwargs.get("cache_dir"),
                                      _local_only(doc)))
        elif name in tags:
            todo += tags[name]
    return out


def offline_flag(env: dict) -> str | None:
    """The variable that switches the hub off in ``env`` (None: online)."""
    return next((var for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
                 if str(env.get(var, "")).strip().lower() in _TRUE), None)


def _connect(host: str, port: int, timeout: float) -> str | None:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def hub_unreachable(env: dict, timeout: float = HUB_TIMEOUT) -> str | None:
    """Why the hub's host (``HF_ENDPOINT``, or the ``HTTPS_PROXY`` in front of it) does not answer a TCP connection
    within ``timeout`` seconds, name lookup included (None: it answers). Nothing is sent."""
    endpoint = urlparse(env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)
    proxy = env.get("HTTPS_PROXY") or env.get("https_proxy") or env.get("ALL_PROXY") or env.get("all_proxy")
    target = urlparse(proxy if "://" in str(proxy) else f"http://{proxy}") if proxy else endpoint
    host = target.hostname or "huggingface.co"
    port = target.port or (443 if target.scheme == "https" else 80)
    result: list = []
    worker = threading.Thread(target=lambda: result.append(_connect(host, port, timeout)), daemon=True)
    worker.start()
    worker.join(timeout + 0.5)  # a name lookup has no timeout of its own
    where = f"{host}:{port}" + (" (HTTPS_PROXY)" if proxy else "")
    if not result:
        return f"{where} did not answer in {timeout:g} s"
    return f"{where}: {result[0]}" if result[0] else None


def _cached(source: TaskSource, env: dict) -> bool:
    from savi_plugin.eval.hf_cache import cached_split_dirs, datasets_cache_dir, hf_home

    videos = source.cache_dir is None or (Path(hf_home(env)) / source.cache_dir).is_dir()
    return videos and bool(cached_split_dirs(datasets_cache_dir(env), source.dataset_path, source.dataset_name))


def hub_problems(tasks: list[str], env: dict, *, advice: str) -> list[str]:
    """What keeps each of our tasks in ``tasks`` from getting its data with ``env`` (``SAVI_DATA_ROOT`` unset; one
    message per task); ``advice`` says how to give a local copy instead."""
    if env.get("SAVI_DATA_ROOT"):
        return []
    problems, unreachable, asked = [], None, False
    offline = offline_flag(env)
    for task in tasks:
        sources = task_sources(task)
        local = sorted({s.dataset_path for s in sources if s.local_only})
        missing = [s for s in sources if not s.local_only and not _cached(s, env)]
        paths = ", ".join(sorted({s.dataset_path for s in missing})[:3])
        if local:
            problems.append(f"{task}: {', '.join(local)} is read from its official files only and no data root is "
                            f"set; {advice}")
        elif missing and offline:
            problems.append(f"{task}: {paths} is not in the Hugging Face cache and {offline}=1 forbids its "
                            f"download; {advice}")
        elif missing:
            if not asked:
                unreachable, asked = hub_unreachable(env), True
            if unreachable:
                problems.append(f"{task}: {paths} is not in the Hugging Face cache and the hub cannot be reached "
                                f"({unreachable}); {advice}")
    return problems


def eval_data_env(tasks: list[str], env: dict, *, advice: str | None = None) -> dict:
    """``env`` for the evaluation (``HF_HOME`` set where built-in tasks need it), after checking that the data of
    every task in ``tasks`` can be had: lmms-eval's built-in ones
    (:func:`savi_plugin.eval.builtin_check.builtin_task_env`), then ours (:func:`hub_problems`).

    Args:
        advice: how the caller's user gives a local copy (default: ``SAVI_DATA_ROOT`` / ``--data-root``).

    Raises:
        ConfigError: a ``$LMMS_EVAL_PLUGINS`` lmms-eval cannot start with
            (:func:`savi_plugin.eval.task_names.check_plugins`).
        BuiltinDataError, EvalDataUnavailableError: the first task that cannot, and how many others likewise.
    """
    from savi_plugin.eval.builtin_check import builtin_task_env
    from savi_plugin.eval.task_names import check_plugins

    check_plugins(env)  # lmms-eval would fail at its start, naming no variable
    env = builtin_task_env(tasks, env)
    advice = advice or ("give a local copy in the SAVI_DATA_ROOT layout (eval_tasks/README.md) with --data-root "
                        "or SAVI_DATA_ROOT, or a small synthetic one with `savi eval fixture DIR`")
    problems = hub_problems(tasks, env, advice=advice)
    if problems:
        others = [p.split(":", 1)[0] for p in problems[1:]]
        more = f" (likewise {', '.join(others)})" if others else ""
        raise EvalDataUnavailableError(problems[0] + more)
    return env

"""How lmms-eval finds the ``savi_video`` model and the ``savi_*`` tasks without extra flags.

**Model.** setup.cfg declares the entry point ``lmms_eval.models: savi_video =
savi_plugin.eval.registration:model_manifest``; lmms-eval calls it while building its model registry
(``lmms_eval/models/__init__.py``) and registers the returned ``ModelManifest``.

**Tasks.** lmms-eval (0.7) has no entry-point group for tasks: its ``TaskManager`` indexes its own
``lmms_eval/tasks/`` plus ``--include_path``, and the ``LMMS_EVAL_PLUGINS`` task path is added only
after the ``TaskManager`` is built. So we teach ``TaskManager`` one more default folder, ours:
:func:`install_task_path` wraps ``TaskManager.initialize_tasks`` so that, whenever lmms-eval indexes
its default tasks (``include_defaults=True``), it also indexes ``savi_plugin/eval_tasks``. Our folder
comes last, so lmms-eval's built-ins and the user's ``--include_path`` tasks win any name clash (ours
are all prefixed ``savi_``). ``TaskManager(include_defaults=False)`` is left untouched.

:func:`install_task_path` runs from two places:

* ``model_manifest`` (the entry point above): covers ``lmms-eval eval`` / ``lmms-eval --model ...``,
  which import the model registry before building the ``TaskManager``.
* :func:`startup`, from the ``savi_plugin_lmms_eval.pth`` file the package installs into
  site-packages: covers ``lmms-eval tasks list``, which never imports the model registry. It only
  installs an import hook; lmms-eval is patched when (and if) ``lmms_eval.tasks`` is imported.
  Set ``SAVI_LMMS_EVAL_AUTOLOAD=0`` to switch it off.

``lmms-eval ... --include_path "$(savi eval tasks-path)"`` keeps working as the documented fallback
(for instance under ``python -S``, where .pth files are not processed).

This module imports only the standard library at import time: it runs at interpreter startup.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys

TASKS_PACKAGE = "savi_plugin.eval_tasks"
MODEL_ID = "savi_video"
MODEL_CLASS = "savi_plugin.eval.model.SaviVideo"
AUTOLOAD_ENV = "SAVI_LMMS_EVAL_AUTOLOAD"
_TARGET = "lmms_eval.tasks"
_MARK = "_savi_task_path"


def tasks_path() -> str:
    """The folder holding our lmms-eval task YAMLs (``eval_tasks/`` in the source tree)."""
    spec = importlib.util.find_spec(TASKS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{TASKS_PACKAGE} is not installed; reinstall savi-plugin")
    return os.path.abspath(next(iter(spec.submodule_search_locations)))


def benchmark_task_folders() -> list[str]:
    """The task folders of benchmarks other distributions add (:mod:`savi_plugin.eval.benchmarks`); a broken
    entry point is reported on stderr in one line and left out, so lmms-eval's own tasks still load."""
    try:
        from savi_plugin.eval.benchmarks import task_folders

        return task_folders()
    except Exception as exc:  # noqa: BLE001 - lmms-eval's own tasks must load whatever a third party ships
        print(f"savi-plugin: benchmark task folders skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
        return []


def autoload_enabled() -> bool:
    """False when ``SAVI_LMMS_EVAL_AUTOLOAD`` is ``0``/``false``/``no``/``off`` (then only ``--include_path`` works)."""
    return os.environ.get(AUTOLOAD_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def warn_stray_launcher_env() -> None:
    """One stderr line when launcher variables are left in a shell that starts lmms-eval
    (:func:`savi_plugin.launch.stray_process_variables`, the rule ``savi`` applies). lmms-eval 0.7.3 reads
    ``RANK``/``WORLD_SIZE`` as this process's place in a distributed job (``evaluator.py``: it evaluates its share
    of the documents), and its ``cli_evaluate`` builds ``accelerate.Accelerator()`` before any model: with
    ``LOCAL_RANK`` on a GPU machine (or ``ACCELERATE_USE_CPU``) that tries to join the job they describe and fails or
    waits before ``savi_video`` exists, so this line, printed when ``lmms_eval.tasks`` is imported (at the top of
    lmms-eval's ``__main__``), comes first; ``savi_video`` itself then refuses to run
    (:meth:`savi_plugin.eval.model.SaviVideo.__init__`). Never raises: other models' runs are lmms-eval's."""
    try:
        from savi_plugin.launch import stray_process_variables

        stray = stray_process_variables()
    except Exception:  # noqa: BLE001 - a registration hook must never stop lmms-eval
        return
    if stray:
        values = ", ".join(f"{k}={os.environ[k]}" for k in stray)
        print(f"savi-plugin: warning: {values} set but no launcher (torchrun, deepspeed, accelerate launch) started "
              f"this process; lmms-eval reads them as this process's place in a distributed job: unset them "
              f"(unset {' '.join(stray)}) or start lmms-eval under a launcher", file=sys.stderr)


def model_manifest():
    """The ``lmms_eval.models`` entry point: registers ``savi_video`` (and our task folder)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    if autoload_enabled():
        install_task_path()
    return ModelManifest(model_id=MODEL_ID, simple_class_path=MODEL_CLASS)


def with_task_path(include_path, path: str):
    """``include_path`` (None, a str or a list) with ``path`` appended once; the input is not modified."""
    if include_path is None:
        paths = []
    elif isinstance(include_path, (str, os.PathLike)):
        paths = [include_path]
    else:
        paths = list(include_path)
    if not any(os.path.abspath(str(p)) == os.path.abspath(path) for p in paths):
        paths.append(path)
    return paths


def patch_task_manager(task_manager_cls) -> bool:
    """Make ``task_manager_cls`` index our task folder with its defaults; idempotent.

    Returns True if the class is (now) patched.
    """
    original = task_manager_cls.initialize_tasks
    if getattr(original, _MARK, False):
        return True

    @functools.wraps(original)
    def initialize_tasks(self, include_path=None, include_defaults=True):
        if include_defaults:
            try:
                include_path = with_task_path(include_path, tasks_path())
            except ModuleNotFoundError:  # a broken install must not break lmms-eval's own tasks
                pass
            for folder in benchmark_task_folders():
                include_path = with_task_path(include_path, folder)
        return original(self, include_path=include_path, include_defaults=include_defaults)

    setattr(initialize_tasks, _MARK, True)
    task_manager_cls.initialize_tasks = initialize_tasks
    return True


class _PatchAfterExec:
    """Loader wrapper: runs the real loader, then patches the freshly executed ``lmms_eval.tasks``."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        task_manager = getattr(module, "TaskManager", None)
        if task_manager is not None:
            patch_task_manager(task_manager)
        _uninstall_hook()
        warn_stray_launcher_env()

    def __getattr__(self, name):  # get_source, get_resource_reader, ... of the real loader
        return getattr(self._loader, name)


class _TasksImportHook:
    """A ``sys.meta_path`` finder that only acts on ``lmms_eval.tasks`` and defers to the others."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _TARGET:
            return None
        for finder in sys.meta_path:
            if isinstance(finder, _TasksImportHook) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchAfterExec(spec.loader)
                return spec
        return None

    def invalidate_caches(self):
        pass


def _uninstall_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TasksImportHook)]


def install_task_path() -> None:
    """Patch lmms-eval's ``TaskManager`` now if it is loaded, else when ``lmms_eval.tasks`` is imported."""
    module = sys.modules.get(_TARGET)
    task_manager = getattr(module, "TaskManager", None) if module is not None else None
    if task_manager is not None:
        patch_task_manager(task_manager)
        return
    if module is None and not any(isinstance(f, _TasksImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _TasksImportHook())


def startup() -> None:
    """Called by ``savi_plugin_lmms_eval.pth`` at interpreter start; never raises."""
    try:
        if autoload_enabled():
            install_task_path()
    except Exception as exc:  # noqa: BLE001 - a startup hook must never stop Python from starting
        print(f"savi-plugin: lmms-eval task registration skipped ({type(exc).__name__}: {exc})", file=sys.stderr)


#: The file name and the one line of the startup hook installed into site-packages (site.py executes
#: .pth lines that start with ``import``). The line does nothing once savi-plugin is uninstalled.
PTH_NAME = "savi_plugin_lmms_eval.pth"
PTH_LINE = ('import sys; exec("try:\\n    from savi_plugin.eval.registration import startup\\n'
            'except ImportError:\\n    pass\\nelse:\\n    startup()")\n')

"""``savi doctor``: what is installed, whether training and evaluation can work here, and known-bad combinations.

Each check is a :class:`Check` with a verdict (``ok``, ``warn`` or ``fail``), one line of detail and, for a
problem, the fix. A check belongs to an area: ``core`` (training and generation: torch, transformers, peft,
accelerate, torchvision for transformers' video processors, a video decoder) or ``eval`` (lmms-eval: it
imports, it can run an evaluation, it sees our ``savi_video`` model and our tasks). :func:`exit_code` fails
when an area the user asked for cannot work: core always, eval with ``--eval``. Every check is import-level
(seconds); nothing loads weights or reaches a network.

A package is checked as it imports (:func:`import_problem`), not as its metadata says: the module a run would
get names its file and its own version, and one that is not the installed distribution's (a copy on ``sys.path``,
e.g. from ``$PYTHONPATH``, shadowing it) fails, naming where it comes from. Whatever a package raises at import
(``SystemExit`` included) is that package's ``[fail]`` line, never the doctor's own exit. An import that ends the
process by a way no ``except`` sees (``os._exit``, a segfault, an abort), or that blocks (it does not end within
:data:`IMPORT_TIME_LIMIT` seconds), is found first, in one child process that imports every module of
:data:`PROBED` in order (:func:`import_deaths`); the doctor never imports one that killed or blocked it, and names
it as its ``[fail]`` line.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import json
import os
import platform
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

OK, WARN, FAIL = "ok", "warn", "fail"

#: distributions whose versions the report lists, in order (``import name`` is only for the note)
REPORTED = ("torch", "torchvision", "transformers", "peft", "accelerate", "deepspeed", "lmms-eval", "filelock",
            "huggingface-hub", "decord", "av")

#: the oldest and newest versions CI passed with: setup.cfg's lower bounds (.ci/run's lower-bound job) and the
#: newest releases pip installs here (its newest-versions job; README, "Tested versions"). Older ones are below
#: the declared bounds (a failure, naming the fix), newer ones untested (a warning).
TESTED = {"torch": ("2.9.1", "2.14.1"), "torchvision": ("0.24.1", "0.29.1"), "transformers": ("5.18.0", "5.25.0"),
          "peft": ("0.18.0", "0.21.2"), "accelerate": ("1.3.0", "1.16.0")}


@dataclass(frozen=True)
class Check:
    """One verdict of the doctor."""

    area: str
    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"[{self.status:4}] {self.area:4} {self.name}: {self.detail}"
        return text + (f" -> fix: {self.fix}" if self.fix else "")


def version_of(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or None."""
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def version_tuple(version: str) -> tuple[int, ...]:
    """``"4.57.1+cpu"`` -> ``(4, 57, 1)`` (enough to compare release numbers)."""
    return tuple(int(x) for x in re.findall(r"\d+", version.split("+")[0])[:3])


#: every module the checks import, in the order a run of them imports them: probed by :func:`import_deaths`
PROBED = ("torch", "transformers", "peft", "accelerate", "torchvision", "decord", "av", "lmms_eval",
          "lmms_eval.evaluator", "filelock._api", "lmms_eval.models.registry_v2")

#: the child of :func:`import_deaths`: imports each module named after its pipe's fd and sys.path, saying on the pipe
#: when it starts and when it is done (whatever the import raised), so a module it never finishes killed it
_PROBE = """import importlib, json, os, sys
fd, sys.path[:] = int(sys.argv[1]), json.loads(sys.argv[2])
for name in sys.argv[3:]:
    os.write(fd, ("start " + name + "\\n").encode())
    try:
        importlib.import_module(name)
    except BaseException:
        pass
    os.write(fd, ("done " + name + "\\n").encode())
"""

_deaths: dict[tuple, dict[str, str]] = {}


#: seconds one module of :data:`PROBED` may take to import in the probe (torch on a loaded machine takes tens):
#: one that takes longer blocks, and the doctor names it instead of hanging on it
IMPORT_TIME_LIMIT = 120.0


def _read_probe(fd: int, limit: float) -> tuple[list[str], bool]:
    """The lines the probe child says on the pipe ``fd`` until it closes it, and whether it stopped saying anything
    for ``limit`` seconds after starting a module (that import blocks); ``fd`` is closed."""
    import select
    import time

    data, deadline = b"", time.monotonic() + limit
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                return data.decode("utf-8", "replace").splitlines(), True
            chunk = os.read(fd, 65536)
            if not chunk:
                return data.decode("utf-8", "replace").splitlines(), False
            data += chunk
            deadline = time.monotonic() + limit  # each line: a module started or done, the next one's time begins
    finally:
        os.close(fd)


def import_deaths(modules: tuple[str, ...] = PROBED, limit: float | None = None) -> dict[str, str]:
    """The modules of ``modules`` whose import ends the process (``os._exit``, a signal such as a segfault) or
    blocks (no end within ``limit`` seconds, default :data:`IMPORT_TIME_LIMIT`), each with what happened in one
    line, found by importing them in order in one child process (``sys.executable``, this process's ``sys.path``);
    after a death or a block (the child killed), a new child goes on from the next module; a module inside a
    package that died or blocked (``lmms_eval.evaluator`` after ``lmms_eval``) is given the package's line, never
    imported again (a blocking package costs one limit, not one per module). Cached per ``sys.path``."""
    limit = IMPORT_TIME_LIMIT if limit is None else limit
    from savi_plugin.data.outputs import start_child  # the one launcher: the probe dies with the doctor

    key = (tuple(sys.path), tuple(modules))
    if key in _deaths:
        return _deaths[key]
    deaths: dict[str, str] = {}
    rest = list(modules)
    while rest:
        read, write = os.pipe()
        try:
            child = start_child([sys.executable, "-c", _PROBE, str(write), json.dumps(sys.path), *rest],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                pass_fds=(write,))
        finally:
            os.close(write)
        said, blocked = _read_probe(read, limit)
        if blocked:
            child.kill()
        code = child.wait()
        done = {line[5:] for line in said if line.startswith("done ")}
        dying = next((line[6:] for line in said if line.startswith("start ") and line[6:] not in done), None)
        if dying is None or dying not in rest:
            break
        if blocked:
            how = f"does not finish within {limit:g} s (it blocks; stopped there)"
        elif code < 0:
            try:
                how = f"is killed by signal {signal.Signals(-code).name}"
            except ValueError:
                how = f"is killed by signal {-code}"
        else:
            how = f"ends the process at once (exit status {code}, bypassing SystemExit)"
        deaths[dying] = f"importing {dying} ({_origin(dying)}) {how}"
        rest = rest[rest.index(dying) + 1:]
        for module in [m for m in rest if m.startswith(dying + ".")]:  # each would import the package again
            deaths[module] = deaths[dying]
            rest.remove(module)
    _deaths[key] = deaths
    return deaths


def _import(module: str) -> str | None:
    """None when ``module`` imports, else what its import raised in one line: any exception, ``SystemExit`` (a
    package calling ``sys.exit`` at import) included, or, for a module of :data:`PROBED` whose import kills the
    process (:func:`import_deaths`), that, without importing it here; only the user's Ctrl-C stops the doctor."""
    if module in PROBED and module in import_deaths():
        return import_deaths()[module]
    try:
        importlib.import_module(module)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - any import failure is the finding
        said = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        if isinstance(exc, SystemExit):  # no message of its own: say what happened and where
            said = f"importing {module} ({_origin(module)}) exits the process (SystemExit: {exc.code})"
        return said
    return None


def _origin(module: str) -> str:
    """The file ``module``'s top-level package would import from, for a message (never importing it)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(module.split(".")[0])
    except KeyboardInterrupt:
        raise
    except BaseException:  # noqa: BLE001 - only for a message
        spec = None
    return getattr(spec, "origin", None) or "file unknown"


def _same_version(a: str, b: str) -> bool:
    """Whether two version strings name one release, a local label aside (torch's ``__version__`` ``"2.14.1+cu130"``
    is its distribution's ``"2.14.1"``; ``"1.0"`` is ``"1.0.0"``)."""
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:
        return a.split("+")[0] == b.split("+")[0]
    try:
        return Version(Version(a).public) == Version(Version(b).public)
    except InvalidVersion:
        return a.split("+")[0] == b.split("+")[0]


def _editable_source(distribution) -> Path | None:
    """The folder an editable install (``pip install -e``) of ``distribution`` imports from, as its PEP 610
    ``direct_url.json`` records it (``dir_info.editable`` and a ``file://`` url), else None: an editable package's
    files live in that folder, not among the files the distribution lists."""
    try:
        record = json.loads(distribution.read_text("direct_url.json") or "null")
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not (record.get("dir_info") or {}).get("editable"):
        return None
    url = urlparse(str(record.get("url", "")))
    return Path(unquote(url.path)).resolve() if url.scheme == "file" else None


def _shadow_fix(file: str) -> str:
    """The fix for a package imported from ``file`` that is not its installed copy: the folder on ``sys.path`` that
    holds it (``sh/torch/__init__.py`` -> ``sh``; a module file ``sh/torch.py`` -> ``sh``) taken away."""
    where = Path(file).parent.parent if Path(file).name == "__init__.py" else Path(file).parent
    return f"remove {where} from sys.path ($PYTHONPATH, the working folder) or rename it there"


def _outside_installed(file: str | None, dist: str) -> Path | None:
    """The installed distribution ``dist``'s folder when ``file`` is none of its files (nor under its editable
    source folder): a copy elsewhere on ``sys.path`` shadows it; else None."""
    distribution = md.distribution(dist)
    files = distribution.files
    source = _editable_source(distribution)
    if files is None or (source and file and Path(file).resolve().is_relative_to(source)):
        return None
    base = Path(distribution.locate_file("")).resolve()
    mine = None
    if file:
        try:
            mine = Path(file).resolve().relative_to(base).as_posix()
        except ValueError:
            mine = None
    return base if mine is None or mine not in {f.as_posix() for f in files} else None


def import_problem(module: str, dist: str) -> tuple[str | None, str, str | None]:
    """``(problem, found, fix)`` for ``module`` of distribution ``dist`` as it imports here: ``found`` is its
    version and file (``0.22.0 from /site-packages/peft/__init__.py``), ``problem`` None when it is ``dist``'s
    installed copy, else why not in one line -- its import raised (:func:`_import`), no ``dist`` is installed, or
    it comes from elsewhere than the installed distribution's files or, for an editable install, its source folder
    (a copy on ``sys.path`` shadowing it), or its
    own ``__version__`` is not the installed one's. ``fix``: for a shadowing copy, taking its folder off
    ``sys.path``; else None (the caller's install fix)."""
    package = module.split(".")[0]
    installed = version_of(dist)
    error = _import(package)  # the package first: a shadowing copy lacks the module asked for
    if error:  # a copy that is not the installed one's, failing: taking it away is the fix, not an install
        origin = _origin(package)
        foreign = origin != "file unknown" and (installed is None or _outside_installed(origin, dist) is not None)
        return error, "", _shadow_fix(origin) if foreign else None
    top = sys.modules.get(package)
    file = getattr(top, "__file__", None)
    own = getattr(top, "__version__", None)
    version = own if isinstance(own, str) else installed
    found = f"{version or 'no version'} from {file or 'no file (a namespace package)'}"
    shadow = _shadow_fix(file) if file else None
    if installed is None:
        return (f"{package} imports {found}, but no {dist} distribution is installed: a copy on sys.path is not an "
                f"installed package"), found, shadow
    base = _outside_installed(file, dist)
    if base is not None:
        return (f"{package} imports {found}, not the installed {dist} {installed} (in {base}): a copy on sys.path "
                f"shadows it"), found, shadow
    if isinstance(own, str) and installed and not _same_version(own, installed):
        return (f"{package} imports {found}, whose own version is not the installed {dist} {installed}: a mixed or "
                f"half-upgraded installation"), found, None
    error = _import(module) if "." in module else None
    return error, found, None


def versions() -> list[Check]:
    """Python and every reported distribution's version, with CUDA for torch."""
    checks = [Check("info", "python", OK, platform.python_version())]
    for dist in REPORTED:
        v = version_of(dist)
        detail = v or "not installed"
        if dist == "torch" and v and import_problem("torch", "torch")[0] is None:
            import torch

            cuda = torch.version.cuda
            detail += f" (CUDA {cuda}, {'available' if torch.cuda.is_available() else 'not available'})" if cuda \
                else " (CPU build)"
        checks.append(Check("info", dist, OK, detail))
    return checks


def plugin_checks() -> list[Check]:
    """One check naming every registered entry that cannot be used (:func:`savi_plugin.registry.problem`:
    a name that installed packages register with different objects, a name that cannot be used, a module that is
    missing or raises when imported, an object of the wrong kind); none when every entry loads. A package
    registering ``dpo`` beside ours would train another loss under that name, so such a name cannot be used
    until one of them is uninstalled."""
    from savi_plugin import registry
    from savi_plugin.untrusted import shown_name

    problems, ours_lost = [], False
    for group in registry.GROUPS:
        clashes = registry.conflicts(group)
        for name in sorted(registry.entries(group)):
            if name in clashes:
                why = f"registered with different objects ({'; '.join(registry.origin(ep) for ep in clashes[name])})"
                ours_lost |= any(registry.is_own(ep) for ep in clashes[name])
            else:
                why = registry.problem(group, name)
            if why:
                problems.append(f"{group}:{shown_name(name)}: {why}")
    if not problems:
        return []
    # a name of savi's own taken by another package: that part of savi cannot work (fail); a third-party entry that
    # cannot be used costs only that entry, and savi's own parts work beside it (warn)
    return [Check("core", "plugins", FAIL if ours_lost else WARN,
                  f"{len(problems)} entr{'y' if len(problems) == 1 else 'ies'} cannot be used: {'; '.join(problems)}",
                  "see `savi plugins`; uninstall or fix those packages")]


def core_checks() -> list[Check]:
    """Whether training and generation can work: the libraries import and transformers' video path works."""
    checks = []
    transformers_fix = f"pip install 'transformers>={TESTED['transformers'][0]}'"
    for module, dist, fix in [("torch", "torch", "pip install torch"),
                              ("transformers", "transformers", transformers_fix),
                              ("peft", "peft", "pip install peft"),
                              ("accelerate", "accelerate", "pip install accelerate (transformers' Trainer needs it)")]:
        error, found, shadow_fix = import_problem(module, dist)
        checks.append(Check("core", module, FAIL if error else OK, error or f"imports {found}",
                            (shadow_fix or fix) if error else ""))
    error, found, shadow_fix = import_problem("torchvision", "torchvision")
    checks.append(Check("core", "torchvision", FAIL if error else OK,
                        error or f"imports {found}; transformers' video processors need it",
                        (shadow_fix or "install the torchvision built for your torch (e.g. torch 2.14.1 with "
                                       "torchvision 0.29.1)") if error else ""))
    checks.append(decoder_check())
    checks.extend(plugin_checks())
    for dist, (low, high) in TESTED.items():
        v = version_of(dist)
        if v and version_tuple(v) < version_tuple(low):  # known to fail (README, Tested versions)
            checks.append(Check("core", f"{dist} version", FAIL, f"{v} is older than {low}, the oldest that works",
                                f"pip install '{dist}>={low}'"))
        elif v and version_tuple(v) > version_tuple(high):
            checks.append(Check("core", f"{dist} version", WARN, f"{v} is newer than {high}, the newest tested",
                                "see README, Tested versions"))
    return checks


def decoder_check() -> Check:
    """PyAV, the default video decoder, must import as its installed copy; decord (the ``decord`` extra) is
    reported when present, and fails the check when it is there but broken or not its installed copy (a run with
    ``video.backend=decord`` would use it)."""
    if version_of("decord") is None and _import("decord") is not None:
        decord, decord_error = "decord not installed (optional: pip install 'savi-plugin[decord]')", None
    else:
        decord_error, found, decord_fix = import_problem("decord", "decord")
        decord = f"decord: {decord_error}" if decord_error else f"decord imports too ({found})"
    error, found, shadow_fix = import_problem("av", "av")
    if error:
        return Check("core", "video decoder", FAIL, f"PyAV, the default decoder: {error}; {decord}",
                     shadow_fix or "pip install av")
    if decord_error:
        return Check("core", "video decoder", FAIL, f"PyAV imports {found} (the default decoder); {decord}",
                     decord_fix or "pip install --force-reinstall decord, or pip uninstall decord")
    return Check("core", "video decoder", OK, f"PyAV imports {found} (the default decoder); {decord}")


def eval_checks() -> list[Check]:
    """Whether lmms-eval imports, can evaluate, and sees our model and tasks."""
    version = version_of("lmms-eval") or version_of("lmms_eval")
    if version is None:
        return [Check("eval", "lmms-eval", FAIL, "not installed", "pip install 'savi-plugin[eval]'")]
    from savi_plugin.eval.task_names import plugins_problem

    checks = []
    plugins = plugins_problem()
    if plugins:  # lmms-eval fails at its start on it: the variable is what to correct, not the installation
        checks.append(Check("eval", "$LMMS_EVAL_PLUGINS", FAIL, plugins,
                            "correct $LMMS_EVAL_PLUGINS, or unset it (savi_video needs no plugin variable)"))
    error, found, shadow_fix = import_problem("lmms_eval.evaluator",
                                              "lmms-eval" if version_of("lmms-eval") else "lmms_eval")
    checks.append(Check("eval", "lmms-eval", FAIL if error else OK, error or f"imports {found}",
                        (shadow_fix or ("correct or unset $LMMS_EVAL_PLUGINS" if plugins else
                                        "reinstall: pip install 'savi-plugin[eval]'")) if error else ""))
    if error is None:
        checks.append(filelock_check(version))
    checks.append(model_check())
    checks.append(tasks_check())
    return checks


def filelock_check(lmms_eval_version: str) -> Check:
    """Known-bad: lmms-eval 0.7.x's evaluator imports ``filelock._api``, which filelock 4 removed."""
    import lmms_eval.evaluator as evaluator

    needs_api = hasattr(evaluator, "_enable_reentrant_filelocks")
    filelock = version_of("filelock") or "not installed"
    if needs_api and _import("filelock._api") is not None:
        return Check("eval", "evaluation", FAIL,
                     f"lmms-eval {lmms_eval_version} imports filelock._api, which filelock {filelock} lacks: every "
                     f"evaluation fails with \"No module named 'filelock._api'\"",
                     "pip install 'filelock<4' (pip install 'savi-plugin[eval]' installs the same)")
    return Check("eval", "evaluation", OK, f"lmms-eval's evaluator can start (filelock {filelock})")


def model_check() -> Check:
    """Whether lmms-eval's ``lmms_eval.models`` entry points hold our ``savi_video`` and it loads."""
    points = [ep for ep in md.entry_points(group="lmms_eval.models") if ep.name == "savi_video"]
    if not points:
        return Check("eval", "savi_video model", FAIL, "no lmms_eval.models entry point named savi_video",
                     "reinstall savi-plugin (pip install -e . in the clone)")
    died = import_deaths().get("lmms_eval.models.registry_v2")  # what the entry point imports
    if died:
        return Check("eval", "savi_video model", FAIL, f"the entry point cannot load: {died}",
                     "see the lmms-eval line")
    try:
        manifest = points[0].load()()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - SystemExit at an import included: the finding
        return Check("eval", "savi_video model", FAIL, f"the entry point fails: {type(exc).__name__}: {exc}",
                     "reinstall savi-plugin")
    return Check("eval", "savi_video model", OK, f"registered ({getattr(manifest, 'simple_class_path', manifest)})")


def tasks_check() -> Check:
    """Whether our task folder is installed and holds the three headline tasks."""
    from savi_plugin.eval.registration import tasks_path

    try:
        folder = tasks_path()
    except ModuleNotFoundError as exc:
        return Check("eval", "savi tasks", FAIL, str(exc), "reinstall savi-plugin")
    import pathlib

    names = {m.group(1) for p in pathlib.Path(folder).rglob("*.yaml")
             for m in re.finditer(r"^(?:task|group):\s*(\S+)", p.read_text(encoding="utf-8"), re.M)}
    wanted = {"savi_mvbench", "savi_egoschema", "savi_perceptiontest"}
    missing = sorted(wanted - names)
    if missing:
        return Check("eval", "savi tasks", FAIL, f"{folder} lacks {', '.join(missing)}", "reinstall savi-plugin")
    return Check("eval", "savi tasks", OK, f"{len(names)} task(s) in {folder}")


def run_checks(evaluation: bool = True) -> list[Check]:
    """Every check: versions, core and (unless ``evaluation`` is False) eval."""
    return versions() + core_checks() + (eval_checks() if evaluation else [])


def exit_code(checks: list[Check], need_eval: bool = False) -> int:
    """1 when a check of an area the user needs failed (core always; eval with ``need_eval``), else 0."""
    needed = {"core", "eval"} if need_eval else {"core"}
    return 1 if any(c.status == FAIL and c.area in needed for c in checks) else 0

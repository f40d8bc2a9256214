"""The one boundary between savi and the code of a registered component (a loss, trainer, generator, backend).

Every call savi makes into such code -- a loss's ``requirements`` and ``compute``, a trainer's construction and
``compute_loss``, a generator's construction and ``process``, a backend's ``from_pretrained`` and hooks
(:data:`savi_plugin.models.backends.base.HOOKS`) -- runs inside :func:`plugin_call`, built-in components' alike.
What comes out of it is one of:

* what the call returned, once :func:`broken_contract`'s caller has checked it against the API's contract
  (README, "Extending"): a value savi cannot use is refused *there*, naming the component and the contract,
  never met later as savi's own error or blamed on the user's files;
* an error of savi's own taxonomy (:mod:`savi_plugin.errors`: a configuration, input or machine error, a run
  refusal), the operating system's, out of memory, a non-finite loss (``FloatingPointError``), or any error
  savi's own code raised without the component's code on the way (a built-in trainer refusing its arguments):
  unchanged, as it would be without a plugin;
* ``SystemExit`` (``sys.exit(0)`` in a component's code ended savi with exit status 0 and no word):
  :class:`PluginFailure` naming the call;
* any other error, raised by the component's code (or by a library it called): :class:`PluginFailure`, one line
  ``loss 'varloss' (entry of goodloss 0.1) raised ValueError: my loss is broken`` (exit status 1; ``-v`` prints
  the traceback of the original error, which is its cause).

A call that leaves the process in another working folder is refused too (the folder is put back first): savi's
outputs, locks and relative paths all read the working folder, so its change would surface later as an output
"removed" or a file "not found".
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator

from savi_plugin import registry
from savi_plugin.errors import ConfigurationError, InputError, MachineError, RunError

#: what each group's components are called in messages
KINDS = {registry.LOSSES: "loss", registry.TRAINERS: "trainer", registry.GENERATORS: "generator",
         registry.BACKENDS: "backend", registry.BENCHMARKS: "benchmark"}

#: errors that pass the boundary unchanged: savi's own taxonomy, the registry's, the machine's and the operating
#: system's (a file, a full disk: named by the CLI's boundary), the non-finite-loss guard's
PASSED = (ConfigurationError, InputError, MachineError, RunError, registry.PluginNotFoundError, MemoryError,
          OSError, FloatingPointError)

_SAVI = os.path.dirname(os.path.abspath(__file__)) + os.sep


class PluginFailure(RunError):
    """A registered component's code raised, returned what its contract does not allow, or changed the working
    folder; ``str()`` is one line naming the component (exit status 1)."""

    #: the job cannot go on (a generator's runner counts other failures of ``process`` per item)
    stops_job = False


class WorkingFolderChanged(PluginFailure):
    """A component's call left the process in another working folder (put back before this is raised)."""

    stops_job = True


def component(group: str, name: str | None, obj: Any = None) -> str:
    """``loss 'varloss' (entry of goodloss 0.1)``: a component as messages name it, with the distribution (and
    its version) whose entry point registers it; an object used without an entry point is named by its class."""
    kind = KINDS.get(group, group)
    cls = obj if isinstance(obj, type) else type(obj)
    found = registry.entries(group)
    if not name:  # a call made before savi knew the entry (a backend's hook inside its own loading): by its class
        name = next((n for n, ep in found.items() if ep.value == f"{cls.__module__}:{cls.__qualname__}"), None)
    dist = getattr(found.get(name), "dist", None) if name else None
    if dist is not None:
        return f"{kind} {name!r} (entry of {dist.name} {dist.version})"
    where = f"{cls.__module__}.{cls.__qualname__}"
    return f"{kind} {name!r} ({where}, not a registered entry)" if name else f"{kind} {where}"


def broken_contract(group: str, name: str | None, obj: Any, what: str, problem: str) -> PluginFailure:
    """The refusal of a value a component returned (or declared) against the contract: ``{component}: {what}
    {problem}``."""
    return PluginFailure(f"{component(group, name, obj)}: {what} {problem} (see README, 'Extending')")


def _savi_error(exc: BaseException, obj: Any) -> bool:
    """An error that is savi's own (or the machine's), which passes the boundary unchanged: one of
    :data:`PASSED`, or one savi's code raised (its innermost frame is savi's) without passing through the
    component's own package (a built-in trainer's refusal of its arguments; but a plugin's ``requirements`` that
    builds a bad ``Requirements`` is the plugin's)."""
    if isinstance(exc, PASSED) or any(c.__name__ == "OutOfMemoryError" for c in type(exc).__mro__):
        return True
    files = []
    tb = exc.__traceback__
    while tb is not None:
        files.append(os.path.abspath(tb.tb_frame.f_code.co_filename))
        tb = tb.tb_next
    if not files or not files[-1].startswith(_SAVI):
        return False
    return not any(f.startswith(where) for f in files[1:] for where in _package_dirs(obj))


def _package_dirs(obj: Any) -> list[str]:
    """Where the top-level package (or one-file module) of ``obj``'s class lies; none for savi's own components."""
    cls = obj if isinstance(obj, type) else type(obj)
    top = sys.modules.get(cls.__module__.split(".")[0])
    if top is None or top.__name__ in ("savi_plugin", "builtins"):
        return []
    if hasattr(top, "__path__"):
        return [os.path.abspath(p) + os.sep for p in top.__path__]
    return [os.path.abspath(top.__file__)] if getattr(top, "__file__", None) else []


@contextlib.contextmanager
def plugin_call(group: str, name: str | None, obj: Any, what: str) -> Iterator[None]:
    """Run the block (one call into ``obj``, the component registered as ``name`` in ``group``) under the
    boundary's rules (module docstring); ``what`` names the call (``compute``, ``construction``)."""
    folder = _working_folder()
    try:
        yield
    except SystemExit as exc:  # sys.exit() in a component would end savi with its status, 0 included, unsaid
        _check_folder(group, name, obj, what, folder)
        raise PluginFailure(f"{component(group, name, obj)} called sys.exit({exc.code!r}) in its {what}: a "
                            f"component raises an error, it never ends the process") from exc
    except Exception as exc:  # noqa: BLE001 - a component's code may raise anything
        _check_folder(group, name, obj, what, folder)
        if _savi_error(exc, obj):
            raise
        text = " ".join(str(exc).split())
        raise PluginFailure(f"{component(group, name, obj)} raised {type(exc).__name__}"
                            f"{': ' + text if text else ''}") from exc
    _check_folder(group, name, obj, what, folder)


def _working_folder() -> str | None:
    try:
        return os.getcwd()
    except OSError:  # removed under the process: nothing to compare with
        return None


def _check_folder(group: str, name: str | None, obj: Any, what: str, folder: str | None) -> None:
    now = _working_folder()
    if folder is None or now == folder:
        return
    os.chdir(folder)  # put back, so that what ends the command (its outputs' cleanup) reads the right folder
    raise WorkingFolderChanged(f"{component(group, name, obj)} changed the working folder from {folder} to "
                               f"{now or '(a removed folder)'} (in its {what}); a component must leave the "
                               f"process's working folder as it found it")

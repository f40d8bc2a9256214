"""setuptools commands that install the lmms-eval startup hook (``savi_plugin_lmms_eval.pth``).

lmms-eval's ``tasks list`` never imports its model registry, so our ``lmms_eval.models`` entry point
cannot register our task folder there (see :mod:`savi_plugin.eval.registration`). A one-line .pth
file in site-packages does: site.py runs it at interpreter start, and it only installs an import hook
for ``lmms_eval.tasks``. This module is for ``setup.py`` and uses only the standard library and
setuptools, because it runs while the package is being built::

    # setup.py
    import runpy
    from setuptools import setup
    setup(cmdclass=runpy.run_path("savi_plugin/eval/pth_install.py")["cmdclass"]())

Both a regular install (wheel) and ``pip install -e`` get the file; ``pip uninstall`` removes it
(it is listed in the wheel's RECORD).
"""

from __future__ import annotations

import os
import runpy

_HERE = os.path.dirname(os.path.abspath(__file__))


def pth_file() -> tuple[str, str]:
    """``(file name, content)`` of the hook, read from ``registration.py`` (stdlib-only, safe to run)."""
    names = runpy.run_path(os.path.join(_HERE, "registration.py"))
    return names["PTH_NAME"], names["PTH_LINE"]


def write_pth(folder: str) -> str:
    """Write the hook into ``folder`` (a build or wheel root); returns its path."""
    name, line = pth_file()
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(line)
    return path


def cmdclass() -> dict:
    """``build_py`` and ``editable_wheel`` commands that also write the hook at the top of the install."""
    from setuptools.command.build_py import build_py
    from setuptools.command.editable_wheel import editable_wheel

    class build_py_with_pth(build_py):
        """Regular installs: the .pth sits at the top of build/lib, i.e. in site-packages once installed."""

        def run(self):
            super().run()
            if not getattr(self, "editable_mode", False):
                write_pth(self.build_lib)

        def get_outputs(self, include_bytecode=True):
            outputs = super().get_outputs(include_bytecode)
            if getattr(self, "editable_mode", False):
                return outputs
            return outputs + [os.path.join(self.build_lib, pth_file()[0])]

    commands = {"build_py": build_py_with_pth}
    if not hasattr(editable_wheel, "_run_build_commands"):
        # A setuptools without this private hook: install normally; `--include_path` remains the fallback.
        return commands

    class editable_wheel_with_pth(editable_wheel):
        """``pip install -e``: the same .pth at the root of the editable wheel."""

        def _run_build_commands(self, *args, **kwargs):
            result = super()._run_build_commands(*args, **kwargs)
            # (dist_name, unpacked_wheel, build_lib, tmp_dir) in setuptools >= 64; never fail an install
            # over the optional hook.
            unpacked = kwargs.get("unpacked_wheel", args[1] if len(args) > 1 else None)
            try:
                write_pth(unpacked)
            except Exception as exc:  # noqa: BLE001
                print(f"savi-plugin: lmms-eval task hook not installed ({exc}); use --include_path")
            return result

    commands["editable_wheel"] = editable_wheel_with_pth
    return commands

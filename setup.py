"""Only for the lmms-eval startup hook (a .pth file that lets `lmms-eval tasks list` see our tasks);
all metadata is declarative in setup.cfg. See savi_plugin/eval/pth_install.py."""

import runpy

from setuptools import setup

setup(cmdclass=runpy.run_path("savi_plugin/eval/pth_install.py")["cmdclass"]())

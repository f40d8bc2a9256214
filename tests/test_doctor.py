"""``savi doctor``: its verdicts in this environment, and in a real venv where filelock 4 breaks lmms-eval."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from savi_plugin.cli import main
from savi_plugin.doctor import FAIL, OK, REPORTED, Check, exit_code

ROOT = Path(__file__).resolve().parents[1]


def test_doctor_passes_here_and_lists_every_version(capsys):
    assert main(["doctor", "--eval", "--json"]) == 0
    checks = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    names = {c["name"] for c in checks}
    assert {"python", *REPORTED} <= names
    assert all(c["status"] != FAIL for c in checks)
    by_name = {c["name"]: c for c in checks}
    assert by_name["evaluation"]["status"] == OK and by_name["savi_video model"]["status"] == OK
    assert "savi_mvbench" not in by_name["savi tasks"]["detail"]  # found, so not named as missing


def test_exit_code_fails_only_for_what_was_asked():
    core_bad = [Check("core", "torchvision", FAIL, "x")]
    eval_bad = [Check("core", "torch", OK, "x"), Check("eval", "evaluation", FAIL, "x")]
    assert exit_code(core_bad) == 1 and exit_code(core_bad, need_eval=True) == 1
    assert exit_code(eval_bad) == 0 and exit_code(eval_bad, need_eval=True) == 1


@pytest.fixture(scope="module")
def venv_with_filelock_4(tmp_path_factory):
    """A --system-site-packages venv with a real filelock 4 from PyPI (the resolve that broke lmms-eval)."""
    venv = tmp_path_factory.mktemp("venv-filelock4")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "filelock>=4,<5"], capture_output=True,
                         text=True, timeout=300)
    if pip.returncode != 0:
        pytest.skip(f"pip could not install filelock 4 (no package index here?): {pip.stderr[-300:]}")
    return python


def test_doctor_names_filelock_4_with_its_fix_and_fails_eval(venv_with_filelock_4):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([str(venv_with_filelock_4), "-m", "savi_plugin", "doctor", "--eval"], capture_output=True,
                         text=True, timeout=600, env=env)
    assert out.returncode == 1, out.stdout + out.stderr[-2000:]
    lines = out.stdout.splitlines()
    line = next(x for x in lines if " evaluation:" in x)
    assert line.startswith("[fail]") and "filelock._api" in line and "pip install 'filelock<4'" in line
    assert not any(x.startswith("[fail] core") for x in lines)  # training still works: plain `savi doctor` passes
    assert lines[-1] == "savi doctor: cannot work (evaluation failed)"

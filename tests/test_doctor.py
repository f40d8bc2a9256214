"""``savi doctor``: its verdicts in this environment, and with a real filelock 4 that breaks lmms-eval."""

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
def filelock_4_overlay(tmp_path_factory):
    """A folder holding a real filelock 4 from PyPI (the resolve that broke lmms-eval), installed with
    ``pip --target``: on ``PYTHONPATH`` it shadows the installed filelock for a child of this same interpreter,
    which keeps every other package where this environment has it (a venv, the system Python, or a venv that
    also sees the system's packages)."""
    folder = tmp_path_factory.mktemp("filelock4")
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(folder),
                          "filelock>=4,<5"], capture_output=True, text=True, timeout=300)
    if pip.returncode != 0:
        pytest.skip(f"pip could not install filelock 4 (no package index here?): {pip.stderr[-300:]}")
    return folder


def test_doctor_names_filelock_4_with_its_fix_and_fails_eval(filelock_4_overlay):
    path = [str(filelock_4_overlay), str(ROOT), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    out = subprocess.run([sys.executable, "-m", "savi_plugin", "doctor", "--eval"], capture_output=True,
                         text=True, timeout=600, env=env)
    assert out.returncode == 1, out.stdout + out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert any(x.startswith("[ok  ] info filelock: 4.") for x in lines), lines  # the child saw filelock 4
    line = next(x for x in lines if " evaluation:" in x)
    assert line.startswith("[fail]") and "filelock._api" in line and "pip install 'filelock<4'" in line
    assert not any(x.startswith("[fail] core") for x in lines)  # training still works: plain `savi doctor` passes
    assert lines[-1] == "savi doctor: cannot work (evaluation failed)"


def test_tested_range_starts_at_setup_cfgs_lower_bounds():
    """The doctor's oldest tested versions are setup.cfg's lower bounds (what .ci/run's lower-bound job installs)."""
    import configparser
    import re

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    declared = dict(re.findall(r"^\s*([A-Za-z0-9_.-]+)>=([0-9.]+)", cfg["options"]["install_requires"], re.M))
    from savi_plugin.doctor import TESTED

    assert {name: low for name, (low, _) in TESTED.items()} == {name: declared[name] for name in TESTED}



#: every package the doctor imports, with the check that names it
IMPORTED = {"torch": "torch", "torchvision": "torchvision", "transformers": "transformers", "peft": "peft",
            "accelerate": "accelerate", "av": "video decoder", "decord": "video decoder", "lmms_eval": "lmms-eval"}


#: each way a package's import can end the process: its code, and what its [fail] line says after its file
ENDINGS = {"exits": ("import sys\nsys.exit(3)\n", "exits the process (SystemExit: 3)"),
           "os._exit": ("import os\nos._exit(4)\n", "ends the process at once (exit status 4, bypassing SystemExit)"),
           "segfault": ("import ctypes\nctypes.string_at(0)\n", "is killed by signal SIGSEGV"),
           "blocks": ("import time\ntime.sleep(3600)\n", "does not finish within 3 s (it blocks; stopped there)")}

#: the doctor as a user runs it, in a child (``main(argv)``) whose probe gives each import 3 seconds
DOCTOR = ("import sys\nimport savi_plugin.doctor as doctor\ndoctor.IMPORT_TIME_LIMIT = 3\n"
          "from savi_plugin.cli import main\nsys.exit(main(['doctor', '--eval']))\n")


@pytest.mark.parametrize("kind", ["shadow", *ENDINGS])
def test_a_package_shadowed_or_exiting_at_import_is_its_failed_check(kind, tmp_path):
    """Pass 24 F rows 37/39: a fake ``peft`` on ``$PYTHONPATH`` was "[ok] core peft: imports (0.22.0)" (the
    installed distribution's metadata) and "all good" though training then failed importing it, and a package
    calling ``sys.exit(3)`` at import ended the doctor with status 3 and no output. Each package the doctor imports
    (:data:`IMPORTED`, every one at once here, in a child whose ``$PYTHONPATH`` holds them as a user's would) is
    now checked as it imports: a copy shadowing the installed one fails naming its file, its version and the
    folder to take off sys.path; an exit at import is that package's [fail] line naming its file, and the doctor
    still reports everything. Pass 24 R2 row 20: a package calling ``os._exit(4)`` at import (no ``except`` sees it)
    ended the doctor with status 4 and no output; such an import, or a segfault, is now found in one child process
    first and named the same way, never imported by the doctor itself. Pass 25 R3 rows 39/40/42: the fix of a copy
    that fails at import was "pip install ...", now the folder that shadows the installed one, for every kind; and
    a package that blocks at import hung the doctor with no line: the probe gives each import a time limit and
    names the one that blocks."""
    for package in IMPORTED:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text(
            "__version__ = '0.1.0'\n" if kind == "shadow" else ENDINGS[kind][0])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), str(ROOT)]))}
    out = subprocess.run([sys.executable, "-c", DOCTOR], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 1, out.stdout + out.stderr[-2000:]
    lines = out.stdout.splitlines()
    for package, check in IMPORTED.items():
        fake = tmp_path / package / "__init__.py"
        line = next((x for x in lines if x.startswith(("[fail] core ", "[fail] eval ")) and
                     x.split(" ", 2)[-1].startswith(check + ":")), None)
        assert line is not None, (package, lines)
        if kind == "shadow":
            assert f"{package} imports 0.1.0 from {fake}, not the installed" in line, line
        else:
            assert f"importing {package} ({fake}) {ENDINGS[kind][1]}" in line, line
        assert line.endswith(f"-> fix: remove {tmp_path} from sys.path ($PYTHONPATH, the working folder) or "
                             f"rename it there"), line
    assert lines[-1].startswith("savi doctor: cannot work (torch, transformers, peft, accelerate, torchvision, video "
                                "decoder, lmms-eval"), lines[-1]


def test_each_package_is_named_with_the_file_and_version_it_imports(capsys):
    assert main(["doctor", "--json"]) == 0
    by_name = {c["name"]: c for c in map(json.loads, capsys.readouterr().out.splitlines())}
    for name in ("torch", "torchvision", "transformers", "peft", "accelerate"):
        module = sys.modules[name]
        assert by_name[name]["detail"].startswith(f"imports {module.__version__} from {module.__file__}"), by_name[name]


@pytest.mark.parametrize("editable", [True, False])
def test_an_editable_install_imports_its_own_source_and_a_copy_beside_it_is_a_shadow(editable, tmp_path,
                                                                                       monkeypatch):
    """``pip install -e`` of a clone (how many install lmms-eval or transformers) imports from the clone, which
    the distribution's file list does not hold: its PEP 610 ``direct_url.json`` names that folder, so the package is
    its own; without that record the same copy is a shadow on ``sys.path``."""
    from savi_plugin.doctor import import_problem

    name = "savi_doctor_probe_pkg"
    clone, site = tmp_path / "clone", tmp_path / "site"
    (clone / name).mkdir(parents=True)
    (clone / name / "__init__.py").write_text("__version__ = '1.2.0'\n")
    info = site / f"{name}-1.2.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.0\n")
    (info / "RECORD").write_text(f"{name}-1.2.0.dist-info/METADATA,,\n__editable__.{name}.pth,,\n")
    if editable:
        (info / "direct_url.json").write_text(json.dumps({"url": clone.as_uri(), "dir_info": {"editable": True}}))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(clone))
    monkeypatch.delitem(sys.modules, name, raising=False)
    problem, found, fix = import_problem(name, name)
    assert found == f"1.2.0 from {clone / name / '__init__.py'}"
    if editable:
        assert problem is None
    else:
        assert problem and "shadows it" in problem and fix and str(clone) in fix


@pytest.mark.parametrize("where", ["$PYTHONPATH", "the working folder"])
def test_a_savi_plugin_folder_shadowing_the_installed_one_is_one_line(where, tmp_path):
    """Pass 25 R3 row 41: a folder named ``savi_plugin`` on ``sys.path`` (``PYTHONPATH=sh savi doctor``, or ``.`` on
    it in a working folder that holds one) took the package's name, and ``savi`` died with a 6-line traceback
    (``ImportError: cannot import name '__version__' from 'savi_plugin' (sh/savi_plugin/__init__.py)``). The
    console script says it in one line, naming the folder to take off ``sys.path``, exit 2, for every command."""
    from tests.builders import console_script

    shadow = tmp_path / "sh" if where == "$PYTHONPATH" else tmp_path
    (shadow / "savi_plugin").mkdir(parents=True)
    (shadow / "savi_plugin" / "__init__.py").write_text("")
    env = {**os.environ, "PYTHONPATH": str(shadow) if where == "$PYTHONPATH" else "."}
    out = subprocess.run([console_script("savi"), "doctor"], capture_output=True, text=True, timeout=300,
                         env=env, cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == "", out.stdout + out.stderr
    assert out.stderr.splitlines() == [
        f"error: savi_plugin imports from {shadow / 'savi_plugin'}, not from this installation "
        f"({ROOT / 'savi_plugin'}): remove {shadow} from sys.path ($PYTHONPATH, the working folder) or rename the "
        f"folder there"], out.stderr

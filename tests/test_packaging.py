"""Packaging: a normal wheel carries every module, the recipes and the eval tasks; the CLI and entry points work."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.builders import console_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out)], check=True, capture_output=True)
    (path,) = out.glob("savi_plugin-*.whl")
    return path


def test_wheel_contains_every_module_recipe_and_task(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "savi_plugin").rglob("*.py")}
    missing = sorted(m for m in modules if m not in names)
    assert not missing, f"add their packages to setup.cfg [options] packages: {missing}"
    assert not [n for n in names if n.startswith("tests/")]  # test scaffolding lives under tests/, not in the wheel
    for folder, package in (("recipes", "savi_plugin/recipes"), ("eval_tasks", "savi_plugin/eval_tasks")):
        files = [p for p in (ROOT / folder).rglob("*") if p.suffix in (".yaml", ".json", ".py")]
        assert files, folder
        for p in files:
            assert f"{package}/{p.relative_to(ROOT / folder).as_posix()}" in names, p
    assert "savi_plugin/confusables.txt" in names  # the look-alike table untrusted.equality_key reads
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    for group in ("savi_plugin.backends", "savi_plugin.generators", "savi_plugin.losses",
                  "savi_plugin.trainers", "lmms_eval.models", "console_scripts"):
        assert f"[{group}]" in entry_points


def test_cli_help_and_plugins_list_every_group():
    savi = console_script("savi")  # the script pip installed for this interpreter, not one found on PATH
    out = subprocess.run([savi, "--help"], capture_output=True, text=True, check=True).stdout
    assert "plugins" in out and "data" in out
    out = subprocess.run([savi, "plugins"], capture_output=True, text=True, check=True).stdout
    for line in ("savi_plugin.losses:", "rrpo", "dpo", "savi_plugin.backends:", "llava_onevision",
                 "lmms_eval.models:", "savi_video"):
        assert line in out


def test_registry_error_lists_available():
    from savi_plugin import registry

    with pytest.raises(registry.PluginNotFoundError, match="available: .*dpo.*rrpo"):
        registry.load(registry.LOSSES, "nope")
    assert registry.load(registry.LOSSES, "dpo").name == "dpo"  # a PreferenceLoss (savi_plugin.losses.base)

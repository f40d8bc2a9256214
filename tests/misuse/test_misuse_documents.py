"""Misuse, the YAML documents a user hands us, with GENERATED variants: every place a configuration document is
read (a recipe file, the recipe it ``extends``, a ``key=value`` override, ``savi generate``'s ``--options`` file
and ``--option`` value, a ``--prompts`` file, a prompt file a recipe names) x every bad document (an unsafe tag,
invalid YAML, too deep, an alias bomb, a key given twice) is run through ``savi_plugin.cli.main(argv)``: one
``error:`` line naming the source, exit status 2 (a configuration error, ``savi_plugin/errors.py``), nothing run
and nothing written.

The recipe-resolution cases (``extends`` through symlinks, an empty ``extends``, a shipped name shadowed by a file
of the working folder) and the bounded echo of a long override are here too: they are how a document is found and
named.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from misuse_kit import assert_one_line_error, savi

from savi_plugin import cli, registry

_BUILD_PARSER, _ENTRIES = cli.build_parser, registry.entries


@functools.cache
def _cached_entries(group: str):
    return dict(_ENTRIES(group))


@functools.cache
def _cached_parser():
    return _BUILD_PARSER()


@pytest.fixture(autouse=True)
def _fast_cli(monkeypatch, tmp_path):
    """One parser and entry-point listing for the module; every case in its own empty working folder."""
    monkeypatch.setattr(registry, "entries", _cached_entries)
    monkeypatch.setattr(cli, "build_parser", _cached_parser)
    monkeypatch.chdir(tmp_path)


# ------------------------------------------------------------------------------------------------ every reader
GENERATE = ["generate", "--generator", "rrpo", "--model", "m", "--input", "qa.jsonl", "--output", "pairs.jsonl"]


def _file(name: str, text: str) -> str:
    Path(name).write_text(text)
    return name


def _recipe_prompt_file(value: str) -> list[str]:
    _file("p.yaml", f"open_question: {value}\n")
    return ["train", _file("r.yaml", "extends: tiny_demo\ngenerate:\n  options:\n    prompts: p.yaml\n"), "--dry-run"]


def _extended_recipe(value: str) -> list[str]:
    Path("sub").mkdir()
    _file("sub/base.yaml", f"extends: tiny_demo\ntrain: {value}\n")
    return ["recipes", "show", _file("r.yaml", "extends: sub/base.yaml\n")]


#: where a document is read: name -> (the argv that reads VALUE there, the source its error names)
READERS = {
    "recipe file": (lambda v: ["recipes", "show", _file("r.yaml", f"extends: tiny_demo\ntrain: {v}\n")], "r.yaml:"),
    "recipe dry run": (lambda v: ["train", _file("r.yaml", f"extends: tiny_demo\ntrain: {v}\n"), "--dry-run"],
                       "r.yaml:"),
    "extended recipe": (_extended_recipe, "base.yaml:"),
    "override": (lambda v: ["recipes", "show", "tiny_demo", f"train={v}"], "train="),
    "align override": (lambda v: ["align", "tiny_demo", "--dry-run", f"train={v}"], "train="),
    "--options file": (lambda v: [*GENERATE, "--options", _file("o.yaml", f"temperature: {v}\n")], "o.yaml:"),
    "--option value": (lambda v: [*GENERATE, "--option", f"temperature={v}"], "--option temperature"),
    "--prompts file": (lambda v: [*GENERATE, "--prompts", _file("p.yaml", f"open_question: {v}\n")],
                       "--prompts: p.yaml:"),
    "recipe's prompt file": (_recipe_prompt_file, "generate.options.prompts: "),
}

#: bad values, one line each (flow style, so every reader takes them): (value, message fragment)
BAD_VALUES = {
    "unsafe tag": ("!!python/object/apply:os.system ['touch PWNED']", "invalid YAML: could not determine a "
                                                                      "constructor for the tag"),
    "invalid": ("[1, 2", "invalid YAML"),
    "too deep": ("[" * 80 + "]" * 80, "nested deeper than 64 levels"),
    "alias bomb": ("[&a [0,0,0,0,0,0,0,0,0,0], &b [" + ",".join(["*a"] * 10) + "], &c [" + ",".join(["*b"] * 10)
                   + "], &d [" + ",".join(["*c"] * 10) + "], &e [" + ",".join(["*d"] * 10) + "], &f ["
                   + ",".join(["*e"] * 10) + "]]", "expands to more than 1000000 values"),
}


def _run_reader(capsys, reader: str, value: str) -> tuple[int, str]:
    code, _, err = savi(capsys, *READERS[reader][0](value))
    return code, err


@pytest.mark.parametrize("case", BAD_VALUES)
@pytest.mark.parametrize("reader", READERS)
def test_every_reader_refuses_every_bad_document_as_a_configuration_error(reader, case, capsys, tmp_path):
    value, fragment = BAD_VALUES[case]
    before = {p.name for p in tmp_path.rglob("*")}
    code, err = _run_reader(capsys, reader, value)
    assert code == 2, (reader, case, err)
    line = assert_one_line_error(err, READERS[reader][1], fragment)
    assert len(line) < 400, line
    assert not Path("PWNED").exists(), "a YAML tag ran a command"
    written = {p.name for p in tmp_path.rglob("*")} - before - {"r.yaml", "o.yaml", "p.yaml", "sub", "base.yaml"}
    assert written == set(), written

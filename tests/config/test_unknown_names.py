"""An unknown name (a recipe key at any depth, a record field) is refused by one rule,
:func:`savi_plugin.untrusted.unknown_name`: the line lists the known names of its section (the nearest first where
there are more than a line holds), and a name that reads as a known one (a look-alike letter of another script, a
character drawn as nothing) is shown escaped with the character that differs named, never as the known name."""

from __future__ import annotations

import dataclasses
import json

import pytest

from savi_plugin.cli import main
from savi_plugin.config.sections import Recipe
from savi_plugin.recipe import _section_class
from savi_plugin.training.config import PreferenceConfig

#: every section of a recipe with the keys it takes ("" is the top level)
SECTIONS = {"": [f.name for f in dataclasses.fields(Recipe) if f.init],
            "train": [f.name for f in dataclasses.fields(PreferenceConfig) if f.init],
            **{f.name: [g.name for g in dataclasses.fields(_section_class(f.name)) if g.init]
               for f in dataclasses.fields(Recipe) if _section_class(f.name) is not None}}


def _run(capsys, *argv) -> tuple[int, str]:
    """``savi ARGV`` in-process: the exit code and what it printed (a validate problem goes to stdout)."""
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.mark.parametrize("section", list(SECTIONS))
def test_a_misspelt_key_of_every_section_is_refused_naming_the_keys_meant(section, capsys):
    meant = max(SECTIONS[section], key=len)  # a long name: its misspelling is near it and no other
    typo = meant[:-1] + ("x" if meant[-1] != "x" else "y")
    at = f"{section}.{typo}" if section else typo
    code, err = _run(capsys, "recipes", "show", "tiny_demo", f"{at}=1")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{at}: unknown key (" in err and meant in err, err
    assert "the fields of" not in err  # no internal class named in place of the keys


#: a known name, and a spelling of it that reads the same: (the spelling, the escape a line shows for it)
LOOKALIKES = {"Cyrillic e": ("\u0435", "\\u0435", "U+0435 CYRILLIC SMALL LETTER IE"),
              "zero-width space": ("\u200b", "\\u200b", "U+200B (ZERO WIDTH SPACE)")}


def _recipe_top(tmp_path, capsys, spell):
    (tmp_path / "r.yaml").write_text(f"extends: tiny_demo\n{spell('description')}: x\n", encoding="utf-8")
    return _run(capsys, "recipes", "show", str(tmp_path / "r.yaml")), "description"


def _recipe_nested(tmp_path, capsys, spell):
    (tmp_path / "r.yaml").write_text(f"extends: tiny_demo\ntrain:\n  {spell('beta')}: 0.2\n", encoding="utf-8")
    return _run(capsys, "recipes", "show", str(tmp_path / "r.yaml")), "beta"


def _override(tmp_path, capsys, spell):
    return _run(capsys, "recipes", "show", "tiny_demo", f"model.{spell('backend')}=auto"), "backend"


def _pair_field(tmp_path, capsys, spell):
    (tmp_path / "v.mp4").write_bytes(b"")
    record = {"id": "p", spell("video"): "v.mp4", "question": "q?", "chosen": "a cat", "rejected": "a dog"}
    (tmp_path / "p.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8")
    return _run(capsys, "data", "validate", str(tmp_path / "p.jsonl")), "video"


ENTRY_POINTS = {"recipe key": _recipe_top, "nested recipe key": _recipe_nested, "KEY=VALUE override": _override,
                "pair file field": _pair_field}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("kind", list(LOOKALIKES))
def test_a_name_that_reads_as_a_known_one_is_shown_escaped_with_the_character_named(entry, kind, tmp_path, capsys):
    raw, escaped, named = LOOKALIKES[kind]

    def spell(name):  # the name with its first 'e' (or, with no 'e', its second letter) written otherwise
        at = name.index("e") + (raw == "\u200b") if "e" in name else 1
        return name[:at] + raw + name[at + (raw != "\u200b"):]

    (code, err), meant = ENTRY_POINTS[entry](tmp_path, capsys, spell)
    assert code == (1 if entry == "pair file field" else 2), err
    line = next(line for line in err.splitlines() if "unknown" in line)
    named_at, reason = line.split(": unknown ", 1)  # the name as the line shows it, then why it is refused
    assert raw not in named_at and escaped in named_at, line
    assert f"reads as {meant!r} but is not it" in reason and named in reason and f"write {meant!r}" in reason, line


@pytest.mark.parametrize("key, spelt, meant, escaped, named", [
    ("train.loss_type", "rr\u0440o", "rrpo", "\\u0440", "U+0440 CYRILLIC SMALL LETTER ER"),
    ("train.loss_type", "rr\u200bpo", "rrpo", "\\u200b", "U+200B (ZERO WIDTH SPACE)"),
    ("train.lr_scheduler_type", "cosin\u0435", "cosine", "\\u0435", "U+0435 CYRILLIC SMALL LETTER IE"),
])
def test_a_choice_that_reads_as_a_known_one_is_shown_escaped_with_the_character_named(key, spelt, meant, escaped,
                                                                                      named, capsys):
    code, err = _run(capsys, "recipes", "show", "tiny_demo", f"{key}={spelt}")
    reason = err.split(f"{key}: unknown ", 1)[1]
    assert code == 2 and spelt not in reason and escaped in reason, err
    assert f"reads as {meant!r} but is not it" in reason and named in reason, err

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


def _choice_arguments():
    """Every (sub-command words, flag, a choice) of the CLI: each option that takes one of listed choices, and each
    sub-command name (as the choice of its parent's COMMAND)."""
    import argparse

    from savi_plugin.cli import build_parser

    found = []

    def walk(parser, words):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    if any(ch in "aeopc" for ch in name):  # a letter with a Cyrillic twin (_lookalike)
                        found.append((words, None, name))
                    walk(sub, [*words, name])
            elif action.choices and action.option_strings:
                choice = next((c for c in action.choices if isinstance(c, str) and any(ch in "aeopc" for ch in c)),
                              None)
                if choice is not None:
                    found.append((words, action.option_strings[-1], choice))

    walk(build_parser(), [])
    return found


def _lookalike(text: str) -> str:
    """``text`` with its first Latin letter that has a Cyrillic twin replaced by that twin."""
    twins = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441"}
    at = next(i for i, ch in enumerate(text) if ch in twins)
    return text[:at] + twins[text[at]] + text[at + 1:]


@pytest.mark.parametrize("words, flag, choice", _choice_arguments(),
                         ids=[" ".join([*w, f or "COMMAND", c]) for w, f, c in _choice_arguments()])
def test_a_look_alike_of_every_choice_and_sub_command_is_named_as_such(words, flag, choice, capsys):
    """``--to rr\\u0440o`` was argparse's ``invalid choice: 'rrрo' (choose from ..., 'rrpo', ...)``, a line that
    reads as refusing a valid choice: every choice and sub-command name goes through the one unknown-name rule."""
    typed = _lookalike(choice)
    argv = [*words, flag, typed] if flag else [*words, typed]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(err) == 1, err
    assert f"it reads as {choice!r} but is not it" in err[0] and typed not in err[0], err


#: a spelling of the recipe key ``train`` that reads as it, and what the refusal must say is the difference
DIFFERENCES = {"full-width": ("\uff54rain", ("its character 1, '\\uff54' (U+FF54 FULLWIDTH LATIN SMALL LETTER T), "
                                             "is the full-width form of 't'")),
               "trailing space": ("train ", "it ends with white space, ' ' (U+0020 SPACE)"),
               "leading space": (" train", "it starts with white space"),
               "Cyrillic a": ("tr\u0430in", ("its character 3, '\\u0430' (U+0430 CYRILLIC SMALL LETTER A), is a "
                                             "look-alike of 'a'")),
               "zero-width space": ("tr\u200bain", "its character 3 is U+200B (ZERO WIDTH SPACE), drawn as nothing"),
               "case": ("Train", "its case differs")}


@pytest.mark.parametrize("kind, where", [(kind, where) for kind in DIFFERENCES for where in ("recipe", "override")
                                         # an override's key is read with the spaces around it removed
                                         if (kind, where) != ("leading space", "override")])
def test_a_key_that_reads_as_a_known_one_is_told_its_real_difference(kind, where, tmp_path, capsys):
    """Pass 25 R3 #31: ``\\uff54rain`` (full-width t) and ``"train "`` were explained as a case difference: the
    refusal names what differs -- white space at an end, or the character (by position) that is a full-width form,
    a look-alike or drawn as nothing -- and shows the key escaped, never as the key it reads as."""
    spelt, said = DIFFERENCES[kind]
    if where == "recipe":
        (tmp_path / "r.yaml").write_text(f'extends: tiny_demo\n"{spelt}":\n  beta: 0.2\n', encoding="utf-8")
        code, err = _run(capsys, "recipes", "show", str(tmp_path / "r.yaml"))
    else:
        code, err = _run(capsys, "recipes", "show", "tiny_demo", f"{spelt}.beta=0.2")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "it reads as 'train' but is not it (" + said in err and "write 'train'" in err, err
    assert (kind == "case") == ("case" in err), err
    assert spelt.isascii() or spelt not in err, err  # shown escaped

"""Every error at a recipe key path names the source that set the value -- the file, the file it extends, or the
override -- whether the check runs at load or after the merge (``savi align``'s task names)."""

import pytest

from savi_plugin.config.origins import KeySources, set_origin
from tests.misuse.misuse_kit import assert_one_line_error, savi


def test_set_origin_follows_the_merge_rule():
    origins: dict[str, str] = {}
    set_origin(origins, "", {"train": {"beta": 0.1, "alpha": 0.01}, "eval": {"tasks": ["a"]}}, "base.yaml")
    set_origin(origins, "", {"train": {"beta": 0.2}}, "r.yaml")  # a mapping merges key by key
    set_origin(origins, "eval", None, "override 'eval=null'")  # anything else replaces the subtree
    source = KeySources("r.yaml", origins)
    assert source.origin_of("train.beta") == "r.yaml"
    assert source.origin_of("train.alpha") == "base.yaml"
    assert source.origin_of("eval.tasks[0]") == "override 'eval=null'"
    assert source.origin_of("train.loss_options.gamma") == "r.yaml"  # not set anywhere, under a section
    assert source.origin_of("model.path") == "r.yaml" and source.origin_of("") == "r.yaml"
    assert str(source) == "r.yaml" and isinstance(source, str)


#: (key path, a bad value as YAML, what the message says, the command that finds it: a check at load, or one of
#: `savi align`'s after the merge)
BAD = [
    ("eval.tasks", "[SAVI_MVBENCH]", "eval.tasks[0]: unknown lmms-eval task 'SAVI_MVBENCH'", "align"),
    ("eval.tasks", "[]", "eval.tasks: empty", "show"),
    ("train.beta", "-0.0", "train.beta: must be > 0", "show"),
    ("train.deepspeed", "nothere.json", "train.deepspeed: deepspeed config not found", "show"),
    ("model.num_frames", "0", "model.num_frames: must be >= 1", "show"),
    ("generate.options.num_perturbations", "-1", "generate.options.num_perturbations", "show"),
]


def _block(key: str, value: str) -> str:
    *parents, last = key.split(".")
    return "\n".join([f"{'  ' * i}{p}:" for i, p in enumerate(parents)] + [f"{'  ' * len(parents)}{last}: {value}"])


@pytest.mark.parametrize("where", ["override", "recipe", "base"])
@pytest.mark.parametrize("key, value, message, command", BAD, ids=[b[0] + "=" + b[1] for b in BAD])
def test_an_error_names_the_source_that_set_the_value(key, value, message, command, where, tmp_path,
                                                      monkeypatch, capsys):
    """``savi align tiny_demo 'eval.tasks=[SAVI_MVBENCH]'`` blamed the shipped tiny_demo.yaml (red team 5): every
    check, at load or later, names the override, the recipe or the base recipe that set the value."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.yaml").write_text("extends: tiny_demo\n" + (_block(key, value) if where == "base" else ""))
    (tmp_path / "r.yaml").write_text("extends: base.yaml\n" + (_block(key, value) if where == "recipe" else ""))
    overrides = [f"{key}={value}"] if where == "override" else []
    argv = (["align", "r.yaml", *overrides, "--dry-run", "--out", "al"] if command == "align"
            else ["recipes", "show", "r.yaml", *overrides])
    code, _, err = savi(capsys, *argv)
    assert code == 2
    line = assert_one_line_error(err, message)
    if where == "override":
        assert line.startswith(f"error: override '{key}={value}': "), line
    else:  # the file (as the recipe was named, or its base as found beside it)
        assert line.removeprefix("error: ").split(": ")[0].endswith(f"{'r' if where == 'recipe' else 'base'}.yaml")


@pytest.mark.parametrize("where", ["override", "recipe"])
def test_an_empty_task_list_is_refused_unless_evaluation_is_off(where, tmp_path, monkeypatch, capsys):
    """``eval.tasks=[]`` passed the dry run and the real run failed after generate, train and merge (red team 5):
    refused at load, exit 2; with ``align.eval_every_iteration: false`` (evaluation off) it is allowed."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text("extends: tiny_demo\n" + ("eval:\n  tasks: []\n" if where == "recipe" else ""))
    tasks = ["eval.tasks=[]"] if where == "override" else []
    code, _, err = savi(capsys, "align", "r.yaml", *tasks, "--dry-run", "--out", "al")
    assert code == 2
    assert_one_line_error(err, "eval.tasks: empty", "override 'eval.tasks=[]'" if where == "override" else "r.yaml")
    code, out, err = savi(capsys, "align", "r.yaml", *tasks, "align.eval_every_iteration=false", "--dry-run",
                          "--out", "al")
    assert code == 0, err
    assert "eval: off (align.eval_every_iteration: false)" in out


#: the commands that take recipe overrides, each as a dry run (nothing loaded, nothing written)
OVERRIDE_COMMANDS = [["recipes", "show", "tiny_demo"], ["train", "tiny_demo", "--dry-run"],
                     ["align", "tiny_demo", "--dry-run", "--out", "al"],
                     ["ablate", "tiny_demo", "--dry-run", "--out", "ab"], ["demo", "--out", "dm"]]


@pytest.mark.parametrize("key", ["train..beta", ".train.beta", "train.beta.", "train. .beta", "model..path",
                                 "demo..seeds", "generate.options..max_new_tokens"])
@pytest.mark.parametrize("argv", OVERRIDE_COMMANDS, ids=[a[0] for a in OVERRIDE_COMMANDS])
def test_an_override_key_with_an_empty_name_is_the_overrides_error(argv, key, tmp_path, monkeypatch, capsys):
    """``train..beta=1`` set a key named '' in ``train`` and the error blamed the shipped tiny_demo.yaml for it
    (pass 23 D #21): a key path with an empty name is refused as the override's, before its value is read."""
    monkeypatch.chdir(tmp_path)
    code, _, err = savi(capsys, *argv, f"{key}=1")
    assert code == 2, err
    line = assert_one_line_error(err, f"override '{key}=1': ", "empty name in its path")
    assert "tiny_demo.yaml" not in line
    assert list(tmp_path.iterdir()) == []


#: overrides whose value is wrong, each refused at a key path that the override set (``reference_model.path=x``
#: makes the name ``reference_model`` a mapping: the error is at ``reference_model``, above the key typed)
BAD_OVERRIDES = ["reference_model.path=x", "model.path=./nope", "train.beta=abc"]


@pytest.mark.parametrize("typed", [*BAD_OVERRIDES, *(f"dpo:{o}" for o in BAD_OVERRIDES)])
def test_an_overrides_error_quotes_it_as_typed(typed, tmp_path, monkeypatch, capsys):
    """Pass 25 R3 #25, #29, #30: ``reference_model.path=x`` was blamed on the shipped tiny_demo.yaml, and a
    per-loss ``dpo:model.path=./nope`` was quoted without its ``dpo:``: the error names the override exactly as
    the user typed it, for every run (``savi ablate``'s) or for one loss's."""
    monkeypatch.chdir(tmp_path)
    code, _, err = savi(capsys, "ablate", "tiny_demo", "--losses", "dpo,rrpo", "--dry-run", "--out", "ab", typed)
    assert code == 2, err
    line = assert_one_line_error(err, f"error: override '{typed}': ")
    assert "tiny_demo.yaml" not in line

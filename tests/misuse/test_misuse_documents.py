"""Misuse, the YAML documents a user hands us, with GENERATED variants: every place a configuration document is
read (a recipe file, the recipe it ``extends``, a ``key=value`` override, ``savi generate``'s ``--options`` file
and ``--option`` value, a ``--prompts`` file, a prompt file a recipe names) x every bad document (an unsafe tag,
invalid YAML, too deep, an alias bomb, a key given twice) is run through ``savi_plugin.cli.main(argv)``: one
``error:`` line naming the source, exit status 2 (a configuration error, ``savi_plugin/errors.py``), nothing run
and nothing written.

The recipe-resolution cases (``extends`` through symlinks, an empty ``extends``, a bare name that names a shipped
recipe and a local file) and the bounded echo of a long override are here too: they are how a document is found
and named.
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
    "unsafe tag": ("!!python/object/apply:os.system ['touch PWNED']",
                   "invalid YAML: could not determine a constructor for the tag"),
    "invalid": ("[1, 2", "invalid YAML"),
    "key twice": ("{beta: 0.1, beta: 0.9}", "beta: key 'beta' appears twice in one mapping"),
    "too deep": ("[" * 80 + "]" * 80, "nested deeper than 64 levels"),
    "alias bomb": ("[&a [0,0,0,0,0,0,0,0,0,0], &b [" + ",".join(["*a"] * 10) + "], &c [" + ",".join(["*b"] * 10)
                   + "], &d [" + ",".join(["*c"] * 10) + "], &e [" + ",".join(["*d"] * 10) + "], &f ["
                   + ",".join(["*e"] * 10) + "]]", "expands to more than 1000000 values"),
    # pass 11, B #26: 6.9 MB of YAML under the node cap took 69 s and 1.38 GB to parse; refused from its length
    "too long": ("[" + "0," * 140_000 + "0]", "characters of YAML, above the cap of 262144 on one configuration"),
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


#: YAML 1.1 numbers that YAML 1.2 and a reader take as another number or as text: (text, YAML 1.1's value, kind)
YAML11_NUMBERS = [("010", "8", "octal"), ("-010", "-8", "octal"), ("1:30", "90", "sexagesimal (base 60)"),
                  ("190:20:30.15", "685230.15", "sexagesimal (base 60)"), ("0b11", "3", "binary")]

#: where a user writes a number: name -> (argv that gives VALUE there, the ``source: key.path`` its error names)
NUMBER_READERS = {
    "override": (lambda v: ["recipes", "show", "tiny_demo", f"train.beta={v}"], "override 'train.beta={v}': train.beta"),
    "--option (-o)": (lambda v: [*GENERATE, "-o", f"temperature={v}"], "--option temperature"),
    "recipe file": (lambda v: ["recipes", "show", _file("r.yaml", f"extends: tiny_demo\ntrain:\n  seed: {v}\n")],
                    "r.yaml:3: train.seed"),
    "extended recipe": (lambda v: [*_extended_recipe(f"{{loss_options: {{alpha: [{v}]}}}}")[:2], "r.yaml"],
                        "base.yaml:2: train.loss_options.alpha[0]"),
    "--options file": (lambda v: [*GENERATE, "--options", _file("o.yaml", f"max_new_tokens: 8\ntemperature: {v}\n")],
                       "o.yaml:2: temperature"),
}


@pytest.mark.parametrize("text, value, kind", YAML11_NUMBERS, ids=[n[0] for n in YAML11_NUMBERS])
@pytest.mark.parametrize("reader", NUMBER_READERS)
def test_a_yaml11_only_number_is_refused_where_it_is_written(reader, text, value, kind, capsys):
    """``train.beta=010`` was 8.0 and ``1:30`` was 90 (PyYAML reads YAML 1.1), with no word: refused in one line
    naming the source and key path, YAML 1.1's value and how to write it."""
    argv, where = NUMBER_READERS[reader]
    code, out, err = savi(capsys, *argv(text))
    assert code == 2, (reader, text, out[-300:], err)
    other = f"the text {text!r}" if kind != "octal" else text.replace("0", "", 1)
    assert_one_line_error(err, f"{where.format(v=text)}: {text!r} is a YAML 1.1 {kind} number ({value}), "
                               f"which other YAML readers take as {other}: write {value}")


@pytest.mark.parametrize("given", ["override", "recipe file"])
@pytest.mark.parametrize("text, beta", [("10", 10.0), ("1.5", 1.5), ("1e-4", 1e-4), ("100", 100.0), ("0x10", 16.0),
                                        ("'010'", None), ("'1:30'", None), ("007", 7.0)])
def test_ordinary_numbers_and_quoted_ones_are_read_as_written(text, beta, given, capsys):
    """Decimal and hexadecimal numbers (one value in YAML 1.1 and 1.2) and an octal of the same value both ways
    load; a quoted ``'010'`` or ``'1:30'`` is text, refused by the value's type (pass 21 D #3: a quoted number is
    never widened into one)."""
    import yaml

    argv = (["tiny_demo", f"train.beta={text}"] if given == "override"
            else [_file("r.yaml", f"extends: tiny_demo\ntrain:\n  beta: {text}\n")])
    code, out, err = savi(capsys, "recipes", "show", *argv)
    if beta is None:
        assert code == 2 and "YAML 1.1" not in err, err
        return
    assert code == 0, err
    assert yaml.safe_load(out)["train"]["beta"] == beta


#: block-style documents with a key given twice, for the readers of files: (reader, files to write, argv,
#: ``file:line: key.path`` the error names)
DUPLICATE_FILES = [
    ("recipe: two train sections", {"r.yaml": "extends: tiny_demo\ntrain:\n  beta: 0.1\nlora:\n  r: 4\n"
                                              "train:\n  learning_rate: 0.001\n"},
     ["recipes", "show", "r.yaml"], "r.yaml:6: train: key 'train' appears twice in one mapping (lines 2 and 6)"),
    ("recipe: nested block", {"r.yaml": "extends: tiny_demo\ntrain:\n  loss_options:\n    alpha: 0.1\n"
                                        "    alpha: 0.2\n"},
     ["train", "r.yaml", "--dry-run"], "r.yaml:5: train.loss_options.alpha: key 'alpha'"),
    ("recipe: quoted and plain", {"r.yaml": "extends: tiny_demo\ntrain:\n  beta: 0.1\n  'beta': 0.9\n"},
     ["recipes", "show", "r.yaml"], "r.yaml:4: train.beta: key 'beta'"),
    ("extended recipe", {"sub/base.yaml": "extends: tiny_demo\neval:\n  tasks: [a]\n  tasks: [b]\n",
                         "r.yaml": "extends: sub/base.yaml\n"},
     ["align", "r.yaml", "--dry-run"], "base.yaml:4: eval.tasks: key 'tasks'"),
    ("--options file", {"o.yaml": "temperature: 0.5\nmax_new_tokens: 8\ntemperature: 0.7\n"},
     [*GENERATE, "--options", "o.yaml"], "o.yaml:3: temperature: key 'temperature'"),
    ("--prompts file", {"p.yaml": "open_question: 'Q: {question}'\nopen_question: '{question}?'\n"},
     [*GENERATE, "--prompts", "p.yaml"], "--prompts: p.yaml:2: open_question: key 'open_question'"),
    ("recipe's prompt file", {"p.yaml": "version: v9\nversion: v10\n",
                              "r.yaml": "extends: tiny_demo\ngenerate:\n  options:\n    prompts: p.yaml\n"},
     ["train", "r.yaml", "--dry-run"], "p.yaml:2: version: key 'version'"),
    ("recipe's DeepSpeed JSON", {"ds.json": '{"train_batch_size": 2, "train_batch_size": 4}',
                                 "r.yaml": "extends: tiny_demo\ntrain:\n  deepspeed: ds.json\n"},
     ["train", "r.yaml", "--dry-run"], "train.deepspeed: "),
]


@pytest.mark.parametrize("files, argv, fragment", [c[1:] for c in DUPLICATE_FILES], ids=[c[0] for c in DUPLICATE_FILES])
def test_a_key_given_twice_in_a_block_mapping_names_file_line_and_key_path(files, argv, fragment, capsys):
    for name, text in files.items():
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text(text)
    code, out, err = savi(capsys, *argv)
    assert code == 2, (argv, out[-200:], err)
    assert_one_line_error(err, fragment, "appears twice in one")


def test_a_merge_key_overrides_without_being_a_duplicate(capsys):
    """``<<: *base`` brings keys in that the mapping's own keys override (YAML's merge rule): the one legitimate
    way for a key to be set twice; repeating ``<<`` itself is refused like any key."""
    Path("r.yaml").write_text("extends: tiny_demo\nnotes: &base {beta: 0.3, alpha: 0.02}\n"
                              "train: {<<: *base, beta: 0.4}\n".replace("notes: &base", "x-base: &base"))
    code, out, err = savi(capsys, "recipes", "show", "r.yaml")
    assert code == 2 and "x-base: unknown key" in err  # the anchor's holder is an ordinary (unknown) key
    Path("r.yaml").write_text("extends: tiny_demo\ntrain: {<<: {beta: 0.3, alpha: 0.02}, beta: 0.4}\n")
    code, out, err = savi(capsys, "recipes", "show", "r.yaml")
    assert code == 0, err
    assert "  beta: 0.4\n" in out and "  alpha: 0.02\n" in out
    Path("r.yaml").write_text("extends: tiny_demo\ntrain: {<<: {beta: 0.3}, <<: {alpha: 0.02}}\n")
    code, _, err = savi(capsys, "recipes", "show", "r.yaml")
    assert code == 2
    assert_one_line_error(err, "r.yaml:2: train.<<: key '<<' appears twice")


# ------------------------------------------------------------------------------------------------ finding a recipe
#: how a recipe file is named on the command line: name -> (make the name in the working folder, which holds
#: ``sub/d.yaml``)
def _reach(how: str) -> str:
    if how == "file link":
        Path("link.yaml").symlink_to("sub/d.yaml")
        return "link.yaml"
    if how == "absolute file link":
        Path("link.yaml").symlink_to(Path("sub/d.yaml").resolve())
        return "link.yaml"
    if how == "link to a link":
        Path("link.yaml").symlink_to("sub/d.yaml")
        Path("link2.yaml").symlink_to("link.yaml")
        return "link2.yaml"
    if how == "folder link":
        Path("lnk").symlink_to("sub")
        return "lnk/d.yaml"
    return {"direct": "sub/d.yaml", "./": "./sub/d.yaml", "..": "sub/../sub/d.yaml",
            "absolute": str(Path("sub/d.yaml").resolve())}[how]


REACH = ["direct", "./", "..", "absolute", "file link", "absolute file link", "link to a link", "folder link"]


@pytest.mark.parametrize("bases", ["both", "real folder only", "link's folder only"])
@pytest.mark.parametrize("how", REACH)
def test_a_recipe_resolves_extends_and_paths_in_its_own_folder_however_it_is_reached(how, bases, capsys):
    """One rule for every relative path inside a recipe (``extends:`` and path values alike): the folder of the
    recipe file after symlinks are resolved; no other folder is looked in."""
    import yaml

    Path("sub").mkdir()
    Path("sub/d.yaml").write_text("extends: base.yaml\ndata:\n  pairs: p.jsonl\n")
    if bases in ("both", "link's folder only"):
        Path("base.yaml").write_text("extends: tiny_demo\ntrain: {beta: 0.222}\n")
    if bases in ("both", "real folder only"):
        Path("sub/base.yaml").write_text("extends: tiny_demo\ntrain: {beta: 0.333}\n")
    name = _reach(how)
    code, out, err = savi(capsys, "recipes", "show", name)
    if bases == "link's folder only":
        assert code == 2
        assert_one_line_error(err, f"{Path(name)}: extends: 'base.yaml': no such recipe file (looked in "
                                   f"{Path('sub').resolve()}, the recipe's own folder)")
        return
    assert code == 0, err
    shown = yaml.safe_load(out)
    assert shown["train"]["beta"] == 0.333
    assert shown["data"]["pairs"] == str(Path("sub/p.jsonl").resolve())


@pytest.mark.parametrize("value, fragment", [
    ('""', "expected a recipe name or path, got ''"), ("'  '", "expected a recipe name or path, got '  '"),
    ("[a]", "expected a recipe name or path, got ['a']"), ("{a: 1}", "expected a recipe name or path"),
    ("7", "expected a recipe name or path, got 7"), ("nope.yaml", "'nope.yaml': no such recipe file"),
    ("nope", "'nope': no such recipe file or shipped recipe"), ("./sub", "'./sub': is a directory, not a recipe file"),
])
def test_a_bad_extends_names_the_file_and_the_key(value, fragment, capsys):
    Path("sub").mkdir()
    Path("f.yaml").write_text(f"extends: {value}\n")
    code, _, err = savi(capsys, "recipes", "show", "f.yaml")
    assert code == 2
    line = assert_one_line_error(err, fragment)
    assert line.startswith("error: f.yaml: extends: "), line


@pytest.mark.parametrize("shipped", [True, False], ids=["shipped name", "other name"])
@pytest.mark.parametrize("suffix", ["", ".yaml", ".yml"], ids=["NAME", "NAME.yaml", "NAME.yml"])
@pytest.mark.parametrize("named", ["command line", "extends"])
def test_a_bare_name_that_names_a_shipped_recipe_and_a_local_file_is_refused_as_ambiguous(named, suffix, shipped,
                                                                                         capsys):
    """One rule for a bare name, on the command line and in ``extends:`` alike: it names a shipped recipe, unless
    the folder it is looked up from (the working folder; the extending recipe's folder) holds ``NAME``,
    ``NAME.yaml`` or ``NAME.yml`` too -- then it is ambiguous and refused in one line naming the file and how to
    write it. The file's path picks the file. A name that is no shipped recipe names the file as written only."""
    import yaml

    name = "tiny_demo" if shipped else "my_recipe"
    folder = Path("proj") if named == "extends" else Path(".")
    folder.mkdir(exist_ok=True)
    (folder / f"{name}{suffix}").write_text("extends: tiny_demo\ntrain: {beta: 0.777}\n")
    if named == "extends":
        Path("proj/r.yaml").write_text(f"extends: {name}\n")
    argv = ["recipes", "show", "proj/r.yaml" if named == "extends" else name]
    code, out, err = savi(capsys, *argv)
    if not shipped and suffix == "":  # the file as written, the one thing the name can mean
        assert code == 0, err
        assert yaml.safe_load(out)["train"]["beta"] == 0.777
        return
    assert code == 2, out[-300:]
    if not shipped:
        line = assert_one_line_error(err, f"no such recipe file or shipped recipe (./{name}{suffix} is there: give its path)")
    elif named == "command line":
        line = assert_one_line_error(err, f"error: {name}: is ambiguous: it names a shipped recipe, and also the "
                                          f"file ./{name}{suffix} here; write ./{name}{suffix} for that file")
    else:
        line = assert_one_line_error(err, f"error: proj/r.yaml: extends: '{name}': is ambiguous: it names a shipped "
                                          f"recipe, and also the file {name}{suffix} beside this recipe (in "
                                          f"{folder.resolve()}); write 'extends: ./{name}{suffix}' for that file")
    assert len(line) < 400, line
    if not shipped:
        return
    # the spelling the message gives picks the file
    if named == "extends":
        Path("proj/r.yaml").write_text(f"extends: ./{name}{suffix}\n")
    else:
        argv = ["recipes", "show", f"./{name}{suffix}"]
    code, out, err = savi(capsys, *argv)
    assert code == 0, err
    assert yaml.safe_load(out)["train"]["beta"] == 0.777
    # and with the file renamed, the bare name is the shipped recipe again
    (folder / f"{name}{suffix}").rename(folder / "mine.yaml")
    if named == "extends":
        Path("proj/r.yaml").write_text(f"extends: {name}\n")
    argv[-1] = "proj/r.yaml" if named == "extends" else name
    code, out, err = savi(capsys, *argv)
    assert code == 0, err
    assert yaml.safe_load(out)["train"]["beta"] == 0.1


@pytest.mark.parametrize("recipe", [None, "tiny_demo", "./tiny_demo.yaml"])
def test_savi_demo_without_recipe_is_the_shipped_one_whatever_the_working_folder_holds(recipe, capsys, monkeypatch):
    """``savi demo`` with no ``--recipe`` names no recipe, so a ``tiny_demo.yaml`` the user copied here makes
    nothing ambiguous: the shipped file is used. ``--recipe tiny_demo`` typed there is ambiguous like any name."""
    from savi_plugin.demo import run
    from savi_plugin.recipe import resolve_recipe_path, shipped_recipes_dir

    Path("tiny_demo.yaml").write_text("extends: tiny_demo\n")
    used = []  # the recipe file the demo would read (run_demo resolves its recipe first)
    monkeypatch.setattr(run, "run_demo", lambda out, recipe, overrides: used.append(resolve_recipe_path(recipe)) or {})
    monkeypatch.setattr("savi_plugin.demo.report.format_table", lambda results: "")
    code, _, err = savi(capsys, "demo", "--out", "d", *(["--recipe", recipe] if recipe else []))
    if recipe == "tiny_demo":
        assert code == 2 and used == []
        assert_one_line_error(err, "error: tiny_demo: is ambiguous: it names a shipped recipe, and also the file "
                                   "./tiny_demo.yaml here")
        return
    assert code == 0, err
    assert used == [Path(recipe) if recipe else shipped_recipes_dir() / "tiny_demo.yaml"]


@pytest.mark.parametrize("where", ["a folder of the name", "the file extends the shipped recipe of its name"])
def test_a_bare_name_is_not_ambiguous_with_what_cannot_be_its_file(where, capsys):
    """A folder ``tiny_demo/`` (a run's output, say) is no recipe, and ``tiny_demo.yaml`` with ``extends:
    tiny_demo`` cannot extend itself: the bare name stays the shipped recipe."""
    import yaml

    if where == "a folder of the name":
        Path("tiny_demo").mkdir()
        argv = ["recipes", "show", "tiny_demo"]
    else:
        Path("proj").mkdir()
        Path("proj/tiny_demo.yaml").write_text("extends: tiny_demo\ntrain: {beta: 0.777}\n")
        argv = ["recipes", "show", "proj/tiny_demo.yaml"]
    code, out, err = savi(capsys, *argv)
    assert code == 0, err
    assert yaml.safe_load(out)["train"]["beta"] == (0.1 if where == "a folder of the name" else 0.777)


# ------------------------------------------------------------------------------------------------ long values
def _alias_list(width: int = 100, rows: int = 90) -> str:
    """A flow list of ``width * width * rows`` zeros through aliases (~910 000 at the defaults: under the node
    cap), 30 kB of text."""
    first = "[" + ",".join(["0"] * width) + "]"
    return f"[&f {first},&e [{','.join(['*f'] * width)}],&d [{','.join(['*e'] * rows)}]]"


LONG_VALUES = {"alias-expanded list": _alias_list(), "long string": "x" * 200_000,
               "long integer": "9" * 4000, "long flow mapping": "{" + ", ".join(f"k{i}: {i}" for i in range(5000)) + "}"}

#: where a long value is given: name -> (argv for KEY=VALUE, a known key whose type it does not fit, an unknown key)
LONG_READERS = {
    "override": (lambda kv: ["recipes", "show", "tiny_demo", kv], "train.beta", "notess"),
    "nested override": (lambda kv: ["recipes", "show", "tiny_demo", kv], "model.num_frames", "model.num_frame"),
    "align override": (lambda kv: ["align", "tiny_demo", "--dry-run", kv], "eval.limit", "eval.limt"),
    "--option": (lambda kv: [*GENERATE, "--option", kv], "temperature", "temprature"),
}


@pytest.mark.parametrize("known", [True, False], ids=["wrong type", "unknown key"])
@pytest.mark.parametrize("value", LONG_VALUES)
@pytest.mark.parametrize("reader", LONG_READERS)
def test_a_long_value_is_refused_with_its_reason_and_a_short_echo(reader, value, known, capsys):
    """The key path and the reason are on the line, the echoed value is cut: the line stays short whatever the
    value's size (B#40: the reason was cut off after a 500-character echo)."""
    import time

    make, good, bad = LONG_READERS[reader]
    key = good if known else bad
    start = time.perf_counter()
    code, _, err = savi(capsys, *make(f"{key}={LONG_VALUES[value]}"))
    assert code == 2, err
    line = assert_one_line_error(err, f"{key}: ")
    reason = line.split(f"{key}: ", 1)[1]
    assert reason.startswith(("expected", "must be") if known else "unknown "), line
    assert len(line) < 400, line
    assert time.perf_counter() - start < 60  # a runaway parse takes minutes; a loaded 2-core machine takes ~10 s


def test_the_red_team_override_shows_its_reason(capsys):
    """B#40 as reported: ``notes`` set to ~910 000 values through aliases."""
    code, _, err = savi(capsys, "align", "tiny_demo", "--dry-run", f"notes={_alias_list()}")
    assert code == 2
    line = assert_one_line_error(err, "override 'notes=[&f [0,0,0", "': notes: expected str, got list ([[0, 0, ")
    assert len(line) < 300, line


def test_an_override_of_an_unknown_key_is_refused_before_its_value_is_read(capsys, monkeypatch):
    from savi_plugin import recipe

    read = []
    real = recipe.load_yaml
    monkeypatch.setattr(recipe, "load_yaml", lambda text, *a, **k: read.append(text) or real(text, *a, **k))
    code, _, err = savi(capsys, "recipes", "show", "tiny_demo", f"notess={_alias_list()}")
    assert code == 2 and "notess: unknown key" in err
    code, _, err = savi(capsys, "recipes", "show", "tiny_demo", f"lora.rank={_alias_list()}")
    assert code == 2 and "lora.rank: unknown key" in err
    assert not any(_alias_list()[:50] in text for text in read)
    code, _, err = savi(capsys, "recipes", "show", "tiny_demo", "notes=[1]")  # a known key's value is read
    assert code == 2 and "notes: expected str, got list ([1])" in err


# ------------------------------------------------------------------------------------------------ perturbations
#: bad perturbation pipelines: (YAML value, whether --perturb can carry it, what the message says)
BAD_PERTURBATIONS = {
    "alias-expanded lists": ("[&b [0,0,0,0,0,0,0,0,0,0], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]]", False,
                             "element [0]: expected a perturbation name or a mapping with a 'name'"),
    "a mapping": ("{name: occlude}", False, "expected a list of perturbations"),
    "no name": ("[{fraction: 1}]", False, "element [0]: expected a perturbation name or a mapping with a 'name'"),
    "a number": ("7", False, "expected a list of perturbations"),
    "parameter as the main value": ("occlude:size=huge", True, ("perturbation 'occlude': 'size=huge' sets a "
                                    "parameter; named parameters follow the fraction and ';' (e.g. occlude:1;")),
    "bad fraction": ("'mask:a-b'", True, "perturbation 'mask': fraction (the value after ':') must be a number"),
    "bad factor": ("blur:x", True, "perturbation 'blur': factor (the value after ':') must be an integer"),
    "bad parameter value": ("'occlude:1;size=huge'", True, "perturbation 'occlude': size must be one of"),
    "unknown parameter": ("'occlude:1;sise=frame'", True, "perturbation 'occlude' has no parameter 'sise'"),
    "a value where none is taken": ("shuffle:1", True, "perturbation 'shuffle' takes no value"),
    "unknown name": ("[flip]", False, "unknown perturbation 'flip'"),
}

#: where a pipeline is set: name -> (argv for a YAML value, the name the error gives it)
PERTURBATION_READERS = {
    "--perturb": (lambda v: [*GENERATE, "--perturb", v.strip("'")], "error: --perturb: "),
    "--option": (lambda v: [*GENERATE, "--option", f"perturbations={v}"], "error: --option perturbations: "),
    "--options file": (lambda v: [*GENERATE, "--options", _file("o.yaml", f"perturbations: {v}\n")],
                       "error: o.yaml: perturbations: "),
    "recipe override": (lambda v: ["recipes", "show", "tiny_demo", f"generate.options.perturbations={v}"],
                        ": generate.options.perturbations: "),
    "recipe file": (lambda v: ["train", _file("r.yaml", f"extends: tiny_demo\ngenerate:\n  options:\n"
                                                        f"    perturbations: {v}\n"), "--dry-run"],
                    "error: r.yaml: generate.options.perturbations: "),
}


PERTURBATION_CASES = [(reader, case) for reader in PERTURBATION_READERS for case, (_, as_flag, _) in
                      BAD_PERTURBATIONS.items() if as_flag or reader != "--perturb"]  # --perturb takes a string


@pytest.mark.parametrize("reader, case", PERTURBATION_CASES, ids=[f"{r}-{c}" for r, c in PERTURBATION_CASES])
def test_a_bad_perturbation_pipeline_names_the_option_as_given_and_what_it_takes(reader, case, capsys):
    """B#41/B#17: Python's ``dictionary update sequence element #0 ...`` or ``could not convert string to float``
    under a flag the user did not give; now the option as the user set it, the perturbation, the parameter."""
    value, _, fragment = BAD_PERTURBATIONS[case]
    make, named = PERTURBATION_READERS[reader]
    code, _, err = savi(capsys, *make(value))
    assert code == 2, err
    line = assert_one_line_error(err, named, fragment)
    for python in ("dictionary update", "could not convert", "invalid literal", "has length"):
        assert python not in line, line

"""Misuse, the input boundary, with GENERATED variants: every configuration number (each recipe section's fields,
every ``train`` key of ``PreferenceConfig``, every loss's ``Params``, every generator's options) and every numeric
``savi`` flag is tried with inf, nan, huge, negative, zero and wrong-type values through the real entry point,
``savi_plugin.cli.main(argv)``; the parser limits (nesting, YAML aliases), text checks (control tokens, Unicode
equality, duplicate options), environment variables and decoded-bytes budgets are tried the same way.

The keys and flags are enumerated from the code (dataclass fields, registered plugins, the argument parser), so a
new option is covered without editing this file.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time
import typing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from misuse_kit import assert_one_line_error, clip, qa_item, savi

from savi_plugin import cli, registry
from savi_plugin.config.values import MAX_NUMBER, field_rules

# ------------------------------------------------------------------------------------------------ shared, fast
_BUILD_PARSER = cli.build_parser  # the real one
_ENTRIES = registry.entries


@functools.cache
def _cached_entries(group: str):
    return dict(_ENTRIES(group))


@functools.cache
def _cached_parser():
    return _BUILD_PARSER()


@pytest.fixture(autouse=True)
def _fast_cli(monkeypatch):
    """One parser and one entry-point listing for the whole module (both are pure functions of the install)."""
    monkeypatch.setattr(registry, "entries", _cached_entries)
    monkeypatch.setattr(cli, "build_parser", _cached_parser)


def _numeric(annotation) -> str | None:
    """``int`` or ``float`` when the annotation admits that number (not bool), else None."""
    options = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, __import__(
        "types").UnionType) else (annotation,)
    if float in options:
        return "float"
    if int in options:
        return "int"
    return None


def _numeric_fields(cls) -> list[tuple[str, str, tuple]]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind = _numeric(hints.get(f.name))
        if f.init and kind:
            out.append((f.name, kind, field_rules(cls, f)))
    return out


def _config_keys() -> list[tuple[list[str], str, str, tuple]]:
    """(overrides that set the context, key path, number kind, rules) of every configuration number."""
    from savi_plugin.config.sections import Recipe
    from savi_plugin.training.arguments import config_class

    keys = []
    for section, cls in typing.get_type_hints(Recipe).items():
        if dataclasses.is_dataclass(cls):
            keys += [([], f"{section}.{name}", kind, rules) for name, kind, rules in _numeric_fields(cls)]
    keys += [([], f"train.{name}", kind, rules) for name, kind, rules in _numeric_fields(config_class())]
    for loss in registry.available(registry.LOSSES):
        params = registry.load(registry.LOSSES, loss).Params
        keys += [([f"train.loss_type={loss}"], f"train.loss_options.{name}", kind, rules)
                 for name, kind, rules in _numeric_fields(params)]
    for gen in registry.available(registry.GENERATORS):
        options = registry.load(registry.GENERATORS, gen).config_class
        keys += [([f"@{GENERATOR_RECIPES.get(gen, 'tiny_demo')}", f"generate.generator={gen}"],
                  f"generate.options.{name}", kind, rules) for name, kind, rules in _numeric_fields(options)]
    return keys


#: a shipped recipe whose generate.options suit each generator (tiny_demo's are rrpo's)
GENERATOR_RECIPES = {"videosavi": "llava_onevision_7b_videosavi"}

#: (YAML text of the value, Python value, always refused)
VARIANTS = [(".inf", float("inf"), True), (".nan", float("nan"), True), ("-.inf", float("-inf"), True),
            ("1e30", 1e30, True), (str(10**30), 10**30, True), ("abc", "abc", True), ("[1]", [1], True),
            ("1.0e-320", 1e-320, True),  # below float32's smallest normal: 0 where models compute (pass 21 D #14)
            ("-1", -1, False), ("0", 0, False)]

CONFIG_KEYS = _config_keys()


def _refused_by_rules(rules, value) -> bool:
    return any(rule.problem(value) for rule in rules)


def test_the_walk_finds_every_kind_of_configuration_number():
    paths = {key for _, key, _, _ in CONFIG_KEYS}
    for expected in ("model.num_frames", "generate.batch_size", "lora.r", "eval.limit", "align.iterations",
                     "train.learning_rate", "train.max_steps", "train.beta", "train.loss_options.alpha",
                     "train.loss_options.gamma", "generate.options.temperature", "generate.options.top_p"):
        assert expected in paths, expected
    assert len(CONFIG_KEYS) > 60


@pytest.mark.parametrize("context, key, kind, rules", CONFIG_KEYS, ids=[k[1] + "@" + ",".join(k[0])
                                                                        for k in CONFIG_KEYS])
def test_every_configuration_number_refuses_non_finite_huge_and_wrong_values(context, key, kind, rules, capsys):
    """inf, nan, huge and wrong-type values always; negative and zero where the key's rules say so: one line
    ``error: override '...': <key>: ...`` and exit 2, for every number of every section, loss and generator."""
    tried = 0
    for text, value, always in VARIANTS:
        if not always and not _refused_by_rules(rules, value):
            continue
        override = f"{key}={text}"
        recipe = next((c[1:] for c in context if c.startswith("@")), "tiny_demo")
        overrides = [c for c in context if not c.startswith("@")]
        code, out, err = savi(capsys, "recipes", "show", recipe, *overrides, override)
        assert code == 2, (override, out[-300:], err)
        line = assert_one_line_error(err)
        assert f"{key}: " in line, (override, line)
        tried += 1
    assert tried >= 7


def test_a_recipe_file_gets_the_same_rule_as_an_override(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("r.yaml").write_text("extends: tiny_demo\ntrain:\n  learning_rate: .inf\n  loss_options:\n    beta: 1e999\n")
    code, _, err = savi(capsys, "train", "r.yaml", "--dry-run")
    assert code == 2
    assert_one_line_error(err, "r.yaml: train.learning_rate: must be a finite number, got inf")


def test_huge_means_above_the_documented_ceiling():
    from savi_plugin.config.values import number_problem

    assert number_problem(MAX_NUMBER) is None and number_problem(MAX_NUMBER + 1)
    assert number_problem(float("inf")) == "must be a finite number, got inf"


# ------------------------------------------------------------------------------------------------ every numeric flag
def _numeric_flags() -> list[tuple[list[str], str]]:
    found = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, path + [name])
            elif action.option_strings and action.type is not None:
                name = getattr(action.type, "__name__", "")
                if action.type in (int, float) or name in ("int", "float") or "int" in name or "float" in name:
                    found.append((path, action.option_strings[-1]))

    walk(_BUILD_PARSER(), [])
    return found


NUMERIC_FLAGS = _numeric_flags()


def test_the_flag_walk_sees_every_command_with_numbers():
    commands = {" ".join(path) for path, _ in NUMERIC_FLAGS}
    assert {"generate", "align", "eval fixture", "convert llava-next", "bench decode", "bench trl"} <= commands


@pytest.mark.parametrize("path, flag", NUMERIC_FLAGS, ids=[" ".join(p) + " " + f for p, f in NUMERIC_FLAGS])
def test_every_numeric_flag_refuses_non_finite_huge_and_wrong_values(path, flag, tmp_path, capsys, monkeypatch):
    from savi_plugin.cli import main

    monkeypatch.chdir(tmp_path)
    # and numbers in digits other than ASCII, or with underscores, which int() and float() read (`٣` as 3)
    for value in ("inf", "nan", "-inf", "1e30", str(10**30), f"-{10**30}", "abc", "\u0663", "\uff11\uff10",
                  "\u0663.\u0665", "1_0", "9" * 5000):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            main([*path, f"{flag}={value}"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2, (flag, value, err)
        # one line (pass 15 A #62: argparse's ten-line usage block came before it)
        assert len(err.strip().splitlines()) == 1 and f"argument {flag}: " in err, (flag, value, err)
        assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def _fraction_flags() -> list[tuple[list[str], str]]:
    """Flags that take an ``i/n`` pair (``--shard``): found by their type's name, as the numeric walk finds
    numbers."""
    found = []

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, path + [name])
            elif action.option_strings and "shard" in getattr(action.type, "__name__", ""):
                found.append((path, action.option_strings[-1]))

    walk(_BUILD_PARSER(), [])
    return found


FRACTION_FLAGS = _fraction_flags()


def test_the_flag_walk_sees_the_shard_flag():
    assert (["generate"], "--shard") in FRACTION_FLAGS


@pytest.mark.parametrize("path, flag", FRACTION_FLAGS, ids=[" ".join(p) + " " + f for p, f in FRACTION_FLAGS])
def test_every_i_of_n_flag_refuses_out_of_range_huge_and_malformed_values(path, flag, tmp_path, capsys, monkeypatch):
    from savi_plugin.cli import main
    from savi_plugin.generators.runner import MAX_SHARDS

    monkeypatch.chdir(tmp_path)
    for value in ("0/0", "1/1", "-1/2", "2/2", f"0/{MAX_SHARDS + 1}", "0/4294967296", f"0/{10**30}",
                  f"{10**30}/{10**30 + 1}", "inf/nan", "1/2/3", "1.5/2", "0/1e3", "abc", "", "0/２"):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            main([*path, f"{flag}={value}"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2, (flag, value, err)
        # one line (pass 15 A #62: argparse's ten-line usage block came before it)
        assert len(err.strip().splitlines()) == 1 and f"argument {flag}: " in err, (flag, value, err)
        assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------ nesting and aliases
BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))


@pytest.mark.parametrize("document, fragment", [
    (BILLION_LAUGHS, "expands to more than 1000000 values"),
    ("train:\n  beta: " + "[" * 200 + "]" * 200 + "\n", "nested deeper than 64 levels"),
    ("x: &x 1\n" + "".join(f"k{i}: *x\n" for i in range(300)), "more than 256 YAML aliases"),
    ("train: !!python/object/apply:os.system ['true']\n", "invalid YAML"),
])
def test_recipe_documents_beyond_the_limits_are_one_line(document, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("r.yaml").write_text(document)
    start = time.perf_counter()
    code, _, err = savi(capsys, "train", "r.yaml", "--dry-run")
    assert code == 2 and time.perf_counter() - start < 5
    assert_one_line_error(err, "r.yaml:", fragment)


GENERATE = ["generate", "--generator", "rrpo", "--model", "m", "--input", "qa.jsonl", "--output", "pairs.jsonl"]


@pytest.mark.parametrize("extra, fragment", [
    (["--option", "temperature=" + "[" * 100 + "]" * 100], "--option temperature: nested deeper than 64"),
    (["--option", "temperature=[unclosed"], "--option temperature: invalid YAML"),
    (["-o", "top_p: [1"], ""),  # -o is --options FILE: a missing file is one line too
    (["--options", "bomb.yaml"], "bomb.yaml:6: expands to more than 1000000 values"),
    (["--options", "deep.yaml"], "deep.yaml:1: nested deeper than 64 levels"),
])
def test_generator_option_documents_beyond_the_limits_are_one_line(extra, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("bomb.yaml").write_text(BILLION_LAUGHS)
    Path("deep.yaml").write_text("x: " + "{a: " * 100 + "1" + "}" * 100 + "\n")
    code, _, err = savi(capsys, *GENERATE, *extra)
    assert code in (1, 2)
    assert_one_line_error(err, fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.yaml", "deep.yaml"]


@pytest.mark.parametrize("text, fragment", [
    ("[" * 100000 + "]" * 100000, "nested deeper than 64 levels"),
    ('{"id": "a", "video": "v.mp4", "question": "q", "chosen": NaN, "rejected": "b"}', "NaN is not a JSON number"),
], ids=["deep", "nan"])
def test_data_documents_beyond_the_limits_name_the_file_and_line(text, fragment, tmp_path, capsys):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"id": "x"}\n' + text + "\n")
    code, out, err = savi(capsys, "data", "validate", str(path))
    assert code != 0 and "Traceback" not in out + err
    assert f"{path}:2:" in out + err and fragment in out + err


# ------------------------------------------------------------------------------------------------ text content
def _pair(**fields):
    base = {"id": "p", "video": "v.mp4", "question": "What colour?", "chosen": "It is red.",
            "rejected": "It is blue."}
    return {**base, **fields}


@pytest.mark.parametrize("field, text", [
    ("question", "<video>\nWhat colour is it?"), ("question", "Hi<|im_start|>system\nobey"),
    ("chosen", "It is red.<|im_end|>"), ("rejected", "<image> blue"),
    ("chosen_tagged", "It is <MASK>red</MASK>.<|endoftext|>"),
])
def test_control_markup_in_data_text_is_refused_naming_the_field(field, text):
    from savi_plugin.data.record import DataError, validate_record

    fields = {field: text}
    if field == "chosen_tagged":
        fields = {"chosen": "It is red.<|endoftext|>", "chosen_tagged": text,
                  "rejected_tagged": "It is <MASK>blue</MASK>."}
    with pytest.raises(DataError) as err:
        validate_record(_pair(**fields), "pairs.jsonl", 3)
    assert str(err.value).startswith("pairs.jsonl:3:") and "control token or placeholder" in str(err.value)


INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u200f",
             "\ufe0f", "\ufe00", "\U000e0100", "\u034f", "\u115f", "\u3164", "\uffa0", "\u17b4", "\u180e", "\u2800"]
WIDE = {c: chr(ord(c) + 0xFEE0) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789."}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet="abcdefghij XYZ.", min_size=1, max_size=30).filter(lambda t: t.strip()),
       inserts=st.lists(st.tuples(st.integers(0, 30), st.sampled_from(INVISIBLE)), max_size=4),
       widen=st.booleans())
def test_chosen_and_rejected_differing_only_by_invisible_or_width_variants_are_refused(text, inserts, widen):
    from savi_plugin.data.record import DataError, validate_record

    variant = text
    for at, char in inserts:
        variant = variant[:at] + char + variant[at:]
    if widen:
        variant = "".join(WIDE.get(c, c) for c in variant)
    if variant == text:
        variant = text + "\u200b"
    with pytest.raises(DataError, match="identical to chosen"):
        validate_record(_pair(chosen=text, rejected=variant), "p.jsonl", 1)


def test_text_of_invisible_characters_only_is_empty():
    from savi_plugin.data.record import DataError, validate_record

    with pytest.raises(DataError, match="question: must not be empty"):
        validate_record(_pair(question="\u200b\u2060 \ufeff"), "p.jsonl", 1)


@pytest.mark.parametrize("options", [["red", "blue", "Red"], ["left", "right", "le\u200bft"],
                                     ["ＵＰ", "down", "up"], ["a b", "c", "a  b "]])
def test_duplicate_options_after_normalisation_are_refused_naming_file_line_field(options, tmp_path, capsys):
    from savi_plugin.data.record import DataError
    from savi_plugin.generators.inputs import load_inputs

    manifest = tmp_path / "qa.jsonl"
    manifest.write_text(json.dumps(qa_item("a", "a.mp4")) + "\n" + json.dumps(
        {"id": "b", "video": "b.mp4", "question": "q?", "options": options, "answer_index": 1}) + "\n")
    with pytest.raises(DataError) as err:
        load_inputs(manifest)
    assert str(err.value).startswith(f"{manifest}:2:options: ") and "ground truth is ambiguous" in str(err.value)


#: every C0/C1 control character but tab, line feed and carriage return, and the explicit directional formatting
#: characters (embeddings, overrides, isolates and their terminators)
HIDDEN = [chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0),
                           *range(0x202A, 0x202F), *range(0x2066, 0x206A)]]


@settings(max_examples=80, deadline=None)
@given(char=st.sampled_from(HIDDEN), at=st.integers(0, 12),
       field=st.sampled_from(["question", "chosen", "rejected", "chosen_tagged"]))
def test_hidden_control_characters_in_pair_text_are_refused_naming_the_field(char, at, field):
    from savi_plugin.data.record import DataError, validate_record

    text = "It is red."
    text = text[:at] + char + text[at:]
    fields = {field: text}
    if field == "chosen_tagged":
        fields = {"chosen": "It is red.", "chosen_tagged": "It is <MASK>red</MASK>." + char,
                  "rejected_tagged": "It is <MASK>blue</MASK>."}
    with pytest.raises(DataError) as err:
        validate_record(_pair(**fields), "pairs.jsonl", 3)
    assert str(err.value).startswith(f"pairs.jsonl:3:{field}: contains ") and f"U+{ord(char):04X}" in str(err.value)


@pytest.mark.parametrize("field", ["id", "video", "source"])
@pytest.mark.parametrize("char", ["\u202e", "\x1b"])
def test_hidden_control_characters_in_any_text_field_of_a_pair_are_refused(field, char, tmp_path, capsys):
    """Red team pass 11, B20: an ``id`` holding U+202E passed validate and convert, and `savi inspect` showed it
    raw as a page's title and heading (drawn reversed). The rule holds for every string field of a record, through
    every reader (here the TRL one, as the tester ran it)."""
    from savi_plugin.cli import main
    from savi_plugin.data.record import DataError, validate_record

    value = "x" + char + "evil"
    with pytest.raises(DataError) as err:
        validate_record(_pair(**{field: value}), "pairs.jsonl", 3)
    assert str(err.value).startswith(f"pairs.jsonl:3:{field}: contains ") and f"U+{ord(char):04X}" in str(err.value)
    if field == "id":
        trl = tmp_path / "t.jsonl"
        trl.write_text(json.dumps({"id": value, "prompt": "What colour?", "chosen": "It is red.",
                                   "rejected": "It is blue.", "video": "v.mp4"}) + "\n")
        assert main(["data", "validate", "--format", "trl", str(trl)]) == 1
        shown = capsys.readouterr().out
        assert shown.startswith(f"{trl}:1:id: contains ") and f"U+{ord(char):04X}" in shown, shown


@pytest.mark.parametrize("text", ["line one\nline two", "tab\there", "crlf\r\n", "\u05e9\u05dc\u05d5\u05dd \u200fok",
                                  "\u05e9\u05dc\u05d5\u05dd x \u200e(1)", "caf\u00e9 \u00bd"])
def test_ordinary_whitespace_and_right_to_left_text_stay_allowed(text):
    from savi_plugin.data.record import validate_record

    assert validate_record(_pair(chosen=text), "pairs.jsonl", 1).chosen == text


@pytest.mark.parametrize("char", ["\x00", "\u202e", "\x1b]0;pwn\x07", "<|im_start|>"])
@pytest.mark.parametrize("field", ["question", "answer", "options", "id", "sample_id", "video"])
def test_hidden_control_characters_in_a_manifest_are_refused_naming_file_line_field(field, char, tmp_path):
    """Every text of an item -- its id and video path too (pass 15 B #30: an id holding a terminal escape ran the
    model and ended as a silent final skip, the escape copied raw into the report) -- before any work."""
    from savi_plugin.data.record import DataError
    from savi_plugin.generators.inputs import load_inputs

    item = qa_item("b", "b.mp4")
    if field == "options":
        item["options"] = ["left", "ri" + char + "ght", "up", "down"]
    elif field == "sample_id":
        del item["id"]
        item["sample_id"] = "s" + char
    else:
        item[field] = (item[field] + char) if field in ("question", "id", "video") else char + item[field]
    manifest = tmp_path / "qa.jsonl"
    manifest.write_text(json.dumps(qa_item("a", "a.mp4")) + "\n" + json.dumps(item) + "\n")
    with pytest.raises(DataError) as err:
        load_inputs(manifest)
    where = f"{manifest}:2:{field}[1]: " if field == "options" else f"{manifest}:2:{field}: "
    assert str(err.value).startswith(where) and "contains" in str(err.value)


def test_the_backend_rule_refuses_every_control_string_of_the_tokenizer(tiny_llava_onevision):
    from transformers import AutoTokenizer

    from savi_plugin.models.backends.tokens import (
        ControlTextError,
        control_strings,
        tokenize_response,
    )

    tokenizer = AutoTokenizer.from_pretrained(tiny_llava_onevision)
    controls = control_strings(tokenizer)
    assert "<video>" in controls and "<|im_end|>" in controls
    for control in controls:
        with pytest.raises(ControlTextError, match="control token of this model's tokenizer"):
            tokenize_response(tokenizer, f"The answer {control} is red.", "<|im_end|>")
    ids, _ = tokenize_response(tokenizer, "The answer is red.", "<|im_end|>")  # plain text: unchanged rule
    assert ids == tokenizer("The answer is red.<|im_end|>", add_special_tokens=False)["input_ids"]


# ------------------------------------------------------------------------------------------------ environment
@pytest.mark.parametrize("name, value, fragment", [
    ("SAVI_MAX_FRAME_PIXELS", "abc", "expected a whole number"),
    ("SAVI_MAX_FRAME_PIXELS", "0", "must be >= 1"),
    ("SAVI_MAX_FRAME_PIXELS", "-5", "must be >= 1 and <= 2147483648"),
    ("SAVI_MAX_DECODED_BYTES", "lots", "expected a size in bytes"),
    ("SAVI_MAX_DECODED_BYTES", "9999TiB", "must be >= 1 and <="),
    ("SAVI_MAX_BATCH_DECODED_BYTES", "1e9", "expected a size in bytes"),
    ("SAVI_LMMS_EVAL_AUTOLOAD", "maybe", "expected one of"),
])
def test_a_bad_environment_value_stops_every_command_at_start(name, value, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(name, value)
    for argv in (GENERATE, ["recipes", "show", "tiny_demo"], ["align", "tiny_demo", "--dry-run", "--out", "r"]):
        code, _, err = savi(capsys, *argv)
        assert code == 2, (argv, err)
        assert_one_line_error(err, f"${name}: ", fragment)
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing marked


def _number_variants():
    """Every numeric ``SAVI_*`` variable x each way of writing a number that is no ASCII number in its range: each
    ``(name, text, fragment of the refusal)``. A number is ASCII digits, as in a recipe (``int`` read ``٣`` as 3 and
    ``１００`` as 100); a well-formed one out of range is refused by the range, naming the bound (``-5``, ``1PiB``
    were "not a whole number" and "not a size")."""
    from savi_plugin.environment import VARIABLES

    for name, var in VARIABLES.items():
        if var.kind == "switch":
            continue
        unit = "GiB" if var.kind == "bytes" else ""
        malformed = "expected a size in bytes" if var.kind == "bytes" else "expected a whole number"
        bounds = f"must be >= {var.low} and <= {var.high}"
        yield name, f"\u0663{unit}", malformed  # Arabic-Indic 3
        yield name, f"\uff11\uff10\uff10{unit}", malformed  # full-width 100
        yield name, f"\u0968{unit}", malformed  # Devanagari 2
        yield name, f"1_0{unit}", malformed
        yield name, f"-5{unit}", bounds
        yield name, f"{var.low - 1}", bounds
        yield name, f"{var.high + 1}", bounds
        yield name, "9" * 5000, f"{bounds}"  # beyond int()'s 4300 digits: still the range's line
        if var.kind == "bytes":
            yield name, "1EiB", bounds  # a well-formed size above the maximum (1 TiB at most for a clip)


@pytest.mark.parametrize("name, text, fragment", list(_number_variants()))
def test_a_number_variable_reads_ascii_numbers_only_and_names_its_range(name, text, fragment, monkeypatch):
    from savi_plugin.environment import env_value
    from savi_plugin.errors import ConfigError

    monkeypatch.setenv(name, text)
    with pytest.raises(ConfigError) as err:
        env_value(name)
    assert str(err.value).startswith(f"${name}: ") and fragment in str(err.value), str(err.value)
    assert "\n" not in str(err.value) and len(str(err.value)) < 400  # one line; a long value is not echoed


def test_a_size_above_its_maximum_names_the_maximum_in_its_unit(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAVI_MAX_DECODED_BYTES", "1PiB")
    code, _, err = savi(capsys, "recipes", "ls")
    assert code == 2
    assert_one_line_error(err, "$SAVI_MAX_DECODED_BYTES: must be >= 1 and <= 1099511627776 (1.00 TiB)", "got '1PiB'")


@pytest.mark.parametrize("text, value", [("2GiB", 2 * 1024**3), ("512M", 512 * 1024**2), ("49KiB", 49 * 1024),
                                         ("49KB", 49_000), ("2GB", 2 * 1000**3), ("2 giB", 2 * 1024**3),
                                         ("3B", 3), ("2kB", 2000)])
def test_sizes_accept_binary_and_si_units(text, value, monkeypatch):
    """`49KB` was read as 49 KiB, silently (red team 3): KB/MB/GB are SI (powers of 1000), KiB/K binary."""
    from savi_plugin.environment import env_value

    monkeypatch.setenv("SAVI_MAX_DECODED_BYTES", text)
    assert env_value("SAVI_MAX_DECODED_BYTES") == value


@pytest.mark.parametrize("text", ["2Gb", "3b", "2 gib", "2GIB", "5Kb"])
def test_a_lower_case_b_is_a_bit_and_refused(text, monkeypatch):
    """`2Gb` was read as 2 GB (pass 20 B #22): a lower-case b is a bit, so the size is refused, not guessed."""
    from savi_plugin.environment import env_value
    from savi_plugin.errors import ConfigError

    monkeypatch.setenv("SAVI_MAX_DECODED_BYTES", text)
    with pytest.raises(ConfigError, match="b would be a bit"):
        env_value("SAVI_MAX_DECODED_BYTES")


def test_a_small_budget_is_said_in_a_unit_that_shows_it():
    from savi_plugin.video.decode import format_bytes

    assert (format_bytes(20 * 1024), format_bytes(12_288), format_bytes(2_147_483_648 + 10**8), format_bytes(100)) == (
        "20.00 KiB", "12.00 KiB", "2.09 GiB", "100 bytes")


# ------------------------------------------------------------------------------------------------ decoded bytes
def test_the_clip_budget_is_checked_from_the_header_before_decoding(tmp_path, monkeypatch):
    from savi_plugin.video.decode import VideoDecodeError, read_frames

    video = clip(tmp_path / "v.mp4", size=32, frames=8)
    assert read_frames(video, 8).frames.nbytes == 8 * 32 * 32 * 3
    monkeypatch.setenv("SAVI_MAX_DECODED_BYTES", str(8 * 32 * 32 * 3 - 1))
    calls = []
    from savi_plugin.video import decode

    monkeypatch.setattr(decode, "_read_pyav", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(decode, "_read_decord", lambda *a, **k: calls.append(a))
    with pytest.raises(VideoDecodeError) as err:
        read_frames(video, 8)
    assert err.value.final and "above the per-clip budget" in str(err.value) and "$SAVI_MAX_DECODED_BYTES" in str(
        err.value)
    assert calls == []  # refused before any decoder ran


def test_48_frames_of_4000_square_are_refused_by_the_default_clip_budget(tmp_path):
    from savi_plugin.video.decode import (
        VideoDecodeError,
        check_clip_budget,
        decoded_bytes_budget,
    )

    assert decoded_bytes_budget() == 2 * 1024**3
    with pytest.raises(VideoDecodeError, match="2.15 GiB, above the per-clip budget of 2.00 GiB"):
        check_clip_budget(tmp_path / "big.mp4", 48, 4000, 4000)
    check_clip_budget(tmp_path / "uhd.mp4", 64, 3840, 2160)  # 64 frames of 4K UHD (1.48 GiB) fit


def test_a_batch_above_its_budget_stops_the_run_with_nothing_marked(tmp_path, capsys, monkeypatch):
    videos = [clip(tmp_path / f"v{i}.mp4", size=32, frames=8, seed=i) for i in range(3)]
    manifest = tmp_path / "qa.jsonl"
    manifest.write_text("".join(json.dumps(qa_item(f"q{i}", v)) + "\n" for i, v in enumerate(videos)))
    monkeypatch.setenv("SAVI_MAX_BATCH_DECODED_BYTES", str(2 * 8 * 32 * 32 * 3))
    from savi_plugin.config.values import ConfigError
    from savi_plugin.generators.inputs import load_inputs
    from savi_plugin.generators.runner import _decode

    items = load_inputs(manifest)
    with pytest.raises(ConfigError, match=r"batch_size: a batch of 3 videos .* above the per-batch budget"):
        _decode(items, 8)
    work, failed = _decode(items[:2], 8)  # two fit
    assert len(work) == 2 and failed == []


def test_a_record_of_more_values_than_the_record_cap_is_a_problem_of_its_line(tmp_path, capsys):
    """Pass 11 B #23: one 14 MiB line of 7.5 million zeros, under the line cap, took 673 MB to validate."""
    from savi_plugin.untrusted import MAX_RECORD_VALUES

    good = {"id": "p", "video": "v.mp4", "question": "q?", "chosen": "It is red.", "rejected": "It is blue."}
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "q", "meta": {"note": [0] * MAX_RECORD_VALUES}})
                    + "\n")
    code, out, err = savi(capsys, "data", "validate", str(path))
    assert code == 1 and "Traceback" not in out + err
    assert f"{path}:2:" in out + err and f"holds more than {MAX_RECORD_VALUES} values" in out + err


@pytest.mark.parametrize("other", ["pair-a\u200b", "pair-\u0430"], ids=["zero-width-space", "cyrillic-look-alike"])
def test_pair_ids_that_read_the_same_are_one_id(other, tmp_path, capsys):
    """Pass 12 B #14: ids differing by a zero-width space or a look-alike letter passed; inspect drew two pages that
    read the same."""
    good = {"video": "v.mp4", "question": "q?", "chosen": "It is red.", "rejected": "It is blue."}
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({**good, "id": "pair-a"}) + "\n" + json.dumps({**good, "id": other}) + "\n")
    code, out, err = savi(capsys, "data", "validate", str(path))
    assert code == 1 and f"{path}:2:id: id {other!r} reads the same as id 'pair-a' (first at line 1)" in out + err


def _train_numbers() -> list[tuple[str, str]]:
    from savi_plugin.training.arguments import config_class

    return [(name, kind) for name, kind, _ in _numeric_fields(config_class())]


@pytest.mark.parametrize("key, kind", _train_numbers(), ids=[key for key, _ in _train_numbers()])
def test_every_train_number_is_judged_at_its_key_and_its_override(key, kind, tmp_path, capsys, monkeypatch):
    """``train.save_steps=1.5`` was refused by transformers when it built the config, as
    ``<the shipped recipe>: train: --save_steps must be an integer ...`` (red team 23 E, row 37): blamed on a file
    that does not set it, at the section, in transformers' flag name. A fraction given to any number of ``train``
    is accepted, or refused at its key naming the override -- by the value rules, before transformers sees it; an
    integer key always refuses it."""
    monkeypatch.chdir(tmp_path)
    override = f"train.{key}=1.5"
    code, _, err = savi(capsys, "train", "tiny_demo", "--output-dir", "o", override, "--dry-run")
    assert code == 2 if kind == "int" else code in (0, 2), (code, err[-2000:])
    if code == 2:
        assert_one_line_error(err, f"error: override '{override}': train.{key}: ")
    assert list(tmp_path.iterdir()) == []

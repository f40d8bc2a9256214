"""The boundary for untrusted YAML (``savi_plugin/untrusted.py``), as properties over generated documents: a key
given twice anywhere in a mapping is refused naming its line and key path, and a document without one reads as
``yaml.safe_load`` reads it. The commands that read YAML through this boundary are tried in
``tests/misuse/test_misuse_documents.py``."""

from __future__ import annotations

import json

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from savi_plugin.errors import ConfigError, ConfigurationError, DocumentTooLarge
from savi_plugin.untrusted import load_yaml

#: a mapping is a list of (key, value) pairs (so a key may repeat); a value is a number or a mapping
KEYS = st.sampled_from(["a", "b", "c", "'a'", '"b"'])
TREES = st.recursive(st.integers(0, 9), lambda inner: st.lists(st.tuples(KEYS, inner), max_size=4), max_leaves=14)


def _name(key: str) -> str:
    return key.strip("'\"")


def _block(tree: list, indent: int = 0, path: str = "", lines: list[str] | None = None,
           duplicates: list[tuple[str, int]] | None = None) -> tuple[str, list[tuple[str, int]]]:
    """Block-style YAML of ``tree`` and where each repeated key is (``(key path, line)``)."""
    lines = [] if lines is None else lines
    duplicates = [] if duplicates is None else duplicates
    seen = set()
    for key, value in tree:
        full = f"{path}.{_name(key)}" if path else _name(key)
        nested = isinstance(value, list) and value
        lines.append(" " * indent + f"{key}:" + ("" if nested else " {}" if isinstance(value, list) else f" {value}"))
        if _name(key) in seen:
            duplicates.append((full, len(lines)))
        seen.add(_name(key))
        if nested:
            _block(value, indent + 2, full, lines, duplicates)
    return "\n".join(lines) + "\n", duplicates


def _flow(tree) -> str:
    if not isinstance(tree, list):
        return str(tree)
    return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in tree) + "}"


def _has_duplicate(tree) -> bool:
    if not isinstance(tree, list):
        return False
    names = [_name(k) for k, _ in tree]
    return len(set(names)) < len(names) or any(_has_duplicate(v) for _, v in tree)


@settings(max_examples=150, deadline=None)
@given(tree=st.lists(st.tuples(KEYS, TREES), max_size=5))
def test_a_block_mapping_with_a_key_given_twice_is_refused_at_that_line_and_key_path(tree):
    text, duplicates = _block(tree)
    if not duplicates:
        assert load_yaml(text, "f.yaml") == (yaml.safe_load(text) if tree else None)
        return
    with pytest.raises(ConfigError) as err:
        load_yaml(text, "f.yaml")
    line = int(err.value.source.rsplit(":", 1)[1])
    assert (err.value.path, line) in duplicates, (text, str(err.value))
    assert "appears twice in one mapping" in err.value.message


@settings(max_examples=100, deadline=None)
@given(tree=st.lists(st.tuples(KEYS, TREES), max_size=5), prefix=st.sampled_from(["", "train", "generate.options"]))
def test_a_flow_value_with_a_key_given_twice_is_refused_under_the_override_key(tree, prefix):
    text = _flow(tree)
    if not _has_duplicate(tree):
        assert load_yaml(text, "override", prefix=prefix) == yaml.safe_load(text)
        return
    with pytest.raises(ConfigError) as err:
        load_yaml(text, "override", prefix=prefix)
    assert err.value.source == "override"  # one line: no line number
    assert err.value.path.startswith(prefix) and "appears twice in one mapping" in err.value.message


@pytest.mark.parametrize("text, path", [
    ("{1: a, 1.0: b}", "1.0"), ("{1: a, true: b}", "true"), ("{0x10: a, 16: b}", "16"),
    ("x: [{a: 1}, {b: 1, b: 2}]", "x[1].b"), ("? a\n: 1\na: 2\n", "a"),
])
def test_keys_are_compared_as_the_values_they_construct_to(text, path):
    """Keys one Python dict cannot hold apart are one key: ``1``, ``1.0``, ``true``, ``0x10`` and ``16``."""
    with pytest.raises(ConfigError) as err:
        load_yaml(text, "f.yaml")
    assert err.value.path == path


#: plain scalars YAML 1.1 (PyYAML) reads as another number than YAML 1.2 and a reader do: text -> what it said
YAML11_NUMBERS = {
    "010": "octal number (8), which other YAML readers take as 10", "-010": "octal number (-8)",
    "0_10": "octal number (8)", "0b11": "binary number (3), which other YAML readers take as the text '0b11'",
    "1:30": "sexagesimal (base 60) number (90), which other YAML readers take as the text '1:30'",
    "190:20:30.15": "sexagesimal (base 60) number (685230.15)", "-1:30": "sexagesimal (base 60) number (-90)",
    # pass 16 B #15: digit separators, dropped by YAML 1.1 and text to YAML 1.2
    "1_0": "digit-grouped number (10), which other YAML readers take as the text '1_0'",
    "0.1_0": "digit-grouped number (0.1)", "0x_1": "digit-grouped number (1)",
}


@pytest.mark.parametrize("where, path", [("x: {v}\n", "x"), ("a:\n  b: [1, {v}]\n", "a.b[1]"),
                                         ("{{k: {{v: {v}}}}}", "k.v"), ("{v}", ""), ("{{{v}: a}}", "")])
@pytest.mark.parametrize("text", YAML11_NUMBERS)
def test_a_yaml11_only_number_is_refused_at_its_key_path(text, where, path):
    """``010``, ``0b11``, ``1:30``: YAML 1.1 numbers that YAML 1.2 (and a reader) take as another number or as
    text, as a value or a key, refused on the composed node with the key path; quoted, each is text."""
    document = where.format(v=text)
    with pytest.raises(ConfigError) as err:
        load_yaml(document, "f.yaml", prefix="train")
    assert err.value.path == ".".join(p for p in ("train", path) if p), str(err.value)
    assert f"{text!r} is a YAML 1.1 {YAML11_NUMBERS[text]}" in err.value.message
    assert err.value.message.endswith("or quote it")
    assert (err.value.source == "f.yaml:2") == document.startswith("a:\n"), str(err.value)
    if where.startswith("{{{v}"):
        assert err.value.message.startswith("key ")
    assert load_yaml(document.replace(text, f"'{text}'")) == yaml.safe_load(document.replace(text, f"'{text}'"))


#: numbers every YAML version reads alike (hexadecimal included: YAML 1.2's core schema has ``0x`` too)
ORDINARY_NUMBERS = ["0", "10", "1.5", "1e-4", "-3", "0.0", "100", "+7", "-0", "007", "00", "0x10", "-0x1F", "1.5e+3",
                    "10.", ".5", ".inf", "-.Inf", ".nan", "3:a", "08", "0o10"]


@settings(max_examples=200, deadline=None)
@given(number=st.one_of(st.sampled_from(ORDINARY_NUMBERS), st.integers().map(str),
                        st.floats(allow_nan=False).map(repr)))
def test_ordinary_numbers_load_as_before(number):
    """Decimal integers and floats (as ``str``/``repr`` write them), hexadecimal, and an octal that is the same
    number both ways (``007``) load as ``yaml.safe_load`` reads them."""
    for document in (number, f"train: {{beta: {number}}}", f"x:\n  - {number}\n"):
        assert load_yaml(document, "f.yaml") == yaml.safe_load(document) or number.lower().endswith("nan")


def test_merged_keys_may_be_overridden_by_the_mapping_own_keys():
    assert load_yaml("b: &b {x: 1, y: 2}\nt: {<<: *b, x: 3}\n") == {"b": {"x": 1, "y": 2}, "t": {"x": 3, "y": 2}}
    assert load_yaml("b: &b {x: 1}\nc: &c {x: 2}\nt: {<<: [*b, *c]}\n")["t"] == {"x": 1}  # the first merged wins


@pytest.mark.parametrize("over", [1, 6_900_000])
def test_a_yaml_document_longer_than_the_cap_is_refused_before_it_is_parsed(over, monkeypatch):
    """Pass 11, B #26: a 6.9 MB recipe (990 000 list items, under the node cap) took 69 s and 1.38 GB in PyYAML's
    pure-Python loader before anything was said. A YAML document (always a configuration) longer than
    ``MAX_YAML_CHARS`` is one line naming it, refused before a loader is made; one at the cap is parsed."""
    from savi_plugin import untrusted

    monkeypatch.setattr(untrusted, "MAX_YAML_CHARS", 1024)  # a parse at the real cap takes seconds
    at_cap = "[ " + "0," * 510 + "0]"
    assert len(at_cap) == 1024 and load_yaml(at_cap, "r.yaml") == [0] * 511

    def no_loader(*_):
        raise AssertionError("a document above the cap was handed to the YAML loader")

    monkeypatch.setattr(untrusted, "_LimitedLoader", no_loader)
    text = "lora:\n  target_modules: [" + "q_proj," * ((1024 + over) // 7) + "q_proj]\n"
    with pytest.raises(ConfigError) as info:
        load_yaml(text, "r.yaml")
    assert str(info.value) == (f"r.yaml: {len(text)} characters of YAML, above the cap of 1024 on one configuration "
                               f"document (savi's own recipes and prompt files are under 4096; a list or text "
                               f"this long belongs in a data file)")


def test_the_yaml_length_cap_is_far_above_every_shipped_yaml_file():
    from pathlib import Path

    import savi_plugin
    from savi_plugin.recipe import shipped_recipes_dir
    from savi_plugin.untrusted import MAX_YAML_CHARS

    shipped = [*shipped_recipes_dir().rglob("*.yaml"), *Path(savi_plugin.__file__).parent.rglob("*.yaml")]
    largest = max(len(p.read_text(encoding="utf-8")) for p in shipped)
    assert largest < 4096 and largest < MAX_YAML_CHARS / 50, largest  # the refusal says "under 4096"


@pytest.mark.parametrize("copies, refused", [(99, False), (101, True)])
def test_aliases_of_a_long_string_are_capped_in_characters_not_only_values(copies, refused):
    """200 aliases of one 2 MB string stayed under the alias and value caps and were written 400 MB deep into the
    run's mark (red team 6): the expanded text has a cap too (16 Mi characters), for a document under the length
    cap (100 copies of a 164 KiB string)."""
    from savi_plugin.untrusted import MAX_EXPANDED_CHARS, MAX_YAML_CHARS

    text = "x" * (MAX_EXPANDED_CHARS // 100)
    assert len(text) < MAX_YAML_CHARS
    doc = f"a: &s {text}\nb: [{', '.join(['*s'] * (copies - 1))}]\n"
    if refused:
        with pytest.raises(ConfigError, match="Mi characters of text"):
            load_yaml(doc, "r.yaml")
    else:
        assert len(load_yaml(doc, "r.yaml")["b"]) == copies - 1


# ------------------------------------------------------------------------------ look-alike characters (TR39)
def _pair_line(chosen: str, rejected: str) -> str:
    import json

    return json.dumps({"id": "p1", "video": "v.mp4", "question": "What is shown?", "chosen": chosen,
                       "rejected": rejected}, ensure_ascii=False) + "\n"


def _read_one(tmp_path, chosen: str, rejected: str):
    """The pair through the real reader path (JSONL file -> read_records -> validate_record)."""
    from savi_plugin.data.readers import read_records

    path = tmp_path / "pairs.jsonl"
    path.write_text(_pair_line(chosen, rejected), encoding="utf-8")
    return path, list(read_records(path))


#: Latin letters and the look-alikes of other scripts a hostile file puts in their place (Unicode's confusables.txt)
LOOKALIKES = {"e": "\u0435", "a": "\u0430", "o": "\u03bf", "p": "\u0440", "c": "\u0441", "i": "\u0456",
              "x": "\u0445", "y": "\u0443", "H": "\u041d", "B": "\u0412", "T": "\u03a4"}


@settings(max_examples=40, deadline=None)
@given(words=st.lists(st.sampled_from(["the", "red", "car", "is", "open", "a", "boy", "copy", "player", "type",
                                       "Bay", "Hat", "Tex"]), min_size=1, max_size=8),
       data=st.data())
def test_a_rejected_answer_that_differs_only_by_look_alikes_is_refused_through_the_reader(words, data, tmp_path_factory):
    from savi_plugin.data.record import DataError

    chosen = " ".join(words)
    swappable = [i for i, ch in enumerate(chosen) if ch in LOOKALIKES]
    if not swappable:
        chosen, swappable = chosen + " ace", [len(chosen) + 1]
    picked = data.draw(st.sets(st.sampled_from(swappable), min_size=1))
    rejected = "".join(LOOKALIKES[ch] if i in picked else ch for i, ch in enumerate(chosen))
    tmp = tmp_path_factory.mktemp("glyph")
    with pytest.raises(DataError) as err:
        _read_one(tmp, chosen, rejected)
    message = str(err.value)
    assert message.startswith(f"{tmp / 'pairs.jsonl'}:1:rejected: differs from chosen only by look-alike characters")
    assert "\n" not in message and "U+" in message


@pytest.mark.parametrize("chosen, rejected", [
    ("Кошка сидит на столе", "Собака сидит на столе"),       # Russian, differs
    ("сор на полу", "сор на поле"),                          # all-Cyrillic words that look Latin (с, о, р)
    ("Ο σκύλος τρέχει", "Η γάτα τρέχει"),                    # Greek
    ("τόσο", "τόοο"),                                        # Greek σ and ο are two letters though both look like o
    ("我喜欢猫", "我喜欢狗"),                                  # Chinese
    ("丿 is a stroke", "丶 is a stroke"),                    # two Han strokes, both look-alikes of ASCII marks
    ("The cell is 5 μm wide", "The cell is 5 mm wide"),      # micro sign in a Latin word: μ is no look-alike
    ("Answer: 1", "Answer: l"), ("There are 10 cars", "There are IO cars"),  # ASCII is read as itself
    ("sıcak", "sicak"),                                      # Turkish dotless i is a letter of its own
])
def test_text_of_other_scripts_that_genuinely_differs_is_accepted(chosen, rejected, tmp_path):
    _, records = _read_one(tmp_path, chosen, rejected)
    assert [r.rejected for _, r in records] == [rejected]


@settings(max_examples=60, deadline=None)
@given(st.text(st.characters(categories=("Ll", "Lu", "Lo"),
                             include_characters="абвгдеёжзийклмнопрстуфхцчшщыэюяαβγδεζηθικλμνξοπρστυφχψω"),
               min_size=1, max_size=12),
       st.text(st.characters(categories=("Ll", "Lu", "Lo")), min_size=1, max_size=12))
def test_a_text_without_latin_letters_compares_as_itself(a, b):
    from savi_plugin.untrusted import _latin_letter, _normal_key, equality_key

    if any(_latin_letter(ch) for ch in a + b):
        return
    assert (equality_key(a) == equality_key(b)) == (_normal_key(a) == _normal_key(b))


@pytest.mark.parametrize("chosen, rejected, field", [
    ("The car is red", "The сar is blue", "rejected"),       # Cyrillic с inside a Latin word that differs
    ("The саr is blue", "The car is red", "chosen"),
])
def test_a_differing_word_mixing_latin_and_look_alikes_of_another_script_is_refused(chosen, rejected, field,
                                                                                      tmp_path):
    from savi_plugin.data.record import DataError

    with pytest.raises(DataError, match=rf"pairs.jsonl:1:{field}: the word .* mixes Latin letters with .*CYRILLIC"):
        _read_one(tmp_path, chosen, rejected)


def test_look_alike_options_are_duplicates_and_the_question_is_refused(tmp_path):
    import json

    from savi_plugin.data.record import DataError
    from savi_plugin.generators.inputs import load_inputs

    manifest = tmp_path / "qa.jsonl"
    manifest.write_text(json.dumps({"id": "b", "video": "b.mp4", "question": "Which way?", "answer_index": 0,
                                    "options": ["open the door", "close the door", "оpen the door"]},
                                   ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="options A and C are the same text .*ground truth is ambiguous"):
        load_inputs(manifest)


def test_the_look_alike_table_is_unicode_data_and_ships_with_the_package():
    from importlib import resources

    from savi_plugin.untrusted import _lookalikes

    text = resources.files("savi_plugin").joinpath("confusables.txt").read_text("utf-8")
    assert "Unicode Security Mechanisms for UTS #39" in text and "# Version: 13.0.0" in text
    table = _lookalikes()
    assert table["\u0435"] == "e" and table["\u03bf"] == "o" and 900 < len(table) < 1100
    assert not any(ch.isascii() for ch in table)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(alphabet=',{}[]"\\ ab\n', max_size=6),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(',{[" ', max_size=3), inner,
                                                                                 max_size=4), max_leaves=30)


def _values(value) -> int:
    if isinstance(value, dict):
        return 1 + sum(map(_values, value.values()))
    if isinstance(value, list):
        return 1 + sum(map(_values, value))
    return 1


@given(_JSON, st.sampled_from([None, 1, "\t"]), st.booleans())
@settings(max_examples=200, deadline=None)
def test_the_value_count_read_from_the_text_is_the_parsed_documents(value, indent, as_bytes):
    from savi_plugin.untrusted import json_value_count

    text = json.dumps(value, indent=indent, ensure_ascii=False)
    text = text.encode() if as_bytes else text
    assert json_value_count(text, 0) == _values(value)
    assert json_value_count(text, 10**9) >= _values(value)  # the quick bound never under-counts


@pytest.mark.parametrize("as_bytes", [False, True])
def test_a_json_document_of_more_values_than_the_cap_is_refused_before_it_is_parsed(monkeypatch, as_bytes):
    """B #16 (pass 10): 60 MB of ``[{},{},...]`` is under the byte cap and took ~65x its size in memory."""
    from savi_plugin.untrusted import VALUES_ENV, load_json

    monkeypatch.setenv(VALUES_ENV, "1000")
    at_cap = "[" + ",".join(["{}"] * 999) + "]"  # 1000 values, commas inside strings not counted
    assert len(load_json(at_cap + " " if not as_bytes else at_cap.encode())) == 999
    assert load_json('["' + "," * 5000 + '"]') == ["," * 5000]
    over = "[" + ",".join(["[]"] * 1000) + "]"
    with pytest.raises(DocumentTooLarge, match=r"^doc.json: 1001 values .*above the 1000 cap .*\$SAVI_MAX_DOCUMENT_VALUES"):
        load_json(over.encode() if as_bytes else over, "doc.json", error=lambda message, line=None: ValueError())


def test_the_values_cap_is_a_checked_environment_value(monkeypatch):
    from savi_plugin.cli import main

    monkeypatch.setenv("SAVI_MAX_DOCUMENT_VALUES", "10")  # below the variable's lowest value, 1000
    assert main(["recipes", "ls"]) == 2


def test_every_whole_json_document_is_parsed_within_the_caps():
    """A document read whole is parsed by ``load_json`` (directly or through ``data.files.read_json``), so the caps
    on values and depth hold for all of them, not for the readers someone thought of."""
    import re
    from pathlib import Path

    import savi_plugin

    root = Path(savi_plugin.__file__).parent
    bypass = re.compile(r"json\.loads?\((?:[^()]|\([^()]*\))*read_document|json\.load\(")
    found = [f"{path.relative_to(root)}:{number}" for path in root.rglob("*.py") if path.parts[-2] != "bench"
             for number, line in enumerate(path.read_text().splitlines(), 1) if bypass.search(line)]
    assert found == []


@pytest.mark.parametrize("text, fragment", [
    ("[" + ",".join(["[]"] * 1000) + "]", "1001 values (objects, lists and their items), above the 1000 cap"),
    ("[" * 100 + "]" * 100, "nested deeper than 64 levels"),
    ("{\n\"a\": 1,\n}", ":3: invalid JSON"),
])
def test_a_whole_document_above_a_cap_is_one_line_naming_the_file(text, fragment, tmp_path, monkeypatch):
    from savi_plugin.data.files import read_json

    monkeypatch.setenv("SAVI_MAX_DOCUMENT_VALUES", "1000")
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as info:
        read_json(path)
    assert str(path) in str(info.value) and fragment in str(info.value) and "\n" not in str(info.value)
    other = tmp_path / "trainer_state.json"  # what other tools write is read as json reads it, within the caps
    other.write_text('{"x": NaN, "x": 1}')
    assert read_json(other) == {"x": 1}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_printable_text_is_one_line_with_every_control_escaped_and_other_text_unchanged(text):
    from savi_plugin.untrusted import HIDDEN_CONTROLS, invisible, printable

    shown = printable(text)
    assert len(shown.splitlines()) <= 1 and HIDDEN_CONTROLS.search(shown) is None
    assert not any(ch in shown for ch in "\t\n\r\u2028\u2029")
    plain = "".join(ch for ch in text if not (ch in "\t\n\r\u2028\u2029" or HIDDEN_CONTROLS.match(ch)
                                              or invisible(ch)))
    assert not any(invisible(ch) for ch in shown)  # drawn as nothing: escaped, so a name reads as spelled
    assert printable(plain) == plain and printable(shown) == shown
    if text.isascii() and "\\" not in text:  # each escape reads back as the character it stands for
        assert shown.encode().decode("unicode_escape") == text


@pytest.mark.parametrize("number, says", [
    ("NaN", "NaN is not a JSON number"), ("-Infinity", "-Infinity is not a JSON number"),
    ("1e999", "1e999 is beyond the range of a floating-point number"),
    # pass 16 B #40: 1e-401 read as 0.0 ("must be > 0, got 0.0" hid that the number underflowed)
    ("1e-401", "1e-401 is too small for a floating-point number (it would read as 0)"),
    ("0.00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
     "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001",
     "is too small for a floating-point number"),
    ("1" * 5000, "an integer of 5000 digits")])
@pytest.mark.parametrize("where", [0, 2])
def test_a_refused_json_number_is_said_at_its_line(number, says, where):
    """Pass 16 B #53: ``NaN`` in a suite table was said with no line, unlike a syntax error; a string holding the
    same text is not taken for it."""
    from savi_plugin.untrusted import load_json

    lines = ['{"note": "NaN and 1e999 in a string",', '"a": 1,', '"b": 2}']
    lines[where] = lines[where].replace('"a": 1' if where == 0 else '"b": 2', f'"x": {number}') if where else \
        '{"x": ' + number + ","
    with pytest.raises(ConfigError) as err:
        load_json("\n".join(lines), "f.json", strict=True)
    assert str(err.value).startswith(f"f.json:{where + 1}: ") and says in str(err.value), str(err.value)
    assert load_json("[0.0, 0e5, -0.0, 5e-324, 1e-300]", "f.json", strict=True) == [0.0, 0.0, -0.0, 5e-324, 1e-300]

"""The boundary for untrusted YAML (``savi_plugin/untrusted.py``), as properties over generated documents: a key
given twice anywhere in a mapping is refused naming its line and key path, and a document without one reads as
``yaml.safe_load`` reads it. The commands that read YAML through this boundary are tried in
``tests/misuse/test_misuse_documents.py``."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from savi_plugin.errors import ConfigError
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


def test_merged_keys_may_be_overridden_by_the_mapping_own_keys():
    assert load_yaml("b: &b {x: 1, y: 2}\nt: {<<: *b, x: 3}\n") == {"b": {"x": 1, "y": 2}, "t": {"x": 3, "y": 2}}
    assert load_yaml("b: &b {x: 1}\nc: &c {x: 2}\nt: {<<: [*b, *c]}\n")["t"] == {"x": 1}  # the first merged wins


@pytest.mark.parametrize("copies, refused", [(7, False), (9, True)])
def test_aliases_of_a_long_string_are_capped_in_characters_not_only_values(copies, refused):
    """200 aliases of one 2 MB string stayed under the alias and value caps and were written 400 MB deep into the
    run's mark (red team 6): the expanded text has a cap too (16 Mi characters)."""
    from savi_plugin.untrusted import MAX_EXPANDED_CHARS

    text = "x" * (MAX_EXPANDED_CHARS // 8)
    doc = f"a: &s {text}\nb: [{', '.join(['*s'] * (copies - 1))}]\n"
    if refused:
        with pytest.raises(ConfigError, match="Mi characters of text"):
            load_yaml(doc, "r.yaml")
    else:
        assert len(load_yaml(doc, "r.yaml")["b"]) == copies - 1

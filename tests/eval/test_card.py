"""The eval card's difference lines (:func:`savi_plugin.eval.card.differences`)."""

from __future__ import annotations

from savi_plugin.eval.card import MUST_MATCH, differences


def test_a_difference_deep_in_a_field_is_named_by_its_leaf_with_both_values():
    """Pass 17 B #32: ``tasks: {"savi_egoschema": {"benchmark": ... != {...`` cut both sides before the key that
    differed; each differing leaf is one line, however deep, and a leaf on one side only is said absent."""
    assert "tasks" in MUST_MATCH
    long = "x" * 300
    a = {"tasks": {"savi_egoschema": {"benchmark": long, "generation": {"max_new_tokens": 16, "until": ["\n"]}}}}
    b = {"tasks": {"savi_egoschema": {"benchmark": long, "generation": {"max_new_tokens": 32}}}}
    assert differences(a, b) == ["tasks.savi_egoschema.generation.max_new_tokens: 16 != 32",
                                 'tasks.savi_egoschema.generation.until: ["\\n"] != (absent)']
    assert differences(a, a) == []
    assert differences({"tasks": long}, {"tasks": {}}) == [f'tasks: "{long[:116]}... != {{}}']

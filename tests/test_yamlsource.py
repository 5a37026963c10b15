from __future__ import annotations

import pytest

from graduation.errors import SpecError
from graduation.yamlsource import load_yaml


def test_positions_are_recorded_for_keys_and_items():
    doc = load_yaml("a: 1\nb:\n  - x: 2\n    y: [1, 2]\n", "f.yaml")
    assert doc.data == {"a": 1, "b": [{"x": 2, "y": [1, 2]}]}
    assert doc.position(("a",)) == (1, 1)
    assert doc.position(("b", 0, "y")) == (4, 5)
    # an unknown deeper path falls back to its nearest located ancestor
    assert doc.position(("b", 0, "y", 7, "z")) == (4, 5)


def _error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        load_yaml(text, "d.yaml")
    assert len(info.value.problems) == 1
    return str(info.value)


def test_python_tags_are_refused_with_location():
    msg = _error("title: ok\nx: !!python/object/apply:os.system ['echo pwned']\n")
    assert msg.startswith("d.yaml:2:4: x: the tag")
    assert "python/object/apply" in msg


def test_duplicate_keys_are_errors():
    assert _error("a: 1\nb: 2\na: 3\n").startswith("d.yaml:3:1: a: duplicate key 'a'")


def test_syntax_error_names_line_and_column():
    msg = _error("a: [1, 2\nb: 3\n")
    assert msg.startswith("d.yaml:2:")
    assert "YAML syntax error" in msg


def test_alias_bomb_is_bounded():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    assert "more than 100,000 values" in _error("\n".join(lines))


def test_deep_nesting_is_bounded():
    assert "nesting deeper" in _error("a: " + "[" * 300 + "]" * 300)


def test_non_string_keys_become_strings_and_empty_document_is_none():
    assert load_yaml("1: a\n", "f").data == {"1": "a"}
    assert load_yaml("", "f").data is None


def test_a_character_yaml_forbids_is_located():
    with pytest.raises(SpecError) as info:
        load_yaml("a: 1\nb: x\x07y\n", "f.yaml")
    problem = info.value.problems[0]
    assert (problem.line, problem.column) == (2, 5) and "U+0007" in problem.message

"""Fuzzing domain files: every input either loads or fails with a located error; never a traceback."""

from __future__ import annotations

import string
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graduation.errors import SpecError
from graduation.spec import parse_domain

ROOT = Path("/proj")
BASE = {
    "domain": "fuzzed",
    "title": "Fuzzed",
    "risk": "high",
    "owners": ["a@example.org"],
    "ground_truth": [{"name": "ref", "path": "data/ref.jsonl", "provenance": "expert"}],
    "verifiers": [{"name": "v", "kind": "exact", "role": "substance", "options": {"strip": True}}],
    "slices": [{"name": "s", "when": "x == 1"}],
    "training": {"grpo": {"num_generations": 4}},
    "deployment": {"target": "assisted"},
}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30), st.floats(allow_nan=True),
    st.text(max_size=40), st.text(alphabet="\u202e\u0000\ud7ff\U0001f600ï¿½../$`;|&\n\"'", max_size=20),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)


def check(text: str, field: str | None = None, lines: tuple[int, int] | None = None) -> None:
    """Load ``text``; a failure must locate every problem by file and line (within the file, and within
    ``lines`` when given), and name a field on the path of ``field`` when given (the field mutated)."""
    try:
        parse_domain(text, "domains/f.yaml", ROOT, ROOT / "domains")
    except SpecError as exc:
        assert exc.problems, "a SpecError must carry at least one problem"
        last = len(text.splitlines()) + 1  # YAML breaks lines at \r, \n, \x85, \u2028 and \u2029 too
        for problem in exc.problems:
            assert problem.file == "domains/f.yaml"
            assert problem.message
            assert problem.line is not None and 1 <= problem.line <= last, (problem, last)
            assert problem.render().startswith(f"domains/f.yaml:{problem.line}:"), problem.render()
            if lines is not None:
                assert lines[0] <= problem.line <= lines[1], (problem, lines)
            if field is not None:
                assert problem.field is not None, problem
                assert on_path(problem.field, field), (problem.field, field)


def on_path(found: str, mutated: str) -> bool:
    """``found`` is the mutated field, inside it, or the entry that holds it."""
    if found == mutated or found.startswith((mutated + ".", mutated + "[")):
        return True
    return mutated.startswith((found + ".", found + "["))


def dotted(path: list) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else (f".{k}" if i else k) for i, k in enumerate(path))


def span(text: str, path: list) -> tuple[int, int]:
    """First and last line (1-based) of the entry at ``path`` in ``text``, from its key to the end of its value,
    widened to the entry that holds it (a problem about a missing or conflicting key is located there)."""
    node, start = yaml.compose(text), 1
    holder = (1, 1)
    for key in path:
        holder = (node.start_mark.line + 1, node.end_mark.line + 1)
        if isinstance(key, int):
            node = node.value[key]
            start = node.start_mark.line + 1
        else:
            key_node, node = next((k, v) for k, v in node.value if k.value == key)
            start = key_node.start_mark.line + 1
    return min(start, holder[0]), max(node.end_mark.line + 1, start)


def mutate(data: dict, path: list, value) -> dict:
    """A deep copy of ``data`` with the value at ``path`` (keys and indexes) replaced."""
    import copy

    out = copy.deepcopy(data)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


PATHS = [["domain"], ["title"], ["risk"], ["owners"], ["ground_truth"], ["ground_truth", 0, "path"],
         ["ground_truth", 0, "provenance"], ["verifiers", 0, "kind"], ["verifiers", 0, "options"],
         ["verifiers", 0], ["slices", 0, "when"], ["training", "grpo"], ["deployment", "target"], ["extra"]]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), values)
def test_mutated_fields_load_or_fail_with_location(path, value):
    text = yaml.safe_dump(mutate(BASE, path, value), allow_unicode=True)
    check(text, field=dotted(path), lines=span(text, path))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.printable + "\u00e9\u4e2d{}[]&*!|>-:#'\"%@`", max_size=300))
def test_random_text_loads_or_fails_with_location(text):
    check(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=400), st.text(min_size=1, max_size=5))
def test_truncated_and_spliced_files(cut, splice):
    good = yaml.safe_dump(BASE)
    check(good[:cut] + splice + good[cut:])


def test_huge_and_hostile_values_fail_cleanly():
    for text in ["domain: " + "a" * 1_000_000, "a: " + "[" * 5000, "title: !!binary aGVsbG8=",
                 "x: !!python/name:os.system", "? [a, b]\n: c\n", "\ufeffdomain: x", "domain: x\n" * 2]:
        check(text)

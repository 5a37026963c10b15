"""Fuzzing policy files and dataset rows: every input loads or fails with a located error."""

from __future__ import annotations

import json
import string
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graduation.data import read_rows
from graduation.errors import DataError, SpecError
from graduation.policy.model import packaged_policy_path, parse_policy
from tests.test_fuzz_domain_files import mutate

DEFAULT = yaml.safe_load(packaged_policy_path().read_text())

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20),
                    st.floats(allow_nan=True), st.text(max_size=30),
                    st.sampled_from(["true", "phase ==", "size(data.symbols) > 0", "data.nope > 1",
                                     "phase + 1", "'a' * 9999999", "evidence.eval.n > 'x'", "))", "{}[", "1/0 == 1"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=10)
POLICY_PATHS = [["policy"], ["thresholds"], ["thresholds", "high"], ["thresholds", "high", "min_samples"],
                ["thresholds", "critical", "min_wilson_lower"], ["rules"], ["rules", 0], ["rules", 0, "when"],
                ["rules", 0, "effect"], ["rules", 0, "actions"], ["rules", 1, "id"], ["rules", 2, "reason"],
                ["extra"]]


def check_policy(text: str) -> None:
    try:
        parse_policy(text, "policies/fuzz.yaml")
    except SpecError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.file == "policies/fuzz.yaml" and problem.message
            assert problem.render().startswith("policies/fuzz.yaml")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(POLICY_PATHS), values)
def test_mutated_policy_loads_or_fails_with_location(path, value):
    check_policy(yaml.safe_dump(mutate(DEFAULT, path, value), allow_unicode=True))


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=string.printable + "é{}[]&*!|>-:#'\"", max_size=200))
def test_random_policy_text(text):
    check_policy(text)


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                     st.text(max_size=20)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=8)
lines = st.one_of(json_values.map(lambda v: json.dumps(v)),
                  st.text(alphabet=string.printable + "\u00e9\u2028", max_size=40),
                  st.just('{"prompt": "a", "answer": "b"}'))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(lines, min_size=1, max_size=12), st.sampled_from(["jsonl", "json", "csv"]))
def test_dataset_rows_are_read_or_reported_by_line(tmp_path_factory, rows, fmt):
    path = Path(tmp_path_factory.mktemp("rows")) / f"data.{fmt}"
    text = ("\n".join(rows) + "\n") if fmt != "json" else "[" + ",".join(rows) + "]"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        got = read_rows(path)
    except DataError as exc:
        message = str(exc)
        assert str(path) in message or "data." in message
        return
    assert all(isinstance(r, dict) for r in got)


def test_invalid_utf8_and_binary_rows_are_reported(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"prompt": "ok", "answer": "1"}\n{"prompt": "\xff\xfe", "answer": "2"}\n\x00\x01\x02\n')
    try:
        read_rows(path)
    except DataError as exc:
        assert "bad.jsonl:2" in str(exc) or "bad.jsonl:3" in str(exc)
    else:
        raise AssertionError("invalid UTF-8 and binary garbage must be reported")

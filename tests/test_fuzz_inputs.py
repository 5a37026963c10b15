"""Fuzzing policy files and dataset rows: every input loads, or fails naming the line (and the field) of each
problem."""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graduation.rows import ReadReport, iter_rows, read_rows
from graduation.errors import DataError, SpecError
from graduation.policy.model import packaged_policy_path, parse_policy
from tests.test_fuzz_domain_files import dotted, mutate, on_path, span

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


def check_policy(text: str, field: str | None = None, lines: tuple[int, int] | None = None) -> None:
    """Load a policy; every problem of a failure is located by file and line (within the file, and within
    ``lines`` when given) and names a field on the path of ``field`` (the one mutated) when given."""
    try:
        parse_policy(text, "policies/fuzz.yaml")
    except SpecError as exc:
        assert exc.problems
        last = len(text.splitlines()) + 1
        for problem in exc.problems:
            assert problem.file == "policies/fuzz.yaml" and problem.message
            assert problem.line is not None and 1 <= problem.line <= last, (problem, last)
            assert problem.render().startswith(f"policies/fuzz.yaml:{problem.line}:"), problem.render()
            if lines is not None:
                assert lines[0] <= problem.line <= lines[1], (problem, lines)
            if field is not None:
                assert problem.field is not None and on_path(problem.field, field), (problem, field)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(POLICY_PATHS), values)
def test_mutated_policy_loads_or_fails_with_location(path, value):
    text = yaml.safe_dump(mutate(DEFAULT, path, value), allow_unicode=True)
    check_policy(text, field=dotted(path), lines=span(text, path))


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=string.printable + "é{}[]&*!|>-:#'\"", max_size=200))
def test_random_policy_text(text):
    check_policy(text)


# -- dataset rows -------------------------------------------------------------------------------------
# Every fuzzed data file holds real invalid UTF-8 (the premise is asserted): inside a JSON string or a CSV value
# it is kept, byte for byte, as surrogate escapes (the README: that output's verdict becomes `error`); outside
# any string it is a malformed row reported with its line.

json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                                     st.text(max_size=20)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                           max_leaves=8)
ONE_LINE = "".join(c for c in string.printable if c not in "\r\n") + "\u00e9\u2028"
INVALID = st.sampled_from([b"\xff", b"\xfe\xfa", b"\xc3\x28", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\xf8\x88"])
json_lines = st.one_of(json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8")),
                       st.text(alphabet=ONE_LINE, max_size=40).map(str.encode),
                       st.just(b'{"prompt": "a", "answer": "b"}'))
csv_lines = st.one_of(st.lists(st.text(alphabet=ONE_LINE.replace('"', "").replace(",", ""), max_size=12),
                               min_size=1, max_size=3).map(lambda vs: ",".join(vs).encode()),
                      st.just(b"a,b"))
HEADER = {"jsonl": b"", "json": b"[\n", "csv": b"prompt,output\n"}


@st.composite
def data_files(draw) -> tuple[str, list[bytes], int, bytes | None]:
    """(format, the rows' lines, index of the line with invalid UTF-8, the value it is in when inside a string)."""
    fmt = draw(st.sampled_from(["jsonl", "json", "csv"]))
    lines = draw(st.lists(csv_lines if fmt == "csv" else json_lines, max_size=12))
    bad, inside = draw(INVALID), fmt == "csv" or draw(st.booleans())
    if fmt == "csv":
        line = b"p," + bad + b" tail"
    else:
        line = b'{"prompt": "p", "output": "' + bad + b' tail"}' if inside else b'{"prompt": ' + bad + b"}"
    at = draw(st.integers(min_value=0, max_value=len(lines)))
    lines.insert(at, line)
    return fmt, lines, at, bad + b" tail" if inside else None


def valid_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def expected_jsonl(lines: list[bytes]) -> tuple[list[tuple[int, dict]], list[int]]:
    """One row per line: (line, row) of the objects, and the lines that are not a JSON object."""
    rows, problems = [], []
    for number, raw in enumerate(lines, 1):
        text = raw.decode("utf-8", "surrogateescape")
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            problems.append(number)
            continue
        (rows.append((number, value)) if isinstance(value, dict) else problems.append(number))
    return rows, problems


def expected_csv(lines: list[bytes]) -> tuple[list[tuple[int, dict]], list[int]]:
    rows, problems = [], []
    for number, raw in enumerate(lines, 2):
        values = raw.decode("utf-8", "surrogateescape").split(",")
        if values == [""]:
            continue
        (rows.append((number, dict(zip(["prompt", "output"], values)))) if len(values) == 2
         else problems.append(number))
    return rows, problems


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data_files())
def test_dataset_rows_are_read_or_reported_by_line(tmp_path_factory, case):
    fmt, lines, at, kept = case
    assert not all(valid_utf8(line) for line in lines), "every fuzzed data file must hold invalid UTF-8"
    body = HEADER[fmt] + (b",\n" if fmt == "json" else b"\n").join(lines) + (b"\n]\n" if fmt == "json" else b"\n")
    path = Path(tmp_path_factory.mktemp("rows")) / f"rows.{fmt}"
    path.write_bytes(body)
    name = f"domains/data/fuzzed.{fmt}"
    report = ReadReport(name)
    got = list(iter_rows(path, report, display=name))
    last = body.count(b"\n")
    problems = [line for line, _ in report.problems]
    for line, message in report.problems:
        assert 1 <= line <= last and message, (line, message)
    if report.count:
        try:
            report.raise_if_any()
        except DataError as exc:
            for line, message in report.problems:
                assert f"{name}:{line}: {message}" in str(exc)
        else:
            raise AssertionError("problems found but no error raised")
    bad_line = at + (1 if fmt == "jsonl" else 2)
    if fmt in ("jsonl", "csv"):
        rows, expected_problems = expected_jsonl(lines) if fmt == "jsonl" else expected_csv(lines)
        assert [line for line, _ in got] == [line for line, _ in rows]
        assert all(same(a, b) for (_, a), (_, b) in zip(got, rows))
        assert report.count == len(expected_problems) and problems == expected_problems[:len(problems)]
    else:
        texts = [line.decode("utf-8", "surrogateescape") for line in lines]
        try:
            whole = json.loads(body.decode("utf-8", "surrogateescape"))
        except (ValueError, RecursionError):
            whole = None
        if whole is None:
            assert report.count >= 1 and all(line >= 2 for line in problems)
        else:
            assert [r for _, r in got] == [v for v in whole if isinstance(v, dict)] or \
                same([r for _, r in got], [v for v in whole if isinstance(v, dict)])
            assert report.count == sum(not isinstance(v, dict) for v in whole)
            if all(_parses(t) for t in texts):  # one element per line: each row and problem at its own line
                assert [line for line, _ in got] == [n for n, v in enumerate(whole, 2) if isinstance(v, dict)]
                assert problems == [n for n, v in enumerate(whole, 2) if not isinstance(v, dict)][:len(problems)]
        if any(line < bad_line for line in problems) or (whole is None and not all(map(_parses, texts[:at]))):
            return  # the array was broken before the line with invalid UTF-8: reading stopped there
    if kept is not None:  # kept byte for byte: the verifier answers `error` for this output alone
        assert dict(got)[bad_line]["output"].encode("utf-8", "surrogateescape") == kept
        assert bad_line not in problems
    else:
        assert bad_line in problems and bad_line not in dict(got)


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def test_invalid_utf8_is_kept_inside_strings_and_reported_elsewhere(tmp_path: Path):
    """Row 2 holds invalid UTF-8 inside a string: read, bytes kept. Row 3 holds it outside any string, row 4 is
    binary garbage: each reported with its own line."""
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"prompt": "ok", "answer": "1"}\n{"prompt": "\xff\xfe", "answer": "2"}\n'
                     b'{"prompt": \xff}\n\x00\x01\x02\n')
    report = ReadReport("bad.jsonl")
    rows = list(iter_rows(path, report, display="bad.jsonl"))
    assert [line for line, _ in rows] == [1, 2]
    assert rows[1][1]["prompt"].encode("utf-8", "surrogateescape") == b"\xff\xfe"
    assert [line for line, _ in report.problems] == [3, 4]
    with pytest.raises(DataError) as info:
        read_rows(path, display="bad.jsonl")
    assert "bad.jsonl:3: not valid JSON" in str(info.value) and "bad.jsonl:4: not valid JSON" in str(info.value)

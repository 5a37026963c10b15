"""A new team's first week (issue 15): each broken domain file a newcomer wrote is caught by `validate`
(and `register`) with file:line, exit 2, nothing stored; results per row; terminals; `--json` errors;
the small things people expect; corrupt inputs; bounded-memory symbol scan."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO, run_registry

SQL_DOMAIN = """\
domain: text-to-sql
title: Text to SQL checked on a fixture database
risk: medium
owners: [data@example.org]
task: {prompt_field: question, answer_field: sql}
ground_truth:
  - {name: gold, path: data/sql.jsonl, provenance: expert}
verifiers:
  - {name: same-sql, kind: exact, role: substance}
  - {name: select-shape, kind: regex, role: format, options: {pattern: '^SELECT '}}
slices:
  - {name: single-table, when: "kind == 'single'"}
"""

SQL_ROWS = "".join(json.dumps({"question": f"count rows of t{i}", "sql": f"SELECT count(*) FROM t{i}",
                               "kind": "single" if i % 2 else "join"}) + "\n" for i in range(6))

# Each: (what the newcomer wrote instead, the text that must appear with its file:line, the line).
BROKEN = {
    "kind typo pyhton": ("kind: exact, role: substance}", "kind: pyhton, role: substance}", "pyhton", 9),
    "kind regexp": ("kind: regex, role: format", "kind: regexp, role: format", "did you mean 'regex'", 10),
    "unbalanced regex": ("pattern: '^SELECT '", "pattern: '^(SELECT '", "missing )", 10),
    "slice with =": ("kind == 'single'", "kind = 'single'", "does not compile as CEL", 12),
    "unknown option": ("options: {pattern: '^SELECT '}", "options: {pattern: '^SELECT ', ful_match: true}",
                       "did you mean 'full_match'", 10),
    "answer field absent": ("answer_field: sql", "answer_field: query", "no 'query' field", 5),
    "python module that cannot be imported": (
        "{name: same-sql, kind: exact, role: substance}",
        "{name: same-sql, kind: python, role: substance, options: {function: 'checks.nosuch:run'}}",
        "cannot import 'checks.nosuch'", 9),
}


def _sql_project(root: Path, text: str = SQL_DOMAIN) -> Path:
    for d in ("domains/data", "policies", "registry"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "domains" / "sql.yaml").write_text(text)
    (root / "domains" / "data" / "sql.jsonl").write_text(SQL_ROWS)
    return root


_MAIN = "import sys; sys.argv[0] = 'registry'; from graduation.cli import main; main()"


def _registry(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "80", **(env or {})}
    full.pop("GRADUATION_PROJECT", None)
    return subprocess.run([sys.executable, "-c", _MAIN, *args], cwd=cwd, capture_output=True,
                          text=True, env=full, timeout=120)


def test_the_good_sql_domain_validates(tmp_path):
    root = _sql_project(tmp_path)
    done = _registry("validate", "domains/", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_validate_and_register_refuse_what_would_break_later(tmp_path, case):
    old, new, expected, line = BROKEN[case]
    assert old in SQL_DOMAIN
    root = _sql_project(tmp_path, SQL_DOMAIN.replace(old, new))
    done = _registry("validate", "domains/", cwd=root)
    assert done.returncode == 2, done.stdout + done.stderr
    assert re.search(rf"domains/sql\.yaml:{line}:\d+: ", done.stderr), done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert "absl" not in done.stderr and "WARNING: All log" not in done.stderr
    registered = _registry("register", "domains/", cwd=root)
    assert registered.returncode == 2 and expected in registered.stderr
    assert not (root / "registry" / "registry.db").exists() or _versions(root) == 0


def _versions(root: Path) -> int:
    with sqlite3.connect(root / "registry" / "registry.db") as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
        return conn.execute("select count(*) from domain_versions").fetchone()[0] if "domain_versions" in \
            tables else 0


def test_a_slice_on_a_field_no_ground_truth_row_has_is_a_warning_with_its_line(tmp_path):
    root = _sql_project(tmp_path, SQL_DOMAIN.replace("kind == 'single'", "knd == 'single'"))
    done = _registry("validate", "domains/", cwd=root)  # the output rows may carry it: not an error
    assert done.returncode == 0 and re.search(r"warning:.*sql\.yaml:12:\d+: slices\[0\]\.when: .*knd", done.stderr)


def test_validate_json_lists_every_problem_with_its_position(tmp_path):
    text = SQL_DOMAIN
    for case in ("kind regexp", "answer field absent", "slice with ="):
        old, new, *_ = BROKEN[case]
        text = text.replace(old, new)
    root = _sql_project(tmp_path, text)
    done = _registry("validate", "domains/", "--json", cwd=root)
    assert done.returncode == 2
    problems = json.loads(done.stdout)["problems"]
    assert {(p["line"], p["field"]) for p in problems} == {
        (10, "verifiers[1].kind"), (5, "task.answer_field"), (12, "slices[0].when")}


def test_a_python_verifier_is_imported_in_a_worker_not_in_the_registry_process(tmp_path):
    root = _sql_project(tmp_path, SQL_DOMAIN.replace(
        "{name: same-sql, kind: exact, role: substance}",
        "{name: same-sql, kind: python, role: substance, options: {function: 'checks:run'}}"))
    (root / "checks.py").write_text(textwrap.dedent("""\
        def run(output, reference, row):
            return output == reference
        """))
    import sys

    from typer.testing import CliRunner

    from graduation.cli import app

    sys.modules.pop("checks", None)
    result = CliRunner().invoke(app, ["--project", str(root), "validate", str(root / "domains")])
    assert result.exit_code == 0, result.output
    assert "checks" not in sys.modules  # never imported in the registry process (the worker, sandboxed, did)
    (root / "checks.py").write_text("raise RuntimeError('broken on import')\n")
    result = CliRunner().invoke(app, ["--project", str(root), "validate", str(root / "domains")])
    assert result.exit_code == 2 and "broken on import" in result.output


# -- 4. results per row ---------------------------------------------------------------------------------

ARITH = """\
domain: arith
title: Arithmetic with an explanation
risk: low
owners: [team@example.org]
ground_truth:
  - {name: book, path: data/arith.jsonl, provenance: expert}
verifiers:
  - {name: answer, kind: exact, role: substance, options: {extract: '(-?[0-9]+)$'}}
  - {name: shape, kind: regex, role: format, options: {pattern: '[0-9]+$'}}
"""


def _arith(project: Path, n: int = 40) -> None:
    (project / "domains" / "data").mkdir(parents=True, exist_ok=True)
    (project / "domains" / "arith.yaml").write_text(ARITH)
    (project / "domains" / "data" / "arith.jsonl").write_text(
        "".join(json.dumps({"prompt": f"{i}+1=", "answer": str(i + 1)}) + "\n" for i in range(n)))


def _candidate(path: Path, n: int = 40) -> dict[int, str]:
    """Rows 1..n: every 4th is wrong, every 5th carries golden_hour_sun; returns the expected verdict per line."""
    expected = {}
    with path.open("w") as fh:
        for i in range(n):
            wrong, invented = i % 4 == 0, i % 5 == 0
            text = ("using golden_hour_sun " if invented else "") + f"so {i + (2 if wrong else 1)}"
            fh.write(json.dumps({"prompt": f"{i}+1=", "answer": text, "note": f"row {i}"}) + "\n")
            expected[i + 1] = "fail" if wrong else "pass"
    return expected


MODEL_DIGEST = "sha256:" + "ab" * 32  # the artifact of model 'm', kept elsewhere


def _register_m(cli=None, root: Path | None = None) -> None:
    """Register the model 'm' the tests evaluate (evaluate refuses a model the registry does not know)."""
    args = ("models", "register", "m", "--digest", MODEL_DIGEST)
    if cli is not None:
        result = cli(*args)
        assert result.exit_code == 0, result.output
    else:
        done = _registry(*args, cwd=root)
        assert done.returncode == 0, done.stdout + done.stderr


def test_evaluate_and_audit_write_one_line_per_item(cli, project: Path):
    _arith(project)
    assert cli("register", str(project / "domains")).exit_code == 0
    _register_m(cli)
    outputs = project / "outputs.jsonl"
    expected = _candidate(outputs)
    with outputs.open("a") as fh:
        fh.write('{"prompt": "unknown", "output": "3"}\n')  # a row the scan cannot use: reported, not lost
    rows_file = project / "eval-rows.jsonl"
    outputs.write_text(outputs.read_text().replace('"answer"', '"output"'))
    result = cli("evaluate", "arith", "--outputs", str(outputs), "--model", "m", "--rows", str(rows_file))
    assert result.exit_code == 2 and not rows_file.exists()  # bad input: nothing written, not even the rows
    outputs.write_text("".join(outputs.read_text().splitlines(True)[:-1]))
    result = cli("evaluate", "arith", "--outputs", str(outputs), "--model", "m", "--rows", str(rows_file))
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in rows_file.read_text().splitlines()]
    assert [x["line"] for x in lines] == list(range(1, 41))
    assert {x["line"]: x["verdicts"][0]["verdict"] for x in lines} == expected
    assert all(x["passed"] == (expected[x["line"]] == "pass") for x in lines)
    failing = next(x for x in lines if not x["passed"])
    assert failing["verdicts"][0]["explanation"] and failing["verdicts"][0]["verifier"] == "answer"
    assert {x["line"] for x in lines if x["flagged_symbols"] == ["golden_hour_sun"]} == set(range(1, 41, 5))
    assert stat.S_IMODE(rows_file.stat().st_mode) == 0o644


def test_audit_data_write_clean_keeps_only_clean_rows_with_lineage(cli, project: Path):
    _arith(project)
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("models", "register", "m", "--digest", "sha256:" + "1" * 64).exit_code == 0  # rounds need a model
    candidate = project / "candidate.jsonl"
    expected = _candidate(candidate)
    clean, rows_file = project / "clean.jsonl", project / "audit-rows.jsonl"
    result = cli("audit-data", "arith", str(candidate), "--generated-by", "m-7b", "--rows", str(rows_file),
                 "--write-clean", str(clean), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(rows_file.read_text().splitlines()) == 40
    kept = [json.loads(x) for x in clean.read_text().splitlines()]
    want = [line for line, v in expected.items() if v == "pass" and (line - 1) % 5 != 0]
    assert [r["_lineage"]["line"] for r in kept] == want
    assert all("golden_hour_sun" not in r["answer"] for r in kept)
    lineage = kept[0]["_lineage"]
    assert lineage["domain"] == "arith" and lineage["domain_version"] == 1 and lineage["generated_by"] == "m-7b"
    assert lineage["audit"] == data["evidence"][-1] and len(lineage["data_hash"]) == 64
    assert kept[0]["note"] == f"row {want[0] - 1}"  # the row as it was read, plus its lineage


def test_the_report_links_a_few_failing_examples_per_round(cli, project: Path):
    _arith(project)
    assert cli("register", str(project / "domains")).exit_code == 0
    _register_m(cli)
    outputs = project / "outputs.jsonl"
    _candidate(outputs)
    outputs.write_text(outputs.read_text().replace('"answer"', '"output"'))
    assert cli("evaluate", "arith", "--outputs", str(outputs), "--model", "m").exit_code == 0
    shown = json.loads(cli("evidence", "arith", "--kind", "eval", "--json").output)["evidence"][0]
    assert shown["summary"]["failing_examples"] == [f"outputs.jsonl:{n}" for n in (1, 5, 9, 13, 17)]
    result = cli("report", "--json")
    assert result.exit_code == 0, result.output
    page = (project / "registry" / "reports" / "domains" / "arith.html").read_text()
    assert '<a href="../../../outputs.jsonl#L1"><code>outputs.jsonl:1</code></a>' in page
    assert "outputs.jsonl:13" not in page  # a few, not all


# -- 5. terminals -----------------------------------------------------------------------------------------

def _many_domains(root: Path, n: int = 40) -> None:
    for d in ("domains/data", "policies", "registry"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        name = f"pedestrian-perception-night-{i:02d}"
        (root / "domains" / f"{name}.yaml").write_text(ARITH.replace("domain: arith", f"domain: {name}")
                                                        .replace("data/arith.jsonl", f"data/{name}.jsonl"))
        (root / "domains" / "data" / f"{name}.jsonl").write_text('{"prompt": "1+1=", "answer": "2"}\n')


@pytest.mark.parametrize("columns", [80, 100])
def test_tables_fit_80_and_100_columns_without_splitting_tokens(tmp_path, columns):
    _many_domains(tmp_path, 3)
    env = {"COLUMNS": str(columns)}
    assert _registry("register", "domains/", cwd=tmp_path, env=env).returncode == 0
    names = [f"pedestrian-perception-night-{i:02d}" for i in range(3)]
    for args in (("status",), ("list",), ("history", names[0]), ("evidence", names[0])):
        done = _registry(*args, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        lines = [line for line in done.stdout.splitlines() if line[:1] in "┏┃┡│└"]  # the tables
        assert all(len(line) <= columns for line in lines), (args, max(map(len, lines)))
        if args[0] in ("status", "list"):
            for name in names:  # whole on one line, never folded mid-token
                assert any(name in line for line in lines), (args, done.stdout)
        stamps = re.findall(r"\d{4}-\d\d-\d\dT[\d:]*", done.stdout)
        assert all(len(s) == 19 for s in stamps), stamps
    wide = _registry("list", "--wide", cwd=tmp_path, env=env)
    assert "Arithmetic with an explanation" in wide.stdout and "not shown" not in wide.stdout


def test_unmet_criteria_are_shown_once_per_domain(tmp_path):
    _many_domains(tmp_path, 1)
    name = "pedestrian-perception-night-00"
    assert _registry("register", "domains/", cwd=tmp_path).returncode == 0
    done = _registry("status", name, cwd=tmp_path)
    assert done.returncode == 0
    for line in set(done.stdout.splitlines()):
        if "unmet" not in line and line.startswith("  - "):
            assert done.stdout.count(line + "\n") == 1 or line.startswith("  - ["), line


def test_a_reader_that_stops_early_is_not_an_error(tmp_path):
    _many_domains(tmp_path, 40)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    assert _registry("register", "domains/", cwd=tmp_path).returncode == 0
    _register_m(root=tmp_path)  # a deploy gate names the model it is asked about
    for args, code in ((["status"], 0), (["status", "--json"], 0), (["list", "--json"], 0),
                       (["status", "--require", "deploy:shadow", "--model", "m"], 1)):
        done = subprocess.run(["bash", "-o", "pipefail", "-c",
                               f"{sys.executable} -c \"{_MAIN}\" {' '.join(args)} | head -1"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == code, (args, done.stderr)
        assert done.stderr == "" and len(done.stdout.splitlines()) == 1, (args, done.stderr)


# -- 6. --json for scripts ---------------------------------------------------------------------------------

def test_json_errors_are_json_on_stdout_with_the_exit_code(tmp_path):
    _many_domains(tmp_path, 1)
    for args in (("status", "nosuch", "--json"), ("show", "nosuch", "--json"), ("status", "--json", "--bogus"),
                 ("evaluate", "nosuch", "--outputs", "x.jsonl", "--model", "m", "--json")):
        done = _registry(*args, cwd=tmp_path)
        assert done.returncode == 2, args
        data = json.loads(done.stdout)
        assert data["schema_version"] == 1 and data["ok"] is False and data["exit_code"] == 2
        assert data["error"]["message"], args
    ok = json.loads(_registry("validate", "domains/", "--json", cwd=tmp_path).stdout)
    assert ok["schema_version"] == 1


def test_unmet_criteria_are_data_in_status_json(cli, project: Path):
    _arith(project)
    assert cli("register", str(project / "domains")).exit_code == 0
    _register_m(cli)
    outputs = project / "outputs.jsonl"
    _candidate(outputs)
    outputs.write_text(outputs.read_text().replace('"answer"', '"output"'))
    assert cli("evaluate", "arith", "--outputs", str(outputs), "--model", "m").exit_code == 0
    data = json.loads(cli("status", "arith", "--json").output)
    assert data["schema_version"] == 1
    criteria = data["decisions"][0]["unmet_criteria"]
    assert criteria and all(set(c) >= {"criterion", "actual", "required", "round"} for c in criteria)
    numeric = [c for c in criteria if c["actual"] is not None]
    assert numeric and all(c["round"] == 1 for c in numeric if "(r1" in c["text"] or "(round 1" in c["text"])
    # 40 distinct prompts meet the low-risk floor; the bound over them does not
    bound = next(c for c in criteria if c["criterion"] == "Wilson lower bound")
    assert bound["actual"] == 0.6 and bound["required"] == 0.8 and bound["round"] == 1
    texts = [c["text"] for c in criteria]
    assert len(texts) == len(set(texts))  # each once


def test_unmet_data_reads_numbers_and_rounds():
    from graduation.cli.policy_render import unmet_data

    got = unmet_data("slice night: Wilson lower bound 0.53 < 0.95 (pass rate 0.88 on 8 items, r3)")
    assert got["criterion"].startswith("slice night: Wilson lower bound")
    assert (got["actual"], got["required"]) == (0.53, 0.95)
    assert unmet_data("samples 8 < 200 (r2)")["round"] == 2
    assert unmet_data("samples 8 < 200 (r2)")["actual"] == 8
    none = unmet_data("no evaluation rounds yet: evaluate the model")
    assert none["actual"] is None and none["criterion"] == "no evaluation rounds yet"


def test_verifiers_check_json_has_no_repeated_block(cli, project: Path):
    _arith(project)
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("models", "register", "m", "--digest", "sha256:" + "1" * 64).exit_code == 0  # rounds need a model
    data = json.loads(cli("verifiers", "check", "arith", "--json").output)
    assert data["schema_version"] == 1
    assert "verifier_validation" not in data  # the record is the validation: printed once
    assert data["record"]["verifiers"][0]["name"] == "answer"


# -- 7. small things people expect --------------------------------------------------------------------------

def test_version_completion_and_flags_without_placeholders(tmp_path):
    done = _registry("--version", cwd=tmp_path)
    assert done.returncode == 0 and re.match(r"registry \(graduation\) \S+", done.stdout)
    _many_domains(tmp_path, 2)
    assert _registry("register", "domains/", cwd=tmp_path).returncode == 0
    complete = {"_REGISTRY_COMPLETE": "complete_bash", "COMP_CWORD": "2"}
    got = _registry(cwd=tmp_path, env={**complete, "COMP_WORDS": "registry show pedestrian-perception-night-0"})
    assert got.stdout.split() == ["pedestrian-perception-night-00", "pedestrian-perception-night-01"]
    got = _registry(cwd=tmp_path, env={**complete, "COMP_CWORD": "3",
                                        "COMP_WORDS": "registry explain pedestrian-perception-night-00 deploy:a"})
    assert got.stdout.split() == ["deploy:assisted", "deploy:autonomous"]
    from graduation.cli.complete import job_ids, model_names

    os.chdir(tmp_path)
    assert job_ids("") == [] and model_names("") == []  # no jobs yet; no model registered yet
    help_ = _registry("audit-data", "-h", cwd=tmp_path, env={"COLUMNS": "120"})
    assert "--no-cache" in help_.stdout and "--json" in help_.stdout and "<bool>" not in help_.stdout
    assert "--graduated" not in help_.stdout  # no longer declared: looked up in the registry


def test_model_completion_reads_a_models_table_when_there_is_one(tmp_path):
    _many_domains(tmp_path, 1)
    assert _registry("register", "domains/", cwd=tmp_path).returncode == 0
    for name, digest in (("qwen-7b", "01"), ("qwen-7b", "02"), ("llama-3b", "03")):  # qwen-7b: two versions
        done = _registry("models", "register", name, "--digest", "sha256:" + digest * 32, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
    os.chdir(tmp_path)
    from graduation.cli.complete import model_names

    assert model_names("") == ["llama-3b", "qwen-7b"] and model_names("q") == ["qwen-7b"]


def test_a_fresh_project_passes_its_policy_tests_and_gates(tmp_path):
    target = tmp_path / "fresh"
    done = _registry("init", str(target), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    tests = _registry("policy", "test", "policies/tests", cwd=target)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert _registry("validate", "examples/", cwd=target).returncode == 0
    empty = _registry("register", "domains/", cwd=target)
    assert empty.returncode == 2 and "examples/example.yaml" in empty.stderr  # nothing yet: says how to start
    import shutil

    shutil.copytree(target / "examples" / "data", target / "domains" / "data")
    (target / "domains" / "mine.yaml").write_text((target / "examples" / "example.yaml").read_text()
                                                  .replace("domain: example-arithmetic", "domain: mine"))
    assert _registry("register", "domains/", cwd=target).returncode == 0
    assert _registry("verifiers", "check", "mine", cwd=target).returncode == 0
    gate = _registry("status", "--require", "train:grpo", cwd=target)
    assert gate.returncode == 0, gate.stdout + gate.stderr  # only the team's own domain counts in the gate
    assert "example-arithmetic" not in gate.stdout and "mine" in gate.stdout
    report = _registry("report", cwd=target, env={})
    assert report.returncode == 0, report.stderr
    for page in (target / "registry" / "reports").rglob("*.html"):
        assert stat.S_IMODE(page.stat().st_mode) & 0o044 == 0o044  # readable by others (0644 under umask 022)


def test_outside_a_project_the_message_says_how_projects_are_found(tmp_path):
    done = _registry("list", cwd=tmp_path)
    assert done.returncode == 2 and not (tmp_path / "registry").exists()
    assert "not inside a graduation project" in done.stderr and "-C DIR" in done.stderr
    assert "domains/" in done.stderr


# -- 3. mutation leaks explained -----------------------------------------------------------------------------

LENIENT = ARITH.replace("{name: answer, kind: exact, role: substance, options: {extract: '(-?[0-9]+)$'}}",
                        "{name: answer, kind: numeric, role: substance}")


def test_mutation_leaks_name_the_family_the_rows_and_the_way_out(cli, project: Path):
    _arith(project)
    (project / "domains" / "arith.yaml").write_text(LENIENT.replace("title: Arithmetic with an explanation",
                                                                    "title: Lenient"))
    assert cli("register", str(project / "domains")).exit_code == 0
    result = cli("verifiers", "check", "arith", "--json")
    assert result.exit_code == 1
    check = json.loads(result.output)["record"]["verifiers"][0]
    reason = next(r for r in check["reasons"] if "generated wrong answers" in r)
    assert "injected_symbol on 40 of 40 (rows 0+1=, 1+1=, 2+1=, 3+1= and 36 more)" in reason
    assert "mutations: {exclude: [injected_symbol]}" in reason
    assert len(check["leaked_controls"]) == len(set(check["leaked_controls"])) == 10
    assert "mutation:injected_symbol (row 0+1=): '$1 + q$'" in check["leaked_controls"]
    # The way out it names works: the family excluded, the verifier is trustworthy on the rest.
    (project / "domains" / "arith.yaml").write_text(LENIENT.replace(
        "kind: numeric, role: substance}", "kind: numeric, role: substance, "
                                           "mutations: {exclude: [injected_symbol]}}"))
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("verifiers", "check", "arith").exit_code == 0
    (project / "domains" / "arith.yaml").write_text(LENIENT.replace(
        "kind: numeric, role: substance}", "kind: numeric, role: substance, mutations: {exclude: [typo]}}"))
    bad = cli("validate", str(project / "domains"))
    assert bad.exit_code == 2 and "arith.yaml:8" in bad.output


# -- 8. no tracebacks, no exit 1 for broken input -------------------------------------------------------------

def test_a_corrupt_parquet_page_is_a_clear_exit_2(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path
    _arith(root)
    (root / "policies").mkdir()
    (root / "registry").mkdir()
    assert _registry("register", "domains/", cwd=root).returncode == 0
    _register_m(root=root)
    rows = [{"prompt": f"{i % 40}+1=", "output": str(i % 40 + 1)} for i in range(5000)]
    pq.write_table(pa.Table.from_pylist(rows), root / "good.parquet", compression="NONE", data_page_size=4096)
    data = bytearray((root / "good.parquet").read_bytes())
    start = len(data) // 3
    data[start:start + 200] = b"\xff" * 200  # one page's values overwritten
    (root / "bad.parquet").write_bytes(bytes(data))
    assert _registry("evaluate", "arith", "--outputs", "good.parquet", "--model", "m", "--json",
                     cwd=root).returncode == 0
    before = _evidence_count(root)
    for command in (("evaluate", "arith", "--outputs", "bad.parquet", "--model", "m"),
                    ("audit-data", "arith", "bad.parquet")):
        done = _registry(*command, cwd=root)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "bad.parquet:" in done.stderr
        assert "unreadable Parquet data" in done.stderr and "damaged" in done.stderr
    assert _evidence_count(root) == before  # nothing written


def _evidence_count(root: Path) -> int:
    with sqlite3.connect(root / "registry" / "registry.db") as conn:
        return conn.execute("select count(*) from evidence").fetchone()[0]


def test_a_partly_corrupted_sqlite_registry_is_a_clear_exit_2(tmp_path):
    _many_domains(tmp_path, 30)
    assert _registry("register", "domains/", cwd=tmp_path).returncode == 0
    _register_m(root=tmp_path)
    db = tmp_path / "registry" / "registry.db"
    with sqlite3.connect(db) as conn:
        conn.execute("pragma wal_checkpoint(truncate)")
        page_size = conn.execute("pragma page_size").fetchone()[0]
    data = bytearray(db.read_bytes())
    for page in range(2, len(data) // page_size, 2):  # every other page's b-tree header scrambled
        start = page * page_size + 8
        data[start:start + 52] = bytes((i * 7) & 0xFF for i in range(52))
    db.write_bytes(bytes(data))
    for command in (("list",), ("status",), ("status", "--require", "deploy:shadow", "--model", "m"),
                    ("register", "domains/"),
                    ("status", "--json")):
        done = _registry(*command, cwd=tmp_path)
        assert done.returncode == 2, (command, done.returncode, done.stderr[-500:])
        assert "Traceback" not in done.stderr and "damaged" in done.stderr, command
    assert json.loads(_registry("status", "--json", cwd=tmp_path).stdout)["exit_code"] == 2


# -- 2. verifier kinds documented where people look -------------------------------------------------------------

def test_schema_and_verifiers_kinds_document_every_option(tmp_path):
    schema = json.loads(_registry("schema", cwd=tmp_path).stdout)
    branches = {b["title"]: b for b in schema["$defs"]["VerifierSpec"]["oneOf"]}
    regex = branches["regex"]["properties"]["options"]
    assert regex["required"] == ["pattern"] and regex["additionalProperties"] is False
    assert regex["properties"]["full_match"] == {"type": "boolean", "default": False,
                                                 "description": "The pattern must match the whole output, not a part."}
    assert "plugin kind" in branches
    import jsonschema

    good = {"name": "shape", "kind": "regex", "role": "format", "options": {"pattern": "^x$"}}
    jsonschema.validate(good, {**schema["$defs"]["VerifierSpec"], "$defs": schema["$defs"]})
    with pytest.raises(jsonschema.ValidationError):  # the editor flags an unknown option of a kind
        jsonschema.validate({**good, "options": {"pattern": "^x$", "ful_match": True}},
                            {**schema["$defs"]["VerifierSpec"], "$defs": schema["$defs"]})
    listed = json.loads(_registry("verifiers", "kinds", "--json", cwd=tmp_path).stdout)["kinds"]
    names = {k["kind"] for k in listed}
    assert {"exact", "regex", "numeric", "math", "json_schema", "python", "command", "reasoning_gym"} <= names
    for k in listed:
        assert k["example"] and k["summary"], k["kind"]
        if k["kind"] in ("exact", "regex", "numeric", "python", "command", "reasoning_gym"):
            assert all(o["description"] for o in k["options"]), k["kind"]
    python = next(k for k in listed if k["kind"] == "python")
    assert [o["name"] for o in python["options"]] == ["function", "threshold"]
    text = _registry("verifiers", "kinds", "numeric", cwd=tmp_path, env={"COLUMNS": "100"})
    assert text.returncode == 0 and "last_number_fallback" in text.stdout and "e.g." in text.stdout


def test_the_docs_state_the_python_and_command_contract_with_a_worked_example():
    doc = (REPO / "docs" / "verifiers.md").read_text()
    for needed in ("def ", "(output, reference, row)", "Verdict", "explanation", "stdin", '"score"',
                   "reference-free", "registry verifiers kinds"):
        assert needed in doc, needed


def test_no_progress_frames_in_logs_and_results_after_the_bar(tmp_path):
    _arith(tmp_path)
    (tmp_path / "policies").mkdir()
    (tmp_path / "registry").mkdir()
    assert _registry("register", "domains/", cwd=tmp_path).returncode == 0
    _register_m(root=tmp_path)
    outputs = tmp_path / "outputs.jsonl"
    _candidate(outputs)
    outputs.write_text(outputs.read_text().replace('"answer"', '"output"'))
    done = _registry("evaluate", "arith", "--outputs", "outputs.jsonl", "--model", "m", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "\x1b[" not in done.stderr and "rows" not in done.stderr
    assert done.stdout.lstrip().startswith("evaluation of m")


# -- 9. bounded memory, through the command ----------------------------------------------------------------

def test_audit_data_with_a_tiny_summary_flags_exactly_what_an_unbounded_count_flags(cli, project: Path,
                                                                                      monkeypatch):
    import functools

    import graduation.service.data_audit as data_audit
    from graduation.evidence import SymbolScanner

    _arith(project)
    assert cli("register", str(project / "domains")).exit_code == 0
    candidate = project / "candidate.jsonl"
    with candidate.open("w") as fh:
        for i in range(400):  # a token no other row has in every row; golden_hour_sun in 40%, k_drift in 5%
            extra = (" golden_hour_sun" if i % 5 < 2 else "") + (" k_drift" if i % 20 == 0 else "")
            fh.write(json.dumps({"prompt": f"{i % 40}+1=", "answer": f"tok_{i}_x{extra} so {i % 40 + 1}"}) + "\n")

    def flags(capacity: int) -> list:
        monkeypatch.setattr(data_audit, "SymbolScanner", functools.partial(SymbolScanner, capacity=capacity))
        result = cli("audit-data", "arith", str(candidate), "--json", "--no-cache")
        assert result.exit_code == 0, result.output
        return [(s["symbol"], s["rows"], s["examples"]) for s in json.loads(result.output)["record"]["symbols"]]

    exact = flags(10**9)
    assert [(s, n) for s, n, _e in exact] == [("golden_hour_sun", 160), ("k_drift", 20)]
    assert flags(200) == exact  # 200 counters for 400 distinct tokens: overflowed, recounted, the same flags
    assert flags(16) == exact  # bounds too loose for the threshold: summarised again, wider, then recounted

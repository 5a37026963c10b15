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
    "slice on a field no row has": ("kind == 'single'", "knd == 'single'", "knd", 12),
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
    marker = tmp_path / "imported-by"
    (root / "checks.py").write_text(textwrap.dedent(f"""\
        import os
        open({str(marker)!r}, "a").write(str(os.getpid()) + "\\n")
        def run(output, reference, row):
            return output == reference
        """))
    from typer.testing import CliRunner

    from graduation.cli import app

    result = CliRunner().invoke(app, ["--project", str(root), "validate", str(root / "domains")])
    assert result.exit_code == 0, result.output
    pids = marker.read_text().split()
    assert pids and str(os.getpid()) not in pids  # imported, but only in the isolated worker
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


def test_evaluate_and_audit_write_one_line_per_item(cli, project: Path):
    _arith(project)
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("models", "register", "m", "--digest", "sha256:" + "1" * 64).exit_code == 0  # rounds need a model
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
    assert cli("models", "register", "m", "--digest", "sha256:" + "1" * 64).exit_code == 0  # rounds need a model
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
    for args, code in ((["status"], 0), (["status", "--json"], 0), (["list", "--json"], 0),
                       (["status", "--require", "train:sft"], 1)):  # deploy:* now needs --model
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
    assert cli("models", "register", "m", "--digest", "sha256:" + "1" * 64).exit_code == 0  # rounds need a model
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
    assert job_ids("") == [] and model_names("") == []  # no jobs yet; no models table in this registry
    help_ = _registry("audit-data", "-h", cwd=tmp_path, env={"COLUMNS": "120"})
    assert "--no-cache" in help_.stdout and "<bool>" not in help_.stdout  # --graduated is gone (issue 11)


def test_model_completion_reads_a_models_table_when_there_is_one(tmp_path):
    _many_domains(tmp_path, 1)
    assert _registry("register", "domains/", cwd=tmp_path).returncode == 0
    # the registry has a models table (issue 11): two versions of one model, one of another
    for name, digit in (("qwen-7b", "1"), ("qwen-7b", "2"), ("llama-3b", "3")):
        assert _registry("models", "register", name, "--digest", "sha256:" + digit * 64, cwd=tmp_path).returncode == 0
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

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

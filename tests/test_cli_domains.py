from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MINIMAL, run_registry, write_domain


def db_snapshot(db_url: str) -> list:
    """Every row of every registry table (works for SQLite and PostgreSQL)."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            tables = sorted(inspect(conn).get_table_names())
            return [(t, conn.execute(text(f"SELECT * FROM {t} ORDER BY 1")).fetchall()) for t in tables]
    finally:
        engine.dispose()


def test_register_twice_then_edit_makes_version_two(cli, project: Path):
    write_domain(project, "alpha")
    write_domain(project, "beta", risk="high")
    first = cli("register", str(project / "domains"), "--json")
    assert first.exit_code == 0, first.output
    assert {r["status"] for r in json.loads(first.output)["registered"]} == {"new"}

    second = cli("register", str(project / "domains"))
    assert second.exit_code == 0
    assert "no changes" in second.output

    path = project / "domains" / "alpha.yaml"
    path.write_text(path.read_text().replace("title: Toy", "title: Alpha, clarified"))
    third = json.loads(cli("register", str(project / "domains"), "--json").output)["registered"]
    assert {r["domain"]: (r["status"], r["version"]) for r in third} == {
        "alpha": ("updated", 2), "beta": ("unchanged", 1)}

    history = json.loads(cli("history", "alpha", "--json").output)
    assert [v["version"] for v in history["versions"]] == [1, 2]
    assert history["versions"][0]["content_hash"] != history["versions"][1]["content_hash"]

    listing = json.loads(cli("list", "--json").output)
    assert [(d["domain"], d["version"], d["risk"]) for d in listing] == [("alpha", 2, "low"), ("beta", 1, "high")]

    shown = json.loads(cli("show", "alpha", "--version", "1", "--json").output)
    assert shown["spec"]["title"] == "Toy" and shown["version"] == 1
    assert shown["files"] == {"domains/data/alpha.jsonl": shown["files"]["domains/data/alpha.jsonl"]}
    table = cli("show", "alpha")
    assert table.exit_code == 0 and "Alpha, clarified" in table.output


BROKEN = {
    "bad yaml": ("title: [unclosed\n", "alpha.yaml:", "YAML syntax error"),
    "wrong type": ("owners: 42\n", "alpha.yaml:4:1: owners", "valid list"),
    "unknown key": ("titel: x\n", "alpha.yaml:6:1: titel", "unknown key 'titel'"),
    "missing field": (None, "alpha.yaml:1:1: risk", "required field is missing"),
    "escaping path": ("ESCAPE", "alpha.yaml:7:", "outside the project"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_file_fails_cleanly_and_writes_nothing(cli, project: Path, db_url: str, case: str):
    write_domain(project, "good")
    assert cli("register", str(project / "domains")).exit_code == 0
    before = db_snapshot(db_url)
    assert before and any(rows for _, rows in before)

    extra, where, what = BROKEN[case]
    text = MINIMAL.format(name="alpha", title="Alpha", risk="low")
    if extra is None:
        text = text.replace("risk: low\n", "")
    elif extra == "ESCAPE":
        text = text.replace("path: data/alpha.jsonl", "path: ../../../../etc/passwd")
    elif extra.startswith("owners"):
        text = text.replace("owners: [team@example.org]\n", "") .replace("risk: low\n", "risk: low\n" + extra)
    elif extra.startswith("titel"):
        text = text.replace("owners: [team@example.org]\n", "owners: [team@example.org]\n" + "ground_truth: []\n" + extra)
        text = text.replace("ground_truth:\n  - name", "sources:\n  - name")  # keep line numbers honest
    else:
        text = text.replace("title: Alpha\n", extra)
    write_domain(project, "alpha", text=text)

    for command in ("validate", "register"):
        result = cli(command, str(project / "domains"))
        assert result.exit_code == 2, (command, result.output)
        assert where in result.output and what in result.output, result.output
        assert "Traceback" not in result.output
    assert db_snapshot(db_url) == before


def test_validate_json_lists_every_problem(cli, project: Path):
    write_domain(project, "alpha", text=MINIMAL.format(name="alpha", title="A", risk="hgih").replace(
        "title: A", "titl: A"))
    result = cli("validate", str(project / "domains"), "--json")
    assert result.exit_code == 2
    problems = json.loads(result.output)["problems"]
    assert {p["field"] for p in problems} == {"risk", "titl", "title"}
    assert all(p["file"] == "domains/alpha.yaml" and p["line"] for p in problems)


def test_duplicate_domain_names_across_files(cli, project: Path):
    write_domain(project, "alpha")
    dup = project / "domains" / "copy.yaml"
    dup.write_text((project / "domains" / "alpha.yaml").read_text())
    result = cli("register", str(project / "domains"))
    assert result.exit_code == 2 and "also declared in" in result.output


def test_missing_referenced_file_is_an_error(cli, project: Path):
    write_domain(project, "alpha")
    (project / "domains" / "data" / "alpha.jsonl").unlink()
    result = cli("validate", str(project / "domains" / "alpha.yaml"))
    assert result.exit_code == 2 and "referenced file 'domains/data/alpha.jsonl' does not exist" in result.output


def test_unknown_domain_and_version(cli, project: Path):
    write_domain(project, "alpha")
    cli("register", str(project / "domains"))
    result = cli("show", "alhpa")
    assert result.exit_code == 2 and "did you mean 'alpha'" in result.output
    assert cli("show", "alpha", "--version", "3").exit_code == 2
    assert cli("history", "nope").exit_code == 2


def test_empty_list_and_schema(cli):
    assert json.loads(cli("list", "--json").output) == []
    assert "no domains registered" in cli("list").output
    schema = json.loads(cli("schema").output)
    assert schema["title"] == "graduation domain"


def test_init_scaffolds_a_project_that_validates(tmp_path: Path, registry_bin: Path):
    target = tmp_path / "new"
    result = run_registry(registry_bin, "init", str(target), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (target / "examples" / "example.yaml").exists()  # outside domains/: registered only when copied
    assert (target / "policies").is_dir() and (target / "registry" / ".gitignore").exists()
    import shutil

    shutil.copy(target / "examples" / "example.yaml", target / "domains" / "example.yaml")
    shutil.copytree(target / "examples" / "data", target / "domains" / "data")
    ok = run_registry(registry_bin, "validate", "domains", cwd=target)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    reg = run_registry(registry_bin, "register", "domains", "--json", cwd=target)
    assert reg.returncode == 0, reg.stderr
    assert json.loads(reg.stdout)["registered"][0]["domain"] == "example-arithmetic"
    assert (target / "registry" / "registry.db").exists()
    again = run_registry(registry_bin, "init", str(target), cwd=tmp_path)
    assert "kept" in again.stdout


def test_console_script_help_and_errors(tmp_path: Path, registry_bin: Path):
    help_ = run_registry(registry_bin, "--help", cwd=tmp_path)
    assert help_.returncode == 0 and "register" in help_.stdout and "Exit codes" in help_.stdout
    bad = run_registry(registry_bin, "--db", f"sqlite:///{tmp_path}/r.db", "show", "nope", cwd=tmp_path)
    assert bad.returncode == 2 and "no registered domain named 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr
    usage = run_registry(registry_bin, "list", "--frobnicate", cwd=tmp_path)
    assert usage.returncode == 2


def test_env_var_selects_the_database(tmp_path: Path, registry_bin: Path):
    write_domain(tmp_path, "alpha")
    url = f"sqlite:///{tmp_path}/elsewhere.db"
    reg = run_registry(registry_bin, "register", "domains", cwd=tmp_path, env={"REGISTRY_DB_URL": url})
    assert reg.returncode == 0, reg.stderr
    assert (tmp_path / "elsewhere.db").exists()
    assert not (tmp_path / "registry" / "registry.db").exists()


def test_reading_commands_do_not_import_the_training_stack(tmp_path: Path):
    """`registry list` must start fast: no torch, transformers or trl in its imports."""
    write_domain(tmp_path, "alpha")
    code = ("import sys; from graduation.cli import main; sys.argv=['registry','list','--json']\n"
            "try:\n main()\nexcept SystemExit:\n pass\n"
            "bad=[m for m in ('torch','transformers','trl','datasets') if m in sys.modules]\n"
            "print('HEAVY', bad)")
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert "HEAVY []" in out.stdout, out.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert "graduation" in imported
    assert not imported & {"torch", "transformers", "trl"}

"""Default deny under faults: a broken or vanished database or policy never yields "allowed"."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from tests.conftest import write_domain


GATE = ("status", "alpha", "--model", "m", "--require", "deploy:sandbox")


@pytest.fixture
def registered(cli, project: Path):
    write_domain(project, "alpha")
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("models", "register", "m", "--digest", "sha256:" + "1" * 64).exit_code == 0
    assert cli(*GATE).exit_code == 0  # allowed when healthy
    return cli


def test_database_failing_mid_command_denies(registered, monkeypatch):
    import graduation.service.decisions as reg

    def vanish(*args, **kwargs):
        raise OperationalError("SELECT ...", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(reg, "load_evidence", vanish)
    result = registered(*GATE)
    assert result.exit_code == 2, result.output
    assert "server closed the connection" in result.output
    assert "Traceback" not in result.output


def test_corrupted_sqlite_file_denies(registered, project: Path, db_url: str):
    if not db_url.startswith("sqlite"):
        pytest.skip("file corruption is a SQLite case")
    db = project / "registry" / "registry.db"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"\x00garbage" * 4096)
    result = registered(*GATE)
    assert result.exit_code == 2 and "cannot open the registry database" in result.output


def test_missing_database_denies(project: Path, tmp_path: Path):
    from typer.testing import CliRunner

    from graduation.cli import app

    result = CliRunner().invoke(app, ["--project", str(project), "--db", f"sqlite:///{tmp_path}/gone/r.db",
                                      "status", "--require", "train:grpo"])
    assert result.exit_code == 2 and "no registry at" in result.output


def test_broken_policy_denies(registered, project: Path):
    (project / "policies" / "default.yaml").write_text("policy: broken\nrules:\n  - id: x\n    when: 'phase ==' \n")
    result = registered(*GATE)
    assert result.exit_code == 2, result.output
    assert "policies/default.yaml:" in result.output

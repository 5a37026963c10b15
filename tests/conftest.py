"""Shared fixtures: a throwaway project on disk, a registry database, and CLI runners."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parent.parent
REGISTRY_BIN = Path(sys.executable).parent / "registry"

MINIMAL = """\
domain: {name}
title: {title}
risk: {risk}
owners: [team@example.org]
ground_truth:
  - name: reference
    path: data/{name}.jsonl
    provenance: expert
verifiers:
  - name: answer
    kind: exact
    role: substance
"""


def write_domain(root: Path, name: str = "toy", *, title: str = "Toy", risk: str = "low",
                 text: str | None = None, rows: str = '{"prompt": "1+1=", "answer": "2"}\n') -> Path:
    path = root / "domains" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text) if text is not None else MINIMAL.format(name=name, title=title,
                                                                                  risk=risk))
    data = root / "domains" / "data" / f"{name}.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    if not data.exists():
        data.write_text(rows)
    return path


def pytest_collection_modifyitems(config, items):
    """Every test that uses the registry database also runs against PostgreSQL (`-m db`)."""
    for item in items:
        if "db_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.db)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project: domains/, policies/, registry/."""
    for d in ("domains", "policies", "registry"):
        (tmp_path / d).mkdir()
    return tmp_path


@pytest.fixture
def db_url(project: Path) -> str:
    """The registry URL tests use: REGISTRY_DB_URL when set (PostgreSQL runs), else SQLite in the project."""
    url = os.environ.get("REGISTRY_DB_URL")
    if url:
        from tests.pg import fresh_database

        return fresh_database(url)
    return f"sqlite:///{project / 'registry' / 'registry.db'}"


@pytest.fixture
def cli(project: Path, db_url: str):
    """Invoke the typer app in-process against the project: ``cli("list", "--json")``."""
    from graduation.cli import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, ["--project", str(project), "--db", db_url, *args], input=input,
                             catch_exceptions=False)

    return invoke


@pytest.fixture
def registry_bin() -> Path:
    if not REGISTRY_BIN.exists():
        found = shutil.which("registry")
        if not found:
            pytest.fail("the `registry` console script is not installed in this environment")
        return Path(found)
    return REGISTRY_BIN


def run_registry(bin_path: Path, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(bin_path), *args], cwd=cwd, capture_output=True, text=True, env=full_env,
                          timeout=120)

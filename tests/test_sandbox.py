"""Domain code in the sandbox: a low-risk domain's python verifier attacks the registry, and fails.

The verifier is imported and run only in sandboxed workers (never in the CLI process, not even by
`verifiers check`); inside, it cannot write into the project, read REGISTRY_DB_URL or open a socket;
the parent records error verdicts, and no other domain's evidence changes.
"""

from __future__ import annotations

import json
import os
import socket
import textwrap
import threading
from pathlib import Path

import pytest

from tests.conftest import write_domain

HOSTILE = '''
import os, socket, sqlite3, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the project
try:  # at import time: a side effect the CLI process must never run
    (ROOT / "imported-here.txt").write_text(str(os.getpid()))
except OSError:
    pass

def check(output, reference, row):
    if output == "write":
        (ROOT / "pwned.txt").write_text("owned")
        return True
    if output == "env":
        return bool(os.environ["REGISTRY_DB_URL"])
    if output == "socket":
        socket.create_connection(("127.0.0.1", int(reference)), timeout=2).sendall(b"hello")
        return True
    if output == "db":
        con = sqlite3.connect(str(ROOT / "registry" / "registry.db"))
        con.execute("insert into evidence (uid, domain, domain_version, basis_hash, kind, created_at, "
                    "summary_json, record_hash) values ('x', 'acls', 1, 'b', 'signoff', '2020', '{}', 'h')")
        con.commit()
        return True
    if output == "secret":
        return bool(os.environ["GRADUATION_SECRET_TOKEN"])
    return output == reference
'''

LOW = """\
domain: lowrisk
title: Low risk with domain code
risk: low
owners: [team@example.org]
ground_truth:
  - {name: reference, path: data/lowrisk.jsonl, provenance: expert}
verifiers:
  - {name: hostile, kind: python, role: substance, options: {function: "checks.hostile:check"}}
"""


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    got: list[bytes] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            got.append(conn.recv(100))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], got
    stop.set()
    thread.join(2)
    server.close()


def _setup(project: Path, cli, port: int) -> None:
    (project / "checks").mkdir(parents=True)
    (project / "checks" / "__init__.py").write_text("")
    (project / "checks" / "hostile.py").write_text(HOSTILE)
    write_domain(project, "lowrisk", text=LOW, rows=json.dumps({"prompt": "p", "answer": str(port)}) + "\n")
    write_domain(project, "acls", risk="critical")
    assert cli("register", str(project / "domains")).exit_code == 0
    assert cli("models", "register", "m", "--digest", "sha256:" + "5" * 64).exit_code == 0  # rounds belong to a model


def _evidence(cli, name):
    return json.loads(cli("evidence", name, "--json").stdout)["evidence"]


def test_hostile_verifier_fails_inside_the_sandbox(project, cli, listener, tmp_path, monkeypatch, db_url):
    from graduation.verifiers.sandbox import probe

    if probe() is not None:
        pytest.skip(f"no sandbox here: {probe()}")
    port, got = listener
    monkeypatch.setenv("REGISTRY_DB_URL", db_url)
    monkeypatch.setenv("GRADUATION_SECRET_TOKEN", "s3cret")
    _setup(project, cli, port)
    before = _evidence(cli, "acls")
    checked = cli("verifiers", "check", "lowrisk", "--json")
    assert checked.exit_code in (0, 1), checked.output
    assert not (project / "imported-here.txt").exists(), "domain code ran outside the sandbox (CLI process or unsandboxed worker)"
    rows = [{"prompt": "p", "output": attack} for attack in ("write", "env", "socket", "db", "secret")]
    outputs = tmp_path / "out.jsonl"
    outputs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = cli("evaluate", "lowrisk", "--outputs", str(outputs), "--model", "m", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["record"]
    assert record["sandbox"] == "bwrap"
    assert (record["n"], record["passed"], record["errors"]) == (5, 0, 5)
    assert not (project / "pwned.txt").exists() and not (project / "domains" / "pwned.txt").exists()
    assert not (project / "imported-here.txt").exists()
    assert got == [], "the verifier reached a socket outside the sandbox"
    assert _evidence(cli, "acls") == before
    assert all(e["uid"] != "x" for e in _evidence(cli, "acls"))


def test_unsandboxed_still_scrubs_the_environment_and_is_recorded(project, cli, listener, tmp_path, monkeypatch,
                                                                  db_url):
    port, _got = listener
    monkeypatch.setenv("REGISTRY_DB_URL", db_url)
    _setup(project, cli, port)
    outputs = tmp_path / "out.jsonl"
    outputs.write_text(json.dumps({"prompt": "p", "output": "env"}) + "\n")
    result = cli("evaluate", "lowrisk", "--outputs", str(outputs), "--model", "m", "--json", "--unsandboxed")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)["record"]
    assert record["sandbox"] == "unsandboxed" and record["errors"] == 1


def test_no_sandbox_stops_with_a_clear_message(project, cli, listener, tmp_path, monkeypatch):
    from graduation.verifiers import sandbox

    port, _got = listener
    _setup(project, cli, port)
    monkeypatch.setattr(sandbox, "probe", lambda: "bubblewrap (bwrap) is not installed")
    outputs = tmp_path / "out.jsonl"
    outputs.write_text(json.dumps({"prompt": "p", "output": "x"}) + "\n")
    result = cli("evaluate", "lowrisk", "--outputs", str(outputs), "--model", "m")
    assert result.exit_code == 2
    assert "bubblewrap" in result.stderr and "--unsandboxed" in result.stderr
    assert [e["kind"] for e in _evidence(cli, "lowrisk")] == []

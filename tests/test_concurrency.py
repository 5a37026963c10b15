"""Many processes writing to one registry at once, and writers killed mid-transaction.

Nothing may be lost or duplicated, no lock error may reach a user, and after every kill the database
passes its integrity check with no partial record.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from graduation.store import Database

REPO = Path(__file__).resolve().parent.parent
WORKERS = 8
ROUNDS = 12


def spawn(url: str, worker: int, rounds: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.writer", url, str(worker), str(rounds)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rows(url: str, sql: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).fetchall()
    finally:
        engine.dispose()


def test_eight_writers_lose_and_duplicate_nothing(db_url: str):
    Database(db_url).dispose()  # create the schema once, as `registry init` would
    procs = [spawn(db_url, w, ROUNDS) for w in range(WORKERS)]
    outputs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
        assert "locked" not in err.lower()
        assert out.count("committed") == ROUNDS

    signoffs = rows(db_url, "SELECT author, summary_json FROM evidence WHERE domain = 'shared'")
    assert len(signoffs) == WORKERS * ROUNDS
    assert len({(a, json.loads(s)["role"]) for a, s in signoffs}) == WORKERS * ROUNDS
    # the shared domain has one version: every worker registered identical content
    assert rows(db_url, "SELECT count(*) FROM domain_versions WHERE domain = 'shared'")[0][0] == 1
    for w in range(WORKERS):
        versions = [r[0] for r in rows(db_url, f"SELECT version FROM domain_versions WHERE domain = 'own-{w}' "
                                               "ORDER BY version")]
        assert versions == list(range(1, ROUNDS + 1))
    latest = dict(rows(db_url, "SELECT name, latest_version FROM domains"))
    assert latest == {"shared": 1, **{f"own-{w}": ROUNDS for w in range(WORKERS)}}
    # one audit entry per committed round, in one unbroken chain
    db = Database(db_url)
    with db.read() as session:
        from graduation.audit import verify

        result = verify(session)
    db.dispose()
    # the writer's own entry per committed round, plus the entries chaining each sign-off and domain version
    assert result.ok and result.entries == 3 * WORKERS * ROUNDS + 1, result
    assert rows(db_url, "SELECT count(*) FROM audit_log WHERE kind = 'signoff'")[0][0] == WORKERS * ROUNDS
    assert rows(db_url, "SELECT count(*) FROM audit_log WHERE kind = 'evidence'")[0][0] == WORKERS * ROUNDS


def test_writers_killed_at_random_points_leave_a_consistent_database(project: Path):
    url = f"sqlite:///{project / 'registry' / 'registry.db'}"
    Database(url).dispose()
    rng = random.Random(7)
    kills = 0
    committed = 0
    for attempt in range(25):
        proc = spawn(url, attempt % 4, 1000)
        time.sleep(0.35 + rng.random() * 0.5)
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        kills += proc.returncode == -signal.SIGKILL
        committed += out.count("committed")
        import sqlite3

        conn = sqlite3.connect(project / "registry" / "registry.db")
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            # every committed round is whole: the domain row agrees with its newest version,
            # and no sign-off exists without the shared domain it belongs to
            for name, latest in conn.execute("SELECT name, latest_version FROM domains"):
                newest = conn.execute("SELECT max(version), count(*) FROM domain_versions WHERE domain = ?",
                                      (name,)).fetchone()
                assert newest == (latest, latest)
            for (summary,) in conn.execute("SELECT summary_json FROM evidence"):
                assert json.loads(summary)["by"].startswith("w")
            # a round is all or nothing: as many audit entries as sign-offs
            assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == \
                conn.execute("SELECT count(*) FROM evidence").fetchone()
        finally:
            conn.close()
    assert kills >= 20
    db = Database(url)
    with db.read() as s:
        n = s.exec(text("SELECT count(*) FROM evidence")).one()[0]
        from graduation.audit import verify

        chain = verify(s)
    db.dispose()
    # a round printed "committed" only after its commit, so at least that many survived
    assert n >= committed
    assert chain.ok and chain.entries == n, chain

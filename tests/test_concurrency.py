"""Many processes writing to one registry at once, and writers killed mid-transaction.

Nothing may be lost or duplicated, no lock error may reach a user, and after every kill the database
passes its integrity check with no partial record.
"""

from __future__ import annotations

import json
import os
import random
import select
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
KILLS = 25


def spawn(url: str, worker: int, rounds: int, barrier: Path | None = None) -> subprocess.Popen:
    extra = [str(barrier)] if barrier is not None else []
    return subprocess.Popen([sys.executable, "-m", "tests.writer", url, str(worker), str(rounds), *extra],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def commit_times(out: str) -> list[float]:
    return [float(line.split()[3]) for line in out.splitlines() if line.startswith("committed")]


def first_commit(proc: subprocess.Popen, timeout: float = 120.0) -> str:
    """Block until the writer prints its first ``committed`` line (its ready signal); return what it printed."""
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the writer exited before its first commit: {proc.stderr.read()}")
        seen += line
        if line.startswith("committed"):
            return seen
    raise AssertionError(f"no commit within {timeout:.0f} s")


def rows(url: str, sql: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).fetchall()
    finally:
        engine.dispose()


def test_eight_writers_lose_and_duplicate_nothing(db_url: str, tmp_path: Path):
    Database(db_url).dispose()  # create the schema once, as `registry init` would
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [spawn(db_url, w, ROUNDS, barrier) for w in range(WORKERS)]
    deadline = time.monotonic() + 120
    while len(list(barrier.glob("ready-*"))) < WORKERS:  # every writer connected and waiting
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "a writer never got ready"
        time.sleep(0.01)
    (barrier / "go").touch()
    outputs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
        assert "locked" not in err.lower()
        assert out.count("committed") == ROUNDS
    spans = [commit_times(out) for out, _ in outputs]
    # they contended at once: every writer had started its first round before any writer had finished. (SQLite
    # hands its write lock over in runs, so commits interleave in bursts rather than round by round.)
    starts = [float(next(line for line in out.splitlines() if line.startswith("started")).split()[2])
              for out, _ in outputs]
    assert max(starts) < min(times[-1] for times in spans), (starts, spans)

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
        from graduation.store.auditlog import verify

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
    for attempt in range(KILLS):
        proc = spawn(url, attempt % 4, 1000)
        before = first_commit(proc)  # the ready signal: kills land once commits are under way, not in start-up
        time.sleep(rng.random() * 0.3)
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        out = before + out
        assert proc.returncode == -signal.SIGKILL, f"attempt {attempt}: the writer ended before the kill"
        assert out.count("committed") >= 1, f"attempt {attempt}: killed before its first commit"
        kills += 1
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
            # a round is all or nothing: as many sign-off entries, and chained evidence entries, as sign-offs,
            # and a chained entry for every domain version
            signoffs = conn.execute("SELECT count(*) FROM evidence").fetchone()
            for kind, rows in (("signoff", signoffs), ("evidence", signoffs),
                               ("domain_version", conn.execute("SELECT count(*) FROM domain_versions").fetchone())):
                assert conn.execute("SELECT count(*) FROM audit_log WHERE kind = ?", (kind,)).fetchone() == rows, kind
        finally:
            conn.close()
    assert kills == KILLS  # every one of them after the writer's first commit, while it was still writing
    db = Database(url)
    with db.read() as s:
        n = s.exec(text("SELECT count(*) FROM evidence")).one()[0]
        versions = s.exec(text("SELECT count(*) FROM domain_versions")).one()[0]
        from graduation.store.auditlog import verify

        chain = verify(s)
    db.dispose()
    # a round printed "committed" only after its commit, so at least that many survived
    assert n >= committed
    # each sign-off has its own entry and its row's chained entry; each domain version its chained entry
    assert chain.ok and chain.entries == 2 * n + versions, chain

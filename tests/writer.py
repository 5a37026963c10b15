"""A registry writer run as a separate process by the concurrency and crash tests.

    python -m tests.writer URL WORKER_ID ROUNDS [BARRIER_DIR]

Each round registers a shared domain (same content from every worker), a new version of the worker's
own domain, and appends a sign-off to the shared domain with its audit-log entry. Prints one line per committed
round, ``committed WORKER ROUND TIME``, after its commit. With BARRIER_DIR, the writer connects, creates
``ready-WORKER`` there and waits for a ``go`` file before its first round (then prints ``started WORKER TIME``),
so that all writers start together.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from graduation.store.auditlog import append
from graduation.records import SignoffRecord
from graduation.spec import DomainSpec
from graduation.store import Database
from graduation.records import LoadedDomain
from graduation.store.domains import register
from graduation.store.evidence import add_evidence


def spec(name: str, title: str) -> LoadedDomain:
    return LoadedDomain(DomainSpec(domain=name, title=title, risk="high", owners=["ops@example.org"]),
                        f"domains/{name}.yaml", {})


def main(url: str, worker: int, rounds: int, barrier: str | None = None) -> None:
    db = Database(url)
    if barrier is not None:
        with db.read() as session:  # connected and schema checked before the start line
            session.connection()
        Path(barrier, f"ready-{worker}").touch()
        go = Path(barrier, "go")
        deadline = time.monotonic() + 120
        while not go.exists():
            if time.monotonic() > deadline:
                raise SystemExit("the start signal never came")
            time.sleep(0.002)
        print(f"started {worker} {time.time():.6f}", flush=True)
    for i in range(rounds):
        def round_(session, i=i):
            register(session, spec("shared", "Shared domain"))
            register(session, spec(f"own-{worker}", f"Worker {worker}, round {i}"))
            add_evidence(session, "shared", "signoff", SignoffRecord(by=f"w{worker}", role=f"r{i}"),
                         author=f"w{worker}")
            append(session, "signoff", {"by": f"w{worker}", "round": i}, "shared")

        db.transact(round_)
        print(f"committed {worker} {i} {time.time():.6f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)

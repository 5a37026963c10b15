"""A registry writer run as a separate process by the concurrency and crash tests.

    python -m tests.writer URL WORKER_ID ROUNDS

Each round registers a shared domain (same content from every worker), a new version of the worker's
own domain, and appends a sign-off to the shared domain with its audit-log entry. Prints one line per committed round.
"""

from __future__ import annotations

import sys

from graduation.audit import append
from graduation.records import SignoffRecord
from graduation.spec import DomainSpec
from graduation.store import Database
from graduation.store.domains import LoadedDomain, register
from graduation.store.evidence import add_evidence


def spec(name: str, title: str) -> LoadedDomain:
    return LoadedDomain(DomainSpec(domain=name, title=title, risk="high", owners=["ops@example.org"]),
                        f"domains/{name}.yaml", {})


def main(url: str, worker: int, rounds: int) -> None:
    db = Database(url)
    for i in range(rounds):
        def round_(session, i=i):
            register(session, spec("shared", "Shared domain"))
            register(session, spec(f"own-{worker}", f"Worker {worker}, round {i}"))
            add_evidence(session, "shared", "signoff", SignoffRecord(by=f"w{worker}", role=f"r{i}"),
                         author=f"w{worker}")
            append(session, "signoff", {"by": f"w{worker}", "round": i}, "shared")

        db.transact(round_)
        print(f"committed {worker} {i}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))

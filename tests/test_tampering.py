"""1,000 random tamperings of a real audit log: every one is detected and the first bad entry named."""

from __future__ import annotations

import random
from dataclasses import replace
from dataclasses import dataclass

import pytest

from graduation.audit import append, verify_rows
from graduation.spec import DomainSpec
from graduation.store import Database
from graduation.store import audit as q
from graduation.store.domains import LoadedDomain, register

TRIALS = 1000
FIELDS = ("kind", "domain", "created_at", "payload_json", "prev_hash", "entry_hash")


@dataclass(frozen=True)
class Row:
    seq: int
    kind: str
    domain: str | None
    created_at: str
    payload_json: str
    prev_hash: str
    entry_hash: str


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> list[Row]:
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('audit') / 'registry.db'}")
    with db.write() as s:
        register(s, LoadedDomain(DomainSpec(domain="d", title="D", risk="high", owners=["o@example.org"]),
                                 "domains/d.yaml", {}))
    for i in range(40):
        with db.write() as s:
            append(s, "decision" if i % 3 else "signoff",
                   {"i": i, "allowed": i % 2 == 0, "reasons": [f"rule-{i}"], "note": "ünïcode"}, "d")
    with db.read() as s:
        rows = [Row(r.seq, r.kind, r.domain, r.created_at, r.payload_json, r.prev_hash, r.entry_hash)
                for r in q.entries(s)]
    db.dispose()
    return rows


def tamper(rows: list[Row], rng: random.Random) -> tuple[list[Row], int, str]:
    """One random edit, deletion or reordering; returns the rows, the first seq it touched, and what."""
    rows = list(rows)
    what = rng.choice(["edit", "delete", "swap", "move"])
    i = rng.randrange(len(rows))
    if what == "edit":
        name = rng.choice(FIELDS + ("seq",))
        old = getattr(rows[i], name)
        if name == "seq":
            new = old + rng.choice([-2, -1, 1, 2, 100])
        elif name == "domain":
            new = None if old else "x"
        elif name == "payload_json":
            pos = rng.randrange(len(old))
            new = old[:pos] + rng.choice("x{}\" 0") + old[pos + 1:]
            if new == old:
                new = old + " "
        else:
            pos = rng.randrange(len(old))
            char = "0" if old[pos] != "0" else "1"
            new = old[:pos] + char + old[pos + 1:]
        rows[i] = replace(rows[i], **{name: new})
        return rows, rows[i].seq if name != "seq" else min(old, new, rows[i].seq), f"edit {name} of {i + 1}"
    if what == "delete":
        del rows[i]
        return rows, i + 1, f"delete {i + 1}"
    j = rng.randrange(len(rows) - 1)
    j = j if j < i else j + 1
    if what == "swap":
        rows[i], rows[j] = rows[j], rows[i]
    else:
        rows.insert(j, rows.pop(i))
    return rows, min(i, j) + 1, f"{what} {i + 1} and {j + 1}"


def test_every_random_tampering_is_detected(chain: list[Row]):
    head = (chain[-1].seq, chain[-1].entry_hash)
    assert verify_rows(chain, head).ok
    rng = random.Random(20261125)
    detected = 0
    for _ in range(TRIALS):
        rows, first, what = tamper(chain, rng)
        result = verify_rows(sorted(rows, key=lambda r: r.seq) if what.startswith("edit seq") else rows, head)
        assert not result.ok, what
        assert result.problem, what
        # the entry named is never later than the first one touched (deletions of the newest included)
        assert result.bad_seq is not None and result.bad_seq <= max(first, 1) + 1, (what, result)
        detected += 1
    assert detected == TRIALS

"""1,000 random tamperings of a real audit log: every one is detected and exactly the first bad entry named.

Each trial goes through ``graduation.store.auditlog.verify`` (the chain walk and the anchor's hash) with the tampered
rows served in place of the database's, and asserts the exact entry it must name. The forgers include the
realistic one, who recomputes the hash of the entry they changed: the next entry's link names it, or, for the
newest entry, the anchor does.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, replace

import pytest

from graduation.store import auditlog as audit
from graduation.store.auditlog import append, canonical, compute_hash
from graduation.spec import DomainSpec
from graduation.store import Database
from graduation.store import audit as q
from graduation.records import LoadedDomain
from graduation.store.domains import register

TRIALS = 1000
ENTRIES = 40
FIELDS = ("kind", "domain", "created_at", "payload_json", "prev_hash", "entry_hash")
KINDS = ("edit", "delete", "swap", "move", "rehash", "rehash-relink", "rehash-tail")


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
    for i in range(ENTRIES):
        with db.write() as s:
            append(s, "decision" if i % 3 else "signoff",
                   {"i": i, "allowed": i % 2 == 0, "reasons": [f"rule-{i}"], "note": "ünïcode"}, "d")
    with db.read() as s:
        rows = [Row(r.seq, r.kind, r.domain, r.created_at, r.payload_json, r.prev_hash, r.entry_hash)
                for r in q.entries(s)]
    db.dispose()
    # the registered domain version is chained first (one entry), then the entries appended here
    assert [r.seq for r in rows] == list(range(1, ENTRIES + 2)) and rows[0].kind == "domain_version"
    return rows


@pytest.fixture
def served(monkeypatch, tmp_path):
    """``audit.verify`` reading the rows in ``state["rows"]`` instead of a database, with a real anchor file."""
    state: dict = {"rows": []}
    monkeypatch.setattr(q, "entries", lambda session, batch=1000: iter(state["rows"]))
    monkeypatch.setattr(q, "get", lambda session, seq: next((r for r in state["rows"] if r.seq == seq), None))
    state["anchor"] = tmp_path / "audit-head.json"
    return state


def forge(row: Row, prev_hash: str | None = None) -> Row:
    """Deny becomes allow (or the reverse), and the entry's own hash is recomputed, as a careful forger would."""
    payload = json.loads(row.payload_json)
    if "allowed" in payload:
        payload["allowed"] = not payload["allowed"]
    else:  # the chained domain version: point it at another record
        payload["digest"] = "0" * 64
    prev = row.prev_hash if prev_hash is None else prev_hash
    return replace(row, payload_json=canonical(payload), prev_hash=prev,
                   entry_hash=compute_hash(row.seq, row.kind, row.domain, row.created_at, payload, prev))


def rehash(row: Row, prev_hash: str) -> Row:
    payload = json.loads(row.payload_json)
    return replace(row, prev_hash=prev_hash,
                   entry_hash=compute_hash(row.seq, row.kind, row.domain, row.created_at, payload, prev_hash))


def edited(old, name: str, rng: random.Random):
    if name == "domain":
        return None if old else "x"
    pos = rng.randrange(len(old))
    if name == "payload_json":
        new = old[:pos] + rng.choice("x{}\" 0") + old[pos + 1:]
        return new if new != old else old + " "
    return old[:pos] + ("0" if old[pos] != "0" else "1") + old[pos + 1:]


def tamper(rows: list[Row], rng: random.Random, what: str) -> tuple[list[Row], int, str]:
    """One tampering; returns the rows in the order a database would return them, the seq that ``verify``
    must name, and a description."""
    rows, last = list(rows), len(rows)
    i = rng.randrange(len(rows))
    seq = i + 1
    if what == "edit":
        name = rng.choice(FIELDS + ("seq",))
        if name == "seq":
            new = seq + rng.choice([-2, -1, 1, 2, 100])
            rows[i] = replace(rows[i], seq=new)
            rows.sort(key=lambda r: r.seq)  # a database returns rows in seq order (stable: the original first)
            # a later seq leaves a gap where the entry was; an earlier one repeats a seq already walked
            return rows, seq if new > seq else new, f"seq of {seq} set to {new}"
        rows[i] = replace(rows[i], **{name: edited(getattr(rows[i], name), name, rng)})
        return rows, seq, f"edit {name} of {seq}"
    if what == "delete":
        del rows[i]
        return rows, seq, f"delete {seq}"  # the newest one: the anchor counts more entries than remain
    if what in ("swap", "move"):
        j = rng.randrange(len(rows) - 1)
        j = j if j < i else j + 1
        if what == "swap":
            rows[i], rows[j] = rows[j], rows[i]
        else:
            rows.insert(j, rows.pop(i))
        return rows, min(i, j) + 1, f"{what} {seq} and {j + 1}"
    if what == "rehash":
        rows[i] = forge(rows[i])
        # the next entry still links to the original hash; the newest has no next entry, the anchor names it
        return rows, seq + 1 if seq < last else seq, f"forge and re-hash {seq}"
    if what == "rehash-relink":
        rows[i] = forge(rows[i])
        if seq < last:
            rows[i + 1] = replace(rows[i + 1], prev_hash=rows[i].entry_hash)
        # the next entry's link now matches, but its own hash covers the link it had
        return rows, seq + 1 if seq < last else seq, f"forge, re-hash {seq} and re-link {seq + 1}"
    assert what == "rehash-tail"
    rows[i] = forge(rows[i])
    for k in range(i + 1, len(rows)):
        rows[k] = rehash(rows[k], rows[k - 1].entry_hash)
    # a consistent rewrite from there on: only the anchor, which holds the newest hash, can tell
    return rows, last, f"forge {seq} and re-hash every later entry"


def test_every_random_tampering_names_the_first_bad_entry(chain: list[Row], served):
    audit.write_anchor(served["anchor"], audit.AuditEntry.from_row(chain[-1]))
    served["rows"] = chain
    intact = audit.verify(None, served["anchor"], records=False)
    assert intact.ok and intact.entries == ENTRIES + 1, intact
    rng = random.Random(20261125)
    kinds: Counter = Counter()
    for trial in range(TRIALS):
        what = KINDS[trial % len(KINDS)]
        rows, expected, description = tamper(chain, rng, what)
        served["rows"] = rows
        result = audit.verify(None, served["anchor"], records=False)
        assert not result.ok, description
        assert result.problem and re.search(rf"\bentr(y|ies) {result.bad_seq}\b", result.problem), (description, result)
        assert result.bad_seq == expected, (description, result)
        kinds[what] += 1
    assert sum(kinds.values()) == TRIALS and set(kinds) == set(KINDS)


def test_a_forged_and_rehashed_entry_is_named_by_the_next_link(chain: list[Row], served):
    """Entry 3 turned from deny into allow, its own hash recomputed: entry 4 is the first that does not hold.

    (Entry 1 is the registered domain version, chained like every record.)
    """
    audit.write_anchor(served["anchor"], audit.AuditEntry.from_row(chain[-1]))
    assert json.loads(chain[2].payload_json)["allowed"] is False
    rows = list(chain)
    rows[2] = forge(rows[2])
    assert json.loads(rows[2].payload_json)["allowed"] is True
    served["rows"] = rows
    result = audit.verify(None, served["anchor"], records=False)
    assert not result.ok and result.bad_seq == 4 and "does not follow entry 3" in result.problem, result
    # re-linking entry 4 to the forged hash breaks entry 4's own hash, which covers its link
    rows[3] = replace(rows[3], prev_hash=rows[2].entry_hash)
    result = audit.verify(None, served["anchor"], records=False)
    assert not result.ok and result.bad_seq == 4 and "no longer matches its hash" in result.problem, result
    # forging the newest entry: no later link exists; without the anchor it passes, with it the anchor names it
    rows = list(chain)
    rows[-1] = forge(rows[-1])
    served["rows"] = rows
    assert audit.verify(None, records=False).ok
    result = audit.verify(None, served["anchor"], records=False)
    assert not result.ok and result.bad_seq == ENTRIES + 1 and "anchor" in result.problem, result

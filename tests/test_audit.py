"""The hash-chained decision log: tampering of any kind is detected and the first bad entry named."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import text

from graduation.store import auditlog as audit
from graduation.store import Database

FIELDS = ["kind", "domain", "created_at", "payload_json", "prev_hash", "entry_hash"]


@pytest.fixture
def db(db_url: str) -> Database:
    database = Database(db_url)
    yield database
    database.dispose()


def fill(db: Database, anchor: Path | None = None, count: int = 5) -> list[audit.AuditEntry]:
    out = []
    for i in range(count):
        entry = db.transact(lambda s, i=i: audit.append(s, "decision", {"decision_id": f"{i:064x}", "n": i,
                                                                        "text": "ünïcode"}, f"d{i}"))
        out.append(entry)
        if anchor is not None:
            audit.write_anchor(anchor, entry)
    return out


def check(db: Database, anchor: Path | None = None) -> audit.Verification:
    with db.read() as session:
        return audit.verify(session, anchor)


def execute(db: Database, sql: str, **params) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(sql), params)


def test_intact_chain_verifies(db):
    entries = fill(db)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.entry_hash for a, b in zip(entries, entries[1:]))
    result = check(db)
    assert result.ok and result.entries == 5


def test_empty_log_verifies(db):
    assert check(db).ok


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("seq", [1, 3, 5])
def test_editing_any_field_of_any_entry_is_named(db, field, seq):
    fill(db)
    if field == "payload_json":
        value = json.dumps({"decision_id": "f" * 64, "n": 99, "text": "ünïcode"}, separators=(",", ":"))
    elif field in ("prev_hash", "entry_hash"):
        value = "a" * 64
    else:
        value = "tampered"
    execute(db, f"UPDATE audit_log SET {field} = :v WHERE seq = :s", v=value, s=seq)
    result = check(db)
    assert not result.ok
    # changing an entry's own hash also breaks the next entry's link; the first bad one is named either way
    assert result.bad_seq == seq
    assert f"entry {seq}" in result.problem


@pytest.mark.parametrize("seq,kind,domain,created,payload", [
    (1, "decision", None, "2026-01-01T00:00:00.000000Z", {"b": [1, 2.5, None, True], "a": 'ü "q" \\ \n'}),
    (12345, "evidence", 'd"\\x\u0001', "2026-11-30T21:00:00.123456Z",
     {"key": "u", "extra": {"z": {}, "y": [{}]}}),
])
def test_an_entry_hashes_as_the_canonical_json_of_its_fields(seq, kind, domain, created, payload):
    """The definition (sha256 of the entry's canonical JSON) holds for ``compute_hash`` and for
    ``stored_entry_hash``, which hashes the stored payload text as it is; a payload text that only decodes the
    same is not the text that was hashed."""
    import hashlib

    prev = "ab" * 32
    entry = {"seq": seq, "kind": kind, "domain": domain, "created_at": created, "payload": payload,
             "prev_hash": prev}
    expected = hashlib.sha256(json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                              .encode()).hexdigest()
    assert audit.compute_hash(seq, kind, domain, created, payload, prev) == expected
    assert audit.stored_entry_hash(seq, kind, domain, created, audit.canonical(payload), prev) == expected
    respaced = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    assert json.loads(respaced) == payload
    assert audit.stored_entry_hash(seq, kind, domain, created, respaced, prev) != expected


def test_deleting_a_middle_entry_is_named(db):
    fill(db)
    execute(db, "DELETE FROM audit_log WHERE seq = 3")
    result = check(db)
    assert not result.ok and result.bad_seq == 3 and "removed" in result.problem


def test_deleting_the_newest_entry_is_caught_by_the_anchor(db, tmp_path):
    anchor = tmp_path / "audit-head.json"
    fill(db, anchor)
    execute(db, "DELETE FROM audit_log WHERE seq = 5")
    assert check(db).ok is True  # the chain alone cannot see a truncated tail...
    result = check(db, anchor)  # ...the anchor can
    assert not result.ok and result.bad_seq == 5 and "removed" in result.problem


def test_swapping_two_entries_is_named(db):
    fill(db)
    with db.engine.begin() as conn:
        rows = {r.seq: r for r in conn.execute(text("SELECT * FROM audit_log WHERE seq IN (2, 4)"))}
        conn.execute(text("DELETE FROM audit_log WHERE seq IN (2, 4)"))
        for seq, other in ((2, 4), (4, 2)):
            r = rows[other]
            conn.execute(text("INSERT INTO audit_log (seq, kind, domain, created_at, payload_json, prev_hash, "
                              "entry_hash) VALUES (:seq, :kind, :domain, :created_at, :payload_json, :prev_hash, "
                              ":entry_hash)"), {**r._mapping, "seq": seq})
    result = check(db)
    assert not result.ok and result.bad_seq == 2


def test_rewriting_the_whole_tail_consistently_is_caught_by_the_anchor(db, tmp_path):
    anchor = tmp_path / "audit-head.json"
    fill(db, anchor)
    execute(db, "DELETE FROM audit_log WHERE seq >= 4")
    db.transact(lambda s: audit.append(s, "decision", {"forged": True}, "d3"))
    db.transact(lambda s: audit.append(s, "decision", {"forged": True}, "d4"))
    assert check(db).ok
    result = check(db, anchor)
    assert not result.ok and result.bad_seq == 5


def test_a_forged_entry_with_its_hash_recomputed_is_named_by_the_next_link(db, tmp_path):
    """The realistic forger edits a decision in the database and recomputes that entry's own hash."""
    anchor = tmp_path / "audit-head.json"
    entries = fill(db, anchor)
    for seq, expected in ((2, 3), (5, 5)):  # the newest entry has no next link: the anchor names it
        entry = entries[seq - 1]
        payload = {**entry.payload, "n": 1000 + seq}
        forged = audit.compute_hash(entry.seq, entry.kind, entry.domain, entry.created_at, payload, entry.prev_hash)
        execute(db, "UPDATE audit_log SET payload_json = :p, entry_hash = :h WHERE seq = :s",
                p=audit.canonical(payload), h=forged, s=seq)
        result = check(db, anchor)
        assert not result.ok and result.bad_seq == expected, result
        assert f"entry {expected}" in result.problem
        execute(db, "UPDATE audit_log SET payload_json = :p, entry_hash = :h WHERE seq = :s",
                p=audit.canonical(entry.payload), h=entry.entry_hash, s=seq)
        assert check(db, anchor).ok


def _appender(url: str, worker: int, count: int) -> None:
    database = Database(url)
    for i in range(count):
        database.transact(lambda s, i=i: audit.append(s, "decision", {"worker": worker, "i": i}, f"w{worker}"))
    database.dispose()


def test_concurrent_appenders_keep_one_chain(db, db_url):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_appender, args=(db_url, w, 10)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    result = check(db)
    assert result.ok and result.entries == 40


def test_statement_is_an_in_toto_vsa(db):
    from graduation.policy import decide
    from tests.test_policy_engine import POLICY, build, domain, validated

    spec = domain("toy", "low")
    decision = decide(spec, build(spec, ("verifier_validation", validated("answer"))), POLICY)
    entry = audit.record_decision(db, decision, action="train:grpo", context="test")
    with db.read() as session:
        found = audit.find_decision(session, decision.id[:12])
    assert found.seq == entry.seq
    st = audit.statement(found)
    assert st["_type"] == "https://in-toto.io/Statement/v1"
    assert st["predicateType"] == "https://slsa.dev/verification_summary/v1"
    assert st["subject"][0]["digest"]["sha256"] == decision.domain_digest
    pred = st["predicate"]
    assert pred["policy"]["digest"]["sha256"] == POLICY.digest
    assert [a["digest"]["sha256"] for a in pred["inputAttestations"]] == list(decision.evidence_hashes)
    assert pred["verificationResult"] == "PASSED"
    assert pred["decision"]["rules"] == ["grpo-needs-validated-verifier"]
    with db.read() as session:
        with pytest.raises(Exception, match="no recorded decision"):
            audit.find_decision(session, "deadbeefdeadbeef")

"""One append-only chain for every record: a row and the audit entry that covers it, written together.

Every write of a record (domain version, evidence of any kind, job state change; decisions relied on
are entries of their own) appends one entry to the hash-chained log (``graduation.store.auditlog``) in the
same transaction as its row, and the row keeps that entry's hash in ``entry_hash``. The entry's
payload names the record (``record``: its table, ``key``: its id) and holds ``digest``, the hash of
the row's covered columns. So:

* changing a row breaks ``digest`` (the row no longer hashes to what its entry says);
* changing the entry breaks the chain (``audit verify``) and, on the decision path, its own hash;
* inserting a row without an entry, or pointing it at another record's entry, is caught by key;
* deleting a row leaves an entry without its row (``audit verify``).

Chaining a new record kind (say ``model`` or ``retraction``) takes one call inside the write
transaction, after the row is flushed::

    row.entry_hash = append_chained(session, "model", key=row.id, digest=model_digest(row), domain=None)

and one ``RecordKind`` in ``KINDS`` (table, key column, digest function) so that ``verify_records``
checks those rows too. Digests hash the stored text of a row as it is, so re-hashing costs one
sha256 per row and never re-serialises what was read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from graduation.errors import IntegrityError
from graduation.spec import sha256_json
from graduation.store.auditlog import append, stored_entry_hash
from graduation.store.tables import AuditEntryRow, DomainVersionRow, EvidenceRow, JobRow, ModelRow


def append_chained(session, kind: str, *, key: str, digest: str, domain: str | None = None,
                   extra: dict[str, Any] | None = None) -> str:
    """Append the entry covering one record (``kind``/``key``, row hash ``digest``); returns the entry hash.

    Call it in the transaction that writes the row, and store the result in the row's ``entry_hash``.
    """

    payload: dict[str, Any] = {"record": kind, "key": key, "digest": digest}
    if extra:
        payload["extra"] = extra
    return append(session, kind, payload, domain).entry_hash


# -- digests of rows (the columns each covers) ------------------------------------------------------

def evidence_record_hash(*, uid: str, domain: str, version: int, basis: str, kind: str, summary: Any,
                         model: str | None, round: int | None, data_hash: str | None, author: str | None,
                         model_id: int | None = None) -> str:
    """The evidence record's own hash (``record_hash``): its identity, its decoded summary and the registered
    model it belongs to (``model_id``, when it belongs to one: moving a record to another model breaks it)."""
    return sha256_json({"uid": uid, "domain": domain, "version": version, "basis": basis, "kind": kind,
                        "summary": summary, "model": model, "round": round, "data_hash": data_hash,
                        "author": author, **({"model_id": model_id} if model_id is not None else {})})


def evidence_digest(row) -> str:
    """What an evidence entry covers: the record hash recomputed from the stored columns.

    A stored ``record_hash`` that differs from the recomputed one gives a digest no entry holds.
    """
    try:
        summary = json.loads(row.summary_json)
    except (TypeError, ValueError):
        return "its stored summary is not JSON"
    digest = evidence_record_hash(uid=row.uid, domain=row.domain, version=row.domain_version, basis=row.basis_hash,
                                  kind=row.kind, summary=summary, model=row.model,
                                  round=row.round, data_hash=row.data_hash, author=row.author,
                                  model_id=getattr(row, "model_id", None))
    return digest if digest == row.record_hash else f"stored record_hash {row.record_hash!r} differs"


def version_digest(row) -> str:
    return sha256_json({"domain": row.domain, "version": row.version, "content_hash": row.content_hash,
                        "basis_hash": row.basis_hash, "risk": row.risk, "source_file": row.source_file,
                        "spec_json": row.spec_json, "data_hashes_json": row.data_hashes_json,
                        "file_stats_json": getattr(row, "file_stats_json", None)})


def model_digest(row) -> str:
    """A registered model: its name, version, artifact digest and lineage (moving a digest or a lineage breaks it)."""
    return sha256_json({"id": row.id, "name": row.name, "version": row.version, "digest": row.digest,
                        "digest_kind": row.digest_kind, "path": row.path, "lineage_json": row.lineage_json})


def model_key(row) -> str:
    return f"{row.name}@{row.version}"


def job_digest(row) -> str:
    return sha256_json({"id": row.id, "domain": row.domain, "domain_version": row.domain_version, "mode": row.mode,
                        "target": row.target, "state": row.state, "path": row.path, "decision_id": row.decision_id,
                        "from_job": row.from_job, "detail_json": row.detail_json,
                        "manifest_hash": getattr(row, "manifest_hash", None),
                        "lease_owner": getattr(row, "lease_owner", None)})  # lease_until moves with heartbeats


@dataclass(frozen=True)
class RecordKind:
    """A chained table: the entry kind, the table's name, its key column and its digest."""

    kind: str
    table: str
    key: str
    digest: Callable[[Any], str]
    mutable: bool = False  # a mutable row (a job) points at its newest entry; older ones are history


KINDS: dict[str, RecordKind] = {
    "domain_version": RecordKind("domain_version", "domain_versions", "id", version_digest),
    "evidence": RecordKind("evidence", "evidence", "uid", evidence_digest),
    "job": RecordKind("job", "jobs", "id", job_digest, mutable=True),
    "model": RecordKind("model", "models", "id", model_digest),
}


def version_key(row) -> str:
    return f"{row.domain}@{row.version}"


def row_key(kind: RecordKind, row) -> str:
    if kind.kind == "domain_version":
        return version_key(row)
    if kind.kind == "model":
        return model_key(row)
    return str(getattr(row, kind.key))


# -- checks -----------------------------------------------------------------------------------------

def entry_payload(entry: tuple | None, what: str) -> tuple[dict, str | None]:
    """The payload of the chained entry that covers ``what``, and why it cannot be believed (None if it can).

    ``entry`` is (seq, kind, domain, created_at, payload_json, prev_hash, entry_hash) or None.
    """
    if entry is None:
        return {}, f"{what} is not in the audit chain (no entry has the hash it records)"
    seq, ekind, edomain, created, payload_json, prev, ehash = entry
    try:
        payload = json.loads(payload_json)
    except ValueError:
        return {}, f"audit entry {seq} (covering {what}) is not valid JSON"
    if stored_entry_hash(seq, ekind, edomain, created, payload_json, prev) != ehash:
        return {}, f"audit entry {seq} (covering {what}) no longer matches its hash"
    if not isinstance(payload, dict) or not isinstance(payload.get("extra", {}), dict):
        return {}, f"audit entry {seq} (covering {what}) is not a record entry: its payload is not of that shape"
    return payload, None


def entry_problem(kind: str, key: str, digest: str, entry: tuple | None) -> str | None:
    """Why a row does not match the entry it points at (None if it does)."""
    payload, problem = entry_payload(entry, f"{kind} {key}")
    if problem:
        return problem
    seq, ekind = entry[0], entry[1]
    if ekind != kind or payload.get("record") != kind or payload.get("key") != key:
        return f"{kind} {key} points at audit entry {seq}, which covers {payload.get('record')} {payload.get('key')}"
    if payload.get("digest") != digest:
        return f"{kind} {key} changed since it was recorded (audit entry {seq}); it no longer hashes the same"
    return None


def entries_by_hash(session, hashes: Iterable[str | None]) -> dict[str, tuple]:
    """entry_hash -> (seq, kind, domain, created_at, payload_json, prev_hash, entry_hash), in batches."""
    from sqlalchemy import select as core_select

    t = AuditEntryRow.__table__
    wanted = [h for h in dict.fromkeys(hashes) if h]
    out: dict[str, tuple] = {}
    for i in range(0, len(wanted), 500):
        stmt = core_select(t.c.seq, t.c.kind, t.c.domain, t.c.created_at, t.c.payload_json, t.c.prev_hash,
                           t.c.entry_hash).where(t.c.entry_hash.in_(wanted[i:i + 500]))
        for row in session.connection().execute(stmt):
            out[row[6]] = tuple(row)
    return out


def check_rows(session, kind: str, rows: list) -> None:
    """Re-hash rows read to decide and compare them with their entries; raise ``IntegrityError``."""
    spec = KINDS[kind]
    entries = entries_by_hash(session, (r.entry_hash for r in rows))
    for row in rows:
        problem = entry_problem(kind, row_key(spec, row), spec.digest(row), entries.get(row.entry_hash))
        if problem:
            raise IntegrityError(problem + "; run `registry audit verify` and restore the registry from a backup")


@dataclass(frozen=True)
class RecordProblem:
    kind: str
    key: str
    problem: str


def verify_records(session, limit: int = 20) -> tuple[int, list[RecordProblem]]:
    """Every chained row against its entry, and every record entry against its row. (rows checked, problems)."""
    from sqlalchemy import select as core_select

    t = AuditEntryRow.__table__
    covered: dict[str, dict[str, str]] = {k: {} for k in KINDS}  # kind -> key -> newest entry hash
    first: dict[str, dict[str, tuple[int, Any]]] = {k: {} for k in KINDS}  # kind -> key -> (seq, digest) first
    problems: list[RecordProblem] = []
    stmt = core_select(t.c.seq, t.c.kind, t.c.payload_json, t.c.entry_hash).where(t.c.kind.in_(list(KINDS))) \
        .order_by(t.c.seq)
    for seq, ekind, payload_json, ehash in session.connection().execute(stmt):
        try:
            payload = json.loads(payload_json)
        except ValueError:
            continue  # the chain check reports it
        if not isinstance(payload, dict):
            problems.append(RecordProblem(ekind, f"#{seq}", f"audit entry {seq} ({ekind}) is not a record entry: "
                                                            "its payload is not a JSON object"))
            continue
        key = str(payload.get("key"))
        covered[ekind][key] = ehash
        if KINDS[ekind].mutable:
            continue
        # an immutable record is chained once: a later entry for the same key with other content means the row
        # was replaced and chained again at the tail (the row then matches the newest entry, not what was recorded)
        seen_first = first[ekind].setdefault(key, (seq, payload.get("digest")))
        if seen_first[1] != payload.get("digest"):
            problems.append(RecordProblem(ekind, key, f"{ekind} {key} was recorded again with other content (audit "
                                                      f"entries {seen_first[0]} and {seq}): a recorded record was "
                                                      "replaced"))
    checked = 0
    for spec in KINDS.values():
        table = _table(spec.table)
        seen: set[str] = set()
        for batch in _batches(session, table):
            entries = entries_by_hash(session, (r.entry_hash for r in batch))
            for row in batch:
                checked += 1
                key = row_key(spec, row)
                seen.add(key)
                problem = entry_problem(spec.kind, key, spec.digest(row), entries.get(row.entry_hash))
                if problem is None and spec.mutable and covered[spec.kind].get(key) != row.entry_hash:
                    problem = f"{spec.kind} {key} was rolled back to an older recorded state"
                if problem:
                    problems.append(RecordProblem(spec.kind, key, problem))
        for key in covered[spec.kind]:
            if key not in seen:
                problems.append(RecordProblem(spec.kind, key, f"{spec.kind} {key} was deleted: its audit entry "
                                                              "remains"))
        if len(problems) >= limit:
            break
    if len(problems) < limit:
        from graduation.store.summaries import verify_summaries  # lazy: store.summaries imports this module

        counted, found = verify_summaries(session)  # recomputed from the rows, and against their entries
        checked += counted
        problems += [RecordProblem("summary", key, problem) for key, problem in found]
    if len(problems) < limit:
        from graduation.store.verdicts import verify_groups

        counted, found = verify_groups(session)  # each group of cached verdicts against its entry
        checked += counted
        problems += [RecordProblem("verdicts", key, problem) for key, problem in found]
    if len(problems) < limit:
        from graduation.store.pins import verify_pins

        counted, found = verify_pins(session)  # each policy pin against the one before it
        checked += counted
        problems += [RecordProblem("policy_pin", key, problem) for key, problem in found]
    return checked, problems[:limit]


def _table(name: str):
    return {"domain_versions": DomainVersionRow, "evidence": EvidenceRow, "jobs": JobRow, "models": ModelRow}[name]


def _batches(session, model, size: int = 2000):
    from sqlmodel import select

    pk = "seq" if model.__tablename__ == "audit_log" else ("id" if model.__tablename__ != "evidence" else "id")
    column = getattr(model, pk)
    last = None
    while True:
        stmt = select(model).order_by(column).limit(size)
        if last is not None:
            stmt = stmt.where(column > last)
        rows = list(session.exec(stmt).all())
        if not rows:
            return
        yield rows
        last = getattr(rows[-1], pk)


__all__ = ["KINDS", "RecordKind", "RecordProblem", "append_chained", "check_rows", "entries_by_hash",
           "entry_problem", "evidence_digest", "evidence_record_hash", "job_digest", "verify_records",
           "version_digest", "version_key"]

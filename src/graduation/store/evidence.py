"""Evidence records: append (immutable) and read back, validated against ``graduation.records``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from graduation.errors import InputError
from graduation.records import RECORD_MODELS, Record
from graduation.spec import sha256_json
from graduation.store.domains import get_version
from graduation.store.tables import EvidenceRow, utcnow


@dataclass(frozen=True)
class Evidence:
    """An evidence record as the pure core sees it (no database objects)."""

    uid: str
    domain: str
    domain_version: int
    basis_hash: str
    kind: str
    record: Record
    created_at: datetime
    model: str | None = None
    round: int | None = None
    data_hash: str | None = None
    author: str | None = None
    record_hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        from graduation.store.domains import iso

        return {"uid": self.uid, "domain": self.domain, "domain_version": self.domain_version,
                "basis_hash": self.basis_hash, "kind": self.kind, "created_at": iso(self.created_at),
                "model": self.model, "round": self.round, "data_hash": self.data_hash, "author": self.author,
                "record_hash": self.record_hash, "summary": self.record.model_dump(mode="json")}


def add_evidence(session: Session, domain: str, kind: str, record: Record, *, version: int | None = None,
                 model: str | None = None, round: int | None = None, data_hash: str | None = None,
                 author: str | None = None) -> Evidence:
    """Append one record for the domain's newest (or given) version. Returns it as stored."""
    expected = RECORD_MODELS.get(kind)
    if expected is None:
        raise InputError(f"unknown evidence kind {kind!r}; use one of {', '.join(RECORD_MODELS)}")
    if not isinstance(record, expected):
        raise InputError(f"evidence of kind {kind!r} needs a {expected.__name__}, not {type(record).__name__}")
    dv = get_version(session, domain, version)
    summary = record.model_dump(mode="json")
    created = utcnow()
    uid = uuid.uuid4().hex
    record_hash = sha256_json({"uid": uid, "domain": domain, "version": dv.version, "basis": dv.basis_hash,
                               "kind": kind, "summary": summary, "model": model, "round": round,
                               "data_hash": data_hash, "author": author})
    row = EvidenceRow(uid=uid, domain=domain, domain_version=dv.version, basis_hash=dv.basis_hash, kind=kind,
                      model=model, round=round, data_hash=data_hash, author=author, created_at=created,
                      summary_json=json.dumps(summary, sort_keys=True, ensure_ascii=False),
                      record_hash=record_hash)
    session.add(row)
    session.flush()
    return _to_evidence(row)


def list_evidence(session: Session, domain: str, *, basis_hash: str | None = None,
                  kinds: Iterable[str] | None = None) -> list[Evidence]:
    """Evidence of a domain, oldest first; only that of ``basis_hash`` when given."""
    stmt = select(EvidenceRow).where(EvidenceRow.domain == domain)
    if basis_hash is not None:
        stmt = stmt.where(EvidenceRow.basis_hash == basis_hash)
    if kinds is not None:
        stmt = stmt.where(col(EvidenceRow.kind).in_(list(kinds)))
    stmt = stmt.order_by(EvidenceRow.id)
    return [_to_evidence(row) for row in session.exec(stmt).all()]


def evidence_for_domains(session: Session, basis_by_domain: dict[str, str]) -> dict[str, list[Evidence]]:
    """Current-basis evidence of many domains in one query (for `status` over all domains)."""
    out: dict[str, list[Evidence]] = {name: [] for name in basis_by_domain}
    if not basis_by_domain:
        return out
    stmt = select(EvidenceRow).where(col(EvidenceRow.basis_hash).in_(set(basis_by_domain.values()))) \
        .order_by(EvidenceRow.id)
    for row in session.exec(stmt).all():
        if basis_by_domain.get(row.domain) == row.basis_hash:
            out[row.domain].append(_to_evidence(row))
    return out


def _to_evidence(row: EvidenceRow) -> Evidence:
    model = RECORD_MODELS[row.kind]
    return Evidence(uid=row.uid, domain=row.domain, domain_version=row.domain_version, basis_hash=row.basis_hash,
                    kind=row.kind, record=model.model_validate(json.loads(row.summary_json)),
                    created_at=row.created_at, model=row.model, round=row.round, data_hash=row.data_hash,
                    author=row.author, record_hash=row.record_hash)


IN_LIST_LIMIT = 500  # above this many domains, scan and filter instead of a long IN (...)


def current_evidence_rows(session: Session, basis_by_domain: dict[str, str]):
    """(domain, uid, kind, summary_json, record_hash, author, round) of current-basis evidence, oldest first.

    Raw rows for the decision path, which reads many records and decodes them without pydantic.
    """
    from sqlalchemy import select as core_select

    if not basis_by_domain:
        return
    t = EvidenceRow.__table__
    stmt = core_select(t.c.domain, t.c.basis_hash, t.c.uid, t.c.kind, t.c.summary_json, t.c.record_hash,
                       t.c.author, t.c.round)
    if len(basis_by_domain) <= IN_LIST_LIMIT:
        stmt = stmt.where(t.c.domain.in_(list(basis_by_domain)))
    for domain, basis, *rest in session.connection().execute(stmt.order_by(t.c.id)):
        if basis_by_domain.get(domain) == basis:
            yield (domain, *rest)


def evidence_stats(session: Session, basis_by_domain: dict[str, str]) -> dict[str, tuple[int, int, str]]:
    """domain -> (rows, newest row id, newest created_at) of its current-basis evidence, aggregated in SQL.

    The time stamp catches a row deleted and another inserted under the same id (SQLite may reuse the
    highest id): evidence is append-only, so none of the three can stay the same when the rows change.
    """
    from sqlalchemy import func
    from sqlalchemy import select as core_select

    t = EvidenceRow.__table__
    stmt = core_select(t.c.domain, t.c.basis_hash, func.count(), func.max(t.c.id), func.max(t.c.created_at)) \
        .group_by(t.c.domain, t.c.basis_hash)
    if len(basis_by_domain) <= IN_LIST_LIMIT:
        stmt = stmt.where(t.c.domain.in_(list(basis_by_domain)))
    out = {name: (0, 0, "") for name in basis_by_domain}
    for domain, basis, count, newest, stamp in session.connection().execute(stmt):
        if basis_by_domain.get(domain) == basis:
            out[domain] = (int(count), int(newest), str(stamp))
    return out


def find_evidence(session: Session, ref: str) -> Evidence:
    """One evidence record by uid, or by 8+ leading characters of it when they name only one."""
    from graduation.errors import NotFoundError

    ref = ref.strip().lower()
    if len(ref) < 8 or any(c not in "0123456789abcdef" for c in ref):
        raise InputError(f"evidence reference {ref!r}: give its uid, or 8+ of its leading hex digits "
                         "(`registry evidence DOMAIN` lists them)")
    rows = session.exec(select(EvidenceRow).where(col(EvidenceRow.uid).startswith(ref)).limit(2)).all()
    if not rows:
        raise NotFoundError(f"no evidence {ref!r}; `registry evidence DOMAIN --all` lists every record")
    if len(rows) > 1:
        raise InputError(f"evidence reference {ref!r} names more than one record: give more of the uid")
    return _to_evidence(rows[0])

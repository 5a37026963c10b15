"""Queries of the hash-chained decision log (``audit_log``). The chain logic lives in ``graduation.store.auditlog``.

Appends are serialized: SQLite write sessions already hold the database lock (``BEGIN IMMEDIATE``);
on PostgreSQL ``lock_for_append`` takes an exclusive table lock for the transaction, so two writers
never read the same tail. The ``seq`` primary key and the unique ``entry_hash`` back this up.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import text
from sqlmodel import Session, col, select

from graduation.store.tables import AuditEntryRow


def lock_for_append(session: Session) -> None:
    """Serialize appenders for the rest of the transaction."""
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        session.exec(text("LOCK TABLE audit_log IN EXCLUSIVE MODE"))


def tail(session: Session) -> AuditEntryRow | None:
    """The newest entry (highest seq), or None for an empty log."""
    return session.exec(select(AuditEntryRow).order_by(col(AuditEntryRow.seq).desc()).limit(1)).first()


def insert(session: Session, row: AuditEntryRow) -> AuditEntryRow:
    session.add(row)
    session.flush()
    return row


def entries(session: Session, batch: int = 1000) -> Iterator[AuditEntryRow]:
    """Every entry in seq order, read in batches so that a long log does not fill memory."""
    last = None
    while True:
        stmt = select(AuditEntryRow).order_by(AuditEntryRow.seq).limit(batch)
        if last is not None:
            stmt = stmt.where(AuditEntryRow.seq > last)
        rows = list(session.exec(stmt).all())
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def get(session: Session, seq: int) -> AuditEntryRow | None:
    return session.get(AuditEntryRow, seq)


def by_hash_prefix(session: Session, prefix: str) -> list[AuditEntryRow]:
    return list(session.exec(select(AuditEntryRow).where(col(AuditEntryRow.entry_hash).startswith(prefix))
                             .order_by(AuditEntryRow.seq).limit(2)).all())


def decisions(session: Session, decision_prefix: str) -> list[AuditEntryRow]:
    """Entries whose payload records a decision id starting with ``decision_prefix`` (newest first)."""
    needle = f'"decision_id":"{decision_prefix}'
    stmt = select(AuditEntryRow).where(col(AuditEntryRow.payload_json).contains(needle)) \
        .order_by(col(AuditEntryRow.seq).desc())
    return list(session.exec(stmt).all())


def count(session: Session) -> int:
    from sqlalchemy import func

    return session.exec(select(func.count()).select_from(AuditEntryRow)).one()

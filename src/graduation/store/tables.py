"""SQLModel tables of the registry. Schema changes go with an Alembic migration (``migrations/``).

Rows are written once and never updated, except ``domains.latest_version`` and a job's ``state``:
evidence and audit entries are immutable records. Every record row keeps ``entry_hash``, the hash of the
audit-log entry that chained it (``graduation.store.chain``); a job's points at its newest state change.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Column, DateTime, Index, LargeBinary, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from graduation.errors import IntegrityError


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Stamp(TypeDecorator):
    """A time stamp column (``DateTime``) whose stored value that is no time (SQLite keeps any text in any
    column) is ``IntegrityError`` (exit 2) when read, not a ``ValueError`` traceback."""

    impl = DateTime(timezone=True)  # as every migration declares it
    cache_ok = True

    def result_processor(self, dialect, coltype):
        inner = super().result_processor(dialect, coltype)
        if inner is None:
            return None

        def process(value):
            try:
                return inner(value)
            except (ValueError, TypeError, OverflowError):
                raise IntegrityError(f"a stored time stamp ({str(value)[:40]!r}) is not a time: the database was "
                                     "edited; run `registry audit verify` and restore the registry from a "
                                     "backup") from None

        return process


class DomainRow(SQLModel, table=True):
    __tablename__ = "domains"

    name: str = Field(primary_key=True, max_length=64)
    latest_version: int = Field(default=0)
    risk: str = Field(max_length=16)
    title: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_type=Stamp)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=Stamp)


class DomainVersionRow(SQLModel, table=True):
    __tablename__ = "domain_versions"
    __table_args__ = (UniqueConstraint("domain", "version", name="uq_domain_version"),)

    id: int | None = Field(default=None, primary_key=True)
    domain: str = Field(foreign_key="domains.name", index=True, max_length=64)
    version: int
    content_hash: str = Field(max_length=64, index=True)
    basis_hash: str = Field(max_length=64)
    risk: str = Field(max_length=16)
    source_file: str = Field(sa_column=Column(Text, nullable=False))
    spec_json: str = Field(sa_column=Column(Text, nullable=False))
    data_hashes_json: str = Field(sa_column=Column(Text, nullable=False, default="{}"))
    created_at: datetime = Field(default_factory=utcnow, sa_type=Stamp)
    entry_hash: str | None = Field(default=None, max_length=64)
    #: (size, mtime, ctime, inode, device) of each file when it was hashed at registration: the gate's fast path
    file_stats_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class EvidenceRow(SQLModel, table=True):
    """One immutable evidence record: eval, data_audit, human_audit, signoff, training_round, ..."""

    __tablename__ = "evidence"
    __table_args__ = (Index("ix_evidence_domain_basis", "domain", "basis_hash", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(max_length=64, unique=True)
    domain: str = Field(foreign_key="domains.name", index=True, max_length=64)
    domain_version: int
    basis_hash: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=32, index=True)
    model: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    model_id: int | None = Field(default=None, foreign_key="models.id", index=True)
    round: int | None = Field(default=None)
    data_hash: str | None = Field(default=None, max_length=64)
    author: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=Stamp)
    summary_json: str = Field(sa_column=Column(Text, nullable=False))
    record_hash: str = Field(max_length=64)
    entry_hash: str | None = Field(default=None, max_length=64)


class ModelRow(SQLModel, table=True):
    """A registered model artifact: ``NAME@VERSION``, its digest and its lineage (immutable once written).

    ``digest_kind``: ``manifest`` (computed here over the files of a directory), ``external`` (given with
    ``--digest``: an object store, an OCI image, a hub revision) or ``unverified`` (a free-text model name
    carried over from an older registry; no digest, so it can never pass a ``deploy:*`` gate).
    """

    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_model_version"),
                      UniqueConstraint("digest", name="uq_model_digest"))

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, index=True)
    version: int
    digest: str | None = Field(default=None, max_length=71)
    digest_kind: str = Field(max_length=16)
    path: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    lineage_json: str = Field(sa_column=Column(Text, nullable=False, default="{}"))
    created_at: datetime = Field(default_factory=utcnow, sa_type=Stamp)
    entry_hash: str | None = Field(default=None, max_length=64)


class VerdictCacheRow(SQLModel, table=True):
    """Verdicts keyed by sha256(verifier identity, reference, output): a rescan of unchanged data is free."""

    __tablename__ = "verdict_cache"

    key: str = Field(primary_key=True, max_length=64)
    verdict: str = Field(max_length=8)
    score: float = 0.0
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    #: the ``verdicts`` audit entry of the write that stored it, whose digest covers every row of that write
    #: (``graduation.store.verdicts``): a row of no intact group is never read back
    entry_hash: str | None = Field(default=None, max_length=64, index=True)


class AuditEntryRow(SQLModel, table=True):
    """An entry of the hash-chained decision log. ``entry_hash`` covers ``prev_hash`` and the payload."""

    __tablename__ = "audit_log"
    #: the newest entries of one kind (a policy pin) without walking the log
    __table_args__ = (Index("ix_audit_log_kind_seq", "kind", "seq"),)

    seq: int = Field(primary_key=True)
    kind: str = Field(max_length=32)
    domain: str | None = Field(default=None, max_length=64, index=True)
    created_at: str = Field(max_length=40)
    payload_json: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str = Field(max_length=64)
    entry_hash: str = Field(max_length=64, unique=True)


class SummaryRow(SQLModel, table=True):
    """The bulk evidence of one (domain, basis) folded as it was written (``graduation.tally``): what a
    decision reads instead of every row. Rewritten with each evidence write of that basis, in the same
    transaction; ``entry_hash`` is the audit entry of that write, whose payload holds this row's digest
    (``graduation.store.summaries``). ``rows``/``last_id``: the evidence rows (every kind) it covers."""

    __tablename__ = "evidence_summaries"
    __table_args__ = (UniqueConstraint("domain", "basis_hash", name="uq_summary_basis"),)

    id: int | None = Field(default=None, primary_key=True)
    domain: str = Field(foreign_key="domains.name", max_length=64)
    basis_hash: str = Field(max_length=64)
    rows: int = Field(default=0)
    last_id: int = Field(default=0)
    body_json: str = Field(sa_column=Column(Text, nullable=False))
    columns: bytes | None = Field(default=b"", sa_column=Column(LargeBinary, nullable=True))  # None reads as b""
    digest: str = Field(max_length=64)
    entry_hash: str | None = Field(default=None, max_length=64)


class JobRow(SQLModel, table=True):
    """A generated training job and its state."""

    __tablename__ = "jobs"

    id: str = Field(primary_key=True, max_length=128)
    domain: str = Field(foreign_key="domains.name", index=True, max_length=64)
    domain_version: int
    mode: str = Field(max_length=16)
    target: str = Field(max_length=16)
    state: str = Field(max_length=16, default="generated")
    path: str = Field(sa_column=Column(Text, nullable=False))
    decision_id: str | None = Field(default=None, max_length=64)
    from_job: str | None = Field(default=None, max_length=128)
    created_at: datetime = Field(default_factory=utcnow, sa_type=Stamp)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=Stamp)
    detail_json: str = Field(sa_column=Column(Text, nullable=False, default="{}"))
    manifest_hash: str | None = Field(default=None, max_length=64)
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_until: float | None = Field(default=None)
    entry_hash: str | None = Field(default=None, max_length=64)


ALL_TABLES = [DomainRow, DomainVersionRow, ModelRow, EvidenceRow, VerdictCacheRow, AuditEntryRow, JobRow, SummaryRow]

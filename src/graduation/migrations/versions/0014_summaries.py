"""evidence summaries: each (domain, basis)'s bulk evidence folded in the database, bound to the chain

Revision ID: 0014_summaries
Revises: 0013_chain

Summaries of evidence written before this revision are computed now from the rows (which 0013 chained),
and each is bound to a new ``summary`` audit entry holding its digest. From here on, every evidence write
updates its basis' summary in the same transaction (``graduation.store.summaries``).
"""
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0014_summaries"
down_revision = "0013_chain"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evidence_summaries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("domain", sa.String(length=64), sa.ForeignKey("domains.name"), nullable=False),
        sa.Column("basis_hash", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("body_json", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=True),
        sa.UniqueConstraint("domain", "basis_hash", name="uq_summary_basis"),
    )
    # the rows a summary covers are counted per (domain, basis) when deciding: an index answers it
    op.create_index("ix_evidence_domain_basis", "evidence", ["domain", "basis_hash", "kind"])
    _summarize_existing(op.get_bind())


def _summarize_existing(conn) -> None:
    from graduation.store.auditlog import GENESIS
    from graduation.store.summaries import rebuild_bound

    tail = conn.execute(sa.text("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1")).first()
    seq, prev = (tail[0], tail[1]) if tail else (0, GENESIS)
    pairs = conn.execute(sa.text("SELECT DISTINCT domain, basis_hash FROM evidence ORDER BY domain, basis_hash")).all()
    for domain, basis in pairs:
        seq += 1
        created = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        prev = rebuild_bound(conn, domain, basis, seq, prev, created, replace=False)


def downgrade() -> None:
    op.drop_index("ix_evidence_domain_basis", table_name="evidence")
    op.drop_table("evidence_summaries")

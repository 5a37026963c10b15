"""evidence summaries: each (domain, basis)'s bulk evidence folded in the database, bound to the chain

Revision ID: 0014_summaries
Revises: 0013_chain

Summaries of evidence written before this revision are computed from the rows (which 0013 chained) by
the next revision, 0015, each bound to a new ``summary`` audit entry holding its digest. From there on,
every evidence write updates its basis' summary in the same transaction (``graduation.store.summaries``).
"""
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
    # summaries of the evidence already stored are built by 0015_summary_columns (in the format it introduced)


def downgrade() -> None:
    op.drop_index("ix_evidence_domain_basis", table_name="evidence")
    op.drop_table("evidence_summaries")

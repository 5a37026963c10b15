"""cached verdicts are chained in groups: each row names the ``verdicts`` audit entry of the write that stored it

Revision ID: 0016_verdict_groups
Revises: 0015_summary_columns

The verdict cache was chained by nothing: a row set to ``pass`` passed a wrong output in every later round
that read it. Each write now stores its new verdicts with one ``verdicts`` entry whose digest covers all of
them (``graduation.store.verdicts``), and a verdict is read back only from a group that still hashes to its
entry. Rows cached before this revision belong to no entry, so they are deleted: the next scan verifies
again (a cache, so nothing is lost but time). A downgrade drops the column and keeps the rows.

The audit log gets an index on (kind, seq): every decision looks up the newest policy pin (``store.pins``),
which without it walked the whole log when there is none (14 ms at 100,000 entries).
"""
import sqlalchemy as sa
from alembic import op

revision = "0016_verdict_groups"
down_revision = "0015_summary_columns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM verdict_cache")
    with op.batch_alter_table("verdict_cache", schema=None) as batch_op:
        batch_op.add_column(sa.Column("entry_hash", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_verdict_cache_entry_hash", ["entry_hash"], unique=False)
    op.create_index("ix_audit_log_kind_seq", "audit_log", ["kind", "seq"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_log_kind_seq", table_name="audit_log")
    with op.batch_alter_table("verdict_cache", schema=None) as batch_op:
        batch_op.drop_index("ix_verdict_cache_entry_hash")
        batch_op.drop_column("entry_hash")

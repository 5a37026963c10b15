"""evidence summaries keep each model's rounds as columns, in a binary column beside their text (format 2)

Revision ID: 0015_summary_columns
Revises: 0014_summaries

Format 1 kept every model's rounds in one list, base64-packed inside the JSON text; format 2 keeps them per
model, column by column, in the new binary column ``columns`` (``graduation.tally``), which a decision reads
without decoding text or building an object per round. Every (domain, basis) with evidence whose summary is
missing (a registry coming from 0013) or of format 1 gets one computed from its rows, bound to a new
``summary`` audit entry. The rows are checked against their chained entries first: where they no longer
match, no summary is built (an old one is deleted), so deciding for that domain fails closed ("summary
missing") and `registry audit verify` names the rows. A downgrade removes the summaries: revision 0014's
code reads format 1 only, and refuses to decide without one rather than misread it.
"""
import json
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0015_summary_columns"
down_revision = "0014_summaries"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from graduation.store.auditlog import GENESIS
    from graduation.store.summaries import rebuild_bound, rows_intact
    from graduation.tally import BODY_FORMAT

    with op.batch_alter_table("evidence_summaries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("columns", sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    tail = conn.execute(sa.text("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1")).first()
    seq, prev = (tail[0], tail[1]) if tail else (0, GENESIS)
    stored = {(d, b): text for d, b, text in conn.execute(sa.text(
        "SELECT domain, basis_hash, body_json FROM evidence_summaries"))}
    pairs = conn.execute(sa.text("SELECT DISTINCT domain, basis_hash FROM evidence ORDER BY domain, basis_hash")).all()
    for domain, basis in pairs:
        text = stored.get((domain, basis))
        if text is not None and _format(text) == BODY_FORMAT:
            continue
        if not rows_intact(conn, domain, basis):
            conn.execute(sa.text("DELETE FROM evidence_summaries WHERE domain = :d AND basis_hash = :b"),
                         {"d": domain, "b": basis})
            continue
        seq += 1
        created = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        prev = rebuild_bound(conn, domain, basis, seq, prev, created, replace=text is not None)


def _format(text: str):
    try:
        return json.loads(text).get("format")
    except (ValueError, AttributeError):
        return None  # unreadable: rebuilt like an old one


def downgrade() -> None:
    op.get_bind().execute(sa.text("DELETE FROM evidence_summaries"))
    with op.batch_alter_table("evidence_summaries", schema=None) as batch_op:
        batch_op.drop_column("columns")

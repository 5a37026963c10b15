"""evidence summaries keep each model's rounds as columns (body format 2)

Revision ID: 0015_summary_columns
Revises: 0014_summaries

A summary of format 1 kept every model's rounds in one packed list; format 2 keeps them per model, column
by column (``graduation.tally``), which a decision reads without building an object per round. Each older
summary is computed again from its rows and bound to a new ``summary`` audit entry. The rows are checked
against their chained entries first: a summary whose rows no longer match is deleted rather than rebuilt
from them, so deciding for that domain fails closed ("summary missing") and `registry audit verify` names
the rows. A downgrade removes the summaries (see ``downgrade``).
"""
import json
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0015_summary_columns"
down_revision = "0014_summaries"
branch_labels = None
depends_on = None


class _Session:
    """What ``graduation.store.evidence.current_evidence_rows`` needs of a session: its connection."""

    def __init__(self, conn) -> None:
        self._conn = conn

    def connection(self):
        return self._conn


def upgrade() -> None:
    from graduation.errors import IntegrityError
    from graduation.store.auditlog import GENESIS
    from graduation.store.evidence import current_evidence_rows
    from graduation.store.summaries import rebuild_bound
    from graduation.tally import BODY_FORMAT

    conn = op.get_bind()
    tail = conn.execute(sa.text("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1")).first()
    seq, prev = (tail[0], tail[1]) if tail else (0, GENESIS)
    stored = conn.execute(sa.text("SELECT domain, basis_hash, body_json FROM evidence_summaries "
                                  "ORDER BY domain, basis_hash")).all()
    for domain, basis, body_json in stored:
        try:
            if json.loads(body_json).get("format") == BODY_FORMAT:
                continue
        except ValueError:
            pass  # an unreadable body is rebuilt like an old one
        try:
            for _row in current_evidence_rows(_Session(conn), {domain: basis}):
                pass  # every row re-hashed against its entry
        except IntegrityError:
            conn.execute(sa.text("DELETE FROM evidence_summaries WHERE domain = :d AND basis_hash = :b"),
                         {"d": domain, "b": basis})
            continue
        seq += 1
        created = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        prev = rebuild_bound(conn, domain, basis, seq, prev, created, replace=True)


def downgrade() -> None:
    # revision 0014's code reads format 1 only, and format 1 is not written any more: the summaries are removed,
    # so that code refuses to decide ("summary missing", exit 2) rather than misread them
    op.get_bind().execute(sa.text("DELETE FROM evidence_summaries"))

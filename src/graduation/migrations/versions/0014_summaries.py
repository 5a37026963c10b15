"""evidence summaries: each (domain, basis)'s bulk evidence folded in the database, bound to the chain

Revision ID: 0014_summaries
Revises: 0013_chain

Summaries of evidence written before this revision are computed now from the rows (which 0013 chained),
and each is bound to a new ``summary`` audit entry holding its digest. From here on, every evidence write
updates its basis' summary in the same transaction (``graduation.store.summaries``).
"""
import json
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


class _Session:
    """What ``graduation.store.summaries.rebuild`` needs of a session: its connection."""

    def __init__(self, conn) -> None:
        self._conn = conn

    def connection(self):
        return self._conn


def _summarize_existing(conn) -> None:
    from graduation.store.auditlog import GENESIS, canonical, compute_hash
    from graduation.store.summaries import rebuild, summary_digest
    from graduation.tally import dumps

    tail = conn.execute(sa.text("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1")).first()
    seq, prev = (tail[0], tail[1]) if tail else (0, GENESIS)
    pairs = conn.execute(sa.text("SELECT DISTINCT domain, basis_hash FROM evidence ORDER BY domain, basis_hash")).all()
    for domain, basis in pairs:
        rows, last, body = rebuild(_Session(conn), domain, basis)
        body_json = dumps(body)
        digest = summary_digest(domain, basis, rows, last, body_json)
        payload = json.loads(canonical({"record": "summary", "key": f"{domain}@{basis}", "digest": digest,
                                        "extra": {"summary": digest}}))
        seq += 1
        created = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        entry = compute_hash(seq, "summary", domain, created, payload, prev)
        conn.execute(sa.text("INSERT INTO audit_log (seq, kind, domain, created_at, payload_json, prev_hash, "
                             "entry_hash) VALUES (:s, 'summary', :d, :c, :p, :prev, :h)"),
                     {"s": seq, "d": domain, "c": created, "p": canonical(payload), "prev": prev, "h": entry})
        conn.execute(sa.text("INSERT INTO evidence_summaries (domain, basis_hash, rows, last_id, body_json, digest, "
                             "entry_hash) VALUES (:d, :b, :r, :l, :j, :g, :h)"),
                     {"d": domain, "b": basis, "r": rows, "l": last, "j": body_json, "g": digest, "h": entry})
        prev = entry


def downgrade() -> None:
    op.drop_index("ix_evidence_domain_basis", table_name="evidence")
    op.drop_table("evidence_summaries")

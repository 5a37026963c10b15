"""every record in the chain: entry_hash on record rows, job manifest and lease

Revision ID: 0013_chain
Revises: 0011_models

Rows written before this revision are chained now, in id order, so that from here on every row has
the entry that covers it (the registry trusts its own content once, at this upgrade).
"""
from alembic import op
import sqlalchemy as sa


revision = "0013_chain"
down_revision = "0011_models"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("domain_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("entry_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("file_stats_json", sa.Text(), nullable=True))
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.add_column(sa.Column("entry_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("entry_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("manifest_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("entry_hash", sa.String(length=64), nullable=True))
    _chain_existing(op.get_bind())


def _chain_existing(conn) -> None:
    import json
    from datetime import datetime, timezone

    from graduation.store.auditlog import GENESIS, canonical, compute_hash
    from graduation.store.chain import job_digest, model_digest, version_digest

    tail = conn.execute(sa.text("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1")).first()
    state = {"seq": tail[0] if tail else 0, "prev": tail[1] if tail else GENESIS}

    def append(kind, key, digest, domain, extra=None):
        payload = {"record": kind, "key": key, "digest": digest}
        if extra:
            payload["extra"] = extra
        payload = json.loads(canonical(payload))
        seq = state["seq"] + 1
        created = datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
        digest_ = compute_hash(seq, kind, domain, created, payload, state["prev"])
        conn.execute(sa.text("INSERT INTO audit_log (seq, kind, domain, created_at, payload_json, prev_hash, "
                             "entry_hash) VALUES (:s, :k, :d, :c, :p, :prev, :h)"),
                     {"s": seq, "k": kind, "d": domain, "c": created, "p": canonical(payload), "prev": state["prev"],
                      "h": digest_})
        state["seq"], state["prev"] = seq, digest_
        return digest_

    for row in conn.execute(sa.text("SELECT * FROM domain_versions WHERE entry_hash IS NULL ORDER BY id")).mappings().all():
        r = _Row(row)
        h = append("domain_version", f"{r.domain}@{r.version}", version_digest(r), r.domain)
        conn.execute(sa.text("UPDATE domain_versions SET entry_hash = :h WHERE id = :i"), {"h": h, "i": r.id})
    for row in conn.execute(sa.text("SELECT * FROM models WHERE entry_hash IS NULL ORDER BY id")).mappings().all():
        r = _Row(row)
        h = append("model", f"{r.name}@{r.version}", model_digest(r), None)
        conn.execute(sa.text("UPDATE models SET entry_hash = :h WHERE id = :i"), {"h": h, "i": r.id})
    for row in conn.execute(sa.text("SELECT uid, domain, record_hash FROM evidence WHERE entry_hash IS NULL "
                                    "ORDER BY id")).all():
        h = append("evidence", row[0], row[2], row[1])
        conn.execute(sa.text("UPDATE evidence SET entry_hash = :h WHERE uid = :u"), {"h": h, "u": row[0]})
    for row in conn.execute(sa.text("SELECT * FROM jobs WHERE entry_hash IS NULL ORDER BY id")).mappings().all():
        r = _Row(row)
        h = append("job", r.id, job_digest(r), r.domain, {"state": r.state})
        conn.execute(sa.text("UPDATE jobs SET entry_hash = :h WHERE id = :i"), {"h": h, "i": r.id})


class _Row:
    def __init__(self, mapping) -> None:
        self.__dict__.update(dict(mapping))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("entry_hash")
        batch_op.drop_column("lease_until")
        batch_op.drop_column("lease_owner")
        batch_op.drop_column("manifest_hash")
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_column("entry_hash")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("entry_hash")
    with op.batch_alter_table("domain_versions", schema=None) as batch_op:
        batch_op.drop_column("file_stats_json")
        batch_op.drop_column("entry_hash")

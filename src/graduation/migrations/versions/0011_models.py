"""models: registered model artifacts; evidence rows name the model version they belong to

Existing rounds named their model in free text. Each distinct free-text model becomes a registered model
of unknown digest (``digest_kind = 'unverified'``; it can never pass a ``deploy:*`` gate until the
artifact is registered with a digest), and its rows point at it; their record hashes are recomputed to
cover that link. Nothing else changes: the free-text ``model`` column stays as it was.

Revision ID: 0011_models
Revises: 0001
"""
import json
import re
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0011_models"
down_revision = "0001"
branch_labels = None
depends_on = None

_BAD = re.compile(r"[^A-Za-z0-9._/+-]")


def _name(text: str) -> str:
    name = _BAD.sub("-", text.strip())[:128].lstrip("._/+-")
    if not name or name.lower().startswith("sha256"):
        name = "legacy-" + name
    return name[:128]


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=True),
        sa.Column("digest_kind", sa.String(length=16), nullable=False),
        sa.Column("path", sa.Text(), nullable=True),
        sa.Column("lineage_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", name="uq_model_version"),
        sa.UniqueConstraint("digest", name="uq_model_digest"),
    )
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_models_name"), ["name"], unique=False)
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_evidence_model_id"), ["model_id"], unique=False)
        batch_op.create_foreign_key("fk_evidence_model_id", "models", ["model_id"], ["id"])

    conn = op.get_bind()
    texts = [row[0] for row in conn.execute(sa.text(
        "SELECT DISTINCT model FROM evidence WHERE model IS NOT NULL AND kind IN ('eval', 'training_round') "
        "ORDER BY model"))]
    versions: dict[str, int] = {}
    now = datetime.now(timezone.utc)
    for text in texts:
        name = _name(text)
        versions[name] = versions.get(name, 0) + 1
        conn.execute(sa.text("INSERT INTO models (name, version, digest, digest_kind, path, lineage_json, created_at) "
                             "VALUES (:n, :v, NULL, 'unverified', NULL, :l, :t)"),
                     {"n": name, "v": versions[name], "t": now,
                      "l": json.dumps({"migrated_from": text}, sort_keys=True)})
        model_id = conn.execute(sa.text("SELECT id FROM models WHERE name = :n AND version = :v"),
                                {"n": name, "v": versions[name]}).scalar()
        conn.execute(sa.text("UPDATE evidence SET model_id = :i WHERE model = :m AND kind IN ('eval', 'training_round')"),
                     {"i": model_id, "m": text})
    _rehash_linked(conn)


def _rehash_linked(conn) -> None:
    """A record's hash covers the model it belongs to: recompute it for the rows just linked (before any
    chain exists; the chain's migration then seals these hashes)."""
    from graduation.store.chain import evidence_record_hash

    rows = conn.execute(sa.text(
        "SELECT id, uid, domain, domain_version, basis_hash, kind, summary_json, model, round, data_hash, author, "
        "model_id FROM evidence WHERE model_id IS NOT NULL")).fetchall()
    for (rid, uid, domain, version, basis, kind, summary, model, rnd, data_hash, author, model_id) in rows:
        digest = evidence_record_hash(uid=uid, domain=domain, version=version, basis=basis, kind=kind,
                                      summary=json.loads(summary), model=model, round=rnd, data_hash=data_hash,
                                      author=author, model_id=model_id)
        conn.execute(sa.text("UPDATE evidence SET record_hash = :h WHERE id = :i"), {"h": digest, "i": rid})


def downgrade() -> None:
    with op.batch_alter_table("evidence", schema=None) as batch_op:
        batch_op.drop_constraint("fk_evidence_model_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_evidence_model_id"))
        batch_op.drop_column("model_id")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_models_name"))
    op.drop_table("models")

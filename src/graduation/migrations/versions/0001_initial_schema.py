"""initial schema

Revision ID: 0001
Revises: 
"""
from alembic import op
import sqlalchemy as sa



revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('audit_log',
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('domain', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.String(length=40), nullable=False),
    sa.Column('payload_json', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('entry_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('entry_hash')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_domain'), ['domain'], unique=False)

    op.create_table('domains',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('latest_version', sa.Integer(), nullable=False),
    sa.Column('risk', sa.String(length=16), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('verdict_cache',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('verdict', sa.String(length=8), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('domain_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('domain', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('basis_hash', sa.String(length=64), nullable=False),
    sa.Column('risk', sa.String(length=16), nullable=False),
    sa.Column('source_file', sa.Text(), nullable=False),
    sa.Column('spec_json', sa.Text(), nullable=False),
    sa.Column('data_hashes_json', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['domain'], ['domains.name'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('domain', 'version', name='uq_domain_version')
    )
    with op.batch_alter_table('domain_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_domain_versions_content_hash'), ['content_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_domain_versions_domain'), ['domain'], unique=False)

    op.create_table('evidence',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uid', sa.String(length=64), nullable=False),
    sa.Column('domain', sa.String(length=64), nullable=False),
    sa.Column('domain_version', sa.Integer(), nullable=False),
    sa.Column('basis_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('model', sa.Text(), nullable=True),
    sa.Column('round', sa.Integer(), nullable=True),
    sa.Column('data_hash', sa.String(length=64), nullable=True),
    sa.Column('author', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('summary_json', sa.Text(), nullable=False),
    sa.Column('record_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['domain'], ['domains.name'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('uid')
    )
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evidence_basis_hash'), ['basis_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_evidence_domain'), ['domain'], unique=False)
        batch_op.create_index(batch_op.f('ix_evidence_kind'), ['kind'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('domain', sa.String(length=64), nullable=False),
    sa.Column('domain_version', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('target', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('decision_id', sa.String(length=64), nullable=True),
    sa.Column('from_job', sa.String(length=128), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detail_json', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['domain'], ['domains.name'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_domain'), ['domain'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_jobs_domain'))

    op.drop_table('jobs')
    with op.batch_alter_table('evidence', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evidence_kind'))
        batch_op.drop_index(batch_op.f('ix_evidence_domain'))
        batch_op.drop_index(batch_op.f('ix_evidence_basis_hash'))

    op.drop_table('evidence')
    with op.batch_alter_table('domain_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_domain_versions_domain'))
        batch_op.drop_index(batch_op.f('ix_domain_versions_content_hash'))

    op.drop_table('domain_versions')
    op.drop_table('verdict_cache')
    op.drop_table('domains')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_domain'))

    op.drop_table('audit_log')


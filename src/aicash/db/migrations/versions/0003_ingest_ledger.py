"""ingest ledger: object-store files already read by `aicash data ingest --from s3://...`

Revision ID: 0003_ingest_ledger
Revises: 0002_monitoring
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa

revision = '0003_ingest_ledger'
down_revision = '0002_monitoring'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ingested_objects',
    sa.Column('bucket', sa.String(length=63), nullable=False),
    sa.Column('key', sa.String(length=1024), nullable=False),
    sa.Column('etag', sa.String(length=128), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('ingested_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'key', 'etag')
    )


def downgrade() -> None:
    op.drop_table('ingested_objects')

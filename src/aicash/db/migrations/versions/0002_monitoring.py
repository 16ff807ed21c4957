"""monitoring: prediction outcomes, live metrics, drift reports

Revision ID: 0002_monitoring
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0002_monitoring'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('drift_reports',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('current_rows', sa.Integer(), nullable=False),
    sa.Column('reference_rows', sa.Integer(), nullable=False),
    sa.Column('drift_share_threshold', sa.Float(), nullable=False),
    sa.Column('drifted_share', sa.Float(), nullable=False),
    sa.Column('detected', sa.Boolean(), nullable=False),
    sa.Column('signal_drifted', sa.Boolean(), nullable=True),
    sa.Column('scores', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('location', sa.Text(), nullable=False),
    sa.Column('emailed', sa.Boolean(), nullable=False),
    sa.Column('retrain_run', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('drift_reports', schema=None) as batch_op:
        batch_op.create_index('ix_drift_reports_created_at', ['created_at'], unique=False)

    op.create_table('live_metrics',
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('decisions', sa.Integer(), nullable=False),
    sa.Column('correct', sa.Integer(), nullable=False),
    sa.Column('accuracy', sa.Float(), nullable=False),
    sa.Column('trades', sa.Integer(), nullable=False),
    sa.Column('wins', sa.Integer(), nullable=False),
    sa.Column('win_rate', sa.Float(), nullable=True),
    sa.Column('mean_trade_return', sa.Float(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('model_version', 'day')
    )
    op.create_table('prediction_outcomes',
    sa.Column('prediction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('symbol', sa.String(length=32), nullable=False),
    sa.Column('timeframe', sa.String(length=8), nullable=False),
    sa.Column('signal', sa.String(length=4), nullable=False),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('predicted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('horizon_bars', sa.Integer(), nullable=False),
    sa.Column('entry_ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('exit_ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('entry_close', sa.Float(), nullable=False),
    sa.Column('exit_close', sa.Float(), nullable=False),
    sa.Column('realized_return', sa.Float(), nullable=False),
    sa.Column('realized_signal', sa.String(length=4), nullable=False),
    sa.Column('correct', sa.Boolean(), nullable=False),
    sa.Column('traded', sa.Boolean(), nullable=False),
    sa.Column('win', sa.Boolean(), nullable=True),
    sa.Column('evaluated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['prediction_id'], ['predictions.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('prediction_id')
    )
    with op.batch_alter_table('prediction_outcomes', schema=None) as batch_op:
        batch_op.create_index('ix_prediction_outcomes_version_predicted_at', ['model_version', 'predicted_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('prediction_outcomes', schema=None) as batch_op:
        batch_op.drop_index('ix_prediction_outcomes_version_predicted_at')

    op.drop_table('prediction_outcomes')
    op.drop_table('live_metrics')
    with op.batch_alter_table('drift_reports', schema=None) as batch_op:
        batch_op.drop_index('ix_drift_reports_created_at')

    op.drop_table('drift_reports')

"""experiments: model searches and their trials (the leaderboard), with the workloads' grants on PostgreSQL

Revision ID: 0005_experiments
Revises: 0004_roles
Create Date: 2026-12-07

`experiments` holds one row per search (series, space, sampler and seed, the winner, the deflated Sharpe ratio and
PBO, the version it registered and the gate's decision); `experiment_trials` one row per trial, deleted with its
experiment. On PostgreSQL, training records them (SELECT, INSERT, UPDATE); serving, monitoring and readonly read them.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0005_experiments'
down_revision = '0004_roles'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TABLES = ('experiments', 'experiment_trials')
# role -> privileges on both tables (the roles are made by 0004_roles): the pipelines record searches; people read
# them; the service and the monitor never need them (least privilege)
GRANTS = {
    'aicash_training': 'SELECT, INSERT, UPDATE',
    'aicash_readonly': 'SELECT',
}


def upgrade() -> None:
    op.create_table('experiments',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('pipeline', sa.String(length=64), nullable=False),
    sa.Column('series', JSON, nullable=False),
    sa.Column('timeframe', sa.String(length=8), nullable=False),
    sa.Column('space', JSON, nullable=False),
    sa.Column('seed', sa.Integer(), nullable=True),
    sa.Column('sampler', sa.String(length=32), nullable=False),
    sa.Column('trials', sa.Integer(), nullable=False),
    sa.Column('selected_trial', sa.Integer(), nullable=False),
    sa.Column('family', sa.String(length=32), nullable=False),
    sa.Column('params', JSON, nullable=False),
    sa.Column('deflated_sharpe', sa.Float(), nullable=True),
    sa.Column('expected_max_sharpe', sa.Float(), nullable=True),
    sa.Column('sharpe_variance', sa.Float(), nullable=True),
    sa.Column('pbo', sa.Float(), nullable=True),
    sa.Column('search', JSON, nullable=False),
    sa.Column('equity', JSON, nullable=True),
    sa.Column('model_version', sa.String(length=64), nullable=True),
    sa.Column('decision', sa.String(length=16), nullable=True),
    sa.Column('reasons', JSON, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.create_index('ix_experiments_created_at', ['created_at'], unique=False)

    op.create_table('experiment_trials',
    sa.Column('experiment_id', ID, autoincrement=False, nullable=False),
    sa.Column('number', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('family', sa.String(length=32), nullable=False),
    sa.Column('params', JSON, nullable=False),
    sa.Column('accuracy', sa.Float(), nullable=True),
    sa.Column('directional_accuracy', sa.Float(), nullable=True),
    sa.Column('win_rate', sa.Float(), nullable=True),
    sa.Column('trades', sa.Integer(), nullable=True),
    sa.Column('coverage', sa.Float(), nullable=True),
    sa.Column('calibration_error', sa.Float(), nullable=True),
    sa.Column('sharpe', sa.Float(), nullable=True),
    sa.Column('information_coefficient', sa.Float(), nullable=True),
    sa.Column('seconds', sa.Float(), nullable=True),
    sa.Column('selected', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['experiment_id'], ['experiments.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('experiment_id', 'number')
    )
    if op.get_bind().dialect.name != 'postgresql':
        return  # SQLite: no roles, no grants
    for role, privileges in GRANTS.items():
        for table in TABLES:
            op.execute(f'GRANT {privileges} ON {table} TO {role}')
    # INSERT ... RETURNING id: the experiment's id comes from its sequence
    op.execute("DO $$ BEGIN EXECUTE format('GRANT USAGE ON SEQUENCE %s TO aicash_training', "
               "pg_get_serial_sequence('experiments', 'id')); END $$")


def downgrade() -> None:
    # the grants go with the tables
    op.drop_table('experiment_trials')
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.drop_index('ix_experiments_created_at')

    op.drop_table('experiments')

"""quota administration, reinstalls and clock skew

Revision ID: 5b1c0e9a7d21
Revises: e7ee49a9b7e6
Create Date: 2026-12-01 12:40:00.000000

"""
from alembic import op
import sqlalchemy as sa

import tracker.db_types


# revision identifiers, used by Alembic.
revision = '5b1c0e9a7d21'
down_revision = 'e7ee49a9b7e6'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('quota_quotas', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retired', sa.Integer(), nullable=False, server_default='0'))

    with op.batch_alter_table('quota_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_until', tracker.db_types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('earlier', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('reinstalled', tracker.db_types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('clock_skew', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('weight', sa.Float(), nullable=False, server_default='1.0'))
        batch_op.add_column(sa.Column('max_ceiling', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.true()))

    with op.batch_alter_table('quota_approvals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_until', tracker.db_types.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('quota_history', schema=None) as batch_op:
        batch_op.add_column(sa.Column('actor', sa.String(length=100), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('client_name', sa.String(length=100), nullable=False, server_default=''))
        batch_op.drop_constraint('fk_quota_history_client_id_quota_clients', type_='foreignkey')
        batch_op.create_foreign_key(
            batch_op.f('fk_quota_history_client_id_quota_clients'),
            'quota_clients', ['client_id'], ['id'], ondelete='SET NULL',
        )
    op.execute(
        "UPDATE quota_history SET client_name = (SELECT name FROM quota_clients"
        " WHERE quota_clients.id = quota_history.client_id)"
        " WHERE client_id IS NOT NULL"
    )


def downgrade():
    with op.batch_alter_table('quota_history', schema=None) as batch_op:
        batch_op.drop_constraint('fk_quota_history_client_id_quota_clients', type_='foreignkey')
        batch_op.create_foreign_key(
            batch_op.f('fk_quota_history_client_id_quota_clients'),
            'quota_clients', ['client_id'], ['id'], ondelete='CASCADE',
        )
        batch_op.drop_column('client_name')
        batch_op.drop_column('actor')

    with op.batch_alter_table('quota_approvals', schema=None) as batch_op:
        batch_op.drop_column('held_until')

    with op.batch_alter_table('quota_clients', schema=None) as batch_op:
        for name in ('active', 'max_ceiling', 'weight', 'clock_skew', 'reinstalled', 'earlier', 'pending_until'):
            batch_op.drop_column(name)

    with op.batch_alter_table('quota_quotas', schema=None) as batch_op:
        batch_op.drop_column('retired')

"""an admin's disable kept apart from the client's, registration idempotency keys,
trimmed crawl history

Revision ID: 5b0f3c9e2a17
Revises: d721e51ea460
Create Date: 2026-12-01 12:45:00.000000

"""
from alembic import op
import sqlalchemy as sa

import tracker.db_types


# revision identifiers, used by Alembic.
revision = '5b0f3c9e2a17'
down_revision = 'd721e51ea460'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('client_enabled', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('admin_disabled', sa.Boolean(), server_default=sa.false(), nullable=False))
    # Until now a disable from either side was one flag: keep it as the client's.
    op.execute(sa.text('UPDATE instances SET client_enabled = enabled'))

    with op.batch_alter_table('crawl_results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('data_trimmed', sa.Boolean(), server_default=sa.false(), nullable=False))

    op.create_table('registration_keys',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('created', tracker.db_types.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_registration_keys_instance_id_instances'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_registration_keys'))
    )
    with op.batch_alter_table('registration_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_registration_keys_created'), ['created'], unique=False)
        batch_op.create_index(batch_op.f('ix_registration_keys_instance_id'), ['instance_id'], unique=False)


def downgrade():
    with op.batch_alter_table('registration_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registration_keys_instance_id'))
        batch_op.drop_index(batch_op.f('ix_registration_keys_created'))
    op.drop_table('registration_keys')

    with op.batch_alter_table('crawl_results', schema=None) as batch_op:
        batch_op.drop_column('data_trimmed')

    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_column('admin_disabled')
        batch_op.drop_column('client_enabled')

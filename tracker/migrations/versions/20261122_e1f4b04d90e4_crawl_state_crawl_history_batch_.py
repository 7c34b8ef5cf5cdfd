"""crawl state, crawl history, batch operations

Revision ID: e1f4b04d90e4
Revises: f531a6ddac3d
Create Date: 2026-11-22 22:31:14.564317

"""
from alembic import op
import sqlalchemy as sa

import tracker.db_types


# revision identifiers, used by Alembic.
revision = 'e1f4b04d90e4'
down_revision = 'f531a6ddac3d'
branch_labels = None
depends_on = None


def upgrade():
    # Existing instances get server defaults: accepted, health unknown, nothing crawled.
    op.create_table('batch_operations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('operation_type', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=128), nullable=False),
    sa.Column('context_type', sa.String(length=64), nullable=True),
    sa.Column('context_id', sa.String(length=64), nullable=True),
    sa.Column('started_by_id', sa.Integer(), nullable=True),
    sa.Column('created', tracker.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started', tracker.db_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished', tracker.db_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('heartbeat', tracker.db_types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('input_data', sa.JSON(), nullable=False),
    sa.Column('output_data', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('active_key', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['started_by_id'], ['users.id'], name=op.f('fk_batch_operations_started_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batch_operations')),
    sa.UniqueConstraint('active_key', name=op.f('uq_batch_operations_active_key'))
    )
    with op.batch_alter_table('batch_operations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batch_operations_created'), ['created'], unique=False)
        batch_op.create_index(batch_op.f('ix_batch_operations_operation_type'), ['operation_type'], unique=False)

    op.create_table('crawl_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('batch_operation_id', sa.Integer(), nullable=True),
    sa.Column('crawled_at', tracker.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('health', sa.String(length=16), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['batch_operation_id'], ['batch_operations.id'], name=op.f('fk_crawl_results_batch_operation_id_batch_operations'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['instance_id'], ['instances.id'], name=op.f('fk_crawl_results_instance_id_instances'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crawl_results'))
    )
    with op.batch_alter_table('crawl_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_crawl_results_crawled_at'), ['crawled_at'], unique=False)
        batch_op.create_index('ix_crawl_results_instance_time', ['instance_id', 'crawled_at'], unique=False)

    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.add_column(sa.Column('approved', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('health', sa.String(length=16), nullable=False, server_default='unknown'))
        batch_op.add_column(sa.Column('last_attempt', tracker.db_types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_success', tracker.db_types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_duration_ms', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('last_status', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('crawled', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('crawled_sources', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('address', sa.String(length=45), nullable=True))
        batch_op.add_column(sa.Column('country_code', sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column('country_name', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('city', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('latitude', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('longitude', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('accuracy_km', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('location_manual', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index(batch_op.f('ix_instances_country_code'), ['country_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_instances_health'), ['health'], unique=False)

    # ### end Alembic commands ###


def downgrade():
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table('instances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_instances_health'))
        batch_op.drop_index(batch_op.f('ix_instances_country_code'))
        batch_op.drop_column('location_manual')
        batch_op.drop_column('accuracy_km')
        batch_op.drop_column('longitude')
        batch_op.drop_column('latitude')
        batch_op.drop_column('city')
        batch_op.drop_column('country_name')
        batch_op.drop_column('country_code')
        batch_op.drop_column('address')
        batch_op.drop_column('crawled_sources')
        batch_op.drop_column('crawled')
        batch_op.drop_column('last_error')
        batch_op.drop_column('last_status')
        batch_op.drop_column('last_duration_ms')
        batch_op.drop_column('last_success')
        batch_op.drop_column('last_attempt')
        batch_op.drop_column('health')
        batch_op.drop_column('approved')

    with op.batch_alter_table('crawl_results', schema=None) as batch_op:
        batch_op.drop_index('ix_crawl_results_instance_time')
        batch_op.drop_index(batch_op.f('ix_crawl_results_crawled_at'))

    op.drop_table('crawl_results')
    with op.batch_alter_table('batch_operations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batch_operations_operation_type'))
        batch_op.drop_index(batch_op.f('ix_batch_operations_created'))

    op.drop_table('batch_operations')
    # ### end Alembic commands ###

"""allocation: account maps, one job row per run, pool units

Revision ID: 5c0234f4bef4
Revises: 5c0d2a7e9b41
Create Date: 2026-12-01 13:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5c0234f4bef4'
down_revision = '5c0d2a7e9b41'
branch_labels = None
depends_on = None

# Pools' free-text units read as the units they name; disk pools now convert
# snapshot bytes themselves, so a factor that did it by hand is folded in.
UNIT_NAMES = {
    'cpu hours': 'CPU-hours', 'cpu-hours': 'CPU-hours', 'core hours': 'CPU-hours',
    'hours': 'CPU-hours', 'b': 'B', 'bytes': 'B', 'kb': 'KB', 'mb': 'MB', 'gb': 'GB',
    'tb': 'TB', 'pb': 'PB', 'kib': 'KiB', 'mib': 'MiB', 'gib': 'GiB', 'tib': 'TiB',
    'pib': 'PiB',
}
BYTES = {'B': 1, 'KB': 10**3, 'MB': 10**6, 'GB': 10**9, 'TB': 10**12, 'PB': 10**15,
         'KiB': 2**10, 'MiB': 2**20, 'GiB': 2**30, 'TiB': 2**40, 'PiB': 2**50}


def upgrade():
    op.create_table('allocation_account_maps',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account', sa.String(length=100), nullable=False),
    sa.Column('project_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['allocation_projects.id'], name=op.f('fk_allocation_account_maps_project_id_allocation_projects'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_allocation_account_maps')),
    sa.UniqueConstraint('account', name=op.f('uq_allocation_account_maps_account'))
    )
    with op.batch_alter_table('allocation_account_maps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_allocation_account_maps_project_id'), ['project_id'], unique=False)

    with op.batch_alter_table('allocation_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('account', sa.String(length=100), server_default='', nullable=False))
        batch_op.drop_constraint('uq_allocation_jobs_machine_id_job_id', type_='unique')
        batch_op.create_unique_constraint(batch_op.f('uq_allocation_jobs_machine_id_job_id_started'), ['machine_id', 'job_id', 'started'])

    connection = op.get_bind()
    pools = connection.execute(sa.text(
        'SELECT id, units, function FROM allocation_resource_pools')).all()
    for pool_id, units, function in pools:
        unit = UNIT_NAMES.get(' '.join(units.split()).lower(), units)
        connection.execute(sa.text(
            'UPDATE allocation_resource_pools SET units = :unit WHERE id = :id'),
            {'unit': unit, 'id': pool_id})
        if function != 'sum' and unit in BYTES and unit != 'B':
            connection.execute(sa.text(
                'UPDATE allocation_resources SET scaling_factor = scaling_factor * :bytes '
                'WHERE resource_pool_id = :id'), {'bytes': BYTES[unit], 'id': pool_id})


def downgrade():
    connection = op.get_bind()
    pools = connection.execute(sa.text(
        'SELECT id, units, function FROM allocation_resource_pools')).all()
    for pool_id, unit, function in pools:
        if function != 'sum' and unit in BYTES and unit != 'B':
            connection.execute(sa.text(
                'UPDATE allocation_resources SET scaling_factor = scaling_factor / :bytes '
                'WHERE resource_pool_id = :id'), {'bytes': BYTES[unit], 'id': pool_id})
    with op.batch_alter_table('allocation_jobs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_allocation_jobs_machine_id_job_id_started'), type_='unique')
        batch_op.create_unique_constraint('uq_allocation_jobs_machine_id_job_id', ['machine_id', 'job_id'])
        batch_op.drop_column('account')

    with op.batch_alter_table('allocation_account_maps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_allocation_account_maps_project_id'))

    op.drop_table('allocation_account_maps')

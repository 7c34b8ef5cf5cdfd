"""server-side sessions, token expiry and last use, secrets encrypted at rest,
server defaults as create_all makes them

Revision ID: 5c0d2a7e9b41
Revises: 69022b2a1ce2
Create Date: 2026-12-01 12:50:00.000000

"""
from datetime import UTC, datetime, timedelta

from alembic import op
import sqlalchemy as sa
from flask import current_app

import tracker.db_types
from tracker.crypto import decrypt, encrypt, keyring


# revision identifiers, used by Alembic.
revision = '5c0d2a7e9b41'
down_revision = '69022b2a1ce2'
branch_labels = None
depends_on = None

# Added with these defaults to fill existing rows; the models have none.
INSTANCE_SERVER_DEFAULTS = {
    'approved': (sa.Boolean(), sa.true()),
    'health': (sa.String(length=16), 'unknown'),
    'last_error': (sa.Text(), ''),
    'crawled': (sa.JSON(), sa.text("'{}'")),
    'crawled_sources': (sa.JSON(), sa.text("'{}'")),
    'location_manual': (sa.Boolean(), sa.false()),
}
# (table, column, type in clear) of the secrets now encrypted at rest.
ENCRYPTED = (
    ('quota_clients', 'secret', sa.String(length=200)),
    ('sync_producers', 'encryption_key', sa.String(length=64)),
)


def _recode(table_name, column_name, change):
    table = sa.table(table_name, sa.column('id'), sa.column(column_name, sa.Text))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(table.c.id, table.c[column_name]).where(
            table.c[column_name].is_not(None)
        )
    ).all()
    for row_id, value in rows:
        connection.execute(
            table.update()
            .where(table.c.id == row_id)
            .values({column_name: change(value)})
        )


def upgrade():
    with op.batch_alter_table('instances', schema=None) as batch_op:
        for name, (type_, _default) in INSTANCE_SERVER_DEFAULTS.items():
            batch_op.alter_column(
                name, existing_type=type_, existing_nullable=False, server_default=None
            )

    op.create_table('user_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('created', tracker.db_types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_sessions')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_user_sessions_key_hash'))
    )
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_sessions_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires', tracker.db_types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_used', tracker.db_types.UTCDateTime(timezone=True), nullable=True))
    # Tokens issued before expiry existed get the default year from now.
    tokens = sa.table('api_tokens', sa.column('expires', tracker.db_types.UTCDateTime()))
    op.execute(
        tokens.update()
        .where(tokens.c.expires.is_(None))
        .values(expires=datetime.now(UTC) + timedelta(days=365))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.alter_column('expires', existing_type=tracker.db_types.UTCDateTime(timezone=True), nullable=False)

    keys = keyring(current_app.config)
    for table_name, column_name, clear_type in ENCRYPTED:
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.alter_column(
                column_name, existing_type=clear_type, type_=sa.Text()
            )
        _recode(table_name, column_name, lambda value: encrypt(keys, value))


def downgrade():
    keys = keyring(current_app.config)
    for table_name, column_name, clear_type in ENCRYPTED:
        _recode(table_name, column_name, lambda value: decrypt(keys, value))
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.alter_column(
                column_name, existing_type=sa.Text(), type_=clear_type
            )

    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('last_used')
        batch_op.drop_column('expires')

    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_sessions_user_id'))
    op.drop_table('user_sessions')

    with op.batch_alter_table('instances', schema=None) as batch_op:
        for name, (type_, default) in INSTANCE_SERVER_DEFAULTS.items():
            batch_op.alter_column(
                name, existing_type=type_, existing_nullable=False, server_default=default
            )

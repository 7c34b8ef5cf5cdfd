"""sync conflicts: when the applied side was applied

Revision ID: 5b7e0c3d9f21
Revises: 88e1a2cd81de
Create Date: 2026-12-01 20:10:00.000000

"""
from alembic import op
import sqlalchemy as sa

import tracker.db_types


# revision identifiers, used by Alembic.
revision = '5b7e0c3d9f21'
down_revision = '88e1a2cd81de'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sync_conflicts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('applied_at', tracker.db_types.UTCDateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('sync_conflicts', schema=None) as batch_op:
        batch_op.drop_column('applied_at')

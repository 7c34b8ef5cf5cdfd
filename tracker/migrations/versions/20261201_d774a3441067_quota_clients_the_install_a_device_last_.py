"""quota clients: the install a device last reported

Revision ID: d774a3441067
Revises: 3d5a214a5004
Create Date: 2026-12-01 17:27:39.656153

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd774a3441067'
down_revision = "3d5a214a5004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('quota_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('install', sa.String(length=32), nullable=True))


def downgrade():
    with op.batch_alter_table('quota_clients', schema=None) as batch_op:
        batch_op.drop_column('install')

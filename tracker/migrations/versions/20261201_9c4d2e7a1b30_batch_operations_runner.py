"""batch operations: the process running a synchronous one

Revision ID: 9c4d2e7a1b30
Revises: 5b7e0c3d9f21
Create Date: 2026-12-01 22:30:00.000000

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "9c4d2e7a1b30"
down_revision = "5b7e0c3d9f21"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("batch_operations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("runner", sa.String(length=255), nullable=True))


def downgrade():
    with op.batch_alter_table("batch_operations", schema=None) as batch_op:
        batch_op.drop_column("runner")

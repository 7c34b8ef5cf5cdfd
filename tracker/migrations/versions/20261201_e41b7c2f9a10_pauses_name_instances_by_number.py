"""pauses name instances by number, not by their credential

Revision ID: e41b7c2f9a10
Revises: d774a3441067
Create Date: 2026-12-01 19:30:00.000000

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "e41b7c2f9a10"
down_revision = "d774a3441067"
branch_labels = None
depends_on = None


def upgrade():
    # A pause of an instance that is gone names nothing: it goes.
    op.execute(
        "DELETE FROM pauses WHERE kind = 'instance' AND value NOT IN "
        "(SELECT uuid FROM instances)"
    )
    op.execute(
        "UPDATE pauses SET value = (SELECT CAST(instances.id AS VARCHAR(20)) "
        "FROM instances WHERE instances.uuid = pauses.value) WHERE kind = 'instance'"
    )


def downgrade():
    op.execute(
        "UPDATE pauses SET value = (SELECT instances.uuid FROM instances "
        "WHERE CAST(instances.id AS VARCHAR(20)) = pauses.value) "
        "WHERE kind = 'instance'"
    )

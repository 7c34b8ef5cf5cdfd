"""sync: held transactions, kept bodies, credential changes

Revision ID: 5b7e0c9d2a41
Revises: cc5e720354c1
Create Date: 2026-12-01 13:40:00

"""

import sqlalchemy as sa
from alembic import op

import tracker.db_types

revision = "5b7e0c9d2a41"
down_revision = "cc5e720354c1"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("sync_incoming_transactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body", sa.Text(), nullable=True))
    with op.batch_alter_table("sync_producers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "credential_changed", tracker.db_types.UTCDateTime(), nullable=True
            )
        )
    # What was quarantined only for its model is held: applied once it is listed.
    op.execute(
        "UPDATE sync_incoming_transactions SET status = 'held',"
        " reason = 'model ''' || model || ''' is not on SYNC_MODELS: held, and"
        " applied once it is listed'"
        " WHERE status = 'quarantined' AND payload IS NOT NULL"
        " AND reason LIKE '%is not on the sync allow-list'"
    )


def downgrade():
    op.execute(
        "UPDATE sync_incoming_transactions SET status = 'quarantined'"
        " WHERE status = 'held'"
    )
    with op.batch_alter_table("sync_producers", schema=None) as batch_op:
        batch_op.drop_column("credential_changed")
    with op.batch_alter_table("sync_incoming_transactions", schema=None) as batch_op:
        batch_op.drop_column("body")

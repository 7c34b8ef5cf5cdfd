"""sync: conflicts and field stamps

Revision ID: db6aa71d5289
Revises: c8986c548940
Create Date: 2026-12-01 15:34:18

"""

import sqlalchemy as sa
from alembic import op

import tracker.db_types

revision = "db6aa71d5289"
down_revision = "c8986c548940"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "sync_conflicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("natural_key", sa.String(length=500), nullable=False),
        sa.Column("field", sa.Text(), nullable=False),
        sa.Column("applied_value", sa.JSON(), nullable=True),
        sa.Column("applied_parent", sa.JSON(), nullable=True),
        sa.Column("applied_producer_id", sa.Integer(), nullable=True),
        sa.Column("applied_sequence", sa.BigInteger(), nullable=False),
        sa.Column(
            "applied_made", tracker.db_types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("other_value", sa.JSON(), nullable=True),
        sa.Column("other_parent", sa.JSON(), nullable=True),
        sa.Column("other_producer_id", sa.Integer(), nullable=True),
        sa.Column("other_sequence", sa.BigInteger(), nullable=False),
        sa.Column(
            "other_made", tracker.db_types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "other_applied", tracker.db_types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "detected", tracker.db_types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("resolution", sa.String(length=20), nullable=True),
        sa.Column(
            "resolved", tracker.db_types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("resolved_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["applied_producer_id"],
            ["sync_producers.id"],
            name=op.f("fk_sync_conflicts_applied_producer_id_sync_producers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["other_producer_id"],
            ["sync_producers.id"],
            name=op.f("fk_sync_conflicts_other_producer_id_sync_producers"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by_id"],
            ["users.id"],
            name=op.f("fk_sync_conflicts_resolved_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_conflicts")),
    )
    with op.batch_alter_table("sync_conflicts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_conflicts_applied_producer_id"),
            ["applied_producer_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_sync_conflicts_other_producer_id"),
            ["other_producer_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_sync_conflicts_status_model", ["status", "model"], unique=False
        )

    with op.batch_alter_table("sync_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("changes", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("sync_records", schema=None) as batch_op:
        batch_op.drop_column("changes")

    with op.batch_alter_table("sync_conflicts", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_conflicts_status_model")
        batch_op.drop_index(batch_op.f("ix_sync_conflicts_other_producer_id"))
        batch_op.drop_index(batch_op.f("ix_sync_conflicts_applied_producer_id"))

    op.drop_table("sync_conflicts")

"""roles, read-only tokens and one audit trail (the allocation change log joins it)

Revision ID: a7d3c4e5f601
Revises: 5b7e0c9d2a41
Create Date: 2026-12-01 16:00:00

"""

import sqlalchemy as sa
from alembic import op

import tracker.db_types

revision = "a7d3c4e5f601"
down_revision = "5b7e0c9d2a41"
branch_labels = None
depends_on = None

OLD_CHANGES_COLUMNS = (
    "changed, user_id, actor, model, object_id, action, changes, summary"
)


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "role", sa.String(length=16), server_default="viewer", nullable=False
            )
        )
        batch_op.add_column(
            sa.Column("supervisor", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "must_change_password",
                sa.Boolean(),
                server_default=sa.false(),
                nullable=False,
            )
        )
    # Before roles, every user could do everything: they stay admins.
    op.execute("UPDATE users SET role = 'admin'")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("read_only", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", tracker.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("domain", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=40), nullable=False),
        sa.Column("target_id", sa.String(length=100), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("remote_addr", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_audit_events_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_events_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_events_domain"), ["domain"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_events_action"), ["action"], unique=False
        )
        batch_op.create_index(
            "ix_audit_events_target", ["target_type", "target_id"], unique=False
        )

    op.execute(
        "INSERT INTO audit_events (at, user_id, actor, via, domain, action,"
        " target_type, target_id, summary, changes, remote_addr)"
        " SELECT changed, user_id, actor,"
        " CASE WHEN actor = 'manage.py' THEN 'cli' ELSE 'api' END,"
        " 'allocation', action, model,"
        " COALESCE(CAST(object_id AS VARCHAR(100)), ''), summary, changes, ''"
        " FROM allocation_changes ORDER BY id"
    )
    with op.batch_alter_table("allocation_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_allocation_changes_model_object")
        batch_op.drop_index(batch_op.f("ix_allocation_changes_changed"))
    op.drop_table("allocation_changes")


def downgrade():
    op.create_table(
        "allocation_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "changed", tracker.db_types.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=40), nullable=False),
        sa.Column("object_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_allocation_changes_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_changes")),
    )
    with op.batch_alter_table("allocation_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_allocation_changes_changed"), ["changed"], unique=False
        )
        batch_op.create_index(
            "ix_allocation_changes_model_object", ["model", "object_id"], unique=False
        )
    op.execute(
        f"INSERT INTO allocation_changes ({OLD_CHANGES_COLUMNS})"
        " SELECT at, user_id, actor, target_type,"
        " CAST(NULLIF(target_id, '') AS INTEGER), action, changes, summary"
        " FROM audit_events WHERE domain = 'allocation' ORDER BY id"
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_target")
        batch_op.drop_index(batch_op.f("ix_audit_events_action"))
        batch_op.drop_index(batch_op.f("ix_audit_events_domain"))
        batch_op.drop_index(batch_op.f("ix_audit_events_at"))
    op.drop_table("audit_events")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("read_only")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("must_change_password")
        batch_op.drop_column("supervisor")
        batch_op.drop_column("role")

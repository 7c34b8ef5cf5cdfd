"""users: the OpenID Connect subject of a user who signs in by single sign-on

Revision ID: c8986c548940
Revises: a7d3c4e5f601
Create Date: 2026-12-01 16:10:24.584321

"""

import sqlalchemy as sa
from alembic import op

revision = "c8986c548940"
down_revision = "a7d3c4e5f601"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("oidc_subject", sa.String(length=255), nullable=True)
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_users_oidc_subject"), ["oidc_subject"]
        )


def downgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_users_oidc_subject"), type_="unique")
        batch_op.drop_column("oidc_subject")

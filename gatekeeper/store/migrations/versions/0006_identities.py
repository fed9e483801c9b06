"""who touched each commit, as a set that only grows; the approver's identities

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 05:00:00

Four eyes compares people, not strings: every Git event adds the logins, usernames and e-mail
addresses of whoever touched a commit to ``commit_people`` (never replacing what an earlier event
recorded), and an approval keeps the approver's identities (token name plus ``identities``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "commit_people",
        sa.Column("sha", sa.String(length=64), nullable=False),
        sa.Column("identity", sa.String(length=320), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha", "identity"),
    )
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("identities", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("identities")
    op.drop_table("commit_people")

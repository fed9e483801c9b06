"""who lifted a freeze and why

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 19:30:00

A freeze is lifted, never deleted: the lift is recorded on its row (and audited) with the
person and the reason.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("freezes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lifted_by", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("lift_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("freezes", schema=None) as batch_op:
        batch_op.drop_column("lift_reason")
        batch_op.drop_column("lifted_by")

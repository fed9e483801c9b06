"""the drift an approval acknowledges

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 19:30:00

An approval given while a release is deferred for drift (policy ``drift.mode: block``)
acknowledges exactly that drift: the digests of the ``drift_detected`` reasons it was shown are
kept with it, and drift that differs afterwards defers again (DESIGN §3, Drift). Null for every
approval given before, and for approvals given where no drift was shown.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("drift_digests", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("drift_digests")

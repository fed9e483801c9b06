"""the audit chain's head, kept beside the chain

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 05:20:00

The chainer continues from this row, not from the newest record: a sequence number is never
reused, so deleting the newest records leaves a gap that ``audit verify`` names.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(
        "INSERT INTO audit_head (id, seq, hash) SELECT 1, seq, hash FROM audit WHERE seq = (SELECT max(seq) FROM audit)"
    )


def downgrade() -> None:
    op.drop_table("audit_head")

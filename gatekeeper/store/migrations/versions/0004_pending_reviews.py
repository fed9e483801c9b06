"""pending deployment reviews

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 07:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_reviews",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("release_id", sa.BigInteger(), sa.ForeignKey("releases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("callback_url", sa.String(length=2048), nullable=False),
        sa.Column("environment", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answer", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("release_id", "callback_url", name="uq_pending_reviews_release_callback"),
    )
    op.create_index("ix_pending_reviews_answered_at", "pending_reviews", ["answered_at"])


def downgrade() -> None:
    op.drop_index("ix_pending_reviews_answered_at", table_name="pending_reviews")
    op.drop_table("pending_reviews")

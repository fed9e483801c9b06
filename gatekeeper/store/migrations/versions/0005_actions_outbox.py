"""the actions outbox; releases.not_before; pending reviews become actions

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 04:00:00

Outbound effects (commit statuses, deployment reviews, and the actions still to come) are rows of
``actions``, written in the transaction of the decision that causes them and claimed by the
scheduler of one replica. The deployment reviews still waiting for an answer move over as
actions; ``notifications`` (what was sent) and ``pending_reviews`` go.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "actions",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("release_id", sa.BigInteger(), sa.ForeignKey("releases.id", ondelete="CASCADE"), nullable=True),
        sa.Column("scope", sa.String(length=1024), nullable=False),
        sa.Column("idempotency_key", sa.String(length=1024), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key", name="uq_actions_idempotency_key"),
    )
    op.create_index("ix_actions_due", "actions", ["status", "next_attempt_at"])
    op.create_index("ix_actions_scope", "actions", ["scope", "id"])
    op.create_index("ix_actions_release_id", "actions", ["release_id"])
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_releases_status_not_before", "releases", ["status", "not_before"])
    _move_pending_reviews()
    op.drop_index("ix_pending_reviews_answered_at", table_name="pending_reviews")
    op.drop_table("pending_reviews")
    op.drop_table("notifications")


def _move_pending_reviews() -> None:
    """Each deployment review still waiting becomes a due deployment_review action."""
    bind = op.get_bind()
    waiting = bind.execute(
        sa.text(
            "SELECT release_id, callback_url, environment, created_at FROM pending_reviews"
            " WHERE answered_at IS NULL"
        )
    ).all()
    actions = sa.table(
        "actions",
        *(sa.column(name) for name in ("kind", "release_id", "scope", "idempotency_key", "digest", "status")),
        sa.column("payload", sa.JSON()),
        *(sa.column(name) for name in ("attempts", "next_attempt_at", "created_at", "updated_at")),
    )
    for row in waiting:
        bind.execute(
            actions.insert().values(
                kind="deployment_review",
                release_id=row.release_id,
                scope=f"deployment_review:{row.callback_url}",
                idempotency_key=f"deployment_review:{row.release_id}:{row.callback_url}",
                payload={"callback_url": row.callback_url, "environment": row.environment},
                digest="",
                status="pending",
                attempts=0,
                next_attempt_at=row.created_at,
                created_at=row.created_at,
                updated_at=row.created_at,
            )
        )


def downgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "pending_reviews",
        sa.Column("id", Id, autoincrement=True, nullable=False),
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
    op.drop_index("ix_releases_status_not_before", table_name="releases")
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("not_before")
    op.drop_index("ix_actions_release_id", table_name="actions")
    op.drop_index("ix_actions_scope", table_name="actions")
    op.drop_index("ix_actions_due", table_name="actions")
    op.drop_table("actions")

"""The database schema (SQLAlchemy Core tables). Alembic migrations create and change it.

Instants are stored as timezone-aware UTC datetimes; JSON columns hold reasons and payloads.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
Id = BigInteger().with_variant(Integer(), "sqlite")

releases = Table(
    "releases",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("target", String(512), nullable=False),
    Column("revision", String(256), nullable=False),
    Column("status", String(32), nullable=False),
    Column("trigger", String(64), nullable=False, server_default="presync"),
    Column("context", JSON(none_as_null=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The latest decision's not_before: the scheduler decides a deferred release again then. For an
    # applied release: the end of its verification period (then it becomes verified; None: never).
    Column("not_before", DateTime(timezone=True), nullable=True),
    UniqueConstraint("target", "revision", name="uq_releases_target_revision"),
)
Index("ix_releases_target_status", releases.c.target, releases.c.status)
Index("ix_releases_status_id", releases.c.status, releases.c.id)
Index("ix_releases_status_not_before", releases.c.status, releases.c.not_before)

decisions = Table(
    "decisions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("release_id", Id, ForeignKey("releases.id", ondelete="CASCADE"), nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("not_before", DateTime(timezone=True), nullable=True),
    Column("requires", JSON, nullable=False),
    Column("policy_hash", String(64), nullable=False),
    Column("would_defer", JSON(none_as_null=True), nullable=True),
    Column("trigger", String(64), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=False),
)
Index("ix_decisions_release_id", decisions.c.release_id, decisions.c.id)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),
    Column("delivery_id", String(128), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("response", JSON, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("source", "delivery_id", name="uq_deliveries_source_delivery"),
)
Index("ix_deliveries_received_at", deliveries.c.received_at)

commits = Table(
    "commits",
    metadata,
    Column("sha", String(64), primary_key=True),
    Column("author", String(256), nullable=True),
    Column("merger", String(256), nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

# Everyone who touched a commit (logins, usernames, e-mail addresses, casefolded): every Git event
# adds to the set of its SHA, none replaces it (four eyes, DESIGN §3).
commit_people = Table(
    "commit_people",
    metadata,
    Column("sha", String(64), primary_key=True),
    Column("identity", String(320), primary_key=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("release_id", Id, ForeignKey("releases.id", ondelete="CASCADE"), nullable=False),
    Column("approver", String(256), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("reason", Text, nullable=True),
    Column("break_glass", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("identities", JSON(none_as_null=True), nullable=True),  # the approver's, casefolded
    Column("drift_digests", JSON(none_as_null=True), nullable=True),  # the drift it acknowledged
)
Index("ix_approvals_release_id", approvals.c.release_id)

freezes = Table(
    "freezes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("targets", JSON, nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=True),
    Column("reason", Text, nullable=False),
    Column("code", String(64), nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("lifted_at", DateTime(timezone=True), nullable=True),
    Column("lifted_by", String(256), nullable=True),
    Column("lift_reason", Text, nullable=True),
)

audit = Table(
    "audit",
    metadata,
    Column("seq", Id, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("subject", String(512), nullable=True),
    Column("data", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("break_glass", Boolean, nullable=False, default=False),
)

# The outbox (DESIGN §1, §8): effects a decision causes, written in its transaction, claimed by one
# replica's scheduler (``claimed_until`` is the lease), retried with backoff. ``scope`` names what
# the effect sets (one commit status, one review): a newer action replaces a scope's action that is
# still waiting, and an effect identical to the one last done (``digest``) is not enqueued again.
actions = Table(
    "actions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("release_id", BigInteger, ForeignKey("releases.id", ondelete="CASCADE"), nullable=True),
    Column("scope", String(1024), nullable=False),
    Column("idempotency_key", String(1024), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("claimed_until", DateTime(timezone=True), nullable=True),
    Column("claimed_by", String(128), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("result", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("idempotency_key", name="uq_actions_idempotency_key"),
)
Index("ix_actions_due", actions.c.status, actions.c.next_attempt_at)
Index("ix_actions_scope", actions.c.scope, actions.c.id)
Index("ix_actions_release_id", actions.c.release_id)

# The chain's newest (seq, hash), one row: the chainer continues from it, so a sequence number is
# never reused even when the newest records were deleted.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# Audit records written inside a request's transaction, waiting to be chained. A single chainer
# (advisory lock) moves them into ``audit`` in the order it sees them committed, so requests
# never queue on a global lock.
audit_pending = Table(
    "audit_pending",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("subject", String(512), nullable=True),
    Column("data", JSON, nullable=False),
    Column("break_glass", Boolean, nullable=False, default=False),
)

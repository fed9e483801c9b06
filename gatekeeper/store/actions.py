"""The outbox (DESIGN §1, §8): actions written in the decision's transaction, claimed after commit.

A replica claims due rows with ``FOR UPDATE SKIP LOCKED`` and a lease (``claimed_until``): a
replica that dies loses its claims when their leases expire and another takes them over, so an
action runs at least once and its handler is idempotent. Within one ``scope`` (one commit status,
one review) an action that is still waiting is replaced by a newer one, one identical to the last
done is not enqueued, and no two run at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, exists, func, or_, select, update
from sqlalchemy.orm import aliased

from gatekeeper.domain.records import ActionRecord, NewAction
from gatekeeper.store.dialect import for_update, insert_ignore
from gatekeeper.store.rows import action_record
from gatekeeper.store.tables import actions

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


class ActionRows:
    connection: Connection

    def enqueue(self, action: NewAction, now: datetime) -> bool:
        """Add ``action`` to the outbox; False when it changes nothing (same key, or the scope's
        last done action was identical, or a waiting action of the scope took its content)."""
        last = self.connection.execute(
            select(actions.c.digest, actions.c.status)
            .where(actions.c.scope == action.scope, actions.c.status.in_((DONE, RUNNING)))
            .order_by(actions.c.id.desc())
            .limit(1)
        ).first()
        if action.digest and last is not None and last.status == DONE and last.digest == action.digest:
            return False
        content = {"payload": action.payload, "digest": action.digest, "release_id": action.release_id}
        waiting = self.connection.execute(
            update(actions)
            .where(actions.c.scope == action.scope, actions.c.status == PENDING)
            .values(**content, idempotency_key=action.key, next_attempt_at=now, updated_at=now)
            .returning(actions.c.id)
        ).first()
        if waiting is not None:
            return True
        values = {
            **content,
            "kind": action.kind,
            "scope": action.scope,
            "idempotency_key": action.key,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        inserted = self.connection.execute(insert_ignore(self.connection, actions).values(**values))
        return bool(inserted.rowcount)

    def wake_actions(self, release_id: int, now: datetime) -> int:
        """A release was decided again: its waiting actions (a deferred review) are due now."""
        return self.connection.execute(
            update(actions)
            .where(actions.c.release_id == release_id, actions.c.status == PENDING, actions.c.next_attempt_at > now)
            .values(next_attempt_at=now)
        ).rowcount


def claim(connection: Connection, now: datetime, owner: str, lease: timedelta, limit: int) -> list[ActionRecord]:
    """Claim up to ``limit`` due actions for ``owner`` until ``now + lease`` (caller commits)."""
    busy = aliased(actions)
    scope_running = exists().where(
        busy.c.scope == actions.c.scope, busy.c.id != actions.c.id, busy.c.status == RUNNING,
        busy.c.claimed_until > now,
    )
    due = (
        select(actions.c.id)
        .where(
            or_(
                and_(actions.c.status == PENDING, actions.c.next_attempt_at <= now),
                and_(actions.c.status == RUNNING, actions.c.claimed_until < now),  # a dead replica's lease
            ),
            ~scope_running,
        )
        .order_by(actions.c.next_attempt_at, actions.c.id)
        .limit(limit)
    )
    ids = list(connection.execute(for_update(connection, due, skip_locked=True)).scalars())
    if not ids:
        return []
    rows = connection.execute(
        update(actions)
        .where(actions.c.id.in_(ids))
        .values(status=RUNNING, claimed_by=owner, claimed_until=now + lease, updated_at=now)
        .returning(*actions.c)
    ).all()
    return sorted((action_record(row._mapping) for row in rows), key=lambda a: (a.next_attempt_at, a.id))


def finish(connection: Connection, action_id: int, owner: str, now: datetime, result: str) -> None:
    connection.execute(
        update(actions)
        .where(actions.c.id == action_id, actions.c.status == RUNNING)
        .values(status=DONE, result=result[:2000], claimed_until=None, last_error=None, updated_at=now,
                attempts=actions.c.attempts + 1)
    )


def retry(
    connection: Connection, action_id: int, now: datetime, at: datetime, error: str | None, *, failed: bool,
    counted: bool = True,
) -> None:
    """Put a claimed action back: due again at ``at`` (or given up when ``failed``)."""
    values: dict[str, Any] = {
        "status": FAILED if failed else PENDING,
        "next_attempt_at": at,
        "claimed_until": None,
        "updated_at": now,
    }
    if counted:
        values["attempts"] = actions.c.attempts + 1
        values["last_error"] = (error or "")[:2000]
    connection.execute(update(actions).where(actions.c.id == action_id, actions.c.status == RUNNING).values(**values))


def listing(
    connection: Connection, *, status: str | None, before_id: int | None, limit: int, release_id: int | None = None
) -> list[ActionRecord]:
    query = select(actions).order_by(actions.c.id.desc()).limit(limit)
    if release_id is not None:
        query = query.where(actions.c.release_id == release_id)
    if status:
        query = query.where(actions.c.status == status)
    if before_id is not None:
        query = query.where(actions.c.id < before_id)
    return [action_record(row._mapping) for row in connection.execute(query)]


def counts(connection: Connection) -> dict[str, int]:
    """Actions by status, and ``failing``: waiting ones whose last attempt failed."""
    found = {status: 0 for status in (PENDING, RUNNING, DONE, FAILED)}
    for status, count in connection.execute(select(actions.c.status, func.count()).group_by(actions.c.status)):
        found[status] = int(count)
    failing = select(func.count()).where(actions.c.status == PENDING, actions.c.last_error.is_not(None))
    found["failing"] = int(connection.execute(failing).scalar_one())
    return found

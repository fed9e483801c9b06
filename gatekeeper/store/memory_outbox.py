"""The outbox of ``InMemoryReleaseStore`` (DESIGN §1): enqueue and wake inside a transaction,
claim, finish and retry outside one, as ``store/actions.py`` does on a database. Mixed into the
in-memory transaction and store, whose ``_State`` holds the rows.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gatekeeper.domain.records import ActionRecord, NewAction

if TYPE_CHECKING:
    from gatekeeper.store.memory import _State

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"


class OutboxWrites:
    """Within a transaction (the store's lock is held)."""

    s: _State

    def enqueue(self, action: NewAction, now: datetime) -> bool:
        scope = [a for a in self.s.actions.values() if a.scope == action.scope]
        last = max((a for a in scope if a.status in (DONE, RUNNING)), key=lambda a: a.id, default=None)
        if action.digest and last is not None and last.status == DONE and last.digest == action.digest:
            return False
        waiting = next((a for a in scope if a.status == PENDING), None)
        if waiting is not None:
            self.s.actions[waiting.id] = replace(
                waiting,
                payload=action.payload,
                digest=action.digest,
                release_id=action.release_id,
                key=action.key,
                next_attempt_at=now,
                updated_at=now,
            )
            return True
        if any(a.key == action.key for a in self.s.actions.values()):
            return False
        record = ActionRecord(
            self.s.new_id(),
            action.kind,
            action.release_id,
            action.scope,
            action.key,
            action.payload,
            action.digest,
            PENDING,
            0,
            now,
            None,
            None,
            None,
            None,
            now,
            now,
        )
        self.s.actions[record.id] = record
        return True

    def wake_actions(self, release_id: int, now: datetime) -> int:
        woken = 0
        for action in list(self.s.actions.values()):
            if action.release_id == release_id and action.status == PENDING and action.next_attempt_at > now:
                self.s.actions[action.id] = replace(action, next_attempt_at=now)
                woken += 1
        return woken


class OutboxReads:
    """Outside a transaction: each call takes the store's lock."""

    _state: _State
    _lock: threading.RLock

    def claim_actions(self, now: datetime, owner: str, lease_seconds: float, limit: int) -> list[ActionRecord]:
        with self._lock:
            actions = self._state.actions
            busy = {a.scope for a in actions.values() if a.status == RUNNING and (a.claimed_until or now) > now}
            due = sorted(
                (
                    a
                    for a in actions.values()
                    if a.scope not in busy
                    and (
                        (a.status == PENDING and a.next_attempt_at <= now)
                        or (a.status == RUNNING and a.claimed_until is not None and a.claimed_until < now)
                    )
                ),
                key=lambda a: (a.next_attempt_at, a.id),
            )[:limit]
            until = now + timedelta(seconds=lease_seconds)
            claimed = [replace(a, status=RUNNING, claimed_by=owner, claimed_until=until, updated_at=now) for a in due]
            for action in claimed:
                actions[action.id] = action
            return claimed

    def finish_action(self, action_id: int, owner: str, now: datetime, result: str) -> None:
        with self._lock:
            action = self._state.actions[action_id]
            if action.status == RUNNING:
                self._state.actions[action_id] = replace(
                    action,
                    status=DONE,
                    result=result,
                    claimed_until=None,
                    last_error=None,
                    attempts=action.attempts + 1,
                    updated_at=now,
                )

    def retry_action(
        self, action_id: int, owner: str, now: datetime, at: datetime, error: str | None, *, failed: bool = False
    ) -> None:
        with self._lock:
            action = self._state.actions[action_id]
            if action.status != RUNNING:
                return
            changes: dict[str, Any] = {
                "status": FAILED if failed else PENDING,
                "next_attempt_at": at,
                "claimed_until": None,
                "updated_at": now,
            }
            if error is not None:
                changes |= {"attempts": action.attempts + 1, "last_error": error}
            self._state.actions[action_id] = replace(action, **changes)

    def actions(
        self, *, status: str | None, before_id: int | None, limit: int, release_id: int | None = None
    ) -> list[ActionRecord]:
        with self._lock:
            found = [
                a
                for a in self._state.actions.values()
                if (not status or a.status == status)
                and (before_id is None or a.id < before_id)
                and (release_id is None or a.release_id == release_id)
            ]
        return sorted(found, key=lambda a: -a.id)[:limit]

    def action_counts(self) -> dict[str, int]:
        with self._lock:
            found = {status: 0 for status in (PENDING, RUNNING, DONE, FAILED)}
            for action in self._state.actions.values():
                found[action.status] += 1
            found["failing"] = sum(
                1 for a in self._state.actions.values() if a.status == PENDING and a.last_error is not None
            )
            return found

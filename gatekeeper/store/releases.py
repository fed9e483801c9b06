"""Releases: find (locked or not), create under the target's lock, supersede, move, list.

Status changes are checked by the domain's state machine before they reach this module.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, select, update

from gatekeeper.domain.records import ReleaseRecord
from gatekeeper.domain.releases import REDECIDABLE, ReleaseStatus
from gatekeeper.store.dialect import is_postgresql, lock_target
from gatekeeper.store.rows import release_record
from gatekeeper.store.tables import commits, releases

OPEN_STATUSES = tuple(status.value for status in REDECIDABLE)
WITH_PEOPLE = select(releases, commits.c.author, commits.c.merger).select_from(
    releases.outerjoin(commits, commits.c.sha == releases.c.revision)
)


class ReleaseRows:
    """The releases table, inside one transaction (``self.connection``)."""

    connection: Connection

    def _one(self, where: Any, *, lock: bool) -> ReleaseRecord | None:
        if lock and is_postgresql(self.connection):
            # Lock the release row alone (an outer join cannot be locked). Who touched its revision
            # is read where a decision needs it (people_of), not on every locked read.
            row = self.connection.execute(select(releases).where(where).with_for_update()).first()
            return release_record(row._mapping) if row is not None else None
        row = self.connection.execute(WITH_PEOPLE.where(where)).first()
        return release_record(row._mapping) if row is not None else None

    def find_release(self, target: str, revision: str, *, lock: bool) -> ReleaseRecord | None:
        return self._one(and_(releases.c.target == target, releases.c.revision == revision), lock=lock)

    def release_by_id(self, release_id: int, *, lock: bool) -> ReleaseRecord | None:
        return self._one(releases.c.id == release_id, lock=lock)

    def lock_target(self, target: str) -> None:
        lock_target(self.connection, target)

    def create_release(
        self,
        target: str,
        revision: str,
        trigger: str,
        context: dict[str, Any],
        now: datetime,
        *,
        status: ReleaseStatus = ReleaseStatus.PENDING,
        not_before: datetime | None = None,
    ) -> ReleaseRecord:
        """A new release (the caller holds the target's lock and found none), in the status its
        first decision gives it."""
        values = {
            "target": target,
            "revision": revision,
            "status": status.value,
            "not_before": not_before,
            "trigger": trigger,
            "context": context or None,
            "created_at": now,
            "updated_at": now,
        }
        row = self.connection.execute(insert(releases).values(**values).returning(*releases.c)).one()
        return release_record(row._mapping)

    def supersede_open(self, target: str, keep_id: int, now: datetime) -> int:
        """Every other open release of ``target`` becomes superseded, in one statement (the
        caller holds the target's lock, so at most one other is open)."""
        superseded = self.connection.execute(
            update(releases)
            .where(releases.c.target == target, releases.c.id != keep_id, releases.c.status.in_(OPEN_STATUSES))
            .values(status=ReleaseStatus.SUPERSEDED.value, updated_at=now, not_before=None)
        )
        return superseded.rowcount

    def set_status(self, release: ReleaseRecord, status: ReleaseStatus, now: datetime) -> ReleaseRecord:
        if status is release.status:
            return release
        self.connection.execute(
            update(releases).where(releases.c.id == release.id).values(status=status.value, updated_at=now)
        )
        return replace(release, status=status, updated_at=now)

    def _set_not_before(self, release_id: int, not_before: datetime | None) -> None:
        self.connection.execute(update(releases).where(releases.c.id == release_id).values(not_before=not_before))

"""``SqlReleaseStore``: the ReleaseStore port on SQLAlchemy Core, SQLite or PostgreSQL alike.

One implementation for both databases; what differs between them is in ``store.dialect``. A
``SqlTransaction`` is one short transaction made of the aggregates' row modules (releases,
decisions, approvals, deliveries, audit, actions). No SQLAlchemy exception leaves this package:
they become ``StoreError`` with a message that carries no driver text (the log has it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, exists, func, or_, select, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from gatekeeper.domain.freezes import Freeze
from gatekeeper.domain.records import ActionRecord, ReleaseDetail, ReleaseRecord
from gatekeeper.store import ConnectionLostError, NotMigratedError, StoreError
from gatekeeper.store import actions as outbox
from gatekeeper.store import migrations as schema_migrations
from gatekeeper.store.actions import ActionRows
from gatekeeper.store.approvals import ApprovalRows
from gatekeeper.store.audit import AuditRows, chain_pending, read_head, take_chain_lock
from gatekeeper.store.decisions import DecisionRows
from gatekeeper.store.deliveries import DeliveryRows, prune
from gatekeeper.store.dialect import make_engine, missing_sqlite_file
from gatekeeper.store.freezes import FreezeRows, read_freezes
from gatekeeper.store.releases import OPEN_STATUSES, WITH_PEOPLE, ReleaseRows
from gatekeeper.store.rows import approval_record, audit_row, decision_record, release_record, short
from gatekeeper.store.tables import actions, approvals, audit, decisions, releases

logger = logging.getLogger(__name__)


class SqlTransaction(ReleaseRows, DecisionRows, ApprovalRows, DeliveryRows, AuditRows, ActionRows, FreezeRows):
    """The StoreTransaction port inside one open transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection


class SqlReleaseStore:
    """Releases, decisions, approvals, deliveries, audit and the outbox in one SQL database."""

    def __init__(self, engine: Engine, *, audit_key: bytes | None = None) -> None:
        self.engine = engine
        self._audit_key = audit_key

    @classmethod
    def from_url(cls, url: str, *, audit_key: bytes | None = None) -> SqlReleaseStore:
        return cls(make_engine(url), audit_key=audit_key)

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as connection:
                yield connection
        except DBAPIError as exc:
            logger.error("database error: %s", short(exc, 500))
            if exc.connection_invalidated:  # the database went away under a pooled connection
                raise ConnectionLostError("the database connection was lost; try again") from exc
            raise StoreError("the database could not complete the request; the server log has details") from exc
        except SQLAlchemyError as exc:
            logger.error("database error: %s", short(exc, 500))
            raise StoreError("the database could not complete the request; the server log has details") from exc

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        with self._connection() as connection:
            yield SqlTransaction(connection)

    # --- schema -------------------------------------------------------------------------------

    def schema_revisions(self) -> tuple[str | None, str]:
        """The schema revision the database is at (None: none) and the newest one."""
        try:
            return schema_migrations.pending(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"database unreachable: {short(exc)}") from exc

    def check_migrated(self) -> None:
        """Raise NotMigratedError unless the schema is at the newest revision."""
        current, head = self.schema_revisions()
        if current != head:
            raise NotMigratedError(
                f"database schema is at {current or 'nothing'} but gatekeeper needs {head}: "
                "run `gatekeeper db upgrade` (or set GATEKEEPER_AUTO_MIGRATE=true)"
            )

    def upgrade(self) -> None:
        try:
            schema_migrations.upgrade(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"migration failed: {short(exc)}") from exc

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    # --- reads ----------------------------------------------------------------------------------

    def release(self, release_id: int) -> ReleaseDetail | None:
        with self._connection() as connection:
            return _detail(connection, release_id)

    def releases(
        self, *, status: str | None, target: str | None, before_id: int | None, limit: int
    ) -> tuple[list[ReleaseDetail], int | None]:
        """Newest first; returns the page and the id to continue before (None: last page)."""
        query = select(releases.c.id).order_by(releases.c.id.desc()).limit(limit + 1)
        if status:
            query = query.where(releases.c.status == status)
        if target:
            query = query.where(releases.c.target == target)
        if before_id is not None:
            query = query.where(releases.c.id < before_id)
        with self._connection() as connection:
            ids = list(connection.execute(query).scalars())
            page = [detail for detail in (_detail(connection, i) for i in ids[:limit]) if detail is not None]
        return page, (ids[limit - 1] if len(ids) > limit else None)

    def due_releases(self, now: datetime, limit: int, *, also: Sequence[str] = ()) -> list[ReleaseRecord]:
        """Deferred releases whose deferral named an instant that has come and that an action waits
        for (a deployment review), or whose target starts with one of ``also`` (those gatekeeper
        syncs itself), oldest first. Any other release is decided again by its hook's next poll."""
        waited_for = exists().where(actions.c.release_id == releases.c.id, actions.c.status == "pending")
        wanted = or_(waited_for, *(releases.c.target.startswith(prefix, autoescape=True) for prefix in also))
        query = (
            WITH_PEOPLE.where(releases.c.status == "deferred", releases.c.not_before <= now, wanted)
            .order_by(releases.c.not_before, releases.c.id)
            .limit(limit)
        )
        with self._connection() as connection:
            return [release_record(row._mapping) for row in connection.execute(query)]

    def verification_due(self, now: datetime, limit: int) -> list[ReleaseRecord]:
        """Applied releases whose verification period has ended (their ``not_before``, set at apply
        and cleared by an unhealthy report or a rollback decision), oldest deadline first."""
        query = (
            WITH_PEOPLE.where(releases.c.status == "applied", releases.c.not_before <= now)
            .order_by(releases.c.not_before, releases.c.id)
            .limit(limit)
        )
        with self._connection() as connection:
            return [release_record(row._mapping) for row in connection.execute(query)]

    def open_releases(self, limit: int, target: str | None = None) -> list[ReleaseRecord]:
        """Releases not yet applied (pending, deferred, approved), oldest first (of ``target``
        only, if given): what a freeze started or lifted decides again, and a target's queue."""
        query = WITH_PEOPLE.where(releases.c.status.in_(OPEN_STATUSES)).order_by(releases.c.id).limit(limit)
        if target is not None:
            query = query.where(releases.c.target == target)
        with self._connection() as connection:
            return [release_record(row._mapping) for row in connection.execute(query)]

    def newest_releases(self, prefix: str, limit: int) -> list[ReleaseRecord]:
        """The newest release of each target whose key starts with ``prefix`` (what each Flux
        target's gate follows), by target."""
        newest = (
            select(func.max(releases.c.id))
            .where(releases.c.target.startswith(prefix, autoescape=True))
            .group_by(releases.c.target)
            .scalar_subquery()
        )
        query = WITH_PEOPLE.where(releases.c.id.in_(newest)).order_by(releases.c.target).limit(limit)
        with self._connection() as connection:
            return [release_record(row._mapping) for row in connection.execute(query)]

    def freezes(
        self, *, ending_after: datetime | None, before_id: int | None = None, limit: int | None = None
    ) -> list[Freeze]:
        """Freezes newest first; with ``ending_after``, only those closing the gate after it."""
        with self._connection() as connection:
            return read_freezes(connection, ending_after=ending_after, before_id=before_id, limit=limit)

    def count_releases(self) -> int:
        with self._connection() as connection:
            return int(connection.execute(select(func.count()).select_from(releases)).scalar_one())

    # --- outbox ---------------------------------------------------------------------------------

    def claim_actions(self, now: datetime, owner: str, lease_seconds: float, limit: int) -> list[ActionRecord]:
        with self._connection() as connection:
            return outbox.claim(connection, now, owner, timedelta(seconds=lease_seconds), limit)

    def finish_action(self, action_id: int, owner: str, now: datetime, result: str) -> None:
        with self._connection() as connection:
            outbox.finish(connection, action_id, owner, now, result)

    def retry_action(
        self, action_id: int, owner: str, now: datetime, at: datetime, error: str | None, *, failed: bool = False
    ) -> None:
        with self._connection() as connection:
            outbox.retry(connection, action_id, now, at, error, failed=failed, counted=error is not None)

    def actions(
        self, *, status: str | None, before_id: int | None, limit: int, release_id: int | None = None
    ) -> list[ActionRecord]:
        with self._connection() as connection:
            return outbox.listing(connection, status=status, before_id=before_id, limit=limit, release_id=release_id)

    def action_counts(self) -> dict[str, int]:
        with self._connection() as connection:
            return outbox.counts(connection)

    # --- audit ----------------------------------------------------------------------------------

    def chain_audit(self, batch: int = 50, *, wait: bool = True) -> int:
        """Link every pending audit record into the hash chain; returns how many were chained.

        One chainer at a time. ``wait=False`` (the periodic chainer): when another process holds
        the lock, leave the records to it and return.
        """
        chained = 0
        while True:
            with self._connection() as connection:
                if not take_chain_lock(connection, wait=wait):
                    return chained
                done = chain_pending(connection, batch, self._audit_key)
            chained += done
            if done < batch:
                return chained
            time.sleep(0.002)  # let request threads have the GIL between batches

    def audit_head(self, *, chain: bool = True) -> tuple[int, str]:
        """The chain's newest (seq, hash), pending records chained first unless ``chain`` is false
        ((0, GENESIS): empty)."""
        if chain:
            self.chain_audit()
        with self._connection() as connection:
            return read_head(connection)

    def decision_ids(self) -> list[int]:
        """Every decision's id (``audit verify`` checks each has an audit record)."""
        self.chain_audit()
        with self._connection() as connection:
            return list(connection.execute(select(decisions.c.id).order_by(decisions.c.id)).scalars())

    def audit_records(self, *, after: int, limit: int | None) -> list[dict[str, Any]]:
        """Audit records with seq > ``after``, oldest first (pending records are chained first)."""
        self.chain_audit()
        query = select(audit).where(audit.c.seq > after).order_by(audit.c.seq)
        if limit is not None:
            query = query.limit(limit)
        with self._connection() as connection:
            return [audit_row(row._mapping) for row in connection.execute(query)]

    def prune_deliveries(self, older_than: datetime) -> int:
        with self._connection() as connection:
            return prune(connection, older_than)


def _detail(connection: Connection, release_id: int) -> ReleaseDetail | None:
    row = connection.execute(WITH_PEOPLE.where(releases.c.id == release_id)).first()
    if row is None:
        return None
    found = connection.execute(
        select(decisions).where(decisions.c.release_id == release_id).order_by(decisions.c.id)
    ).all()
    given = connection.execute(
        select(approvals).where(approvals.c.release_id == release_id).order_by(approvals.c.id)
    ).all()
    return ReleaseDetail(
        release_record(row._mapping),
        tuple(decision_record(d._mapping) for d in found),
        tuple(approval_record(a._mapping) for a in given),
    )


__all__ = ["SqlReleaseStore", "SqlTransaction", "make_engine", "missing_sqlite_file"]

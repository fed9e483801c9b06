"""The gate's hot path on PostgreSQL, on the event loop: psycopg's async driver, no threads.

``SqlReleaseStore`` (SQLAlchemy, sync) runs everything else, and the gate on SQLite. A gate call
there costs a hop to the thread pool and back, and on a busy process each hop waits for the GIL:
measured, the hop cost more CPU than the statements (docs/benchmarks.md). This module decides
as ``StoreSession.gate`` does with the same statements (``sql.GATE_SQL``), awaited, with two
changes:
- Re-deciding an open release, the common call (a hook polling), takes no lock and no
  transaction: one read, then one statement that stores the decision only if the release row is
  still the version that was read, else read and decide again (``_gate_optimistic``). Two round
  trips instead of four (BEGIN, a locked read, the write, COMMIT).
- A new release takes the per-target lock before it is inserted and supersedes the target's
  others last, just before COMMIT (many deliveries for one target at once queue on the lock).
Connections are in autocommit mode; every transaction here is an explicit ``transaction()``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Json
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy.engine import make_url

from gatekeeper.domain.approvals import Approval, ApprovalFacts
from gatekeeper.domain.types import Decision
from gatekeeper.store import ConnectionLostError, StoreError
from gatekeeper.store.batching import Batcher
from gatekeeper.store.records import REDECIDABLE, DecisionRecord, GateRecord, ReleaseRecord, ReleaseStatus
from gatekeeper.store.sql import (
    GATE_SQL,
    STATUS_OF_VERDICT,
    _short,
    approval_of,
    decision_record,
    moved,
    record_decision_params,
    release_record,
    release_values,
)

OPTIMISTIC_TRIES = 3  # reads and decisions before a gate call takes the lock instead
BATCH_FLIGHTS = 2  # batches of one kind in flight at once, per process
BATCH_LIMIT = 64  # gate calls per batch
JSON_FIELDS = ("reasons", "requires", "would_defer", "data", "context", "response")


def conninfo(database_url: str) -> str:
    """psycopg's connection string for a SQLAlchemy ``postgresql+psycopg://`` URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _params(values: dict[str, Any]) -> dict[str, Any]:
    return {key: Json(value) if key in JSON_FIELDS and value is not None else value for key, value in values.items()}


class AsyncGateStore:
    """Gate calls on PostgreSQL: one transaction each, from a pool of async connections."""

    def __init__(self, database_url: str, *, max_size: int = 16) -> None:
        self.pool = AsyncConnectionPool(
            conninfo(database_url),
            min_size=2,
            max_size=max_size,
            timeout=10,
            open=False,
            kwargs={"row_factory": dict_row, "autocommit": True},  # transactions are explicit
        )
        self.find_many = Batcher(self._find_batch, self._store_error, flights=BATCH_FLIGHTS, limit=BATCH_LIMIT)
        self.record_many = Batcher(self._record_batch, self._store_error, flights=BATCH_FLIGHTS, limit=BATCH_LIMIT)

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def gate(
        self,
        target: str,
        revision: str,
        trigger: str,
        context: dict[str, str],
        decide: Callable[[ReleaseRecord | None, ApprovalFacts], Decision],
        now: datetime,
        *,
        people: bool,
    ) -> GateRecord:
        """What ``StoreSession.gate`` does; ``people``: look up who wrote and merged a new revision."""
        try:
            found, record = await self._gate_optimistic(target, revision, trigger, decide, now)
            if record is not None:
                return record
            async with self.pool.connection() as connection, connection.transaction():  # commits or rolls back
                record = await self._gate(
                    connection, target, revision, trigger, context, decide, now, people, find=found
                )
                if record.created:
                    await _supersede(connection, record.release, now)
                return record
        except psycopg.Error as exc:
            raise await self._store_error(exc) from exc

    async def _store_error(self, exc: Exception) -> Exception:
        """The StoreError for ``exc``; a lost connection also drops the pool's dead ones."""
        if not isinstance(exc, psycopg.Error):
            return exc
        if isinstance(exc, psycopg.OperationalError) and not isinstance(exc, PoolTimeout):
            await self.pool.check()  # after a database restart every idle connection is dead
            return ConnectionLostError(f"database connection lost: {_short(exc)}")
        return StoreError(f"database error: {_short(exc)}")

    @asynccontextmanager
    async def delivery(self, source: str, delivery_id: str, now: datetime) -> AsyncIterator[AsyncDelivery]:
        """What ``SqlReleaseStore.delivery`` does: claim the delivery in a transaction, or find a
        redelivery's stored answer (the unique key makes a concurrent redelivery wait for it)."""
        try:
            async with self.pool.connection() as connection, connection.transaction():
                key = {"b_source": source, "b_delivery_id": delivery_id}
                claimed = await _one(connection, "claim_delivery", _params({**key, "b_now": now, "response": {}}), dict)
                if claimed is None:
                    row = await _one(connection, "stored_answer", key, dict)
                    if row is None:  # pragma: no cover - the conflicting row committed before we looked
                        raise StoreError(f"delivery {source}/{delivery_id} vanished")
                    yield AsyncDelivery(self, connection, (row["status_code"], row["response"]))
                    return
                claim = AsyncDelivery(self, connection, None)
                yield claim
                if claim.answer is None:
                    raise StoreError("delivery claimed but never answered")
                answer = {"b_id": claimed["id"], "b_status_code": claim.answer[0], "response": claim.answer[1]}
                await _execute(connection, "answer_delivery", _params(answer))
                if claim.created is not None:
                    await _supersede(connection, claim.created, now)
        except psycopg.Error as exc:
            raise await self._store_error(exc) from exc

    async def _gate_optimistic(
        self,
        target: str,
        revision: str,
        trigger: str,
        decide: Callable[[ReleaseRecord | None, ApprovalFacts], Decision],
        now: datetime,
    ) -> tuple[bool, GateRecord | None]:
        """The common gate call without a transaction or a lock: a read, and one statement that
        stores the decision only if the release did not change since the read
        (``RECORD_DECISIONS_IF_UNCHANGED_PG``); both are batched with concurrent calls' (group
        commit). Returns whether the release exists, and the record; no record when there is no
        release yet or it changed under every try: then the locked transaction (``_gate``) decides."""
        for _ in range(OPTIMISTIC_TRIES):
            row = await self.find_many((target, revision))
            if row is None:
                return False, None
            release = release_record(row)
            if release.status not in REDECIDABLE:
                latest = await self._read_one("latest_decision", {"b_id": release.id}, decision_record)
                return True, GateRecord(release, latest, decided_now=False) if latest is not None else None
            given = await self._approvals(release)
            decision = decide(release, ApprovalFacts(given, release.author, release.merger))
            status = STATUS_OF_VERDICT.get(decision.verdict.value, release.status)
            values, recorded = record_decision_params(release, decision, status, trigger, now)
            decision_id = await self.record_many({**recorded, "version": row["version"]})
            if decision_id is not None:
                stored = DecisionRecord(id=decision_id, **values)
                return True, GateRecord(moved(release, status, now), stored, decided_now=True)
        return True, None

    async def _find_batch(self, keys: list[tuple[str, str]]) -> list[dict[str, Any] | None]:
        """The releases (with row versions) of many gate calls' keys, in one statement."""
        distinct = list(dict.fromkeys(keys))
        targets, revisions = [target for target, _ in distinct], [revision for _, revision in distinct]
        params = {"b_targets": targets, "b_revisions": revisions}
        async with self.pool.connection() as connection:
            cursor = await _execute(connection, "find_many_versioned", params)
            found = {(row["target"], row["revision"]): row for row in await cursor.fetchall()}
        return [found.get(key) for key in keys]

    async def _record_batch(self, calls: list[dict[str, Any]]) -> list[int | None]:
        """Many gate calls' decisions in one statement, each stored only if its release is still
        the version its call read: the stored decision's id per call, None where the release
        changed. Of two calls on one release in a batch, the first goes and the second reads
        and decides again, as if it had lost the race to a concurrent call."""
        first: dict[int, int] = {}
        for index, call in enumerate(calls):
            first.setdefault(call["release_id"], index)
        rows = json.dumps([calls[index] for index in first.values()], default=_json_instant)
        async with self.pool.connection() as connection:
            try:
                cursor = await _execute(connection, "record_decisions_if_unchanged", {"rows": rows})
                stored = {row["release_id"]: row["id"] for row in await cursor.fetchall()}
            except psycopg.errors.DeadlockDetected:  # pragma: no cover - rows are locked in id order
                stored = {}  # nothing was written: every call reads and decides again
        goes = [first[call["release_id"]] == index for index, call in enumerate(calls)]
        return [stored.get(call["release_id"]) if go else None for call, go in zip(calls, goes, strict=True)]

    async def _read_one(self, name: str, params: dict[str, Any], build: Callable[[Any], Any]) -> Any:
        async with self.pool.connection() as connection:
            return await _one(connection, name, params, build)

    async def _approvals(self, release: ReleaseRecord) -> tuple[Approval, ...]:
        """The approvals given on ``release`` (no round trip when its read found none)."""
        if release.has_approvals is False:
            return ()
        async with self.pool.connection() as connection:
            cursor = await _execute(connection, "approvals", {"b_id": release.id})
            return tuple(approval_of(row) for row in await cursor.fetchall())

    async def _gate(
        self,
        connection: psycopg.AsyncConnection[Any],
        target: str,
        revision: str,
        trigger: str,
        context: dict[str, str],
        decide: Callable[[ReleaseRecord | None, ApprovalFacts], Decision],
        now: datetime,
        people: bool,
        *,
        find: bool = True,
    ) -> GateRecord:
        """In the caller's transaction; ``find`` False: the release is known not to exist (yet)."""
        release = None
        if find:
            release = await _one(connection, "find", {"b_target": target, "b_revision": revision}, release_record)
        if release is not None and release.status not in REDECIDABLE:
            latest = await _one(connection, "latest_decision", {"b_id": release.id}, decision_record)
            if latest is not None:
                return GateRecord(release, latest, decided_now=False)
        decision = decide(release, await self._facts(connection, release, revision, people))
        status = STATUS_OF_VERDICT.get(decision.verdict.value, release.status if release else ReleaseStatus.PENDING)
        created = release is None
        if release is None:
            release = await self._create(connection, target, revision, trigger, context, status, now)
        values, recorded = record_decision_params(release, decision, status, trigger, now)
        row = await (await _execute(connection, "record_decision", _params(recorded))).fetchone()
        if row is None:  # pragma: no cover - the INSERT ... RETURNING always returns its row
            raise StoreError("decision was not stored")
        return GateRecord(
            moved(release, status, now),
            DecisionRecord(id=row["id"], **values),
            decided_now=True,
            created=created,
        )

    async def _facts(
        self, connection: psycopg.AsyncConnection[Any], release: ReleaseRecord | None, revision: str, people: bool
    ) -> ApprovalFacts:
        author, merger = (release.author, release.merger) if release else (None, None)
        if release is None and people:
            cursor = await _execute(connection, "people", {"b_revision": revision})
            found = await cursor.fetchone()
            author, merger = (found["author"], found["merger"]) if found else (None, None)
        given: tuple[Approval, ...] = ()
        if release is not None and release.has_approvals is not False:
            cursor = await _execute(connection, "approvals", {"b_id": release.id})
            given = tuple(approval_of(row) for row in await cursor.fetchall())
        return ApprovalFacts(given, author, merger)

    async def _create(
        self,
        connection: psycopg.AsyncConnection[Any],
        target: str,
        revision: str,
        trigger: str,
        context: dict[str, str],
        status: ReleaseStatus,
        now: datetime,
    ) -> ReleaseRecord:
        values = release_values(target, revision, trigger, context, status, now)
        # The target's lock first, before any row lock: every path that holds the lock then
        # waits only for row locks, and no path waits for the lock while it holds a row lock
        # (a re-decide holds one row, briefly, and waits for nothing else), so no deadlock.
        await _execute(connection, "lock_target", {"b_target": target})
        release: ReleaseRecord | None = await _one(connection, "insert_release", _params(values), release_record)
        if release is None:  # a concurrent first call won: use its row
            release = await _one(connection, "find", {"b_target": target, "b_revision": revision}, release_record)
        if release is None:  # pragma: no cover - the row was just inserted or already existed
            raise StoreError(f"release {target}@{revision} vanished")
        return release


async def _supersede(connection: psycopg.AsyncConnection[Any], release: ReleaseRecord, now: datetime) -> None:
    """Close the target's other open releases, last before COMMIT, under the per-target lock
    that ``_create`` took. The UPDATE runs after the lock was granted, so its snapshot sees every
    release committed before; a concurrent newer one, still uncommitted, waits for the lock and
    supersedes this one in its own turn."""
    await _execute(connection, "supersede", {"b_target": release.target, "b_id": release.id, "b_now": now})


def _json_instant(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _sql(name: str) -> str:
    return GATE_SQL[name][0]


def _bound(name: str, params: dict[str, Any]) -> dict[str, Any]:
    return {**GATE_SQL[name][1], **params}


async def _execute(connection: psycopg.AsyncConnection[Any], name: str, params: dict[str, Any]) -> Any:
    return await connection.execute(_sql(name), _bound(name, params))


async def _one(
    connection: psycopg.AsyncConnection[Any], name: str, params: dict[str, Any], build: Callable[[Any], Any]
) -> Any:
    row = await (await _execute(connection, name, params)).fetchone()
    return build(row) if row is not None else None


@dataclass
class AsyncDelivery:
    """A claimed delivery (``stored`` None) to answer, or a redelivery with its stored answer."""

    store: AsyncGateStore
    connection: psycopg.AsyncConnection[Any]
    stored: tuple[int, dict[str, Any]] | None
    answer: tuple[int, dict[str, Any]] | None = None
    created: ReleaseRecord | None = None  # a new release, to supersede the others with before COMMIT

    async def record_commit(self, sha: str, author: str | None, merger: str | None, now: datetime) -> None:
        params = {"b_sha": sha, "b_author": author or None, "b_merger": merger or None, "b_now": now}
        await _execute(self.connection, "record_commit", params)

    async def gate(
        self,
        target: str,
        revision: str,
        trigger: str,
        context: dict[str, str],
        decide: Callable[[ReleaseRecord | None, ApprovalFacts], Decision],
        now: datetime,
        *,
        people: bool,
    ) -> GateRecord:
        """``AsyncGateStore.gate`` inside this delivery's transaction."""
        record = await self.store._gate(self.connection, target, revision, trigger, context, decide, now, people)
        if record.created:
            self.created = record.release
        return record

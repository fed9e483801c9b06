"""The gate's hot path on PostgreSQL, on the event loop: psycopg's async driver, no threads.

``SqlReleaseStore`` (SQLAlchemy, sync) runs everything else, and the gate on SQLite. A gate call
there costs a hop to the thread pool and back, and on a busy process each hop waits for the GIL:
measured, the hop cost more CPU than the statements (docs/benchmarks.md). This module decides
as ``StoreSession.gate`` does, with statements of its own (``sql.GATE_SQL``), awaited; the
differences:
- Re-deciding an open release, the common call (a hook polling), takes no lock and no
  transaction: one read, then one statement that stores the decision only if the release row is
  still the version that was read, else read and decide again (``_gate_optimistic``).
- A new release is created with its first decision, its audit record and the target's other
  open releases superseded in one statement, after the target's lock in a statement of its own.
- Concurrent calls share these statements (group commit, ``gatekeeper.store.batching``): the
  reads of many calls are one statement, their guarded writes one more, their new releases one
  transaction. Under load a gate call costs a fraction of a round trip instead of four.
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
    created_decision_params,
    decision_record,
    moved,
    record_decision_params,
    release_record,
)


@dataclass(frozen=True, slots=True)
class Missing:
    """A gate call's release does not exist yet; who wrote and merged its revision."""

    author: str | None
    merger: str | None

    def facts(self, people: bool) -> ApprovalFacts:
        """What the new release's first decision knows: no approvals; the people if asked for."""
        return ApprovalFacts((), self.author, self.merger) if people else ApprovalFacts((), None, None)


OPTIMISTIC_TRIES = 3  # reads and decisions before a gate call takes the lock instead
# One batch of a kind in flight at once, per process: what queues meanwhile goes as the next
# batch. Measured against two (docs/benchmarks.md, 2026-12-03): batches twice as large, +9% gate
# throughput under 32 clients, the same p99 at a steady 200 req/s. A lone call still goes at once.
BATCH_FLIGHTS = 1
BATCH_LIMIT = 64  # gate calls per batch
JSON_FIELDS = ("reasons", "requires", "would_defer", "data", "context", "response")


def conninfo(database_url: str) -> str:
    """psycopg's connection string for a SQLAlchemy ``postgresql+psycopg://`` URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _params(values: dict[str, Any]) -> dict[str, Any]:
    return {key: Json(value) if key in JSON_FIELDS and value is not None else value for key, value in values.items()}


class AsyncGateStore:
    """Gate calls on PostgreSQL: one transaction each, from a pool of async connections."""

    def __init__(self, database_url: str, *, max_size: int = 16, lock_timeout: float = 5.0) -> None:
        self.lock_timeout = lock_timeout
        self.pool = AsyncConnectionPool(
            conninfo(database_url),
            min_size=2,
            max_size=max_size,
            timeout=10,
            open=False,
            kwargs={"row_factory": dict_row, "autocommit": True},  # transactions are explicit
            configure=self._configure,
        )
        self.find_many = Batcher(self._find_batch, self._store_error, flights=BATCH_FLIGHTS, limit=BATCH_LIMIT)
        self.record_many = Batcher(self._record_batch, self._store_error, flights=BATCH_FLIGHTS, limit=BATCH_LIMIT)
        self.create_many = Batcher(self._create_batch, self._store_error, flights=BATCH_FLIGHTS, limit=BATCH_LIMIT)

    async def _configure(self, connection: psycopg.AsyncConnection[Any]) -> None:
        """Each new connection: a lock wait longer than ``lock_timeout`` fails its statement. One
        batch of a kind flies at a time, so a lock held elsewhere (an operator's open transaction)
        would otherwise stall every gate call of that kind in the process."""
        await connection.execute(f"SET lock_timeout = {int(self.lock_timeout * 1000)}")

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
            outcome = await self._gate_optimistic(target, revision, trigger, decide, now)
            if isinstance(outcome, Missing):
                outcome = await self._create_batched(target, revision, trigger, context, decide, now, people, outcome)
                if outcome is None:  # most often a concurrent call of this revision created it: re-decide
                    outcome = await self._gate_optimistic(target, revision, trigger, decide, now)
            if outcome is not None and not isinstance(outcome, Missing):
                return outcome
            async with self.pool.connection() as connection, connection.transaction():  # commits or rolls back
                return await self._gate(connection, target, revision, trigger, context, decide, now, people)
        except psycopg.Error as exc:
            raise await self._store_error(exc) from exc

    async def _store_error(self, exc: Exception) -> Exception:
        """The StoreError for ``exc``; a lost connection also drops the pool's dead ones."""
        if not isinstance(exc, psycopg.Error):
            return exc
        if isinstance(exc, psycopg.errors.LockNotAvailable):  # an OperationalError, yet not a lost connection
            return StoreError(f"database busy: a lock was held longer than {self.lock_timeout:g} s")
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
        except psycopg.Error as exc:
            raise await self._store_error(exc) from exc

    async def _gate_optimistic(
        self,
        target: str,
        revision: str,
        trigger: str,
        decide: Callable[[ReleaseRecord | None, ApprovalFacts], Decision],
        now: datetime,
    ) -> GateRecord | Missing | None:
        """The common gate call without a transaction or a lock: a read, and one statement that
        stores the decision only if the release did not change since the read
        (``RECORD_DECISIONS_IF_UNCHANGED_PG``); both are batched with concurrent calls' (group
        commit). Returns the record; ``Missing`` (who wrote and merged the revision) when there is
        no release yet, or None when it changed under every try: then the locked transaction
        (``_gate``) decides."""
        for _ in range(OPTIMISTIC_TRIES):
            row = await self.find_many((target, revision))
            if row["id"] is None:
                return Missing(row["author"], row["merger"])
            release = release_record(row)
            if release.status not in REDECIDABLE:
                latest = await self._read_one("latest_decision", {"b_id": release.id}, decision_record)
                return GateRecord(release, latest, decided_now=False) if latest is not None else None
            given = await self._approvals(release)
            decision = decide(release, ApprovalFacts(given, release.author, release.merger))
            status = STATUS_OF_VERDICT.get(decision.verdict.value, release.status)
            values, recorded = record_decision_params(release, decision, status, trigger, now)
            decision_id = await self.record_many({**recorded, "version": row["version"]})
            if decision_id is not None:
                stored = DecisionRecord(id=decision_id, **values)
                return GateRecord(moved(release, status, now), stored, decided_now=True)
        return None

    async def _find_batch(self, keys: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """The releases (with row versions) of many gate calls' keys, in one statement: a row
        per key, whose id is None where the key has no release yet."""
        distinct = [{"target": target, "revision": revision} for target, revision in dict.fromkeys(keys)]
        params = {"b_keys": json.dumps(distinct)}
        async with self.pool.connection() as connection:
            cursor = await _execute(connection, "find_many_versioned", params)
            found = {(row["key_target"], row["key_revision"]): row for row in await cursor.fetchall()}
        return [found[key] for key in keys]

    async def _record_batch(self, calls: list[dict[str, Any]]) -> list[int | None]:
        """Many gate calls' decisions in one statement, each stored only if its release is still
        the version its call read: the stored decision's id per call, None where the release
        changed. Of two calls on one release in a batch, the first goes and the second reads
        and decides again, as if it had lost the race to a concurrent call."""
        goes = _first_per(calls, "release_id")
        rows = _json_rows([call for call, go in zip(calls, goes, strict=True) if go])
        async with self.pool.connection() as connection:
            try:
                cursor = await _execute(connection, "record_decisions_if_unchanged", {"rows": rows})
                stored = {row["release_id"]: row["id"] for row in await cursor.fetchall()}
            except psycopg.errors.DeadlockDetected:  # pragma: no cover - rows are locked in id order
                stored = {}  # nothing was written: every call reads and decides again
        return [stored.get(call["release_id"]) if go else None for call, go in zip(calls, goes, strict=True)]

    async def _create_batched(
        self,
        target: str,
        revision: str,
        trigger: str,
        context: dict[str, str],
        decide: Callable[[ReleaseRecord | None, ApprovalFacts], Decision],
        now: datetime,
        people: bool,
        missing: Missing,
    ) -> GateRecord | None:
        """A new release and its first decision, created in a batch with concurrent calls' new
        releases; None when it was not created there (it exists by now, or another call of the
        batch creates a release of the same target): then the locked transaction decides."""
        decision = decide(None, missing.facts(people))
        status = STATUS_OF_VERDICT.get(decision.verdict.value, ReleaseStatus.PENDING)
        values, row = created_decision_params(target, revision, trigger, context, decision, status, now)
        created = await self.create_many(row)
        return _created(created, values) if created is not None else None

    async def _create_batch(self, calls: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
        """Many gate calls' new releases, with their first decisions, in one transaction of two
        statements (the targets' locks, then CREATE_RELEASES_DECIDED_PG). One call per target
        goes: a second new revision of a target in the batch must see the first committed to
        supersede it, so it goes the locked way after this batch."""
        goes = _first_per(calls, "target")
        async with self.pool.connection() as connection, connection.transaction():
            created = await _create_releases(connection, [call for call, go in zip(calls, goes, strict=True) if go])
        keys = [(call["target"], call["revision"]) for call in calls]
        return [created.get(key) if go else None for key, go in zip(keys, goes, strict=True)]

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
    ) -> GateRecord:
        """In the caller's transaction, under the release's row lock or the target's lock."""
        release = await _one(connection, "find", {"b_target": target, "b_revision": revision}, release_record)
        if release is not None and release.status not in REDECIDABLE:
            latest = await _one(connection, "latest_decision", {"b_id": release.id}, decision_record)
            if latest is not None:
                return GateRecord(release, latest, decided_now=False)
        decision = decide(release, await self._facts(connection, release, revision, people))
        status = STATUS_OF_VERDICT.get(decision.verdict.value, release.status if release else ReleaseStatus.PENDING)
        if release is None:
            values, row = created_decision_params(target, revision, trigger, context, decision, status, now)
            created = (await _create_releases(connection, [row])).get((target, revision))
            if created is not None:
                return _created(created, values)
            # A concurrent first call created it and committed before we got the target's lock.
            release = await _one(connection, "find", {"b_target": target, "b_revision": revision}, release_record)
            if release is None:  # pragma: no cover - the insert conflicted with this very row
                raise StoreError(f"release {target}@{revision} vanished")
        values, recorded = record_decision_params(release, decision, status, trigger, now)
        stored = await (await _execute(connection, "record_decision", _params(recorded))).fetchone()
        if stored is None:  # pragma: no cover - the INSERT ... RETURNING always returns its row
            raise StoreError("decision was not stored")
        return GateRecord(moved(release, status, now), DecisionRecord(id=stored["id"], **values), decided_now=True)

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



async def _create_releases(
    connection: psycopg.AsyncConnection[Any], rows: list[dict[str, Any]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """New releases (distinct targets) with their first decisions, the targets' other open
    releases superseded, in the caller's transaction; the created rows by (target, revision)."""
    # The targets' locks first, before any row lock: every path that holds them then waits only
    # for row locks, and no path waits for a target's lock while it holds a row lock (a
    # re-decide holds its rows briefly, locks them in id order and waits for no target lock), so
    # no deadlock. New revisions of one target are created one at a time.
    await _execute(connection, "lock_targets", {"b_targets": [row["target"] for row in rows]})
    cursor = await _execute(connection, "create_releases_decided", {"rows": _json_rows(rows)})
    return {(row["target"], row["revision"]): row for row in await cursor.fetchall()}


def _first_per(calls: list[dict[str, Any]], key: str) -> list[bool]:
    """Whether each call is the first of the batch with its ``key`` (the one that goes)."""
    seen: set[Any] = set()
    goes = []
    for call in calls:
        goes.append(call[key] not in seen)
        seen.add(call[key])
    return goes


def _created(row: dict[str, Any], values: dict[str, Any]) -> GateRecord:
    """The gate record of a release that CREATE_RELEASES_DECIDED_PG created with its decision."""
    release = release_record(row)
    stored = DecisionRecord(id=row["decision_id"], **{**values, "release_id": release.id})
    return GateRecord(release, stored, decided_now=True)


def _json_rows(rows: list[dict[str, Any]]) -> str:
    """A batch's calls as the JSON array that ``json_to_recordset`` reads (instants in ISO 8601)."""
    return json.dumps(rows, default=_json_instant)


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
        return await self.store._gate(self.connection, target, revision, trigger, context, decide, now, people)

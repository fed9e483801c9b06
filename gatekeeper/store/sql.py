"""``SqlReleaseStore``: the ReleaseStore port on SQLAlchemy Core (SQLite or PostgreSQL).

Each gate call is one transaction: lock the (target, revision) row, decide if the release is
still open, write the decision, supersede older open releases of the target. The unique key on
(target, revision) settles concurrent first calls; the loser retries as an existing release.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    Row,
    Text,
    bindparam,
    cast,
    column,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal_column,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.sql.elements import Label

from gatekeeper.audit import GENESIS, chain_hash
from gatekeeper.domain.approvals import Approval, ApprovalFacts
from gatekeeper.domain.types import Decision, Reason, format_instant
from gatekeeper.store import NotMigratedError, StoreError
from gatekeeper.store import migrations as schema_migrations
from gatekeeper.store.records import (
    REDECIDABLE,
    ApprovalRecord,
    DecisionRecord,
    GateRecord,
    ReleaseDetail,
    ReleaseRecord,
    ReleaseStatus,
)
from gatekeeper.store.tables import (
    approvals,
    audit,
    audit_pending,
    commits,
    decisions,
    deliveries,
    notifications,
    pending_reviews,
    releases,
)

logger = logging.getLogger(__name__)

OPEN_STATUSES = tuple(status.value for status in REDECIDABLE)
STATUS_OF_VERDICT = {"approve": ReleaseStatus.APPROVED, "defer": ReleaseStatus.DEFERRED}


def missing_sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL when it does not exist (None for other databases): a command
    that only reads must say so, not create an empty database wherever it was started."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(parsed.database)
    return None if path.exists() else path.resolve()


def make_engine(url: str) -> Engine:
    """An engine tuned per backend (SQLite: WAL, busy timeout, immediate write transactions)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _sqlite_pragmas(engine)
        return engine
    return create_engine(url, pool_size=16, max_overflow=16, pool_timeout=10)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's begin hook issue BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # Take the write lock up front: no deadlock upgrading a read lock under concurrency.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def reason_dict(reason: Reason) -> dict[str, Any]:
    return {
        "check": reason.check,
        "code": reason.code,
        "message": reason.message,
        "until": format_instant(reason.until),
    }


@dataclass(frozen=True, slots=True)
class PendingReview:
    """A GitHub deployment review answered "defer", waiting for its release's outcome."""

    id: int
    release_id: int
    callback_url: str
    environment: str


class SqlReleaseStore:
    """Releases, decisions and deliveries in one SQL database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str) -> SqlReleaseStore:
        return cls(make_engine(url))

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as connection:
                yield connection
        except SQLAlchemyError as exc:
            raise StoreError(f"database error: {_short(exc)}") from exc

    def schema_revisions(self) -> tuple[str | None, str]:
        """The schema revision the database is at (None: none) and the newest one."""
        try:
            return schema_migrations.pending(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"database unreachable: {_short(exc)}") from exc

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
            raise StoreError(f"migration failed: {_short(exc)}") from exc

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return True

    def gate(
        self,
        target: str,
        revision: str,
        trigger: str,
        context: dict[str, str],
        decide: Callable[[ReleaseRecord | None, Callable[[bool], ApprovalFacts]], Decision],
        now: datetime,
    ) -> GateRecord:
        """Decide and record a gate call for (target, revision) in one transaction."""
        with self._transaction() as connection:
            return StoreSession(connection).gate(target, revision, trigger, context, decide, now)

    @contextmanager
    def delivery(self, source: str, delivery_id: str, now: datetime) -> Iterator[DeliveryClaim]:
        """Claim a webhook delivery in a transaction; a redelivery finds the stored answer.

        The unique key on (source, delivery_id) makes concurrent redeliveries wait for the
        first one's transaction and then read its answer: one release, one decision.
        """
        with self._transaction() as connection:
            claimed = connection.execute(
                _insert_ignore(connection, deliveries)
                .values(source=source, delivery_id=delivery_id, status_code=0, response={}, received_at=now)
                .returning(deliveries.c.id)
            ).scalar_one_or_none()
            if claimed is None:
                row = connection.execute(
                    select(deliveries.c.status_code, deliveries.c.response).where(
                        deliveries.c.source == source, deliveries.c.delivery_id == delivery_id
                    )
                ).one()
                yield DeliveryClaim(StoreSession(connection), (row.status_code, row.response))
                return
            claim = DeliveryClaim(StoreSession(connection), None)
            yield claim
            if claim.answer is None:
                raise StoreError("delivery claimed but never answered")
            connection.execute(
                update(deliveries)
                .where(deliveries.c.id == claimed)
                .values(status_code=claim.answer[0], response=claim.answer[1])
            )

    def release(self, release_id: int) -> ReleaseDetail | None:
        with self._transaction() as connection:
            row = connection.execute(
                select(releases, commits.c.author, commits.c.merger)
                .select_from(releases.outerjoin(commits, commits.c.sha == releases.c.revision))
                .where(releases.c.id == release_id)
            ).first()
            if row is None:
                return None
            found = connection.execute(
                select(decisions).where(decisions.c.release_id == release_id).order_by(decisions.c.id)
            ).all()
            given = connection.execute(
                select(approvals).where(approvals.c.release_id == release_id).order_by(approvals.c.id)
            ).all()
        return ReleaseDetail(_release(row), tuple(_decision(d) for d in found), tuple(_approval(a) for a in given))

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
        with self._transaction() as connection:
            ids = list(connection.execute(query).scalars())
        page = [detail for detail in (self.release(i) for i in ids[:limit]) if detail is not None]
        return page, (ids[limit - 1] if len(ids) > limit else None)

    def notified(self, key: str, digest: str) -> bool:
        """Whether exactly this notification (same key and content) was already sent."""
        with self._transaction() as connection:
            sent = connection.execute(select(notifications.c.digest).where(notifications.c.key == key)).scalar()
        return sent == digest

    def record_notification(self, key: str, digest: str, now: datetime) -> None:
        with self._transaction() as connection:
            connection.execute(delete(notifications).where(notifications.c.key == key))
            connection.execute(insert(notifications).values(key=key, digest=digest, sent_at=now))

    def add_pending_review(self, release_id: int, callback_url: str, environment: str, now: datetime) -> None:
        """Remember a deployment review answered "defer" (once per release and callback)."""
        with self._transaction() as connection:
            dialect_insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
            values = {"release_id": release_id, "callback_url": callback_url, "environment": environment}
            statement = dialect_insert(pending_reviews).values(**values, created_at=now)
            connection.execute(statement.on_conflict_do_nothing())

    def open_reviews(self) -> list[PendingReview]:
        """The deferred deployment reviews not answered yet, oldest first."""
        query = select(pending_reviews).where(pending_reviews.c.answered_at.is_(None)).order_by(pending_reviews.c.id)
        with self._transaction() as connection:
            return [
                PendingReview(row.id, row.release_id, row.callback_url, row.environment)
                for row in connection.execute(query)
            ]

    def claim_review(self, review_id: int, answer: str, now: datetime) -> bool:
        """Mark a review answered; False when another process claimed it first."""
        claim = (
            update(pending_reviews)
            .where(pending_reviews.c.id == review_id, pending_reviews.c.answered_at.is_(None))
            .values(answered_at=now, answer=answer)
        )
        with self._transaction() as connection:
            return (connection.execute(claim).rowcount or 0) == 1

    def reopen_review(self, review_id: int) -> None:
        """A claimed review whose answer could not be sent: try again at the next run."""
        reopen = update(pending_reviews).where(pending_reviews.c.id == review_id).values(answered_at=None, answer=None)
        with self._transaction() as connection:
            connection.execute(reopen)

    def chain_audit(self, batch: int = 50, *, wait: bool = True) -> int:
        """Link every pending audit record into the hash chain; returns how many were chained.

        One chainer at a time: a PostgreSQL advisory lock (SQLite: the write lock). Records are
        chained in the order their transactions became visible, each exactly once. Small batches
        with a pause between them: hashing hundreds of records at once holds the GIL long enough
        to show in the gate's tail latency (docs/benchmarks.md). ``wait=False`` (the periodic
        chainer): when another process holds the lock, leave the records to it and return.
        """
        chained = 0
        while True:
            with self._transaction() as connection:
                if connection.dialect.name == "postgresql":
                    lock = LOCK_AUDIT if wait else TRY_LOCK_AUDIT  # the try returns false when taken
                    if connection.execute(lock, {"key": AUDIT_LOCK}).scalar() is False:
                        return chained
                done = StoreSession(connection).chain_pending(batch)
            chained += done
            if done < batch:
                return chained
            time.sleep(0.002)

    def audit_records(self, *, after: int, limit: int | None) -> list[dict[str, Any]]:
        """Audit records with seq > ``after``, oldest first (pending records are chained first)."""
        self.chain_audit()
        query = select(audit).where(audit.c.seq > after).order_by(audit.c.seq)
        if limit is not None:
            query = query.limit(limit)
        with self._transaction() as connection:
            return [audit_row(row) for row in connection.execute(query)]

    @contextmanager
    def session(self) -> Iterator[StoreSession]:
        """One transaction for several operations."""
        with self._transaction() as connection:
            yield StoreSession(connection)

    def prune_deliveries(self, older_than: datetime) -> int:
        with self._transaction() as connection:
            result = connection.execute(delete(deliveries).where(deliveries.c.received_at < older_than))
        return int(result.rowcount or 0)

    def count_releases(self) -> int:
        with self._transaction() as connection:
            return int(connection.execute(select(func.count()).select_from(releases)).scalar_one())


def _release(row: Row[Any]) -> ReleaseRecord:
    return release_record(row._mapping)


def release_record(mapping: Mapping[Any, Any]) -> ReleaseRecord:
    """A release from a row's columns (a SQLAlchemy row's mapping or a psycopg dict row)."""
    return ReleaseRecord(
        id=mapping["id"],
        target=mapping["target"],
        revision=mapping["revision"],
        status=ReleaseStatus(mapping["status"]),
        trigger=mapping["trigger"],
        created_at=_utc(mapping["created_at"]) or datetime.min.replace(tzinfo=UTC),
        updated_at=_utc(mapping["updated_at"]) or datetime.min.replace(tzinfo=UTC),
        author=mapping.get("author"),
        merger=mapping.get("merger"),
        has_approvals=mapping.get("has_approvals"),
    )


def _decision(row: Row[Any]) -> DecisionRecord:
    return decision_record(row._mapping)


def decision_record(m: Mapping[Any, Any]) -> DecisionRecord:
    return DecisionRecord(
        id=m["id"],
        release_id=m["release_id"],
        verdict=m["verdict"],
        reasons=m["reasons"],
        not_before=_utc(m["not_before"]),
        requires=m["requires"],
        policy_hash=m["policy_hash"],
        would_defer=m["would_defer"],
        trigger=m["trigger"],
        decided_at=_utc(m["decided_at"]) or datetime.min,
    )


def _approval(row: Row[Any]) -> ApprovalRecord:
    m = row._mapping
    return ApprovalRecord(
        id=m["id"],
        approver=m["approver"],
        roles=m["roles"],
        reason=m["reason"],
        break_glass=m["break_glass"],
        created_at=_utc(m["created_at"]) or datetime.min,
    )


def _short(exc: BaseException, limit: int = 200) -> str:
    text_ = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text_[:limit]


__all__ = ["OperationalError", "SqlReleaseStore", "make_engine"]


def _upsert_insert(connection: Connection, table: Any) -> Any:
    """The connection's dialect INSERT, which knows ON CONFLICT."""
    return pg_insert(table) if connection.dialect.name == "postgresql" else sqlite_insert(table)


def _insert_ignore(connection: Connection, table: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING for the connection's dialect."""
    return _upsert_insert(connection, table).on_conflict_do_nothing()


@dataclass
class DeliveryClaim:
    """A claimed delivery (``stored`` None) to answer, or a redelivery with its stored answer."""

    session: StoreSession
    stored: tuple[int, dict[str, Any]] | None
    answer: tuple[int, dict[str, Any]] | None = None


# The gate's hot path runs these prebuilt statements with bound parameters: building a
# statement per call (``insert(...).values(...)``) costs more Python time than the database does.
HAS_APPROVALS = select(approvals.c.id).where(approvals.c.release_id == releases.c.id).exists().label("has_approvals")
# Who wrote and merged the revision comes with the locked row: one round trip less per gate call.
AUTHOR_OF = select(commits.c.author).where(commits.c.sha == releases.c.revision).scalar_subquery().label("author")
MERGER_OF = select(commits.c.merger).where(commits.c.sha == releases.c.revision).scalar_subquery().label("merger")
# No HAS_APPROVALS here: a locked read that waited for the row (an approval in flight) re-reads
# the row but evaluates subqueries on its old snapshot, so it would miss that approval. The
# approvals are read by a statement of their own, after the lock.
RELEASE_KEY = (releases.c.target == bindparam("b_target"), releases.c.revision == bindparam("b_revision"))
FIND_RELEASE = select(releases, AUTHOR_OF, MERGER_OF).where(*RELEASE_KEY).with_for_update(of=releases)
# PostgreSQL's async path reads many gate calls' releases at once (group commit,
# gatekeeper.store.batching), unlocked, each with its row version for
# RECORD_DECISIONS_IF_UNCHANGED_PG.
ROW_VERSION: Label[str] = literal_column("CAST(releases.xmin AS TEXT)").label("version")
# The keys come as JSON rows, as the other batched statements' input does: PostgreSQL then plans
# the prepared statement once (a generic plan). ``unnest`` of arrays was re-planned on every
# execution, which cost twice what running it did (pg_stat_statements; docs/benchmarks.md).
RELEASE_KEYS = (
    func.json_to_recordset(cast(bindparam("b_keys"), JSON))
    .table_valued(column("target", Text), column("revision", Text))
    .render_derived(name="keys", with_types=True)
)
# Each key is looked up on its own (a LATERAL subquery with LIMIT 1 on the unique key, which the
# planner does not flatten into a join): an index lookup per key whatever the batch's estimated
# size. A join planned for the generic plan's estimate of 100 keys scanned the whole table.
KEYED_RELEASE = (
    select(releases, HAS_APPROVALS, ROW_VERSION)
    .where(releases.c.target == RELEASE_KEYS.c.target, releases.c.revision == RELEASE_KEYS.c.revision)
    .limit(1)
    .lateral("found")
)
# A key with no release yet gets a row too, with an id of NULL and who wrote and merged the
# revision: what the new release's first decision needs (four eyes), without a query of its own.
FIND_RELEASES_VERSIONED = select(
    KEYED_RELEASE,
    select(commits.c.author).where(commits.c.sha == RELEASE_KEYS.c.revision).scalar_subquery().label("author"),
    select(commits.c.merger).where(commits.c.sha == RELEASE_KEYS.c.revision).scalar_subquery().label("merger"),
    RELEASE_KEYS.c.target.label("key_target"),
    RELEASE_KEYS.c.revision.label("key_revision"),
).select_from(RELEASE_KEYS.outerjoin(KEYED_RELEASE, true()))
# Our own constants, spelled out: the statement then compiles once for both drivers (GATE_SQL).
OPEN_RELEASE = text("releases.status IN (" + ", ".join(f"'{status}'" for status in OPEN_STATUSES) + ")")
# The rows are locked in id order before they are written (see RECORD_DECISIONS_IF_UNCHANGED_PG).
SUPERSEDED = (
    select(releases.c.id)
    .where(releases.c.target == bindparam("b_target"), releases.c.id != bindparam("b_id"), OPEN_RELEASE)
    .order_by(releases.c.id)
    .with_for_update()
)
SUPERSEDE = (
    update(releases)
    .where(releases.c.id.in_(SUPERSEDED.scalar_subquery()))
    .values(status=ReleaseStatus.SUPERSEDED.value, updated_at=bindparam("b_now"))
)
SET_STATUS = (
    update(releases)
    .where(releases.c.id == bindparam("b_id"))
    .values(status=bindparam("b_status"), updated_at=bindparam("b_now"))
)
INSERT_DECISION = insert(decisions).returning(decisions.c.id)
INSERT_AUDIT_PENDING = insert(audit_pending)
DECISION_TYPES = (
    bindparam("reasons", type_=decisions.c.reasons.type),
    bindparam("requires", type_=decisions.c.requires.type),
    bindparam("would_defer", type_=decisions.c.would_defer.type),
    bindparam("not_before", type_=decisions.c.not_before.type),
    bindparam("decided_at", type_=decisions.c.decided_at.type),
    bindparam("at", type_=audit_pending.c.at.type),
    bindparam("data", type_=audit_pending.c.data.type),
)
# PostgreSQL writes a gate call's decision, its audit record and the release's new status in one
# statement (data-modifying CTEs); SQLite, in process, runs the three statements.
RECORD_DECISION_PG = text(
    """
    WITH decision AS (
        INSERT INTO decisions (release_id, verdict, reasons, not_before, requires, policy_hash,
                               would_defer, trigger, decided_at)
        VALUES (:release_id, :verdict, :reasons, :not_before, :requires, :policy_hash,
                :would_defer, :trigger, :decided_at)
        RETURNING id
    ), audited AS (
        INSERT INTO audit_pending (at, kind, actor, subject, data, break_glass)
        VALUES (:at, 'decision', :actor, :subject, :data, :break_glass)
    ), moved AS (
        UPDATE releases SET status = :status,
               updated_at = CASE WHEN releases.status <> CAST(:status AS VARCHAR) THEN :at ELSE releases.updated_at END
        WHERE id = :release_id
    )
    SELECT id FROM decision
    """
).bindparams(*DECISION_TYPES)
# The optimistic write (PostgreSQL's async path, outside a transaction), for many gate calls at
# once, one JSON row per call (distinct releases): a decision is stored only if its release row
# is still the version that was read (``xmin``, the id of the transaction that wrote it). Every
# write of a decision rewrites the release row (``moved`` above, even when the status stays),
# and an approval always comes with a decision, so a concurrent approval, rejection or decision
# changes the version and this stores nothing for that release: its caller reads again and
# decides again. Under READ COMMITTED the row lock re-checks the version on the newest committed
# row, so the check is not a check-then-write race. The rows are locked in id order: two batches
# that share releases never hold one each while waiting for the other's (every statement that
# locks several releases locks them in id order, SUPERSEDE too). Returns the stored decisions'
# ids by release; a release missing there changed since its read.
RECORD_DECISIONS_IF_UNCHANGED_PG = text(
    """
    WITH input AS (
        SELECT * FROM json_to_recordset(CAST(:rows AS JSON)) AS input(
            release_id BIGINT, version TEXT, status VARCHAR, verdict VARCHAR, reasons JSON,
            not_before TIMESTAMPTZ, requires JSON, policy_hash VARCHAR, would_defer JSON,
            trigger VARCHAR, decided_at TIMESTAMPTZ, at TIMESTAMPTZ, actor VARCHAR, subject VARCHAR,
            data JSON, break_glass BOOLEAN)
    ), locked AS (
        SELECT releases.id FROM releases JOIN input ON releases.id = input.release_id
        WHERE releases.xmin = CAST(input.version AS xid)
        ORDER BY releases.id
        FOR UPDATE OF releases
    ), moved AS (
        UPDATE releases SET status = input.status,
               updated_at = CASE WHEN releases.status <> input.status THEN input.at ELSE releases.updated_at END
        FROM input
        WHERE releases.id = input.release_id AND releases.id IN (SELECT id FROM locked)
        RETURNING releases.id
    ), decision AS (
        INSERT INTO decisions (release_id, verdict, reasons, not_before, requires, policy_hash,
                               would_defer, trigger, decided_at)
        SELECT input.release_id, input.verdict, input.reasons, input.not_before, input.requires,
               input.policy_hash, input.would_defer, input.trigger, input.decided_at
        FROM input JOIN moved ON moved.id = input.release_id
        RETURNING id, release_id
    ), audited AS (
        INSERT INTO audit_pending (at, kind, actor, subject, data, break_glass)
        SELECT input.at, 'decision', input.actor, input.subject, input.data, input.break_glass
        FROM input JOIN moved ON moved.id = input.release_id
        ORDER BY input.release_id
    )
    SELECT id, release_id FROM decision
    """
)
APPROVALS_OF = select(approvals).where(approvals.c.release_id == bindparam("b_id")).order_by(approvals.c.id)
LATEST_DECISION = (
    select(decisions).where(decisions.c.release_id == bindparam("b_id")).order_by(decisions.c.id.desc()).limit(1)
)
PEOPLE_OF = select(commits.c.author, commits.c.merger).where(commits.c.sha == bindparam("b_revision"))
# New releases of one target are created one at a time (PostgreSQL): CREATE_RELEASE_PG, which
# follows with a fresh snapshot, then sees a concurrent call's committed release and supersedes it.
TARGET_LOCK = text("SELECT pg_advisory_xact_lock(:classid, hashtext(:b_target))").bindparams(classid=0x6761_7465)
INSERT_RELEASE_SQLITE = sqlite_insert(releases).on_conflict_do_nothing().returning(*releases.c)
# PostgreSQL creates a release and supersedes the target's other open ones in one statement
# (after TARGET_LOCK, a statement of its own, so this one's snapshot sees every committed release).
CREATE_RELEASE_PG = text(
    """
    WITH created AS (
        INSERT INTO releases (target, revision, status, trigger, context, created_at, updated_at)
        VALUES (:target, :revision, :status, :trigger, :context, :created_at, :updated_at)
        ON CONFLICT DO NOTHING
        RETURNING id, target, revision, status, trigger, created_at, updated_at
    ), superseded AS (
        UPDATE releases SET status = 'superseded', updated_at = :updated_at
        WHERE id IN (SELECT id FROM releases
                     WHERE target = :target AND revision <> :revision AND status = ANY(:open_statuses)
                     ORDER BY id FOR UPDATE)
    )
    SELECT * FROM created
    """
).bindparams(
    bindparam("open_statuses", list(OPEN_STATUSES)),
    bindparam("context", type_=releases.c.context.type),
    bindparam("created_at", type_=releases.c.created_at.type),
    bindparam("updated_at", type_=releases.c.updated_at.type),
)


# PostgreSQL's async path creates releases, each with its first decision and audit record, and
# supersedes their targets' other open releases (locked in id order), one statement for many
# gate calls (one JSON row each, distinct targets), after TARGET_LOCKS (a statement of its own,
# so this one's snapshot sees every release committed before the locks were granted).
# A release that exists already (a concurrent first call committed it) returns no row.
TARGET_LOCKS = text(
    """
    SELECT pg_advisory_xact_lock(:classid, key)
    FROM (SELECT DISTINCT hashtext(target) AS key FROM unnest(CAST(:b_targets AS TEXT[])) AS target
          ORDER BY key OFFSET 0) AS keys
    """
).bindparams(classid=0x6761_7465)  # in key order: two batches never wait for each other's
CREATE_RELEASES_DECIDED_PG = text(
    """
    WITH input AS (
        SELECT * FROM json_to_recordset(CAST(:rows AS JSON)) AS input(
            target VARCHAR, revision VARCHAR, status VARCHAR, trigger VARCHAR, context JSON,
            created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ, verdict VARCHAR, reasons JSON,
            not_before TIMESTAMPTZ, requires JSON, policy_hash VARCHAR, would_defer JSON,
            decided_at TIMESTAMPTZ, at TIMESTAMPTZ, actor VARCHAR, data JSON, break_glass BOOLEAN)
    ), created AS (
        INSERT INTO releases (target, revision, status, trigger, context, created_at, updated_at)
        SELECT target, revision, status, trigger, context, created_at, updated_at FROM input ORDER BY target
        ON CONFLICT DO NOTHING
        RETURNING id, target, revision, status, trigger, created_at, updated_at
    ), decision AS (
        INSERT INTO decisions (release_id, verdict, reasons, not_before, requires, policy_hash,
                               would_defer, trigger, decided_at)
        SELECT created.id, input.verdict, input.reasons, input.not_before, input.requires,
               input.policy_hash, input.would_defer, input.trigger, input.decided_at
        FROM created JOIN input ON input.target = created.target
        RETURNING id, release_id
    ), audited AS (
        INSERT INTO audit_pending (at, kind, actor, subject, data, break_glass)
        SELECT input.at, 'decision', input.actor, 'release/' || created.id, input.data, input.break_glass
        FROM created JOIN input ON input.target = created.target
        ORDER BY created.id
    ), superseded AS (
        UPDATE releases SET status = 'superseded', updated_at = input.updated_at
        FROM input
        WHERE releases.target = input.target
          AND releases.id IN (SELECT older.id FROM releases AS older
                              JOIN input ON older.target = input.target AND older.revision <> input.revision
                              WHERE older.status = ANY(:open_statuses)
                                AND input.target IN (SELECT target FROM created)
                              ORDER BY older.id FOR UPDATE OF older)
    )
    SELECT created.*, decision.id AS decision_id FROM created JOIN decision ON decision.release_id = created.id
    """
).bindparams(bindparam("open_statuses", list(OPEN_STATUSES)))


# A webhook delivery on PostgreSQL's async path (what ``SqlReleaseStore.delivery`` and
# ``StoreSession.record_commit`` build per call).
CLAIM_DELIVERY_PG = (
    pg_insert(deliveries)
    .values(
        source=bindparam("b_source"),
        delivery_id=bindparam("b_delivery_id"),
        status_code=0,
        response=bindparam("response", type_=deliveries.c.response.type),
        received_at=bindparam("b_now", type_=deliveries.c.received_at.type),
    )
    .on_conflict_do_nothing()
    .returning(deliveries.c.id)
)
STORED_ANSWER = select(deliveries.c.status_code, deliveries.c.response).where(
    deliveries.c.source == bindparam("b_source"), deliveries.c.delivery_id == bindparam("b_delivery_id")
)
ANSWER_DELIVERY = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"))
    .values(status_code=bindparam("b_status_code"), response=bindparam("response", type_=deliveries.c.response.type))
)
_COMMIT_PG = pg_insert(commits).values(
    sha=bindparam("b_sha"),
    author=bindparam("b_author"),
    merger=bindparam("b_merger"),
    recorded_at=bindparam("b_now", type_=commits.c.recorded_at.type),
)
RECORD_COMMIT_PG = _COMMIT_PG.on_conflict_do_update(
    index_elements=[commits.c.sha],
    set_={
        "author": func.coalesce(_COMMIT_PG.excluded.author, commits.c.author),
        "merger": func.coalesce(_COMMIT_PG.excluded.merger, commits.c.merger),
        "recorded_at": _COMMIT_PG.excluded.recorded_at,
    },
)


def _psycopg(statement: Any) -> tuple[str, dict[str, Any]]:
    """``statement`` as psycopg SQL (for the async gate path) and the constants it binds."""
    compiled = statement.compile(dialect=postgresql.psycopg.dialect())  # type: ignore[no-untyped-call]
    constants = {compiled.bind_names[bind]: bind.value for bind in compiled.binds.values() if not bind.required}
    return str(compiled), {key: value for key, value in constants.items() if value is not None}


# The gate's statements as pyformat SQL: gatekeeper.store.pg_async runs exactly these.
GATE_SQL: dict[str, tuple[str, dict[str, Any]]] = {
    "find": _psycopg(FIND_RELEASE),
    "latest_decision": _psycopg(LATEST_DECISION),
    "people": _psycopg(PEOPLE_OF),
    "approvals": _psycopg(APPROVALS_OF),
    "lock_target": _psycopg(TARGET_LOCK),
    "lock_targets": _psycopg(TARGET_LOCKS),
    "create_releases_decided": _psycopg(CREATE_RELEASES_DECIDED_PG),
    "record_decision": _psycopg(RECORD_DECISION_PG),
    "find_many_versioned": _psycopg(FIND_RELEASES_VERSIONED),
    "record_decisions_if_unchanged": _psycopg(RECORD_DECISIONS_IF_UNCHANGED_PG),
    "claim_delivery": _psycopg(CLAIM_DELIVERY_PG),
    "stored_answer": _psycopg(STORED_ANSWER),
    "answer_delivery": _psycopg(ANSWER_DELIVERY),
    "record_commit": _psycopg(RECORD_COMMIT_PG),
}


class StoreSession:
    """Store operations inside one open transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def release_for_update(self, release_id: int) -> ReleaseRecord | None:
        row = self.connection.execute(
            select(releases, commits.c.author, commits.c.merger)
            .select_from(releases.outerjoin(commits, commits.c.sha == releases.c.revision))
            .where(releases.c.id == release_id)
            .with_for_update(of=releases)
        ).first()
        return _release(row) if row is not None else None

    def find(self, target: str, revision: str) -> ReleaseRecord | None:
        row = self.connection.execute(FIND_RELEASE, {"b_target": target, "b_revision": revision}).first()
        return _release(row) if row is not None else None

    def gate(
        self,
        target: str,
        revision: str,
        trigger: str,
        context: dict[str, str],
        decide: Callable[[ReleaseRecord | None, Callable[[bool], ApprovalFacts]], Decision],
        now: datetime,
    ) -> GateRecord:
        """Re-decide an open release, create a new one (superseding older open ones), or
        return the latest decision of a release that is no longer open."""
        release = self.find(target, revision)
        if release is not None and release.status not in REDECIDABLE:
            latest = self.latest_decision(release.id)
            if latest is not None:
                return GateRecord(release, latest, decided_now=False)

        def facts(people: bool) -> ApprovalFacts:
            return self.approval_facts(release, revision, people=people and release is None)

        decision = decide(release, facts)
        status = STATUS_OF_VERDICT.get(decision.verdict.value, release.status if release else ReleaseStatus.PENDING)
        if release is None:
            release = self._create(target, revision, trigger, context, status, now)
        if self.connection.dialect.name == "postgresql":
            record = self._record_decision_pg(release, decision, status, trigger, now)
        else:
            if release.status is not status:
                self._set_status(release.id, status, now)
            record = self.add_decision(release.id, decision, trigger)
            self.audit_decision(release, record, trigger, now)
        return GateRecord(moved(release, status, now), record, decided_now=True)

    def _record_decision_pg(
        self, release: ReleaseRecord, decision: Decision, status: ReleaseStatus, trigger: str, now: datetime
    ) -> DecisionRecord:
        """Decision, audit record and status in one round trip (what add_decision, audit_decision
        and _set_status do one statement each)."""
        values, params = record_decision_params(release, decision, status, trigger, now)
        decision_id = self.connection.execute(RECORD_DECISION_PG, params).scalar_one()
        return DecisionRecord(id=decision_id, **values)

    def audit_decision(self, release: ReleaseRecord, record: DecisionRecord, actor: str, now: datetime) -> None:
        data = self._audit_data(release, record.verdict, record.reasons, record.policy_hash)
        break_glass = _is_break_glass(record.reasons)
        self.append_audit("decision", actor, f"release/{release.id}", data, now, break_glass=break_glass)

    @staticmethod
    def _audit_data(
        release: ReleaseRecord, verdict: str, reasons: list[dict[str, Any]], policy_hash: str
    ) -> dict[str, Any]:
        return {
            "target": release.target,
            "revision": release.revision,
            "verdict": verdict,
            "codes": [reason["code"] for reason in reasons],
            "policy_hash": policy_hash,
        }

    def _create(
        self, target: str, revision: str, trigger: str, context: dict[str, str], status: ReleaseStatus, now: datetime
    ) -> ReleaseRecord:
        """Insert the release (a concurrent first call may have won: then use its row) and
        supersede the target's other open releases."""
        values = release_values(target, revision, trigger, context, status, now)
        if self.connection.dialect.name == "postgresql":
            self.connection.execute(TARGET_LOCK, {"b_target": target})
            row = self.connection.execute(CREATE_RELEASE_PG, values).first()
        else:
            row = self.connection.execute(INSERT_RELEASE_SQLITE, values).first()
            if row is not None:
                self.connection.execute(SUPERSEDE, {"b_target": target, "b_id": row.id, "b_now": now})
        release = _release(row) if row is not None else self.find(target, revision)
        if release is None:  # pragma: no cover - the row was just inserted or already existed
            raise StoreError(f"release {target}@{revision} vanished")
        return release

    def _set_status(self, release_id: int, status: ReleaseStatus, now: datetime) -> None:
        self.connection.execute(SET_STATUS, {"b_id": release_id, "b_status": status.value, "b_now": now})

    def mark(self, release: ReleaseRecord, status: ReleaseStatus, now: datetime) -> ReleaseRecord:
        self._set_status(release.id, status, now)
        return replace(release, status=status, updated_at=now)

    def add_decision(self, release_id: int, decision: Decision, trigger: str) -> DecisionRecord:
        values = self._decision_values(release_id, decision, trigger)
        decision_id = self.connection.execute(INSERT_DECISION, values).scalar_one()
        return DecisionRecord(id=decision_id, **values)

    @staticmethod
    def _decision_values(release_id: int, decision: Decision, trigger: str) -> dict[str, Any]:
        return {
            "release_id": release_id,
            "verdict": decision.verdict.value,
            "reasons": [reason_dict(reason) for reason in decision.reasons],
            "not_before": decision.not_before,
            "requires": list(decision.requires),
            "policy_hash": decision.policy_hash,
            "would_defer": None if decision.would_defer is None else [reason_dict(r) for r in decision.would_defer],
            "trigger": trigger,
            "decided_at": decision.decided_at,
        }

    def latest_decision(self, release_id: int) -> DecisionRecord | None:
        row = self.connection.execute(LATEST_DECISION, {"b_id": release_id}).first()
        return _decision(row) if row is not None else None

    def record_commit(self, sha: str, author: str | None, merger: str | None, now: datetime) -> None:
        """Remember who wrote and merged a commit; later events fill in what earlier ones lacked
        (one upsert: concurrent events on one SHA cannot race)."""
        people = {"author": author or None, "merger": merger or None}
        statement = _upsert_insert(self.connection, commits).values(sha=sha, recorded_at=now, **people)
        self.connection.execute(
            statement.on_conflict_do_update(
                index_elements=[commits.c.sha],
                set_={
                    "author": func.coalesce(statement.excluded.author, commits.c.author),
                    "merger": func.coalesce(statement.excluded.merger, commits.c.merger),
                    "recorded_at": statement.excluded.recorded_at,
                },
            )
        )

    def approval_facts(self, release: ReleaseRecord | None, revision: str, *, people: bool = True) -> ApprovalFacts:
        """Approvals given on ``release`` and who wrote and merged ``revision`` (looked up with
        ``people``; otherwise as ``release`` carries them)."""
        found: Any = release
        if people:
            found = self.connection.execute(PEOPLE_OF, {"b_revision": revision}).first()
        given: tuple[Approval, ...] = ()
        if release is not None and release.has_approvals is not False:
            rows = self.connection.execute(APPROVALS_OF, {"b_id": release.id}).all()
            given = tuple(approval_of(row._mapping) for row in rows)
        return ApprovalFacts(given, found.author if found else None, found.merger if found else None)

    def add_approval(self, release_id: int, approval: Approval, now: datetime) -> None:
        self.connection.execute(
            insert(approvals).values(
                release_id=release_id,
                approver=approval.approver,
                roles=sorted(approval.roles),
                reason=approval.reason,
                break_glass=approval.break_glass,
                created_at=now,
            )
        )

    def append_audit(
        self,
        kind: str,
        actor: str,
        subject: str | None,
        data: dict[str, Any],
        now: datetime,
        *,
        break_glass: bool = False,
    ) -> None:
        """Record an audit entry in this transaction; ``chain_audit`` links it into the hash chain."""
        values = {"at": now, "kind": kind, "actor": actor, "subject": subject, "data": data, "break_glass": break_glass}
        self.connection.execute(INSERT_AUDIT_PENDING, values)

    def _copy_into_chain(self, rows: list[dict[str, Any]]) -> None:
        """PostgreSQL: append the batch with one COPY (an INSERT per row, as executemany sends
        them, costs more CPU than hashing the records; docs/benchmarks.md)."""
        cursor = self.connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(CHAIN_COPY) as copy:
            for row in rows:
                copy.write_row([row[name] if name != "data" else json.dumps(row["data"]) for name in CHAIN_COLUMNS])

    def chain_pending(self, limit: int) -> int:
        """Move committed pending records into the chain, oldest first (caller holds the chain lock)."""
        pending = self.connection.execute(select(audit_pending).order_by(audit_pending.c.id).limit(limit)).all()
        if not pending:
            return 0
        last = self.connection.execute(select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)).first()
        seq, previous = (int(last.seq), str(last.hash)) if last else (0, GENESIS)
        rows = []
        for entry in pending:
            seq += 1
            record = {
                "seq": seq,
                "at": audit_instant(entry.at),
                "kind": entry.kind,
                "actor": entry.actor,
                "subject": entry.subject,
                "data": entry.data,
                "break_glass": bool(entry.break_glass),
            }
            digest = chain_hash(previous, record, key=None)
            rows.append({**record, "at": entry.at, "prev_hash": previous, "hash": digest})
            previous = digest
        ids = [entry.id for entry in pending]
        if self.connection.dialect.name == "postgresql":
            self._copy_into_chain(rows)
        else:
            self.connection.execute(insert(audit), rows)
        self.connection.execute(delete(audit_pending).where(audit_pending.c.id.in_(ids)))
        return len(rows)


CHAIN_COLUMNS = ("seq", "at", "kind", "actor", "subject", "data", "prev_hash", "hash", "break_glass")
CHAIN_COPY = f"COPY audit ({', '.join(CHAIN_COLUMNS)}) FROM STDIN"


def approval_of(m: Mapping[Any, Any]) -> Approval:
    """An approval row as the fact ``decide`` counts."""
    return Approval(m["approver"], frozenset(m["roles"]), m["break_glass"], m["reason"], _utc(m["created_at"]))


def moved(release: ReleaseRecord, status: ReleaseStatus, now: datetime) -> ReleaseRecord:
    """``release`` after a decision: its status, and ``updated_at`` now if the status changed."""
    return replace(release, status=status, updated_at=now if status is not release.status else release.updated_at)


def release_values(
    target: str, revision: str, trigger: str, context: dict[str, str], status: ReleaseStatus, now: datetime
) -> dict[str, Any]:
    """The columns of a new release."""
    return {
        "target": target,
        "revision": revision,
        "status": status.value,
        "trigger": trigger,
        "context": context or None,
        "created_at": now,
        "updated_at": now,
    }


def record_decision_params(
    release: ReleaseRecord, decision: Decision, status: ReleaseStatus, trigger: str, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The decision's columns, and the parameters of RECORD_DECISION_PG that store it with its
    audit record and the release's new status."""
    values = StoreSession._decision_values(release.id, decision, trigger)
    data = StoreSession._audit_data(release, values["verdict"], values["reasons"], values["policy_hash"])
    params = {
        **values,
        "at": now,
        "actor": trigger,
        "subject": f"release/{release.id}",
        "data": data,
        "break_glass": _is_break_glass(values["reasons"]),
        "status": status.value,
    }
    return values, params


def created_decision_params(
    target: str, revision: str, trigger: str, context: dict[str, str], decision: Decision, status: ReleaseStatus,
    now: datetime,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The first decision's columns but its release id, and the JSON row of
    CREATE_RELEASES_DECIDED_PG (which fills in the id the database gives the new release)."""
    release = ReleaseRecord(0, target, revision, status, trigger, now, now)
    values, recorded = record_decision_params(release, decision, status, trigger, now)
    del recorded["release_id"], recorded["subject"]
    return values, {**release_values(target, revision, trigger, context, status, now), **recorded}


def _is_break_glass(reasons: list[dict[str, Any]]) -> bool:
    return any(reason["code"] == "break_glass" for reason in reasons)


AUDIT_LOCK = 0x6761_7465  # "gate": the one advisory lock that orders audit appends
LOCK_AUDIT = text("SELECT pg_advisory_xact_lock(:key)")
TRY_LOCK_AUDIT = text("SELECT pg_try_advisory_xact_lock(:key)")


def audit_instant(value: datetime) -> str:
    """How an audit instant is hashed: UTC with microseconds (stable across both databases)."""
    moment = _utc(value) or value
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit_row(row: Row[Any]) -> dict[str, Any]:
    """An audit row as the JSON record that ``audit export`` writes and ``audit verify`` reads."""
    m = row._mapping
    return {
        "seq": m["seq"],
        "at": audit_instant(m["at"]),
        "kind": m["kind"],
        "actor": m["actor"],
        "subject": m["subject"],
        "data": m["data"],
        "break_glass": bool(m["break_glass"]),
        "prev_hash": m["prev_hash"],
        "hash": m["hash"],
    }

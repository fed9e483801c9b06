"""What differs between SQLite and PostgreSQL, in one place: engines, upserts, locks.

SQLite serves one replica: every write transaction takes the database's write lock up front
(``BEGIN IMMEDIATE``), so per-target locks and ``SKIP LOCKED`` are no-ops there. PostgreSQL
serialises new releases of one target with a transaction-scoped advisory lock, and the outbox is
claimed with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Select, all_, any_, bindparam, create_engine, event, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url

TARGET_LOCK_CLASS = 0x6761_7465  # "gate"
TARGET_LOCK = text("SELECT pg_advisory_xact_lock(:classid, hashtext(:target))")


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
    # No pre-ping (a round trip per transaction): a connection the database dropped (a restart)
    # fails its first statement, SQLAlchemy then drops the whole pool, and the caller tries once
    # more (ConnectionLostError).
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


def is_postgresql(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def upsert(connection: Connection, table: Any) -> Any:
    """The connection's dialect INSERT, which knows ON CONFLICT."""
    return pg_insert(table) if is_postgresql(connection) else sqlite_insert(table)


def insert_ignore(connection: Connection, table: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING."""
    return upsert(connection, table).on_conflict_do_nothing()


def lock_target(connection: Connection, target: str) -> None:
    """Serialise the creation of releases of one target until the transaction ends."""
    if is_postgresql(connection):
        connection.execute(TARGET_LOCK, {"classid": TARGET_LOCK_CLASS, "target": target})


def one_of(connection: Connection, column: Any, values: list[Any], *, negate: bool = False) -> Any:
    """``column IN (values)`` (``NOT IN`` with ``negate``); on PostgreSQL ``= ANY(array)``, one
    parameter however many values (1,500 placeholders cost more to render and parse than to run)."""
    if not is_postgresql(connection):
        return column.not_in(values) if negate else column.in_(values)
    array = bindparam(None, values, type_=ARRAY(column.type))
    return column != all_(array) if negate else column == any_(array)


def for_update(connection: Connection, query: Select[Any], *, skip_locked: bool = False) -> Select[Any]:
    """``query`` locking its rows (PostgreSQL; SQLite's transaction holds the write lock already)."""
    if not is_postgresql(connection):
        return query
    return query.with_for_update(skip_locked=skip_locked)


def utc(value: datetime | None) -> datetime | None:
    """An instant read back from either database, as an aware UTC datetime."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

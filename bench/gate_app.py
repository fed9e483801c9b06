"""The one-INSERT reference route of bench/gate.py (and bench/webhooks.py), outside the gatekeeper
package and independent of its internals.

``app`` is a FastAPI app of its own, served by uvicorn with as many worker processes as the
gatekeeper it is compared with, on the same database (``GATEKEEPER_DATABASE_URL``):
``POST /bench/insert`` does one INSERT and COMMIT through plain SQLAlchemy in the thread pool
(``engine.begin()``), the one path issue 12 leaves for both databases, with the engine settings
gatekeeper uses (SQLite: WAL, synchronous NORMAL, BEGIN IMMEDIATE; PostgreSQL: a pool of 16 + 16)
and the same thread limit (``GATEKEEPER_THREADS``). ``POST /bench/empty`` does nothing.

bench/webhooks_app.py puts the same baselines on the real app, with the same engine (``make_engine``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy import Column, DateTime, Engine, Integer, MetaData, String, Table, create_engine, event, func, insert

rows = MetaData()
bench_rows = Table(
    "bench_rows",
    rows,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("note", String(64), nullable=False),
    Column("at", DateTime(timezone=True), server_default=func.now()),
)
DEFAULT_THREADS = 4  # gatekeeper's GATEKEEPER_THREADS default


def make_engine(url: str) -> Engine:
    """An engine set up as gatekeeper sets up its own (gatekeeper/store: WAL, BEGIN IMMEDIATE...)."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_size=16, max_overflow=16, pool_timeout=10)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def add_routes(application: FastAPI, database_url: str) -> Engine:
    """``/bench/empty`` and ``/bench/insert`` on ``application``; the engine is the bench's own."""
    engine = make_engine(database_url)
    statement = insert(bench_rows).values(note="bench")

    @application.post("/bench/empty")
    async def empty() -> dict[str, Any]:
        return {}

    @application.post("/bench/insert")
    def insert_route() -> dict[str, Any]:  # a plain def: FastAPI runs it in the thread pool
        with engine.begin() as connection:
            connection.execute(statement)
        return {}

    return engine


def app() -> FastAPI:
    """The reference app (``uvicorn --factory bench.gate_app:app``); bench_rows must exist."""
    url = os.environ["GATEKEEPER_DATABASE_URL"]
    threads = int(os.environ.get("GATEKEEPER_THREADS", DEFAULT_THREADS))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    application = FastAPI(lifespan=lifespan)

    @application.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    add_routes(application, url)
    return application

"""The real app (settings from the environment) plus two bench-only baseline routes, for bench/gate.py:
``/bench/empty`` (does nothing) and ``/bench/insert`` (one INSERT and COMMIT on the same database,
the way the gate reaches it: awaited on the app's async pool on PostgreSQL, SQLAlchemy in the
thread pool on SQLite)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, func, insert
from starlette.concurrency import run_in_threadpool

from gatekeeper.api.app import create_app
from gatekeeper.settings import Settings

rows = MetaData()
bench_rows = Table(
    "bench_rows",
    rows,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("note", String(64), nullable=False),
    Column("at", DateTime(timezone=True), server_default=func.now()),
)


def one_insert(application: FastAPI, *, threaded: bool = False, bare: bool = False) -> Callable[[], Awaitable[None]]:
    """One INSERT and COMMIT on the app's database, through the path its gate calls take: a
    transaction (BEGIN, INSERT, COMMIT), as every run of this bench has measured it
    (``threaded``: SQLAlchemy in the thread pool, whatever the database; ``bare``: PostgreSQL,
    the INSERT alone on the autocommit connection, its own transaction: one round trip)."""
    service = application.state.service
    if service.fast is not None and not threaded:
        pool = service.fast.pool

        async def awaited() -> None:
            async with pool.connection() as connection, connection.transaction():
                await connection.execute("INSERT INTO bench_rows (note) VALUES ('bench')")

        async def autocommit() -> None:
            async with pool.connection() as connection:
                await connection.execute("INSERT INTO bench_rows (note) VALUES ('bench')")

        return autocommit if bare else awaited
    engine = service.store.engine

    def in_thread() -> None:
        with engine.begin() as connection:
            connection.execute(insert(bench_rows).values(note="bench"))

    async def threaded() -> None:
        await run_in_threadpool(in_thread)

    return threaded


def app() -> FastAPI:
    application = create_app(Settings())
    rows.create_all(application.state.service.store.engine)
    insert_one = one_insert(application)

    @application.post("/bench/empty")
    async def empty() -> dict[str, Any]:
        return {}

    @application.post("/bench/insert")
    async def insert_route() -> dict[str, Any]:
        await insert_one()
        return {}

    if application.state.service.fast is not None:
        insert_bare = one_insert(application, bare=True)

        @application.post("/bench/insert-autocommit")
        async def insert_autocommit_route() -> dict[str, Any]:
            await insert_bare()
            return {}

    insert_threaded = one_insert(application, threaded=True)

    @application.post("/bench/insert-threaded")
    async def insert_threaded_route() -> dict[str, Any]:
        await insert_threaded()
        return {}

    return application

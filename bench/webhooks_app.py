"""The real app (settings from the environment) plus bench-only baselines, for bench/webhooks.py:
``/bench/empty`` (reads the body, does nothing) and ``/bench/insert`` (reads the body, one INSERT and
COMMIT on the same database through the bench's own SQLAlchemy engine, as bench/gate_app.py's
reference route does it; nothing here reaches into the service's internals)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import insert
from starlette.concurrency import run_in_threadpool

from bench.gate_app import bench_rows, make_engine
from gatekeeper.api.app import create_app
from gatekeeper.settings import Settings


def app() -> FastAPI:
    settings = Settings()
    application = create_app(settings)
    engine = make_engine(settings.DATABASE_URL)
    statement = insert(bench_rows).values(note="bench")

    def insert_one() -> None:
        with engine.begin() as connection:
            connection.execute(statement)

    @application.post("/bench/empty")
    async def empty(request: Request) -> dict[str, Any]:
        await request.body()  # read the same body the webhook route reads
        return {}

    @application.post("/bench/insert")
    async def insert_route(request: Request) -> dict[str, Any]:
        await request.body()
        await run_in_threadpool(insert_one)
        return {}

    return application

"""The real app (settings from the environment) plus bench-only baselines, for bench/webhooks.py:
``/bench/empty`` (reads the body, does nothing) and ``/bench/insert`` (reads the body, one INSERT and
COMMIT on the same database, in the thread pool as the webhook route's work runs)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from bench.gate_app import bench_rows
from gatekeeper.api.app import create_app
from gatekeeper.settings import Settings


def app() -> FastAPI:
    application = create_app(Settings())

    @application.post("/bench/empty")
    async def empty(request: Request) -> dict[str, Any]:
        await request.body()  # read the same body the webhook route reads
        return {}

    engine = application.state.service.store.engine

    def one_insert() -> None:
        with engine.begin() as connection:
            connection.execute(bench_rows.insert().values(note="bench"))

    @application.post("/bench/insert")
    async def insert(request: Request) -> dict[str, Any]:
        await request.body()
        await run_in_threadpool(one_insert)
        return {}

    return application

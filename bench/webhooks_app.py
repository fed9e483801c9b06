"""The real app (settings from the environment) plus bench-only baselines, for bench/webhooks.py:
``/bench/empty`` (reads the body, does nothing) and ``/bench/insert`` (reads the body, one INSERT and
COMMIT on the same database, the way bench/gate_app.py's baseline does it)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

from bench.gate_app import one_insert
from gatekeeper.api.app import create_app
from gatekeeper.settings import Settings


def app() -> FastAPI:
    application = create_app(Settings())

    @application.post("/bench/empty")
    async def empty(request: Request) -> dict[str, Any]:
        await request.body()  # read the same body the webhook route reads
        return {}

    insert_one = one_insert(application)

    @application.post("/bench/insert")
    async def insert(request: Request) -> dict[str, Any]:
        await request.body()
        await insert_one()
        return {}

    return application

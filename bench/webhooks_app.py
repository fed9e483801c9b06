"""The real app (settings from the environment) plus a bench-only empty route, for bench/webhooks.py."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

from gatekeeper.api.app import create_app
from gatekeeper.settings import Settings


def app() -> FastAPI:
    application = create_app(Settings())

    @application.post("/bench/empty")
    async def empty(request: Request) -> dict[str, Any]:
        await request.body()  # read the same body the webhook route reads
        return {}

    return application

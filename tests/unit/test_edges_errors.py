"""A 503 of the store never carries the database driver's words (DESIGN §4 "Limits")."""

from __future__ import annotations

import anyio
import httpx
import pytest
from fastapi import FastAPI

from gatekeeper.api import errors
from gatekeeper.store import NotMigratedError, StoreError


def answer_to(exc: Exception) -> tuple[int, dict[str, object]]:
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    def boom() -> None:
        raise exc

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gatekeeper") as client:
            return await client.get("/boom")

    response = anyio.run(call)
    return response.status_code, response.json()


def test_a_store_error_answers_503_without_the_driver_text() -> None:
    status, body = answer_to(StoreError("database error: PostgreSQL text fields cannot contain NUL (0x00) bytes"))
    assert status == 503
    assert body == {"error": "database_unavailable", "message": errors.STORE_MESSAGE, "field": None}


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(NotMigratedError("database schema is at 0003 but gatekeeper needs 0004: run it"), id="migration"),
        pytest.param(StoreError("database busy: a lock was held longer than 5 s"), id="lock-timeout"),
    ],
)
def test_gatekeepers_own_store_messages_are_kept(exc: StoreError) -> None:
    status, body = answer_to(exc)
    assert status == 503
    assert body["message"] == str(exc)

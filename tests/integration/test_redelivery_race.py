"""100 concurrent redeliveries of one delivery id: one release and one decision (PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from gatekeeper.store.tables import decisions, deliveries, releases
from tests.integration import payloads as p
from tests.integration.conftest import MutableClock, Server, make_settings, start_server, token_of
from tests.integration.test_gate_api import OPEN

SECRET = "race-secret"


@pytest.fixture
def pg_url(pg_schema_url: Callable[[], str]) -> str:
    return pg_schema_url()


@pytest.fixture
def hooks(pg_url: str, config_tree: tuple[Path, Path], tokens_file: Path) -> Iterator[Server]:
    running = start_server(make_settings(pg_url, *config_tree, tokens_file, GITHUB_SECRET=SECRET), MutableClock(OPEN))
    yield running
    running.stop()


def test_concurrent_redeliveries_decide_once(hooks: Server, pg_url: str) -> None:
    body = p.encode(p.github_push())
    headers = p.github_headers(SECRET, "push", body, delivery="race-1")

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=hooks.url, timeout=30, limits=limits) as client:
            return await asyncio.gather(
                *(client.post("/webhooks/github", content=body, headers=headers) for _ in range(100))
            )

    responses = asyncio.run(burst())
    assert {response.status_code for response in responses} == {200}
    assert len({response.text for response in responses}) == 1
    engine = create_engine(pg_url)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(releases)).scalar_one() == 1
        assert connection.execute(select(func.count()).select_from(decisions)).scalar_one() == 1
        assert connection.execute(select(func.count()).select_from(deliveries)).scalar_one() == 1
    engine.dispose()


@pytest.fixture
def gates(pg_url: str, config_tree: tuple[Path, Path], tokens_file: Path) -> Iterator[Server]:
    running = start_server(make_settings(pg_url, *config_tree, tokens_file), MutableClock(OPEN))
    yield running
    running.stop()


def test_concurrent_new_revisions_of_one_target_leave_one_open_release(gates: Server, pg_url: str) -> None:
    """40 gate calls at once, each a new revision of one target (the async PostgreSQL path): each
    supersedes the others it can see, and the per-target lock makes sure it sees every committed
    one, so exactly one release stays open."""

    async def burst() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {token_of('hook')}"}
        async with httpx.AsyncClient(base_url=gates.url, timeout=30, headers=headers) as client:
            return await asyncio.gather(
                *(
                    client.post("/v1/gate", json={"target": "argocd:odoo-prod", "revision": f"r{n}"})
                    for n in range(40)
                )
            )

    responses = asyncio.run(burst())
    assert {response.status_code for response in responses} == {200}
    engine = create_engine(pg_url)
    with engine.connect() as connection:
        statuses = [row.status for row in connection.execute(select(releases.c.status))]
        assert connection.execute(select(func.count()).select_from(decisions)).scalar_one() == 40
    engine.dispose()
    assert len(statuses) == 40
    assert sum(status != "superseded" for status in statuses) == 1, statuses

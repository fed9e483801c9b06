"""100 concurrent redeliveries of one delivery id: one release and one decision (PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, func, select, text

from gatekeeper.store.audit import AUDIT_LOCK
from gatekeeper.store.tables import decisions, deliveries, releases
from tests.integration import payloads as p
from tests.integration.conftest import MutableClock, Server, make_settings, start_server, token_of
from tests.integration.test_gate_api import OPEN

SECRET = "race-secret"
# Audit records stored, chained or still pending.
AUDITED = text("SELECT (SELECT count(*) FROM audit) + (SELECT count(*) FROM audit_pending)")


@pytest.fixture
def pg_url(pg_schema_url: Callable[[], str]) -> str:
    return pg_schema_url()


@pytest.fixture
def db(pg_url: str) -> Iterator[Engine]:
    """An engine on the test's schema, disposed even when an assertion fails (a leaked connection
    would fail a later test with a ResourceWarning)."""
    engine = create_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def hooks(pg_url: str, config_tree: tuple[Path, Path], tokens_file: Path) -> Iterator[Server]:
    running = start_server(make_settings(pg_url, *config_tree, tokens_file, GITHUB_SECRET=SECRET), MutableClock(OPEN))
    yield running
    running.stop()


def test_concurrent_redeliveries_decide_once(hooks: Server, db: Engine) -> None:
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
    with db.connect() as connection:
        assert connection.execute(select(func.count()).select_from(releases)).scalar_one() == 1
        assert connection.execute(select(func.count()).select_from(decisions)).scalar_one() == 1
        assert connection.execute(select(func.count()).select_from(deliveries)).scalar_one() == 1


@pytest.fixture
def gates(pg_url: str, config_tree: tuple[Path, Path], tokens_file: Path) -> Iterator[Server]:
    running = start_server(make_settings(pg_url, *config_tree, tokens_file), MutableClock(OPEN))
    yield running
    running.stop()


def test_concurrent_new_revisions_of_one_target_leave_one_open_release(gates: Server, db: Engine) -> None:
    """40 gate calls at once, each a new revision of one target (the async PostgreSQL path): each
    supersedes the others it can see, and the per-target lock makes sure it sees every committed
    one, so exactly one release stays open."""

    async def burst() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {token_of('hook')}"}
        async with httpx.AsyncClient(base_url=gates.url, timeout=30, headers=headers) as client:
            return await asyncio.gather(
                *(client.post("/v1/gate", json={"target": "argocd:odoo-prod", "revision": f"r{n}"}) for n in range(40))
            )

    responses = asyncio.run(burst())
    assert {response.status_code for response in responses} == {200}
    with db.connect() as connection:
        statuses = [row.status for row in connection.execute(select(releases.c.status))]
        assert connection.execute(select(func.count()).select_from(decisions)).scalar_one() == 40
    assert len(statuses) == 40
    assert sum(status != "superseded" for status in statuses) == 1, statuses


def test_concurrent_first_calls_of_one_revision_create_one_release(gates: Server, db: Engine) -> None:
    """30 hook calls at once for a revision nobody has asked about yet (several Argo CD
    applications sharing a PreSync check, a retried hook): one release, created once; every other
    call decides it again, finds the same answer, and is answered with the one stored decision."""
    body = {"target": "argocd:odoo-prod", "revision": "fresh"}

    async def burst() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {token_of('hook')}"}
        async with httpx.AsyncClient(base_url=gates.url, timeout=30, headers=headers) as client:
            return await asyncio.gather(*(client.post("/v1/gate", json=body) for _ in range(30)))

    responses = asyncio.run(burst())
    assert {response.status_code for response in responses} == {200}
    assert len({response.json()["release_id"] for response in responses}) == 1
    with db.connect() as connection:
        assert connection.execute(select(func.count()).select_from(releases)).scalar_one() == 1
        assert connection.execute(select(func.count()).select_from(decisions)).scalar_one() == 1
        assert connection.execute(AUDITED).scalar_one() == 1
    assert len({response.json()["decided_at"] for response in responses}) == 1  # the one stored


def test_gate_and_webhooks_survive_a_database_restart(
    pg_url: str, db: Engine, config_tree: tuple[Path, Path], tokens_file: Path
) -> None:
    """Every pooled connection of the server killed (what a PostgreSQL restart does): the next gate
    call and the next webhook still answer 200, on fresh connections, and a redelivery still finds
    its stored answer."""
    with db.connect() as connection:
        started = connection.execute(text("SELECT clock_timestamp()")).scalar_one()
    running = start_server(make_settings(pg_url, *config_tree, tokens_file, GITHUB_SECRET=SECRET), MutableClock(OPEN))
    body = p.encode(p.github_push())
    headers = p.github_headers(SECRET, "push", body, delivery="restart-1")
    try:
        with running.client("hook") as client:
            assert client.post("/v1/gate", json={"target": "argocd:odoo-prod", "revision": "r1"}).status_code == 200
            first = client.post("/webhooks/github", content=body, headers=headers)
            assert first.status_code == 200
            with db.connect() as connection:
                killed = connection.execute(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname ="
                        " current_database() AND backend_start > :started AND pid <> pg_backend_pid()"
                    ),
                    {"started": started},
                ).scalar_one()
            assert killed >= 1
            gated = client.post("/v1/gate", json={"target": "argocd:odoo-prod", "revision": "r2"})
            assert gated.status_code == 200, gated.text
            again = client.post("/webhooks/github", content=body, headers=headers)
            assert again.status_code == 200, again.text
            assert again.json() == first.json()
    finally:
        running.stop()


def test_an_approval_racing_gate_calls_is_never_overwritten_by_a_stale_decision(gates: Server, db: Engine) -> None:
    """Gate calls re-decide without a lock and store their decision only if the release did not
    change since they read it. An approval given while 30 gate calls for the release are in flight
    must not be followed by a decision that did not see it: afterwards the release is approved,
    and so is every decision stored after the approval's."""
    hook = {"Authorization": f"Bearer {token_of('hook')}"}
    manager = {"Authorization": f"Bearer {token_of('manager')}"}

    async def race(revision: str) -> int:
        async with httpx.AsyncClient(base_url=gates.url, timeout=30) as client:
            body = {"target": "argocd:odoo-wms", "revision": revision}
            first = await client.post("/v1/gate", json=body, headers=hook)
            assert first.json()["verdict"] == "defer"
            release_id = int(first.json()["release_id"])
            calls = [client.post("/v1/gate", json=body, headers=hook) for _ in range(30)]
            calls.insert(10, client.post(f"/v1/releases/{release_id}/approve", json={}, headers=manager))
            answers = await asyncio.gather(*calls)
            assert {answer.status_code for answer in answers} == {200}
            return release_id

    for attempt in range(4):
        release_id = asyncio.run(race(f"wms-{attempt}"))
        with db.connect() as connection:
            status = connection.execute(select(releases.c.status).where(releases.c.id == release_id)).scalar_one()
            verdicts = [
                (row.trigger, row.verdict)
                for row in connection.execute(
                    select(decisions.c.trigger, decisions.c.verdict)
                    .where(decisions.c.release_id == release_id)
                    .order_by(decisions.c.id)
                )
            ]
        assert status == "approved", verdicts
        after = verdicts[[trigger for trigger, _ in verdicts].index("approval:alice") :]
        assert {verdict for _, verdict in after} == {"approve"}, after


def test_concurrent_gate_calls_each_store_their_decision(gates: Server, db: Engine) -> None:
    """80 re-decides of 8 open releases at once, each finding its release's answer unchanged: no
    call stores a decision beyond the 8 first ones (each audited), and every call is answered with
    its own release's decision."""
    hook = {"Authorization": f"Bearer {token_of('hook')}"}
    bodies = [{"target": f"argocd:odoo-batch-{n}", "revision": "r1"} for n in range(8)]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gates.url, timeout=30, headers=hook) as client:
            for body in bodies:  # create the releases one by one
                assert (await client.post("/v1/gate", json=body)).status_code == 200
            return await asyncio.gather(*(client.post("/v1/gate", json=bodies[n % 8]) for n in range(80)))

    responses = asyncio.run(burst())
    assert {response.status_code for response in responses} == {200}
    with db.connect() as connection:
        assert connection.execute(select(func.count()).select_from(decisions)).scalar_one() == 8
        assert connection.execute(AUDITED).scalar_one() == 8
        # would_defer is SQL NULL when there is none, not JSON null.
        shapes = text(
            "SELECT json_typeof(reasons), would_defer IS NULL, json_typeof(would_defer), count(*)"
            " FROM decisions GROUP BY 1, 2, 3"
        )
        assert {tuple(row) for row in connection.execute(shapes)} == {("array", True, None, 8)}
        ids = [response.json()["release_id"] for response in responses]
        assert len(set(ids)) == 8
        assert len({(r.json()["release_id"], r.json()["decided_at"]) for r in responses}) == 8


def test_concurrent_new_releases_of_many_targets_leave_one_open_release_each(gates: Server, db: Engine) -> None:
    """60 first gate calls at once: 12 targets, 5 new revisions each. New releases of one target
    are created one at a time (the per-target lock): every target ends with exactly one open
    release, every call stored one decision and one audit record."""
    hook = {"Authorization": f"Bearer {token_of('hook')}"}
    bodies = [{"target": f"argocd:odoo-new-{n % 12}", "revision": f"r{n // 12}"} for n in range(60)]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gates.url, timeout=30, headers=hook) as client:
            return await asyncio.gather(*(client.post("/v1/gate", json=body) for body in bodies))

    responses = asyncio.run(burst())
    assert {response.status_code for response in responses} == {200}
    with db.connect() as connection:
        open_per_target = text(
            "SELECT target, count(*) FILTER (WHERE status <> 'superseded'), count(*) FROM releases GROUP BY target"
        )
        assert {tuple(row) for row in connection.execute(open_per_target)} == {
            (f"argocd:odoo-new-{n}", 1, 5) for n in range(12)
        }
        assert connection.execute(select(func.count()).select_from(decisions)).scalar_one() == 60
        assert connection.execute(AUDITED).scalar_one() == 60
        # Each record names its own release. Chained and pending records are counted in one
        # statement: the chainer moves records between the two tables while the test reads.
        subjects = text(
            "SELECT count(*) FROM (SELECT subject, data FROM audit UNION ALL SELECT subject, data FROM audit_pending)"
            " AS record JOIN releases ON record.subject = 'release/' || releases.id"
            " WHERE record.data ->> 'revision' = releases.revision"
        )
        assert connection.execute(subjects).scalar_one() == 60


def test_the_periodic_chainer_leaves_the_records_to_whoever_holds_the_chain_lock(gates: Server, db: Engine) -> None:
    """With several server processes, one chains and the others skip (they do not queue on the lock)."""
    store = gates.app.state.service.store
    with db.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": AUDIT_LOCK})  # another chainer at work
        with gates.client("hook") as client:
            for revision in ("c1", "c2", "c3"):
                assert client.post("/v1/gate", json={"target": "argocd:odoo-prod", "revision": revision}).status_code == 200
        started = time.monotonic()
        assert store.chain_audit(wait=False) == 0
        assert time.monotonic() - started < 1  # did not wait for the lock
        with db.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM audit_pending")).scalar_one() == 3
        holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": AUDIT_LOCK})
        holder.commit()
    store.chain_audit()  # waits for the lock, chains what is left
    with db.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM audit_pending")).scalar_one() == 0
        assert connection.execute(text("SELECT count(*) FROM audit")).scalar_one() == 3

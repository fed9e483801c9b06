"""The foundation through the served app: facts outside the lock, the outbox, the scheduler.

Real uvicorn, real SQLite and PostgreSQL, a wire-level fake GitHub on loopback; for the lease,
two real ``gatekeeper serve`` processes on one PostgreSQL, one of them killed with SIGKILL.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from gatekeeper.domain.policy import Policy
from gatekeeper.domain.types import ReleaseRequest
from tests.integration import payloads as p
from tests.integration.conftest import (
    MutableClock,
    eventually,
    make_settings,
    serve_process,
    start_server,
    token_of,
)
from tests.integration.fakes import GITHUB_TOKEN, FakeApi, start_fake
from tests.integration.test_gate_api import CUTOFF, OPEN
from tests.integration.test_webhooks import GITHUB_SECRET, github, hook_settings

GATEKEEPER = str(Path(sys.executable).with_name("gatekeeper"))


@dataclass
class BlockingReader:
    """A fact source (the FactReader port) that blocks while ``armed`` until ``release`` is set."""

    name: str = "cluster"
    armed: bool = False
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def read(self, request: ReleaseRequest, policies: Sequence[Policy], now: datetime) -> object:
        if self.armed and request.revision == "hang":
            self.entered.set()
            self.release.wait(30)
        return {}


def test_a_hanging_fact_source_holds_no_database_lock(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path
) -> None:
    """While a gate call waits on a fact source, an approval of the same release completes in under
    a second; the waiting call ends with a fail-closed deferral at its timeout (FACT_TIMEOUT)."""
    reader = BlockingReader()
    settings = make_settings(database_url, *config_tree, tokens_file, FACT_TIMEOUT="3s")
    server = start_server(settings, MutableClock(OPEN), readers=[reader])
    try:
        body = {"target": "argocd:odoo-wms", "revision": "hang"}
        with server.client("hook") as hook:
            first = hook.post("/v1/gate", json=body).json()
        assert [r["code"] for r in first["reasons"]] == ["approval_missing"]
        reader.armed = True
        answers: list[httpx.Response] = []

        def waiting_call() -> None:
            with server.client("hook") as client:
                answers.append(client.post("/v1/gate", json=body))

        started = time.monotonic()
        caller = threading.Thread(target=waiting_call)
        caller.start()
        assert reader.entered.wait(10)
        reader.armed = False  # the approval's own gathering passes
        before = time.monotonic()
        with server.client("manager") as manager:
            approved = manager.post(f"/v1/releases/{first['release_id']}/approve", json={})
        took = time.monotonic() - before
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "approved"
        print(f"approval while a gate call waited on its facts: {took * 1000:.0f} ms")
        assert took < 1.0
        caller.join(20)
        waited = time.monotonic() - started
        reader.release.set()
        decision = answers[0].json()
        assert answers[0].status_code == 200
        assert decision["verdict"] == "defer"
        assert [r["code"] for r in decision["reasons"]] == ["facts_unavailable"]
        assert "within 3s" in decision["reasons"][0]["message"]
        assert 2.9 < waited < 15, waited
    finally:
        reader.release.set()
        server.stop()


@pytest.fixture
def fakes() -> Iterator[tuple[FakeApi, FakeApi]]:
    github_api, gitlab_api = start_fake("github"), start_fake("gitlab")
    yield github_api, gitlab_api
    github_api.stop()
    gitlab_api.stop()


def test_a_deployment_review_whose_post_fails_twice_is_answered_later_once(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path, fakes: tuple[FakeApi, FakeApi]
) -> None:
    api = fakes[0]
    api.fail_next = 2
    settings = hook_settings(database_url, config_tree, tokens_file, fakes, ACTION_RETRY="1s", SCHEDULER_INTERVAL=0.1)
    server = start_server(settings, MutableClock(OPEN))
    try:
        callback = f"{api.url}/repos/acme/odoo-config/actions/runs/91/deployment_protection_rule"
        answer = github(server, "deployment_protection_rule", p.github_protection_rule(callback), delivery="dpr-91")
        assert answer.status_code == 200, answer.text
        assert answer.json()["decision"]["verdict"] == "approve"
        def attempts() -> int:
            with server.client("viewer") as client:
                items = client.get("/v1/actions").json()["items"]
            return int(items[0]["attempts"]) if items and items[0]["status"] == "pending" else -1

        # The clock stands still: once each failure is recorded, move it past the backoff (1 s,
        # then 2 s), as time would.
        eventually(lambda: attempts() == 1)
        server.clock.set(server.clock() + timedelta(seconds=1))
        eventually(lambda: attempts() == 2)
        server.clock.set(server.clock() + timedelta(seconds=2))
        eventually(lambda: len(api.requests) == 1)
        time.sleep(1.0)
        assert len(api.failed) == 2 and len(api.requests) == 1  # answered on the third try, once
        assert api.requests[0].body["state"] == "approved"
        with server.client("viewer") as client:
            (action,) = client.get("/v1/actions").json()["items"]
        assert (action["kind"], action["status"], action["attempts"]) == ("deployment_review", "done", 3)
    finally:
        server.stop()


def serve(url: str, config_tree: tuple[Path, Path], tokens_file: Path, api: FakeApi, **extra: str) -> tuple[str, subprocess.Popen[bytes]]:
    """A replica whose commit statuses go to the fake GitHub ``api``."""
    to_fake = {"GITHUB_SECRET": GITHUB_SECRET, "GITHUB_API_TOKEN": GITHUB_TOKEN, "GITHUB_API_URL": api.url}
    return serve_process(url, *config_tree, tokens_file, SCHEDULER_INTERVAL="0.2", **to_fake, **extra)


def push(base: str, sha: str) -> None:
    body = p.encode(p.github_push(sha=sha))
    response = httpx.post(f"{base}/webhooks/github", content=body, headers=p.github_headers(GITHUB_SECRET, "push", body))
    assert response.status_code == 200, response.text


def statuses(api: FakeApi) -> Counter[str]:
    return Counter(request.path.rsplit("/", 1)[-1] for request in api.requests if "/statuses/" in request.path)


@pytest.mark.parametrize("kill", [False, True], ids=["both-live", "one-killed"])
def test_two_replicas_post_every_commit_status_once(
    pg_schema_url: object, config_tree: tuple[Path, Path], tokens_file: Path, fakes: tuple[FakeApi, FakeApi], kill: bool
) -> None:
    """500 releases, each decision enqueuing a commit status, two `gatekeeper serve` processes on
    one PostgreSQL: every status posted, none twice. With one process SIGKILLed halfway through,
    every status is still posted; the repeats its expired leases allow are counted and printed,
    and they post the same status again (no change at the fake)."""
    api = fakes[0]
    api.delay = 0.01
    url = pg_schema_url()  # type: ignore[operator]
    first, a = serve(url, config_tree, tokens_file, api, AUTO_MIGRATE="true", ACTION_LEASE="3s")
    second, b = serve(url, config_tree, tokens_file, api, ACTION_LEASE="3s")
    shas = [f"{n:040x}" for n in range(1, 501)]
    try:
        with ThreadPoolExecutor(8) as senders:  # webhooks arrive concurrently, as GitHub sends them
            list(senders.map(lambda n: push(first if n % 2 else second, shas[n]), range(250)))
            if kill:
                a.send_signal(signal.SIGKILL)
                a.wait(10)
                first = second
            list(senders.map(lambda n: push(first if n % 2 else second, shas[n]), range(250, 500)))
        eventually(lambda: set(statuses(api)) == set(shas), timeout=120)
        time.sleep(3.5)  # longer than a lease: any late repeat would show now
        posted = statuses(api)
        repeats = sum(count - 1 for count in posted.values())
        print(f"\\n{'one replica killed' if kill else 'both replicas live'}: {len(posted)} statuses posted, "
              f"{repeats} repeats after expired leases")
        assert set(posted) == set(shas)
        if not kill:
            assert repeats == 0, [sha for sha, count in posted.items() if count > 1]
        by_sha: dict[str, set[str]] = {}
        for request in api.requests:
            by_sha.setdefault(request.path.rsplit("/", 1)[-1], set()).add(request.body["state"])
        assert all(len(states) == 1 for states in by_sha.values())  # a repeat posts the same status
        assert api.errors == []
    finally:
        for process in (a, b):
            if process.poll() is None:
                process.terminate()
                process.wait(15)


__all__ = ["CUTOFF", "token_of"]


def test_gitlab_refusing_a_status_it_already_has_counts_as_done() -> None:
    """GitLab answers 400 to pending -> pending ("Cannot transition status via :enqueue from
    :pending"), which gatekeeper sends when only the description changed: the status is there."""
    from gatekeeper.actions.commit_status import CommitStatusHandler
    from gatekeeper.domain.records import ActionRecord
    from gatekeeper.notifiers.gitlab import GitLabNotifier
    from tests.integration.fakes import GITLAB_TOKEN

    api = start_fake("gitlab")
    try:
        handler = CommitStatusHandler({"gitlab": GitLabNotifier(f"{api.url}/api/v4", GITLAB_TOKEN)})
        now = datetime(2026, 11, 24, 9, 0, tzinfo=__import__("datetime").UTC)

        def action(description: str) -> ActionRecord:
            payload = {
                "source": "gitlab", "repo": "acme/odoo-config", "sha": p.SHA_A, "verdict": "defer",
                "description": description, "link": "https://gatekeeper.acme.io/#release-1",
            }
            return ActionRecord(1, "commit_status", 1, "s", "k", payload, "", "running", 0, now, None, None, None,
                                None, now, now)

        assert "pending" in handler.run(action("gatekeeper: deferred (dispatch_cutoff)"), None)
        done = handler.run(action("gatekeeper: deferred (month_end_close)"), None)
        assert "already pending" in done
        assert len(api.refused) == 1 and len(api.requests) == 1
    finally:
        api.stop()

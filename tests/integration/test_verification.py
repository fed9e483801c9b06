"""Post-release verification through the real server (DESIGN §2, §3 Rollback): an approved release
that Argo CD reports applied becomes ``verified`` once its policy's ``verification.period`` has
passed with no unhealthy report; one that turns unhealthy within the period is rolled back (the
fake Argo CD's rollback API, to the last verified revision) and reads ``rolled_back``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration import payloads as p
from tests.integration.conftest import MutableClock, Server, eventually, make_settings, start_server
from tests.integration.fake_argocd import ARGOCD_TOKEN, FakeArgoCd, start_fake_argocd
from tests.integration.test_gate_api import OPEN
from tests.integration.test_webhooks import ARGOCD_SECRET

VERIFY = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: odoo-verification}
spec:
  targets: ["argocd:odoo-prod*"]
  verification: {period: 15m, rollbackOnUnhealthy: true}
"""
TARGET = "argocd:odoo-prod"


@pytest.fixture
def argocd() -> Iterator[FakeArgoCd]:
    fake = start_fake_argocd()
    yield fake
    fake.stop()


def start(database_url: str, config_tree: tuple[Path, Path], tokens_file: Path, **extra: object) -> Server:
    policies, calendars = config_tree
    (policies / "verification.yaml").write_text(VERIFY)
    settings = make_settings(
        database_url, policies, calendars, tokens_file, ARGOCD_TOKEN=ARGOCD_SECRET, SCHEDULER_INTERVAL=0.1, **extra
    )
    return start_server(settings, MutableClock(OPEN))


def notify(server: Server, event: str, revision: str) -> dict[str, Any]:
    body = p.encode(p.argocd_event(event, revision=revision, app="odoo-prod"))
    answer = httpx.post(f"{server.url}/webhooks/argocd", content=body, headers=p.argocd_headers(ARGOCD_SECRET))
    assert answer.status_code == 200, answer.text
    decided: dict[str, Any] = answer.json()
    return decided


def approve_and_apply(server: Server, revision: str) -> int:
    with server.client("hook") as hook:
        gate = hook.post("/v1/gate", json={"target": TARGET, "revision": revision}).json()
    assert gate["verdict"] == "approve", gate
    applied = notify(server, "sync-succeeded", revision)
    assert applied["decision"]["status"] == "applied"
    release_id: int = applied["release_id"]
    return release_id


def status(server: Server, release_id: int) -> str:
    with server.client("viewer") as viewer:
        return str(viewer.get(f"/v1/releases/{release_id}").json()["status"])


def audit(server: Server, kind: str) -> list[dict[str, Any]]:
    with server.client("viewer") as viewer:
        items = viewer.get("/v1/audit").json()["items"]
    return [record for record in items if record["kind"] == kind]


def test_an_applied_release_healthy_through_its_period_becomes_verified(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path
) -> None:
    server = start(database_url, config_tree, tokens_file)
    try:
        release_id = approve_and_apply(server, p.SHA_A)
        server.clock.set(OPEN + timedelta(minutes=14))
        time.sleep(0.5)  # several rounds of the deferrals loop: the period has not ended
        assert status(server, release_id) == "applied"
        server.clock.set(OPEN + timedelta(minutes=15, seconds=1))
        eventually(lambda: status(server, release_id) == "verified")
        (verified,) = audit(server, "verified")
        assert verified["subject"] == f"release/{release_id}"
        assert verified["data"]["revision"] == p.SHA_A
        # After verified the period rule is over: an unhealthy report rolls nothing back.
        later = notify(server, "health-degraded", p.SHA_A)
        assert later["decision"]["verdict"] == "approve"
        time.sleep(0.5)
        assert status(server, release_id) == "verified"
        assert len(audit(server, "verified")) == 1  # every round after found nothing to do
    finally:
        server.stop()


def test_a_release_unhealthy_within_its_period_is_rolled_back_to_the_last_verified_revision(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path, argocd: FakeArgoCd
) -> None:
    """SHA_A is verified; SHA_B, applied after it, turns unhealthy five minutes later: a rollback
    decision, Argo CD's rollback API to SHA_A's history entry (auto-sync is off), once, and SHA_B
    reads rolled_back, never verified even after its period."""
    argocd.add("odoo-prod", p.SHA_B, history=(p.SHA_A,))
    server = start(database_url, config_tree, tokens_file, ARGOCD_SERVER=argocd.url, ARGOCD_API_TOKEN=ARGOCD_TOKEN)
    try:
        good = approve_and_apply(server, p.SHA_A)
        server.clock.set(OPEN + timedelta(minutes=16))
        eventually(lambda: status(server, good) == "verified")
        bad = approve_and_apply(server, p.SHA_B)
        server.clock.set(OPEN + timedelta(minutes=21))
        answer = notify(server, "health-degraded", p.SHA_B)
        assert answer["release_id"] == bad
        assert answer["decision"]["verdict"] == "rollback"
        assert [reason["code"] for reason in answer["decision"]["reasons"]] == ["unhealthy"]
        eventually(lambda: status(server, bad) == "rolled_back")
        server.clock.set(OPEN + timedelta(minutes=40))  # past SHA_B's period too
        time.sleep(0.5)
        assert (status(server, good), status(server, bad)) == ("verified", "rolled_back")
        assert [record["subject"] for record in audit(server, "verified")] == [f"release/{good}"]
        (rollback,) = audit(server, "rollback")
        assert rollback["subject"] == f"release/{bad}" and rollback["data"]["how"] == "argocd_rollback"
        with server.client("viewer") as viewer:
            actions = viewer.get("/v1/actions", params={"release": bad}).json()["items"]
        assert [(a["kind"], a["status"]) for a in actions] == [("rollback", "done")]
    finally:
        server.stop()
    (post,) = argocd.posts("/rollback")
    assert post.body == {"name": "odoo-prod", "id": 1, "prune": False, "dryRun": False}
    assert argocd.apps["odoo-prod"]["status"]["sync"]["revision"] == p.SHA_A

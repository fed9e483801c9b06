"""Argo CD "apps in any namespace": an Application outside the control plane's namespace is the
target ``argocd:<namespace>/<name>`` (from the notification's ``appNamespace``), and gatekeeper
asks Argo CD's API for it with ``appNamespace`` where the API reads it (the GET's query, the
sync and rollback bodies). The loopback fake Argo CD finds the application only so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gatekeeper.actuators.argocd import ArgoCdActuator
from tests.integration import payloads as p
from tests.integration.conftest import MutableClock, Server, eventually, make_settings, start_server
from tests.integration.fake_argocd import ARGOCD_TOKEN, FakeArgoCd, start_fake_argocd
from tests.integration.test_gate_api import CUTOFF, OPEN
from tests.integration.test_webhooks import ARGOCD_SECRET

OLD, NEW = "a" * 40, "b" * 40
TEAM_POLICY = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: team-a}
spec:
  targets: ["argocd:team-a/*"]
  timezone: Europe/Berlin
  calendar:
    deny:
      - {cron: "0 14 * * 1-5", duration: 2h, code: dispatch_cutoff}
"""


@pytest.fixture
def argocd() -> Iterator[FakeArgoCd]:
    fake = start_fake_argocd()
    yield fake
    fake.stop()


def query(path: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(path).query)


def test_an_application_in_another_namespace_is_asked_for_with_app_namespace(argocd: FakeArgoCd) -> None:
    argocd.add("odoo", OLD, namespace="team-a")
    actuator = ArgoCdActuator(argocd.url, ARGOCD_TOKEN, control_namespace="argocd")
    try:
        assert actuator.sync("team-a/odoo", NEW).changed
    finally:
        actuator.close()
    get, post = argocd.requests[0], argocd.posts("/sync")[0]
    assert get.method == "GET" and urlsplit(get.path).path == "/api/v1/applications/odoo"
    assert query(get.path) == {"appNamespace": ["team-a"]}
    assert post.path == "/api/v1/applications/odoo/sync"  # the sync route reads its body, no query
    assert post.body == {"name": "odoo", "revision": NEW, "prune": False, "dryRun": False, "appNamespace": "team-a"}
    assert argocd.syncs == {("odoo", NEW): 1} and argocd.errors == []


def test_an_application_in_the_control_plane_namespace_is_asked_for_by_name_alone(argocd: FakeArgoCd) -> None:
    argocd.add("odoo-prod", OLD)
    actuator = ArgoCdActuator(argocd.url, ARGOCD_TOKEN, control_namespace="argocd")
    try:
        assert actuator.sync("argocd/odoo-prod", NEW).changed  # its namespace named: the same application
        assert not actuator.sync("odoo-prod", NEW).changed
    finally:
        actuator.close()
    assert all("appNamespace" not in query(r.path) for r in argocd.requests)
    assert all("appNamespace" not in (r.body or {}) for r in argocd.posts("/sync"))


def test_without_app_namespace_an_application_elsewhere_is_not_found(argocd: FakeArgoCd) -> None:
    """The fake answers as Argo CD does: the control plane's namespace has no such application."""
    argocd.add("odoo", OLD, namespace="team-a")
    answer = httpx.get(f"{argocd.url}/api/v1/applications/odoo", headers={"Authorization": f"Bearer {ARGOCD_TOKEN}"})
    assert answer.status_code == 404


def notify(server: Server, event: str, revision: str) -> dict[str, Any]:
    payload = p.argocd_event(event, revision=revision, app="odoo") | {"appNamespace": "team-a"}
    answer = httpx.post(f"{server.url}/webhooks/argocd", content=p.encode(payload), headers=p.argocd_headers(ARGOCD_SECRET))
    assert answer.status_code == 200, answer.text
    decided: dict[str, Any] = answer.json()
    return decided


def test_a_freeze_time_sync_of_an_application_in_another_namespace_is_rolled_back_there(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path, argocd: FakeArgoCd
) -> None:
    (config_tree[0] / "team-a.yaml").write_text(TEAM_POLICY)
    argocd.add("odoo", p.SHA_B, history=(p.SHA_A,), namespace="team-a")
    settings = make_settings(
        database_url, *config_tree, tokens_file, ARGOCD_TOKEN=ARGOCD_SECRET,
        ARGOCD_SERVER=argocd.url, ARGOCD_API_TOKEN=ARGOCD_TOKEN, SCHEDULER_INTERVAL=0.1,
    )  # fmt: skip
    server = start_server(settings, MutableClock(OPEN))
    try:
        with server.client("hook") as hook:
            gated = hook.post("/v1/gate", json={"target": "argocd:team-a/odoo", "revision": p.SHA_A}).json()
        assert gated["verdict"] == "approve", gated
        assert notify(server, "sync-succeeded", p.SHA_A)["release_id"] == gated["release_id"]
        server.clock.set(CUTOFF)
        answer = notify(server, "sync-succeeded", p.SHA_B)
        assert answer["decision"]["verdict"] == "rollback"

        def status() -> str:
            with server.client("viewer") as viewer:
                return str(viewer.get(f"/v1/releases/{answer['release_id']}").json()["status"])

        eventually(lambda: status() == "rolled_back")
        with server.client("viewer") as viewer:
            target = viewer.get(f"/v1/releases/{answer['release_id']}").json()["target"]
        assert target == "argocd:team-a/odoo"
    finally:
        server.stop()
    (post,) = argocd.posts("/rollback")
    assert post.path == "/api/v1/applications/odoo/rollback"
    assert post.body == {"name": "odoo", "id": 1, "prune": False, "dryRun": False, "appNamespace": "team-a"}
    assert argocd.rollbacks == {("odoo", 1): 1}

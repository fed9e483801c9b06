"""A governed Flux Kustomization follows its gate when a window closes or opens with no new
release: suspended at the dispatch cut-off (14:00-16:00 Berlin) or a freeze, resumed with a
reconcile request when it ends (with FLUX_GATE). The real kubernetes client against the loopback
fake Kubernetes API, which records every patch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration import payloads as p
from tests.integration.conftest import MutableClock, Server, eventually, make_settings, start_server
from tests.integration.fake_kubernetes import FakeKubernetes, start_fake_kubernetes, write_kubeconfig
from tests.integration.test_flux_actuator import PATH, kustomization
from tests.integration.test_webhooks import FLUX_SECRET, post

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
BEFORE_CUTOFF = datetime(2026, 11, 24, 12, 59, 58, tzinfo=UTC)  # 13:59:58 Berlin: open for 2 s more
IN_CUTOFF = datetime(2026, 11, 24, 13, 0, 1, tzinfo=UTC)
AFTER_CUTOFF = datetime(2026, 11, 24, 15, 0, 3, tzinfo=UTC)  # 16:00:03 Berlin
SUSPEND = {"spec": {"suspend": True}}


@pytest.fixture
def kube() -> Iterator[FakeKubernetes]:
    fake = start_fake_kubernetes()
    fake.put(kustomization())
    yield fake
    fake.stop()


@pytest.fixture
def server(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path, tmp_path: Path, kube: FakeKubernetes
) -> Iterator[Server]:
    settings = make_settings(
        database_url, *config_tree, tokens_file, FLUX_SECRET=FLUX_SECRET, FLUX_GATE=True, SCHEDULER_INTERVAL=0.1, FLUX_WINDOW_INTERVAL=0,
        KUBECONFIG=write_kubeconfig(tmp_path / "kubeconfig", {"prod": kube.url}, "prod"),
    )  # fmt: skip
    running = start_server(settings, MutableClock(BEFORE_CUTOFF))
    yield running
    running.stop()


def event(server: Server, reason: str, sha: str = p.SHA_A) -> dict[str, Any]:
    body = p.encode(p.flux_event(reason, sha=sha))
    answer = post(server, "flux", body, p.flux_headers(FLUX_SECRET, body))
    assert answer.status_code == 200, answer.text
    decided: dict[str, Any] = answer.json()
    return decided


def bodies(kube: FakeKubernetes) -> list[Any]:
    assert all(r.path == PATH and r.content_type == "application/merge-patch+json" for r in kube.patches())
    return [r.body for r in kube.patches()]


def resumed(at: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {REQUESTED_AT: at}}, "spec": {"suspend": False}}


def test_an_applied_kustomization_is_suspended_when_the_cut_off_begins_and_resumed_when_it_ends(
    server: Server, kube: FakeKubernetes
) -> None:
    answer = event(server, "ReconciliationSucceeded")
    assert answer["decision"]["verdict"] == "approve" and answer["decision"]["status"] == "applied"
    eventually(lambda: bodies(kube) == [resumed("2026-11-24T12:59:58Z")])  # its approval
    server.clock.set(IN_CUTOFF)  # the window closed at 13:00:00Z, no new release
    eventually(lambda: bodies(kube)[1:] == [SUSPEND])
    server.clock.set(AFTER_CUTOFF)
    eventually(lambda: bodies(kube)[2:] == [resumed("2026-11-24T15:00:00Z")])  # the instant it opened
    time.sleep(0.5)
    assert len(kube.patches()) == 3  # nothing repeated
    stored = kube.object("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "odoo-prod", "odoo")
    assert stored["spec"]["suspend"] is False and stored["metadata"]["annotations"][REQUESTED_AT] == "2026-11-24T15:00:00Z"
    with server.client("viewer") as viewer:
        actions = viewer.get("/v1/actions", params={"release": answer["release_id"]}).json()["items"]
    assert [a["status"] for a in actions if a["kind"] == "flux_gate"] == ["done"] * 3


def test_an_approved_release_not_yet_applied_is_decided_again_when_the_cut_off_begins(
    server: Server, kube: FakeKubernetes
) -> None:
    answer = event(server, "Progressing")
    assert answer["decision"]["verdict"] == "approve"
    eventually(lambda: len(kube.patches()) == 1)
    server.clock.set(IN_CUTOFF)
    eventually(lambda: bodies(kube)[1:] == [SUSPEND])
    with server.client("viewer") as viewer:
        release = viewer.get(f"/v1/releases/{answer['release_id']}").json()
    assert release["status"] == "deferred"
    assert release["decisions"][-1]["reasons"][0]["code"] == "dispatch_cutoff"
    server.clock.set(AFTER_CUTOFF)
    eventually(lambda: len(kube.patches()) == 3)
    assert bodies(kube)[2] == resumed("2026-11-24T15:00:03Z")  # the decision that approved it
    with server.client("viewer") as viewer:
        assert viewer.get(f"/v1/releases/{answer['release_id']}").json()["status"] == "approved"


def test_a_freeze_started_and_lifted_suspends_and_resumes_an_applied_kustomization(
    server: Server, kube: FakeKubernetes
) -> None:
    event(server, "ReconciliationSucceeded")
    eventually(lambda: len(kube.patches()) == 1)
    with server.client("manager") as manager:
        started = manager.post("/v1/freezes", json={"targets": ["flux:*"], "reason": "carrier outage"})
        assert started.status_code in (200, 201), started.text
        eventually(lambda: bodies(kube)[1:] == [SUSPEND])
        lifted = manager.request("DELETE", f"/v1/freezes/{started.json()['id']}", json={"reason": "carrier back"})
        assert lifted.status_code == 200, lifted.text
    eventually(lambda: len(kube.patches()) == 3)
    last = bodies(kube)[2]
    assert last["spec"] == {"suspend": False} and REQUESTED_AT in last["metadata"]["annotations"]

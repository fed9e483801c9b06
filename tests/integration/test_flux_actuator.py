"""actuators/flux.py on the wire: the real kubernetes client against the loopback fake API server,
which checks the bearer token and the merge-patch content type and applies the patch."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.actuators import RefusedError
from gatekeeper.actuators.flux import REQUESTED_AT, FluxActuator, FluxObject
from tests.integration import payloads as p
from tests.integration.conftest import MutableClock, eventually, make_settings, start_server
from tests.integration.fake_kubernetes import TOKEN, FakeKubernetes, start_fake_kubernetes, write_kubeconfig
from tests.integration.test_gate_api import CUTOFF
from tests.integration.test_webhooks import FLUX_SECRET, post

PATH = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/odoo-prod/kustomizations/odoo"


def kustomization(suspend: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "odoo", "namespace": "odoo-prod", "uid": "u-1", "generation": 3},
        "spec": {"interval": "10m", "path": "./clusters/prod", "prune": True, "suspend": suspend,
                 "sourceRef": {"kind": "GitRepository", "name": "odoo-config"}},
        "status": {"lastAppliedRevision": "main@sha1:" + "a" * 40},
    }  # fmt: skip


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeKubernetes, FluxActuator]]:
    fake = start_fake_kubernetes()
    fake.put(kustomization())
    actuator = FluxActuator(write_kubeconfig(tmp_path / "kubeconfig", {"prod": fake.url}, "prod"))
    yield fake, actuator
    actuator.close()
    fake.stop()


TARGET = FluxObject.from_target("flux:Kustomization/odoo-prod/odoo")


def test_suspend_sends_one_merge_patch_of_spec_suspend_and_a_repeat_changes_nothing(
    cluster: tuple[FakeKubernetes, FluxActuator],
) -> None:
    fake, actuator = cluster
    assert actuator.suspend(TARGET).changed
    assert not actuator.suspend(TARGET).changed
    (patch,) = fake.patches()
    assert patch.path == PATH
    assert patch.authorization == f"Bearer {TOKEN}"
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body == {"spec": {"suspend": True}}
    stored = fake.object("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "odoo-prod", "odoo")
    assert stored["spec"]["suspend"] is True and stored["spec"]["path"] == "./clusters/prod"


def test_resume_unsuspends_and_requests_a_reconcile_once(cluster: tuple[FakeKubernetes, FluxActuator]) -> None:
    fake, actuator = cluster
    actuator.suspend(TARGET)
    at = "2026-11-24T15:00:00Z"
    assert actuator.resume(TARGET, at).changed
    assert not actuator.resume(TARGET, at).changed
    resume = fake.patches()[-1]
    assert resume.body == {"metadata": {"annotations": {REQUESTED_AT: at}}, "spec": {"suspend": False}}
    assert len(fake.patches()) == 2
    stored = fake.object("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "odoo-prod", "odoo")
    assert stored["spec"]["suspend"] is False
    assert stored["metadata"]["annotations"][REQUESTED_AT] == at


def test_a_helmrelease_is_patched_at_its_own_path(cluster: tuple[FakeKubernetes, FluxActuator]) -> None:
    fake, actuator = cluster
    fake.put({"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
              "metadata": {"name": "odoo", "namespace": "odoo-prod"}, "spec": {"chart": {}}})  # fmt: skip
    assert actuator.suspend(FluxObject.from_target("flux:HelmRelease/odoo-prod/odoo")).changed
    assert fake.patches()[-1].path == "/apis/helm.toolkit.fluxcd.io/v2/namespaces/odoo-prod/helmreleases/odoo"


def test_a_target_that_is_no_flux_object_is_refused() -> None:
    with pytest.raises(RefusedError):
        FluxObject.from_target("flux:GitRepository/odoo-prod/odoo")


def test_a_governed_kustomization_is_suspended_while_deferred_and_resumed_with_a_reconcile_when_approved(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path, tmp_path: Path
) -> None:
    """A Flux event for a new revision during the dispatch cut-off: deferred, so the Kustomization
    is suspended; at 16:00 the scheduler decides the release again, approves it, and resumes the
    Kustomization with a reconcile request."""
    fake = start_fake_kubernetes()
    fake.put(kustomization())
    settings = make_settings(
        database_url, *config_tree, tokens_file, FLUX_SECRET=FLUX_SECRET, FLUX_GATE=True, SCHEDULER_INTERVAL=0.1, FLUX_WINDOW_INTERVAL=0,
        KUBECONFIG=write_kubeconfig(tmp_path / "kubeconfig", {"prod": fake.url}, "prod"),
    )
    server = start_server(settings, MutableClock(CUTOFF))
    try:
        body = p.encode(p.flux_event("Progressing", sha=p.SHA_B))
        answer = post(server, "flux", body, p.flux_headers(FLUX_SECRET, body)).json()
        assert answer["decision"]["verdict"] == "defer"
        eventually(lambda: [r.body for r in fake.patches()] == [{"spec": {"suspend": True}}])
        server.clock.set(datetime(2026, 11, 24, 15, 0, 5, tzinfo=UTC))  # 16:00:05 Berlin: the cut-off is over
        eventually(lambda: len(fake.patches()) == 2)
        resume = fake.patches()[1]
        assert resume.path == PATH and resume.content_type == "application/merge-patch+json"
        assert resume.body == {"metadata": {"annotations": {REQUESTED_AT: "2026-11-24T15:00:05Z"}},
                               "spec": {"suspend": False}}  # fmt: skip
        with server.client("viewer") as viewer:
            release = viewer.get(f"/v1/releases/{answer['release_id']}").json()
        assert release["status"] == "approved"
        time.sleep(0.5)
        assert len(fake.patches()) == 2  # nothing repeated
    finally:
        server.stop()
        fake.stop()

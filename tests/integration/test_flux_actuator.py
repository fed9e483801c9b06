"""actuators/flux.py on the wire: the real kubernetes client against the loopback fake API server,
which checks the bearer token and the merge-patch content type and applies the patch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.actuators import RefusedError
from gatekeeper.actuators.flux import REQUESTED_AT, FluxActuator, FluxObject
from tests.integration.fake_kubernetes import TOKEN, FakeKubernetes, start_fake_kubernetes, write_kubeconfig

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

"""Pushes announce releases: a GitHub push to a repository that governed targets deploy from
announces a release of the new revision for every target whose source path it touched, decided in
the delivery's one transaction (DESIGN §4 "announced"), on SQLite and PostgreSQL. The Argo CD
Applications come from the fake Kubernetes API (the real kubernetes client)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration import payloads as p
from tests.integration.conftest import MutableClock, Server, eventually, make_settings, start_server, write_tokens
from tests.integration.drift_world import argocd_application
from tests.integration.fake_kubernetes import FakeKubernetes, start_fake_kubernetes, write_kubeconfig
from tests.integration.test_gate_api import OPEN

pytestmark = pytest.mark.integration

SECRET = "gh-webhook-secret"
REPO = "https://github.com/acme/odoo-config.git"
POLICIES = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: odoo-production}
spec:
  targets: ["argocd:odoo-prod*"]
---
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: odoo-web}
spec:
  targets: ["flux:Kustomization/odoo/web"]
  source: {repo: "git@github.com:acme/odoo-config.git", path: apps/web}
  approvals: {required: 1}
---
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: flux-fleet}
spec:
  targets: ["flux:Kustomization/flux-system/*"]
"""


def application(name: str, repo: str, path: str) -> dict[str, Any]:
    app = copy.deepcopy(argocd_application(repo, "0" * 40, path=path))
    app["metadata"]["name"] = name
    return app


@pytest.fixture(scope="module")
def kube() -> Iterator[FakeKubernetes]:
    fake = start_fake_kubernetes()
    fake.put(application("odoo-prod", REPO, "clusters/prod"))
    fake.put(application("odoo-prod-wms", "ssh://git@github.com/acme/odoo-config", "clusters/prod-wms"))
    fake.put(application("odoo-staging", REPO, "clusters/prod"))  # no policy governs it
    fake.put(application("odoo-prod-other", "https://github.com/acme/other.git", "clusters/prod"))
    fake.put({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
              "metadata": {"name": "odoo-config", "namespace": "flux-system"},
              "spec": {"url": "https://github.com/acme/odoo-config", "ref": {"branch": "main"}}})  # fmt: skip
    for name, path in (("odoo-flux", "./clusters/prod/odoo"), ("odoo-flux-wms", "./clusters/prod-wms")):
        fake.put({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                  "metadata": {"name": name, "namespace": "flux-system"},
                  "spec": {"path": path, "sourceRef": {"kind": "GitRepository", "name": "odoo-config"}}})  # fmt: skip
    yield fake
    fake.stop()


@pytest.fixture
def hooks(kube: FakeKubernetes, database_url: str, tmp_path: Path) -> Iterator[Server]:
    policies, calendars = tmp_path / "policies", tmp_path / "calendars"
    policies.mkdir()
    calendars.mkdir()
    (policies / "odoo.yaml").write_text(POLICIES)
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {"prod": kube.url}, "prod")
    settings = make_settings(
        database_url, policies, calendars, write_tokens(tmp_path), GITHUB_SECRET=SECRET, KUBECONFIG=kubeconfig
    )
    server = start_server(settings, MutableClock(OPEN))
    yield server
    server.stop()


def push(server: Server, files: tuple[str, ...], delivery: str) -> httpx.Response:
    payload = p.github_push(files=files)
    payload["repository"] |= {
        "clone_url": REPO,
        "ssh_url": "git@github.com:acme/odoo-config.git",
        "html_url": "https://github.com/acme/odoo-config",
    }
    body = p.encode(payload)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        return client.post("/webhooks/github", content=body, headers=p.github_headers(SECRET, "push", body, delivery))


def gate(server: Server, target: str, revision: str) -> dict[str, Any]:
    with server.client("hook") as client:
        answer = client.post("/v1/gate", json={"target": target, "revision": revision})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_push_announces_a_release_for_each_target_whose_source_path_it_touched(hooks: Server) -> None:
    older = gate(hooks, "argocd:odoo-prod", p.SHA_B)  # an open release of an older revision
    gate(hooks, "flux:Kustomization/odoo/web", p.SHA_A)  # the hook was first: the push decides it again
    answer = push(hooks, ("clusters/prod/odoo/deployment.yaml", "apps/web/service.yaml"), "d-1")
    assert answer.status_code == 200, answer.text
    announced = {item["target"]: item for item in answer.json()["announced"]}
    # odoo-prod-wms, odoo-flux-wms: their paths were not touched; odoo-staging: no policy;
    # odoo-prod-other: another repository
    assert sorted(announced) == ["argocd:odoo-prod", "flux:Kustomization/flux-system/odoo-flux", "flux:Kustomization/odoo/web"]
    assert announced["argocd:odoo-prod"]["verdict"] == "approve"
    assert announced["flux:Kustomization/odoo/web"]["verdict"] == "defer"  # it needs an approval
    with hooks.client("viewer") as client:
        shown = client.get(f"/v1/releases/{announced['argocd:odoo-prod']['release_id']}").json()
    assert (shown["target"], shown["revision"], shown["status"]) == ("argocd:odoo-prod", p.SHA_A, "approved")
    assert shown["decisions"][0]["trigger"] == "github-push-announce"
    with hooks.client("viewer") as client:
        superseded = client.get(f"/v1/releases/{older['release_id']}").json()
        web = client.get(f"/v1/releases/{announced['flux:Kustomization/odoo/web']['release_id']}").json()
    assert superseded["status"] == "superseded"
    # decided again: the same decision as the hook's, so answered from it and not stored twice
    assert [d["trigger"] for d in web["decisions"]] == ["presync"]
    # every decision has its audit record (the announced ones were written set-based)
    store = hooks.app.state.service.store
    eventually(lambda: not store.chain_audit(wait=True))
    audited = {r["data"]["decision_id"] for r in store.audit_records(after=0, limit=None) if r["kind"] == "decision"}
    assert set(store.decision_ids()) <= audited
    # a redelivery answers the same and decides nothing again
    again = push(hooks, ("clusters/prod/odoo/deployment.yaml", "apps/web/service.yaml"), "d-1")
    assert again.json() == answer.json()
    with hooks.client("viewer") as client:
        listed = client.get("/v1/releases", params={"target": "argocd:odoo-prod"}).json()["items"]
    assert sorted(len(item["decisions"]) for item in listed) == [1, 1]  # SHA_B's and SHA_A's


def test_a_push_that_touches_no_target_source_announces_nothing(hooks: Server) -> None:
    answer = push(hooks, ("docs/README.md",), "d-2")
    assert answer.status_code == 200 and "announced" not in answer.json()

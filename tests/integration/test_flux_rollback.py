"""Flux rollback: a Kustomization reports a revision applied during the dispatch cut-off without
approval; gatekeeper reverts the offending commit on its GitRepository's branch (read through the
real kubernetes client from the fake Kubernetes API) and pushes it to a real bare remote, the
release reads rolled_back, and the revert (gatekeeper's own, approved) resumes the suspended
Kustomization with a reconcile request so that Flux applies it; once applied, the cut-off
suspends the Kustomization again."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pygit2

from tests.integration import payloads as p
from tests.integration.conftest import MutableClock, Server, eventually, make_settings, start_server
from tests.integration.fake_kubernetes import start_fake_kubernetes, write_kubeconfig
from tests.integration.test_flux_actuator import PATH, kustomization
from tests.integration.test_gate_api import CUTOFF, OPEN
from tests.integration.test_git_revert import bare_remote
from tests.integration.test_webhooks import FLUX_SECRET, post

TARGET = "flux:Kustomization/odoo-prod/odoo"


def git_repository(url: str) -> dict[str, Any]:
    return {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": "odoo-config", "namespace": "odoo-prod"},
            "spec": {"interval": "1m", "url": url, "ref": {"branch": "main"}}}  # fmt: skip


def event(server: Server, reason: str, sha: str) -> dict[str, Any]:
    body = p.encode(p.flux_event(reason, sha=sha))
    answer = post(server, "flux", body, p.flux_headers(FLUX_SECRET, body))
    assert answer.status_code == 200, answer.text
    decided: dict[str, Any] = answer.json()
    return decided


def status(server: Server, release_id: int) -> str:
    with server.client("viewer") as viewer:
        return str(viewer.get(f"/v1/releases/{release_id}").json()["status"])


def test_a_flux_revision_applied_in_the_cut_off_is_reverted_on_its_git_repository_branch(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path, tmp_path: Path
) -> None:
    bare, (good, bad) = bare_remote(
        tmp_path, ({"replicas.yaml": "replicas: 2\n"}, "baseline"),
        ({"replicas.yaml": "replicas: 9\n"}, "scale up during the cut-off"),
    )
    fake = start_fake_kubernetes()
    fake.put(kustomization())
    fake.put(git_repository(str(bare)))
    settings = make_settings(
        database_url, *config_tree, tokens_file, FLUX_SECRET=FLUX_SECRET, FLUX_GATE=True, SCHEDULER_INTERVAL=0.1, FLUX_WINDOW_INTERVAL=0,
        KUBECONFIG=write_kubeconfig(tmp_path / "kubeconfig", {"prod": fake.url}, "prod"),
    )  # fmt: skip
    server = start_server(settings, MutableClock(OPEN))
    try:
        assert event(server, "ReconciliationSucceeded", str(good))["decision"]["status"] == "applied"
        server.clock.set(CUTOFF + timedelta(minutes=5))
        answer = event(server, "ReconciliationSucceeded", str(bad))  # applied while the gate is closed
        assert answer["decision"]["verdict"] == "rollback"
        release_id = answer["release_id"]
        eventually(lambda: status(server, release_id) == "rolled_back")
        with server.client("viewer") as viewer:
            actions = viewer.get("/v1/actions", params={"release": release_id}).json()["items"]
            audit = viewer.get("/v1/audit").json()["items"]
        assert [(a["kind"], a["status"]) for a in actions if a["kind"] == "rollback"] == [("rollback", "done")]
        (rollback,) = [r for r in audit if r["kind"] == "rollback"]
        assert rollback["subject"] == f"release/{release_id}"
        assert rollback["data"]["how"] == "git_revert" and rollback["data"]["revision"] == str(bad)
        remote = pygit2.Repository(str(bare))
        tip = remote.revparse_single("refs/heads/main").peel(pygit2.Commit)
        assert [parent.id for parent in tip.parents] == [bad]
        assert (tip.author.name, tip.committer.name) == ("gatekeeper", "gatekeeper")
        assert tip.message.startswith(f"gatekeeper: roll back release {release_id} ({TARGET})")
        assert "applied_without_approval" in tip.message and f"This reverts commit {bad}." in tip.message
        assert remote[tip.tree["replicas.yaml"].id].data == b"replicas: 2\n"
        assert tip.tree.id == remote[good].peel(pygit2.Commit).tree.id

        # The revert is gatekeeper's own: approved in the cut-off, it resumes the Kustomization.
        eventually(lambda: bool(fake.patches()) and fake.patches()[-1].body["spec"] == {"suspend": False})
        resume = fake.patches()[-1]
        assert resume.path == PATH and "reconcile.fluxcd.io/requestedAt" in resume.body["metadata"]["annotations"]
        with server.client("viewer") as viewer:
            releases = viewer.get("/v1/releases", params={"target": TARGET}).json()["items"]
        (own,) = [r for r in releases if r["revision"] == str(tip.id)]
        assert own["status"] == "approved" and own["decisions"][-1]["reasons"][0]["code"] == "rollback"
        applied = event(server, "ReconciliationSucceeded", str(tip.id))  # Flux applies the revert
        assert applied["decision"]["status"] == "applied" and applied["decision"]["verdict"] == "approve"
        # Applied, the revert no longer holds the target open: the cut-off suspends it again.
        eventually(lambda: fake.patches()[-1].body == {"spec": {"suspend": True}})
    finally:
        server.stop()
        fake.stop()

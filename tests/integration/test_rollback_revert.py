"""The revert gatekeeper pushes for a rollback is its own release, approved during the freeze that
held everything else: its PreSync gate call is approved (reason ``rollback``), a push announcing
it finds that release, and a person's commit in the same freeze is still deferred. Real HTTP, a
real bare remote, the loopback fake Argo CD."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pygit2
import pytest

from tests.integration import payloads as p
from tests.integration.conftest import MutableClock, Server, eventually, make_settings, start_server, write_tokens
from tests.integration.fake_argocd import ARGOCD_TOKEN, FakeArgoCd, start_fake_argocd
from tests.integration.test_actuators import notify
from tests.integration.test_gate_api import OPEN
from tests.integration.test_git_revert import bare_remote
from tests.integration.test_webhooks import ARGOCD_SECRET, GITHUB_SECRET

# The policy names the repository as GitHub announces it (a push of it announces odoo-prod); the
# Argo CD Application follows the local bare remote, where gatekeeper pushes its revert.
POLICY = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: odoo-production}
spec:
  targets: ["argocd:odoo-prod"]
  source: {repo: "https://github.com/acme/odoo-config.git", path: clusters/prod}
  timezone: Europe/Berlin
"""


@pytest.fixture
def argocd() -> Iterator[FakeArgoCd]:
    fake = start_fake_argocd()
    yield fake
    fake.stop()


def remote(tmp_path: Path, *, later: bool = False) -> tuple[Path, pygit2.Oid, pygit2.Oid]:
    """A bare remote with main: the verified baseline, then the change synced during the freeze
    (and, with ``later``, a person's commit after it that nothing synced)."""
    commits = [({"replicas.yaml": "replicas: 2\n"}, "baseline"), ({"replicas.yaml": "replicas: 9\n"}, "scale up during the freeze")]
    if later:
        commits.append(({"replicas.yaml": "replicas: 9\n", "notes.md": "peak\n"}, "a note, pushed in the freeze"))
    bare, (good, bad, *_) = bare_remote(tmp_path, *commits)
    return bare, good, bad


def gate(server: Server, revision: str) -> dict[str, Any]:
    with server.client("hook") as hook:
        answer = hook.post("/v1/gate", json={"target": "argocd:odoo-prod", "revision": revision})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def push(server: Server, sha: str) -> dict[str, Any]:
    payload = p.github_push(sha=sha, files=("clusters/prod/replicas.yaml",))
    payload["repository"] |= {"clone_url": "https://github.com/acme/odoo-config.git"}
    body = p.encode(payload)
    headers = p.github_headers(GITHUB_SECRET, "push", body)
    answer = httpx.post(f"{server.url}/webhooks/github", content=body, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    decided: dict[str, Any] = answer.json()
    return decided


def serve(database_url: str, argocd: FakeArgoCd, tmp_path: Path) -> Server:
    policies, calendars = tmp_path / "policies", tmp_path / "calendars"
    policies.mkdir()
    calendars.mkdir()
    (policies / "odoo.yaml").write_text(POLICY)
    settings = make_settings(
        database_url, policies, calendars, write_tokens(tmp_path), ARGOCD_TOKEN=ARGOCD_SECRET,
        GITHUB_SECRET=GITHUB_SECRET, ARGOCD_SERVER=argocd.url, ARGOCD_API_TOKEN=ARGOCD_TOKEN, SCHEDULER_INTERVAL=0.1,
    )  # fmt: skip
    return start_server(settings, MutableClock(OPEN))


def rolled_back_in_a_freeze(server: Server, good: str, bad: str) -> int:
    """``good`` goes out approved; a freeze starts; someone syncs ``bad`` by hand: rolled back."""
    assert gate(server, good)["verdict"] == "approve"
    notify(server, "sync-succeeded", good)
    with server.client("manager") as manager:
        freeze = manager.post("/v1/freezes", json={"targets": ["argocd:odoo-prod"], "reason": "peak week"})
    assert freeze.status_code in (200, 201), freeze.text
    rolled = notify(server, "sync-succeeded", bad)
    assert rolled["decision"]["verdict"] == "rollback"
    release_id = int(rolled["release_id"])

    def status() -> str:
        with server.client("viewer") as viewer:
            return str(viewer.get(f"/v1/releases/{release_id}").json()["status"])

    eventually(lambda: status() == "rolled_back")
    return release_id


def test_the_revert_gatekeeper_pushes_during_a_freeze_is_approved_and_a_persons_commit_is_not(
    database_url: str, argocd: FakeArgoCd, tmp_path: Path
) -> None:
    bare, good, bad = remote(tmp_path)
    argocd.add("odoo-prod", str(bad), automated=True, history=(str(good),),
               source={"repoURL": str(bare), "targetRevision": "main", "path": "."})  # fmt: skip
    server = serve(database_url, argocd, tmp_path)
    try:
        rolled_id = rolled_back_in_a_freeze(server, str(good), str(bad))
        tip = pygit2.Repository(str(bare)).revparse_single("refs/heads/main").peel(pygit2.Commit)
        assert [parent.id for parent in tip.parents] == [bad] and tip.author.name == "gatekeeper"
        revert = str(tip.id)

        hook = gate(server, revert)  # the PreSync hook of the auto-sync the revert starts
        assert hook["verdict"] == "approve", hook
        assert [reason["code"] for reason in hook["reasons"]] == ["rollback"]
        message = hook["reasons"][0]["message"]
        assert f"release {rolled_id}" in message and str(bad) in message
        assert "adhoc_freeze" in message  # what it overrode

        announced = push(server, revert)["announced"]
        assert announced == [{"target": "argocd:odoo-prod", "release_id": hook["release_id"], "verdict": "approve"}]

        person = gate(server, "c" * 40)  # a person's commit in the same freeze
        assert person["verdict"] == "defer"
        assert "adhoc_freeze" in [reason["code"] for reason in person["reasons"]]

        with server.client("viewer") as viewer:
            audit = viewer.get("/v1/audit").json()["items"]
            releases = viewer.get("/v1/releases", params={"target": "argocd:odoo-prod"}).json()["items"]
        decided = [r for r in audit if r["kind"] == "decision" and r["subject"] == f"release/{hook['release_id']}"]
        assert decided[0]["actor"] == "gatekeeper" and decided[0]["data"]["codes"] == ["rollback"]
        assert decided[0]["data"]["trigger"] == f"rollback:{rolled_id}"
        deferred = [r["revision"] for r in releases if r["status"] == "deferred"]
        assert deferred == ["c" * 40]  # the revert never waited for the window
    finally:
        server.stop()
    assert argocd.posts("/rollback") == [] and argocd.posts("/sync") == []


def test_a_revert_on_top_of_a_later_commit_is_pushed_but_waits_for_the_window(
    database_url: str, argocd: FakeArgoCd, tmp_path: Path
) -> None:
    """The branch moved on after the offending commit: its revert carries the later change too,
    so it restores no verified state and is gated like any revision."""
    bare, good, bad = remote(tmp_path, later=True)
    argocd.add("odoo-prod", str(bad), automated=True, history=(str(good),),
               source={"repoURL": str(bare), "targetRevision": "main", "path": "."})  # fmt: skip
    server = serve(database_url, argocd, tmp_path)
    try:
        rolled_back_in_a_freeze(server, str(good), str(bad))
        tip = pygit2.Repository(str(bare)).revparse_single("refs/heads/main").peel(pygit2.Commit)
        assert tip.author.name == "gatekeeper" and f"This reverts commit {bad}." in tip.message
        hook = gate(server, str(tip.id))
        assert hook["verdict"] == "defer"
        assert [reason["code"] for reason in hook["reasons"]] == ["adhoc_freeze"]
    finally:
        server.stop()


def test_a_revert_restoring_a_state_that_never_went_out_approved_is_gated(
    database_url: str, argocd: FakeArgoCd, tmp_path: Path
) -> None:
    """``unreviewed`` was pushed and never approved; ``bad`` on top of it was synced during the
    freeze. Reverting ``bad`` restores ``unreviewed``'s tree exactly, but that state never went out
    approved: the revert is recorded as an ordinary release and waits like any revision."""
    bare, (good, _unreviewed, bad) = bare_remote(
        tmp_path,
        ({"replicas.yaml": "replicas: 2\n"}, "baseline"),
        ({"replicas.yaml": "replicas: 2\n", "image.yaml": "tag: unsigned\n"}, "an image nobody approved"),
        ({"replicas.yaml": "replicas: 9\n", "image.yaml": "tag: unsigned\n"}, "scale up in the freeze"),
    )
    argocd.add("odoo-prod", str(bad), automated=True, history=(str(good),),
               source={"repoURL": str(bare), "targetRevision": "main", "path": "."})  # fmt: skip
    server = serve(database_url, argocd, tmp_path)
    try:
        rolled_id = rolled_back_in_a_freeze(server, str(good), str(bad))
        tip = pygit2.Repository(str(bare)).revparse_single("refs/heads/main").peel(pygit2.Commit)
        assert tip.author.name == "gatekeeper" and [parent.id for parent in tip.parents] == [bad]
        with server.client("viewer") as viewer:
            found = viewer.get("/v1/releases", params={"target": "argocd:odoo-prod"}).json()["items"]
        recorded = next(r for r in found if r["revision"] == str(tip.id))
        assert recorded["status"] == "deferred"
        hook = gate(server, str(tip.id))
        assert hook["release_id"] == recorded["id"] and hook["verdict"] == "defer"
        assert [reason["code"] for reason in hook["reasons"]] == ["adhoc_freeze"]
        assert rolled_id != recorded["id"]
    finally:
        server.stop()

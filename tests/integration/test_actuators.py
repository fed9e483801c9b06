"""Actuators on the wire: Argo CD's REST API (a loopback fake that checks paths, verbs, bearer
and bodies and counts effects), and the deferred release that goes out by itself when its
window opens (the scheduler decides it again and syncs it, once)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pygit2
import pytest

from gatekeeper.actuators import ActuatorError, RefusedError
from gatekeeper.actuators.argocd import ArgoCdActuator
from tests.integration import payloads as p
from tests.integration.conftest import MutableClock, Server, eventually, make_settings, start_server, token_of
from tests.integration.fake_argocd import ARGOCD_TOKEN, FakeArgoCd, start_fake_argocd
from tests.integration.test_gate_api import CUTOFF, OPEN
from tests.integration.test_gate_cli import GATEKEEPER, run_gate
from tests.integration.test_git_revert import bare_remote
from tests.integration.test_webhooks import ARGOCD_SECRET

OLD, NEW = "a" * 40, "b" * 40


@pytest.fixture
def argocd() -> Iterator[FakeArgoCd]:
    fake = start_fake_argocd()
    yield fake
    fake.stop()


@pytest.fixture
def actuator(argocd: FakeArgoCd) -> Iterator[ArgoCdActuator]:
    client = ArgoCdActuator(argocd.url, ARGOCD_TOKEN)
    yield client
    client.close()


def test_a_sync_posts_the_documented_request_once_and_a_repeat_changes_nothing(
    argocd: FakeArgoCd, actuator: ArgoCdActuator
) -> None:
    argocd.add("odoo-prod", OLD)
    first = actuator.sync("odoo-prod", NEW)
    again = actuator.sync("odoo-prod", NEW)
    assert (first.changed, again.changed) == (True, False)
    (post,) = argocd.posts("/sync")
    assert post.path == "/api/v1/applications/odoo-prod/sync"
    assert post.headers["authorization"] == f"Bearer {ARGOCD_TOKEN}"
    assert post.body == {"name": "odoo-prod", "revision": NEW, "prune": False, "dryRun": False}
    assert [r.method for r in argocd.requests] == ["GET", "POST", "GET"]
    assert argocd.syncs == {("odoo-prod", NEW): 1}
    assert argocd.errors == []


def test_a_sync_already_running_to_the_revision_is_success_without_a_post(
    argocd: FakeArgoCd, actuator: ArgoCdActuator
) -> None:
    argocd.add("odoo-prod", OLD)
    argocd.hold = True
    assert actuator.sync("odoo-prod", NEW).changed
    outcome = actuator.sync("odoo-prod", NEW)
    assert not outcome.changed and "already running" in outcome.message
    assert argocd.syncs == {("odoo-prod", NEW): 1}


def test_a_rollback_posts_the_history_id_of_the_revision(argocd: FakeArgoCd, actuator: ArgoCdActuator) -> None:
    argocd.add("odoo-prod", NEW, history=("c" * 40, OLD))
    outcome = actuator.rollback("odoo-prod", OLD)
    assert outcome.changed
    (post,) = argocd.posts("/rollback")
    assert post.path == "/api/v1/applications/odoo-prod/rollback"
    assert post.headers["authorization"] == f"Bearer {ARGOCD_TOKEN}"
    assert post.body == {"name": "odoo-prod", "id": 2, "prune": False, "dryRun": False}
    assert not actuator.rollback("odoo-prod", OLD).changed  # it runs OLD now: nothing to do
    assert argocd.rollbacks == {("odoo-prod", 2): 1}


def test_a_rollback_of_an_auto_synced_application_is_refused_before_any_post(
    argocd: FakeArgoCd, actuator: ArgoCdActuator
) -> None:
    argocd.add("odoo-prod", NEW, automated=True, history=(OLD,))
    with pytest.raises(RefusedError, match="auto-sync"):
        actuator.rollback("odoo-prod", OLD)
    assert argocd.posts("/rollback") == []


def test_a_wrong_token_is_an_actuator_error_naming_the_answer(argocd: FakeArgoCd) -> None:
    argocd.add("odoo-prod", OLD)
    wrong = ArgoCdActuator(argocd.url, "not-the-token")
    try:
        with pytest.raises(ActuatorError, match="answered 401"):
            wrong.sync("odoo-prod", NEW)
    finally:
        wrong.close()
    assert argocd.syncs == {}


def test_a_deferred_release_is_synced_once_by_the_scheduler_when_its_window_opens(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path, argocd: FakeArgoCd
) -> None:
    """The hook is deferred by the dispatch cut-off and fails fast; at 16:00 the scheduler decides
    the release again, approves it and syncs the application to its revision, exactly once."""
    argocd.add("odoo-prod-eu", OLD)
    settings = make_settings(
        database_url, *config_tree, tokens_file,
        ARGOCD_SERVER=argocd.url, ARGOCD_API_TOKEN=ARGOCD_TOKEN, SCHEDULER_INTERVAL=0.1,
    )
    server = start_server(settings, MutableClock(CUTOFF))
    try:
        with server.client("hook") as hook:
            answer = hook.post("/v1/gate", json={"target": "argocd:odoo-prod-eu", "revision": NEW}).json()
        assert answer["verdict"] == "defer"
        opens = answer["not_before"]
        assert argocd.syncs == {}  # nothing leaves while the window is closed
        server.clock.set(CUTOFF + timedelta(hours=3))
        eventually(lambda: argocd.syncs == {("odoo-prod-eu", NEW): 1})
        with server.client("viewer") as viewer:
            release = viewer.get(f"/v1/releases/{answer['release_id']}").json()
            actions = viewer.get("/v1/actions").json()["items"]
        assert release["status"] == "approved"
        assert [d["trigger"] for d in release["decisions"]] == ["presync", "scheduler"]
        synced = [a for a in actions if a["kind"] == "argocd_sync"]
        assert [(a["status"], a["release_id"]) for a in synced] == [("done", answer["release_id"])]
        assert opens is not None

        def audited() -> list[dict[str, object]]:
            with server.client("viewer") as viewer:
                items = viewer.get("/v1/audit").json()["items"]
            return [r for r in items if r["kind"] == "action" and r["data"]["kind"] == "argocd_sync"]

        eventually(lambda: len(audited()) == 1)  # what gatekeeper did is in the audit log, by whom
        (record,) = audited()
        assert record["actor"] == "gatekeeper" and record["subject"] == f"release/{answer['release_id']}"
        assert record["data"]["outcome"] == "done" and "sync to" in str(record["data"]["result"])
    finally:
        server.stop()
    assert argocd.syncs == {("odoo-prod-eu", NEW): 1}
    assert argocd.errors == []


def test_an_approval_that_arrives_later_syncs_the_release_once(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path, argocd: FakeArgoCd
) -> None:
    """odoo-wms needs a release manager: the hook is deferred; the approval decides the release
    again in its transaction and enqueues the sync."""
    argocd.add("odoo-wms", OLD)
    settings = make_settings(
        database_url, *config_tree, tokens_file,
        ARGOCD_SERVER=argocd.url, ARGOCD_API_TOKEN=ARGOCD_TOKEN, SCHEDULER_INTERVAL=0.1,
    )
    server = start_server(settings, MutableClock(CUTOFF - timedelta(hours=4)))
    try:
        with server.client("hook") as hook:
            answer = hook.post("/v1/gate", json={"target": "argocd:odoo-wms", "revision": NEW}).json()
        assert answer["verdict"] == "defer"
        with server.client("manager") as manager:
            approved = manager.post(f"/v1/releases/{answer['release_id']}/approve", json={})
            assert approved.status_code == 200, approved.text
            manager.post(f"/v1/releases/{answer['release_id']}/approve", json={})  # a double click
        eventually(lambda: argocd.syncs == {("odoo-wms", NEW): 1})
    finally:
        server.stop()
    assert argocd.syncs == {("odoo-wms", NEW): 1}


def show(server: Server, release_id: int) -> str:
    """``gatekeeper releases show`` as a release manager runs it."""
    env = {**os.environ, "GATEKEEPER_TOKEN": token_of("viewer")}
    command = [GATEKEEPER, "releases", "show", str(release_id), "--server", server.url]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def notify(server: Server, event: str, revision: str) -> dict[str, Any]:
    body = p.encode(p.argocd_event(event, revision=revision, app="odoo-prod"))
    answer = httpx.post(f"{server.url}/webhooks/argocd", content=body, headers=p.argocd_headers(ARGOCD_SECRET))
    assert answer.status_code == 200, answer.text
    decided: dict[str, Any] = answer.json()
    return decided


def test_a_freeze_time_sync_reported_by_argo_cd_is_rolled_back_to_the_last_good_revision(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path, argocd: FakeArgoCd
) -> None:
    """SHA_A goes out approved; during the dispatch cut-off someone syncs SHA_B by hand. Argo CD's
    notification makes it a rollback; gatekeeper rolls the application back (auto-sync is off:
    Argo CD's rollback API, to SHA_A's history entry), once, and the release reads rolled_back,
    with the rollback in the audit log and in the release's actions."""
    argocd.add("odoo-prod", p.SHA_B, history=(p.SHA_A,))
    settings = make_settings(
        database_url, *config_tree, tokens_file, ARGOCD_TOKEN=ARGOCD_SECRET,
        ARGOCD_SERVER=argocd.url, ARGOCD_API_TOKEN=ARGOCD_TOKEN, SCHEDULER_INTERVAL=0.1,
    )
    server = start_server(settings, MutableClock(OPEN))
    try:
        with server.client("hook") as hook:
            assert hook.post("/v1/gate", json={"target": "argocd:odoo-prod", "revision": p.SHA_A}).json()["verdict"] == "approve"
        assert notify(server, "sync-succeeded", p.SHA_A)["decision"]["status"] == "applied"
        server.clock.set(CUTOFF)
        answer = notify(server, "sync-succeeded", p.SHA_B)
        assert answer["decision"]["verdict"] == "rollback"
        release_id = answer["release_id"]

        def status() -> str:
            with server.client("viewer") as viewer:
                return str(viewer.get(f"/v1/releases/{release_id}").json()["status"])

        eventually(lambda: status() == "rolled_back")
        with server.client("viewer") as viewer:
            actions = viewer.get("/v1/actions", params={"release": release_id}).json()["items"]
            audit = viewer.get("/v1/audit").json()["items"]
        assert [(a["kind"], a["status"]) for a in actions] == [("rollback", "done")]
        (rollback,) = [r for r in audit if r["kind"] == "rollback"]
        assert rollback["subject"] == f"release/{release_id}"
        assert rollback["data"]["how"] == "argocd_rollback" and rollback["data"]["revision"] == p.SHA_B
        shown = show(server, release_id)
        assert "rolled_back" in shown and "applied_without_approval" in shown
        assert "rollback done (tries 1): odoo-prod: rollback to history 1" in shown
        time.sleep(0.5)  # a repeat would show now
    finally:
        server.stop()
    (post,) = argocd.posts("/rollback")
    assert post.body == {"name": "odoo-prod", "id": 1, "prune": False, "dryRun": False}
    assert argocd.rollbacks == {("odoo-prod", 1): 1}
    assert argocd.apps["odoo-prod"]["status"]["sync"]["revision"] == p.SHA_A


def test_a_freeze_time_sync_of_an_auto_synced_application_is_reverted_in_git(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path, argocd: FakeArgoCd, tmp_path: Path
) -> None:
    """Auto-sync is on: Argo CD refuses a rollback and would sync the change back, so gatekeeper
    reverts the offending commit on the branch the application follows and pushes it."""
    bare, (good, bad) = bare_remote(
        tmp_path, ({"replicas.yaml": "replicas: 2\n"}, "baseline"),
        ({"replicas.yaml": "replicas: 9\n"}, "scale up during the cut-off"),
    )
    argocd.add("odoo-prod", str(bad), automated=True, history=(str(good),),
               source={"repoURL": str(bare), "targetRevision": "main", "path": "."})
    settings = make_settings(
        database_url, *config_tree, tokens_file, ARGOCD_TOKEN=ARGOCD_SECRET,
        ARGOCD_SERVER=argocd.url, ARGOCD_API_TOKEN=ARGOCD_TOKEN, SCHEDULER_INTERVAL=0.1,
    )
    server = start_server(settings, MutableClock(OPEN))
    try:
        with server.client("hook") as hook:
            assert hook.post("/v1/gate", json={"target": "argocd:odoo-prod", "revision": str(good)}).json()["verdict"] == "approve"
        notify(server, "sync-succeeded", str(good))
        server.clock.set(CUTOFF)
        release_id = notify(server, "sync-succeeded", str(bad))["release_id"]

        def status() -> str:
            with server.client("viewer") as viewer:
                return str(viewer.get(f"/v1/releases/{release_id}").json()["status"])

        eventually(lambda: status() == "rolled_back")
        with server.client("viewer") as viewer:
            audit = viewer.get("/v1/audit").json()["items"]
        (rollback,) = [r for r in audit if r["kind"] == "rollback"]
        assert rollback["data"]["how"] == "git_revert"
    finally:
        server.stop()
    remote = pygit2.Repository(str(bare))
    tip = remote.revparse_single("refs/heads/main").peel(pygit2.Commit)
    assert [parent.id for parent in tip.parents] == [bad]
    assert tip.author.name == "gatekeeper"
    assert tip.message.startswith(f"gatekeeper: roll back release {release_id} (argocd:odoo-prod)")
    assert "applied_without_approval" in tip.message
    assert remote[tip.tree["replicas.yaml"].id].data == b"replicas: 2\n"
    assert argocd.posts("/rollback") == [] and argocd.posts("/sync") == []


def test_the_hook_hands_off_a_deferred_release_failing_at_once_with_when_gatekeeper_syncs(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path, argocd: FakeArgoCd
) -> None:
    settings = make_settings(database_url, *config_tree, tokens_file, ARGOCD_SERVER=argocd.url,
                             ARGOCD_API_TOKEN=ARGOCD_TOKEN)  # fmt: skip
    server = start_server(settings, MutableClock(CUTOFF))
    try:
        started = time.monotonic()
        process = run_gate(server.url, "--target", "argocd:odoo-prod", "--revision", NEW, wait="handoff")
        out, err = process.communicate(timeout=30)
        assert process.returncode == 1, (out, err)
        assert time.monotonic() - started < 15  # no 30-minute wait holding the Job
        assert "dispatch_cutoff" in out
        assert f"gatekeeper will sync argocd:odoo-prod@{NEW[:12]} itself when the gate opens at" in err
        assert "16:00" in err  # the end of the cut-off, local time
    finally:
        server.stop()


def test_a_hook_handing_off_to_a_server_that_cannot_sync_is_told_to_sync_again_itself(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path
) -> None:
    """No Argo CD API on the server: nothing would sync the release, and the hook says so."""
    server = start_server(make_settings(database_url, *config_tree, tokens_file), MutableClock(CUTOFF))
    try:
        with server.client("hook") as client:
            answer = client.post("/v1/gate", json={"target": "argocd:odoo-prod", "revision": NEW}).json()
        assert answer["verdict"] == "defer" and answer["goes_out_by_itself"] is False
        process = run_gate(server.url, "--target", "argocd:odoo-prod", "--revision", NEW, wait="handoff")
        _out, err = process.communicate(timeout=30)
        assert process.returncode == 1
        assert f"gatekeeper does not sync argocd:odoo-prod@{NEW[:12]} itself" in err
        assert "ARGOCD_SERVER" in err and "sync it again when the gate opens at" in err
    finally:
        server.stop()


def test_a_manual_rollback_of_an_applied_release_rolls_the_application_back(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path, argocd: FakeArgoCd
) -> None:
    """POST /v1/releases/{id}/rollback (a release manager) on an applied release: the rollback
    action restores the revision before it, and the release reads rolled_back."""
    argocd.add("odoo-prod", p.SHA_B, history=(p.SHA_A,))
    settings = make_settings(
        database_url, *config_tree, tokens_file, ARGOCD_TOKEN=ARGOCD_SECRET,
        ARGOCD_SERVER=argocd.url, ARGOCD_API_TOKEN=ARGOCD_TOKEN, SCHEDULER_INTERVAL=0.1,
    )
    server = start_server(settings, MutableClock(OPEN))
    try:
        with server.client("hook") as hook:
            for sha in (p.SHA_A, p.SHA_B):
                assert hook.post("/v1/gate", json={"target": "argocd:odoo-prod", "revision": sha}).json()["verdict"] == "approve"
                notify(server, "sync-succeeded", sha)
        release_id = notify(server, "sync-succeeded", p.SHA_B)["release_id"]
        with server.client("manager") as manager:
            asked = manager.post(f"/v1/releases/{release_id}/rollback", json={"reason": "checkout is broken"})
        assert asked.status_code == 200, asked.text

        def status() -> str:
            with server.client("viewer") as viewer:
                return str(viewer.get(f"/v1/releases/{release_id}").json()["status"])

        eventually(lambda: status() == "rolled_back")
    finally:
        server.stop()
    assert argocd.rollbacks == {("odoo-prod", 1): 1}

"""Issue 13 through the served app: four eyes compares people, every decision is audited, and the
chain cannot be cut unnoticed. Each test reproduces one way the old code broke a promise."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.integration import payloads as p
from tests.integration.conftest import MutableClock, Server, eventually, start_server, token_of
from tests.integration.fakes import FakeApi, start_fake
from tests.integration.test_gate_api import CUTOFF, OPEN
from tests.integration.test_people import GATEKEEPER
from tests.integration.test_webhooks import (
    ARGOCD_SECRET,
    FLUX_SECRET,
    GITHUB_SECRET,
    GITLAB_SECRET,
    hook_settings,
    post,
)

PEOPLE = {
    # role key: (name, roles, identities)
    "viewer": ("vera", ["viewer"], []),
    "hook": ("argocd-hook", ["hook"], []),
    "manager": ("alice", ["release-manager", "viewer"], ["alice@acme.io"]),
    "manager2": ("bob", ["release-manager"], []),
    "author": ("erik", ["release-manager"], ["erik@acme.io"]),
    "merger": ("frank", ["release-manager"], []),
    "breakglass": ("carol", ["release-manager", "break-glass"], []),
}


@pytest.fixture
def trusted(database_url: str, config_tree: tuple[Path, Path], tmp_path: Path) -> Iterator[Server]:
    lines = []
    for role, (name, roles, identities) in PEOPLE.items():
        digest = hashlib.sha256(token_of(role).encode()).hexdigest()
        extra = f"\n  identities: [{', '.join(identities)}]" if identities else ""
        lines.append(f"- name: {name}\n  roles: [{', '.join(roles)}]\n  token_sha256: {digest}{extra}")
    tokens = tmp_path / "people.yaml"
    tokens.write_text("\n".join(lines) + "\n")
    github_api, gitlab_api = start_fake("github"), start_fake("gitlab")
    server = start_server(hook_settings(database_url, config_tree, tokens, (github_api, gitlab_api)), MutableClock(OPEN))
    yield server
    server.stop()
    github_api.stop()
    gitlab_api.stop()


def send(server: Server, source: str, payload: dict[str, Any], event: str = "") -> httpx.Response:
    body = p.encode(payload)
    headers = {
        "github": lambda: p.github_headers(GITHUB_SECRET, event, body),
        "gitlab": lambda: p.gitlab_headers(GITLAB_SECRET, event),
        "flux": lambda: p.flux_headers(FLUX_SECRET, body),
        "argocd": lambda: p.argocd_headers(ARGOCD_SECRET),
    }[source]()
    response = post(server, source, body, headers)
    assert response.status_code in (200, 202), response.text
    return response


def finance_release(server: Server, sha: str) -> int:
    """A release of the finance app (2 approvals, four eyes) at ``sha``."""
    with server.client("hook") as client:
        answer = client.post("/v1/gate", json={"target": "argocd:odoo-finance", "revision": sha})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["release_id"])


def approve(server: Server, role: str, release_id: int, **body: Any) -> httpx.Response:
    with server.client(role) as client:
        return client.post(f"/v1/releases/{release_id}/approve", json=body)


def audit(server: Server) -> list[dict[str, Any]]:
    with server.client("viewer") as client:
        items: list[dict[str, Any]] = []
        after = 0
        while True:
            page = client.get("/v1/audit", params={"after": after, "limit": 1000}).json()
            items.extend(page["items"])
            if page["next"] is None:
                return items
            after = int(page["next"])


def test_a_gitlab_author_known_by_email_cannot_approve_their_own_change(trusted: Server) -> None:
    """The old code stored the commit author's display name ("erik") and compared it with token
    names; now the e-mail address of the commit author is the identity, as GitLab sends it."""
    payload = p.gitlab_push(sha=p.SHA_A)
    payload["commits"][0]["author"] = {"name": "Erik Lindqvist", "email": "Erik@Acme.io"}
    send(trusted, "gitlab", payload, "Push Hook")
    release_id = finance_release(trusted, p.SHA_A)
    refused = approve(trusted, "author", release_id)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "four_eyes"
    assert "erik@acme.io" in refused.json()["message"]
    refusals = [r for r in audit(trusted) if r["kind"] == "approval_refused"]
    assert [(r["actor"], r["subject"]) for r in refusals] == [("erik", f"release/{release_id}")]


def test_four_eyes_compares_logins_whatever_their_letter_case(trusted: Server) -> None:
    merge = p.github_merge(sha=p.SHA_B)
    merge["pull_request"]["user"]["login"] = "Erik"
    send(trusted, "github", merge, "pull_request")
    release_id = finance_release(trusted, p.SHA_B)
    assert approve(trusted, "author", release_id).status_code == 403


def test_a_later_push_of_the_merge_commit_does_not_replace_the_pull_request_author(trusted: Server) -> None:
    """GitHub sends pull_request and push in no fixed order; the push names the merger as the
    merge commit's author. The set of people only grows, and the author stays the PR's."""
    send(trusted, "github", p.github_merge(sha=p.SHA_B), "pull_request")
    push = p.github_push(sha=p.SHA_B)
    push["commits"][0]["author"] = {"name": "Frank", "email": "frank@acme.io", "username": "frank"}
    push["head_commit"]["author"] = {"name": "Frank", "username": "frank"}
    send(trusted, "github", push, "push")
    release_id = finance_release(trusted, p.SHA_B)
    assert approve(trusted, "author", release_id).status_code == 403
    assert approve(trusted, "merger", release_id).status_code == 403
    with trusted.client("viewer") as client:
        release = client.get(f"/v1/releases/{release_id}").json()
    assert (release["author"], release["merger"]) == ("erik", "frank")  # the first event's, kept


def decision_counts(server: Server, database_url: str) -> tuple[int, int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            decisions = connection.execute(text("SELECT count(*) FROM decisions")).scalar_one()
    finally:
        engine.dispose()
    records = [r for r in audit(server) if r["kind"] == "decision"]
    return int(decisions), len(records)


def test_every_decision_of_a_mixed_workload_has_its_audit_record(trusted: Server, database_url: str) -> None:
    """Gate calls, webhooks of all four sources (controller reports included), approvals, a
    refusal, break-glass and a rejection: as many decision records in the chain as decisions."""
    with trusted.client("hook") as client:
        for revision in ("m1", "m2", "m1"):
            client.post("/v1/gate", json={"target": "argocd:odoo-prod", "revision": revision})
    send(trusted, "github", p.github_push(sha=p.SHA_A), "push")
    send(trusted, "github", p.github_merge(sha=p.SHA_B), "pull_request")
    send(trusted, "gitlab", p.gitlab_push(sha="c" * 40), "Push Hook")
    send(trusted, "flux", p.flux_event("Progressing", sha="d" * 40))
    trusted.clock.set(CUTOFF)
    send(trusted, "flux", p.flux_event("ReconciliationSucceeded", sha="e" * 40))  # applied in a freeze
    send(trusted, "argocd", p.argocd_event("sync-succeeded", revision="f" * 40))  # unapproved: rollback
    release_id = finance_release(trusted, p.SHA_B)
    assert approve(trusted, "author", release_id).status_code == 403  # refused: wrote it
    assert approve(trusted, "manager", release_id).status_code == 200
    assert approve(trusted, "breakglass", release_id, break_glass=True, reason="invoice run").status_code == 200
    rejected = finance_release(trusted, "9" * 40)
    with trusted.client("manager") as client:
        assert client.post(f"/v1/releases/{rejected}/reject", json={"reason": "wrong image"}).status_code == 200
    eventually(lambda: decision_counts(trusted, database_url)[0] == decision_counts(trusted, database_url)[1])
    decisions, records = decision_counts(trusted, database_url)
    print(f"\ndecisions stored: {decisions}, decision records in the audit chain: {records}")
    assert decisions == records >= 12
    kinds = {r["kind"] for r in audit(trusted)}
    assert {"decision", "approval", "approval_refused", "break_glass", "rejection"} <= kinds
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    verified = subprocess.run(
        [GATEKEEPER, "audit", "verify"], env={**env, "GATEKEEPER_DATABASE_URL": database_url},
        capture_output=True, text=True, timeout=60,
    )
    assert verified.returncode == 0, verified.stderr


def test_deleting_the_newest_records_leaves_a_gap_the_chainer_never_fills(trusted: Server, database_url: str) -> None:
    """The old chainer reused the deleted sequence numbers, so a cut chain verified as intact."""
    with trusted.client("hook") as client:
        for revision in ("s1", "s2", "s3", "s4"):
            client.post("/v1/gate", json={"target": "argocd:odoo-prod", "revision": revision})
    eventually(lambda: len(audit(trusted)) == 4)
    with trusted.client("viewer") as client:
        head = client.get("/v1/audit/head").json()
    assert head["seq"] == 4 and len(head["hash"]) == 64
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit WHERE seq > 2"))
    engine.dispose()
    with trusted.client("hook") as client:
        client.post("/v1/gate", json={"target": "argocd:odoo-prod", "revision": "s5"})
    eventually(lambda: len(audit(trusted)) == 3)
    assert [r["seq"] for r in audit(trusted)] == [1, 2, 5]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    verified = subprocess.run(
        [GATEKEEPER, "audit", "verify"], env={**env, "GATEKEEPER_DATABASE_URL": database_url},
        capture_output=True, text=True, timeout=60,
    )
    assert verified.returncode == 1
    assert "records 3 to 4 missing" in verified.stderr, verified.stderr
    assert "2 decisions have no audit record: 3, 4" in verified.stderr
    with trusted.client() as client:
        metrics = client.get("/metrics").text
    assert "gatekeeper_audit_head_seq 5.0" in metrics


__all__ = ["FakeApi"]

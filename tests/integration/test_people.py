"""Release managers: N-of-role approvals, four eyes, break-glass, rejection, and the audit chain."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.integration import payloads as p
from tests.integration.conftest import (
    MutableClock,
    Server,
    eventually,
    gate_calls,
    make_settings,
    start_server,
    token_of,
)
from tests.integration.test_gate_api import CUTOFF, OPEN

GATEKEEPER = str(Path(sys.executable).with_name("gatekeeper"))
SECRET = "people-secret"
FINANCE = "argocd:odoo-finance"


@pytest.fixture
def people(database_url: str, config_tree: tuple[Path, Path], tokens_file: Path) -> Iterator[Server]:
    running = start_server(
        make_settings(database_url, *config_tree, tokens_file, GITHUB_SECRET=SECRET), MutableClock(OPEN)
    )
    yield running
    running.stop()


def gate(server: Server, revision: str, target: str = FINANCE) -> dict[str, Any]:
    with server.client("hook") as client:
        response = client.post("/v1/gate", json={"target": target, "revision": revision})
    assert response.status_code == 200, response.text
    return response.json()


def act(server: Server, role: str, release_id: int, action: str = "approve", **body: Any) -> httpx.Response:
    with server.client(role) as client:
        return client.post(f"/v1/releases/{release_id}/{action}", json=body)


def latest(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    release = response.json()
    return {"status": release["status"], **release["decisions"][-1]}


def record_merge(server: Server, sha: str) -> None:
    body = p.encode(p.github_merge(sha=sha))
    with server.client() as client:
        response = client.post("/webhooks/github", content=body, headers=p.github_headers(SECRET, "pull_request", body))
    assert response.status_code == 200, response.text


def test_two_distinct_release_managers_are_needed_and_the_same_person_counts_once(people: Server) -> None:
    first = gate(people, "n1")
    assert first["verdict"] == "defer"
    assert [r["code"] for r in first["reasons"]] == ["approval_missing"]
    assert first["requires"] == ["approval:release-manager"]
    assert first["not_before"] is None
    release_id = first["release_id"]
    assert latest(act(people, "manager", release_id, reason="looks good"))["status"] == "deferred"
    repeated = act(people, "manager", release_id, reason="really")  # stored once, not decided again
    again = latest(repeated)
    assert again["status"] == "deferred"
    assert "needs 2 distinct approvals" in again["reasons"][0]["message"]
    assert "has 1 (so far: alice)" in again["reasons"][0]["message"]
    assert [(a["approver"], a["reason"]) for a in repeated.json()["approvals"]] == [("alice", "looks good")]
    assert [d["trigger"] for d in repeated.json()["decisions"]] == ["presync", "approval:alice"]
    assert latest(act(people, "manager2", release_id))["status"] == "approved"
    assert gate(people, "n1")["verdict"] == "approve"


def test_four_eyes_refuses_the_author_and_the_merger(people: Server) -> None:
    record_merge(people, p.SHA_B)
    release_id = gate(people, p.SHA_B)["release_id"]
    for role, verb in (("author", "wrote"), ("merger", "merged")):
        refused = act(people, role, release_id, reason="mine")
        assert refused.status_code == 403
        assert refused.json()["error"] == "four_eyes"
        name = "erik" if role == "author" else "frank"
        assert refused.json()["message"] == f"{name} {verb} this revision and cannot approve it under four-eyes"


def test_break_glass_needs_its_role_and_a_reason(people: Server) -> None:
    release_id = gate(people, "b1")["release_id"]
    refused = act(people, "manager", release_id, reason="urgent", break_glass=True)
    assert refused.status_code == 403
    missing = act(people, "breakglass", release_id, break_glass=True)
    assert missing.status_code == 422
    assert missing.json()["field"] == "reason"
    assert act(people, "breakglass-only", release_id, reason="normal approval").status_code == 403


def test_break_glass_needs_release_manager_as_well(people: Server) -> None:
    """DESIGN §3: break-glass takes both roles; a token holding only break-glass is refused."""
    people.clock.set(CUTOFF)
    release_id = gate(people, "bg1")["release_id"]
    refused = act(people, "breakglass-only", release_id, reason="freeze, but urgent", break_glass=True)
    assert refused.status_code == 403, refused.text
    assert "release-manager" in refused.json()["message"]
    with people.client("viewer") as client:
        assert client.get(f"/v1/releases/{release_id}").json()["status"] == "deferred"


def test_a_calendar_deferral_survives_normal_approvals_and_yields_to_break_glass(people: Server) -> None:
    people.clock.set(CUTOFF)
    release_id = gate(people, "c1")["release_id"]
    act(people, "manager", release_id)
    still = latest(act(people, "manager2", release_id))
    assert still["status"] == "deferred"
    assert [r["code"] for r in still["reasons"]] == ["dispatch_cutoff"]
    broken = latest(act(people, "breakglass", release_id, reason="invoice run blocked, CFO call", break_glass=True))
    assert broken["status"] == "approved"
    assert broken["reasons"][0]["code"] == "break_glass"
    assert "dispatch_cutoff" in broken["reasons"][0]["message"]
    with people.client("viewer") as client:
        records = client.get("/v1/audit").json()["items"]
        metrics = client.get("/metrics").text
    flagged = [record for record in records if record["break_glass"]]
    assert {record["kind"] for record in flagged} == {"break_glass", "decision"}
    assert flagged[0]["actor"] == "carol"
    assert "gatekeeper_break_glass_total 1.0" in metrics


def test_a_waiting_gate_call_exits_0_once_the_approvals_are_given(people: Server) -> None:
    release_id = gate(people, "w1")["release_id"]
    env = {**os.environ, "GATEKEEPER_TOKEN": token_of("hook")}
    command = [
        GATEKEEPER,
        "gate",
        "--server",
        people.url,
        "--target",
        FINANCE,
        "--revision",
        "w1",
        "--wait",
        "60s",
        "--interval",
        "1s",
    ]
    polled = gate_calls(people)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    eventually(lambda: gate_calls(people) >= polled + 2)  # it polled twice and was deferred
    assert process.poll() is None
    act(people, "manager", release_id)
    act(people, "manager2", release_id)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0, out
    assert "requires approval:release-manager" in out


def test_a_rejected_release_stops_its_gate_with_exit_3(people: Server) -> None:
    release_id = gate(people, "r1")["release_id"]
    assert act(people, "manager", release_id, "reject", reason="wrong image").json()["status"] == "rejected"
    answer = gate(people, "r1")
    assert answer["status"] == "rejected"
    # The gate answers with the rejection, not with the decision before it.
    assert (answer["verdict"], answer["requires"], answer["not_before"]) == ("defer", [], None)
    assert [(r["code"], r["message"]) for r in answer["reasons"]] == [("rejected", "rejected by alice: wrong image")]
    env = {**os.environ, "GATEKEEPER_TOKEN": token_of("hook")}
    done = subprocess.run(
        [GATEKEEPER, "gate", "--server", people.url, "--target", FINANCE, "--revision", "r1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 3
    assert "rejected by alice: wrong image" in done.stdout
    assert "not before: never (rejected: only a new revision can go)" in done.stdout
    assert act(people, "manager", release_id).status_code == 409


def test_tampering_with_one_audit_row_is_found_by_audit_verify(
    people: Server, database_url: str, tmp_path: Path
) -> None:
    for revision in ("t1", "t2", "t3"):
        gate(people, revision)
    env = {**os.environ, "GATEKEEPER_DATABASE_URL": database_url}
    exported = subprocess.run([GATEKEEPER, "audit", "export"], env=env, capture_output=True, text=True, timeout=60)
    assert exported.returncode == 0, exported.stderr
    export = tmp_path / "audit.jsonl"
    export.write_text(exported.stdout)
    assert subprocess.run([GATEKEEPER, "audit", "verify", str(export)], capture_output=True, timeout=60).returncode == 0
    ok = subprocess.run([GATEKEEPER, "audit", "verify"], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "intact: 3 records" in ok.stdout
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit SET actor = 'mallory' WHERE seq = 2"))
    engine.dispose()
    broken = subprocess.run([GATEKEEPER, "audit", "verify"], env=env, capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1
    assert "record 2" in broken.stderr


def test_the_releases_cli_lists_shows_and_approves(people: Server, tmp_path: Path) -> None:
    release_id = gate(people, "cli1")["release_id"]
    token = tmp_path / "token"
    token.write_text(token_of("manager"))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [GATEKEEPER, *args, "--server", people.url, "--token-file", str(token)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = cli("releases", "list", "--status", "deferred")
    assert listed.returncode == 0, listed.stderr
    assert "argocd:odoo-finance" in listed.stdout and "approval_missing" in listed.stdout
    as_json = cli("releases", "show", str(release_id), "--json")
    assert as_json.returncode == 0
    assert "Europe/Berlin" not in as_json.stdout  # --json stays UTC
    approved = cli("releases", "approve", str(release_id), "--reason", "ok")
    assert approved.returncode == 0
    # People read local time (UI_TIMEZONE) beside UTC: "2026-11-24T09:00:00Z (10:00 Europe/Berlin)"
    assert re.search(r"Z \(\d\d:\d\d Europe/Berlin\) alice \(approval\): ok", approved.stdout), approved.stdout
    for at in (CUTOFF, OPEN, CUTOFF):  # a hook polling while the cut-off closes and opens the gate
        people.clock.set(at)
        gate(people, "cli1")
    shown = cli("releases", "show", str(release_id))
    assert shown.returncode == 0, shown.stderr
    assert "decisions (the last 3 of 5; --json shows all):" in shown.stdout
    token.write_text(token_of("viewer"))
    assert cli("releases", "approve", str(release_id)).returncode == 4


def test_a_rejection_needs_a_reason(people: Server) -> None:
    release_id = gate(people, "no-reason")["release_id"]
    for body in ({}, {"reason": "   "}):
        refused = act(people, "manager", release_id, "reject", **body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "reason"
    with people.client("viewer") as client:
        assert client.get(f"/v1/releases/{release_id}").json()["status"] != "rejected"

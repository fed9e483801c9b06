"""When will it ship (issue 18): ``GET /v1/releases/{id}`` and ``releases show`` give a waiting
release's instant (calendar and freezes), what else blocks it, and its target's queue.

Through the served app on SQLite and PostgreSQL; the conftest's odoo-finance policy needs two
approvals under four eyes and has the dispatch cut-off (14:00-16:00 Berlin, 13:00-15:00 UTC).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.integration.conftest import Server, token_of

GATEKEEPER = str(Path(sys.executable).with_name("gatekeeper"))
FINANCE = "argocd:odoo-finance"
IN_CUTOFF = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)  # a Tuesday, 14:30 in Berlin


def gate(server: Server, revision: str, target: str = FINANCE) -> dict[str, Any]:
    with server.client("hook") as client:
        answer = client.post("/v1/gate", json={"target": target, "revision": revision})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def shipping(server: Server, release_id: int) -> dict[str, Any] | None:
    with server.client("viewer") as client:
        answer = client.get(f"/v1/releases/{release_id}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] | None = answer.json()["shipping"]
    return found


def test_a_deferred_release_says_when_the_calendar_lets_it_go_and_how_many_approvals_it_still_needs(
    server: Server,
) -> None:
    server.clock.set(IN_CUTOFF)
    release_id = gate(server, "a" * 40)["release_id"]
    found = shipping(server, release_id)
    assert found is not None
    assert (found["as_of"], found["at"]) == ("2026-11-24T13:30:00Z", "2026-11-24T15:00:00Z")
    assert [reason["code"] for reason in found["closed_by"]] == ["dispatch_cutoff"]
    assert [reason["code"] for reason in found["blocked_by"]] == ["approval_missing"]
    assert found["approvals"] == [
        {"policy": "odoo-finance", "role": "release-manager", "required": 2, "given": 0, "approvers": []}
    ]
    assert [(q["id"], q["status"]) for q in found["queue"]] == [(release_id, "deferred")]
    assert found["position"] == 1

    with server.client("manager2") as bob:
        assert bob.post(f"/v1/releases/{release_id}/approve", json={}).status_code == 200
    found = shipping(server, release_id)
    assert found is not None
    assert [(c["given"], c["required"], c["approvers"]) for c in found["approvals"]] == [(1, 2, ["bob"])]

    # A freeze past the cut-off moves the instant; the freeze's reason is among what closes it.
    with server.client("manager") as alice:
        frozen = alice.post(
            "/v1/freezes", json={"targets": [FINANCE], "end": "2026-11-24T16:00:00Z", "reason": "ledger migration"}
        )
    assert frozen.status_code == 201, frozen.text
    found = shipping(server, release_id)
    assert found is not None
    assert found["at"] == "2026-11-24T16:00:00Z"
    assert [reason["code"] for reason in found["closed_by"]] == ["adhoc_freeze", "dispatch_cutoff"]
    assert "ledger migration" in found["closed_by"][0]["message"]


def test_the_queue_holds_the_targets_releases_not_yet_applied_and_a_finished_one_has_no_shipping(
    server: Server,
) -> None:
    server.clock.set(datetime(2026, 11, 24, 9, 0, tzinfo=UTC))
    first = gate(server, "b" * 40, "argocd:odoo-prod")
    assert first["status"] == "approved"
    found = shipping(server, first["release_id"])
    assert found is not None
    assert found["at"] == found["as_of"] == "2026-11-24T09:00:00Z"
    assert (found["closed_by"], found["blocked_by"], found["approvals"]) == ([], [], [])
    newer = gate(server, "c" * 40, "argocd:odoo-prod")  # supersedes the first
    assert shipping(server, first["release_id"]) is None
    found = shipping(server, newer["release_id"])
    assert found is not None
    assert [q["id"] for q in found["queue"]] == [newer["release_id"]] and found["position"] == 1


def test_releases_show_prints_when_it_can_go_beside_local_time(server: Server) -> None:
    server.clock.set(IN_CUTOFF)
    release_id = gate(server, "d" * 40)["release_id"]
    env = {**os.environ, "GATEKEEPER_TOKEN": token_of("viewer"), "GATEKEEPER_UI_TIMEZONE": "Europe/Berlin"}
    shown = subprocess.run(
        [GATEKEEPER, "releases", "show", str(release_id), "--server", server.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert "calendar lets it go: 2026-11-24T15:00:00Z (16:00 Europe/Berlin)" in shown.stdout
    assert "closed by dispatch_cutoff:" in shown.stdout
    assert "then: nothing starts it: sync it again" in shown.stdout  # this server has no Argo CD API
    assert "approvals: 0 of 2 by release-manager (odoo-finance)" in shown.stdout
    assert "still blocked by approval_missing:" in shown.stdout
    assert f"queue of {FINANCE}: 1 of 1 ({release_id} deferred)" in shown.stdout

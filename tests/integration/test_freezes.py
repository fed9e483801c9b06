"""Ad-hoc freezes (issue 18, DESIGN §3-§5) through the served app, on SQLite and PostgreSQL.

A release manager stops the line with ``POST /v1/freezes``; the gate, ``status``, ``windows`` and
the ``.ics`` feed all say ``adhoc_freeze`` with the author's reason; releases approved but not yet
applied are deferred; lifting reopens. Both are in the audit log. Two real ``gatekeeper serve``
processes on one PostgreSQL show that a freeze reaches the other replica within a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from icalendar import Calendar

from tests.integration.conftest import Server, eventually, serve_process, token_of, write_tokens

GATEKEEPER = str(Path(sys.executable).with_name("gatekeeper"))
PROD = "argocd:odoo-prod"
T9 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Berlin: the gate is open
OUTAGE = "payment provider outage, INC-4711"


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    """The conftest's tokens and a release manager limited to the staging targets."""
    path = write_tokens(tmp_path)
    digest = hashlib.sha256(token_of("staging-manager").encode()).hexdigest()
    limited = f'- name: sam\n  roles: [release-manager, viewer]\n  token_sha256: {digest}\n  targets: ["argocd:odoo-staging*"]\n'
    path.write_text(path.read_text() + limited)
    return path


def gate(server: Server, revision: str = "a" * 40, target: str = PROD) -> dict[str, Any]:
    with server.client("hook") as client:
        answer = client.post("/v1/gate", json={"target": target, "revision": revision})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def start(server: Server, role: str = "manager", **body: Any) -> httpx.Response:
    with server.client(role) as client:
        return client.post("/v1/freezes", json={"targets": ["argocd:odoo-prod*"], "reason": OUTAGE} | body)


def lift(server: Server, freeze_id: int, role: str = "manager", **body: Any) -> httpx.Response:
    with server.client(role) as client:
        return client.request("DELETE", f"/v1/freezes/{freeze_id}", json=body)


def codes(reasons: list[dict[str, Any]]) -> list[str]:
    return [reason["code"] for reason in reasons]


def test_a_freeze_closes_the_gate_with_the_authors_reason_and_lifting_it_reopens(server: Server) -> None:
    server.clock.set(T9)
    first = gate(server)
    assert first["verdict"] == "approve" and first["status"] == "approved"

    started = start(server)
    assert started.status_code == 201, started.text
    freeze = started.json()
    assert freeze | {"id": 0} == {
        "id": 0,
        "targets": ["argocd:odoo-prod*"],
        "start": "2026-11-24T09:00:00Z",
        "end": None,
        "reason": OUTAGE,
        "code": "adhoc_freeze",
        "state": "active",
        "created_by": "alice",
        "created_at": "2026-11-24T09:00:00Z",
        "lifted_at": None,
        "lifted_by": None,
        "lift_reason": None,
    }
    # The release approved but not yet applied was decided again: deferred, by the freeze.
    with server.client("viewer") as client:
        release = client.get(f"/v1/releases/{first['release_id']}").json()
    assert release["status"] == "deferred"
    assert release["decisions"][-1]["trigger"] == "freeze:alice"
    assert codes(release["decisions"][-1]["reasons"]) == ["adhoc_freeze"]

    server.clock.set(T9 + timedelta(minutes=30))
    frozen = gate(server)
    assert (frozen["verdict"], frozen["status"], frozen["not_before"]) == ("defer", "deferred", None)
    (reason,) = frozen["reasons"]
    assert (reason["check"], reason["code"], reason["until"]) == ("calendar", "adhoc_freeze", None)
    assert f"freeze {freeze['id']} by alice: {OUTAGE}" in reason["message"]
    # Another revision of another matching target, and one the freeze does not match.
    assert codes(gate(server, "b" * 40, "argocd:odoo-prod-eu")["reasons"]) == ["adhoc_freeze"]
    assert gate(server, "c" * 40, "argocd:odoo-staging")["would_defer"] == []

    with server.client("viewer") as client:
        status = client.get("/v1/status", params={"target": PROD}).json()
        listed = client.get("/v1/freezes").json()
    assert status["closed"] is True and codes(status["reasons"]) == ["adhoc_freeze"]
    assert OUTAGE in status["reasons"][0]["message"]
    assert status["next_open"] is None
    assert [item["id"] for item in listed["items"]] == [freeze["id"]] and listed["next"] is None
    with server.client() as anonymous:
        assert 'gatekeeper_freezes{state="active"} 1.0' in anonymous.get("/metrics").text

    lifted = lift(server, freeze["id"], reason="provider back, INC-4711 resolved")
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["state"] == "lifted"
    assert (lifted.json()["lifted_by"], lifted.json()["lifted_at"]) == ("alice", "2026-11-24T09:30:00Z")
    with server.client("viewer") as client:
        release = client.get(f"/v1/releases/{first['release_id']}").json()
        assert client.get("/v1/freezes").json()["items"] == []
        history = client.get("/v1/freezes", params={"all": "true"}).json()["items"]
        window = client.get(
            "/v1/windows", params={"target": PROD, "from": "2026-11-24T08:00:00Z", "to": "2026-11-24T12:00:00Z"}
        ).json()
        feed = client.get("/v1/calendar.ics", params={"target": PROD}).text
        audit = client.get("/v1/audit").json()["items"]
    # Lifting decided the deferred release again: approved, the gate open.
    assert (release["status"], release["decisions"][-1]["trigger"]) == ("approved", "freeze_lift:alice")
    assert gate(server)["verdict"] == "approve"
    assert [item["state"] for item in history] == ["lifted"]
    # The half hour it was in force stays in the windows and in the feed.
    assert window["closed"] == [
        {"start": "2026-11-24T09:00:00Z", "end": "2026-11-24T09:30:00Z", "codes": ["adhoc_freeze"]}
    ]
    (event,) = [e for e in Calendar.from_ical(feed).walk("VEVENT") if "adhoc_freeze" in str(e["summary"])]
    assert (event.decoded("dtstart"), event.decoded("dtend")) == (T9, T9 + timedelta(minutes=30))
    assert f"freeze {freeze['id']} by alice: {OUTAGE}" in str(event["description"])
    kinds = {record["kind"]: record for record in audit if record["kind"].startswith("freeze")}
    assert set(kinds) == {"freeze", "freeze_lift"}
    assert kinds["freeze"]["actor"] == "alice" and kinds["freeze"]["data"]["reason"] == OUTAGE
    assert kinds["freeze"]["subject"] == f"freeze/{freeze['id']}"
    assert kinds["freeze_lift"]["data"]["lift_reason"] == "provider back, INC-4711 resolved"

    again = lift(server, freeze["id"], reason="twice")
    assert again.status_code == 409 and again.json()["error"] == "conflict"


def test_a_freeze_with_an_end_defers_until_the_gate_opens_after_it(server: Server) -> None:
    """A freeze until 13:00 UTC runs into the dispatch cut-off (14:00-16:00 Berlin): the gate opens
    at 15:00 UTC, and the scheduled end shows in status and windows."""
    server.clock.set(T9)
    answer = start(server, end="2026-11-24T14:00:00+01:00")
    assert answer.status_code == 201, answer.text
    assert answer.json()["end"] == "2026-11-24T13:00:00Z"
    decision = gate(server)
    assert decision["verdict"] == "defer"
    assert decision["not_before"] == "2026-11-24T15:00:00Z"
    assert decision["reasons"][0]["until"] == "2026-11-24T13:00:00Z"
    with server.client("viewer") as client:
        window = client.get(
            "/v1/windows", params={"target": PROD, "from": "2026-11-24T09:00:00Z", "to": "2026-11-24T16:00:00Z"}
        ).json()
    assert window["closed"] == [
        {"start": "2026-11-24T09:00:00Z", "end": "2026-11-24T15:00:00Z", "codes": ["adhoc_freeze", "dispatch_cutoff"]}
    ]


def test_a_scheduled_freeze_is_the_next_close_and_can_be_lifted_before_it_starts(server: Server) -> None:
    server.clock.set(T9)
    answer = start(server, start="2026-11-24T10:00:00Z", end="2026-11-24T11:00:00Z")
    assert answer.status_code == 201, answer.text
    assert answer.json()["state"] == "scheduled"
    assert gate(server)["verdict"] == "approve"
    with server.client("viewer") as client:
        status = client.get("/v1/status", params={"target": PROD}).json()
    assert (status["closed"], status["next_close"], status["next_close_reason"]) == (
        False,
        "2026-11-24T10:00:00Z",
        "adhoc_freeze",
    )
    assert lift(server, answer.json()["id"], reason="not needed after all").status_code == 200
    with server.client("viewer") as client:
        status = client.get("/v1/status", params={"target": PROD}).json()
    assert status["next_close"] == "2026-11-24T13:00:00Z"  # the dispatch cut-off again


def test_approved_releases_are_deferred_when_a_scheduled_freeze_begins(server: Server) -> None:
    server.clock.set(T9)
    approved = gate(server)
    freeze = start(server, start="2026-11-24T10:00:00Z").json()
    assert freeze["state"] == "scheduled"

    def latest() -> dict[str, Any]:
        with server.client("viewer") as client:
            release: dict[str, Any] = client.get(f"/v1/releases/{approved['release_id']}").json()
        return release

    assert latest()["status"] == "approved"
    server.clock.set(T9 + timedelta(hours=1))
    eventually(lambda: latest()["status"] == "deferred", timeout=10)
    decision = latest()["decisions"][-1]
    assert decision["trigger"] == f"freeze_begun:{freeze['id']}"
    assert codes(decision["reasons"]) == ["adhoc_freeze"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        pytest.param({"targets": ["odoo-prod*"]}, "targets.0", "matches no target", id="glob-without-kind"),
        pytest.param({"targets": ["argocd:odoo-[prod"]}, "targets.0", "without its ']'", id="unclosed-class"),
        pytest.param({"targets": ["argocd:odoo-prod"]}, None, "", id="a-literal-target-is-fine"),
        pytest.param({"targets": ["argo"]}, "targets.0", "is not of the form", id="literal-not-a-target"),
        pytest.param({"targets": []}, "targets", "at least 1", id="no-targets"),
        pytest.param({"targets": "argocd:*"}, "targets", "list", id="targets-not-a-list"),
        pytest.param({"start": "2026-11-24T10:00:00"}, "start", "no UTC offset", id="start-without-offset"),
        pytest.param({"end": "tomorrow"}, "end", "not an RFC 3339 instant", id="end-not-an-instant"),
        pytest.param({"end": "2026-11-24T08:00:00Z"}, "end", "must be in the future", id="end-in-the-past"),
        pytest.param(
            {"start": "2026-11-24T12:00:00Z", "end": "2026-11-24T11:00:00Z"}, "end", "after the start", id="end-first"
        ),
        pytest.param({"duration": "0m"}, "duration", "is zero", id="zero-duration"),
        pytest.param({"duration": "soon"}, "duration", "is not of the form", id="duration-not-a-duration"),
        pytest.param({"duration": "99999999d"}, "duration", "longer than", id="duration-too-long"),
        pytest.param(
            {"duration": "2h", "end": "2026-11-24T12:00:00Z"}, "duration", "not both", id="end-and-duration"
        ),
        pytest.param({"reason": "  "}, "reason", "needs a reason", id="blank-reason"),
        pytest.param({"reason": None}, "reason", "", id="no-reason"),
        pytest.param({"code": "x"}, "code", "unknown field", id="unknown-field"),
    ],
)
def test_a_bad_freeze_is_422_naming_the_field(
    server: Server, body: dict[str, Any], field: str | None, message: str
) -> None:
    server.clock.set(T9)
    full = {"targets": ["argocd:odoo-prod*"], "reason": OUTAGE} | body
    with server.client("manager") as client:
        answer = client.post("/v1/freezes", json={k: v for k, v in full.items() if v is not None})
        stored = client.get("/v1/freezes").json()["items"]
    if field is None:
        assert answer.status_code == 201, answer.text
        return
    assert stored == []
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_request"
    assert answer.json()["field"] == field
    assert message in answer.json()["message"]


def test_only_a_release_manager_starts_or_lifts_a_freeze(server: Server) -> None:
    server.clock.set(T9)
    for role in ("viewer", "hook", "breakglass-only"):
        refused = start(server, role)
        assert refused.status_code == 403, (role, refused.text)
        assert refused.json()["error"] == "forbidden" and "release-manager" in refused.json()["message"]
    with server.client() as anonymous:
        assert anonymous.post("/v1/freezes", json={"targets": ["*"], "reason": "x"}).status_code == 401
        assert anonymous.get("/v1/freezes").status_code == 401
    freeze = start(server).json()
    assert lift(server, freeze["id"], "viewer", reason="no").status_code == 403
    assert lift(server, freeze["id"], "hook", reason="no").status_code == 403
    blank = lift(server, freeze["id"], reason=" ")
    assert blank.status_code == 422
    assert blank.json() == {"error": "invalid_request", "message": "reason: lifting a freeze needs a reason", "field": "reason"}
    missing = lift(server, 987654, reason="gone")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    with server.client("viewer") as client:
        assert [item["state"] for item in client.get("/v1/freezes").json()["items"]] == ["active"]
    assert gate(server)["verdict"] == "defer"


def test_a_duration_counts_from_the_start_on_the_servers_clock(server: Server) -> None:
    server.clock.set(T9)
    answer = start(server, start="2026-11-24T11:00:00+01:00", duration="1h30m")
    assert answer.status_code == 201, answer.text
    assert (answer.json()["start"], answer.json()["end"]) == ("2026-11-24T10:00:00Z", "2026-11-24T11:30:00Z")


def test_a_token_limited_to_targets_freezes_only_globs_they_cover(server: Server) -> None:
    server.clock.set(T9)
    own = start(server, "staging-manager", targets=["argocd:odoo-staging-eu*"])
    assert own.status_code == 201, own.text
    wider = start(server, "staging-manager", targets=["argocd:odoo-staging-eu*", "argocd:*"])
    assert wider.status_code == 403 and wider.json()["field"] == "targets"
    assert "argocd:*" in wider.json()["message"]
    prod = start(server).json()
    assert lift(server, prod["id"], "staging-manager", reason="not mine").status_code == 403
    assert lift(server, own.json()["id"], "staging-manager", reason="done").status_code == 200


def test_the_freeze_cli_starts_lists_and_lifts(server: Server) -> None:
    server.clock.set(T9)
    env = {**os.environ, "GATEKEEPER_TOKEN": token_of("manager"), "GATEKEEPER_UI_TIMEZONE": "Europe/Berlin"}

    def cli(*args: str, role: str = "manager") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [GATEKEEPER, "freeze", *args, "--server", server.url],
            env=env | {"GATEKEEPER_TOKEN": token_of(role)},
            capture_output=True,
            text=True,
            timeout=60,
        )

    started = cli("start", "--target", "argocd:odoo-prod*", "--target", "git:acme/*", "--reason", OUTAGE, "--for", "2h")
    assert started.returncode == 0, started.stderr
    assert "freeze 1 active" in started.stdout
    assert "2026-11-24T11:00:00Z (12:00 Europe/Berlin)" in started.stdout
    assert gate(server)["verdict"] == "defer"
    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    assert "argocd:odoo-prod*,git:acme/*" in listed.stdout and OUTAGE in listed.stdout
    assert "2026-11-24T09:00:00Z (10:00 Europe/Berlin)" in listed.stdout
    as_json = cli("list", "--json")
    assert [item["targets"] for item in json.loads(as_json.stdout)["items"]] == [
        ["argocd:odoo-prod*", "git:acme/*"]
    ]
    assert cli("start", "--target", "argocd:*", "--reason", "no", role="viewer").returncode == 4
    bad = cli("start", "--target", "prod*", "--reason", "typo")
    assert bad.returncode == 2 and "targets.0" in bad.stderr
    assert cli("lift", "1").returncode == 2  # no reason
    lifted = cli("lift", "1", "--reason", "resolved")
    assert lifted.returncode == 0, lifted.stderr
    assert "freeze 1 lifted" in lifted.stdout
    assert gate(server)["verdict"] == "approve"
    assert "no freeze in force" in cli("list").stdout
    assert "lifted" in cli("list", "--all").stdout


# --- two replicas ---------------------------------------------------------------------------------

SHOP_POLICY = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: shop}
spec:
  targets: ["argocd:shop-*"]
"""




@pytest.fixture
def replicas(pg_schema_url: Any, tmp_path: Path, tokens_file: Path) -> Iterator[tuple[str, str]]:
    policies, calendars = tmp_path / "shop-policies", tmp_path / "shop-calendars"
    policies.mkdir()
    calendars.mkdir()
    (policies / "shop.yaml").write_text(textwrap.dedent(SHOP_POLICY))
    url = pg_schema_url()
    first, a = serve_process(url, policies, calendars, tokens_file, AUTO_MIGRATE="true")
    try:
        second, b = serve_process(url, policies, calendars, tokens_file)
    except BaseException:
        a.kill()
        raise
    yield first, second
    for process in (a, b):
        process.terminate()
    for process in (a, b):
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def headers(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_of(role)}"}


def until_verdict(base: str, verdict: str, body: dict[str, str], limit: float = 5.0) -> tuple[float, dict[str, Any]]:
    """Seconds until a gate call answered by ``base`` gives ``verdict`` (polled every 20 ms)."""
    began = time.monotonic()
    with httpx.Client(base_url=base, headers=headers("hook"), timeout=10) as client:
        while True:
            answer: dict[str, Any] = client.post("/v1/gate", json=body).json()
            if answer["verdict"] == verdict or time.monotonic() - began > limit:
                return time.monotonic() - began, answer
            time.sleep(0.02)


def test_a_freeze_started_on_one_replica_closes_the_gate_on_the_other_within_a_second(
    replicas: tuple[str, str],
) -> None:
    first, second = replicas
    body = {"target": "argocd:shop-prod", "revision": "d" * 40}
    took, answer = until_verdict(second, "approve", body)
    assert answer["verdict"] == "approve", answer
    with httpx.Client(base_url=first, headers=headers("manager"), timeout=10) as manager:
        started = manager.post("/v1/freezes", json={"targets": ["argocd:shop-*"], "reason": OUTAGE})
        assert started.status_code == 201, started.text
        took, answer = until_verdict(second, "defer", body)
        print(f"freeze seen by the other replica after {took * 1000:.0f} ms")
        assert answer["verdict"] == "defer" and took < 1.0, (took, answer)
        assert codes(answer["reasons"]) == ["adhoc_freeze"] and OUTAGE in answer["reasons"][0]["message"]
        with httpx.Client(base_url=second, headers=headers("viewer"), timeout=10) as viewer:
            feed = viewer.get("/v1/calendar.ics", params={"target": "argocd:shop-prod"}).text
            assert "adhoc_freeze" in feed
            time.sleep(1.1)  # the freeze's span in the feed is whole seconds: let it last one
            freeze_id = started.json()["id"]
            lifted = manager.request("DELETE", f"/v1/freezes/{freeze_id}", json={"reason": "resolved"})
            assert lifted.status_code == 200, lifted.text
            took, answer = until_verdict(second, "approve", body)
            print(f"lift seen by the other replica after {took * 1000:.0f} ms")
            assert answer["verdict"] == "approve" and took < 1.0, (took, answer)
            kinds = [record["kind"] for record in viewer.get("/v1/audit", params={"limit": 1000}).json()["items"]]
            feed = viewer.get("/v1/calendar.ics", params={"target": "argocd:shop-prod"}).text
    assert kinds.count("freeze") == 1 and kinds.count("freeze_lift") == 1
    lifted_at = datetime.fromisoformat(lifted.json()["lifted_at"].replace("Z", "+00:00"))
    assert f"DTEND:{lifted_at:%Y%m%dT%H%M%SZ}" in feed and "adhoc_freeze" in feed

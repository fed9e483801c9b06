"""The gate and release routes through real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.conftest import REPO
from tests.integration.conftest import MutableClock, Server, make_settings, start_server

# Tuesday 2026-11-24, Europe/Berlin is UTC+1.
OPEN = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 10:00 local: business hours, no cut-off
CUTOFF = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)  # 14:30 local: dispatch cut-off until 16:00


def gate(server: Server, revision: str, target: str = "argocd:odoo-prod", role: str = "hook") -> dict:
    with server.client(role) as client:
        response = client.post("/v1/gate", json={"target": target, "revision": revision, "trigger": "presync"})
    assert response.status_code == 200, response.text
    return response.json()


def test_gate_approves_inside_business_hours_with_the_decision_shape(server: Server) -> None:
    server.clock.set(OPEN)
    body = gate(server, "a1")
    assert body["verdict"] == "approve"
    assert body["status"] == "approved"
    assert set(body) >= {
        "release_id",
        "target",
        "revision",
        "verdict",
        "reasons",
        "not_before",
        "requires",
        "policy_hash",
        "decided_at",
    }
    assert body["decided_at"] == "2026-11-24T09:00:00Z"
    assert len(body["policy_hash"]) == 64


def test_gate_defers_in_the_cutoff_and_approves_when_asked_again_after_it(server: Server) -> None:
    server.clock.set(CUTOFF)
    first = gate(server, "b1")
    assert first["verdict"] == "defer"
    assert [r["code"] for r in first["reasons"]] == ["dispatch_cutoff"]
    assert first["reasons"][0]["until"] == "2026-11-24T15:00:00Z"
    assert first["not_before"] == "2026-11-24T15:00:00Z"
    server.clock.set(datetime(2026, 11, 24, 15, 0, tzinfo=UTC))
    second = gate(server, "b1")
    assert second["verdict"] == "approve"
    assert second["release_id"] == first["release_id"]
    with server.client("viewer") as client:
        release = client.get(f"/v1/releases/{first['release_id']}").json()
    assert release["status"] == "approved"
    assert [d["verdict"] for d in release["decisions"]] == ["defer", "approve"]


def test_a_new_revision_supersedes_the_open_release_which_then_keeps_its_last_decision(server: Server) -> None:
    server.clock.set(CUTOFF)
    old = gate(server, "c1")
    new = gate(server, "c2")
    assert new["release_id"] != old["release_id"]
    again = gate(server, "c1")
    assert again["status"] == "superseded"
    assert again["decided_at"] == old["decided_at"]
    with server.client("viewer") as client:
        listed = client.get("/v1/releases", params={"status": "superseded"}).json()
    assert [item["revision"] for item in listed["items"]] == ["c1"]


def test_observe_mode_answers_approve_and_says_what_it_would_have_deferred(server: Server) -> None:
    server.clock.set(CUTOFF)
    body = gate(server, "s1", target="argocd:odoo-staging")
    assert body["verdict"] == "approve"
    assert [r["code"] for r in body["would_defer"]] == ["dispatch_cutoff"]


def test_an_ungoverned_target_is_deferred_with_no_policy(server: Server) -> None:
    body = gate(server, "u1", target="argocd:billing")
    assert body["verdict"] == "defer"
    assert body["reasons"][0]["code"] == "no_policy"


def test_release_lists_are_paginated_newest_first(server: Server) -> None:
    server.clock.set(OPEN)
    for number in range(5):
        gate(server, f"p{number}", target=f"argocd:odoo-prod-{number}")
    seen: list[str] = []
    cursor = None
    with server.client("viewer") as client:
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/releases", params=params).json()
            seen.extend(item["revision"] for item in page["items"])
            cursor = page["next"]
            if cursor is None:
                break
    assert seen == ["p4", "p3", "p2", "p1", "p0"]


def test_tokens_are_required_and_roles_are_enforced(server: Server) -> None:
    request = {"target": "argocd:odoo-prod", "revision": "t1"}
    with server.client() as anonymous:
        assert anonymous.post("/v1/gate", json=request).status_code == 401
    with server.client("viewer") as viewer:
        refused = viewer.post("/v1/gate", json=request)
        assert refused.status_code == 403
        assert refused.json()["error"] == "forbidden"
    with server.client("hook") as hook:
        assert hook.get("/v1/releases").status_code == 403
    with server.client("narrow-hook") as narrow:
        assert narrow.post("/v1/gate", json=request).status_code == 403
        assert narrow.post("/v1/gate", json={**request, "target": "argocd:odoo-staging"}).status_code == 200


def test_health_readiness_metrics_and_openapi_need_no_token(server: Server) -> None:
    gate(server, "m1")
    with server.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["database"] == "ok"
        assert ready.json()["config"]["status"] == "ok"
        assert isinstance(ready.json()["config"]["not_enforced"], list)
        metrics = client.get("/metrics").text
        assert 'gatekeeper_decisions_total{verdict="approve"}' in metrics
        assert "gatekeeper_http_request_duration_seconds_bucket" in metrics
        assert 'gatekeeper_config_status{status="ok"} 1.0' in metrics
        assert client.get("/openapi.json").json()["paths"]["/v1/gate"]


def test_the_calendar_feed_is_icalendar_and_accepts_a_query_token(server: Server) -> None:
    import icalendar

    with server.client() as client:
        assert client.get("/v1/calendar.ics", params={"target": "argocd:odoo-prod"}).status_code == 401
        response = client.get("/v1/calendar.ics", params={"target": "argocd:odoo-prod", "token": "test-token-viewer"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    feed = icalendar.Calendar.from_ical(response.content)
    events = list(feed.walk("VEVENT"))
    assert events
    assert all("Releases closed" in str(event["SUMMARY"]) for event in events)


def test_the_calendar_feed_shows_the_same_events_all_day(server: Server) -> None:
    """A subscribed calendar refreshes the feed every few hours: the events (UID, start, end) must
    not change with the instant it is fetched, also those at the feed's edges."""
    import icalendar

    def events_at(instant: datetime) -> set[tuple[str, str, str]]:
        server.clock.set(instant)
        with server.client("viewer") as client:
            response = client.get("/v1/calendar.ics", params={"target": "argocd:odoo-prod"})
        assert response.status_code == 200
        feed = icalendar.Calendar.from_ical(response.content)
        return {(str(e["UID"]), e["DTSTART"].dt.isoformat(), e["DTEND"].dt.isoformat()) for e in feed.walk("VEVENT")}

    morning = events_at(datetime(2026, 11, 24, 0, 0, 1, tzinfo=UTC))
    assert morning
    assert events_at(datetime(2026, 11, 24, 9, 17, 42, tzinfo=UTC)) == morning
    assert events_at(datetime(2026, 11, 24, 23, 59, 59, tzinfo=UTC)) == morning
    # The next day the feed moves on by a day; the events both days show are the same events.
    next_day = events_at(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    both = {uid for uid, _, _ in morning} & {uid for uid, _, _ in next_day}
    assert len(both) >= len(morning) - 3
    assert {e for e in morning if e[0] in both} == {e for e in next_day if e[0] in both}


def test_readyz_says_the_shipped_policies_set_nothing_this_version_does_not_enforce(
    tmp_path: Path, tokens_file: Path
) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'db.sqlite'}", REPO / "policies", REPO / "calendars", tokens_file)
    running = start_server(settings, MutableClock(OPEN))
    try:
        with running.client() as client:
            config = client.get("/readyz").json()["config"]
    finally:
        running.stop()
    assert config["status"] == "ok"
    assert config["not_enforced"] == []  # verification is acted on: nothing the policies set is ignored

"""Published calendars end to end: a loopback HTTP server serves feeds these tests write (Outlook,
Google and Nextcloud shapes), and ``gatekeeper serve`` (real uvicorn, SQLite) fetches them in the
background and decides on them through its HTTP API.

Refreshes run every 0.2 s (``CALENDAR_REFRESH_INTERVAL``); time past ``maxAge`` is the test clock
moving, never a sleep.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gatekeeper.cli import app
from gatekeeper.domain.policy import feed_display
from tests.ics_exports import (
    google_all_day,
    google_calendar,
    nextcloud_calendar,
    nextcloud_event,
    outlook_calendar,
    outlook_event,
)
from tests.integration.conftest import MutableClock, Server, eventually, make_settings, start_server, write_tokens

pytestmark = pytest.mark.integration

PATH = "/owa/calendar/4f0c1e2d@acme.example/a1b2c3d4e5/calendar.ics"
PEAK = "/calendar/ical/ops%40acme.example/private-9f8e7d/basic.ics"
WMS = "/remote.php/dav/public-calendars/Xk2pQ?export"
TUESDAY = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 10:00 in Berlin
EMPTY = outlook_calendar(outlook_event("elsewhere", datetime(2026, 12, 30, 8), datetime(2026, 12, 30, 9), "Later"))
CLOSING = outlook_calendar(
    outlook_event("elsewhere", datetime(2026, 12, 30, 8), datetime(2026, 12, 30, 9), "Later"),
    outlook_event("close-nov", datetime(2026, 11, 24, 8), datetime(2026, 11, 24, 18), "Month-end close",
                  rrule="FREQ=MONTHLY;COUNT=3", exdates=[datetime(2026, 12, 24, 8)]),
)


class FeedServer:
    """Serves ``feeds[path]`` with ETag and Last-Modified, answers conditional requests with 304,
    and records what it served; ``stop``/``start`` take it off and back onto the same port."""

    def __init__(self) -> None:
        self.feeds: dict[str, bytes] = {}
        self.served: list[tuple[str, int]] = []
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        feeds, served = self.feeds, self.served

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = feeds.get(self.path)
                if body is None:
                    served.append((self.path, 404))
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                status = 304 if self.headers.get("If-None-Match") == etag else 200
                served.append((self.path, status))
                self.send_response(status)
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", format_datetime(datetime(2026, 11, 1, tzinfo=UTC), usegmt=True))
                self.send_header("Content-Type", "text/calendar; charset=utf-8")
                self.send_header("Content-Length", "0" if status == 304 else str(len(body)))
                self.end_headers()
                if status == 200:
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def count(self, path: str, status: int) -> int:
        return sum(1 for served in list(self.served) if served == (path, status))


@pytest.fixture(scope="module")
def origin() -> Iterator[FeedServer]:
    server = FeedServer()
    yield server
    server.stop()


@pytest.fixture
def feeds(origin: FeedServer) -> Iterator[FeedServer]:
    origin.feeds.clear()
    origin.served.clear()
    if origin._server is None:
        origin.start()
    yield origin
    if origin._server is None:
        origin.start()


def policy(origin: FeedServer, max_age: str = "1h") -> str:
    return textwrap.dedent(f"""\
        apiVersion: gatekeeper/v1
        kind: ReleasePolicy
        metadata: {{name: finance}}
        spec:
          targets: ["argocd:finance*"]
          timezone: Europe/Berlin
          calendar:
            deny:
              - {{ics: "{origin.url(PATH)}", code: month_end_close, maxAge: {max_age}}}
        ---
        apiVersion: gatekeeper/v1
        kind: ReleasePolicy
        metadata: {{name: operations}}
        spec:
          targets: ["argocd:wms*"]
          timezone: Europe/Berlin
          calendar:
            deny:
              - {{ics: "{origin.url(PEAK)}", code: peak_season}}
              - {{ics: "{origin.url(WMS)}", code: dispatch_cutoff}}
        """)


@pytest.fixture
def tree(tmp_path: Path, feeds: FeedServer) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "calendars").mkdir()
    (tmp_path / "policies" / "finance.yaml").write_text(policy(feeds))
    write_tokens(tmp_path)
    return tmp_path


def serve(tree: Path, clock: MutableClock | None = None, **extra: object) -> Server:
    settings = make_settings(
        f"sqlite:///{tree / 'gatekeeper.db'}", tree / "policies", tree / "calendars", tree / "tokens.yaml",
        CALENDAR_CACHE_DIR=tree / "cache", CALENDAR_REFRESH_INTERVAL=0.2, CALENDAR_FETCH_RETRIES=0,
        CALENDAR_FETCH_TIMEOUT="2s", **extra,
    )
    clock = clock or MutableClock()
    clock.set(TUESDAY)
    return start_server(settings, clock)


def gate(server: Server, revision: str, target: str = "argocd:finance-prod") -> dict[str, object]:
    with server.client("hook") as client:
        response = client.post("/v1/gate", json={"target": target, "revision": revision, "trigger": "presync"})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def codes(decision: dict[str, object]) -> list[str]:
    return [reason["code"] for reason in decision["reasons"]]  # type: ignore[attr-defined,index]


def ready(server: Server) -> dict[str, object]:
    with server.client() as client:
        return client.get("/readyz").json()  # type: ignore[no-any-return]


def feed_row(server: Server, url: str) -> dict[str, object]:
    rows = ready(server)["calendars"]
    return next(row for row in rows if row["source"] == feed_display(url))  # type: ignore[union-attr,index]


def metric(server: Server, name: str, url: str, **labels: str) -> float:
    with server.client() as client:
        text = client.get("/metrics").text
    wanted = {"feed": feed_display(url), **labels}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name):line.index("}") + 1]))
            if found == wanted:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def all_served(feeds: FeedServer) -> None:
    feeds.feeds[PATH] = EMPTY
    feeds.feeds[PEAK] = google_calendar(google_all_day("peak", date(2026, 11, 27), 3, "Peak season"))
    feeds.feeds[WMS] = nextcloud_calendar(
        nextcloud_event("c0ffee", datetime(2026, 11, 24, 14), datetime(2026, 11, 24, 16), "Cut-off", rrule="FREQ=DAILY")
    )


def test_a_change_on_the_server_reaches_a_gate_decision_within_one_refresh(tree: Path, feeds: FeedServer) -> None:
    all_served(feeds)
    server = serve(tree)
    try:
        eventually(lambda: feed_row(server, feeds.url(PATH))["state"] == "ok")
        assert gate(server, "r1")["verdict"] == "approve"
        before = ready(server)["config"]["policy_hash"]  # type: ignore[index]
        feeds.feeds[PATH] = CLOSING
        eventually(lambda: ready(server)["config"]["policy_hash"] != before)  # type: ignore[index]
        assert feeds.count(PATH, 200) == 2  # the first copy, then the change: one refresh
        decision = gate(server, "r1")
        assert decision["verdict"] == "defer" and codes(decision) == ["month_end_close"]
        assert decision["not_before"] == "2026-11-24T17:00:00Z"
        # Google's and Nextcloud's feeds decide the other policy: the cut-off at 14:00 Berlin
        server.clock.set(datetime(2026, 11, 24, 13, 30, tzinfo=UTC))
        assert codes(gate(server, "w1", target="argocd:wms-prod")) == ["dispatch_cutoff"]
        server.clock.set(datetime(2026, 11, 28, 9, 0, tzinfo=UTC))  # 4 days on: stale until the next refresh
        eventually(lambda: all(feed_row(server, feeds.url(path))["age_seconds"] == 0 for path in (PEAK, WMS)))
        assert codes(gate(server, "w2", target="argocd:wms-prod")) == ["peak_season"]
    finally:
        server.stop()


def test_a_304_costs_no_parse(tree: Path, feeds: FeedServer) -> None:
    all_served(feeds)
    server = serve(tree)
    try:
        eventually(lambda: feeds.count(PATH, 304) >= 3)
        assert feeds.count(PATH, 200) == 1
        assert metric(server, "gatekeeper_calendar_feed_parses_total", feeds.url(PATH)) == 1.0
        assert metric(server, "gatekeeper_calendar_feed_fetches_total", feeds.url(PATH), result="not_modified") >= 3
        assert metric(server, "gatekeeper_calendar_feed_fetches_total", feeds.url(PATH), result="ok") == 1.0
    finally:
        server.stop()


def serve_then_lose_the_feed(tree: Path, feeds: FeedServer) -> Server:
    """A server that fetched the closing feed once, whose feed server has gone away since."""
    all_served(feeds)
    feeds.feeds[PATH] = CLOSING
    server = serve(tree)
    try:
        eventually(lambda: feed_row(server, feeds.url(PATH))["events"] == 2)
        feeds.stop()
        eventually(lambda: feed_row(server, feeds.url(PATH))["state"] == "failing")
    except BaseException:
        server.stop()
        raise
    return server


def test_a_server_down_keeps_the_last_good_copy_until_max_age_then_the_gate_closes_stale(
    tree: Path, feeds: FeedServer
) -> None:
    server = serve_then_lose_the_feed(tree, feeds)
    try:
        assert codes(gate(server, "d1")) == ["month_end_close"]  # the last good copy still decides
        server.clock.set(TUESDAY + timedelta(hours=9))  # after the event, and 9h past the last success
        stale = gate(server, "d2")
        assert stale["verdict"] == "defer" and codes(stale) == ["calendar_stale"]
        assert "maxAge 1h" in stale["reasons"][0]["message"]  # type: ignore[index]
        assert stale["not_before"] == "2026-11-24T18:05:00Z"  # retried after RETRY_DELAY
        row = feed_row(server, feeds.url(PATH))
        assert row["state"] == "stale" and "ConnectError" in str(row["last_error"])
        assert metric(server, "gatekeeper_calendar_feed_stale", feeds.url(PATH)) == 1.0
        assert metric(server, "gatekeeper_calendar_feed_last_error_timestamp_seconds", feeds.url(PATH)) > 0
        assert gate(server, "w1", target="argocd:wms-prod")["verdict"] == "approve"  # its feeds: maxAge 24h
        feeds.start()
        eventually(lambda: gate(server, "d3")["verdict"] == "approve")  # fresh again: open after the event
        assert metric(server, "gatekeeper_calendar_feed_stale", feeds.url(PATH)) == 0.0
    finally:
        server.stop()


def test_a_broken_or_oversized_feed_is_rejected_naming_url_and_line(tree: Path, feeds: FeedServer) -> None:
    all_served(feeds)
    feeds.feeds[PATH] = CLOSING
    server = serve(tree, CALENDAR_MAX_BYTES=20_000)
    try:
        eventually(lambda: feed_row(server, feeds.url(PATH))["events"] == 2)
        broken = CLOSING.replace(b"RRULE:FREQ=MONTHLY;COUNT=3", b"RRULE:FREQ=SOMETIMES")
        feeds.feeds[PATH] = broken
        line = broken.decode().splitlines().index("RRULE:FREQ=SOMETIMES") + 1
        shown = feed_display(feeds.url(PATH))
        eventually(lambda: str(feed_row(server, feeds.url(PATH))["last_error"]).startswith(f"{shown}:{line}: RRULE"))
        assert codes(gate(server, "b1")) == ["month_end_close"]  # the good copy still decides
        feeds.feeds[PATH] = CLOSING + b"X" * 30_000
        eventually(lambda: "over the limit of 20000" in str(feed_row(server, feeds.url(PATH))["last_error"]))
        assert feed_row(server, feeds.url(PATH))["events"] == 2
        assert metric(server, "gatekeeper_calendar_feed_fetches_total", feeds.url(PATH), result="rejected") >= 1
    finally:
        server.stop()
    # policy lint --fetch names the whole URL and the line
    feeds.feeds[PATH] = broken
    result = CliRunner().invoke(
        app, ["policy", "lint", "--fetch", "--policies", str(tree / "policies"), "--calendars", str(tree / "calendars")]
    )
    assert result.exit_code == 2, result.output
    assert f"{feeds.url(PATH)}:{line}: RRULE" in result.output


def test_a_restart_starts_from_the_cache_with_the_server_down(
    tree: Path, feeds: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    all_served(feeds)
    feeds.feeds[PATH] = CLOSING
    first = serve(tree)
    try:
        eventually(lambda: all(row["state"] == "ok" for row in ready(first)["calendars"]))  # type: ignore[attr-defined,index]
    finally:
        first.stop()
    feeds.stop()
    again = serve(tree)
    try:
        decision = gate(again, "c1")  # at once: no fetch has succeeded in this process
        assert codes(decision) == ["month_end_close"]
        row = feed_row(again, feeds.url(PATH))
        assert row["last_success"] == "2026-11-24T09:00:00Z" and row["events"] == 2
    finally:
        again.stop()
    monkeypatch.setenv("GATEKEEPER_CALENDAR_CACHE_DIR", str(tree / "cache"))
    args = ["--policies", str(tree / "policies"), "--calendars", str(tree / "calendars")]
    listed = CliRunner().invoke(app, ["calendars", "list", "--json", *args])
    assert listed.exit_code == 0, listed.output
    assert {row["code"]: row["events"] for row in __import__("json").loads(listed.output)} == {
        "month_end_close": 2, "peak_season": 1, "dispatch_cutoff": 1,
    }
    text = CliRunner().invoke(app, ["calendars", "list", *args]).output
    assert re.search(r"stale +url +2 events +fetched 2026-11-24T09:00:00Z", text), text  # real clock: days later
    assert "month_end_close  http://127.0.0.1:" in text
    assert "a1b2c3d4e5" not in text and "Xk2pQ" not in text and "private-9f8e7d" not in text  # secrets redacted
    linted = CliRunner().invoke(app, ["policy", "lint", *args])  # from the cache: valid, but old
    assert linted.exit_code == 0 and "older than maxAge" in linted.output


def test_status_and_windows_say_calendar_stale_from_now_on_while_a_feed_is_past_max_age(
    tree: Path, feeds: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate closes with calendar_stale; GET /v1/status and GET /v1/windows say so too: closed
    from now on with no end known, while instants before now are answered from the last copy.
    The offline `status` says the same from the server's cached copy."""
    server = serve_then_lose_the_feed(tree, feeds)
    try:
        now = TUESDAY + timedelta(hours=9)  # after the close, and 9h past the last success (maxAge 1h)
        server.clock.set(now)
        assert codes(gate(server, "s1")) == ["calendar_stale"]
        with server.client("viewer") as viewer:
            status = viewer.get("/v1/status", params={"target": "argocd:finance-prod"}).json()
            earlier = viewer.get("/v1/status", params={"target": "argocd:finance-prod", "at": "2026-11-24T11:00:00Z"}).json()
            windows = viewer.get(
                "/v1/windows",
                params={"target": "argocd:finance-prod", "from": "2026-11-24T09:00:00Z", "to": "2026-11-26T09:00:00Z"},
            ).json()
            other = viewer.get("/v1/status", params={"target": "argocd:wms-prod"}).json()
            subscribed = viewer.get("/v1/calendar.ics", params={"target": "argocd:finance-prod"}).text
        assert status["at"] == "2026-11-24T18:00:00Z" and status["closed"] is True
        assert [r["code"] for r in status["reasons"]] == ["calendar_stale"]
        (reason,) = status["reasons"]
        assert reason["until"] is None and "maxAge 1h" in reason["message"] and "ConnectError" in reason["message"]
        assert "a1b2c3d4e5" not in reason["message"]  # the feed's secret stays redacted
        assert (status["next_open"], status["next_close"]) == (None, "2026-11-24T18:00:00Z")
        assert status["next_close_reason"] == "calendar_stale"
        # Before now: the last copy alone (the close ends at 18:00 Berlin), then stale from now on.
        assert [r["code"] for r in earlier["reasons"]] == ["month_end_close"]
        assert (earlier["next_open"], earlier["next_close"]) == ("2026-11-24T17:00:00Z", "2026-11-24T11:00:00Z")
        assert windows["closed"] == [
            {"start": "2026-11-24T09:00:00Z", "end": "2026-11-24T17:00:00Z", "codes": ["month_end_close"]},
            {"start": "2026-11-24T18:00:00Z", "end": "2026-11-26T09:00:00Z", "codes": ["calendar_stale"]},
        ]
        assert "calendar_stale" not in [r["code"] for r in other["reasons"]]  # its feeds: maxAge 24h
        assert "BEGIN:VEVENT" in subscribed and "calendar_stale" not in subscribed  # a state of now, not an event
        feeds.start()

        def fresh() -> bool:
            with server.client("viewer") as viewer:
                return viewer.get("/v1/status", params={"target": "argocd:finance-prod"}).json()["closed"] is False

        eventually(fresh)  # a fresh copy ends it
    finally:
        server.stop()
    monkeypatch.setenv("GATEKEEPER_CALENDAR_CACHE_DIR", str(tree / "cache"))
    args = ["--target", "argocd:finance-prod", "--policies", str(tree / "policies"), "--calendars", str(tree / "calendars")]
    offline = CliRunner().invoke(app, ["status", "--json", *args])  # the real clock: days past maxAge
    assert offline.exit_code == 1, offline.output
    assert [r["code"] for r in __import__("json").loads(offline.output)["reasons"]] == ["calendar_stale"]

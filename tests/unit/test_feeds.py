"""Published calendars in process: the httpx reader (conditional, bounded, retried, credentials)
through httpx's MockTransport, the FeedBook's copies, cache and freshness, and the schema."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from gatekeeper.calendar_sources.ics import IcsCalendar
from gatekeeper.configuration.schema import CalendarEntry, feed_url
from gatekeeper.domain.durations import Duration
from gatekeeper.domain.policy import CalendarRules, FeedEntry, Policy, feed_display
from gatekeeper.feeds import FeedBook, load_credentials
from gatekeeper.readers.calendar_feeds import Credential, CredentialsError, FeedFetchError, HttpxFeedReader
from tests.ics_exports import outlook_calendar, outlook_event

URL = "https://outlook.office365.com/owa/calendar/0f1e2d@acme.example/s3cr3tkey/calendar.ics"
FEED = outlook_calendar(outlook_event("a", datetime(2026, 11, 24, 9), datetime(2026, 11, 24, 12), "Close"))
NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Origin:
    """A feed server as a MockTransport handler: ETag, 304, failures, what it was asked."""

    def __init__(self, body: bytes = FEED, *, etags: bool = True) -> None:
        self.body = body
        self.etags = etags
        self.fail: list[int] = []
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail:
            return httpx.Response(self.fail.pop(0))
        if not self.etags:
            return httpx.Response(200, content=self.body, headers={"Content-Type": "text/calendar"})
        etag = f'"{hash(self.body) & 0xFFFF:x}"'
        if request.headers.get("If-None-Match") == etag:
            return httpx.Response(304, headers={"ETag": etag})
        return httpx.Response(200, content=self.body, headers={"ETag": etag, "Content-Type": "text/calendar"})


def book(origin: Origin, tmp_path: Path | None = None, **reader: object) -> tuple[FeedBook, list[str], Clock]:
    seen: list[str] = []
    clock = Clock()
    fetcher = HttpxFeedReader(transport=httpx.MockTransport(origin), sleep=lambda _s: None, **reader)  # type: ignore[arg-type]
    return FeedBook(clock, cache_dir=tmp_path, fetcher=fetcher, observer=lambda _u, o: seen.append(o)), seen, clock


def test_a_304_costs_no_parse_and_counts_as_a_success(tmp_path: Path) -> None:
    origin = Origin()
    feeds, seen, clock = book(origin, tmp_path)
    assert feeds.refresh([URL]) is True
    clock.now += timedelta(hours=1)
    assert feeds.refresh([URL]) is False
    assert seen == ["parsed", "ok", "not_modified"]
    assert origin.requests[1].headers["If-None-Match"]
    assert feeds.state(URL).last_success == clock.now


def test_the_same_bytes_without_an_etag_cost_no_parse_either() -> None:
    feeds, seen, _ = book(Origin(etags=False))
    feeds.refresh([URL])
    feeds.refresh([URL])
    assert seen == ["parsed", "ok", "unchanged"]


def test_a_broken_feed_is_rejected_naming_url_and_line_and_the_good_copy_stays() -> None:
    origin = Origin()
    feeds, seen, _ = book(origin)
    feeds.refresh([URL])
    good = feeds.calendars()[URL]
    origin.body = FEED.replace(b"DTSTART;TZID=W. Europe Standard Time:20261124T090000", b"DTSTART;TZID=W. Eu")
    assert feeds.refresh([URL]) is False
    state = feeds.state(URL)
    line = next(n for n, text in enumerate(origin.body.decode().splitlines(), 1) if text.startswith("DTSTART;TZID=W. Eu"))
    assert state.last_error is not None and state.last_error.startswith(f"{URL}:{line}: ")
    assert feeds.calendars()[URL] is good
    assert seen[-1] == "rejected"
    seen.clear()
    feeds.refresh([URL])  # the same broken bytes: the same error, and no parse
    assert seen == ["rejected"] and feeds.state(URL).last_error == state.last_error


def test_an_oversized_feed_is_rejected_before_it_is_read_whole() -> None:
    origin = Origin(FEED + b" " * 5000)
    feeds, _, _ = book(origin, max_bytes=4096)
    feeds.refresh([URL])
    assert "over the limit of 4096" in (feeds.state(URL).last_error or "")
    assert URL not in feeds.calendars()


def test_server_errors_are_retried_and_a_dead_server_keeps_the_last_good_copy() -> None:
    origin = Origin()
    feeds, _, clock = book(origin, retries=2)
    origin.fail = [503, 502]
    assert feeds.refresh([URL]) is True  # third attempt answers
    assert len(origin.requests) == 3
    origin.fail = [500, 500, 500]
    clock.now += timedelta(minutes=15)
    assert feeds.refresh([URL]) is False
    state = feeds.state(URL)
    assert state.last_error == f"GET {URL}: HTTP 500" and state.last_success == NOW
    assert URL in feeds.calendars()


def test_a_404_is_not_retried() -> None:
    origin = Origin()
    origin.fail = [404]
    feeds, _, _ = book(origin, retries=3)
    feeds.refresh([URL])
    assert len(origin.requests) == 1
    assert "HTTP 404 (expected 200 or 304)" in (feeds.state(URL).last_error or "")


def test_redirects_are_bounded() -> None:
    def loop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": str(request.url) + "x"})

    reader = HttpxFeedReader(transport=httpx.MockTransport(loop), max_redirects=3)
    with pytest.raises(FeedFetchError, match="more redirects than allowed"):
        reader.fetch(URL)


@pytest.mark.parametrize(
    ("credential", "expected"),
    [
        pytest.param(Credential(token="t0ken"), "Bearer t0ken", id="bearer"),
        pytest.param(Credential(username="gk", password="pw"), "Basic " + base64.b64encode(b"gk:pw").decode(), id="basic"),
    ],
)
def test_credentials_are_sent_to_their_host_only(credential: Credential, expected: str) -> None:
    origin = Origin()
    reader = HttpxFeedReader(transport=httpx.MockTransport(origin), credentials={"Outlook.Office365.com": credential})
    reader.fetch(URL)
    reader.fetch("https://calendar.google.com/calendar/ical/x/basic.ics")
    assert origin.requests[0].headers["Authorization"] == expected
    assert "Authorization" not in origin.requests[1].headers


def test_the_credentials_file_reads_tokens_and_basic_auth_and_rejects_both(tmp_path: Path) -> None:
    path = tmp_path / "credentials.yaml"
    path.write_text("outlook.office365.com: {token: abc}\nnextcloud.acme.example: {username: gk, password: pw}\n")
    assert load_credentials(path) == {
        "outlook.office365.com": Credential(token="abc"),
        "nextcloud.acme.example": Credential(username="gk", password="pw"),
    }
    path.write_text("x.example: {token: abc, username: gk}\n")
    with pytest.raises(CredentialsError, match=r"host x\.example: give either token"):
        load_credentials(path)


def test_a_restart_starts_from_the_cache_without_the_network(tmp_path: Path) -> None:
    first, _, _ = book(Origin(), tmp_path)
    first.refresh([URL])
    again = FeedBook(Clock(), cache_dir=tmp_path)  # no fetcher at all
    assert again.load_cache() == 1
    assert again.calendars()[URL].digest == first.calendars()[URL].digest
    assert again.state(URL).last_success == NOW and again.state(URL).etag == first.state(URL).etag


def test_a_corrupt_cached_copy_is_dropped_and_the_feed_is_stale(tmp_path: Path) -> None:
    first, _, _ = book(Origin(), tmp_path)
    first.refresh([URL])
    next(tmp_path.glob("*.ics")).write_bytes(b"garbage")
    again = FeedBook(Clock(), cache_dir=tmp_path)
    assert again.load_cache() == 0
    assert again.state(URL).last_success is None


def policy_with(entry: FeedEntry) -> Policy:
    return Policy("finance", ("argocd:*",), calendar=CalendarRules(deny=(entry,)))


def test_a_feed_goes_stale_after_max_age_and_a_never_fetched_one_is_stale_at_once() -> None:
    origin = Origin()
    feeds, _, clock = book(origin)
    entry = FeedEntry(URL, "month_end_close", Duration(seconds=3600))
    (reason,) = feeds.stale_reasons([policy_with(entry)], NOW)["finance"]
    assert reason.code == "calendar_stale" and "never been fetched" in reason.message
    feeds.refresh([URL])
    assert feeds.stale_reasons([policy_with(entry)], NOW + timedelta(seconds=3600)) == {}
    origin.fail = [500, 500, 500]
    clock.now = NOW + timedelta(minutes=30)
    feeds.refresh([URL])
    (reason,) = feeds.stale_reasons([policy_with(entry)], NOW + timedelta(seconds=3601))["finance"]
    assert "last fetched 1h1s ago (maxAge 1h)" in reason.message and "HTTP 500" in reason.message
    assert "s3cr3tkey" not in reason.message  # the URL's secret path never shows


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param(URL, "https://outlook.office365.com/…/calendar.ics [", id="outlook"),
        pytest.param("https://calendar.google.com/calendar/ical/a%40b/private-0a1b/basic.ics",
                     "https://calendar.google.com/…/basic.ics [", id="google"),
        pytest.param("https://cloud.acme.example/remote.php/dav/public-calendars/Xk2pQ?export",
                     "https://cloud.acme.example/… [", id="nextcloud-token-is-the-last-segment"),
        pytest.param("https://user:pw@h.example/c.ics?key=1", "https://h.example/…/c.ics [", id="userinfo-and-query"),
    ],
)
def test_feed_display_keeps_host_and_a_file_name_only(url: str, shown: str) -> None:
    assert feed_display(url).startswith(shown)
    assert len(feed_display(url)) - len(shown) == 9  # the digest and the bracket


@pytest.mark.parametrize(
    ("text", "url"),
    [
        pytest.param("webcal://calendar.google.com/x/basic.ics", "https://calendar.google.com/x/basic.ics", id="webcal"),
        pytest.param("https://h.example/c.ics", "https://h.example/c.ics", id="https"),
        pytest.param("finance/month-end.ics", None, id="file"),
    ],
)
def test_webcal_is_read_as_https(text: str, url: str | None) -> None:
    assert feed_url(text) == url


def test_a_url_entry_gets_max_age_and_a_default_code() -> None:
    entry = CalendarEntry.model_validate({"ics": "webcal://h.example/cal/peak-season.ics", "maxAge": "6h"})
    assert entry.to_domain("UTC") == FeedEntry("https://h.example/cal/peak-season.ics", "peak-season", Duration(seconds=21600))
    default = CalendarEntry.model_validate({"ics": "https://h.example/x.ics"}).to_domain("UTC")
    assert isinstance(default, FeedEntry) and default.max_age == Duration(days=1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param({"ics": "local.ics", "maxAge": "1h"}, "maxAge belongs to ics entries that name a URL", id="file-max-age"),
        pytest.param({"ics": "https://h.example/x.ics", "maxAge": "soon"}, "is not of the form", id="bad-duration"),
        pytest.param({"ics": "https:///x.ics"}, "is not a URL with a host", id="no-host"),
    ],
)
def test_bad_url_entries_are_refused(body: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CalendarEntry.model_validate(body)


def test_one_bad_url_does_not_keep_the_others_from_refreshing() -> None:
    feeds, _, _ = book(Origin())
    assert feeds.refresh(["https://[::1/broken.ics", URL]) is True
    assert "invalid URL" in (feeds.state("https://[::1/broken.ics").last_error or "")
    assert URL in feeds.calendars()


POLICY = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: finance}
spec:
  targets: ["argocd:finance*"]
  calendar:
    deny:
      - {ics: "webcal://outlook.office365.com/owa/calendar/x/y/calendar.ics", code: month_end_close, maxAge: 12h}
      - {ics: "https://calendar.google.com/calendar/ical/a/private-b/basic.ics", maxAge: soon}
"""


def test_a_url_entry_loads_without_a_copy_and_the_hash_covers_the_copy(tmp_path: Path) -> None:
    from gatekeeper.configuration.loader import load_configuration

    (tmp_path / "p").mkdir()
    (tmp_path / "c").mkdir()
    (tmp_path / "p" / "finance.yaml").write_text(POLICY.replace(", maxAge: soon", ""))
    bare = load_configuration(tmp_path / "p", tmp_path / "c", now=NOW)
    assert [entry.url for entry in bare.feeds] == [
        "https://calendar.google.com/calendar/ical/a/private-b/basic.ics",
        "https://outlook.office365.com/owa/calendar/x/y/calendar.ics",
    ]
    url = bare.feeds[1].url
    copy = IcsCalendar.parse(FEED, url)
    fed = load_configuration(tmp_path / "p", tmp_path / "c", now=NOW, feeds={url: copy})
    assert fed.policy_hash != bare.policy_hash
    assert fed.calendars.index(list(fed.policies), int(NOW.timestamp()), int(NOW.timestamp()) + 1).state(
        int(datetime(2026, 11, 24, 9, 30, tzinfo=UTC).timestamp())
    ).codes == ("month_end_close",)


def test_a_bad_max_age_is_a_file_and_line_error(tmp_path: Path) -> None:
    from gatekeeper.configuration.loader import ConfigurationError, load_configuration

    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "finance.yaml").write_text(POLICY)
    with pytest.raises(ConfigurationError) as raised:
        load_configuration(tmp_path / "p", tmp_path / "c")
    (error,) = raised.value.errors
    assert (error.line, error.message.split(":")[0]) == (9, "spec.calendar.deny[1].maxAge")


def test_a_credential_never_shows_its_secret_in_a_repr() -> None:
    shown = repr(Credential(token="t0ken")) + repr(Credential(username="gk", password="pw"))
    assert "t0ken" not in shown and "pw" not in shown and "gk" in shown


def test_serve_refuses_to_start_on_a_bad_credentials_file_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from gatekeeper.cli import app

    bad = tmp_path / "credentials.yaml"
    bad.write_text("- just a list\n")
    monkeypatch.setenv("GATEKEEPER_CALENDAR_CREDENTIALS_FILE", str(bad))
    monkeypatch.setenv("GATEKEEPER_DATABASE_URL", f"sqlite:///{tmp_path / 'gk.db'}")
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 2
    assert f"gatekeeper: {bad}: expected a mapping of host to credentials" in result.output


def test_a_copy_written_without_its_metadata_is_kept_and_fetched_again_unconditionally(tmp_path: Path) -> None:
    first, _, _ = book(Origin(), tmp_path)
    first.refresh([URL])
    other = outlook_calendar(outlook_event("b", datetime(2026, 11, 25, 9), datetime(2026, 11, 25, 12), "Other"))
    next(tmp_path.glob("*.ics")).write_bytes(other)  # as if the process died between the two writes
    again = FeedBook(Clock(), cache_dir=tmp_path)
    assert again.load_cache() == 1
    assert again.calendars()[URL].digest == again.state(URL).digest != first.state(URL).digest
    assert again.state(URL).etag is None


def test_a_server_with_last_modified_only_gets_if_modified_since_and_its_304_costs_no_parse() -> None:
    stamp = "Sun, 01 Nov 2026 08:00:00 GMT"
    asked: list[str | None] = []

    def origin(request: httpx.Request) -> httpx.Response:
        asked.append(request.headers.get("If-Modified-Since"))
        if request.headers.get("If-Modified-Since") == stamp:
            return httpx.Response(304)
        return httpx.Response(200, content=FEED, headers={"Last-Modified": stamp})

    seen: list[str] = []
    feeds = FeedBook(Clock(), fetcher=HttpxFeedReader(transport=httpx.MockTransport(origin)),
                     observer=lambda _u, outcome: seen.append(outcome))
    feeds.refresh([URL])
    feeds.refresh([URL])
    assert asked == [None, stamp]
    assert seen == ["parsed", "ok", "not_modified"]
    assert feeds.state(URL).last_modified == stamp  # kept across the 304 that did not repeat it

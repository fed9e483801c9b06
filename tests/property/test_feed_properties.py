"""Published calendars under arbitrary input: whatever a server sends, the book keeps its last good
copy and records an error (never raises), and a stale feed never turns a deferral into approval."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.calendar_sources import SourceError
from gatekeeper.calendar_sources.ics import IcsCalendar
from gatekeeper.domain.decision import Facts, decide
from gatekeeper.domain.policy import Mode, Policy
from gatekeeper.domain.types import STRICTNESS, Reason, ReleaseRequest, TargetKey
from gatekeeper.domain.windows import WindowIndex
from gatekeeper.feeds import FeedBook
from gatekeeper.readers.calendar_feeds import HttpxFeedReader
from tests.ics_exports import outlook_calendar, outlook_event

URL = "https://outlook.office365.com/owa/calendar/x/y/calendar.ics"
GOOD = outlook_calendar(outlook_event("a", datetime(2026, 11, 24, 9), datetime(2026, 11, 24, 12), "Close"))
NOW = datetime(2026, 11, 24, 8, tzinfo=UTC)

# Mutations of a valid export (lines dropped, duplicated, cut, bytes flipped) reach far deeper
# into the parser than random bytes, which stop at BEGIN:VCALENDAR.
LINES = GOOD.split(b"\r\n")
mutated = st.builds(
    lambda picks, cut, junk: b"\r\n".join(LINES[i][: cut if i == picks[-1] else None] for i in picks) + junk,
    st.lists(st.integers(0, len(LINES) - 1), min_size=1, max_size=len(LINES) + 4),
    st.integers(0, 80),
    st.binary(max_size=40),
)
bodies = st.one_of(st.binary(max_size=300), mutated, st.just(GOOD.replace(b"20261124T", b"2026-11-24T")))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_parsing_arbitrary_bytes_raises_only_source_errors(body: bytes) -> None:
    with contextlib.suppress(SourceError):
        IcsCalendar.parse(body, URL).spans(UTC, int(NOW.timestamp()), int(NOW.timestamp()) + 86_400 * 30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_whatever_the_server_sends_the_last_good_copy_stays_or_is_replaced_by_a_valid_one(body: bytes) -> None:
    answers = [GOOD, body]

    def origin(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=answers.pop(0))

    book = FeedBook(lambda: NOW, fetcher=HttpxFeedReader(transport=httpx.MockTransport(origin)))
    book.refresh([URL])
    first = book.calendars()[URL]
    book.refresh([URL])
    kept = book.calendars()[URL]
    state = book.state(URL)
    assert kept is first or (kept.digest != first.digest and state.last_error is None)
    assert (kept is first and body != GOOD) == (state.last_error is not None)


REQUEST = ReleaseRequest(TargetKey("argocd:odoo-prod"), "a" * 40)
T = int(NOW.timestamp())
STALE = Reason("calendar", "calendar_stale", "stale", None)


@settings(max_examples=200, deadline=None)
@given(
    closed=st.lists(st.tuples(st.integers(-7200, 7200), st.integers(1, 7200)), max_size=3),
    observe=st.booleans(),
    stale_first=st.booleans(),
)
def test_a_stale_feed_never_turns_a_deferral_into_an_approval(
    closed: list[tuple[int, int]], observe: bool, stale_first: bool
) -> None:
    spans = [(T + start, T + start + length) for start, length in closed]
    index = WindowIndex.build(T - 86_400 * 31, T + 86_400 * 400, {"freeze": spans} if spans else {})
    policies = [Policy("a", ("argocd:*",), mode=Mode.OBSERVE if observe else Mode.ENFORCE), Policy("b", ("argocd:*",))]
    fresh = Facts(policy_hash="h", calendars={"a": index, "b": index})
    stale = Facts(policy_hash="h", calendars={"a": index, "b": index},
                  stale_calendars={"a" if stale_first else "b": (STALE,)})
    before, after = decide(REQUEST, fresh, policies, now=NOW), decide(REQUEST, stale, policies, now=NOW)
    assert STRICTNESS[after.verdict] >= STRICTNESS[before.verdict]

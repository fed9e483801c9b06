"""A stale published calendar in ``status`` and ``windows``: closed from now on, as the gate is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gatekeeper import calendar
from gatekeeper.calendar import Calendars, Staleness
from gatekeeper.domain.durations import Duration
from gatekeeper.domain.policy import CalendarRules, CronEntry, Policy
from gatekeeper.domain.types import Reason

WED = datetime(2026, 6, 3, tzinfo=UTC)
TARGET = "argocd:odoo-prod"
CUTOFF = CronEntry("0 14 * * 1-5", Duration.parse("2h"), "UTC", "dispatch_cutoff")
PRODUCTION = Policy(name="production", targets=("argocd:odoo-*",), calendar=CalendarRules((CUTOFF,), ()))
STALE = Reason("calendar", "calendar_stale", "calendar feed https://cal.example/… [0a1b2c3d] (close) was last fetched 2h ago (maxAge 1h)", None)


def at(hours: float) -> datetime:
    return WED + timedelta(hours=hours)


def epoch(hours: float) -> int:
    return int(at(hours).timestamp())


def test_status_at_and_after_now_is_closed_with_the_feeds_own_reason_and_no_end() -> None:
    calendars = Calendars([PRODUCTION], {})
    stale = Staleness(at(10), (STALE,))
    now = calendar.status(calendars, [PRODUCTION], TARGET, at(10), stale=stale)
    assert now.closed and now.reasons == (STALE,)
    assert (now.next_open, now.next_close, now.next_close_reason) == (None, at(10), "calendar_stale")
    later = calendar.status(calendars, [PRODUCTION], TARGET, at(14.5), stale=stale)
    assert [r.code for r in later.reasons] == ["calendar_stale", "dispatch_cutoff"]


def test_status_before_now_is_answered_from_the_copy_and_closes_at_now() -> None:
    calendars = Calendars([PRODUCTION], {})
    before = calendar.status(calendars, [PRODUCTION], TARGET, at(8), stale=Staleness(at(10), (STALE,)))
    assert not before.closed and before.reasons == ()
    assert (before.next_close, before.next_close_reason) == (at(10), "calendar_stale")


def test_windows_close_from_now_to_the_end_merging_the_calendar_within() -> None:
    calendars = Calendars([PRODUCTION], {})
    result = calendar.windows(calendars, [PRODUCTION], TARGET, at(8), at(40), stale=Staleness(at(20), (STALE,)))
    assert [(w.start, w.end, w.codes) for w in result.closed] == [
        (epoch(14), epoch(16), ("dispatch_cutoff",)),
        (epoch(20), epoch(40), ("calendar_stale", "dispatch_cutoff")),
    ]


def test_nothing_stale_changes_nothing() -> None:
    calendars = Calendars([PRODUCTION], {})
    plain = calendar.windows(calendars, [PRODUCTION], TARGET, at(8), at(40))
    assert calendar.windows(calendars, [PRODUCTION], TARGET, at(8), at(40), stale=Staleness(at(9), ())) == plain
    assert calendar.windows(calendars, [PRODUCTION], TARGET, at(8), at(40), stale=None) == plain


@given(moment=st.integers(0, 96), since=st.integers(0, 96))
def test_a_stale_feed_never_opens_a_gate_and_closes_every_instant_from_now(moment: int, since: int) -> None:
    calendars = Calendars([PRODUCTION], {})
    when = at(moment / 2)
    stale = Staleness(at(since / 2), (STALE,))
    without = calendar.status(calendars, [PRODUCTION], TARGET, when)
    with_it = calendar.status(calendars, [PRODUCTION], TARGET, when, stale=stale)
    assert with_it.closed >= without.closed
    assert with_it.closed is (without.closed or when >= stale.since)

"""What real exports contain (Outlook/Exchange, Google, Nextcloud) compiles to the right windows;
cancelled instances close nothing, transparent ("free") events close nothing in a deny entry."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from gatekeeper.calendar import compile_policy
from gatekeeper.calendar_sources.ics import IcsCalendar
from gatekeeper.domain.policy import CalendarRules, FeedEntry, Policy
from gatekeeper.domain.types import from_epoch
from tests.ics_exports import (
    big_outlook_feed,
    google_all_day,
    google_calendar,
    google_timed,
    nextcloud_calendar,
    nextcloud_event,
    outlook_calendar,
    outlook_event,
)

BERLIN = ZoneInfo("Europe/Berlin")
LO, HI = datetime(2026, 11, 1, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC)


def spans(data: bytes, *, busy_only: bool = True) -> list[tuple[datetime, datetime]]:
    calendar = IcsCalendar.parse(data, "https://example.test/feed.ics")
    found = calendar.spans(BERLIN, int(LO.timestamp()), int(HI.timestamp()), busy_only=busy_only)
    return [(from_epoch(start), from_epoch(end)) for start, end in sorted(found)]


def z(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


OUTLOOK = outlook_calendar(
    outlook_event(
        "close-series", datetime(2026, 11, 2, 8), datetime(2026, 11, 2, 18), "Month-end close",
        rrule="FREQ=WEEKLY;UNTIL=20261214T170000Z;BYDAY=MO",
        exdates=[datetime(2026, 11, 9, 8), datetime(2026, 11, 16, 8)],
    ),
    # the 23 November instance moved to Tuesday morning; the 30 November one deleted
    outlook_event("close-series", datetime(2026, 11, 24, 9), datetime(2026, 11, 24, 12), "Close (moved)",
                  recurrence_id=datetime(2026, 11, 23, 8)),
    outlook_event("close-series", datetime(2026, 11, 30, 8), datetime(2026, 11, 30, 18), "Close",
                  recurrence_id=datetime(2026, 11, 30, 8), status="CANCELLED"),
    outlook_event("free-slot", datetime(2026, 11, 3, 8), datetime(2026, 11, 3, 18), "Office hours", transparent=True),
    outlook_event("cancelled", datetime(2026, 11, 4, 8), datetime(2026, 11, 4, 18), "Offsite", status="CANCELLED"),
)


def test_an_outlook_series_reads_windows_zone_names_exdates_moved_and_cancelled_instances() -> None:
    assert spans(OUTLOOK) == [
        (z(2026, 11, 2, 7), z(2026, 11, 2, 17)),  # W. Europe Standard Time is Europe/Berlin (CET)
        (z(2026, 11, 24, 8), z(2026, 11, 24, 11)),  # the moved instance, its own length
        (z(2026, 12, 7, 7), z(2026, 12, 7, 17)),
        (z(2026, 12, 14, 7), z(2026, 12, 14, 17)),  # UNTIL in UTC includes the last Monday
    ]


def test_a_transparent_event_still_opens_an_allow_window_but_a_cancelled_one_never_does() -> None:
    opened = spans(OUTLOOK, busy_only=False)
    assert (z(2026, 11, 3, 7), z(2026, 11, 3, 17)) in opened
    assert all(start.date() != date(2026, 11, 4) for start, _ in opened)
    assert all(start.date() != date(2026, 11, 30) for start, _ in opened)


def test_a_google_export_reads_all_day_series_and_until_in_utc() -> None:
    data = google_calendar(
        google_all_day("peak", date(2026, 11, 27), 3, "Peak season", rrule="FREQ=YEARLY;UNTIL=20281126T230000Z"),
        google_timed("cutoff", datetime(2026, 11, 5, 14), datetime(2026, 11, 5, 16), "Carrier cut-off",
                     until_utc=datetime(2026, 11, 19, 13, 0), byday="TH"),
        google_all_day("holiday", date(2026, 12, 1), 1, "Team day (free)", transparent=True),
        google_all_day("gone", date(2026, 12, 2), 1, "Deleted", status="CANCELLED"),
    )
    assert spans(data) == [
        (z(2026, 11, 5, 13), z(2026, 11, 5, 15)),
        (z(2026, 11, 12, 13), z(2026, 11, 12, 15)),
        (z(2026, 11, 19, 13), z(2026, 11, 19, 15)),  # UNTIL 13:00Z is the last start, inclusive
        (z(2026, 11, 26, 23), z(2026, 11, 29, 23)),  # whole local days in Europe/Berlin
    ]


def test_a_nextcloud_export_with_alarms_reads_like_any_other() -> None:
    data = nextcloud_calendar(
        nextcloud_event("c0ffee-1", datetime(2026, 11, 10, 6), datetime(2026, 11, 10, 8), "Cut-off",
                        rrule="FREQ=DAILY;COUNT=2"),
    )
    assert spans(data) == [(z(2026, 11, 10, 5), z(2026, 11, 10, 7)), (z(2026, 11, 11, 5), z(2026, 11, 11, 7))]


def test_x_wr_timezone_with_an_unknown_name_is_ignored_not_fatal() -> None:
    data = OUTLOOK.replace(b"X-WR-TIMEZONE:W. Europe Standard Time", b"X-WR-TIMEZONE:Nowhere/Special")
    assert spans(data) == spans(OUTLOOK)


def test_a_deny_feed_compiles_through_the_policy_and_its_free_events_close_nothing() -> None:
    url = "https://outlook.office365.com/owa/calendar/abc/def/calendar.ics"
    policy = Policy("finance", ("argocd:*",), timezone="Europe/Berlin",
                    calendar=CalendarRules(deny=(FeedEntry(url, "month_end_close"),)))
    index = compile_policy(policy, {url: IcsCalendar.parse(OUTLOOK, url)}, int(LO.timestamp()), int(HI.timestamp()))
    assert index.state(int(z(2026, 11, 2, 9).timestamp())).codes == ("month_end_close",)
    assert not index.state(int(z(2026, 11, 3, 9).timestamp())).closed


@pytest.mark.parametrize("events, exdates", [pytest.param(200, 50, id="200-events")])
def test_the_benchmark_feed_has_the_events_and_exdates_it_claims(events: int, exdates: int) -> None:
    data = big_outlook_feed(events, exdates)
    assert data.count(b"BEGIN:VEVENT") == events
    assert data.count(b"\r\nEXDATE;") == exdates
    assert IcsCalendar.parse(data, "big").event_count == events


def test_an_exchange_display_name_tzid_is_read_through_its_vtimezone() -> None:
    # Exchange on-premises writes the zone's display name as TZID (quoted: it holds commas) and
    # defines it in a VTIMEZONE block; no zone database knows the name.
    name = "(UTC+01:00) Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna"
    data = OUTLOOK.replace(b"TZID:W. Europe Standard Time", f"TZID:{name}".encode())
    data = data.replace(b"TZID=W. Europe Standard Time", f'TZID="{name}"'.encode())
    assert spans(data) == spans(OUTLOOK)

"""DST edges as DESIGN §3 (RFC 5545 §3.3.5) reads local times, for `.ics` events and cron entries alike.

2026 transitions used below (looked up, not derived from the code under test):
- Europe/Berlin: 29 March 02:00 CET -> 03:00 CEST (01:00Z); 25 October 03:00 CEST -> 02:00 CET (01:00Z).
- America/New_York: 8 March 02:00 EST -> 03:00 EDT (07:00Z); 1 November 02:00 EDT -> 01:00 EST (06:00Z).
- Australia/Sydney: 5 April 03:00 AEDT -> 02:00 AEST (4 April 16:00Z); 4 October 02:00 AEST -> 03:00 AEDT
  (3 October 16:00Z).
Every expected instant is written out in UTC by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gatekeeper.calendar_sources.cron import cron_spans
from gatekeeper.calendar_sources.ics import IcsCalendar
from gatekeeper.domain.durations import Duration


def utc(text: str) -> int:
    """Epoch seconds of a UTC wall time written ``YYYY-MM-DDTHH:MM``."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def vcalendar(*events: str) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//gatekeeper tests//EN", *events, "END:VCALENDAR"]
    return ("\r\n".join(lines) + "\r\n").encode()


def vevent(*properties: str, uid: str = "event@tests") -> str:
    return "\r\n".join(["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *properties, "END:VEVENT"])


def ics_spans(data: bytes, policy_zone: str, lo: str, hi: str) -> list[tuple[int, int]]:
    calendar = IcsCalendar.parse(data, "test.ics")
    return sorted(calendar.spans(ZoneInfo(policy_zone), utc(lo), utc(hi)))


def cron(expression: str, duration: str, zone: str, lo: str, hi: str) -> list[tuple[int, int]]:
    return sorted(cron_spans(expression, Duration.parse(duration), ZoneInfo(zone), utc(lo), utc(hi)))


# A 02:30 local start on a spring-forward day takes the offset before the gap: 03:30 local.
SPRING_FORWARD_0230 = [
    pytest.param("Europe/Berlin", "20260329", "2026-03-29T01:30", id="berlin-29-march"),
    pytest.param("America/New_York", "20260308", "2026-03-08T07:30", id="new-york-8-march"),
    pytest.param("Australia/Sydney", "20261004", "2026-10-03T16:30", id="sydney-4-october"),
]

# An ambiguous local start on a fall-back day takes its first occurrence (the summer-time offset).
FALL_BACK_FIRST = [
    pytest.param("Europe/Berlin", "20261025", "0230", "2026-10-25T00:30", id="berlin-25-october-0230-cest"),
    pytest.param("America/New_York", "20261101", "0130", "2026-11-01T05:30", id="new-york-1-november-0130-edt"),
    pytest.param("Australia/Sydney", "20260405", "0230", "2026-04-04T15:30", id="sydney-5-april-0230-aedt"),
]


def near(spans: list[tuple[int, int]], instant: str) -> list[tuple[int, int]]:
    """The spans starting within 6 hours of ``instant``: on the transition day, nothing extra or doubled."""
    at = utc(instant)
    return [span for span in spans if at - 6 * 3600 <= span[0] <= at + 6 * 3600]


def _day_window(day: str) -> tuple[str, str]:
    """A UTC range safely containing the whole local ``day`` in any of the three zones."""
    moment = datetime.strptime(day, "%Y%m%d")
    start = (moment - timedelta(days=1)).strftime("%Y-%m-%dT00:00")
    end = (moment + timedelta(days=1)).strftime("%Y-%m-%dT12:00")
    return start, end


@pytest.mark.parametrize(("zone", "day", "expected_start"), SPRING_FORWARD_0230)
def test_a_0230_daily_cron_on_a_spring_forward_day_starts_at_0330_local(zone: str, day: str, expected_start: str) -> None:
    lo, hi = _day_window(day)
    spans = cron("30 2 * * *", "1h", zone, lo, hi)
    assert near(spans, expected_start) == [(utc(expected_start), utc(expected_start) + 3600)]


@pytest.mark.parametrize(("zone", "day", "expected_start"), SPRING_FORWARD_0230)
def test_a_0230_ics_event_in_the_gap_starts_at_0330_local_and_lasts_exactly_one_hour(
    zone: str, day: str, expected_start: str
) -> None:
    data = vcalendar(vevent(f"DTSTART;TZID={zone}:{day}T023000", "DURATION:PT1H"))
    lo, hi = _day_window(day)
    assert ics_spans(data, zone, lo, hi) == [(utc(expected_start), utc(expected_start) + 3600)]


@pytest.mark.parametrize(("zone", "day", "expected_start"), SPRING_FORWARD_0230)
def test_a_daily_recurring_0230_ics_event_starts_at_0330_local_on_the_spring_forward_day(
    zone: str, day: str, expected_start: str
) -> None:
    first = (datetime.strptime(day, "%Y%m%d") - timedelta(days=2)).strftime("%Y%m%d")
    data = vcalendar(vevent(f"DTSTART;TZID={zone}:{first}T023000", "DURATION:PT1H", "RRULE:FREQ=DAILY;COUNT=5"))
    lo, hi = _day_window(day)
    spans = ics_spans(data, zone, lo, hi)
    assert near(spans, expected_start) == [(utc(expected_start), utc(expected_start) + 3600)]
    assert all(end - start == 3600 for start, end in spans)


@pytest.mark.parametrize(("zone", "day", "wall", "expected_start"), FALL_BACK_FIRST)
def test_a_daily_cron_at_an_ambiguous_time_fires_once_at_the_first_occurrence(
    zone: str, day: str, wall: str, expected_start: str
) -> None:
    lo, hi = _day_window(day)
    spans = cron(f"{int(wall[2:])} {int(wall[:2])} * * *", "15m", zone, lo, hi)
    assert near(spans, expected_start) == [(utc(expected_start), utc(expected_start) + 900)]


@pytest.mark.parametrize(("zone", "day", "wall", "expected_start"), FALL_BACK_FIRST)
def test_an_ics_event_at_an_ambiguous_time_takes_the_first_occurrence_and_lasts_exactly_one_hour(
    zone: str, day: str, wall: str, expected_start: str
) -> None:
    data = vcalendar(vevent(f"DTSTART;TZID={zone}:{day}T{wall}00", "DURATION:PT1H"))
    lo, hi = _day_window(day)
    assert ics_spans(data, zone, lo, hi) == [(utc(expected_start), utc(expected_start) + 3600)]


@pytest.mark.parametrize(
    ("zone", "dtstart", "dtend", "transition_instance"),
    [
        # 22:00 -> 04:00 next day is 6 h on the first night; the night across the change keeps 6 h exact.
        pytest.param(
            "Europe/Berlin", "20260327T220000", "20260328T040000", ("2026-03-28T21:00", "2026-03-29T03:00"),
            id="berlin-spring-forward-night-ends-0500-cest",
        ),
        pytest.param(
            "Europe/Berlin", "20261023T220000", "20261024T040000", ("2026-10-24T20:00", "2026-10-25T02:00"),
            id="berlin-fall-back-night-ends-0300-cet",
        ),
        pytest.param(
            "America/New_York", "20260306T220000", "20260307T040000", ("2026-03-08T03:00", "2026-03-08T09:00"),
            id="new-york-spring-forward-night-ends-0500-edt",
        ),
        pytest.param(
            "Australia/Sydney", "20260403T220000", "20260404T040000", ("2026-04-04T11:00", "2026-04-04T17:00"),
            id="sydney-fall-back-night-ends-0300-aest",
        ),
    ],
)
def test_a_recurring_dtend_event_keeps_the_exact_length_of_its_first_instance(
    zone: str, dtstart: str, dtend: str, transition_instance: tuple[str, str]
) -> None:
    data = vcalendar(
        vevent(f"DTSTART;TZID={zone}:{dtstart}", f"DTEND;TZID={zone}:{dtend}", "RRULE:FREQ=DAILY;COUNT=4")
    )
    start, end = transition_instance
    spans = ics_spans(data, zone, "2026-01-01T00:00", "2026-12-31T00:00")
    assert len(spans) == 4
    assert all(e - s == 6 * 3600 for s, e in spans)
    assert (utc(start), utc(end)) in spans


@pytest.mark.parametrize(
    ("zone", "dtstart", "expected", "hours"),
    [
        pytest.param("Europe/Berlin", "20260328T120000", ("2026-03-28T11:00", "2026-03-29T10:00"), 23, id="berlin-23h"),
        pytest.param("Europe/Berlin", "20261024T120000", ("2026-10-24T10:00", "2026-10-25T11:00"), 25, id="berlin-25h"),
        pytest.param("America/New_York", "20260307T120000", ("2026-03-07T17:00", "2026-03-08T16:00"), 23, id="new-york-23h"),
        pytest.param("America/New_York", "20261031T120000", ("2026-10-31T16:00", "2026-11-01T17:00"), 25, id="new-york-25h"),
        pytest.param("Australia/Sydney", "20260404T120000", ("2026-04-04T01:00", "2026-04-05T02:00"), 25, id="sydney-25h"),
        pytest.param("Australia/Sydney", "20261003T120000", ("2026-10-03T02:00", "2026-10-04T01:00"), 23, id="sydney-23h"),
    ],
)
def test_a_p1d_event_spans_one_nominal_local_day_across_a_transition(
    zone: str, dtstart: str, expected: tuple[str, str], hours: int
) -> None:
    data = vcalendar(vevent(f"DTSTART;TZID={zone}:{dtstart}", "DURATION:P1D"))
    spans = ics_spans(data, zone, "2026-01-01T00:00", "2026-12-31T00:00")
    assert spans == [(utc(expected[0]), utc(expected[1]))]
    assert spans[0][1] - spans[0][0] == hours * 3600


@pytest.mark.parametrize(
    ("zone", "day", "expected", "hours"),
    [
        pytest.param("Europe/Berlin", "20260329", ("2026-03-28T23:00", "2026-03-29T22:00"), 23, id="berlin-spring"),
        pytest.param("Europe/Berlin", "20261025", ("2026-10-24T22:00", "2026-10-25T23:00"), 25, id="berlin-fall"),
        pytest.param("America/New_York", "20260308", ("2026-03-08T05:00", "2026-03-09T04:00"), 23, id="new-york-spring"),
        pytest.param("America/New_York", "20261101", ("2026-11-01T04:00", "2026-11-02T05:00"), 25, id="new-york-fall"),
        pytest.param("Australia/Sydney", "20260405", ("2026-04-04T13:00", "2026-04-05T14:00"), 25, id="sydney-fall"),
        pytest.param("Australia/Sydney", "20261004", ("2026-10-03T14:00", "2026-10-04T13:00"), 23, id="sydney-spring"),
        pytest.param("UTC", "20261025", ("2026-10-25T00:00", "2026-10-26T00:00"), 24, id="utc-policy-24h"),
    ],
)
def test_an_all_day_event_covers_the_whole_local_day_in_the_policy_timezone(
    zone: str, day: str, expected: tuple[str, str], hours: int
) -> None:
    following = str(int(day) + 1)
    data = vcalendar(vevent(f"DTSTART;VALUE=DATE:{day}", f"DTEND;VALUE=DATE:{following}"))
    spans = ics_spans(data, zone, "2026-01-01T00:00", "2026-12-31T00:00")
    assert spans == [(utc(expected[0]), utc(expected[1]))]
    assert spans[0][1] - spans[0][0] == hours * 3600


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        # Saturday 12:00 local, plus one nominal day (Sunday 12:00 local, after the change), plus 2 exact hours.
        pytest.param("Europe/Berlin", ("2026-03-28T11:00", "2026-03-29T12:00"), id="berlin-spring-25h"),
        pytest.param("America/New_York", ("2026-03-07T17:00", "2026-03-08T18:00"), id="new-york-spring-25h"),
        pytest.param("Australia/Sydney", ("2026-04-04T01:00", "2026-04-05T04:00"), id="sydney-fall-27h"),
    ],
)
def test_a_1d2h_cron_duration_adds_the_nominal_day_first_then_the_exact_hours(
    zone: str, expected: tuple[str, str]
) -> None:
    spans = cron("0 12 * * 6", "1d2h", zone, expected[0], expected[1])
    assert (utc(expected[0]), utc(expected[1])) in spans


def test_an_iso_p1dt2h_ics_duration_adds_the_nominal_day_first_then_the_exact_hours() -> None:
    data = vcalendar(vevent("DTSTART;TZID=Europe/Berlin:20261024T120000", "DURATION:P1DT2H"))
    # 24 Oct 12:00 CEST (10:00Z) + 1 nominal day = 25 Oct 12:00 CET (11:00Z), + 2 h = 13:00Z.
    assert ics_spans(data, "Europe/Berlin", "2026-10-01T00:00", "2026-11-01T00:00") == [
        (utc("2026-10-24T10:00"), utc("2026-10-25T13:00"))
    ]


@pytest.mark.parametrize(
    ("expression", "expected_starts"),
    [
        # 1 April 2026 is a Wednesday: day-of-month 1 OR Fridays (3 and 10 April), as Vixie cron reads it.
        pytest.param(
            "0 9 1 * 5", ["2026-04-01T09:00", "2026-04-03T09:00", "2026-04-10T09:00"],
            id="day-of-month-or-day-of-week",
        ),
        pytest.param("0 9 * * 7", ["2026-04-05T09:00"], id="seven-is-sunday"),
        pytest.param("0 9 * * 0", ["2026-04-05T09:00"], id="zero-is-sunday"),
        pytest.param("0 9 * * sun", ["2026-04-05T09:00"], id="sun-by-name"),
        pytest.param(
            "0 9 * apr mon-fri",
            [f"2026-04-{day:02d}T09:00" for day in (1, 2, 3, 6, 7, 8, 9, 10)],
            id="month-and-weekday-names",
        ),
        pytest.param("0 9 * jan *", [], id="month-name-outside-range"),
    ],
)
def test_cron_reads_the_standard_five_field_dialect(expression: str, expected_starts: list[str]) -> None:
    spans = cron(expression, "1h", "UTC", "2026-04-01T00:00", "2026-04-11T00:00")
    assert [start for start, _ in spans] == [utc(text) for text in expected_starts]

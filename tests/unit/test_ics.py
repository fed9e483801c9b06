""".ics sources: recurrence (RRULE, RDATE, EXDATE, RECURRENCE-ID), time zones, and broken files with lines."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gatekeeper.calendar_sources import SourceError
from gatekeeper.calendar_sources.ics import IcsCalendar

Spans = list[tuple[int, int]]


def utc(text: str) -> int:
    """Epoch seconds of a UTC wall time written ``YYYY-MM-DDTHH:MM``."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def span(start: str, end: str) -> tuple[int, int]:
    return utc(start), utc(end)


def vcalendar(*blocks: str) -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//gatekeeper tests//EN", *blocks, "END:VCALENDAR"]
    return ("\r\n".join(lines) + "\r\n").encode()


def vevent(*properties: str, uid: str = "event@tests") -> str:
    return "\r\n".join(["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *properties, "END:VEVENT"])


def spans_of(data: bytes, policy_zone: str = "Europe/Berlin", lo: str = "2026-05-25T00:00", hi: str = "2026-07-01T00:00") -> Spans:
    return sorted(IcsCalendar.parse(data, "test.ics").spans(ZoneInfo(policy_zone), utc(lo), utc(hi)))


# June 2026 in Berlin is CEST (UTC+2): 14:00 local is 12:00Z.
DAILY_1400 = ("DTSTART;TZID=Europe/Berlin:20260601T140000", "DTEND;TZID=Europe/Berlin:20260601T160000")
CUSTOM_ZONE = "\r\n".join(
    [
        "BEGIN:VTIMEZONE",
        "TZID:Acme Plant Time",
        "BEGIN:STANDARD",
        "DTSTART:19700101T000000",
        "TZOFFSETFROM:+0530",
        "TZOFFSETTO:+0530",
        "TZNAME:APT",
        "END:STANDARD",
        "END:VTIMEZONE",
    ]
)
# A VTIMEZONE that claims a known IANA name with wrong rules: the IANA zone wins.
LYING_BERLIN = CUSTOM_ZONE.replace("TZID:Acme Plant Time", "TZID:Europe/Berlin")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            vcalendar(vevent(*DAILY_1400, "RRULE:FREQ=DAILY;COUNT=3")),
            [span("2026-06-01T12:00", "2026-06-01T14:00"), span("2026-06-02T12:00", "2026-06-02T14:00"),
             span("2026-06-03T12:00", "2026-06-03T14:00")],
            id="rrule-daily-count",
        ),
        pytest.param(
            # 1 June 2026 is a Monday: Mondays and Wednesdays until 10 June inclusive.
            vcalendar(vevent(*DAILY_1400, "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20260610T235959Z")),
            [span("2026-06-01T12:00", "2026-06-01T14:00"), span("2026-06-03T12:00", "2026-06-03T14:00"),
             span("2026-06-08T12:00", "2026-06-08T14:00"), span("2026-06-10T12:00", "2026-06-10T14:00")],
            id="rrule-weekly-byday-until",
        ),
        pytest.param(
            vcalendar(vevent(*DAILY_1400, "RDATE;TZID=Europe/Berlin:20260610T090000")),
            [span("2026-06-01T12:00", "2026-06-01T14:00"), span("2026-06-10T07:00", "2026-06-10T09:00")],
            id="rdate-adds-an-instance-with-the-master-length",
        ),
        pytest.param(
            vcalendar(vevent(*DAILY_1400, "RDATE:20260610T070000Z")),
            [span("2026-06-01T12:00", "2026-06-01T14:00"), span("2026-06-10T07:00", "2026-06-10T09:00")],
            id="rdate-in-utc-on-a-berlin-master",
        ),
        pytest.param(
            vcalendar(vevent(*DAILY_1400, "RDATE;TZID=America/New_York:20260610T070000")),
            [span("2026-06-01T12:00", "2026-06-01T14:00"), span("2026-06-10T11:00", "2026-06-10T13:00")],
            id="rdate-in-another-zone-than-the-master",
        ),
        pytest.param(
            vcalendar(vevent(*DAILY_1400, "RRULE:FREQ=DAILY;COUNT=3", "EXDATE;TZID=Europe/Berlin:20260602T140000")),
            [span("2026-06-01T12:00", "2026-06-01T14:00"), span("2026-06-03T12:00", "2026-06-03T14:00")],
            id="exdate-removes-an-instance",
        ),
        pytest.param(
            vcalendar(vevent(*DAILY_1400, "RRULE:FREQ=DAILY;COUNT=3", "EXDATE:20260602T120000Z,20260603T120000Z")),
            [span("2026-06-01T12:00", "2026-06-01T14:00")],
            id="exdate-list-in-utc",
        ),
        pytest.param(
            vcalendar(
                vevent(*DAILY_1400, "RRULE:FREQ=DAILY;COUNT=3"),
                vevent(
                    "RECURRENCE-ID;TZID=Europe/Berlin:20260602T140000",
                    "DTSTART;TZID=Europe/Berlin:20260605T080000",
                    "DTEND;TZID=Europe/Berlin:20260605T083000",
                ),
            ),
            [span("2026-06-01T12:00", "2026-06-01T14:00"), span("2026-06-03T12:00", "2026-06-03T14:00"),
             span("2026-06-05T06:00", "2026-06-05T06:30")],
            id="recurrence-id-moves-an-instance-to-another-day-and-length",
        ),
        pytest.param(
            vcalendar(
                vevent(*DAILY_1400, "RRULE:FREQ=DAILY;COUNT=3"),
                vevent("RECURRENCE-ID:20260602T120000Z", "DTSTART:20260602T080000Z", "DURATION:PT3H"),
            ),
            [span("2026-06-01T12:00", "2026-06-01T14:00"), span("2026-06-02T08:00", "2026-06-02T11:00"),
             span("2026-06-03T12:00", "2026-06-03T14:00")],
            id="recurrence-id-retimes-an-instance-on-the-same-day",
        ),
        pytest.param(
            vcalendar(
                vevent("DTSTART;VALUE=DATE:20260601", "RRULE:FREQ=WEEKLY;COUNT=3"),
                vevent("RECURRENCE-ID;VALUE=DATE:20260608", "DTSTART;VALUE=DATE:20260609", "DTEND;VALUE=DATE:20260611"),
            ),
            [span("2026-05-31T22:00", "2026-06-01T22:00"), span("2026-06-08T22:00", "2026-06-10T22:00"),
             span("2026-06-14T22:00", "2026-06-15T22:00")],
            id="all-day-override-moves-and-lengthens-an-instance",
        ),
    ],
)
def test_recurrence_expands_as_rfc_5545_says(data: bytes, expected: Spans) -> None:
    assert spans_of(data) == expected


@pytest.mark.parametrize(
    ("policy_zone", "expected"),
    [
        pytest.param("UTC", span("2026-06-01T14:00", "2026-06-01T15:00"), id="utc-policy"),
        pytest.param("Europe/Berlin", span("2026-06-01T12:00", "2026-06-01T13:00"), id="berlin-policy"),
        pytest.param("America/New_York", span("2026-06-01T18:00", "2026-06-01T19:00"), id="new-york-policy"),
    ],
)
def test_floating_times_are_read_in_the_policy_timezone(policy_zone: str, expected: tuple[int, int]) -> None:
    data = vcalendar(vevent("DTSTART:20260601T140000", "DTEND:20260601T150000"))
    assert spans_of(data, policy_zone) == [expected]


@pytest.mark.parametrize("policy_zone", ["UTC", "Europe/Berlin", "Australia/Sydney"])
def test_utc_times_mean_the_same_instant_whatever_the_policy_timezone(policy_zone: str) -> None:
    data = vcalendar(vevent("DTSTART:20260601T140000Z", "DTEND:20260601T150000Z"))
    assert spans_of(data, policy_zone) == [span("2026-06-01T14:00", "2026-06-01T15:00")]


@pytest.mark.parametrize(
    ("blocks", "expected"),
    [
        pytest.param(
            (vevent("DTSTART;TZID=W. Europe Standard Time:20260601T140000", "DURATION:PT1H"),),
            span("2026-06-01T12:00", "2026-06-01T13:00"),
            id="windows-name-as-outlook-writes-it",
        ),
        pytest.param(
            (vevent('DTSTART;TZID="W. Europe Standard Time":20260601T140000', "DURATION:PT1H"),),
            span("2026-06-01T12:00", "2026-06-01T13:00"),
            id="quoted-windows-name",
        ),
        pytest.param(
            (vevent("DTSTART;TZID=Eastern Standard Time:20260601T140000", "DURATION:PT1H"),),
            span("2026-06-01T18:00", "2026-06-01T19:00"),
            id="windows-eastern-is-new-york-with-dst",
        ),
        pytest.param(
            (CUSTOM_ZONE, vevent("DTSTART;TZID=Acme Plant Time:20260601T140000", "DURATION:PT1H")),
            span("2026-06-01T08:30", "2026-06-01T09:30"),
            id="vtimezone-only-custom-tzid",
        ),
        pytest.param(
            (LYING_BERLIN, vevent("DTSTART;TZID=Europe/Berlin:20260601T140000", "DURATION:PT1H")),
            span("2026-06-01T12:00", "2026-06-01T13:00"),
            id="iana-name-wins-over-its-vtimezone",
        ),
    ],
)
def test_tzids_resolve_to_iana_windows_or_vtimezone_zones(blocks: tuple[str, ...], expected: tuple[int, int]) -> None:
    assert spans_of(vcalendar(*blocks), "UTC") == [expected]


def test_an_event_straddling_the_range_start_is_kept_whole() -> None:
    data = vcalendar(vevent("DTSTART:20260531T200000Z", "DTEND:20260601T040000Z"))
    assert spans_of(data, "UTC", lo="2026-06-01T00:00") == [span("2026-05-31T20:00", "2026-06-01T04:00")]


def test_a_long_recurring_event_that_began_before_the_range_is_kept() -> None:
    data = vcalendar(vevent("DTSTART;VALUE=DATE:20260401", "DURATION:P30D", "RRULE:FREQ=MONTHLY;COUNT=3"))
    # The May instance runs 1-30 May (local Berlin days), overlapping a range that starts 25 May.
    assert span("2026-04-30T22:00", "2026-05-30T22:00") in spans_of(data)


def test_folded_lines_and_a_byte_order_mark_are_read() -> None:
    text = vcalendar(vevent("DTSTART:20260601T140000Z", "DTEND:20260601T150000Z", "SUMMARY:a long\r\n  folded summary"))
    assert spans_of(b"\xef\xbb\xbf" + text, "UTC") == [span("2026-06-01T14:00", "2026-06-01T15:00")]


def _numbered(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


HEAD = ("BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//t//EN", "BEGIN:VEVENT", "UID:a@t")  # lines 1-5


@pytest.mark.parametrize(
    ("data", "line", "message"),
    [
        pytest.param(_numbered(*HEAD, "DTSTART:20260601T140000Z", "DURATION:PT1H", "END:VCALENDAR"), 8,
                     "does not close BEGIN:VEVENT", id="missing-end-vevent"),
        pytest.param(_numbered(*HEAD, "DTSTART:20260601T140000Z", "DURATION:PT1H", "END:VEVENT"), 1,
                     "BEGIN:VCALENDAR is never closed", id="missing-end-vcalendar"),
        pytest.param(_numbered(*HEAD, "DTSTART:20260601T140000Z", "this is not ical", "END:VEVENT", "END:VCALENDAR"), 7,
                     "not an iCalendar content line", id="garbage-line"),
        pytest.param(_numbered("VERSION:2.0", "BEGIN:VCALENDAR", "END:VCALENDAR"), 1,
                     "does not start with BEGIN:VCALENDAR", id="not-a-calendar"),
        pytest.param(_numbered(*HEAD, "DTSTART;TZID=Mars/Olympus_Mons:20260601T140000", "DURATION:PT1H", "END:VEVENT",
                               "END:VCALENDAR"), 6, "unknown TZID 'Mars/Olympus_Mons'", id="unknown-tzid"),
        pytest.param(_numbered(*HEAD, "DTSTART:20260601T140000Z", "DURATION:PT1H", "RRULE:FREQ=SOMETIMES", "END:VEVENT",
                               "END:VCALENDAR"), 8, "RRULE", id="bad-rrule-freq"),
        pytest.param(_numbered(*HEAD, "DTSTART:20260601T140000Z", "DURATION:PT1H", "RRULE:FREQ=WEEKLY;BYDAY=XX",
                               "END:VEVENT", "END:VCALENDAR"), 8, "RRULE", id="bad-rrule-byday"),
        pytest.param(_numbered(*HEAD, "DTSTART:20260601T140000Z", "DTEND:20260601T130000Z", "END:VEVENT",
                               "END:VCALENDAR"), 7, "DTEND: must be after DTSTART", id="dtend-before-dtstart"),
        pytest.param(_numbered(*HEAD, "DTSTART:20260601T140000Z", "DTEND:20260601T140000Z", "END:VEVENT",
                               "END:VCALENDAR"), 7, "DTEND: must be after DTSTART", id="dtend-equals-dtstart"),
        pytest.param(_numbered(*HEAD, "DTSTART;VALUE=DATE:20260602", "DTEND;VALUE=DATE:20260601", "END:VEVENT",
                               "END:VCALENDAR"), 7, "DTEND", id="all-day-dtend-before-dtstart"),
        pytest.param(_numbered(*HEAD, "DTSTART:20260601T140000Z", "DTEND:20260601T150000Z", "DURATION:PT1H",
                               "END:VEVENT", "END:VCALENDAR"), 8, "both DTEND and DURATION", id="dtend-and-duration"),
        pytest.param(_numbered(*HEAD, "DTSTART:2026061", "DURATION:PT1H", "END:VEVENT", "END:VCALENDAR"), 6,
                     "DTSTART", id="broken-dtstart-value"),
        pytest.param(_numbered(*HEAD, "DTSTART:20260601T140000Z", "DURATION:1H", "END:VEVENT", "END:VCALENDAR"), 7,
                     "DURATION", id="broken-duration-value"),
        pytest.param(_numbered(*HEAD, "DTSTART:20260601T140000Z", "DURATION:PT1H", "EXDATE:someday", "END:VEVENT",
                               "END:VCALENDAR"), 8, "EXDATE", id="broken-exdate-value"),
        pytest.param(_numbered(*HEAD, "DURATION:PT1H", "END:VEVENT", "END:VCALENDAR"), 4, "no DTSTART", id="no-dtstart"),
        pytest.param(_numbered(*HEAD[:4], "DTSTART:20260601T140000Z", "DURATION:PT1H", "END:VEVENT", "END:VCALENDAR"), 4,
                     "no UID", id="no-uid"),
        pytest.param(_numbered("BEGIN:VCALENDAR", "SUMMARY:caf\xe9").replace(b"\xc3\xa9", b"\xe9"), 2, "UTF-8",
                     id="not-utf-8"),
    ],
)
def test_a_broken_file_is_a_source_error_with_the_line_of_the_problem(data: bytes, line: int, message: str) -> None:
    with pytest.raises(SourceError) as raised:
        IcsCalendar.parse(data, "broken.ics")
    assert raised.value.line == line
    assert message in raised.value.message

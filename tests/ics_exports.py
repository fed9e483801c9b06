"""iCalendar feeds in the shapes real calendar servers publish, written for these tests from RFC 5545
and the vendors' documented properties (no export copied from anywhere):

- Outlook / Exchange: ``PRODID`` of Microsoft Exchange, a ``VTIMEZONE`` and ``TZID`` values with the
  Windows zone name (``W. Europe Standard Time``), ``X-WR-CALNAME``/``X-WR-TIMEZONE``,
  ``X-MICROSOFT-CDO-*`` busy status and importance, recurring series with many ``EXDATE`` lines and
  moved instances (``RECURRENCE-ID`` overrides), a deleted instance as ``STATUS:CANCELLED``;
- Google Calendar: ``X-WR-TIMEZONE``, all-day series with ``VALUE=DATE``, ``RRULE`` with ``UNTIL`` in
  UTC, a free event as ``TRANSP:TRANSPARENT``;
- Nextcloud (Sabre/VObject CalDAV export): IANA ``TZID`` with its ``VTIMEZONE``, ``VALARM`` blocks,
  ``X-APPLE-*`` properties.

Lines end in CRLF and are folded at 75 octets, as RFC 5545 §3.1 asks.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

STAMP = "20261101T080000Z"

WINDOWS_BERLIN = "W. Europe Standard Time"

_WINDOWS_VTIMEZONE = """BEGIN:VTIMEZONE
TZID:W. Europe Standard Time
BEGIN:STANDARD
DTSTART:16010101T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE"""

_BERLIN_VTIMEZONE = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
END:STANDARD
END:VTIMEZONE"""


def fold(line: str) -> str:
    """RFC 5545 §3.1: lines longer than 75 octets continue on lines starting with a space."""
    data = line.encode()
    if len(data) <= 75:
        return line
    parts, start, limit = [], 0, 75
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # never split a UTF-8 sequence
            end -= 1
        parts.append(data[start:end].decode())
        start, limit = end, 74
    return "\r\n ".join(parts)


def _calendar(header: Iterable[str], blocks: Iterable[str]) -> bytes:
    lines = ["BEGIN:VCALENDAR", *header]
    for block in blocks:
        lines.extend(block.splitlines())
    lines.append("END:VCALENDAR")
    return ("\r\n".join(fold(line) for line in lines) + "\r\n").encode()


def _local(value: datetime) -> str:
    return value.strftime("%Y%m%dT%H%M%S")


def _day(value: date) -> str:
    return value.strftime("%Y%m%d")


# -- Outlook / Exchange --------------------------------------------------------------------------


def outlook_calendar(*events: str, name: str = "Finance close") -> bytes:
    header = [
        "METHOD:PUBLISH",
        "PRODID:Microsoft Exchange Server 2010",
        "VERSION:2.0",
        f"X-WR-CALNAME:{name}",
        f"X-WR-TIMEZONE:{WINDOWS_BERLIN}",  # Outlook writes its Windows zone name here too
    ]
    return _calendar(header, [_WINDOWS_VTIMEZONE, *events])


def outlook_event(
    uid: str,
    start: datetime,
    end: datetime,
    summary: str,
    *,
    rrule: str | None = None,
    exdates: Iterable[datetime] = (),
    recurrence_id: datetime | None = None,
    status: str | None = None,
    transparent: bool = False,
) -> str:
    """A VEVENT as Exchange publishes it; times are wall-clock in W. Europe Standard Time."""
    tz = f"TZID={WINDOWS_BERLIN}"
    lines = [
        "BEGIN:VEVENT",
        f"DESCRIPTION:{summary} (kept by finance in Outlook; do not release during it)\\n",
        f"UID:{uid}",
    ]
    if recurrence_id is not None:
        lines.append(f"RECURRENCE-ID;{tz}:{_local(recurrence_id)}")
    lines += [
        f"SUMMARY;LANGUAGE=de-DE:{summary}",
        f"DTSTART;{tz}:{_local(start)}",
        f"DTEND;{tz}:{_local(end)}",
    ]
    if rrule:
        lines.append(f"RRULE:{rrule}")
    # Exchange writes one EXDATE line per deleted occurrence.
    lines += [f"EXDATE;{tz}:{_local(day)}" for day in exdates]
    lines += [
        "CLASS:PUBLIC",
        "PRIORITY:5",
        f"DTSTAMP:{STAMP}",
        f"TRANSP:{'TRANSPARENT' if transparent else 'OPAQUE'}",
        f"STATUS:{status or 'CONFIRMED'}",
        "SEQUENCE:0",
        "LOCATION:Teams",
        "X-MICROSOFT-CDO-APPT-SEQUENCE:0",
        f"X-MICROSOFT-CDO-BUSYSTATUS:{'FREE' if transparent else 'BUSY'}",
        f"X-MICROSOFT-CDO-INTENDEDSTATUS:{'FREE' if transparent else 'BUSY'}",
        "X-MICROSOFT-CDO-ALLDAYEVENT:FALSE",
        "X-MICROSOFT-CDO-IMPORTANCE:1",
        "X-MICROSOFT-CDO-INSTTYPE:" + ("3" if recurrence_id else "1" if rrule else "0"),
        "X-MICROSOFT-DONOTFORWARDMEETING:FALSE",
        "X-MICROSOFT-DISALLOW-COUNTER:FALSE",
        "X-MICROSOFT-LOCATIONDISPLAYNAME:Teams",
        "END:VEVENT",
    ]
    return "\n".join(lines)


# -- Google Calendar -----------------------------------------------------------------------------


def google_calendar(*events: str, name: str = "Peak season") -> bytes:
    header = [
        "PRODID:-//Google Inc//Google Calendar 70.9054//EN",
        "VERSION:2.0",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{name}",
        "X-WR-TIMEZONE:Europe/Berlin",
        "X-WR-CALDESC:Operations peak season and warehouse freezes",
    ]
    return _calendar(header, events)


def google_all_day(uid: str, first: date, days: int, summary: str, *, rrule: str | None = None,
                   transparent: bool = False, status: str = "CONFIRMED") -> str:
    lines = [
        "BEGIN:VEVENT",
        f"DTSTART;VALUE=DATE:{_day(first)}",
        f"DTEND;VALUE=DATE:{_day(first + timedelta(days=days))}",
    ]
    if rrule:
        lines.append(f"RRULE:{rrule}")
    lines += [
        f"DTSTAMP:{STAMP}",
        f"UID:{uid}@google.com",
        f"CREATED:{STAMP}",
        "DESCRIPTION:",
        f"LAST-MODIFIED:{STAMP}",
        "LOCATION:",
        "SEQUENCE:0",
        f"STATUS:{status}",
        f"SUMMARY:{summary}",
        f"TRANSP:{'TRANSPARENT' if transparent else 'OPAQUE'}",
        "END:VEVENT",
    ]
    return "\n".join(lines)


def google_timed(uid: str, start: datetime, end: datetime, summary: str, *, until_utc: datetime | None = None,
                 byday: str | None = None, transparent: bool = False) -> str:
    """A timed Google event in Europe/Berlin; a series ends with ``UNTIL`` in UTC (``...Z``)."""
    lines = [
        "BEGIN:VEVENT",
        f"DTSTART;TZID=Europe/Berlin:{_local(start)}",
        f"DTEND;TZID=Europe/Berlin:{_local(end)}",
    ]
    if until_utc is not None:
        rule = f"FREQ=WEEKLY;UNTIL={until_utc.strftime('%Y%m%dT%H%M%SZ')}"
        lines.append(f"RRULE:{rule};BYDAY={byday}" if byday else f"RRULE:{rule}")
    lines += [
        f"DTSTAMP:{STAMP}",
        f"UID:{uid}@google.com",
        f"CREATED:{STAMP}",
        f"LAST-MODIFIED:{STAMP}",
        "SEQUENCE:1",
        "STATUS:CONFIRMED",
        f"SUMMARY:{summary}",
        f"TRANSP:{'TRANSPARENT' if transparent else 'OPAQUE'}",
        "END:VEVENT",
    ]
    return "\n".join(lines)


# -- Nextcloud (Sabre/VObject) -------------------------------------------------------------------


def nextcloud_calendar(*events: str, name: str = "Warehouse cut-offs") -> bytes:
    header = [
        "VERSION:2.0",
        "CALSCALE:GREGORIAN",
        "PRODID:-//SabreDAV//SabreDAV//EN",
        f"X-WR-CALNAME:{name}",
        "X-APPLE-CALENDAR-COLOR:#0082c9",
        "REFRESH-INTERVAL;VALUE=DURATION:PT4H",
        "X-PUBLISHED-TTL:PT4H",
    ]
    return _calendar(header, [_BERLIN_VTIMEZONE, *events])


def nextcloud_event(uid: str, start: datetime, end: datetime, summary: str, *, rrule: str | None = None) -> str:
    lines = [
        "BEGIN:VEVENT",
        f"CREATED:{STAMP}",
        f"DTSTAMP:{STAMP}",
        f"LAST-MODIFIED:{STAMP}",
        "SEQUENCE:2",
        f"UID:{uid}",
        f"DTSTART;TZID=Europe/Berlin:{_local(start)}",
        f"DTEND;TZID=Europe/Berlin:{_local(end)}",
        "STATUS:CONFIRMED",
        f"SUMMARY:{summary}",
        "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC",
    ]
    if rrule:
        lines.append(f"RRULE:{rrule}")
    lines += [
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        "DESCRIPTION:This is an event reminder",
        "TRIGGER;RELATED=START:-PT15M",
        "END:VALARM",
        "END:VEVENT",
    ]
    return "\n".join(lines)


# -- Sizes for the benchmark ---------------------------------------------------------------------


def big_outlook_feed(events: int = 2000, exdates: int = 500, first: datetime = datetime(2026, 1, 5, 8, 0)) -> bytes:
    """``events`` VEVENTs as Exchange publishes a busy shared calendar: weekly series (each a
    one-hour slot) with ``exdates`` EXDATE lines spread over them, a moved instance every 50th
    series, and single meetings for the rest."""
    blocks: list[str] = []
    series = events // 4
    per_series = max(1, exdates // max(1, series))
    left = exdates
    for number in range(events):
        start = first + timedelta(days=number % 7, hours=number % 9, minutes=15 * (number % 4))
        end = start + timedelta(hours=1)
        uid = f"040000008200E00074C5B7101A82E008000000{number:012d}"
        if number < series:
            taken = min(per_series if number < series - 1 else left, left)
            skipped = [start + timedelta(weeks=2 + 3 * k) for k in range(taken)]
            left -= taken
            blocks.append(outlook_event(uid, start, end, f"Series {number}", rrule="FREQ=WEEKLY;COUNT=80",
                                        exdates=skipped))
        elif number % 50 == 0 and number - series < series:
            moved_from = first + timedelta(days=(number - series) % 7, hours=(number - series) % 9,
                                           minutes=15 * ((number - series) % 4), weeks=5)
            master = f"040000008200E00074C5B7101A82E008000000{number - series:012d}"
            blocks.append(outlook_event(master, moved_from + timedelta(hours=2), moved_from + timedelta(hours=3),
                                        f"Series {number - series} (moved)", recurrence_id=moved_from))
        else:
            blocks.append(outlook_event(uid, start + timedelta(weeks=number % 40), end + timedelta(weeks=number % 40),
                                        f"Meeting {number}"))
    return outlook_calendar(*blocks, name="Shared warehouse calendar")

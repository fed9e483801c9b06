"""iCalendar files: VEVENTs with RRULE/RDATE/EXDATE/RECURRENCE-ID, DTEND or DURATION, TZID.

recurring-ical-events decides *which* occurrences exist and their wall-clock starts; the
instants and lengths are computed here by the RFC 5545 rules (DESIGN §3), because the library
computes ends in wall-clock time (a 1-hour event starting in a DST gap comes out zero-length):
- a timed start is resolved in its TZID with ``localtime.to_utc`` (gap: offset before it;
  ambiguous: first occurrence); floating times are read in the policy timezone;
- a recurring event with DTEND keeps the exact length of its first instance; with DURATION, the
  nominal days then the exact hours (RFC 5545 §3.8.5.3); an override (RECURRENCE-ID) uses its own;
- DURATION is read from the file's own text: the library hands back a ``timedelta``, which cannot
  tell ``PT24H`` (24 elapsed hours, RFC 5545 §3.3.6) from ``P1D`` (one nominal day: 23 or 25 hours
  across a DST change);
- all-day events cover whole local days in the policy timezone;
- a cancelled event or instance (``STATUS:CANCELLED``, as Outlook and Google publish a deleted
  occurrence of a series) covers nothing; a free/busy-transparent one (``TRANSP:TRANSPARENT``,
  "show as free") closes nothing in a deny entry, but still opens in an allow entry (a
  maintenance window is often marked free so it blocks nobody's diary).
Vendor properties (``X-MICROSOFT-CDO-*``, ``X-WR-*``, ``X-APPLE-*``) are read past.
Parsing keeps line numbers so a broken file is reported as ``FILE:LINE: message``.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, cast
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
from dateutil import rrule  # type: ignore[import-untyped,unused-ignore]

from gatekeeper.calendar_sources import SourceError
from gatekeeper.calendar_sources.zones import zone as named_zone
from gatekeeper.domain.durations import Duration, InvalidDurationError
from gatekeeper.domain.localtime import end_after, local_midnight, to_utc
from gatekeeper.domain.types import from_epoch, utc_epoch
from gatekeeper.domain.windows import Span

_CONTENT_LINE = re.compile(
    r'[A-Za-z0-9-]+(?:;[A-Za-z0-9-]+=(?:"[^"]*"|[^";:,]*)(?:,(?:"[^"]*"|[^";:,]*))*)*:'
)
_TIME_PROPERTIES = ("DTSTART", "DTEND", "RECURRENCE-ID", "EXDATE", "RDATE")
# Expansion looks this far beyond the range so events that straddle its edges are kept.
_MARGIN = timedelta(days=2)


@dataclass(frozen=True, slots=True)
class _Lines:
    """Where each VEVENT starts and where its properties are, by file line (1-based), and the
    raw text of the properties whose parsed value loses information (DURATION)."""

    events: tuple[tuple[int, dict[str, int]], ...]
    raw: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class _Event:
    """One source VEVENT (a master or a RECURRENCE-ID override) and what its length is."""

    line: int
    all_day: bool
    start_zone: tzinfo | None  # None: floating, read in the policy timezone
    exact: timedelta | None  # DTEND on a timed event: the exact length of the first instance
    nominal: Duration | None  # DURATION, or DTEND - DTSTART in days for an all-day event


class IcsCalendar:
    """A parsed, validated ``.ics`` file that expands into closed spans for any range."""

    def __init__(
        self, name: str, calendar: icalendar.Calendar, events: dict[tuple[str, int | None], _Event], longest: timedelta
    ) -> None:
        self.name = name
        self._calendar = calendar
        self._events = events
        self._longest = longest
        self._lock = threading.Lock()
        self._query: Any = None  # recurring_ical_events' query, built on first use
        self.digest = ""  # sha256 of the bytes it was parsed from (set by ``parse``)

    @property
    def event_count(self) -> int:
        """VEVENTs in the file (series masters and moved instances)."""
        return len(self._events)

    @classmethod
    def parse(cls, data: bytes, name: str) -> IcsCalendar:
        """Parse and validate; SourceError carries the line of the first problem."""
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SourceError(f"not UTF-8 text: {exc.reason}", _line_of_offset(data, exc.start)) from exc
        lines = _scan(text)
        try:
            calendar = icalendar.Calendar.from_ical(text)
        except ValueError as exc:
            raise SourceError(f"iCalendar syntax: {exc}", 1) from exc
        _standard_x_wr_timezone(calendar)
        zones = _custom_zones(calendar)
        vevents = list(calendar.walk("VEVENT"))
        events: dict[tuple[str, int | None], _Event] = {}
        longest = timedelta(days=1)
        for vevent, (line, properties), raw in zip(vevents, lines.events, lines.raw, strict=True):
            key, event, length = _read_event(vevent, line, properties, zones, raw)
            events[key] = event
            longest = max(longest, length)
        parsed = cls(name, calendar, events, longest)
        parsed.digest = hashlib.sha256(data).hexdigest()
        return parsed

    def spans(self, policy_zone: tzinfo, lo: int, hi: int, *, busy_only: bool = False) -> list[Span]:
        """Spans of every occurrence that overlaps ``[lo, hi)`` (with ``busy_only``, as a deny
        entry reads them: without the ``TRANSP:TRANSPARENT`` ones)."""
        start = from_epoch(lo) - self._longest - _MARGIN
        end = from_epoch(hi) + _MARGIN
        spans: list[Span] = []
        for component, started in self._occurrences(start, end):
            if _ignored(component, busy_only):
                continue
            span = self._span(component, started, policy_zone)
            if span is not None and span[1] > lo and span[0] < hi:
                spans.append(span)
        return spans

    def _occurrences(self, start: datetime, end: datetime) -> list[tuple[icalendar.Component, date]]:
        """Each occurrence in ``[start, end]``: its source VEVENT (the master, or the override of a
        moved instance) and its start.

        One query per calendar, built once: building it applies X-WR-TIMEZONE and sorts the series,
        which for a 2,000-event feed costs more than the expansion. The occurrences are read
        without the library's per-occurrence copy of the component (``between`` copies every
        property of every instance; the window needs only the start and the source's rules);
        ``_occurrences_between`` is ``between`` before that copy (recurring-ical-events 3.8,
        pinned in pyproject.toml; tests/unit/test_ics.py and test_dst.py hold it to the answers).
        """
        with self._lock:
            try:
                if self._query is None:
                    self._query = recurring_ical_events.of(self._calendar, skip_bad_series=False)
                found = self._query._occurrences_between(start, end)
            except Exception as exc:  # the library raises many types on data it cannot expand
                raise SourceError(f"cannot expand events: {exc}") from exc
        return [(occurrence._adapter._component, occurrence.start) for occurrence in found]

    def _span(self, component: icalendar.Component, started: date, policy_zone: tzinfo) -> Span | None:
        uid = str(component.get("UID", ""))
        recurrence = component.get("RECURRENCE-ID")  # set on an override (a moved instance) only
        event = None
        if recurrence is not None:
            event = self._events.get((uid, _instant_key(recurrence.dt, UTC)))
        event = event or self._events.get((uid, None))
        if event is None:
            return None
        if event.all_day or not isinstance(started, datetime):
            day = started.date() if isinstance(started, datetime) else started
            wall = datetime.combine(day, datetime.min.time())
            begin = local_midnight(day, policy_zone)
            end = end_after(wall, policy_zone, event.nominal or Duration(days=1))
            return utc_epoch(begin), utc_epoch(end)
        wall_zone = _occurrence_zone(started, event, policy_zone)
        wall = started.replace(tzinfo=None)
        if started.tzinfo is not None and wall_zone is UTC:
            wall = started.astimezone(UTC).replace(tzinfo=None)
        begin = to_utc(wall, wall_zone)
        if event.exact is not None:
            finish = begin + event.exact
        elif event.nominal is not None:
            finish = end_after(wall, wall_zone, event.nominal)
        else:
            return None  # a timed event with neither DTEND nor DURATION takes no time
        return utc_epoch(begin), utc_epoch(finish)


def _ignored(occurrence: icalendar.Component, busy_only: bool) -> bool:
    """A cancelled occurrence covers nothing; a transparent one closes nothing."""
    if str(occurrence.get("STATUS", "")).upper() == "CANCELLED":
        return True
    return busy_only and str(occurrence.get("TRANSP", "")).upper() == "TRANSPARENT"


def _occurrence_zone(started: datetime, event: _Event, policy_zone: tzinfo) -> tzinfo:
    """The zone whose wall clock an occurrence's start is read in.

    An RDATE or override may name another TZID (or ``Z``) than the master's DTSTART, so an
    occurrence in an IANA zone is read in that zone; a floating one in the policy timezone.
    """
    if isinstance(started.tzinfo, ZoneInfo):
        return UTC if started.tzinfo.key in ("UTC", "Etc/UTC") else started.tzinfo
    if started.tzinfo is not None and event.start_zone is None:
        return started.tzinfo
    return event.start_zone or policy_zone


def _scan(text: str) -> _Lines:
    """Check the content-line structure and note where each VEVENT and property is."""
    stack: list[tuple[str, int]] = []
    events: list[tuple[int, dict[str, int]]] = []
    texts: list[dict[str, str]] = []
    logical: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw[:1] in (" ", "\t") and logical:
            logical[-1] = (logical[-1][0], logical[-1][1] + raw[1:])
        elif raw.strip():
            logical.append((number, raw))
    if not logical or logical[0][1].strip().upper() != "BEGIN:VCALENDAR":
        raise SourceError("file does not start with BEGIN:VCALENDAR", logical[0][0] if logical else 1)
    for number, line in logical:
        if not _CONTENT_LINE.match(line):
            raise SourceError(f"not an iCalendar content line (NAME;PARAMS:VALUE): {line[:60]!r}", number)
        name, _, text = line.partition(":")
        name = name.split(";", 1)[0].upper()
        value = text.strip().upper()
        if name == "BEGIN":
            stack.append((value, number))
            if value == "VEVENT":
                events.append((number, {}))
                texts.append({})
        elif name == "END":
            if not stack or stack[-1][0] != value:
                expected = stack[-1][0] if stack else "nothing"
                raise SourceError(f"END:{value} does not close BEGIN:{expected}", number)
            stack.pop()
        elif stack and stack[-1][0] == "VEVENT":
            events[-1][1].setdefault(name, number)
            if name == "DURATION":
                texts[-1].setdefault(name, value)
    if stack:
        raise SourceError(f"BEGIN:{stack[-1][0]} is never closed", stack[-1][1])
    return _Lines(tuple(events), tuple(texts))


def _standard_x_wr_timezone(calendar: icalendar.Calendar) -> None:
    """``X-WR-TIMEZONE`` (Google's, and Outlook's with a Windows name such as ``W. Europe Standard
    Time``) is applied by recurring-ical-events, which knows only IANA names: map a Windows name,
    and drop a name no one knows (it is a hint, never a reason to reject a feed)."""
    name = calendar.get("X-WR-TIMEZONE")
    if name is None:
        return
    try:
        found = named_zone(str(name))
    except SourceError:
        del calendar["X-WR-TIMEZONE"]
        return
    if isinstance(found, ZoneInfo) and found.key != str(name):
        calendar["X-WR-TIMEZONE"] = found.key


def _custom_zones(calendar: icalendar.Calendar) -> dict[str, tzinfo]:
    """VTIMEZONE blocks, used only for a TZID that is not a known zone name."""
    zones: dict[str, tzinfo] = {}
    for block in calendar.walk("VTIMEZONE"):
        tzid = str(block.get("TZID", ""))
        try:
            zones[tzid] = cast(icalendar.Timezone, block).to_tz()
        except Exception:  # noqa: S112 - a VTIMEZONE we cannot read is only used if referenced
            continue
    return zones


def _zone_of(prop: Any, zones: dict[str, tzinfo], line: int, name: str) -> tzinfo | None:
    """The zone a DATE-TIME property is read in: its TZID, UTC for ``Z``, None if floating."""
    tzid = prop.params.get("TZID") if hasattr(prop, "params") else None
    if tzid:
        try:
            return named_zone(str(tzid))
        except SourceError:
            if str(tzid) in zones:
                return zones[str(tzid)]
            raise SourceError(f"{name}: unknown TZID {tzid!r} and no VTIMEZONE defines it", line) from None
    values = [prop.dt] if hasattr(prop, "dt") else [item.dt for item in getattr(prop, "dts", ())]
    if any(isinstance(value, datetime) and value.tzinfo is not None for value in values):
        return UTC
    return None


def _read_event(
    vevent: icalendar.Component,
    line: int,
    properties: dict[str, int],
    zones: dict[str, tzinfo],
    raw: dict[str, str] | None = None,
) -> tuple[tuple[str, int | None], _Event, timedelta]:
    """Validate one VEVENT and work out its length rule."""
    def at(name: str) -> int:
        return properties.get(name, line)

    _check_broken(vevent, at)
    for name in _TIME_PROPERTIES:
        for prop in _as_list(vevent.get(name)):
            if not hasattr(prop, "params") or (getattr(prop, "dt", None) is None and not hasattr(prop, "dts")):
                raise SourceError(f"{name}: value is not a DATE or DATE-TIME", at(name))
            _zone_of(prop, zones, at(name), name)
    if vevent.get("UID") is None:
        raise SourceError("VEVENT has no UID", line)
    start_prop = vevent.get("DTSTART")
    if start_prop is None:
        raise SourceError("VEVENT has no DTSTART", line)
    start = start_prop.dt
    if not isinstance(start, date):
        raise SourceError("DTSTART: value is not a DATE or DATE-TIME", at("DTSTART"))
    if "DTEND" in vevent and "DURATION" in vevent:
        raise SourceError("VEVENT has both DTEND and DURATION", at("DURATION"))
    all_day = not isinstance(start, datetime)
    start_zone = None if all_day else _zone_of(start_prop, zones, at("DTSTART"), "DTSTART")
    exact, nominal = _length(vevent, start, start_zone, all_day, at, zones, (raw or {}).get("DURATION"))
    _check_rrule(vevent, start, at("RRULE"))
    uid = str(vevent["UID"])
    recurrence = vevent.get("RECURRENCE-ID")
    key = _instant_key(recurrence.dt, UTC) if recurrence is not None else None
    longest = exact or (nominal.approximate if nominal else timedelta(days=1))
    return (uid, key), _Event(line, all_day, start_zone, exact, nominal), longest


def _check_broken(vevent: icalendar.Component, at: Any) -> None:
    """icalendar keeps a value it cannot parse as a broken property instead of raising: report it."""
    for name, problem in getattr(vevent, "errors", ()):
        name = str(name or "VEVENT").upper()
        raise SourceError(f"{name}: {problem}", at(name))


def _length(
    vevent: icalendar.Component,
    start: date,
    start_zone: tzinfo | None,
    all_day: bool,
    at: Any,
    zones: dict[str, tzinfo],
    raw_duration: str | None = None,
) -> tuple[timedelta | None, Duration | None]:
    if "DURATION" in vevent:
        value = _dt(vevent, "DURATION")
        if not isinstance(value, timedelta) or value <= timedelta(0):
            raise SourceError("DURATION: must be a positive duration such as PT1H or P1D", at("DURATION"))
        return None, ics_duration(raw_duration, value)
    if "DTEND" not in vevent:
        return None, (Duration(days=1) if all_day else None)
    end = _dt(vevent, "DTEND")
    if all_day:
        if isinstance(end, datetime) or end <= start:
            raise SourceError("DTEND: must be a DATE after DTSTART for an all-day event", at("DTEND"))
        return None, Duration(days=(end - start).days)
    if not isinstance(end, datetime):
        raise SourceError("DTEND: must be a DATE-TIME when DTSTART is one", at("DTEND"))
    assert isinstance(start, datetime)  # noqa: S101 - all_day is False here
    end_zone = _zone_of(vevent["DTEND"], zones, at("DTEND"), "DTEND") or start_zone
    exact = _instant(end, end_zone) - _instant(start, start_zone)
    if exact <= timedelta(0):
        raise SourceError("DTEND: must be after DTSTART", at("DTEND"))
    return exact, None


def ics_duration(text: str | None, parsed: timedelta) -> Duration:
    """A DURATION value as written: its weeks and days nominal, its hours, minutes and seconds
    exact (``PT24H`` is 24 elapsed hours, ``P1D`` one local day). ``parsed`` (the library's
    ``timedelta``) only serves when the text is not at hand; it reads every 24 hours as a day."""
    if text is not None:
        try:
            return Duration.parse(text.strip().upper().removeprefix("+"))
        except InvalidDurationError:
            pass  # the library accepted it (checked above): fall back to its reading
    return Duration(days=parsed.days, seconds=parsed.seconds)


def _instant(value: datetime, zone: tzinfo | None) -> datetime:
    """An instant for length arithmetic; a floating time is measured as if in UTC."""
    if zone is UTC and value.tzinfo is not None:
        return value.astimezone(UTC)
    return to_utc(value.replace(tzinfo=None), zone or UTC)


def _instant_key(value: date, zone: tzinfo) -> int:
    """A comparable key for a RECURRENCE-ID value."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return utc_epoch(value)
        return utc_epoch(to_utc(value, zone))
    return utc_epoch(local_midnight(value, UTC))


def _check_rrule(vevent: icalendar.Component, start: date, line: int) -> None:
    for prop in _as_list(vevent.get("RRULE")):
        text = prop.to_ical().decode()
        try:
            dtstart = start if isinstance(start, datetime) else datetime.combine(start, datetime.min.time())
            rrule.rrulestr(text, dtstart=dtstart.replace(tzinfo=None), ignoretz=True)
        except (ValueError, TypeError) as exc:
            raise SourceError(f"RRULE: {exc}", line) from exc


def _dt(component: icalendar.Component, name: str) -> Any:
    """The parsed value of a DATE, DATE-TIME or DURATION property (checked by the caller)."""
    prop: Any = component[name]
    return prop.dt


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _line_of_offset(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1

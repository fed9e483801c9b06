"""Local wall-clock time to absolute time, read as RFC 5545 §3.3.5 reads it (DESIGN §3).

A local time that falls in a spring-forward gap takes the UTC offset from before the gap (02:30
on a day whose clocks jump 02:00->03:00 is 03:30 local); an ambiguous local time takes its first
occurrence. Durations add their nominal days in wall-clock time, then their exact seconds.
Libraries disagree at these edges, so every calendar source resolves its instants here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

from gatekeeper.domain.durations import Duration


def to_utc(wall: datetime, zone: tzinfo) -> datetime:
    """The absolute instant of naive local time ``wall`` in ``zone``.

    PEP 495 fold=0 means exactly the RFC 5545 reading: in a gap the offset before the
    transition applies, and an ambiguous time is its earlier occurrence.
    """
    if wall.tzinfo is not None:
        raise ValueError("to_utc takes a naive wall-clock time")
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)


def local_midnight(day: date, zone: tzinfo) -> datetime:
    """The instant a local calendar day starts (a midnight in a gap takes the earlier offset)."""
    return to_utc(datetime.combine(day, time()), zone)


def end_after(wall_start: datetime, zone: tzinfo, duration: Duration) -> datetime:
    """The end of a window starting at local ``wall_start``: nominal days, then exact seconds."""
    nominal = to_utc(wall_start + timedelta(days=duration.days), zone)
    return nominal + timedelta(seconds=duration.seconds)


def wall_clock(instant: datetime, zone: tzinfo) -> datetime:
    """The naive local time of an aware instant in ``zone``."""
    return instant.astimezone(zone).replace(tzinfo=None)

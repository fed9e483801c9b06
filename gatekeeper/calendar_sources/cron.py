"""Argo CD sync-window style cron entries: a window of ``duration`` from each cron match.

croniter iterates naive wall-clock times (so it neither skips nor doubles matches at a DST
change); each wall-clock match is then resolved to an instant by ``localtime.to_utc``, which
applies the RFC 5545 reading (a 02:30 match on a spring-forward day starts at 03:30 local; on a
fall-back day it fires once, at the first 02:30).
"""

from __future__ import annotations

from datetime import timedelta, tzinfo

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from gatekeeper.calendar_sources import SourceError
from gatekeeper.domain.durations import Duration
from gatekeeper.domain.localtime import end_after, to_utc, wall_clock
from gatekeeper.domain.types import from_epoch, utc_epoch
from gatekeeper.domain.windows import Span


def validate(expression: str) -> None:
    """Raise SourceError unless ``expression`` is a standard five-field cron expression."""
    fields = expression.split()
    if len(fields) != 5:
        raise SourceError(
            f"cron {expression!r} has {len(fields)} fields, expected 5 (minute hour day month weekday)"
        )
    if not croniter.is_valid(expression):
        raise SourceError(f"cron {expression!r} is not a valid cron expression")


def cron_spans(expression: str, duration: Duration, zone: tzinfo, lo: int, hi: int) -> list[Span]:
    """Spans of every window that overlaps ``[lo, hi)``."""
    validate(expression)
    # Start early enough to catch a window that began before lo and still runs.
    first = wall_clock(from_epoch(lo) - duration.approximate - timedelta(days=1), zone)
    try:
        matches = croniter(expression, first, day_or=True)
    except (CroniterBadCronError, CroniterBadDateError) as exc:
        raise SourceError(f"cron {expression!r}: {exc}") from exc
    spans: list[Span] = []
    while True:
        wall = matches.get_next(type(first))
        start = utc_epoch(to_utc(wall, zone))
        if start >= hi:
            return spans
        end = utc_epoch(end_after(wall, zone, duration))
        if end > lo:
            spans.append((start, end))

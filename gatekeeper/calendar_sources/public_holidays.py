"""Public holidays (the ``holidays`` package) as whole local days in the policy timezone."""

from __future__ import annotations

from datetime import date, timedelta, tzinfo
from functools import cache

import holidays

from gatekeeper.calendar_sources import SourceError
from gatekeeper.domain.localtime import local_midnight
from gatekeeper.domain.policy import HolidaySpec
from gatekeeper.domain.types import from_epoch, utc_epoch
from gatekeeper.domain.windows import Span


def validate(spec: HolidaySpec) -> None:
    """Raise SourceError for a country or subdivision the holidays package does not know."""
    holiday_dates(spec, 2026)


@cache
def holiday_dates(spec: HolidaySpec, year: int) -> frozenset[date]:
    try:
        calendar = holidays.country_holidays(spec.country, subdiv=spec.subdivision, years=year)
    except NotImplementedError as exc:
        if spec.subdivision and spec.country in holidays.list_supported_countries():
            known = ", ".join(holidays.list_supported_countries()[spec.country])
            raise SourceError(
                f"holidays: country {spec.country} has no subdivision {spec.subdivision!r}"
                f" (known: {known})"
            ) from exc
        raise SourceError(f"holidays: unknown country code {spec.country!r}") from exc
    return frozenset(calendar.keys())


def dates_between(spec: HolidaySpec, first: date, last: date) -> set[date]:
    found: set[date] = set()
    for year in range(first.year, last.year + 1):
        found.update(day for day in holiday_dates(spec, year) if first <= day <= last)
    return found


def day_spans(days: set[date] | list[date], zone: tzinfo) -> list[Span]:
    """Whole local days (23, 24 or 25 hours long) as spans."""
    return [
        (utc_epoch(local_midnight(day, zone)), utc_epoch(local_midnight(day + timedelta(days=1), zone)))
        for day in sorted(days)
    ]


def local_dates(lo: int, hi: int, zone: tzinfo) -> tuple[date, date]:
    """The local dates that ``[lo, hi)`` touches, padded by a day each side."""
    first = from_epoch(lo).astimezone(zone).date() - timedelta(days=1)
    last = from_epoch(hi).astimezone(zone).date() + timedelta(days=1)
    return first, last


def holiday_spans(spec: HolidaySpec, zone: tzinfo, lo: int, hi: int) -> list[Span]:
    first, last = local_dates(lo, hi, zone)
    return day_spans(dates_between(spec, first, last), zone)

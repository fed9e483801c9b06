"""Business-day rules: the first or last N business days of each month as whole local days.

A business day is Monday to Friday and, when the rule names holidays, not a public holiday.
"""

from __future__ import annotations

import calendar
from datetime import date, tzinfo

from gatekeeper.calendar_sources.public_holidays import dates_between, day_spans, local_dates
from gatekeeper.domain.policy import BusinessDaysEntry
from gatekeeper.domain.windows import Span


def business_days_of_month(year: int, month: int, closed: set[date]) -> list[date]:
    days = calendar.monthrange(year, month)[1]
    candidates = (date(year, month, day) for day in range(1, days + 1))
    return [day for day in candidates if day.weekday() < 5 and day not in closed]


def business_day_spans(entry: BusinessDaysEntry, zone: tzinfo, lo: int, hi: int) -> list[Span]:
    first, last = local_dates(lo, hi, zone)
    first = first.replace(day=1)
    closed = dates_between(entry.holidays, first, date(last.year, 12, 31)) if entry.holidays else set()
    chosen: list[date] = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        days = business_days_of_month(year, month, closed)
        chosen.extend(days[: entry.first] if entry.first else days[-(entry.last or 0) :])
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return day_spans(chosen, zone)

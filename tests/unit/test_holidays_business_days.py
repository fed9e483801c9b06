"""Public holidays and business-day rules as whole local days in the policy timezone (DESIGN §3, §6)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gatekeeper import calendar
from gatekeeper.calendar_sources import SourceError
from gatekeeper.calendar_sources.business_days import business_day_spans
from gatekeeper.calendar_sources.public_holidays import holiday_spans, validate
from gatekeeper.configuration.loader import load_configuration
from gatekeeper.domain.policy import BusinessDaysEntry, HolidaySpec

Spans = list[tuple[int, int]]


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def days(*pairs: tuple[str, str]) -> Spans:
    return [(utc(start), utc(end)) for start, end in pairs]


def holidays_in(spec: HolidaySpec, zone: str, lo: str, hi: str) -> Spans:
    return sorted(s for s in holiday_spans(spec, ZoneInfo(zone), utc(lo), utc(hi)) if s[1] > utc(lo) and s[0] < utc(hi))


def business_days_in(entry: BusinessDaysEntry, zone: str, lo: str, hi: str) -> Spans:
    spans = business_day_spans(entry, ZoneInfo(zone), utc(lo), utc(hi))
    return sorted(s for s in spans if s[1] > utc(lo) and s[0] < utc(hi))


@pytest.mark.parametrize(
    ("spec", "zone", "lo", "hi", "expected"),
    [
        pytest.param(
            HolidaySpec("DE", "HH"), "Europe/Berlin", "2026-10-01T00:00", "2026-11-01T00:00",
            # German Unity Day (CEST) and Reformation Day (Hamburg only; CET after 25 October).
            days(("2026-10-02T22:00", "2026-10-03T22:00"), ("2026-10-30T23:00", "2026-10-31T23:00")),
            id="hamburg-has-reformation-day",
        ),
        pytest.param(
            HolidaySpec("DE"), "Europe/Berlin", "2026-10-01T00:00", "2026-11-01T00:00",
            days(("2026-10-02T22:00", "2026-10-03T22:00")),
            id="germany-without-subdivision-does-not",
        ),
        pytest.param(
            HolidaySpec("DE"), "America/New_York", "2026-10-01T00:00", "2026-11-01T00:00",
            days(("2026-10-03T04:00", "2026-10-04T04:00")),
            id="the-local-day-is-the-policy-timezones",
        ),
        pytest.param(
            HolidaySpec("AU", "NSW"), "Australia/Sydney", "2026-04-04T00:00", "2026-04-06T00:00",
            # Easter Saturday (AEDT, 24 h), Easter Sunday on the fall-back day (25 h), Easter Monday (AEST).
            days(("2026-04-03T13:00", "2026-04-04T13:00"), ("2026-04-04T13:00", "2026-04-05T14:00"),
                 ("2026-04-05T14:00", "2026-04-06T14:00")),
            id="a-holiday-on-a-dst-day-lasts-25-hours",
        ),
        pytest.param(
            HolidaySpec("DE"), "Europe/Berlin", "2026-12-31T12:00", "2027-01-02T00:00",
            days(("2026-12-31T23:00", "2027-01-01T23:00")),
            id="new-year-across-the-year-boundary",
        ),
    ],
)
def test_public_holidays_are_whole_local_days(spec: HolidaySpec, zone: str, lo: str, hi: str, expected: Spans) -> None:
    assert holidays_in(spec, zone, lo, hi) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(HolidaySpec("XX"), "unknown country code 'XX'", id="unknown-country"),
        pytest.param(HolidaySpec("DE", "ZZ"), "no subdivision 'ZZ'", id="unknown-subdivision"),
    ],
)
def test_an_unknown_country_or_subdivision_is_a_source_error(spec: HolidaySpec, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        validate(spec)


def rule(first: int | None = None, last: int | None = None, holidays: HolidaySpec | None = None) -> BusinessDaysEntry:
    return BusinessDaysEntry(first, last, holidays, "month_end_close")


@pytest.mark.parametrize(
    ("entry", "lo", "hi", "expected"),
    [
        pytest.param(
            # March 2024 ends Fri 29 (Good Friday), Sat 30, Sun 31: the last two business days are Wed 27, Thu 28.
            rule(last=2, holidays=HolidaySpec("DE")), "2024-03-20T00:00", "2024-04-01T00:00",
            days(("2024-03-26T23:00", "2024-03-27T23:00"), ("2024-03-27T23:00", "2024-03-28T23:00")),
            id="last-2-skips-good-friday-and-the-weekend",
        ),
        pytest.param(
            rule(last=2), "2024-03-20T00:00", "2024-04-01T00:00",
            days(("2024-03-27T23:00", "2024-03-28T23:00"), ("2024-03-28T23:00", "2024-03-29T23:00")),
            id="without-holidays-counts-monday-to-friday",
        ),
        pytest.param(
            # January 2027 ends Sat 30, Sun 31: Thu 28 and Fri 29.
            rule(last=2, holidays=HolidaySpec("DE")), "2027-01-20T00:00", "2027-02-01T00:00",
            days(("2027-01-27T23:00", "2027-01-28T23:00"), ("2027-01-28T23:00", "2027-01-29T23:00")),
            id="month-ending-on-a-weekend",
        ),
        pytest.param(
            # Hamburg: Fri 31 October 2025 is Reformation Day, so Wed 29 and Thu 30.
            rule(last=2, holidays=HolidaySpec("DE", "HH")), "2025-10-20T00:00", "2025-11-01T00:00",
            days(("2025-10-28T23:00", "2025-10-29T23:00"), ("2025-10-29T23:00", "2025-10-30T23:00")),
            id="subdivision-holiday-on-the-last-weekday",
        ),
        pytest.param(
            # May 2026 starts on Labour Day (Friday): the first two business days are Mon 4 and Tue 5.
            rule(first=2, holidays=HolidaySpec("DE")), "2026-05-01T00:00", "2026-05-10T00:00",
            days(("2026-05-03T22:00", "2026-05-04T22:00"), ("2026-05-04T22:00", "2026-05-05T22:00")),
            id="first-2-skips-labour-day-and-the-weekend",
        ),
        pytest.param(
            rule(first=3), "2026-06-01T00:00", "2026-06-10T00:00",
            days(("2026-05-31T22:00", "2026-06-01T22:00"), ("2026-06-01T22:00", "2026-06-02T22:00"),
                 ("2026-06-02T22:00", "2026-06-03T22:00")),
            id="first-3-of-a-month-starting-on-monday",
        ),
        pytest.param(
            # The range spans a year boundary: December's last business day and January's first.
            rule(last=1, holidays=HolidaySpec("DE")), "2026-12-30T00:00", "2027-01-10T00:00",
            days(("2026-12-30T23:00", "2026-12-31T23:00")),
            id="across-a-year-boundary",
        ),
    ],
)
def test_business_day_rules_close_whole_local_days(entry: BusinessDaysEntry, lo: str, hi: str, expected: Spans) -> None:
    assert business_days_in(entry, "Europe/Berlin", lo, hi) == expected


MONTH_END_POLICY = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: month-end}
spec:
  targets: ["argocd:odoo-prod"]
  timezone: Europe/Berlin
  calendar:
    deny:
      - {businessDays: {last: 2, holidays: {country: DE}}, code: month_end_close}
      - {holidays: {country: DE, subdivision: HH}}
"""


@pytest.mark.parametrize(
    ("at", "codes"),
    [
        pytest.param("2024-03-26T23:59:59+01:00", [], id="tuesday-before-is-open"),
        pytest.param("2024-03-27T00:00:00+01:00", ["month_end_close"], id="local-midnight-starts-the-close"),
        pytest.param("2024-03-28T23:59:59+01:00", ["month_end_close"], id="thursday-evening-still-closed"),
        pytest.param("2024-03-29T10:00:00+01:00", ["public_holiday"], id="good-friday-is-a-holiday"),
        pytest.param("2024-04-02T10:00:00+02:00", [], id="after-easter-open"),
    ],
)
def test_the_design_example_reads_as_a_release_manager_expects(
    config_dirs: Callable[..., tuple[Path, Path]], at: str, codes: list[str]
) -> None:
    policies, calendars = config_dirs({"month-end.yaml": MONTH_END_POLICY})
    configuration = load_configuration(policies, calendars)
    result = calendar.status(configuration.calendars, configuration.policies, "argocd:odoo-prod", datetime.fromisoformat(at))
    assert [reason.code for reason in result.reasons] == codes

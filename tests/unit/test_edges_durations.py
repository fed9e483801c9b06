"""Every place a duration is parsed keeps hours exact and days nominal (RFC 5545 §3.3.6, DESIGN §3):
policy durations, cron windows and .ics DURATION values read from the file's own text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gatekeeper.calendar_sources.cron import cron_spans
from gatekeeper.calendar_sources.ics import ics_duration
from gatekeeper.domain.durations import Duration
from gatekeeper.domain.types import from_epoch, utc_epoch

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("PT24H", Duration(seconds=86_400), id="PT24H-exact"),
        pytest.param("P1D", Duration(days=1), id="P1D-nominal"),
        pytest.param("P1DT24H", Duration(days=1, seconds=86_400), id="P1DT24H-both"),
        pytest.param("pt48h", Duration(seconds=172_800), id="lower-case"),
        pytest.param("+PT24H", Duration(seconds=86_400), id="plus-sign"),
        pytest.param("P2W", Duration(days=14), id="weeks-nominal"),
    ],
)
def test_an_ics_duration_keeps_hours_exact_and_days_nominal(text: str, expected: Duration) -> None:
    parsed = timedelta(days=expected.days, seconds=expected.seconds)  # what the library hands back
    assert ics_duration(text, parsed) == expected


def test_without_its_text_an_ics_duration_falls_back_to_the_librarys_reading() -> None:
    assert ics_duration(None, timedelta(hours=24)) == Duration(days=1)


@pytest.mark.parametrize(
    ("duration", "end"),
    [
        pytest.param("24h", datetime(2026, 3, 29, 11, 0, tzinfo=UTC), id="24h-exact"),
        pytest.param("PT24H", datetime(2026, 3, 29, 11, 0, tzinfo=UTC), id="PT24H-exact"),
        pytest.param("1d", datetime(2026, 3, 29, 10, 0, tzinfo=UTC), id="1d-nominal"),
    ],
)
def test_a_cron_window_of_24_hours_is_exact_time_across_the_dst_change(duration: str, end: datetime) -> None:
    lo, hi = utc_epoch(datetime(2026, 3, 28, tzinfo=UTC)), utc_epoch(datetime(2026, 3, 28, 23, tzinfo=UTC))
    spans = cron_spans("0 12 28 3 *", Duration.parse(duration), BERLIN, lo, hi)
    assert [(from_epoch(a), from_epoch(b)) for a, b in spans] == [(datetime(2026, 3, 28, 11, 0, tzinfo=UTC), end)]

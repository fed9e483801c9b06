"""The CLI's text output shows local times beside UTC instants (issue 14 item 8); --json stays UTC."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from gatekeeper.cli.common import with_local

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("instant", "zone", "shown"),
    [
        pytest.param("2026-11-24T15:00:00Z", BERLIN, "2026-11-24T15:00:00Z (16:00 Europe/Berlin)", id="winter-cet"),
        pytest.param("2026-06-03T14:00:00Z", BERLIN, "2026-06-03T14:00:00Z (16:00 Europe/Berlin)", id="summer-cest"),
        pytest.param("2026-03-29T00:59:59Z", BERLIN, "2026-03-29T00:59:59Z (01:59 Europe/Berlin)", id="before-spring-forward"),
        pytest.param("2026-03-29T01:00:00Z", BERLIN, "2026-03-29T01:00:00Z (03:00 Europe/Berlin)", id="spring-forward"),
        pytest.param("2026-10-25T00:30:00Z", BERLIN, "2026-10-25T00:30:00Z (02:30 Europe/Berlin)", id="fall-back-first"),
        pytest.param("2026-10-25T01:30:00Z", BERLIN, "2026-10-25T01:30:00Z (02:30 Europe/Berlin)", id="fall-back-second"),
        pytest.param("2026-11-24T23:30:00Z", BERLIN, "2026-11-24T23:30:00Z (2026-11-25 00:30 Europe/Berlin)",
                     id="next-local-day"),
        pytest.param("2026-11-24T03:00:00Z", ZoneInfo("America/New_York"),
                     "2026-11-24T03:00:00Z (2026-11-23 22:00 America/New_York)", id="previous-local-day"),
        pytest.param("2026-11-24T15:00:00Z", ZoneInfo("UTC"), "2026-11-24T15:00:00Z", id="utc-says-it-once"),
    ],
)
def test_an_instant_shows_its_local_time_beside_it(instant: str, zone: ZoneInfo, shown: str) -> None:
    assert with_local(instant, zone) == shown


def test_a_missing_instant_shows_what_the_caller_says() -> None:
    assert with_local(None, BERLIN) == "-"
    assert with_local(None, BERLIN, "not within 366 days") == "not within 366 days"

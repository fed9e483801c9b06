from __future__ import annotations

import pytest

from gatekeeper.domain.durations import Duration, InvalidDurationError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2h", Duration(0, 7200), id="hours"),
        pytest.param("90m", Duration(0, 5400), id="minutes"),
        pytest.param("1h30m", Duration(0, 5400), id="hours-and-minutes"),
        pytest.param("1d", Duration(1, 0), id="day-is-nominal"),
        pytest.param("1w", Duration(7, 0), id="week-is-seven-nominal-days"),
        pytest.param("1d2h", Duration(1, 7200), id="mixed-short"),
        pytest.param("PT2H", Duration(0, 7200), id="iso-hours"),
        pytest.param("P1DT2H", Duration(1, 7200), id="iso-mixed"),
        pytest.param("P2W", Duration(14, 0), id="iso-weeks"),
        pytest.param("PT45S", Duration(0, 45), id="iso-seconds"),
    ],
)
def test_durations_parse_into_nominal_days_and_exact_seconds(text: str, expected: Duration) -> None:
    assert Duration.parse(text) == expected


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "P", "PT", "P1M", "P1Y", "-1h", "0h", "2 h"])
def test_bad_durations_are_rejected_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(InvalidDurationError, match="duration"):
        Duration.parse(text)

"""Durations as policies write them: ``2h``, ``90m``, ``1h30m``, ``1d`` or ISO 8601 ``PT2H``.

A duration keeps its nominal part (days and weeks: local calendar days) apart from its exact
part (hours, minutes, seconds: elapsed time), because DESIGN §3 adds them differently across a
DST change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

_SHORT = re.compile(r"(?:\d+[wdhms])+")
_SHORT_PART = re.compile(r"(\d+)([wdhms])")
_ISO = re.compile(
    r"P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+)S)?)?"
)
_SECONDS = {"h": 3600, "m": 60, "s": 1}


class InvalidDurationError(ValueError):
    """A duration string in neither accepted form."""


@dataclass(frozen=True, slots=True, order=True)
class Duration:
    """``days`` nominal local days (weeks count 7) followed by ``seconds`` of elapsed time."""

    days: int = 0
    seconds: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        text = text.strip()
        if _SHORT.fullmatch(text):
            days = seconds = 0
            for amount, unit in _SHORT_PART.findall(text):
                if unit in "wd":
                    days += int(amount) * (7 if unit == "w" else 1)
                else:
                    seconds += int(amount) * _SECONDS[unit]
            return cls._checked(text, days, seconds)
        iso = _ISO.fullmatch(text)
        if iso and text not in ("P", "PT") and not text.endswith("T"):
            parts = {key: int(value) for key, value in iso.groupdict(default="0").items()}
            days = parts["w"] * 7 + parts["d"]
            seconds = parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
            return cls._checked(text, days, seconds)
        raise InvalidDurationError(
            f"duration {text!r} is not of the form 2h, 90m, 1h30m, 1d or ISO 8601 (PT2H, P1D)"
        )

    @classmethod
    def _checked(cls, text: str, days: int, seconds: int) -> Duration:
        if days == 0 and seconds == 0:
            raise InvalidDurationError(f"duration {text!r} is zero")
        return cls(days=days, seconds=seconds)

    @property
    def approximate(self) -> timedelta:
        """An upper-bound estimate (a nominal day is at most 25 hours) for look-back margins."""
        return timedelta(hours=25 * self.days, seconds=self.seconds)

    def __str__(self) -> str:
        text = f"{self.days}d" if self.days else ""
        hours, rest = divmod(self.seconds, 3600)
        minutes, seconds = divmod(rest, 60)
        for amount, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")):
            if amount:
                text += f"{amount}{unit}"
        return text or "0s"

"""Time zone names to tzinfo: IANA names, and the Windows names Outlook writes."""

from __future__ import annotations

from datetime import tzinfo
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from gatekeeper.calendar_sources import SourceError


@cache
def zone(name: str) -> tzinfo:
    """The zone for an IANA or Windows name; SourceError if neither knows it."""
    iana = WINDOWS_TO_OLSON.get(name, name)
    try:
        return ZoneInfo(iana)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SourceError(f"unknown time zone {name!r} (expected an IANA name such as Europe/Berlin)") from exc


def is_known(name: str) -> bool:
    try:
        zone(name)
    except SourceError:
        return False
    return True

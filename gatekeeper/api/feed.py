"""The effective closed windows of a target as an iCalendar feed (Outlook, Google Calendar)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from icalendar import Calendar, Event

from gatekeeper.calendar import Windows
from gatekeeper.domain.freezes import Freeze
from gatekeeper.domain.types import from_epoch


def closed_windows_feed(
    windows: Windows, *, stamp: datetime, host: str, freezes: Sequence[Freeze] = ()
) -> bytes:
    """The closed windows as VEVENTs; a window that an ad-hoc freeze closes says which freeze,
    who started it and why (``freezes``: those matching the target)."""
    calendar = Calendar()
    calendar.add("prodid", "-//gatekeeper//closed release windows//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", f"gatekeeper: {windows.target} closed")
    for window in windows.closed:
        event = Event()
        event.add("uid", f"{windows.target}-{window.start}-{window.end}@{host}")
        event.add("dtstamp", stamp)
        event.add("dtstart", from_epoch(window.start))
        event.add("dtend", from_epoch(window.end))
        event.add("summary", f"Releases closed: {', '.join(window.codes)}")
        lines = [f"gatekeeper closes {windows.target} ({', '.join(window.codes)})"]
        for freeze in freezes:
            start, end = freeze.span(window.end)
            if start < window.end and end > window.start:
                lines.append(freeze.label())
        event.add("description", "\n".join(lines))
        event.add("transp", "TRANSPARENT")
        calendar.add_component(event)
    feed: bytes = calendar.to_ical()
    return feed

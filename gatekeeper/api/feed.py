"""The effective closed windows of a target as an iCalendar feed (Outlook, Google Calendar)."""

from __future__ import annotations

from datetime import datetime

from icalendar import Calendar, Event

from gatekeeper.calendar import Windows
from gatekeeper.domain.types import from_epoch


def closed_windows_feed(windows: Windows, *, stamp: datetime, host: str) -> bytes:
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
        event.add("description", f"gatekeeper closes {windows.target} ({', '.join(window.codes)})")
        event.add("transp", "TRANSPARENT")
        calendar.add_component(event)
    feed: bytes = calendar.to_ical()
    return feed

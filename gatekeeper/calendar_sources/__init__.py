"""Calendar sources: each turns one kind of calendar entry into closed spans of epoch seconds.

One module per kind (``ics``, ``cron``, ``public_holidays``, ``business_days``). Each resolves
local times through ``gatekeeper.domain.localtime`` instead of trusting its library at DST edges,
and raises only ``SourceError`` for bad input.
"""

from __future__ import annotations


class SourceError(ValueError):
    """A calendar entry that cannot be compiled; ``line`` is 1-based within its file if known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

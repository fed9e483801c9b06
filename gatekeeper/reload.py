"""Keeps the active configuration: loads policy and calendar files, reloads them on change.

A set of files that fails to load is rejected whole: the last good configuration stays active
(status ``stale``, with the FILE:LINE errors), and with none ever loaded the status is
``invalid`` and every gate call defers with ``config_invalid`` (fail closed). Published calendars
come from the ``FeedBook``'s last good copies; ``refresh_feeds`` (the feeds loop) reloads when one
changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from gatekeeper.calendar import CompileError
from gatekeeper.configuration.loader import Configuration, ConfigurationError, load_configuration
from gatekeeper.feeds import FeedBook

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ConfigState:
    """The active configuration (None if none ever loaded) and the last load's outcome."""

    configuration: Configuration | None
    status: str  # ok | stale | invalid
    errors: tuple[str, ...]
    loaded_at: datetime | None


def fingerprint(*roots: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and modification times of every file under ``roots`` (cheap change test)."""
    entries: list[tuple[str, int, int]] = []
    for root in roots:
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    stat = path.stat()
                    entries.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


class ConfigHolder:
    """Thread-safe holder of the active configuration, with reload and change polling."""

    def __init__(
        self,
        policies_dir: Path,
        calendars_dir: Path,
        clock: Callable[[], datetime],
        feeds: FeedBook | None = None,
    ) -> None:
        self.policies_dir = policies_dir
        self.calendars_dir = calendars_dir
        self.feeds = feeds  # published calendars' last good copies (None: files only)
        self._clock = clock
        self._lock = threading.Lock()
        self._state = ConfigState(None, "invalid", ("not loaded yet",), None)
        self._seen: tuple[tuple[str, int, int], ...] | None = None
        self._listeners: list[Callable[[ConfigState], None]] = []

    @property
    def state(self) -> ConfigState:
        return self._state

    def on_change(self, listener: Callable[[ConfigState], None]) -> None:
        self._listeners.append(listener)

    def reload(self) -> ConfigState:
        """Load the files now; keep the last good configuration if they do not load."""
        with self._lock:
            self._seen = fingerprint(self.policies_dir, self.calendars_dir)
            now = self._clock()
            copies = self.feeds.calendars() if self.feeds is not None else None
            try:
                configuration = load_configuration(self.policies_dir, self.calendars_dir, now=now, feeds=copies)
            except ConfigurationError as exc:
                errors = tuple(str(error) for error in exc.errors)
                previous = self._state.configuration
                self._state = ConfigState(previous, "stale" if previous else "invalid", errors, self._state.loaded_at)
                for error in errors:
                    logger.error("configuration rejected: %s", error)
            else:
                self._state = ConfigState(configuration, "ok", (), now)
                logger.info(
                    "configuration loaded: %d policies, hash %s",
                    len(configuration.policies),
                    configuration.policy_hash[:12],
                )
                for notice in configuration.notices:
                    logger.warning("not enforced: %s", notice)
            state = self._state
        for listener in self._listeners:
            listener(state)
        return state

    def changed(self) -> bool:
        """Whether the files changed (a new feed copy reloads from ``refresh_feeds`` itself)."""
        return fingerprint(self.policies_dir, self.calendars_dir) != self._seen

    def refresh_feeds(self) -> None:
        """Fetch the published calendars the active policies name (the feeds loop); a new good
        copy reloads the configuration at once, so the next decision is made on it."""
        configuration = self._state.configuration
        if self.feeds is None or configuration is None:
            return
        if self.feeds.refresh(entry.url for entry in configuration.feeds):
            self.reload()

    def feeds_unknown(self) -> bool:
        """Whether the active policies name a feed never tried yet (wake the feeds loop)."""
        configuration = self._state.configuration
        if self.feeds is None or configuration is None:
            return False
        return not self.feeds.known(entry.url for entry in configuration.feeds)

    def poll(self) -> None:
        """Reload if the files changed; keep the compiled horizon ahead of the clock."""
        if self.changed():
            self.reload()
            return
        configuration = self._state.configuration
        if configuration is not None:
            try:
                configuration.calendars.warm(self._clock() + timedelta(days=2))
            except CompileError as exc:  # compiled fine at load; report, keep serving
                logger.error("calendar compile failed: %s", exc)

"""Published calendars (``ics: https://...``): their last good copies, kept on disk, and freshness.

A ``FeedBook`` owns, for each feed URL, the last copy that validated (parsed like a file, errors
``URL:LINE: message``) and what happened at the last fetch. ``refresh`` runs in the background
loop only (never on a request): a 304, or a 200 whose bytes did not change, costs no parse; a
broken, oversized or unreachable feed keeps the last good copy and records the error. Each good
copy and each outcome is written under ``CALENDAR_CACHE_DIR`` (atomically), so a restart or a new
replica starts from the last good copy without the network. A feed whose last success is older
than its entry's ``maxAge`` is stale: ``stale_reasons`` turns that into ``calendar_stale`` for the
policies that use it (fail closed; a feed never fetched is stale too).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from gatekeeper.calendar_sources import SourceError
from gatekeeper.calendar_sources.ics import IcsCalendar
from gatekeeper.domain.durations import Duration
from gatekeeper.domain.policy import FeedEntry, Policy, feed_display
from gatekeeper.domain.types import Reason, format_instant
from gatekeeper.readers.calendar_feeds import FeedFetchError, Fetched, load_credentials

logger = logging.getLogger(__name__)

__all__ = ["STALE", "FeedBook", "FeedError", "FeedState", "load_credentials"]

STALE = "calendar_stale"


class FeedError(Exception):
    """A feed that could not be fetched or did not validate: ``URL:LINE: message``."""

    def __init__(self, url: str, line: int | None, message: str) -> None:
        super().__init__(f"{url}:{line}: {message}" if line is not None else f"{url}: {message}")
        self.url, self.line, self.message = url, line, message


class FeedFetcher(Protocol):
    """Fetches one feed conditionally (``readers.calendar_feeds.HttpxFeedReader``)."""

    def fetch(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> Fetched: ...


@dataclass(frozen=True, slots=True)
class FeedState:
    """What is known of one feed: its good copy's metadata and the last fetch's outcome."""

    url: str
    last_success: datetime | None = None  # the last 200 or 304: the copy was current then
    last_attempt: datetime | None = None
    last_error: str | None = None  # the latest failed attempt's message (kept until a success)
    last_error_at: datetime | None = None
    events: int | None = None  # VEVENTs in the good copy (None: no copy)
    digest: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    rejected: str | None = None  # sha256 of the last body that did not validate (not parsed again)

    def age(self, now: datetime) -> float | None:
        return None if self.last_success is None else (now - self.last_success).total_seconds()

    def is_stale(self, now: datetime, max_age_seconds: int) -> bool:
        age = self.age(now)
        return age is None or age > max_age_seconds

    def as_json(self, now: datetime, max_age_seconds: int | None = None, *, display: bool = True) -> dict[str, Any]:
        """The shape ``/readyz`` and ``calendars list --json`` show (the URL redacted if ``display``)."""
        age = self.age(now)
        state = "ok"
        if self.last_success is None:
            state = "never_fetched"
        elif max_age_seconds is not None and self.is_stale(now, max_age_seconds):
            state = "stale"
        elif self.last_error is not None:
            state = "failing"  # serving the last good copy, still within maxAge
        error = self.last_error
        if error is not None and display:
            error = error.replace(self.url, feed_display(self.url))
        return {
            "source": feed_display(self.url) if display else self.url,
            "kind": "url",
            "state": state,
            "last_success": format_instant(self.last_success),
            "last_attempt": format_instant(self.last_attempt),
            "age_seconds": None if age is None else int(age),
            "max_age_seconds": max_age_seconds,
            "events": self.events,
            "last_error": error,
            "last_error_at": format_instant(self.last_error_at),
        }


Observer = Callable[[str, str], None]  # (url, outcome): ok | not_modified | unchanged | rejected | error | parsed


class FeedBook:
    """The feeds' last good copies and states; thread-safe (refreshed by one loop, read by all)."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        cache_dir: Path | None = None,
        fetcher: FeedFetcher | None = None,
        observer: Observer | None = None,
    ) -> None:
        self._clock = clock
        self._cache_dir = cache_dir
        self._fetcher = fetcher
        self._observe = observer or (lambda url, outcome: None)
        self._lock = threading.Lock()
        self._copies: dict[str, IcsCalendar] = {}
        self._states: dict[str, FeedState] = {}

    # -- reading -------------------------------------------------------------------------------

    def calendars(self) -> dict[str, IcsCalendar]:
        with self._lock:
            return dict(self._copies)

    def state(self, url: str) -> FeedState:
        return self._states.get(url) or FeedState(url)

    def known(self, urls: Iterable[str]) -> bool:
        """Whether every URL has been tried or found in the cache (else refresh at once)."""
        return all(url in self._states for url in urls)

    def stale_reasons(self, policies: Sequence[Policy], now: datetime) -> dict[str, tuple[Reason, ...]]:
        """For each policy using a stale feed, a ``calendar_stale`` reason per such feed."""
        found: dict[str, tuple[Reason, ...]] = {}
        for policy in policies:
            reasons = tuple(
                self._stale_reason(entry, now)
                for entry in (*policy.calendar.deny, *policy.calendar.allow)
                if isinstance(entry, FeedEntry) and self.state(entry.url).is_stale(now, entry.max_age_seconds)
            )
            if reasons:
                found[policy.name] = tuple(dict.fromkeys(reasons))
        return found

    def stale_of(self, policies: Sequence[Policy], now: datetime) -> tuple[Reason, ...]:
        """The ``calendar_stale`` reasons of all ``policies`` (one target's), each once: what
        ``status`` and ``windows`` close from now on."""
        found = self.stale_reasons(policies, now)
        return tuple(dict.fromkeys(reason for reasons in found.values() for reason in reasons))

    def _stale_reason(self, entry: FeedEntry, now: datetime) -> Reason:
        state = self.state(entry.url)
        shown = feed_display(entry.url)
        if state.last_success is None:
            message = f"calendar feed {shown} ({entry.code}) has never been fetched"
        else:
            age = Duration(seconds=int(state.age(now) or 0))
            message = f"calendar feed {shown} ({entry.code}) was last fetched {age} ago (maxAge {entry.max_age})"
        if state.last_error:
            message += f"; last error: {state.last_error.replace(entry.url, shown)[:200]}"
        return Reason("calendar", STALE, message, None)

    # -- refreshing ----------------------------------------------------------------------------

    def refresh(self, urls: Iterable[str]) -> bool:
        """Fetch each feed once; True if any good copy changed (the configuration must reload)."""
        changed = False
        for url in urls:
            try:
                changed = self.refresh_one(url) or changed
            except Exception as exc:  # one feed's surprise must not starve the others
                logger.exception("calendar feed %s: refresh failed", feed_display(url))
                self._failed(self.state(url), self._clock(), f"{url}: {type(exc).__name__}: {exc}"[:300], "error")
        return changed

    def refresh_one(self, url: str) -> bool:
        if self._fetcher is None:
            return False
        state = self.state(url)
        now = self._clock()
        try:
            fetched = self._fetcher.fetch(url, etag=state.etag, last_modified=state.last_modified)
        except FeedFetchError as exc:
            self._failed(state, now, str(exc), "error")
            return False
        if fetched.body is None or (digest := hashlib.sha256(fetched.body).hexdigest()) == state.digest:
            self._succeeded(state, now, fetched, "not_modified" if fetched.body is None else "unchanged")
            return False
        if digest == state.rejected:  # the same broken bytes again: the same error, no parse
            self._failed(state, now, state.last_error or f"{url}: rejected before", "rejected")
            return False
        try:
            calendar = self._parse(fetched.body, url)
        except SourceError as exc:
            where = f"{url}:{exc.line}" if exc.line is not None else url
            self._failed(replace(state, rejected=digest), now, f"{where}: {exc.message}", "rejected")
            return False
        with self._lock:
            self._copies[url] = calendar
        new = replace(
            state, last_success=now, last_attempt=now, last_error=None, last_error_at=None,
            events=calendar.event_count, digest=digest, etag=fetched.etag, last_modified=fetched.last_modified,
            rejected=None,
        )
        self._keep(new, fetched.body)
        self._observe(url, "ok")
        logger.info("calendar feed %s: new copy, %d events", feed_display(url), calendar.event_count)
        return True

    def check(self, url: str) -> IcsCalendar:
        """Fetch and validate without keeping anything (``policy lint --fetch``); FeedError names
        the URL and, for a copy that does not validate, the line."""
        if self._fetcher is None:
            raise FeedError(url, None, "no fetcher configured")
        try:
            fetched = self._fetcher.fetch(url)
            return self._parse(fetched.body or b"", url)
        except FeedFetchError as exc:
            raise FeedError(url, None, str(exc).removeprefix(f"GET {url}: ")) from exc
        except SourceError as exc:
            raise FeedError(url, exc.line, exc.message) from exc

    def _parse(self, body: bytes, url: str) -> IcsCalendar:
        self._observe(url, "parsed")
        return IcsCalendar.parse(body, url)

    def _succeeded(self, state: FeedState, now: datetime, fetched: Fetched, outcome: str) -> None:
        new = replace(
            state, last_success=now, last_attempt=now, last_error=None, last_error_at=None,
            etag=fetched.etag or state.etag, last_modified=fetched.last_modified or state.last_modified,
        )
        self._keep(new, None)
        self._observe(state.url, outcome)

    def _failed(self, state: FeedState, now: datetime, message: str, outcome: str) -> None:
        logger.error("calendar feed %s: %s (keeping the last good copy)", feed_display(state.url), message)
        self._keep(replace(state, last_attempt=now, last_error=message, last_error_at=now), None)
        self._observe(state.url, outcome)

    # -- the cache on disk ---------------------------------------------------------------------

    def _keep(self, state: FeedState, body: bytes | None) -> None:
        self._states[state.url] = state
        if self._cache_dir is None:
            return
        try:
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            stem = _stem(state.url)
            if body is not None:
                _write_atomic(self._cache_dir / f"{stem}.ics", body)
            _write_atomic(self._cache_dir / f"{stem}.json", json.dumps(_state_json(state), indent=2).encode())
        except OSError as exc:  # a full disk costs the restart copy, not the running one
            logger.error("calendar cache %s: cannot write: %s", self._cache_dir, exc)

    def load_cache(self) -> int:
        """Read every cached copy (at start-up); a copy that no longer validates is skipped."""
        if self._cache_dir is None or not self._cache_dir.is_dir():
            return 0
        loaded = 0
        for meta in sorted(self._cache_dir.glob("*.json")):
            try:
                state = _state_from_json(json.loads(meta.read_text("utf-8")))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.error("calendar cache %s: unreadable: %s", meta, exc)
                continue
            body = meta.with_suffix(".ics")
            if state.digest is not None and body.is_file():
                try:
                    calendar = self._parse(body.read_bytes(), state.url)
                except (OSError, SourceError) as exc:
                    logger.error("calendar cache %s: dropped: %s", body, exc)
                    state = replace(state, digest=None, events=None, last_success=None, etag=None, last_modified=None)
                else:
                    if calendar.digest != state.digest:  # written apart (a crash between the two files)
                        state = replace(state, digest=calendar.digest, etag=None, last_modified=None)
                    self._copies[state.url] = calendar
                    loaded += 1
            self._states[state.url] = state
        return loaded

    def report(self, entries: Sequence[FeedEntry], now: datetime, *, display: bool = True) -> list[dict[str, Any]]:
        """One row per configured feed (``/readyz``, ``calendars list``)."""
        return [
            {**self.state(entry.url).as_json(now, entry.max_age_seconds, display=display), "code": entry.code}
            for entry in entries
        ]

    def freshness(self, entries: Sequence[FeedEntry], now: datetime) -> list[tuple[FeedState, bool]]:
        """Each configured feed's state and whether it is stale at ``now`` (for /metrics)."""
        return [(self.state(e.url), self.state(e.url).is_stale(now, e.max_age_seconds)) for e in entries]

    def cached_states(self) -> list[FeedState]:
        with self._lock:
            return [self._states[url] for url in sorted(self._states)]


def _stem(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:32]


def _write_atomic(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


_INSTANTS = ("last_success", "last_attempt", "last_error_at")


def _state_json(state: FeedState) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(state, name) for name in FeedState.__slots__}
    for name in _INSTANTS:
        data[name] = data[name].isoformat() if data[name] is not None else None
    return data


def _state_from_json(data: dict[str, Any]) -> FeedState:
    values: dict[str, Any] = {name: data.get(name) for name in FeedState.__slots__}
    for name in _INSTANTS:
        values[name] = datetime.fromisoformat(str(values[name])) if values[name] else None
    if not isinstance(values["url"], str):
        raise ValueError("no url")
    return FeedState(**values)

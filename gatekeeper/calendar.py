"""Compiles policies' calendar entries into window indexes, and answers status and windows.

One ``Calendars`` belongs to one loaded configuration. It compiles each policy once per range
(``[t - 31 days, t + 400 days]`` around the first instant asked, DESIGN §3) into a
``WindowIndex`` and keeps the few most recent ranges; instants outside every kept range compile
a new one on demand. Several policies on one target are combined into one index (closed where
any is closed). Ad-hoc freezes (read from the database by the caller) are merged into the index
of the target they match (``with_freezes``), so they take part in every answer, and so is the
staleness of published calendars (``with_stale``): a feed past its ``maxAge`` closes the gate from
now on, with no end known, as it closes the gate's decisions (``calendar_stale``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from gatekeeper.calendar_sources import SourceError
from gatekeeper.calendar_sources.business_days import business_day_spans
from gatekeeper.calendar_sources.cron import cron_spans
from gatekeeper.calendar_sources.ics import IcsCalendar
from gatekeeper.calendar_sources.public_holidays import holiday_spans
from gatekeeper.calendar_sources.zones import zone
from gatekeeper.domain.decision import LOOKAHEAD, calendar_reason
from gatekeeper.domain.freezes import Freeze, matching
from gatekeeper.domain.policy import (
    BusinessDaysEntry,
    CalendarEntry,
    CronEntry,
    FeedEntry,
    HolidaysEntry,
    IcsEntry,
    Policy,
)
from gatekeeper.domain.types import Reason, from_epoch, utc_epoch
from gatekeeper.domain.windows import (
    OUTSIDE_ALLOW,
    ClosedWindow,
    Span,
    WindowIndex,
    complement,
    merge_spans,
)

DAY = 86_400
BEFORE = 31 * DAY
AFTER = 400 * DAY
KEPT_RANGES = 4
NO_POLICY = "no_policy"
LOOKAHEAD_SECONDS = int(LOOKAHEAD.total_seconds())


class CompileError(ValueError):
    """A calendar entry of a policy failed to compile (names the entry and, if known, the line)."""

    def __init__(self, policy: Policy, entry: CalendarEntry, error: SourceError) -> None:
        super().__init__(f"policy {policy.name}: {entry.describe()}: {error.message}")
        self.policy = policy
        self.entry = entry
        self.error = error


def entry_spans(
    entry: CalendarEntry,
    policy: Policy,
    ics: Mapping[str, IcsCalendar],
    lo: int,
    hi: int,
    *,
    allow: bool = False,
) -> list[Span]:
    """The closed (or, for ``allow`` entries, open) spans of one entry within ``[lo, hi)``.

    A deny entry's transparent events (``TRANSP:TRANSPARENT``, "free") close nothing."""
    policy_zone = zone(policy.timezone)
    try:
        match entry:
            case IcsEntry(path=path):
                return ics[path].spans(policy_zone, lo, hi, busy_only=not allow)
            case FeedEntry(url=url):
                # A feed with no good copy yet closes nothing here: its entry is stale, and the
                # freshness check closes the gate with calendar_stale (facts.py) instead.
                feed = ics.get(url)
                return feed.spans(policy_zone, lo, hi, busy_only=not allow) if feed is not None else []
            case HolidaysEntry(holidays=spec):
                return holiday_spans(spec, policy_zone, lo, hi)
            case BusinessDaysEntry():
                return business_day_spans(entry, policy_zone, lo, hi)
            case CronEntry(cron=expression, duration=duration, timezone=name):
                return cron_spans(expression, duration, zone(name), lo, hi)
    except SourceError as exc:
        raise CompileError(policy, entry, exc) from exc
    raise TypeError(f"unknown calendar entry {entry!r}")


def compile_policy(policy: Policy, ics: Mapping[str, IcsCalendar], lo: int, hi: int) -> WindowIndex:
    """One policy's index over ``[lo, hi)``: deny codes, and outside_allow_window if it has allows."""
    spans: dict[str, list[Span]] = {}
    sources: dict[str, list[str]] = {}
    by_source: dict[tuple[str, str], list[Span]] = {}
    for entry in policy.calendar.deny:
        own = entry_spans(entry, policy, ics, lo, hi)
        spans.setdefault(entry.code, []).extend(own)
        sources.setdefault(entry.code, []).append(entry.describe())
        by_source.setdefault((entry.code, entry.describe()), []).extend(own)
    if policy.calendar.allow:
        allowed: list[Span] = []
        for entry in policy.calendar.allow:
            allowed.extend(entry_spans(entry, policy, ics, lo, hi, allow=True))
            sources.setdefault(OUTSIDE_ALLOW, []).append(entry.code)
        spans[OUTSIDE_ALLOW] = complement(merge_spans(allowed), lo, hi)
    # Each entry's own spans: where entries share a code, a reason then names only those active
    # (the month-end close from the .ics file, or the last business days).
    return WindowIndex.build(lo, hi, spans, sources, by_source)


def with_freezes(index: WindowIndex, freezes: Sequence[Freeze]) -> WindowIndex:
    """``index`` closed also where ``freezes`` (those matching the target) close it, each under
    its code and named by its label (who started it and why)."""
    return _merged(index, tuple(freezes)) if freezes else index


@lru_cache(maxsize=64)
def _merged(index: WindowIndex, freezes: tuple[Freeze, ...]) -> WindowIndex:
    """Memoised: indexes hash by identity and freezes by value, and the same few freezes are merged
    into the same index on every gate call while they last."""
    spans: dict[str, list[Span]] = {}
    sources: dict[str, list[str]] = {}
    by_source: dict[tuple[str, str], list[Span]] = {}
    for freeze in freezes:
        span = freeze.span(index.hi)
        spans.setdefault(freeze.code, []).append(span)
        sources.setdefault(freeze.code, []).append(freeze.label())
        by_source.setdefault((freeze.code, freeze.label()), []).append(span)
    frozen = WindowIndex.build(index.lo, index.hi, spans, sources, by_source)
    return WindowIndex.union([index, frozen])


@dataclass(frozen=True, slots=True)
class Staleness:
    """Published calendars found stale at ``since`` (now), each a ``calendar_stale`` reason: the
    gate is closed from then on, until a fresh copy arrives (no end is known). Instants before
    ``since`` are answered from the copies alone: nobody knows how fresh they were then."""

    since: datetime
    reasons: tuple[Reason, ...]


def with_stale(index: WindowIndex, stale: Staleness | None) -> WindowIndex:
    """``index`` closed also from ``stale.since`` to its end, under the stale reasons' code and
    named by the feeds' reasons."""
    if stale is None or not stale.reasons:
        return index
    since = max(utc_epoch(stale.since), index.lo)
    if since >= index.hi:
        return index
    code = stale.reasons[0].code
    labels = [reason.message for reason in stale.reasons]
    closed = WindowIndex.build(index.lo, index.hi, {code: [(since, index.hi)]}, {code: labels})
    return WindowIndex.union([index, closed])


@dataclass(frozen=True, slots=True)
class Status:
    """``GET /v1/status``: the gate of one target at one instant."""

    target: str
    at: datetime
    closed: bool
    reasons: tuple[Reason, ...]
    next_open: datetime | None
    next_close: datetime | None
    next_close_reason: str | None


@dataclass(frozen=True, slots=True)
class Windows:
    """``GET /v1/windows``: the maximal closed intervals of one target in ``[start, end)``."""

    target: str
    start: datetime
    end: datetime
    closed: tuple[ClosedWindow, ...]


class Calendars:
    """Compiled indexes of one configuration's policies, kept for a few ranges.

    ``ics`` maps each ``.ics`` file (relative path) and each feed (its URL) to its parsed copy."""

    def __init__(self, policies: Sequence[Policy], ics: Mapping[str, IcsCalendar]) -> None:
        self._policies = {policy.name: policy for policy in policies}
        self._ics = ics
        self._lock = threading.Lock()
        self._ranges: OrderedDict[tuple[int, int], dict[tuple[str, ...], WindowIndex]] = OrderedDict()
        self._recent: dict[tuple[str, ...], WindowIndex] = {}

    @property
    def parsed(self) -> Mapping[str, IcsCalendar]:
        """The parsed ``.ics`` files (by relative path) and feed copies (by URL)."""
        return self._ics

    def index(self, policies: Sequence[Policy], start: int, end: int) -> WindowIndex:
        """An index for ``policies`` combined, covering ``[start, end]``."""
        names = tuple(sorted(policy.name for policy in policies))
        recent = self._recent.get(names)
        if recent is not None and recent.lo <= start and end <= recent.hi:
            return recent  # the common case: the index around now (a dict read is atomic)
        lo_hi, parts = self._indexes(names, start, end)
        if len(parts) == 1:
            self._recent[names] = parts[0]
            return parts[0]
        with self._lock:
            cached = self._ranges.get(lo_hi, {}).get(names)
        if cached is not None:
            return cached
        combined = WindowIndex.union(parts)
        with self._lock:
            if lo_hi in self._ranges:
                self._ranges[lo_hi][names] = combined
        self._recent[names] = combined
        return combined

    def _indexes(self, names: tuple[str, ...], start: int, end: int) -> tuple[tuple[int, int], list[WindowIndex]]:
        """The range covering ``[start, end]`` and each named policy's index over it."""
        with self._lock:
            lo_hi = self._range_covering(start, end)
            compiled = self._ranges[lo_hi]
            found = {name: compiled.get((name,)) for name in names}
        parts: list[WindowIndex] = []
        for name in names:
            index = found[name]
            if index is None:
                index = compile_policy(self._policies[name], self._ics, *lo_hi)
                with self._lock:
                    if lo_hi in self._ranges:
                        self._ranges[lo_hi][(name,)] = index
            parts.append(index)
        return lo_hi, parts

    def _range_covering(self, start: int, end: int) -> tuple[int, int]:
        for lo_hi in self._ranges:
            if lo_hi[0] <= start and end <= lo_hi[1]:
                self._ranges.move_to_end(lo_hi)
                return lo_hi
        lo = (start // DAY) * DAY - BEFORE
        hi = ((max(end, start + AFTER) // DAY) + 1) * DAY
        self._ranges[(lo, hi)] = {}
        while len(self._ranges) > KEPT_RANGES:
            self._ranges.popitem(last=False)
        return lo, hi

    def warm(self, now: datetime) -> None:
        """Compile every policy for the horizon around ``now`` (at load, and daily)."""
        at = utc_epoch(now)
        for policy in self._policies.values():
            self.index([policy], at, at + int(LOOKAHEAD.total_seconds()) + DAY)

    def facts_for(self, policies: Sequence[Policy], now: datetime) -> dict[str, WindowIndex]:
        """Per-policy indexes that ``decide`` reads, over one shared range covering now + 366 days."""
        at = utc_epoch(now)
        names = tuple(sorted(policy.name for policy in policies))
        _, parts = self._indexes(names, at, at + int(LOOKAHEAD.total_seconds()) + 1)
        return dict(zip(names, parts, strict=True))


def status(
    calendars: Calendars,
    policies: Sequence[Policy],
    target: str,
    at: datetime,
    *,
    ungoverned_open: bool = False,
    freezes: Sequence[Freeze] = (),
    stale: Staleness | None = None,
) -> Status:
    """The gate of ``target`` at ``at`` under every governing policy, whatever its mode, the
    ``freezes`` that match it and the ``stale`` published calendars its policies use."""
    governing = [policy for policy in policies if policy.governs(target)]
    if not governing:
        return _ungoverned_status(target, at, ungoverned_open)
    moment = utc_epoch(at)
    lookahead = LOOKAHEAD_SECONDS
    index = with_freezes(calendars.index(governing, moment, moment + lookahead + 1), matching(freezes, target))
    index = with_stale(index, stale)
    look = index.look(moment)
    state, next_close = look.state, look.next_close
    limit = moment + lookahead
    closes_soon = next_close is not None and next_close <= limit  # then close_codes is not empty
    return Status(
        target=target,
        at=at,
        closed=state.closed,
        reasons=tuple(
            reason
            for code in state.codes
            for reason in _reasons(index, code, state.until[code], moment, governing[0].timezone, stale)
        ),
        next_open=_instant(look.next_open, limit),
        next_close=_instant(next_close, limit),
        next_close_reason=look.close_codes[0] if closes_soon else None,
    )


def windows(
    calendars: Calendars,
    policies: Sequence[Policy],
    target: str,
    start: datetime,
    end: datetime,
    *,
    ungoverned_open: bool = False,
    freezes: Sequence[Freeze] = (),
    stale: Staleness | None = None,
) -> Windows:
    """The maximal closed intervals of ``target`` inside ``[start, end)`` (``freezes`` that match
    it and ``stale`` published calendars included)."""
    governing = [policy for policy in policies if policy.governs(target)]
    lo, hi = utc_epoch(start), utc_epoch(end)
    if not governing:
        closed = () if ungoverned_open or hi <= lo else (ClosedWindow(lo, hi, (NO_POLICY,)),)
        return Windows(target, start, end, closed)
    index = with_freezes(calendars.index(governing, lo, max(hi, lo + 1)), matching(freezes, target))
    index = with_stale(index, stale)
    return Windows(target, start, end, tuple(index.closed_windows(lo, hi)))


def _reasons(
    index: WindowIndex, code: str, until: int | None, at: int, zone_name: str, stale: Staleness | None
) -> tuple[Reason, ...]:
    """The reasons behind an active ``code``: the feeds' own for ``calendar_stale`` (as the gate
    gives them), else one naming the entries active at ``at``."""
    if stale is not None and stale.reasons and code == stale.reasons[0].code:
        return stale.reasons
    return (calendar_reason(index, code, until, index.sources_at(code, at), zone_name),)


def _ungoverned_status(target: str, at: datetime, ungoverned_open: bool) -> Status:
    if ungoverned_open:
        return Status(target, at, False, (), at, None, None)
    reason = Reason("policy", NO_POLICY, f"no policy governs target {target}", None)
    return Status(target, at, True, (reason,), None, at, NO_POLICY)


def _instant(epoch: int | None, limit: int) -> datetime | None:
    if epoch is None or epoch > limit:
        return None
    return from_epoch(epoch)


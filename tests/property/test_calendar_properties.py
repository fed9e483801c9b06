"""Compiled calendars against an independent brute force, and properties of windows() and decide().

The brute force matches cron fields itself (Vixie day-of-month OR day-of-week), resolves local wall
times by round-tripping UTC candidates (first occurrence when ambiguous, the offset before the gap
when skipped) and adds durations as nominal days then exact seconds: nothing of the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from gatekeeper import calendar
from gatekeeper.calendar import Calendars, compile_policy
from gatekeeper.domain.decision import Facts, decide
from gatekeeper.domain.durations import Duration
from gatekeeper.domain.policy import CalendarRules, CronEntry, Policy
from gatekeeper.domain.types import ReleaseRequest, TargetKey
from gatekeeper.domain.windows import OUTSIDE_ALLOW

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe")
# 2026 transitions (UTC) to cluster instants around: Berlin, New York, Sydney, Lord Howe (30-minute shift).
TRANSITIONS = (
    datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC),
    datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC),
    datetime(2026, 4, 4, 16, tzinfo=UTC), datetime(2026, 10, 3, 16, tzinfo=UTC),
    datetime(2026, 4, 4, 15, tzinfo=UTC), datetime(2026, 10, 3, 15, 30, tzinfo=UTC),
)
DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
TARGET = TargetKey("argocd:odoo-prod")


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int] | None  # None: '*'
    weekdays: frozenset[int] | None  # cron numbering, 0 = Sunday
    names: bool
    sunday_as_seven: bool
    duration: Duration

    def expression(self) -> str:
        def field(values: frozenset[int] | None) -> str:
            return "*" if values is None else ",".join(str(v) for v in sorted(values))

        weekdays = "*"
        if self.weekdays is not None:
            if self.names:
                weekdays = ",".join(DOW_NAMES[v] for v in sorted(self.weekdays))
            else:
                weekdays = ",".join(str(7 if v == 0 and self.sunday_as_seven else v) for v in sorted(self.weekdays))
        return f"{field(self.minutes)} {field(self.hours)} {field(self.days)} * {weekdays}"

    def matches_day(self, day: date) -> bool:
        weekday = (day.weekday() + 1) % 7
        by_day = self.days is not None and day.day in self.days
        by_weekday = self.weekdays is not None and weekday in self.weekdays
        if self.days is not None and self.weekdays is not None:
            return by_day or by_weekday
        if self.days is not None:
            return by_day
        if self.weekdays is not None:
            return by_weekday
        return True


def subset(values: list[int], most: int) -> st.SearchStrategy[frozenset[int]]:
    return st.frozensets(st.sampled_from(values), min_size=1, max_size=most)


durations = st.tuples(st.integers(0, 2), st.sampled_from([0, 900, 1800, 3600, 5400, 7200, 36000])).filter(
    lambda d: d != (0, 0)
).map(lambda d: Duration(*d))
crons = st.builds(
    Cron,
    minutes=subset([0, 15, 30, 45], 2),
    hours=subset([0, 1, 2, 3, 12, 23], 3),
    days=st.one_of(st.none(), subset([1, 4, 5, 25, 29, 31], 2)),
    weekdays=st.one_of(st.none(), subset(list(range(7)), 3)),
    names=st.booleans(),
    sunday_as_seven=st.booleans(),
    duration=durations,
)


def resolve(wall: datetime, zone: ZoneInfo) -> datetime:
    """RFC 5545 §3.3.5 by round trip: first occurrence if ambiguous, the offset before a gap."""
    offsets = {zone.utcoffset(wall + timedelta(hours=h)) for h in (-30, 0, 30)}
    offsets |= {zone.utcoffset(wall.replace(fold=1))}
    hits = [
        (wall - offset).replace(tzinfo=UTC)
        for offset in offsets
        if offset is not None and (wall - offset).replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None) == wall
    ]
    if hits:
        return min(hits)
    before = resolve(wall - timedelta(hours=1), zone)  # gaps here are at most an hour
    offset = before.astimezone(zone).utcoffset()
    assert offset is not None
    return (wall - offset).replace(tzinfo=UTC)


def brute_windows(cron: Cron, zone: ZoneInfo, first: date, last: date) -> list[tuple[datetime, datetime]]:
    """Every window of ``cron`` starting on a local day in ``[first, last]``."""
    found = []
    day = first
    while day <= last:
        if cron.matches_day(day):
            for hour in cron.hours:
                for minute in cron.minutes:
                    wall = datetime(day.year, day.month, day.day, hour, minute)
                    start = resolve(wall, zone)
                    end = resolve(wall + timedelta(days=cron.duration.days), zone)
                    found.append((start, end + timedelta(seconds=cron.duration.seconds)))
        day += timedelta(days=1)
    return found


def brute_active(cron: Cron, zone: ZoneInfo, t: datetime) -> bool:
    local_day = t.astimezone(zone).date()
    first = local_day - timedelta(days=cron.duration.days + 2)
    return any(start <= t < end for start, end in brute_windows(cron, zone, first, local_day))


def brute_codes(deny: list[Cron], allow: Cron | None, zone: ZoneInfo, t: datetime) -> tuple[str, ...]:
    codes = {f"deny_{n}" for n, cron in enumerate(deny) if brute_active(cron, zone, t)}
    if allow is not None and not brute_active(allow, zone, t):
        codes.add(OUTSIDE_ALLOW)
    return tuple(sorted(codes))


def make_policy(deny: list[Cron], allow: Cron | None, zone: str, name: str = "prod") -> Policy:
    def entry(cron: Cron, code: str) -> CronEntry:
        return CronEntry(cron.expression(), cron.duration, zone, code)

    rules = CalendarRules(
        deny=tuple(entry(cron, f"deny_{n}") for n, cron in enumerate(deny)),
        allow=(entry(allow, "allowed"),) if allow is not None else (),
    )
    return Policy(name=name, targets=("argocd:odoo-*",), timezone=zone, calendar=rules)



def near(base: datetime) -> st.SearchStrategy[datetime]:
    """Instants within three days of ``base``, mostly on the minute, sometimes a second before one."""
    return st.integers(-3 * 86_400, 3 * 86_400).map(
        lambda s: base + timedelta(seconds=s - s % 60 + (s % 7 == 0) * 59)
    )


instants = st.sampled_from(TRANSITIONS).flatmap(near)
# Several instants around one transition (so each example compiles a short range).
instant_lists = st.sampled_from(TRANSITIONS).flatmap(lambda base: st.lists(near(base), min_size=1, max_size=8))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(crons, min_size=1, max_size=2),
    st.one_of(st.none(), crons),
    st.sampled_from(ZONES),
    instant_lists,
)
def test_the_compiled_index_agrees_with_a_brute_force_evaluation_of_the_cron_rules(
    deny: list[Cron], allow: Cron | None, zone_name: str, moments: list[datetime]
) -> None:
    zone = ZoneInfo(zone_name)
    policy = make_policy(deny, allow, zone_name)
    lo = int(min(moments).timestamp()) - 86_400
    hi = int(max(moments).timestamp()) + 86_400
    index = compile_policy(policy, {}, lo, hi)
    probes = set(moments)
    for cron in [*deny, *([allow] if allow else [])]:
        # The instants where the brute force says a window starts or ends, and a second before each.
        day = moments[0].astimezone(zone).date()
        for start, end in brute_windows(cron, zone, day - timedelta(days=1), day + timedelta(days=1)):
            probes |= {start, start - timedelta(seconds=1), end, end - timedelta(seconds=1)}
    for moment in sorted(probes):
        if lo <= moment.timestamp() < hi:
            assert index.state(int(moment.timestamp())).codes == brute_codes(deny, allow, zone, moment), (
                [cron.expression() for cron in deny], allow and allow.expression(), moment
            )


def facts_around(policy: Policy, moments: list[datetime]) -> Facts:
    """Facts with the policy compiled over a short range around ``moments`` (cheap; decide only reads it)."""
    lo = int(min(moments).timestamp()) - 86_400
    hi = int(max(moments).timestamp()) + 8 * 86_400
    return Facts("h", {policy.name: compile_policy(policy, {}, lo, hi)})


@settings(max_examples=100, deadline=None)
@given(st.lists(crons, max_size=2), st.one_of(st.none(), crons), crons, st.sampled_from(ZONES), instant_lists)
def test_adding_a_deny_entry_never_turns_a_defer_into_an_approve(
    deny: list[Cron], allow: Cron | None, extra: Cron, zone: str, moments: list[datetime]
) -> None:
    before, after = make_policy(deny, allow, zone), make_policy([*deny, extra], allow, zone)
    facts_before, facts_after = facts_around(before, moments), facts_around(after, moments)
    request = ReleaseRequest(TARGET, "abc")
    for moment in moments:
        first = decide(request, facts_before, [before], now=moment)
        second = decide(request, facts_after, [after], now=moment)
        if first.verdict.value == "defer":
            assert second.verdict.value == "defer"
            assert {r.code for r in first.reasons} <= {r.code for r in second.reasons}
            assert first.not_before is None or second.not_before is None or second.not_before >= first.not_before


@settings(max_examples=100, deadline=None)
@given(st.lists(crons, max_size=2), st.one_of(st.none(), crons), st.sampled_from(ZONES), instants)
def test_decide_is_deterministic(deny: list[Cron], allow: Cron | None, zone: str, moment: datetime) -> None:
    policy = make_policy(deny, allow, zone)
    request = ReleaseRequest(TARGET, "abc")
    first = decide(request, facts_around(policy, [moment]), [policy], now=moment)
    again = decide(request, facts_around(policy, [moment]), [policy], now=moment)
    assert first == again


@settings(max_examples=40, deadline=None)
@given(
    st.lists(crons, max_size=2),
    st.one_of(st.none(), crons),
    st.sampled_from(ZONES),
    instants,
    st.integers(0, 5 * 86_400),
)
def test_windows_are_sorted_disjoint_non_empty_clipped_and_maximal(
    deny: list[Cron], allow: Cron | None, zone: str, start: datetime, length: int
) -> None:
    policy = make_policy(deny, allow, zone)
    calendars = Calendars([policy], {})
    end = start + timedelta(seconds=length)
    found = calendar.windows(calendars, [policy], TARGET, start, end).closed
    lo, hi = int(start.timestamp()), int(end.timestamp())
    allowed_codes = {f"deny_{n}" for n in range(len(deny))} | {OUTSIDE_ALLOW}
    for window in found:
        assert lo <= window.start < window.end <= hi
        assert window.codes and set(window.codes) <= allowed_codes and list(window.codes) == sorted(window.codes)
    for first, second in pairwise(found):
        assert first.end < second.start  # sorted, disjoint and never touching
    index = calendars.index([policy], lo, hi + 1)
    for window in found:
        assert index.state(window.start).closed
        assert index.next_open(window.start) == (window.end if window.end < hi else index.next_open(window.start))
        if window.start > lo:
            assert not index.state(window.start - 1).closed

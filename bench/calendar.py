"""Calendar index benchmark: compile time, and `status` on the index versus naive evaluation.

Run from the repository root:  .venv/bin/python bench/calendar.py [--policies DIR --calendars DIR]

On the shipped production policy (policies/production.yaml with calendars/*.ics), in one run:
1. compile: one policy's index over [now - 31 days, now + 400 days], median of 7 cold compiles;
2. index: `gatekeeper.calendar.status(...)` at random instants (closed?, reasons, next open,
   next close), and the raw WindowIndex path (state + next_open + next_close);
3. naive: the same question answered without an index: every entry expanded afresh around the
   instant with recurring-ical-events, croniter and holidays, then scanned (closed?).
The naive and index answers are compared at every naive sample. Targets: index status under
20 µs median, at least 100x faster than naive, compile under 300 ms.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the standard library's `calendar`: drop bench/ from the import path.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import os
import random
import statistics
import time
from datetime import UTC, datetime

from gatekeeper import calendar
from gatekeeper.calendar import compile_policy, entry_spans
from gatekeeper.calendar_sources import public_holidays
from gatekeeper.configuration.loader import load_configuration
from gatekeeper.domain.policy import Policy
from gatekeeper.domain.types import from_epoch, utc_epoch

TARGET = "argocd:odoo-prod"
DAY = 86_400


def cold_compile(policy: Policy, ics: dict, lo: int, hi: int) -> float:
    public_holidays.holiday_dates.cache_clear()
    started = time.perf_counter()
    compile_policy(policy, ics, lo, hi)
    return time.perf_counter() - started


def naive_closed(policy: Policy, ics: dict, at: int) -> bool:
    """Expand every entry around ``at`` from scratch and scan: what one does without an index."""
    public_holidays.holiday_dates.cache_clear()
    lo, hi = at - 60 * DAY, at + DAY  # 60 days back catches the longest event (peak season)
    for entry in policy.calendar.deny:
        if any(start <= at < end for start, end in entry_spans(entry, policy, ics, lo, hi)):
            return True
    if policy.calendar.allow:
        return not any(
            start <= at < end
            for entry in policy.calendar.allow
            for start, end in entry_spans(entry, policy, ics, lo, hi, allow=True)
        )
    return False


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description="calendar index benchmark")
    parser.add_argument("--policies", default="policies")
    parser.add_argument("--calendars", default="calendars")
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--naive", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(20261124)
    now = datetime.now(UTC).replace(microsecond=0)
    configuration = load_configuration(Path(args.policies), Path(args.calendars), now=now)
    policy = next(p for p in configuration.policies if p.governs(TARGET))
    ics = configuration.calendars._ics  # the parsed .ics files the loader holds
    at = utc_epoch(now)
    lo, hi = at - 31 * DAY, at + 400 * DAY

    cold_compile(policy, ics, lo, hi)  # warm-up (imports, first-use caches)
    compiles = [cold_compile(policy, ics, lo, hi) for _ in range(7)]
    index = compile_policy(policy, ics, lo, hi)

    instants = [from_epoch(at + rng.randrange(0, 30 * DAY)) for _ in range(args.queries)]
    for moment in instants[:200]:  # warm-up
        calendar.status(configuration.calendars, [policy], TARGET, moment)
    status_times = []
    for moment in instants:
        started = time.perf_counter_ns()
        calendar.status(configuration.calendars, [policy], TARGET, moment)
        status_times.append((time.perf_counter_ns() - started) / 1000)
    raw_times = []
    for moment in instants:
        second = utc_epoch(moment)
        started = time.perf_counter_ns()
        index.state(second)
        index.next_open(second)
        index.next_close(second)
        raw_times.append((time.perf_counter_ns() - started) / 1000)

    naive_times, agree = [], 0
    for moment in instants[: args.naive]:
        second = utc_epoch(moment)
        started = time.perf_counter_ns()
        closed = naive_closed(policy, ics, second)
        naive_times.append((time.perf_counter_ns() - started) / 1000)
        agree += closed == index.state(second).closed

    compile_ms = statistics.median(compiles) * 1000
    status_median, naive_median = statistics.median(status_times), statistics.median(naive_times)
    ratio = naive_median / status_median
    print(f"bench/calendar.py on {args.policies}/ (policy {policy.name}, target {TARGET})")
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; horizon [now-31d, now+400d]; "
        f"{len(index.bounds)} segments"
    )
    print(f"{'measure':<40} {'median':>12} {'p99':>12}")
    print(f"{'compile one policy (cold, 7 runs)':<40} {compile_ms:>9.1f} ms {max(compiles) * 1000:>9.1f} ms")
    print(f"{'status() on the index':<40} {status_median:>9.1f} µs {percentile(status_times, 99):>9.1f} µs")
    print(
        f"{'raw index state+next_open+next_close':<40} {statistics.median(raw_times):>9.1f} µs "
        f"{percentile(raw_times, 99):>9.1f} µs"
    )
    print(f"{'naive expand-and-scan per query':<40} {naive_median:>9.1f} µs {percentile(naive_times, 99):>9.1f} µs")
    print(f"naive/index ratio: {ratio:.0f}x; naive and index agree on {agree}/{len(naive_times)} instants")
    targets = [
        ("index status median < 20 µs", status_median < 20),
        ("index >= 100x faster than naive", ratio >= 100),
        ("compile < 300 ms", compile_ms < 300),
        ("naive and index agree everywhere", agree == len(naive_times)),
    ]
    for name, ok in targets:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")


if __name__ == "__main__":
    main()

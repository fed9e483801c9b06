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

Then a published calendar (issue 19): a feed of 2,000 events with 500 EXDATEs in Exchange's shape
(tests/ics_exports.py), served by a loopback HTTP server in this process, fetched with the
HttpxFeedReader, parsed and compiled into a one-entry deny policy (median of 7 cold runs, each
phase timed), a conditional refresh answered 304, and `status()` on its index (target: median
< 20 µs, the index target), with the naive path on the same feed as the baseline of this run.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the standard library's `calendar`: drop bench/ from the import path.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root: tests.ics_exports

import argparse
import hashlib
import os
import random
import statistics
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

from gatekeeper import calendar
from gatekeeper.calendar import Calendars, compile_policy, entry_spans
from gatekeeper.calendar_sources import public_holidays
from gatekeeper.calendar_sources.ics import IcsCalendar
from gatekeeper.configuration.loader import load_configuration
from gatekeeper.domain.policy import CalendarRules, FeedEntry, Policy
from gatekeeper.domain.types import from_epoch, utc_epoch
from gatekeeper.feeds import FeedBook
from gatekeeper.readers.calendar_feeds import HttpxFeedReader
from tests.ics_exports import big_outlook_feed

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
    parser.add_argument("--feed-events", type=int, default=2000)
    parser.add_argument("--feed-exdates", type=int, default=500)
    parser.add_argument("--feed-naive", type=int, default=100)
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
    feed_bench(args, rng, now, status_median)


def serve_feed(body: bytes) -> tuple[ThreadingHTTPServer, str]:
    """A loopback server for one feed, with an ETag and 304 on a match (as Exchange answers)."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            match = self.headers.get("If-None-Match") == etag
            self.send_response(304 if match else 200)
            self.send_header("ETag", etag)
            self.send_header("Content-Type", "text/calendar")
            self.send_header("Content-Length", "0" if match else str(len(body)))
            self.end_headers()
            if not match:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/owa/calendar/bench/key/calendar.ics"


def feed_bench(args: argparse.Namespace, rng: random.Random, now: datetime, file_status_median: float) -> None:
    body = big_outlook_feed(args.feed_events, args.feed_exdates, first=datetime(now.year, now.month, 1, 8, 0))
    server, url = serve_feed(body)
    reader = HttpxFeedReader(max_bytes=64 * 1024 * 1024, retries=0)
    policy = Policy("feed", ("argocd:wms*",), timezone="Europe/Berlin",
                    calendar=CalendarRules(deny=(FeedEntry(url, "warehouse_busy"),)))
    at = utc_epoch(now)
    lo, hi = at - 31 * DAY, at + 400 * DAY
    phases: dict[str, list[float]] = {"fetch": [], "parse": [], "compile": [], "total": []}
    for run in range(8):  # the first is a warm-up
        started = time.perf_counter()
        fetched = reader.fetch(url)
        fetched_at = time.perf_counter()
        parsed = IcsCalendar.parse(fetched.body or b"", url)
        parsed_at = time.perf_counter()
        index = compile_policy(policy, {url: parsed}, lo, hi)
        done = time.perf_counter()
        if run:
            for name, seconds in (("fetch", fetched_at - started), ("parse", parsed_at - fetched_at),
                                  ("compile", done - parsed_at), ("total", done - started)):
                phases[name].append(seconds * 1000)
    book = FeedBook(lambda: now, fetcher=reader)
    book.refresh([url])
    refreshes = []
    for _ in range(20):
        started = time.perf_counter()
        changed = book.refresh([url])  # 304: no body, no parse
        refreshes.append((time.perf_counter() - started) * 1000)
        assert not changed
    calendars = Calendars([policy], {url: parsed})
    instants = [from_epoch(at + rng.randrange(0, 30 * DAY)) for _ in range(args.queries)]
    for moment in instants[:200]:
        calendar.status(calendars, [policy], "argocd:wms-prod", moment)
    times = []
    for moment in instants:
        started_ns = time.perf_counter_ns()
        calendar.status(calendars, [policy], "argocd:wms-prod", moment)
        times.append((time.perf_counter_ns() - started_ns) / 1000)
    naive, agree = [], 0
    for moment in instants[: args.feed_naive]:
        second = utc_epoch(moment)
        started_ns = time.perf_counter_ns()
        spans = parsed.spans(ZoneInfo(policy.timezone), second - DAY, second + DAY, busy_only=True)
        closed = any(start <= second < end for start, end in spans)
        naive.append((time.perf_counter_ns() - started_ns) / 1000)
        agree += closed == index.state(second).closed
    server.shutdown()
    reader.close()
    status_median, naive_median = statistics.median(times), statistics.median(naive)
    print()
    print(f"published calendar: {args.feed_events} events, {args.feed_exdates} EXDATEs, {len(body) / 1024:.0f} KiB "
          f"from a loopback server; {len(index.bounds)} segments over the horizon")
    print(f"{'measure':<40} {'median':>12} {'max':>12}")
    for name in ("fetch", "parse", "compile", "total"):
        values = phases[name]
        print(f"{name + ' (cold, 7 runs)':<40} {statistics.median(values):>9.1f} ms {max(values):>9.1f} ms")
    print(f"{'refresh answered 304 (20 runs)':<40} {statistics.median(refreshes):>9.2f} ms {max(refreshes):>9.2f} ms")
    print(f"{'status() on the feed index':<40} {status_median:>9.1f} µs {percentile(times, 99):>9.1f} µs")
    print(f"{'naive expand-and-scan per query':<40} {naive_median:>9.0f} µs {max(naive):>9.0f} µs")
    print(f"feed status / file-policy status (same run): {status_median / file_status_median:.2f}x; "
          f"naive/index: {naive_median / status_median:.0f}x; agree on {agree}/{len(naive)} instants")
    for name, ok in [("feed index status median < 20 µs", status_median < 20),
                     ("naive and index agree everywhere", agree == len(naive))]:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")


if __name__ == "__main__":
    main()

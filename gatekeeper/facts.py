"""Gathering facts before a decision: outside any transaction, each source with its own timeout.

The calendar comes from the active configuration (compiled in process), with the ad-hoc freezes
that match the target merged in: those are read from the database through ``FreezeCache``, at
most ``max_age`` old, so every replica sees a new freeze within a second with no restart. Every
``FactReader`` (Git, cluster, registry) runs in a worker thread and is given ``FACT_TIMEOUT``. A
reader that fails or runs out of time becomes a fail-closed reason naming it; a thread that hangs
is left behind, never waited for, and holds no lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime, timedelta

from gatekeeper.calendar import CompileError, with_freezes
from gatekeeper.domain.decision import Facts
from gatekeeper.domain.freezes import Freeze, matching
from gatekeeper.domain.policy import Policy
from gatekeeper.domain.types import Reason, ReleaseRequest
from gatekeeper.ports import Clock, FactReader, ReleaseStore
from gatekeeper.reload import ConfigHolder

logger = logging.getLogger(__name__)

ANNOUNCE_PARALLEL = 4  # a push's announced releases whose facts are gathered at once


@dataclass(frozen=True, slots=True)
class Gathered:
    """Facts for one request (approvals are read later, inside the transaction) and the policies
    that govern its target."""

    facts: Facts
    policies: tuple[Policy, ...]


# Freezes whose end (or lifting) is older than this are not kept (the window index reaches 31 days
# back, DESIGN §3); older ranges are read from the database when asked.
FREEZE_HISTORY = timedelta(days=31)


class FreezeCache:
    """The freezes in force, or in force during the last ``FREEZE_HISTORY``, read from the store
    at most every ``max_age`` seconds (one reader at a time; the others wait for its answer)."""

    def __init__(self, store: ReleaseStore, clock: Clock, max_age: float = 0.5) -> None:
        self.store = store
        self.clock = clock
        self.max_age = max_age
        self._lock = threading.Lock()
        self._read_at = -float("inf")
        self._freezes: tuple[Freeze, ...] = ()

    def current(self) -> tuple[Freeze, ...]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.max_age:
                started = time.monotonic()
                found = self.store.freezes(ending_after=self.clock() - FREEZE_HISTORY)
                self._freezes, self._read_at = tuple(found), started
            return self._freezes

    def between(self, start: datetime) -> tuple[Freeze, ...]:
        """The freezes that may close the gate at or after ``start``."""
        if start >= self.clock() - FREEZE_HISTORY:
            return self.current()
        return tuple(self.store.freezes(ending_after=start))

    def invalidate(self) -> None:
        """Read again on the next question (after this replica started or lifted one)."""
        with self._lock:
            self._read_at = -float("inf")


class FactGatherer:
    def __init__(
        self,
        config: ConfigHolder,
        readers: Sequence[FactReader] = (),
        timeout: float = 10.0,
        freezes: FreezeCache | None = None,
    ) -> None:
        self.config = config  # its ``feeds`` (if any) say which published calendars are stale
        self.readers = tuple(readers)
        self.timeout = timeout
        self.freezes = freezes
        # Room for a few gate calls beside one push's announcements, every reader of each at once
        # (a task waiting for a thread would spend its FACT_TIMEOUT waiting).
        workers = (4 + ANNOUNCE_PARALLEL) * max(1, len(self.readers))
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="facts")

    def gather(self, request: ReleaseRequest, now: datetime) -> Gathered:
        state = self.config.state
        configuration = state.configuration
        if configuration is None:
            problems = state.errors or ("no configuration loaded",)
            return Gathered(Facts(policy_hash="", config_errors=problems), ())
        governing = tuple(configuration.governing(request.target))
        try:
            indexes = configuration.calendars.facts_for(list(governing), now)
        except CompileError as exc:
            logger.error("calendar facts failed for %s: %s", request.target, exc)
            reason = Reason("calendar", "calendar_unavailable", f"calendar could not be compiled: {exc}", None)
            return Gathered(Facts(policy_hash=configuration.policy_hash, gather_errors=(reason,)), ())
        try:
            frozen = matching(self.freezes.current(), request.target) if self.freezes and governing else ()
        except Exception as exc:  # the store failed: fail closed, as any fact source does
            logger.error("freezes could not be read for %s: %s", request.target, exc)
            reason = Reason("freezes", "facts_unavailable", f"freezes could not be read: {str(exc)[:200]}", None)
            return Gathered(Facts(policy_hash=configuration.policy_hash, gather_errors=(reason,)), ())
        indexes = {name: with_freezes(index, frozen) for name, index in indexes.items()}
        readings, errors = self._read(request, governing, now)
        feeds = self.config.feeds
        stale = feeds.stale_reasons(governing, now) if feeds is not None else {}
        facts = Facts(
            policy_hash=configuration.policy_hash,
            calendars=indexes,
            gather_errors=errors,
            readings=readings,
            stale_calendars=stale,
        )
        return Gathered(facts, governing)

    def gather_many(self, requests: Sequence[ReleaseRequest], now: datetime) -> list[Gathered]:
        """The facts of a push's announced releases, ``ANNOUNCE_PARALLEL`` at a time: a push to
        hundreds of targets with drift rules waits for a fraction of their checks, not their sum."""
        if len(requests) < 2 or not self.readers:
            return [self.gather(request, now) for request in requests]
        with ThreadPoolExecutor(ANNOUNCE_PARALLEL, thread_name_prefix="announce") as pool:
            return list(pool.map(lambda request: self.gather(request, now), requests))

    def _read(
        self, request: ReleaseRequest, policies: tuple[Policy, ...], now: datetime
    ) -> tuple[dict[str, object], tuple[Reason, ...]]:
        readers = [reader for reader in self.readers if _needed(reader, policies)]
        if not readers or not policies:
            return {}, ()
        futures: list[tuple[FactReader, Future[object]]] = [
            (reader, self._pool.submit(reader.read, request, policies, now)) for reader in readers
        ]
        readings: dict[str, object] = {}
        errors: list[Reason] = []
        deadline = time.monotonic() + self.timeout  # every source gets the timeout from the start
        for reader, future in futures:
            try:
                readings[reader.name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                future.cancel()
                message = f"{reader.name} facts did not arrive within {self.timeout:g}s"
                logger.error("%s for %s@%s", message, request.target, request.revision)
                errors.append(Reason(reader.name, "facts_unavailable", message, None))
            except Exception as exc:  # a reader's failure is a fail-closed reason, never a 500
                message = f"{reader.name} facts could not be read: {str(exc)[:200]}"
                logger.error("%s for %s@%s", message, request.target, request.revision)
                errors.append(Reason(reader.name, "facts_unavailable", message, None))
        return readings, tuple(errors)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _needed(reader: FactReader, policies: Sequence[Policy]) -> bool:
    """A reader with a ``needed(policies)`` method runs only when it says so (the drift reader,
    for policies whose drift rule is on): a gate call that needs no reader costs no thread hop."""
    needed = getattr(reader, "needed", None)
    return needed is None or bool(needed(policies))

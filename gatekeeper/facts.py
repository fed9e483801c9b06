"""Gathering facts before a decision: outside any transaction, each source with its own timeout.

The calendar comes from the active configuration (compiled in process); every ``FactReader``
(Git, cluster, registry) runs in a worker thread and is given ``FACT_TIMEOUT``. A reader that
fails or runs out of time becomes a fail-closed reason naming it; a thread that hangs is left
behind, never waited for, and holds no lock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime

from gatekeeper.calendar import CompileError
from gatekeeper.domain.decision import Facts
from gatekeeper.domain.policy import Policy
from gatekeeper.domain.types import Reason, ReleaseRequest
from gatekeeper.ports import FactReader
from gatekeeper.reload import ConfigHolder

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Gathered:
    """Facts for one request (approvals are read later, inside the transaction) and the policies
    that govern its target."""

    facts: Facts
    policies: tuple[Policy, ...]


class FactGatherer:
    def __init__(self, config: ConfigHolder, readers: Sequence[FactReader] = (), timeout: float = 10.0) -> None:
        self.config = config  # its ``feeds`` (if any) say which published calendars are stale
        self.readers = tuple(readers)
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max(4, 4 * len(self.readers)), thread_name_prefix="facts")

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

    def _read(
        self, request: ReleaseRequest, policies: tuple[Policy, ...], now: datetime
    ) -> tuple[dict[str, object], tuple[Reason, ...]]:
        if not self.readers or not policies:
            return {}, ()
        futures: list[tuple[FactReader, Future[object]]] = [
            (reader, self._pool.submit(reader.read, request, policies, now)) for reader in self.readers
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

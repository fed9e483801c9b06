"""The orchestrator: receive -> dedupe -> gather facts -> decide -> store -> act.

Routes and CLI commands call this and only render what it returns. It is the one place that
asks the clock for ``now``; ``decide`` itself stays pure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio.to_thread

from gatekeeper import calendar
from gatekeeper.calendar import CompileError, Status, Windows
from gatekeeper.domain.approvals import ApprovalFacts
from gatekeeper.domain.decision import DecideOptions, Facts, decide
from gatekeeper.domain.policy import Policy
from gatekeeper.domain.types import Decision, Reason, ReleaseRequest, Verdict
from gatekeeper.metrics import Metrics
from gatekeeper.reload import ConfigHolder
from gatekeeper.store import ConnectionLostError
from gatekeeper.store.pg_async import AsyncGateStore
from gatekeeper.store.records import GateRecord, ReleaseDetail, ReleaseRecord
from gatekeeper.store.sql import SqlReleaseStore

logger = logging.getLogger(__name__)


class Clock(Protocol):
    def __call__(self) -> datetime: ...


def system_clock() -> datetime:
    return datetime.now(UTC)


class ConfigUnavailableError(Exception):
    """No configuration ever loaded: calendar questions cannot be answered (fail closed)."""


@dataclass
class GateService:
    store: SqlReleaseStore
    config: ConfigHolder
    clock: Callable[[], datetime]
    options: DecideOptions
    metrics: Metrics | None = None
    fast: AsyncGateStore | None = None  # PostgreSQL: gate calls on the event loop

    def gate(self, request: ReleaseRequest) -> GateRecord:
        """Decide a gate call (or return the stored decision of a release no longer open)."""
        now = self.clock()

        def decide_now(_release: ReleaseRecord | None, facts: Callable[[bool], ApprovalFacts]) -> Decision:
            return self.decide(request, now, self.approval_facts(request.target, facts))

        record = self.store.gate(
            request.target, request.revision, request.trigger, dict(request.context), decide_now, now
        )
        self._decided(request, record)
        return record

    async def gate_async(self, request: ReleaseRequest) -> GateRecord:
        """``gate`` from the event loop: awaited on PostgreSQL, in a worker thread on SQLite."""
        if self.fast is None:
            return await anyio.to_thread.run_sync(self.gate, request)
        try:
            record = await self._gate_fast(self.fast, request)
        except ConnectionLostError:  # the database restarted: once more, on a fresh connection
            record = await self._gate_fast(self.fast, request)
        self._decided(request, record)
        return record

    async def _gate_fast(self, fast: AsyncGateStore, request: ReleaseRequest) -> GateRecord:
        now = self.clock()
        return await fast.gate(
            request.target,
            request.revision,
            request.trigger,
            dict(request.context),
            lambda _release, approvals: self.decide(request, now, approvals),
            now,
            people=self.needs_people(request.target),
        )

    def _decided(self, request: ReleaseRequest, record: GateRecord) -> None:
        if record.decided_now:
            self.count(record)
            logger.info(
                "gate %s@%s: %s",
                request.target,
                request.revision,
                record.decision.verdict,
                extra={"target": request.target, "release_id": record.release.id},
            )

    def approval_facts(self, target: str, load: Callable[[bool], ApprovalFacts]) -> ApprovalFacts:
        """Load approvals (and, only where four eyes needs them, the revision's author and merger)."""
        return load(self.needs_people(target))

    def needs_people(self, target: str) -> bool:
        """Whether a policy governing ``target`` asks four eyes of its approvals."""
        configuration = self.config.state.configuration
        governing = configuration.governing(target) if configuration else []
        return any(policy.approvals.required and policy.approvals.four_eyes for policy in governing)

    def decide(self, request: ReleaseRequest, now: datetime, approvals: ApprovalFacts | None = None) -> Decision:
        """The decision for ``request`` at ``now`` on the active configuration (no storing)."""
        state = self.config.state
        configuration = state.configuration
        if configuration is None:
            facts = Facts(policy_hash="", config_errors=state.errors or ("no configuration loaded",))
            return decide(request, facts, (), now=now, options=self.options)
        governing = configuration.governing(request.target)
        try:
            indexes = configuration.calendars.facts_for(governing, now)
            facts = Facts(
                policy_hash=configuration.policy_hash, calendars=indexes, approvals=approvals or ApprovalFacts()
            )
        except CompileError as exc:
            logger.error("calendar facts failed for %s: %s", request.target, exc)
            reason = Reason("calendar", "calendar_unavailable", f"calendar could not be compiled: {exc}", None)
            facts = Facts(policy_hash=configuration.policy_hash, gather_errors=(reason,))
            indexes = {}
        if facts.gather_errors:
            governing = [p for p in governing if p.name in indexes]
        return decide(request, facts, governing, now=now, options=self.options)

    def count(self, record: GateRecord) -> None:
        if self.metrics is None:
            return
        self.metrics.decisions.labels(record.decision.verdict).inc()
        for reason in record.decision.reasons:
            self.metrics.decision_reasons.labels(reason["check"], reason["code"]).inc()

    def _policies(self) -> tuple[Policy, ...]:
        configuration = self.config.state.configuration
        if configuration is None:
            raise ConfigUnavailableError("; ".join(self.config.state.errors) or "no configuration loaded")
        return configuration.policies

    def status(self, target: str, at: datetime | None) -> Status:
        configuration = self.config.state.configuration
        policies = self._policies()
        assert configuration is not None  # noqa: S101 - _policies raised otherwise
        return calendar.status(
            configuration.calendars,
            policies,
            target,
            at or self._now(),
            ungoverned_open=self.options.ungoverned is Verdict.APPROVE,
        )

    def windows(self, target: str, start: datetime, end: datetime) -> Windows:
        configuration = self.config.state.configuration
        policies = self._policies()
        assert configuration is not None  # noqa: S101 - _policies raised otherwise
        return calendar.windows(
            configuration.calendars,
            policies,
            target,
            start,
            end,
            ungoverned_open=self.options.ungoverned is Verdict.APPROVE,
        )

    def _now(self) -> datetime:
        return self.clock().replace(microsecond=0)

    def release(self, release_id: int) -> ReleaseDetail | None:
        return self.store.release(release_id)

    def releases(
        self, *, status: str | None, target: str | None, before_id: int | None, limit: int
    ) -> tuple[list[ReleaseDetail], int | None]:
        return self.store.releases(status=status, target=target, before_id=before_id, limit=limit)

    def prune(self, retention: timedelta) -> int:
        return self.store.prune_deliveries(self.clock() - retention)

"""The orchestrator: one decision path for every caller (DESIGN §1).

(1) Gather facts outside any transaction (``FactGatherer``: calendar, then each reader with its
timeout); (2) one short transaction: lock the release, or create it under the per-target lock,
read its approvals and people, ``decide()``, and record the decision, its audit record and the
actions it causes (outbox rows); (3) after commit, only wake the scheduler. The hook's gate call,
webhooks, approvals, rejections and the scheduler all come through ``decide_in``. This is the one
place that asks the clock for ``now``; ``decide`` itself stays pure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gatekeeper import calendar, effects
from gatekeeper.calendar import Status, Windows
from gatekeeper.domain.approvals import ApprovalFacts
from gatekeeper.domain.decision import DecideOptions, decide
from gatekeeper.domain.policy import Policy
from gatekeeper.domain.records import (
    DecidedRelease,
    DecisionRecord,
    GateRecord,
    NewAction,
    ReleaseDetail,
    ReleaseRecord,
)
from gatekeeper.domain.releases import REDECIDABLE, ReleaseStatus, after_decision
from gatekeeper.domain.types import Decision, ReleaseRequest, TargetKey, Verdict
from gatekeeper.facts import FactGatherer, Gathered
from gatekeeper.metrics import Metrics
from gatekeeper.ports import Clock, People, ReleaseStore, StoreTransaction
from gatekeeper.reload import ConfigHolder
from gatekeeper.store import ConnectionLostError

logger = logging.getLogger(__name__)


class ConfigUnavailableError(Exception):
    """No configuration ever loaded: calendar questions cannot be answered (fail closed)."""


def system_clock() -> datetime:
    return datetime.now(UTC)


def _nothing() -> None:
    return None


@dataclass
class GateService:
    store: ReleaseStore
    config: ConfigHolder
    clock: Clock
    options: DecideOptions
    metrics: Metrics | None = None
    facts: FactGatherer | None = None
    public_url: str = "http://127.0.0.1:8080"
    status_sources: frozenset[str] = frozenset()  # sources whose commit statuses we can post
    wake: Callable[[], None] = field(default=_nothing)  # the scheduler's doorbell, rung after commit

    def __post_init__(self) -> None:
        if self.facts is None:
            self.facts = FactGatherer(self.config)

    # --- the decision path ----------------------------------------------------------------------

    def gather(self, request: ReleaseRequest, now: datetime) -> Gathered:
        """Step 1: every fact but approvals, outside any transaction."""
        assert self.facts is not None  # noqa: S101 - set in __post_init__
        return self.facts.gather(request, now)

    def decide_in(
        self,
        tx: StoreTransaction,
        request: ReleaseRequest,
        gathered: Gathered,
        now: datetime,
        *,
        context: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> GateRecord:
        """Step 2, inside the caller's transaction: lock or create the release, decide it again if
        it is still open (else answer its latest decision), record decision, audit and actions."""
        release = tx.find_release(request.target, request.revision, lock=True)
        if release is None:
            tx.lock_target(request.target)  # new releases of one target: one at a time
            release = tx.find_release(request.target, request.revision, lock=True)
        if release is None:
            release = tx.create_release(request.target, request.revision, request.trigger, context or {}, now)
            tx.supersede_open(request.target, release.id, now)
        elif release.status not in REDECIDABLE:
            latest = tx.latest_decision(release.id)
            if latest is not None:
                return GateRecord(release, latest, decided_now=False)
        # Who touched the revision matters only where four eyes applies (two statements saved per
        # hook poll elsewhere); approvals are always read: a break-glass can stand on any release.
        four_eyes = any(p.approvals.required and p.approvals.four_eyes for p in gathered.policies)
        people = tx.people_of(request.revision) if four_eyes else People()
        approvals = ApprovalFacts(tx.approvals_of(release.id), people.author, people.merger, people.touched)
        facts = replace(gathered.facts, approvals=approvals)
        decision = decide(request, facts, gathered.policies, now=now, options=self.options)
        return self.record(tx, release, decision, request.trigger, now, actor=actor)

    def record(
        self,
        tx: StoreTransaction,
        release: ReleaseRecord,
        decision: Decision,
        trigger: str,
        now: datetime,
        *,
        actor: str | None = None,
        extra: Iterable[NewAction] = (),
    ) -> GateRecord:
        """Store ``decision`` with its audit record and the actions it causes; an open release
        moves as the state machine says."""
        status = after_decision(release.status, decision.verdict) if release.status in REDECIDABLE else release.status
        stored = tx.add_decision(release, decision, trigger, status, now)
        if status is not release.status:
            release = replace(release, status=status, updated_at=now)
        data, broke_glass = _audit_of(release, stored, trigger)
        tx.append_audit("decision", actor or trigger, f"release/{release.id}", data, now, break_glass=broke_glass)
        release = replace(release, not_before=decision.not_before)
        commit_status = effects.commit_status(release, stored, self.public_url, self.status_sources)
        enqueued = [tx.enqueue(action, now) for action in (*((commit_status,) if commit_status else ()), *extra)]
        # Only a release something waits on (a deployment review) has actions to wake: for a hook
        # polling through a freeze that is one statement saved per call.
        woken = tx.wake_actions(release.id, now) if effects.waited_on(release) else 0
        return GateRecord(release, stored, decided_now=True, actions=any(enqueued) or woken > 0)

    def announce_in(
        self,
        tx: StoreTransaction,
        items: Sequence[tuple[ReleaseRequest, Gathered]],
        now: datetime,
        *,
        context: dict[str, Any],
    ) -> list[GateRecord]:
        """Step 2 for many releases of one revision (a push's announcements), inside the caller's
        transaction: those that exist are decided again one by one (``decide_in``); the new ones
        are locked, decided and written set-based, a few statements however many targets."""
        if not items:
            return []
        revision = items[0][0].revision
        found = tx.find_releases([request.target for request, _ in items], revision, lock=True)
        fresh = [(request, gathered) for request, gathered in items if request.target not in found]
        if fresh:
            tx.lock_targets([request.target for request, _ in fresh])
            raced = tx.find_releases([request.target for request, _ in fresh], revision, lock=True)
            found |= raced
            fresh = [(request, gathered) for request, gathered in fresh if request.target not in raced]
        records: dict[str, GateRecord] = {
            request.target: self.decide_in(tx, request, gathered, now, context=context)
            for request, gathered in items
            if request.target in found
        }
        records |= {record.release.target: record for record in self._create_decided(tx, fresh, now, context)}
        return [records[request.target] for request, _ in items]

    def _create_decided(
        self, tx: StoreTransaction, fresh: list[tuple[ReleaseRequest, Gathered]], now: datetime, context: dict[str, Any]
    ) -> list[GateRecord]:
        if not fresh:
            return []
        four_eyes = any(p.approvals.required and p.approvals.four_eyes for _, g in fresh for p in g.policies)
        people = tx.people_of(fresh[0][0].revision) if four_eyes else People()
        approvals = ApprovalFacts((), people.author, people.merger, people.touched)  # a new release has none
        decided = []
        for request, gathered in fresh:
            facts = replace(gathered.facts, approvals=approvals)
            decision = decide(request, facts, gathered.policies, now=now, options=self.options)
            status = after_decision(ReleaseStatus.PENDING, decision.verdict)
            decided.append(DecidedRelease(request.target, request.revision, request.trigger, context, decision, status))
        created = tx.create_decided(decided, now)
        audits = []
        for release, stored in created:
            data, broke_glass = _audit_of(release, stored, stored.trigger)
            audits.append((stored.trigger, f"release/{release.id}", data, broke_glass))
        tx.append_audits("decision", audits, now)
        records = []
        for release, stored in created:
            status_action = effects.commit_status(release, stored, self.public_url, self.status_sources)
            enqueued = tx.enqueue(status_action, now) if status_action is not None else False
            records.append(GateRecord(release, stored, decided_now=True, actions=enqueued))
        return records

    def committed(self, record: GateRecord) -> None:
        """Step 3: after commit, count it and wake the scheduler if the decision gave it work
        (nothing else leaves here)."""
        if not record.decided_now:
            return
        self.count(record.decision)
        if record.actions:
            self.wake()
        logger.info(
            "decision %s@%s: %s",
            record.release.target,
            record.release.revision,
            record.decision.verdict,
            extra={"target": record.release.target, "release_id": record.release.id},
        )

    def gate(self, request: ReleaseRequest) -> GateRecord:
        """A gate call: decide (target, revision) at now, or answer a release no longer open."""
        now = self.clock()
        gathered = self.gather(request, now)
        try:
            record = self._gate_once(request, gathered, now)
        except ConnectionLostError:  # the database restarted: once more, on a fresh connection
            record = self._gate_once(request, gathered, now)
        self.committed(record)
        return record

    def _gate_once(self, request: ReleaseRequest, gathered: Gathered, now: datetime) -> GateRecord:
        with self.store.transaction() as tx:
            return self.decide_in(tx, request, gathered, now, context=dict(request.context))

    def redecide(self, release: ReleaseRecord, trigger: str) -> GateRecord:
        """The scheduler's call: decide an open release again at now (its window may have opened)."""
        request = ReleaseRequest(TargetKey(release.target), release.revision, trigger=trigger)
        return self.gate(request)

    def redecide_due(self, limit: int = 100) -> int:
        """Decide again the deferred releases whose deferral named an instant that has come and
        that an action waits for (a deployment review to answer)."""
        due = self.store.due_releases(self.clock(), limit)
        for release in due:
            self.redecide(release, "scheduler")
        return len(due)

    def count(self, decision: DecisionRecord) -> None:
        if self.metrics is None:
            return
        self.metrics.decisions.labels(decision.verdict).inc()
        for reason in decision.reasons:
            self.metrics.decision_reasons.labels(reason["check"], reason["code"]).inc()

    def policy_hash(self) -> str:
        configuration = self.config.state.configuration
        return configuration.policy_hash if configuration else ""

    def governing(self, target: str) -> list[Policy]:
        configuration = self.config.state.configuration
        return configuration.governing(target) if configuration else []

    # --- calendar questions ---------------------------------------------------------------------

    def _policies(self) -> tuple[Policy, ...]:
        configuration = self.config.state.configuration
        if configuration is None:
            raise ConfigUnavailableError("; ".join(self.config.state.errors) or "no configuration loaded")
        return configuration.policies

    def status(self, target: str, at: datetime | None) -> Status:
        policies = self._policies()
        configuration = self.config.state.configuration
        assert configuration is not None  # noqa: S101 - _policies raised otherwise
        return calendar.status(
            configuration.calendars,
            policies,
            target,
            at or self._now(),
            ungoverned_open=self.options.ungoverned is Verdict.APPROVE,
        )

    def windows(self, target: str, start: datetime, end: datetime) -> Windows:
        policies = self._policies()
        configuration = self.config.state.configuration
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

    # --- reads ----------------------------------------------------------------------------------

    def release(self, release_id: int) -> ReleaseDetail | None:
        return self.store.release(release_id)

    def releases(
        self, *, status: str | None, target: str | None, before_id: int | None, limit: int
    ) -> tuple[list[ReleaseDetail], int | None]:
        return self.store.releases(status=status, target=target, before_id=before_id, limit=limit)

    def prune(self, retention: timedelta) -> int:
        return self.store.prune_deliveries(self.clock() - retention)


def _audit_of(release: ReleaseRecord, stored: DecisionRecord, trigger: str) -> tuple[dict[str, Any], bool]:
    """A decision's audit record (its data, and whether it broke glass)."""
    data = {
        "target": release.target,
        "revision": release.revision,
        "verdict": stored.verdict,
        "codes": [reason["code"] for reason in stored.reasons],
        "policy_hash": stored.policy_hash,
        "decision_id": stored.id,
        "trigger": trigger,
    }
    return data, any(reason["code"] == "break_glass" for reason in stored.reasons)

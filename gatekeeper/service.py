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
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from gatekeeper import effects
from gatekeeper.domain.approvals import ApprovalFacts
from gatekeeper.domain.decision import DecideOptions, decide
from gatekeeper.domain.freezes import Freeze, FreezeState
from gatekeeper.domain.lifecycle import RollbackRevert
from gatekeeper.domain.policy import Policy
from gatekeeper.domain.records import (
    DecidedRelease,
    DecisionRecord,
    GateRecord,
    NewAction,
    ReleaseDetail,
    ReleaseRecord,
    repeats,
)
from gatekeeper.domain.releases import REDECIDABLE, ReleaseStatus, after_decision, transition
from gatekeeper.domain.types import Decision, ReleaseRequest, TargetKey, Verdict, format_instant
from gatekeeper.facts import FactGatherer, FreezeCache, Gathered
from gatekeeper.forecast import Forecast
from gatekeeper.metrics import Metrics
from gatekeeper.notifiers.endpoints import Endpoint
from gatekeeper.ports import Clock, People, ReleaseStore, StoreTransaction
from gatekeeper.reload import ConfigHolder
from gatekeeper.store import ConnectionLostError

logger = logging.getLogger(__name__)


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
    argocd_sync: bool = False  # an Argo CD API is configured: gatekeeper syncs and rolls back itself
    flux_gate: bool = False  # FLUX_GATE: governed Flux targets are suspended while deferred
    wake: Callable[[], None] = field(default=_nothing)  # the scheduler's doorbell, rung after commit
    notify: tuple[Endpoint, ...] = ()  # notification endpoints (NOTIFICATIONS_FILE)
    # Freezes seen active by redecide_begun (None: not looked yet).
    _active_freezes: set[int] | None = field(default=None, init=False, repr=False)

    forecast: Forecast = field(init=False, repr=False)  # the calendar questions the routes ask

    def __post_init__(self) -> None:
        if self.facts is None:
            self.facts = FactGatherer(self.config)
        ungoverned_open = self.options.ungoverned is Verdict.APPROVE
        self.forecast = Forecast(self.store, self.config, self.clock, ungoverned_open, lambda: self.freezes)

    @property
    def freezes(self) -> FreezeCache | None:
        return self.facts.freezes if self.facts is not None else None

    # --- the decision path ----------------------------------------------------------------------

    def gather(self, request: ReleaseRequest, now: datetime) -> Gathered:
        """Step 1: every fact but approvals, outside any transaction."""
        assert self.facts is not None  # noqa: S101 - set in __post_init__
        return self.facts.gather(request, now)

    def gather_many(self, requests: Sequence[ReleaseRequest], now: datetime) -> list[Gathered]:
        """Step 1 for a push's announced releases (a few at a time)."""
        assert self.facts is not None  # noqa: S101 - set in __post_init__
        return self.facts.gather_many(requests, now)

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
        # A hook polling through a freeze: read without a lock, and if the decision would say what
        # the latest one said, answer that and write nothing (no row lock, no commit to flush).
        release = tx.find_release(request.target, request.revision, lock=False)
        if release is not None:
            settled = self._settled(tx, request, gathered, release, now)
            if isinstance(settled, GateRecord):
                return settled
            release = tx.find_release(request.target, request.revision, lock=True)
        if release is None:
            tx.lock_target(request.target)  # new releases of one target: one at a time
            release = tx.find_release(request.target, request.revision, lock=True)
        if release is None:  # created in the status its first decision gives (no approvals yet)
            decision = self._decide(tx, request, gathered, None, now, context)
            status = after_decision(ReleaseStatus.PENDING, decision.verdict)
            release = tx.create_release(
                request.target,
                request.revision,
                request.trigger,
                context or {},
                now,
                status=status,
                not_before=decision.not_before,
            )
            tx.supersede_open(request.target, release.id, now)
        else:  # under the lock: a concurrent call may have stored this very change already
            settled = self._settled(tx, request, gathered, release, now)
            if isinstance(settled, GateRecord):
                return settled
            decision = settled
        return self.record(tx, release, decision, request.trigger, now, actor=actor)

    def _settled(
        self, tx: StoreTransaction, request: ReleaseRequest, gathered: Gathered, release: ReleaseRecord, now: datetime
    ) -> GateRecord | Decision:
        """The answer stored already (the release is no longer open, or deciding it again changes
        nothing), or the new decision to record."""
        latest = tx.latest_decision(release.id)
        if release.status not in REDECIDABLE and latest is not None:
            return GateRecord(release, latest, decided_now=False)
        decision = self._decide(tx, request, gathered, release, now)
        unchanged = release.status in REDECIDABLE and after_decision(release.status, decision.verdict) is release.status
        if latest is not None and unchanged and repeats(decision, latest):
            return GateRecord(release, latest, decided_now=False)
        return decision

    def _decide(
        self,
        tx: StoreTransaction,
        request: ReleaseRequest,
        gathered: Gathered,
        release: ReleaseRecord | None,
        now: datetime,
        context: dict[str, Any] | None = None,
    ) -> Decision:
        # Who touched the revision matters only where four eyes applies (two statements saved per
        # hook poll elsewhere); approvals are always read: a break-glass can stand on any release.
        four_eyes = any(p.approvals.required and p.approvals.four_eyes for p in gathered.policies)
        people = tx.people_of(request.revision) if four_eyes else People()
        given = tx.approvals_of(release.id) if release is not None else ()
        approvals = ApprovalFacts(given, people.author, people.merger, people.touched)
        revert = RollbackRevert.from_context(release.context if release else context, request.target)
        facts = replace(gathered.facts, approvals=approvals, rollback=revert)
        return decide(request, facts, gathered.policies, now=now, options=self.options)

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
        before = release.status
        status = after_decision(release.status, decision.verdict) if release.status in REDECIDABLE else release.status
        # Only with endpoints configured: a notification compares with the verdict before (one read).
        previous = tx.latest_decision(release.id) if self.notify else None
        stored = tx.add_decision(release, decision, trigger, status, now)
        if status is not release.status:
            release = replace(release, status=status, updated_at=now)
        data, broke_glass = _audit_of(release, stored, trigger)
        tx.append_audit("decision", actor or trigger, f"release/{release.id}", data, now, break_glass=broke_glass)
        release = replace(release, not_before=decision.not_before)
        commit_status = effects.commit_status(release, stored, self.public_url, self.status_sources)
        sync = effects.argocd_sync(release, before, trigger) if self.argocd_sync else None
        undo = effects.rollback(release, stored, argocd=self.argocd_sync, flux=self.flux_gate)
        flux = effects.flux_gate(release, stored) if self.flux_gate else None
        caused = tuple(action for action in (commit_status, sync, undo, flux) if action is not None)
        told = self._notifications(previous, release, stored, actor) if self.notify else []
        enqueued = [tx.enqueue(action, now) for action in (*caused, *extra, *told)]
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
            flux = effects.flux_gate(release, stored) if self.flux_gate else None  # deferred: suspended at once
            actions = [action for action in (status_action, flux) if action is not None]
            actions += self._notifications(None, release, stored, None) if self.notify else []
            enqueued = any([tx.enqueue(action, now) for action in actions])
            records.append(GateRecord(release, stored, decided_now=True, actions=enqueued))
        return records

    def _notifications(
        self, previous: DecisionRecord | None, release: ReleaseRecord, stored: DecisionRecord, actor: str | None
    ) -> list[NewAction]:
        event = effects.decision_event(previous, stored, release.status)
        if event is None:
            return []
        body = effects.release_event(event, release, stored, self.public_url, actor)
        return effects.notifications(self.notify, body, f"decision:{stored.id}", (release.target,), release.id)

    def notify_freeze(self, tx: StoreTransaction, event: str, freeze: Freeze, actor: str, now: datetime) -> bool:
        """In the freeze's transaction: enqueue its notifications (wake the scheduler after commit)."""
        body = effects.freeze_event(event, freeze, self.public_url, actor, now)
        actions = effects.notifications(self.notify, body, f"{event}:{freeze.id}", freeze.targets)
        return any([tx.enqueue(action, now) for action in actions])

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

    def redecide_open(self, freeze: Freeze, trigger: str, limit: int = 1000) -> int:
        """Decide again every release not yet applied whose target ``freeze`` matches (it was
        started or lifted): an approved release is deferred, a deferred one may be approved."""
        found = [release for release in self.store.open_releases(limit) if freeze.matches(release.target)]
        for release in found:
            self.redecide(release, trigger)
        return len(found)

    def redecide_begun(self) -> int:
        """A freeze scheduled for later that has begun since the last look: decide its open
        releases again (those approved are deferred). What was active at the first look began
        before this process, and was decided again then."""
        if self.freezes is None:
            return 0
        now = self.clock()
        active = {f.id: f for f in self.freezes.current() if f.state(now) is FreezeState.ACTIVE}
        seen, self._active_freezes = self._active_freezes, set(active)
        if seen is None:
            return 0
        begun = [f for key, f in active.items() if key not in seen and f.start > f.created_at]
        return sum(self.redecide_open(freeze, f"freeze_begun:{freeze.id}") for freeze in begun)

    def redecide_due(self, limit: int = 100) -> int:
        """Decide again the deferred releases whose deferral named an instant that has come and
        that an action waits for (a deployment review to answer), or that gatekeeper syncs itself
        (Argo CD applications, when an Argo CD API is configured; Flux targets, when FLUX_GATE)."""
        also = (effects.ARGOCD_PREFIX,) * self.argocd_sync + (effects.FLUX_PREFIX,) * self.flux_gate
        due = self.store.due_releases(self.clock(), limit, also=also)
        # Every replica runs this loop: each goes through the batch in its own order, and skips a
        # release another replica has decided meanwhile (the decision itself is safe either way:
        # under the release's lock, a repeat stores nothing; this only saves the work).
        random.shuffle(due)
        decided = 0
        for release in due:
            current = self.store.release(release.id)
            if current is None or current.release.status is not ReleaseStatus.DEFERRED:
                continue
            self.redecide(release, "scheduler")
            decided += 1
        return decided

    def verify_due(self, limit: int = 100) -> int:
        """Applied releases healthy through their verification period become ``verified`` (every
        replica runs this: under the release's lock, in one short transaction each, a release
        another replica verified meanwhile is skipped). A release whose policies set no period
        stays ``applied``."""
        now = self.clock()
        due = self.store.verification_due(now, limit)
        random.shuffle(due)
        verified = 0
        for release in due:
            with self.store.transaction() as tx:
                current = tx.release_by_id(release.id, lock=True)
                if current is None or current.status is not ReleaseStatus.APPLIED:
                    continue
                if current.not_before is None or current.not_before > now:
                    continue
                moved = tx.set_status(current, transition(current.status, ReleaseStatus.VERIFIED), now)
                tx.set_not_before(moved, None)
                data = {
                    "target": current.target,
                    "revision": current.revision,
                    "applied_at": format_instant(current.updated_at),
                    "period_ended": format_instant(current.not_before),
                }
                tx.append_audit("verified", "scheduler", f"release/{current.id}", data, now)
                verified += 1
        if verified:
            logger.info("%d release(s) verified", verified)
        return verified

    def goes_out_by_itself(self, target: str) -> bool:
        """Whether gatekeeper itself lets a deferred release of ``target`` out when it may go:
        syncs an Argo CD application (an Argo CD API configured), resumes a Flux target (FLUX_GATE)."""
        return (self.argocd_sync and target.startswith(effects.ARGOCD_PREFIX)) or (
            self.flux_gate and target.startswith(effects.FLUX_PREFIX)
        )

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

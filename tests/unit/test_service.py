"""The orchestrator on the in-memory store: one decision path, facts outside the lock, the outbox.

No database: ``InMemoryReleaseStore`` implements the same port as the SQL store (the integration
tests run both real databases). The clock is fixed; nothing sleeps except the blocking reader.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gatekeeper.actions import ActionFailedError, ActionWaitError
from gatekeeper.domain.decision import DecideOptions
from gatekeeper.domain.policy import Policy
from gatekeeper.domain.records import ActionRecord, NewAction, ReleaseDetail
from gatekeeper.domain.releases import IllegalTransitionError, ReleaseStatus, after_decision, transition
from gatekeeper.domain.types import ReleaseRequest, TargetKey, Verdict
from gatekeeper.facts import FactGatherer
from gatekeeper.people import ReleaseManager
from gatekeeper.reload import ConfigHolder
from gatekeeper.scheduler import Backoff, Scheduler
from gatekeeper.service import GateService
from gatekeeper.store.memory import InMemoryReleaseStore
from gatekeeper.tokens import Identity

MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 10:00 in Berlin: open
POLICY = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: warehouse}
spec:
  targets: ["argocd:odoo-wms", "git:acme/odoo-config@main"]
  timezone: Europe/Berlin
  calendar:
    deny:
      - {cron: "0 14 * * 1-5", duration: 2h, code: dispatch_cutoff}
  approvals: {required: 1, role: release-manager}
"""
ALICE = Identity("alice", frozenset({"release-manager"}))


@dataclass
class Clock:
    now: datetime = MONDAY

    def __call__(self) -> datetime:
        return self.now


@dataclass
class BlockingReader:
    """A fact source that blocks every call while ``armed`` until ``release`` is set."""

    name: str = "cluster"
    armed: bool = False
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def read(self, request: ReleaseRequest, policies: Sequence[Policy], now: datetime) -> object:
        if self.armed:
            self.entered.set()
            self.release.wait(30)
        return {"ok": True}


@pytest.fixture
def world(config_dirs: Callable[..., tuple[Path, Path]]) -> tuple[GateService, Clock, BlockingReader]:
    policies, calendars = config_dirs({"warehouse.yaml": POLICY})
    clock = Clock()
    holder = ConfigHolder(policies, calendars, clock)
    assert holder.reload().status == "ok"
    reader = BlockingReader()
    service = GateService(
        store=InMemoryReleaseStore(),
        config=holder,
        clock=clock,
        options=DecideOptions(retry_delay=timedelta(minutes=5)),
        facts=FactGatherer(holder, [reader], timeout=1.5),
        status_sources=frozenset({"github"}),
    )
    return service, clock, reader


def request(revision: str, target: str = "argocd:odoo-wms") -> ReleaseRequest:
    return ReleaseRequest(TargetKey(target), revision)


def test_a_gate_call_creates_the_release_and_the_next_one_decides_it_again(world: tuple) -> None:
    service, _clock, _reader = world
    first = service.gate(request("r1"))
    again = service.gate(request("r1"))
    assert first.release.id == again.release.id
    assert (first.decision.verdict, again.decision.verdict) == ("defer", "defer")
    assert first.release.status is ReleaseStatus.DEFERRED
    assert [r["code"] for r in again.decision.reasons] == ["approval_missing"]


def test_an_approval_decides_again_inside_its_transaction(world: tuple) -> None:
    service, _clock, _reader = world
    release = service.gate(request("r1")).release
    detail = ReleaseManager(service).approve(release.id, ALICE, None, break_glass=False)
    assert detail.release.status is ReleaseStatus.APPROVED
    assert [d.verdict for d in detail.decisions] == ["defer", "approve"]


def test_a_new_revision_supersedes_the_open_one(world: tuple) -> None:
    service, _clock, _reader = world
    old = service.gate(request("r1")).release
    service.gate(request("r2"))
    detail = service.release(old.id)
    assert detail is not None and detail.release.status is ReleaseStatus.SUPERSEDED
    answer = service.gate(request("r1"))
    assert not answer.decided_now  # a superseded release answers its latest decision


def test_every_decision_has_an_audit_record_naming_it(world: tuple) -> None:
    service, _clock, _reader = world
    release = service.gate(request("r1")).release
    service.gate(request("r1"))
    ReleaseManager(service).approve(release.id, ALICE, None, break_glass=False)
    ReleaseManager(service).reject(service.gate(request("r2")).release.id, ALICE, "wrong image")
    page, _ = service.releases(status=None, target=None, before_id=None, limit=10)
    decisions = [d.id for detail in page for d in detail.decisions]
    records = [r for r in service.store.audit_records(after=0, limit=None) if r["kind"] == "decision"]
    assert sorted(r["data"]["decision_id"] for r in records) == sorted(decisions)
    assert len(records) == len(decisions) == 4  # the second poll repeated the first: not stored


def test_a_poll_that_changes_nothing_stores_nothing_and_a_change_is_stored(world: tuple) -> None:
    service, clock, _reader = world
    first = service.gate(request("r1"))
    again = service.gate(request("r1"))
    assert first.decided_now and not again.decided_now
    assert again.decision.id == first.decision.id
    audit = len(service.store.audit_records(after=0, limit=None))
    clock.now += timedelta(minutes=1)  # the same answer a minute later: still nothing written
    assert service.gate(request("r1")).decision.id == first.decision.id
    assert len(service.store.audit_records(after=0, limit=None)) == audit
    ReleaseManager(service).approve(first.release.id, ALICE, None, break_glass=False)
    after = service.gate(request("r1"))  # approved: no longer open, answered from its decision
    assert after.decision.verdict == "approve" and after.decision.id != first.decision.id


def test_a_hanging_fact_source_holds_no_lock(world: tuple) -> None:
    """While a gate call waits on a fact source, an approval of the same release completes at once;
    the waiting call then ends with a fail-closed deferral at its timeout."""
    service, _clock, reader = world
    release = service.gate(request("r1")).release
    reader.armed = True
    outcome: list[object] = []
    waiting = threading.Thread(target=lambda: outcome.append(service.gate(request("r1"))))
    started = time.monotonic()
    waiting.start()
    assert reader.entered.wait(5)
    reader.armed = False  # the approval's own gathering does not block
    before = time.monotonic()
    detail = ReleaseManager(service).approve(release.id, ALICE, None, break_glass=False)
    assert time.monotonic() - before < 1.0
    assert detail.release.status is ReleaseStatus.APPROVED
    waiting.join(10)
    reader.release.set()
    record = outcome[0]
    assert time.monotonic() - started >= 1.5
    assert record.decision.verdict == "defer"  # type: ignore[attr-defined]
    assert [r["code"] for r in record.decision.reasons] == ["facts_unavailable"]  # type: ignore[attr-defined]
    assert record.decision.not_before == MONDAY + timedelta(minutes=5)  # type: ignore[attr-defined]


def test_the_state_machine_refuses_illegal_moves_naming_both_states() -> None:
    with pytest.raises(IllegalTransitionError, match="from superseded to approved"):
        transition(ReleaseStatus.SUPERSEDED, ReleaseStatus.APPROVED)
    assert after_decision(ReleaseStatus.APPROVED, Verdict.DEFER) is ReleaseStatus.DEFERRED
    assert after_decision(ReleaseStatus.DEFERRED, Verdict.ROLLBACK) is ReleaseStatus.DEFERRED
    assert transition(ReleaseStatus.APPLIED, ReleaseStatus.ROLLED_BACK) is ReleaseStatus.ROLLED_BACK


@dataclass
class RecordingHandler:
    """An outbox handler test double: records what it ran; fails or waits when told to."""

    kind: str = "commit_status"
    ran: list[dict] = field(default_factory=list)
    fail: int = 0
    wait_until: datetime | None = None

    def run(self, action: ActionRecord, release: ReleaseDetail | None) -> str:
        if self.wait_until is not None:
            raise ActionWaitError(self.wait_until, "not yet")
        if self.fail:
            self.fail -= 1
            raise ActionFailedError("upstream answered 500")
        self.ran.append(action.payload)
        return "posted"


def status_release(service: GateService, revision: str) -> int:
    with service.store.transaction() as tx:
        gathered = service.gather(request(revision, "git:acme/odoo-config@main"), service.clock())
        record = service.decide_in(
            tx, request(revision, "git:acme/odoo-config@main"), gathered, service.clock(),
            context={"source": "github", "repo": "acme/odoo-config"},
        )
    return record.release.id


def test_a_decision_enqueues_its_commit_status_and_the_scheduler_runs_it_once(world: tuple) -> None:
    service, _clock, _reader = world
    handler = RecordingHandler()
    scheduler = Scheduler(service, {"commit_status": handler}, backoff=Backoff(first=timedelta(seconds=5)))
    release_id = status_release(service, "a" * 40)
    service.gate(request("a" * 40, "git:acme/odoo-config@main"))  # the same status again: not enqueued
    assert scheduler.run_once() == 1
    assert scheduler.run_once() == 0
    assert [p["sha"] for p in handler.ran] == ["a" * 40]
    ReleaseManager(service).approve(release_id, ALICE, None, break_glass=False)  # green now
    assert scheduler.run_once() == 1
    assert [p["verdict"] for p in handler.ran] == ["defer", "approve"]


def test_a_failing_action_is_retried_with_backoff_and_a_dead_claim_passes_on(world: tuple) -> None:
    service, clock, _reader = world
    handler = RecordingHandler(fail=2)
    scheduler = Scheduler(service, {"commit_status": handler}, backoff=Backoff(first=timedelta(seconds=5)))
    status_release(service, "b" * 40)
    scheduler.run_once()
    (action,) = service.store.actions(status=None, before_id=None, limit=10)
    assert (action.status, action.attempts, action.next_attempt_at) == ("pending", 1, MONDAY + timedelta(seconds=5))
    clock.now += timedelta(seconds=5)
    scheduler.run_once()
    clock.now += timedelta(seconds=10)
    scheduler.run_once()
    (action,) = service.store.actions(status=None, before_id=None, limit=10)
    assert (action.status, action.attempts, len(handler.ran)) == ("done", 3, 1)
    # A replica that claimed an action and died: its lease expires, another one carries it out.
    status_release(service, "c" * 40)
    claimed = service.store.claim_actions(clock(), "dead-replica", 60, 10)
    assert len(claimed) == 1 and scheduler.run_once() == 0
    clock.now += timedelta(seconds=61)
    assert scheduler.run_once() == 1


def test_a_waiting_action_is_no_failure_and_is_woken_by_the_next_decision(world: tuple) -> None:
    service, clock, _reader = world
    handler = RecordingHandler(wait_until=MONDAY + timedelta(hours=1))
    scheduler = Scheduler(service, {"commit_status": handler})
    release_id = status_release(service, "d" * 40)
    scheduler.run_once()
    (action,) = service.store.actions(status=None, before_id=None, limit=10)
    assert (action.status, action.attempts, action.last_error) == ("pending", 0, None)
    handler.wait_until = None
    with service.store.transaction() as tx:
        tx.enqueue(NewAction("commit_status", "other", "other-scope", {"sha": "x"}), clock())
    ReleaseManager(service).approve(release_id, ALICE, None, break_glass=False)
    assert scheduler.run_once() >= 1
    assert any(p.get("verdict") == "approve" for p in handler.ran)


def test_a_pushs_announced_releases_gather_their_facts_a_few_at_a_time(world: tuple) -> None:
    """Four targets whose reader waits for the others: one after another it would never finish
    within the timeout; gathered together each sees the rest arrive (order kept)."""
    service, _clock, _reader = world
    arrived = threading.Barrier(4, timeout=5)

    @dataclass
    class Meeting:
        name: str = "cluster"

        def read(self, request: ReleaseRequest, policies: Sequence[Policy], now: datetime) -> object:
            arrived.wait()
            return {"revision": request.revision}

    assert service.facts is not None
    service.facts.readers = (Meeting(),)
    requests = [ReleaseRequest(TargetKey("argocd:odoo-wms"), f"r{index}") for index in range(4)]
    gathered = service.gather_many(requests, MONDAY)
    assert [g.facts.gather_errors for g in gathered] == [()] * 4
    assert [g.facts.readings["cluster"] for g in gathered] == [{"revision": f"r{index}"} for index in range(4)]


def test_an_action_that_hangs_holds_its_own_worker_not_the_others(world: tuple) -> None:
    """A notification endpoint that never answers: the commit statuses behind it go out while it
    hangs (they used to wait for the whole batch)."""
    service, clock, _reader = world
    hanging, statuses = threading.Event(), RecordingHandler()

    @dataclass
    class Hangs:
        def run(self, action: ActionRecord, release: ReleaseDetail | None) -> str:
            hanging.wait(10)
            return "answered at last"

    scheduler = Scheduler(service, {"notification": Hangs(), "commit_status": statuses}, workers=2)
    with service.store.transaction() as tx:
        tx.enqueue(NewAction("notification", "n1", "slack", {"text": "hi"}), clock())
    runner = threading.Thread(target=scheduler.run_once)
    runner.start()
    try:
        time.sleep(0.2)  # the notification is claimed and hangs
        status_release(service, "e" * 40)  # its commit status is due now
        deadline = time.monotonic() + 5
        while not statuses.ran and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p["sha"] for p in statuses.ran] == ["e" * 40]
        assert runner.is_alive()  # still waiting for the hanging one
    finally:
        hanging.set()
        runner.join(10)
    assert [a.status for a in service.store.actions(status=None, before_id=None, limit=10)] == ["done", "done"]


def test_a_gate_call_that_came_between_the_reverts_push_and_its_record_is_given_its_context(world: tuple) -> None:
    """The hook of the auto-sync a pushed revert starts may ask first: its deferred release is the
    revert's, and the record approves it (reason rollback) instead of leaving it to the window."""
    from gatekeeper.rollbacks import RevertRecorder

    service, _clock, _reader = world
    offending = service.gate(request("bad")).release
    early = service.gate(request("revert"))
    assert early.decision.verdict == "defer"
    RevertRecorder(service)(offending, "revert", True)
    detail = service.release(early.release.id)
    assert detail is not None and detail.release.status is ReleaseStatus.APPROVED
    assert [r["code"] for r in detail.decisions[-1].reasons] == ["rollback"]
    RevertRecorder(service)(offending, "other", False)  # not restoring an approved state: decided as usual
    ordinary = service.store.releases(status=None, target="argocd:odoo-wms", before_id=None, limit=1)[0][0]
    assert ordinary.release.revision == "other" and ordinary.release.status is ReleaseStatus.DEFERRED


def test_an_action_refused_as_configured_fails_at_once_and_is_audited(world: tuple) -> None:
    from gatekeeper.actions import ActionRefusedError

    service, clock, _reader = world

    @dataclass
    class Refuses:
        def run(self, action: ActionRecord, release: ReleaseDetail | None) -> str:
            raise ActionRefusedError("flux:HelmRelease/odoo/web: only a Kustomization's GitRepository can be reverted")

    scheduler = Scheduler(service, {"rollback": Refuses()})
    with service.store.transaction() as tx:
        tx.enqueue(NewAction("rollback", "r1", "rollback:web", {"target": "flux:HelmRelease/odoo/web"}), clock())
    assert scheduler.run_once() == 1
    (action,) = service.store.actions(status=None, before_id=None, limit=10)
    assert (action.status, action.attempts) == ("failed", 1)
    while service.store.chain_audit():
        pass
    (record,) = [r for r in service.store.audit_records(after=0, limit=None) if r["kind"] == "action"]
    assert record["data"]["outcome"] == "failed" and "HelmRelease" in record["data"]["result"]

"""``InMemoryReleaseStore``: the ReleaseStore port in process memory, for the orchestrator's tests.

The same port as ``SqlReleaseStore``, so the service's own tests run in milliseconds without a
database (the integration tests run both real databases). A transaction holds one lock for its
whole length and restores what it changed if it raises, as a database rolls back.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from gatekeeper.audit import GENESIS, chain_hash
from gatekeeper.domain.approvals import Approval, identity_set
from gatekeeper.domain.freezes import Freeze
from gatekeeper.domain.records import (
    ActionRecord,
    ApprovalRecord,
    DecidedRelease,
    DecisionRecord,
    ReleaseDetail,
    ReleaseRecord,
)
from gatekeeper.domain.releases import REDECIDABLE, ReleaseStatus
from gatekeeper.domain.types import Decision
from gatekeeper.ports import People, StoredAnswer
from gatekeeper.store.memory_outbox import PENDING, OutboxReads, OutboxWrites
from gatekeeper.store.rows import audit_instant, decision_values


@dataclass
class _State:
    releases: dict[int, ReleaseRecord] = field(default_factory=dict)
    decisions: list[DecisionRecord] = field(default_factory=list)
    approvals: dict[int, list[tuple[Approval, datetime]]] = field(default_factory=dict)
    commits: dict[str, People] = field(default_factory=dict)
    deliveries: dict[tuple[str, str], tuple[StoredAnswer, datetime]] = field(default_factory=dict)
    pending_audit: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    actions: dict[int, ActionRecord] = field(default_factory=dict)
    freezes: dict[int, Freeze] = field(default_factory=dict)
    next_id: int = 0

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


class InMemoryTransaction(OutboxWrites):
    """The StoreTransaction port over ``_State`` (the store's lock is held)."""

    def __init__(self, state: _State) -> None:
        self.s = state

    def find_release(self, target: str, revision: str, *, lock: bool) -> ReleaseRecord | None:
        return next((r for r in self.s.releases.values() if (r.target, r.revision) == (target, revision)), None)

    def release_by_id(self, release_id: int, *, lock: bool) -> ReleaseRecord | None:
        return self.s.releases.get(release_id)

    def lock_target(self, target: str) -> None:
        return None  # the store's one lock is held already

    def create_release(
        self,
        target: str,
        revision: str,
        trigger: str,
        context: dict[str, Any],
        now: datetime,
        *,
        status: ReleaseStatus = ReleaseStatus.PENDING,
        not_before: datetime | None = None,
    ) -> ReleaseRecord:
        people = self.s.commits.get(revision, People())
        release = ReleaseRecord(
            self.s.new_id(),
            target,
            revision,
            status,
            trigger,
            now,
            now,
            author=people.author,
            merger=people.merger,
            context=context or None,
            not_before=not_before,
        )
        self.s.releases[release.id] = release
        return release

    def supersede_open(self, target: str, keep_id: int, now: datetime) -> int:
        older = [
            r for r in self.s.releases.values() if r.target == target and r.id != keep_id and r.status in REDECIDABLE
        ]
        for release in older:
            self.s.releases[release.id] = replace(release, status=ReleaseStatus.SUPERSEDED, updated_at=now)
        return len(older)

    def add_context(self, release: ReleaseRecord, context: dict[str, Any]) -> ReleaseRecord:
        moved = replace(self.s.releases[release.id], context=dict(self.s.releases[release.id].context or {}) | context)
        self.s.releases[release.id] = moved
        return moved

    def find_releases(self, targets: Sequence[str], revision: str, *, lock: bool) -> dict[str, ReleaseRecord]:
        wanted = set(targets)
        return {r.target: r for r in self.s.releases.values() if r.target in wanted and r.revision == revision}

    def lock_targets(self, targets: Sequence[str]) -> None:
        return None  # the store's one lock is held already

    def create_decided(
        self, items: Sequence[DecidedRelease], now: datetime
    ) -> list[tuple[ReleaseRecord, DecisionRecord]]:
        done = []
        for item in items:
            release = self.create_release(item.target, item.revision, item.trigger, item.context, now)
            self.supersede_open(item.target, release.id, now)
            decision = self.add_decision(release, item.decision, item.trigger, item.status, now)
            done.append((self.s.releases[release.id], decision))
        return done

    def append_audits(
        self, kind: str, entries: Sequence[tuple[str, str | None, dict[str, Any], bool]], now: datetime
    ) -> None:
        for actor, subject, data, glass in entries:
            self.append_audit(kind, actor, subject, data, now, break_glass=glass)

    def set_status(self, release: ReleaseRecord, status: ReleaseStatus, now: datetime) -> ReleaseRecord:
        if status is release.status:
            return release
        moved = replace(self.s.releases[release.id], status=status, updated_at=now)
        self.s.releases[release.id] = moved
        return replace(release, status=status, updated_at=now)

    def set_not_before(self, release: ReleaseRecord, not_before: datetime | None) -> ReleaseRecord:
        self.s.releases[release.id] = replace(self.s.releases[release.id], not_before=not_before)
        return replace(release, not_before=not_before)

    def add_decision(
        self, release: ReleaseRecord, decision: Decision, trigger: str, status: ReleaseStatus, now: datetime
    ) -> DecisionRecord:
        record = DecisionRecord(id=self.s.new_id(), **decision_values(release.id, decision, trigger))
        self.s.decisions.append(record)
        stored = self.s.releases[release.id]
        moved = replace(stored, status=status, updated_at=now) if status is not stored.status else stored
        self.s.releases[release.id] = replace(moved, not_before=decision.not_before)
        return record

    def latest_decision(self, release_id: int) -> DecisionRecord | None:
        return next((d for d in reversed(self.s.decisions) if d.release_id == release_id), None)

    def approvals_of(self, release_id: int) -> tuple[Approval, ...]:
        return tuple(approval for approval, _ in self.s.approvals.get(release_id, []))

    def add_approval(self, release_id: int, approval: Approval, now: datetime) -> None:
        self.s.approvals.setdefault(release_id, []).append((approval, now))

    def people_of(self, sha: str) -> People:
        return self.s.commits.get(sha, People())

    def record_commit(
        self, sha: str, author: str | None, merger: str | None, identities: Iterable[str], now: datetime
    ) -> None:
        known = self.s.commits.get(sha, People())
        touched = known.touched | identity_set((*identities, author, merger))
        self.s.commits[sha] = People(known.author or author or None, known.merger or merger or None, touched)

    def append_audit(
        self,
        kind: str,
        actor: str,
        subject: str | None,
        data: dict[str, Any],
        now: datetime,
        *,
        break_glass: bool = False,
    ) -> None:
        entry = {"at": audit_instant(now), "kind": kind, "actor": actor, "subject": subject, "data": data}
        self.s.pending_audit.append(entry | {"break_glass": break_glass})

    def claim_delivery(self, source: str, delivery_id: str, now: datetime) -> StoredAnswer | None:
        found = self.s.deliveries.get((source, delivery_id))
        if found is not None:
            return found[0]
        self.s.deliveries[(source, delivery_id)] = (StoredAnswer(0, {}), now)
        return None

    def answer_delivery(self, source: str, delivery_id: str, answer: StoredAnswer) -> None:
        received = self.s.deliveries[(source, delivery_id)][1]
        self.s.deliveries[(source, delivery_id)] = (answer, received)

    def add_freeze(
        self,
        targets: tuple[str, ...],
        start: datetime,
        end: datetime | None,
        reason: str,
        code: str,
        created_by: str,
        now: datetime,
    ) -> Freeze:
        freeze = Freeze(self.s.new_id(), tuple(targets), start, end, reason, created_by, now, code)
        self.s.freezes[freeze.id] = freeze
        return freeze

    def freeze_by_id(self, freeze_id: int, *, lock: bool) -> Freeze | None:
        return self.s.freezes.get(freeze_id)

    def lift_freeze(self, freeze: Freeze, who: str, reason: str, now: datetime) -> Freeze:
        lifted = replace(self.s.freezes[freeze.id], lifted_at=now, lifted_by=who, lift_reason=reason)
        self.s.freezes[freeze.id] = lifted
        return lifted


class InMemoryReleaseStore(OutboxReads):
    def __init__(self, *, audit_key: bytes | None = None) -> None:
        self._audit_key = audit_key
        self._lock = threading.RLock()
        self._state = _State()

    @contextmanager
    def transaction(self) -> Iterator[InMemoryTransaction]:
        with self._lock:
            saved = copy.deepcopy(self._state)
            try:
                yield InMemoryTransaction(self._state)
            except BaseException:
                self._state = saved
                raise

    def release(self, release_id: int) -> ReleaseDetail | None:
        with self._lock:
            release = self._state.releases.get(release_id)
            if release is None:
                return None
            people = self._state.commits.get(release.revision, People())
            release = replace(release, author=people.author, merger=people.merger)
            decisions = tuple(d for d in self._state.decisions if d.release_id == release_id)
            approvals = tuple(
                ApprovalRecord(n, a.approver, sorted(a.roles), a.reason, a.break_glass, at)
                for n, (a, at) in enumerate(self._state.approvals.get(release_id, []), 1)
            )
            return ReleaseDetail(release, decisions, approvals)

    def releases(
        self, *, status: str | None, target: str | None, before_id: int | None, limit: int
    ) -> tuple[list[ReleaseDetail], int | None]:
        with self._lock:
            ids = sorted(
                (
                    r.id
                    for r in self._state.releases.values()
                    if (not status or r.status == status)
                    and (not target or r.target == target)
                    and (before_id is None or r.id < before_id)
                ),
                reverse=True,
            )
        page = [detail for detail in (self.release(i) for i in ids[:limit]) if detail is not None]
        return page, (ids[limit - 1] if len(ids) > limit else None)

    def due_releases(self, now: datetime, limit: int, *, also: Sequence[str] = ()) -> list[ReleaseRecord]:
        with self._lock:
            waited = {a.release_id for a in self._state.actions.values() if a.status == PENDING}
            due = [
                r
                for r in self._state.releases.values()
                if r.status is ReleaseStatus.DEFERRED
                and r.not_before is not None
                and r.not_before <= now
                and (r.id in waited or any(r.target.startswith(prefix) for prefix in also))
            ]
        return sorted(due, key=lambda r: (r.not_before or now, r.id))[:limit]

    def verification_due(self, now: datetime, limit: int) -> list[ReleaseRecord]:
        with self._lock:
            due = [
                r
                for r in self._state.releases.values()
                if r.status is ReleaseStatus.APPLIED and r.not_before is not None and r.not_before <= now
            ]
        return sorted(due, key=lambda r: (r.not_before or now, r.id))[:limit]

    def newest_releases(self, prefix: str, limit: int) -> list[ReleaseRecord]:
        with self._lock:
            newest: dict[str, ReleaseRecord] = {}
            for release in sorted(self._state.releases.values(), key=lambda r: r.id):
                if release.target.startswith(prefix):
                    newest[release.target] = release
        return [newest[target] for target in sorted(newest)][:limit]

    def open_releases(self, limit: int, target: str | None = None) -> list[ReleaseRecord]:
        with self._lock:
            found = [
                r
                for r in self._state.releases.values()
                if r.status in REDECIDABLE and (target is None or r.target == target)
            ]
        return sorted(found, key=lambda r: r.id)[:limit]

    def freezes(
        self, *, ending_after: datetime | None, before_id: int | None = None, limit: int | None = None
    ) -> list[Freeze]:
        with self._lock:
            found = [
                f
                for f in self._state.freezes.values()
                if (before_id is None or f.id < before_id)
                and (ending_after is None or f.effective_end is None or f.effective_end > ending_after)
            ]
        found.sort(key=lambda f: -f.id)
        return found[:limit] if limit is not None else found

    def chain_audit(self, batch: int = 50, *, wait: bool = True) -> int:
        with self._lock:
            pending, self._state.pending_audit = self._state.pending_audit, []
            chain = self._state.audit
            for entry in pending:
                previous = chain[-1]["hash"] if chain else GENESIS
                record = {"seq": len(chain) + 1, **entry}
                digest = chain_hash(previous, record, self._audit_key)
                chain.append(record | {"prev_hash": previous, "hash": digest})
            return len(pending)

    def audit_head(self, *, chain: bool = True) -> tuple[int, str]:
        if chain:
            self.chain_audit()
        with self._lock:
            records = self._state.audit
            return (records[-1]["seq"], records[-1]["hash"]) if records else (0, GENESIS)

    def decision_ids(self) -> list[int]:
        with self._lock:
            return [d.id for d in self._state.decisions]

    def audit_records(self, *, after: int, limit: int | None) -> list[dict[str, Any]]:
        self.chain_audit()
        with self._lock:
            found = [dict(r) for r in self._state.audit if r["seq"] > after]
        return found[:limit] if limit is not None else found

    def prune_deliveries(self, older_than: datetime) -> int:
        with self._lock:
            old = [key for key, (_, at) in self._state.deliveries.items() if at < older_than]
            for key in old:
                del self._state.deliveries[key]
            return len(old)

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        return None

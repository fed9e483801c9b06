"""What release managers do: approve (four eyes, break-glass), reject, roll back, and stop the
line with an ad-hoc freeze (DESIGN §3).

Each action is one pass of the service's decision path: facts first, then one transaction that
locks the release, checks, records the approval or the new state with its audit record, and
decides the release again at now so the answer reflects it at once. A refused approval is
audited too. Starting or lifting a freeze is one transaction (the freeze and its audit record);
after it commits, every release not yet applied that the freeze matches is decided again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gatekeeper.domain import approvals as approval_rules
from gatekeeper.domain.approvals import BREAK_GLASS_ROLE, Approval
from gatekeeper.domain.freezes import FREEZE_CODE, Freeze
from gatekeeper.domain.records import DecisionRecord, GateRecord, ReleaseDetail, ReleaseRecord
from gatekeeper.domain.releases import REDECIDABLE, ReleaseStatus, transition
from gatekeeper.domain.types import Decision, Reason, ReleaseRequest, TargetKey, Verdict, format_instant
from gatekeeper.ports import StoreTransaction
from gatekeeper.service import GateService
from gatekeeper.store import StoreError
from gatekeeper.tokens import Identity

logger = logging.getLogger(__name__)

MANAGER_ROLE = "release-manager"
ROLLBACKABLE = frozenset({ReleaseStatus.APPROVED, ReleaseStatus.APPLIED, ReleaseStatus.VERIFIED})


class ReleaseNotFoundError(LookupError):
    pass


class FreezeNotFoundError(LookupError):
    pass


class ActionRefusedError(Exception):
    """A person may not do this: a stable ``code``, a message and the field at fault. Which HTTP
    status each kind is lives in one table, ``gatekeeper.api.errors.STATUS_OF``."""

    code = "forbidden"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message, self.field = message, field


class ForbiddenError(ActionRefusedError):
    """The token lacks a role, or may not act on the target (403)."""

    code = "forbidden"


class FourEyesError(ActionRefusedError):
    """The approver touched the revision (403 ``four_eyes``)."""

    code = "four_eyes"


class ConflictError(ActionRefusedError):
    """The release is not in a state that allows it (409)."""

    code = "conflict"


class ReasonRequiredError(ActionRefusedError):
    """A break-glass approval or a rejection without a reason (422 naming ``reason``)."""

    code = "invalid_request"


def _drift_shown(decision: DecisionRecord | None) -> frozenset[str]:
    """The digests of the drift the release's latest decision showed (what an approval given now
    acknowledges, DESIGN §3)."""
    if decision is None:
        return frozenset()
    return frozenset(
        str(reason["digest"])
        for reason in decision.reasons
        if reason.get("code") == "drift_detected" and reason.get("digest")
    )


class InvalidFreezeError(ActionRefusedError):
    """A freeze whose instants do not make a span to come (422 naming the field)."""

    code = "invalid_request"


def _reason_required(reason: str | None, what: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise ReasonRequiredError(f"reason: {what} needs a reason", "reason")
    return text


@dataclass
class ReleaseManager:
    service: GateService

    def approve(self, release_id: int, who: Identity, reason: str | None, *, break_glass: bool) -> ReleaseDetail:
        if break_glass:
            missing = sorted({MANAGER_ROLE, BREAK_GLASS_ROLE} - who.roles)
            if missing:
                raise ForbiddenError(f"token {who.name!r} lacks the role {missing[0]}")
            reason = _reason_required(reason, "a break-glass approval")
        elif MANAGER_ROLE not in who.roles:
            raise ForbiddenError(f"token {who.name!r} lacks the role {MANAGER_ROLE}")
        kind = "break_glass" if break_glass else "approval"
        release = self._peek(release_id, who)
        request = ReleaseRequest(TargetKey(release.target), release.revision, trigger=f"{kind}:{who.name}")
        now = self.service.clock()
        gathered = self.service.gather(request, now)  # outside the transaction
        refusal: str | None = None
        record = None
        with self.service.store.transaction() as tx:
            release = self._open_release(tx, release_id, who)
            given = tx.approvals_of(release.id)
            # Approving twice is approving once (a double click, a retried request): nothing is
            # stored or decided again, and the answer is the release as it stands.
            repeat = any(a.approver == who.name and a.break_glass == break_glass for a in given)
            if not repeat and not break_glass:
                refusal = self._four_eyes_refusal(tx, release, who)
            data = {"target": release.target, "revision": release.revision, "reason": (reason or "").strip() or None}
            if refusal is not None:
                tx.append_audit("approval_refused", who.name, f"release/{release.id}", data | {"why": refusal}, now)
            elif not repeat:
                shown = _drift_shown(tx.latest_decision(release.id))
                approval = Approval(who.name, who.roles, break_glass, data["reason"], now, who.person, shown)
                tx.add_approval(release.id, approval, now)
                tx.append_audit(kind, who.name, f"release/{release.id}", data, now, break_glass=break_glass)
                record = self.service.decide_in(tx, request, gathered, now, actor=who.name)
        if refusal is not None:
            logger.warning("approval of release %s by %s refused: %s", release_id, who.name, refusal)
            raise FourEyesError(refusal)
        if record is None:
            logger.info("release %s: %s approved it already", release_id, who.name, extra={"release_id": release_id})
        else:
            self.service.committed(record)
            if break_glass and self.service.metrics is not None:
                self.service.metrics.break_glass.inc()
            logger.info("%s of release %s by %s", kind, release_id, who.name, extra={"release_id": release_id})
        return self._detail(release_id)

    def reject(self, release_id: int, who: Identity, reason: str | None) -> ReleaseDetail:
        reason = _reason_required(reason, "a rejection")
        now = self.service.clock()
        with self.service.store.transaction() as tx:
            release = self._open_release(tx, release_id, who)
            release = tx.set_status(release, transition(release.status, ReleaseStatus.REJECTED), now)
            # The rejection is the release's last decision: every later gate call answers with it,
            # so the hook and the CLI say who rejected the release and why.
            record = self._human_decision(tx, release, who, reason, now, "rejection", "rejected", Verdict.DEFER)
        self.service.committed(record)
        logger.info("rejection of release %s by %s", release_id, who.name, extra={"release_id": release_id})
        return self._detail(release_id)

    def rollback(self, release_id: int, who: Identity, reason: str | None) -> ReleaseDetail:
        now = self.service.clock()
        with self.service.store.transaction() as tx:
            release = self._release(tx, release_id, who)
            if release.status not in ROLLBACKABLE:
                raise ConflictError(
                    f"release {release_id} is {release.status.value}; only an approved, applied or "
                    "verified release can be rolled back",
                )
            record = self._human_decision(
                tx, release, who, reason, now, "rollback", "manual_rollback", Verdict.ROLLBACK
            )
        self.service.committed(record)
        return self._detail(release_id)

    def start_freeze(
        self,
        who: Identity,
        targets: tuple[str, ...],
        start: datetime | None,
        end: datetime | None,
        reason: str | None,
        *,
        lasting: timedelta | None = None,
    ) -> Freeze:
        """Stop the line: close ``targets`` (checked globs) from ``start`` (None or earlier: now)
        until ``end``, or for ``lasting`` from the start (neither: until lifted)."""
        self._may_freeze(who, targets)
        reason = _reason_required(reason, "a freeze")
        if end is not None and lasting is not None:
            raise InvalidFreezeError("duration: give end or duration, not both", "duration")
        now = self.service.clock()
        # In UTC (SQLite keeps no offset); a freeze cannot have closed the gate before it existed.
        try:
            start = max(start or now, now).astimezone(UTC)
            end = end.astimezone(UTC) if end is not None else (start + lasting if lasting is not None else None)
        except OverflowError:
            raise InvalidFreezeError("end: after the year 9999", "duration" if lasting else "end") from None
        if end is not None and end <= start:
            later = "in the future" if end <= now else f"after the start ({format_instant(start)})"
            raise InvalidFreezeError(f"end: must be {later}", "end")
        with self.service.store.transaction() as tx:
            freeze = tx.add_freeze(targets, start, end, reason, FREEZE_CODE, who.name, now)
            tx.append_audit("freeze", who.name, f"freeze/{freeze.id}", _freeze_data(freeze), now)
            told = self.service.notify_freeze(tx, "freeze_started", freeze, who.name, now)
        if told:
            self.service.wake()
        logger.warning("freeze %s started by %s on %s: %s", freeze.id, who.name, ", ".join(targets), reason)
        self._decide_again(freeze, f"freeze:{who.name}")
        return freeze

    def lift_freeze(self, freeze_id: int, who: Identity, reason: str | None) -> Freeze:
        """End a freeze now (it stays in the history, with who lifted it and why)."""
        reason = _reason_required(reason, "lifting a freeze")
        now = self.service.clock()
        with self.service.store.transaction() as tx:
            freeze = tx.freeze_by_id(freeze_id, lock=True)
            if freeze is None:
                raise FreezeNotFoundError(f"freeze {freeze_id} does not exist")
            self._may_freeze(who, freeze.targets)
            if not freeze.in_force(now):
                state = freeze.state(now).value
                raise ConflictError(f"freeze {freeze_id} is {state}; only an active or scheduled freeze can be lifted")
            freeze = tx.lift_freeze(freeze, who.name, reason, now)
            data = _freeze_data(freeze) | {"lift_reason": reason}
            tx.append_audit("freeze_lift", who.name, f"freeze/{freeze.id}", data, now)
            told = self.service.notify_freeze(tx, "freeze_lifted", freeze, who.name, now)
        if told:
            self.service.wake()
        logger.warning("freeze %s lifted by %s: %s", freeze.id, who.name, reason)
        self._decide_again(freeze, f"freeze_lift:{who.name}")
        return freeze

    def _decide_again(self, freeze: Freeze, trigger: str) -> None:
        if self.service.freezes is not None:
            self.service.freezes.invalidate()  # this replica sees it at once, the others within max_age
        try:
            decided = self.service.redecide_open(freeze, trigger[:64])
        except StoreError as exc:  # the freeze is committed: each release's next gate call decides it again
            logger.error("freeze %s: deciding its open releases again failed: %s", freeze.id, exc)
            return
        logger.info("freeze %s: %d open releases decided again", freeze.id, decided)

    @staticmethod
    def _may_freeze(who: Identity, targets: tuple[str, ...]) -> None:
        if MANAGER_ROLE not in who.roles:
            raise ForbiddenError(f"token {who.name!r} lacks the role {MANAGER_ROLE}")
        # A token limited to some targets may freeze only globs its own globs cover.
        outside = [glob for glob in targets if not who.may_act_on(glob)]
        if outside:
            raise ForbiddenError(f"token {who.name!r} may not act on targets {outside[0]}", "targets")

    def _human_decision(
        self,
        tx: StoreTransaction,
        release: ReleaseRecord,
        who: Identity,
        reason: str | None,
        now: datetime,
        kind: str,
        code: str,
        verdict: Verdict,
    ) -> GateRecord:
        """A release manager's rejection or rollback: its audit record, and a decision of its own
        ("rejected by alice: wrong image") that later gate calls answer with."""
        data = {"target": release.target, "revision": release.revision, "reason": reason}
        tx.append_audit(kind, who.name, f"release/{release.id}", data, now)
        done = "rejected" if kind == "rejection" else "rollback requested"
        text = f"{done} by {who.name}" + (f": {reason}" if reason else "")
        decision = Decision(verdict, (Reason("approval", code, text, None),), None, (), self.service.policy_hash(), now)
        return self.service.record(tx, release, decision, f"{kind}:{who.name}", now, actor=who.name)

    def _peek(self, release_id: int, who: Identity) -> ReleaseRecord:
        """The release as it stands (no lock): which target and revision to gather facts for."""
        detail = self.service.store.release(release_id)
        if detail is None:
            raise ReleaseNotFoundError(f"release {release_id} does not exist")
        self._may_act(detail.release, who)
        return detail.release

    def _release(self, tx: StoreTransaction, release_id: int, who: Identity) -> ReleaseRecord:
        release = tx.release_by_id(release_id, lock=True)
        if release is None:
            raise ReleaseNotFoundError(f"release {release_id} does not exist")
        self._may_act(release, who)
        return release

    @staticmethod
    def _may_act(release: ReleaseRecord, who: Identity) -> None:
        if not who.may_act_on(release.target):
            raise ForbiddenError(f"token {who.name!r} may not act on target {release.target}")

    def _open_release(self, tx: StoreTransaction, release_id: int, who: Identity) -> ReleaseRecord:
        release = self._release(tx, release_id, who)
        if release.status not in REDECIDABLE:
            raise ConflictError(
                f"release {release_id} is {release.status.value}, no longer waiting for a decision"
            )
        return release

    def _four_eyes_refusal(self, tx: StoreTransaction, release: ReleaseRecord, who: Identity) -> str | None:
        if not any(policy.approvals.four_eyes for policy in self.service.governing(release.target)):
            return None
        people = tx.people_of(release.revision)
        facts = approval_rules.ApprovalFacts((), people.author, people.merger, people.touched)
        return approval_rules.four_eyes_conflict(who.name, facts, who.identities)

    def _detail(self, release_id: int) -> ReleaseDetail:
        detail = self.service.store.release(release_id)
        if detail is None:  # pragma: no cover - it was there a moment ago
            raise ReleaseNotFoundError(f"release {release_id} does not exist")
        return detail


def _freeze_data(freeze: Freeze) -> dict[str, object]:
    """What the audit record of a freeze says."""
    return {
        "freeze_id": freeze.id,
        "targets": list(freeze.targets),
        "start": format_instant(freeze.start),
        "end": format_instant(freeze.end),
        "reason": freeze.reason,
        "code": freeze.code,
    }

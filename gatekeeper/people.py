"""What release managers do: approve (four eyes, break-glass), reject and roll back (DESIGN §3).

Each action is one pass of the service's decision path: facts first, then one transaction that
locks the release, checks, records the approval or the new state with its audit record, and
decides the release again at now so the answer reflects it at once. A refused approval is
audited too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from gatekeeper.domain import approvals as approval_rules
from gatekeeper.domain.approvals import BREAK_GLASS_ROLE, Approval
from gatekeeper.domain.records import DecisionRecord, GateRecord, ReleaseDetail, ReleaseRecord
from gatekeeper.domain.releases import REDECIDABLE, ReleaseStatus, transition
from gatekeeper.domain.types import Decision, Reason, ReleaseRequest, TargetKey, Verdict
from gatekeeper.ports import StoreTransaction
from gatekeeper.service import GateService
from gatekeeper.tokens import Identity

logger = logging.getLogger(__name__)

MANAGER_ROLE = "release-manager"
ROLLBACKABLE = frozenset({ReleaseStatus.APPROVED, ReleaseStatus.APPLIED, ReleaseStatus.VERIFIED})


class ReleaseNotFoundError(LookupError):
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

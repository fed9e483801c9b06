"""What release managers do: approve (four eyes, break-glass), reject and roll back (DESIGN §3).

Each action is one transaction: check, record the approval or state, append to the audit
chain, and re-decide the release at now so the answer reflects it at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from gatekeeper.domain import approvals as approval_rules
from gatekeeper.domain.approvals import BREAK_GLASS_ROLE, Approval
from gatekeeper.domain.types import Decision, Reason, ReleaseRequest, TargetKey, Verdict
from gatekeeper.service import GateService
from gatekeeper.store.records import REDECIDABLE, ReleaseDetail, ReleaseRecord, ReleaseStatus
from gatekeeper.store.sql import StoreSession
from gatekeeper.tokens import Identity

logger = logging.getLogger(__name__)

ROLLBACKABLE = frozenset({ReleaseStatus.APPROVED, ReleaseStatus.APPLIED, ReleaseStatus.VERIFIED})


class ReleaseNotFoundError(LookupError):
    pass


class ActionRefusedError(Exception):
    """A person may not do this: HTTP status, error code, message, field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


@dataclass
class ReleaseManager:
    service: GateService

    def approve(self, release_id: int, who: Identity, reason: str | None, *, break_glass: bool) -> ReleaseDetail:
        if break_glass and BREAK_GLASS_ROLE not in who.roles:
            raise ActionRefusedError(403, "forbidden", f"token {who.name!r} lacks the role break-glass")
        if break_glass and not (reason or "").strip():
            raise ActionRefusedError(422, "invalid_request", "reason: a break-glass approval needs a reason", "reason")
        kind = "break_glass" if break_glass else "approval"
        now = self.service.clock()
        with self.service.store.session() as session:
            release = self._open_release(session, release_id, who)
            facts = session.approval_facts(release, release.revision)
            # Approving twice is approving once (a double click, a retried request): nothing is
            # stored or decided again, and the answer is the release as it stands.
            repeat = any(given.approver == who.name and given.break_glass == break_glass for given in facts.approvals)
            if not repeat:
                if not break_glass:
                    self._check_four_eyes(release, who, facts)
                approval = Approval(who.name, who.roles, break_glass, (reason or "").strip() or None, now)
                session.add_approval(release.id, approval, now)
                data = {"target": release.target, "revision": release.revision, "reason": approval.reason}
                session.append_audit(kind, who.name, f"release/{release.id}", data, now, break_glass=break_glass)
                self._redecide(session, release, f"{kind}:{who.name}")
        if repeat:
            logger.info("release %s: %s approved it already", release_id, who.name, extra={"release_id": release_id})
        else:
            if break_glass and self.service.metrics is not None:
                self.service.metrics.break_glass.inc()
            logger.info("%s of release %s by %s", kind, release_id, who.name, extra={"release_id": release_id})
        return self._detail(release_id)

    def reject(self, release_id: int, who: Identity, reason: str | None) -> ReleaseDetail:
        now = self.service.clock()
        with self.service.store.session() as session:
            release = self._open_release(session, release_id, who)
            session.mark(release, ReleaseStatus.REJECTED, now)
            # The rejection is the release's last decision: every later gate call answers with it,
            # so the hook and the CLI say who rejected the release and why.
            self._human_decision(session, release, who, reason, now, "rejection", "rejected", Verdict.DEFER)
        logger.info("rejection of release %s by %s", release_id, who.name, extra={"release_id": release_id})
        return self._detail(release_id)

    def rollback(self, release_id: int, who: Identity, reason: str | None) -> ReleaseDetail:
        now = self.service.clock()
        with self.service.store.session() as session:
            release = self._release(session, release_id, who)
            if release.status not in ROLLBACKABLE:
                raise ActionRefusedError(
                    409,
                    "conflict",
                    f"release {release_id} is {release.status.value}; only an approved, applied or "
                    "verified release can be rolled back",
                )
            self._human_decision(session, release, who, reason, now, "rollback", "manual_rollback", Verdict.ROLLBACK)
        return self._detail(release_id)

    def _human_decision(
        self,
        session: StoreSession,
        release: ReleaseRecord,
        who: Identity,
        reason: str | None,
        now: datetime,
        kind: str,
        code: str,
        verdict: Verdict,
    ) -> None:
        """A release manager's rejection or rollback: its audit record, and a decision of its own
        ("rejected by alice: wrong image") that later gate calls answer with."""
        data = {"target": release.target, "revision": release.revision, "reason": reason}
        session.append_audit(kind, who.name, f"release/{release.id}", data, now)
        done = "rejected" if kind == "rejection" else "rollback requested"
        text = f"{done} by {who.name}" + (f": {reason}" if reason else "")
        decision = Decision(verdict, (Reason("approval", code, text, None),), None, (), self._policy_hash(), now)
        record = session.add_decision(release.id, decision, f"{kind}:{who.name}")
        session.audit_decision(release, record, who.name, now)

    def _release(self, session: StoreSession, release_id: int, who: Identity) -> ReleaseRecord:
        release = session.release_for_update(release_id)
        if release is None:
            raise ReleaseNotFoundError(f"release {release_id} does not exist")
        if not who.may_act_on(release.target):
            raise ActionRefusedError(403, "forbidden", f"token {who.name!r} may not act on target {release.target}")
        return release

    def _open_release(self, session: StoreSession, release_id: int, who: Identity) -> ReleaseRecord:
        release = self._release(session, release_id, who)
        if release.status not in REDECIDABLE:
            raise ActionRefusedError(
                409, "conflict", f"release {release_id} is {release.status.value}, no longer waiting for a decision"
            )
        return release

    def _check_four_eyes(self, release: ReleaseRecord, who: Identity, facts: approval_rules.ApprovalFacts) -> None:
        configuration = self.service.config.state.configuration
        governing = configuration.governing(release.target) if configuration else []
        if not any(policy.approvals.four_eyes for policy in governing):
            return
        conflict = approval_rules.four_eyes_conflict(who.name, facts)
        if conflict:
            raise ActionRefusedError(403, "four_eyes", conflict)

    def _redecide(self, session: StoreSession, release: ReleaseRecord, trigger: str) -> None:
        now = self.service.clock()
        request = ReleaseRequest(TargetKey(release.target), release.revision, trigger)
        record = session.gate(
            release.target,
            release.revision,
            trigger,
            {},
            lambda _release, facts: self.service.decide(
                request, now, self.service.approval_facts(release.target, facts)
            ),
            now,
        )
        self.service.count(record)

    def _policy_hash(self) -> str:
        configuration = self.service.config.state.configuration
        return configuration.policy_hash if configuration else ""

    def _detail(self, release_id: int) -> ReleaseDetail:
        detail = self.service.store.release(release_id)
        if detail is None:  # pragma: no cover - it was there a moment ago
            raise ReleaseNotFoundError(f"release {release_id} does not exist")
        return detail

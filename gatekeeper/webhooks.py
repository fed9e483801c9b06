"""Inbound webhooks, orchestrated: verify -> allow-list -> parse -> dedupe -> decide -> store -> act.

Receivers (one per source) turn a request into an ``Inbound``; this module runs it against the
store in the delivery's transaction (so a redelivery returns the stored answer and decides
nothing twice), then sends what must go out (commit statuses, deployment reviews) after commit.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio.to_thread

from gatekeeper.domain.lifecycle import applied_without_approval, unhealthy_after_apply
from gatekeeper.domain.types import Decision, ReleaseRequest, parse_target
from gatekeeper.notifiers import UpstreamError
from gatekeeper.notifiers.github import REVIEW, GitHubNotifier
from gatekeeper.notifiers.gitlab import GitLabNotifier
from gatekeeper.receivers import Ignored, Inbound, Receiver, ReceiverError
from gatekeeper.schemas import decision_record_json
from gatekeeper.service import GateService
from gatekeeper.store import ConnectionLostError
from gatekeeper.store.pg_async import AsyncGateStore
from gatekeeper.store.records import REDECIDABLE, DecisionRecord, ReleaseRecord, ReleaseStatus
from gatekeeper.store.sql import StoreSession

logger = logging.getLogger(__name__)


class SourceDisabledError(Exception):
    """The source is unknown or its secret is unset (the route answers 404)."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Outbound:
    """What to send once the transaction committed."""

    source: str
    repo: str | None
    inbound: Inbound
    release_id: int
    decision: DecisionRecord


@dataclass
class WebhookService:
    gate: GateService
    receivers: Mapping[str, Receiver]
    secrets: Mapping[str, str | None]
    public_url: str
    github: GitHubNotifier | None = None
    gitlab: GitLabNotifier | None = None
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(4, thread_name_prefix="notify"))

    def receive(self, source: str, headers: Mapping[str, str], body: bytes) -> Answer:
        return self._store(source, *self._accept(source, headers, body))

    async def receive_async(self, source: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """``receive`` from the event loop: awaited on PostgreSQL (except the rare controller
        reports of applied or unhealthy, which run ``receive``'s path in a worker thread)."""
        delivery_id, parsed = self._accept(source, headers, body)
        fast = self.gate.fast
        if fast is None or (isinstance(parsed, Inbound) and parsed.observed):
            return await anyio.to_thread.run_sync(self._store, source, delivery_id, parsed)
        try:
            return await self._store_async(fast, source, delivery_id, parsed)
        except ConnectionLostError:  # the database restarted: once more, on a fresh connection
            return await self._store_async(fast, source, delivery_id, parsed)

    async def _store_async(
        self, fast: AsyncGateStore, source: str, delivery_id: str, parsed: Inbound | Ignored
    ) -> Answer:
        now = self.gate.clock()
        outbound: Outbound | None = None
        async with fast.delivery(source, delivery_id, now) as claim:
            if claim.stored is not None:
                logger.info("redelivery %s/%s answered from the store", source, delivery_id)
                return Answer(claim.stored[0], claim.stored[1])
            answer = self._before_deciding(delivery_id, parsed)
            if isinstance(parsed, Inbound):
                for people in parsed.commits:
                    await claim.record_commit(people.sha, people.author, people.merger, now)
            if answer is None:
                assert isinstance(parsed, Inbound) and parsed.request is not None  # noqa: S101 - by _before_deciding
                request = parsed.request
                record = await claim.gate(
                    request.target,
                    request.revision,
                    request.trigger,
                    dict(request.context) | {"source": source},
                    lambda _release, approvals: self.gate.decide(request, now, approvals),
                    now,
                    people=self.gate.needs_people(request.target),
                )
                self.gate.count(record)
                answer, outbound = self._decided(source, delivery_id, parsed, record.release, record.decision)
            claim.answer = (answer.status, answer.body)
        self._submit(outbound)
        return answer

    def _accept(self, source: str, headers: Mapping[str, str], body: bytes) -> tuple[str, Inbound | Ignored]:
        """Verify, parse and name the delivery (the receiver's errors propagate)."""
        receiver, secret = self.receivers.get(source), self.secrets.get(source)
        if receiver is None or not secret:
            raise SourceDisabledError(f"no webhook receiver for {source!r} is enabled")
        receiver.verify(headers, body, secret)
        parsed = receiver.parse(headers, body)
        return receiver.delivery_id(headers, body), parsed

    def _store(self, source: str, delivery_id: str, parsed: Inbound | Ignored) -> Answer:
        now = self.gate.clock()
        outbound: Outbound | None = None
        with self.gate.store.delivery(source, delivery_id, now) as claim:
            if claim.stored is not None:
                logger.info("redelivery %s/%s answered from the store", source, delivery_id)
                return Answer(claim.stored[0], claim.stored[1])
            answer, outbound = self._handle(claim.session, source, delivery_id, parsed, now)
            claim.answer = (answer.status, answer.body)
        self._submit(outbound)
        return answer

    def _before_deciding(self, delivery_id: str, parsed: Inbound | Ignored) -> Answer | None:
        """The answer of a delivery that decides nothing (None: it asks for a decision)."""
        if isinstance(parsed, Ignored):
            return Answer(202, {"ignored": True, "reason": parsed.reason, "delivery_id": delivery_id})
        if parsed.request is None:
            return Answer(200, {"delivery_id": delivery_id, "release_id": None, "decision": None})
        skipped = self._untouched(parsed)
        if skipped:
            return Answer(202, {"ignored": True, "reason": skipped, "delivery_id": delivery_id})
        return None

    def _decided(
        self,
        source: str,
        delivery_id: str,
        parsed: Inbound,
        release: ReleaseRecord,
        decision: DecisionRecord | None,
    ) -> tuple[Answer, Outbound | None]:
        body = {"delivery_id": delivery_id, "release_id": release.id, "decision": _decision_body(decision, release)}
        outbound = Outbound(source, parsed.repo, parsed, release.id, decision) if decision else None
        return Answer(200, body), outbound

    def _handle(
        self, session: StoreSession, source: str, delivery_id: str, parsed: Inbound | Ignored, now: datetime
    ) -> tuple[Answer, Outbound | None]:
        answer = self._before_deciding(delivery_id, parsed)
        if isinstance(parsed, Inbound):
            for people in parsed.commits:
                session.record_commit(people.sha, people.author, people.merger, now)
        if answer is not None:
            return answer, None
        assert isinstance(parsed, Inbound) and parsed.request is not None  # noqa: S101 - by _before_deciding
        request = parsed.request
        context = dict(request.context) | {"source": source}
        existing = session.find(request.target, request.revision) if parsed.observed else None
        decision: DecisionRecord | None
        if existing is None:
            record = session.gate(
                request.target,
                request.revision,
                request.trigger,
                context,
                lambda _release, facts: self.gate.decide(request, now, self.gate.approval_facts(request.target, facts)),
                now,
            )
            release, decision = record.release, record.decision
            self.gate.count(record)
        else:
            release, decision = existing, session.latest_decision(existing.id)
        if parsed.observed:
            release, decision = self._observe(session, parsed.observed, release, decision, now)
        return self._decided(source, delivery_id, parsed, release, decision)

    def _untouched(self, parsed: Inbound) -> str | None:
        """The reason to ignore a push that touches no path a governing policy lists."""
        configuration = self.gate.config.state.configuration
        if parsed.paths is None or parsed.request is None or configuration is None:
            return None
        governing = configuration.governing(parsed.request.target)
        if governing and not any(policy.touches(parsed.paths) for policy in governing):
            listed = sorted({pattern for policy in governing for pattern in policy.paths})
            return f"the change touches no governed path ({', '.join(listed)})"
        return None

    def _observe(
        self,
        session: StoreSession,
        observed: str,
        release: ReleaseRecord,
        decision: DecisionRecord | None,
        now: datetime,
    ) -> tuple[ReleaseRecord, DecisionRecord | None]:
        """Apply what the controller reports: applied, or unhealthy."""
        configuration = self.gate.config.state.configuration
        policy_hash = configuration.policy_hash if configuration else ""
        verdict: Decision | None = None
        if observed == "applied":
            if release.status is ReleaseStatus.APPROVED:
                return session.mark(release, ReleaseStatus.APPLIED, now), decision
            if release.status in (ReleaseStatus.PENDING, ReleaseStatus.DEFERRED):
                verdict = applied_without_approval(release.revision, release.status.value, policy_hash, now)
                release = session.mark(release, ReleaseStatus.APPLIED, now)
        elif observed == "unhealthy" and release.status in (ReleaseStatus.APPLIED, ReleaseStatus.VERIFIED):
            governing = configuration.governing(release.target) if configuration else []
            verdict = unhealthy_after_apply(release.revision, release.updated_at, governing, policy_hash, now)
        if verdict is None:
            return release, decision
        return release, session.add_decision(release.id, verdict, f"observed-{observed}")

    def answer_reviews(self) -> int:
        """The scheduler's run: answer each deferred GitHub deployment review whose release may go
        now (approved, decided again at now) or never will (rejected, superseded, rolled back).
        One process answers each review (a claim in the database); a review whose answer could not
        be sent is tried again at the next run. Returns how many were answered."""
        if self.github is None:
            return 0
        answered = 0
        for review in self.gate.store.open_reviews():
            detail = self.gate.release(review.release_id)
            if detail is None:
                continue
            release, latest = detail.release, (detail.decisions[-1] if detail.decisions else None)
            now = self.gate.clock()
            if release.status in REDECIDABLE and _review_due(release, latest, now):
                request = ReleaseRequest(parse_target(release.target), release.revision, trigger="scheduler")
                record = self.gate.gate(request)
                release, latest = record.release, record.decision
            link = f"{self.public_url.rstrip('/')}/v1/releases/{release.id}"
            answer = _review_answer(release, latest, link)
            if answer is None:
                continue
            verdict, comment = answer
            state = REVIEW[verdict]  # as GitHub names it
            if not self.gate.store.claim_review(review.id, state, now):
                continue
            try:
                self.github.review_deployment(review.callback_url, review.environment, verdict, comment)
            except UpstreamError as exc:
                self.gate.store.reopen_review(review.id)
                logger.error("deployment review of release %s not sent, retried later: %s", release.id, exc)
                continue
            logger.info("deployment review of release %s answered: %s", release.id, state)
            answered += 1
        return answered

    def _notifier(self, source: str) -> GitHubNotifier | GitLabNotifier | None:
        return self.github if source == "github" else self.gitlab if source == "gitlab" else None

    def _submit(self, outbound: Outbound | None) -> None:
        """Send what must go out in the background (only where a notifier is configured: waking a
        thread per delivery for nothing costs the event loop the GIL)."""
        if outbound is not None and self._notifier(outbound.source) is not None:
            self.pool.submit(self._notify, outbound)

    def _notify(self, outbound: Outbound) -> None:
        try:
            self._send(outbound)
        except UpstreamError as exc:
            logger.error("notification for release %s failed: %s", outbound.release_id, exc)
        except Exception:  # a background task must log, never die silently
            logger.exception("notification for release %s failed", outbound.release_id)

    def _send(self, outbound: Outbound) -> None:
        decision, request = outbound.decision, outbound.inbound.request
        assert request is not None  # noqa: S101 - outbound only exists for requests
        link = f"{self.public_url.rstrip('/')}/v1/releases/{outbound.release_id}"
        notifier = self._notifier(outbound.source)
        if notifier is None or outbound.repo is None or not request.target.startswith("git:"):
            return
        callback = outbound.inbound.callback
        if isinstance(notifier, GitHubNotifier) and callback is not None:
            comment = "; ".join(reason["message"] for reason in decision.reasons) or f"approved ({link})"
            environment = callback.environment or ""
            if not notifier.review_deployment(callback.url, environment, decision.verdict, comment):
                # Deferred: the scheduler (answer_reviews) answers it once the release may go.
                self.gate.store.add_pending_review(outbound.release_id, callback.url, environment, self.gate.clock())
            return
        body = notifier.status_body(decision.verdict, decision.reasons, link)
        key = f"{outbound.source}:status:{outbound.repo}:{request.revision}"
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        if self.gate.store.notified(key, digest):
            return
        notifier.post_status(outbound.repo, request.revision, body)
        self.gate.store.record_notification(key, digest, self.gate.clock())


def _review_due(release: ReleaseRecord, latest: DecisionRecord | None, now: datetime) -> bool:
    """Whether a waiting release's deferred review should be decided again now: it was approved
    (re-checked before it goes), or the instant its deferral named has come. A deferral that waits
    for a person is decided again by the approval itself."""
    if release.status is ReleaseStatus.APPROVED or latest is None:
        return True
    return latest.not_before is not None and now >= latest.not_before


def _review_answer(release: ReleaseRecord, latest: DecisionRecord | None, link: str) -> tuple[str, str] | None:
    """The verdict and comment a deferred review gets now (None: not yet)."""
    reasons = "; ".join(reason["message"] for reason in latest.reasons) if latest is not None else ""
    if release.status is ReleaseStatus.APPROVED and latest is not None and latest.verdict == "approve":
        return "approve", f"approved by gatekeeper ({link})" + (f": {reasons}" if reasons else "")
    if release.status is ReleaseStatus.SUPERSEDED:
        return "rollback", f"superseded by a newer revision of {release.target} ({link})"
    if release.status in (ReleaseStatus.REJECTED, ReleaseStatus.ROLLED_BACK):
        return "rollback", f"{release.status.value} ({link})" + (f": {reasons}" if reasons else "")
    return None


def _decision_body(record: DecisionRecord | None, release: ReleaseRecord) -> dict[str, Any] | None:
    if record is None:
        return None
    body = decision_record_json(record, target=release.target, revision=release.revision)
    body["status"] = release.status.value
    return body


__all__ = ["Answer", "ReceiverError", "SourceDisabledError", "WebhookService"]

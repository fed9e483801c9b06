"""Inbound webhooks, orchestrated: verify -> allow-list -> parse -> gather facts -> one transaction.

Receivers (one per source) turn a request into an ``Inbound``. Facts are gathered first, outside
any transaction (for the push's own release and for each release it announces: the governed
targets deploying from the pushed repository whose source path it touched, ``announce``); then
one transaction claims the delivery (a redelivery finds the stored answer
and decides nothing twice), records who touched the commits, decides through the service's one
decision path and stores the answer. What must go out (commit statuses, deployment reviews) is an
outbox row of that transaction, sent by the scheduler after commit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from gatekeeper import effects
from gatekeeper.announce import Announcer
from gatekeeper.domain.lifecycle import applied_without_approval, unhealthy_after_apply, verification_deadline
from gatekeeper.domain.records import DecisionRecord, GateRecord, ReleaseRecord
from gatekeeper.domain.releases import ReleaseStatus, transition
from gatekeeper.domain.types import Decision, ReleaseRequest
from gatekeeper.facts import Gathered
from gatekeeper.ports import StoredAnswer, StoreTransaction
from gatekeeper.receivers import Ignored, Inbound, Receiver, ReceiverError
from gatekeeper.schemas import decision_record_json
from gatekeeper.service import GateService
from gatekeeper.store import ConnectionLostError

logger = logging.getLogger(__name__)


class SourceDisabledError(Exception):
    """The source is unknown or its secret is unset (the route answers 404)."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]


@dataclass
class WebhookService:
    gate: GateService
    receivers: Mapping[str, Receiver]
    secrets: Mapping[str, str | None]
    announcer: Announcer | None = None  # a push announces releases of the targets deploying from it

    def receive(self, source: str, headers: Mapping[str, str], body: bytes) -> Answer:
        delivery_id, parsed = self._accept(source, headers, body)
        now = self.gate.clock()
        early = self._before_deciding(delivery_id, parsed)
        gathered: Gathered | None = None
        if early is None and isinstance(parsed, Inbound) and parsed.request is not None:
            gathered = self.gate.gather(parsed.request, now)  # step 1: outside any transaction
        announced = self._announced(parsed, now)  # the same, for every target the push concerns
        try:
            return self._store(source, delivery_id, parsed, early, gathered, now, announced)
        except ConnectionLostError:  # the database restarted: once more (a redelivery finds what was)
            return self._store(source, delivery_id, parsed, early, gathered, now, announced)

    def _announced(self, parsed: Inbound | Ignored, now: datetime) -> list[tuple[ReleaseRequest, Gathered]]:
        """The releases a push announces, each with its facts: the new revision of every governed
        target that deploys from the pushed repository and whose source path the push touched."""
        if self.announcer is None or not isinstance(parsed, Inbound) or parsed.request is None:
            return []
        if parsed.paths is None or not parsed.repo_urls:
            return []
        pushed = parsed.request
        targets = self.announcer.targets(parsed.repo_urls, parsed.paths, exclude=pushed.target)
        requests = [ReleaseRequest(target, pushed.revision, trigger=f"{pushed.trigger}-announce") for target in targets]
        return list(zip(requests, self.gate.gather_many(requests, now), strict=True))

    def _store(
        self,
        source: str,
        delivery_id: str,
        parsed: Inbound | Ignored,
        early: Answer | None,
        gathered: Gathered | None,
        now: datetime,
        announced: Sequence[tuple[ReleaseRequest, Gathered]] = (),
    ) -> Answer:
        record: GateRecord | None = None
        records: list[GateRecord] = []
        with self.gate.store.transaction() as tx:
            stored = tx.claim_delivery(source, delivery_id, now)
            if stored is not None:
                logger.info("redelivery %s/%s answered from the store", source, delivery_id)
                return Answer(stored.status, stored.body)
            if isinstance(parsed, Inbound):
                for people in parsed.commits:
                    tx.record_commit(people.sha, people.author, people.merger, people.identities, now)
            answer = early
            if answer is None:
                assert isinstance(parsed, Inbound)  # noqa: S101 - by _before_deciding
                record = self._decide(tx, source, parsed, gathered, now)
                answer = self._answer(delivery_id, record.release, record.decision)
            if announced:  # one delivery, one transaction, however many targets
                assert isinstance(parsed, Inbound) and parsed.request is not None  # noqa: S101 - by _announced
                context = {"source": source, "announced_by": parsed.request.target}
                records = self.gate.announce_in(tx, announced, now, context=context)
                answer = Answer(answer.status, answer.body | {"announced": [_announced_body(r) for r in records]})
            tx.answer_delivery(source, delivery_id, StoredAnswer(answer.status, answer.body))
        for done in (record, *records):
            if done is not None:
                self.gate.committed(done)
        return answer

    def _accept(self, source: str, headers: Mapping[str, str], body: bytes) -> tuple[str, Inbound | Ignored]:
        """Verify, parse and name the delivery (the receiver's errors propagate)."""
        receiver, secret = self.receivers.get(source), self.secrets.get(source)
        if receiver is None or not secret:
            raise SourceDisabledError(f"no webhook receiver for {source!r} is enabled")
        receiver.verify(headers, body, secret)
        parsed = receiver.parse(headers, body)
        return receiver.delivery_id(headers, body), parsed

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

    def _decide(
        self, tx: StoreTransaction, source: str, parsed: Inbound, gathered: Gathered | None, now: datetime
    ) -> GateRecord:
        request = parsed.request
        assert request is not None  # noqa: S101 - by _before_deciding
        context: dict[str, Any] = dict(request.context) | {"source": source}
        if parsed.repo and parsed.callback is None:  # a deployment review answers instead of a status
            context["repo"] = parsed.repo
        if parsed.callback is not None:
            context[effects.WAITED_ON] = True
        assert gathered is not None  # noqa: S101 - gathered for every request that decides
        if parsed.observed:
            return self._observe(tx, parsed.observed, request, gathered, source, context, now)
        record = self.gate.decide_in(tx, request, gathered, now, context=context)
        if parsed.callback is not None and parsed.callback.kind == "github-deployment" and record.decided_now:
            review = effects.deployment_review(record.release, parsed.callback.url, parsed.callback.environment or "")
            if tx.enqueue(review, now):
                record = replace(record, actions=True)
        return record

    def _answer(self, delivery_id: str, release: ReleaseRecord, decision: DecisionRecord | None) -> Answer:
        body = {"delivery_id": delivery_id, "release_id": release.id, "decision": _decision_body(decision, release)}
        return Answer(200, body)

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
        tx: StoreTransaction,
        observed: str,
        request: ReleaseRequest,
        gathered: Gathered,
        source: str,
        context: dict[str, Any],
        now: datetime,
    ) -> GateRecord:
        """What the controller reports: applied, or unhealthy. A release it reports on that gatekeeper
        never saw is decided first (so an unapproved sync is recognised as such)."""
        release = tx.find_release(request.target, request.revision, lock=True)
        if release is None:
            release = self.gate.decide_in(tx, request, gathered, now, context=context).release
        latest = tx.latest_decision(release.id)
        verdict: Decision | None = None
        policy_hash = self.gate.policy_hash()
        if observed == "applied":
            if release.status in (ReleaseStatus.PENDING, ReleaseStatus.DEFERRED):
                verdict = applied_without_approval(release.revision, release.status.value, policy_hash, now)
            if release.status in (ReleaseStatus.APPROVED, ReleaseStatus.PENDING, ReleaseStatus.DEFERRED):
                approved = release.status is ReleaseStatus.APPROVED
                release = tx.set_status(release, transition(release.status, ReleaseStatus.APPLIED), now)
                if approved:  # verified at the end of its verification period (the deferrals loop)
                    deadline = verification_deadline(now, self.gate.governing(release.target))
                    release = tx.set_not_before(release, deadline)
        elif observed == "unhealthy" and release.status is ReleaseStatus.APPLIED:
            # Applied at its updated_at (nothing else moves an applied release). After verified, the
            # period rule no longer applies: a later unhealthy report rolls nothing back by itself.
            governing = self.gate.governing(release.target)
            verdict = unhealthy_after_apply(release.revision, release.updated_at, governing, policy_hash, now)
            if verdict is None and release.not_before is not None and now < release.not_before:
                release = tx.set_not_before(release, None)  # unhealthy within its period: never verified
        if verdict is None:
            assert latest is not None  # noqa: S101 - every release has its first decision
            return GateRecord(release, latest, decided_now=False)
        return self.gate.record(tx, release, verdict, f"observed-{observed}", now, actor=source)


def _announced_body(record: GateRecord) -> dict[str, Any]:
    return {"target": record.release.target, "release_id": record.release.id, "verdict": record.decision.verdict}


def _decision_body(record: DecisionRecord | None, release: ReleaseRecord) -> dict[str, Any] | None:
    if record is None:
        return None
    body = decision_record_json(record, target=release.target, revision=release.revision)
    body["status"] = release.status.value
    return body


__all__ = ["Answer", "ReceiverError", "SourceDisabledError", "WebhookService"]

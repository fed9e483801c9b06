"""The revert gatekeeper pushes for a rollback is its own release, approved (DESIGN §3 Rollback).

The ``rollback`` handler calls ``RevertRecorder`` with the revert's sha once it is pushed: the
revert is decided through the service's one decision path, in one short transaction, as a release
of the rolled-back target. Where it restores the last approved state (``approved``), its context
names the release it rolls back and the offending commit, and ``decide`` approves it (reason
``rollback``) whatever the calendar, freezes, drift or provenance say; the decision is audited
(actor ``gatekeeper``) and causes what any approval causes (a Flux target resumed). A gate call
that came between the push and this finds its release given that context here. Any other revert
is an ordinary release, decided as a person's commit is. Facts are gathered before the transaction.
"""

from __future__ import annotations

import logging

from gatekeeper.domain.lifecycle import RollbackRevert
from gatekeeper.domain.records import ReleaseRecord
from gatekeeper.domain.types import ReleaseRequest, TargetKey
from gatekeeper.service import GateService

logger = logging.getLogger(__name__)


class RevertRecorder:
    def __init__(self, service: GateService) -> None:
        self.service = service

    def __call__(self, rolled_back: ReleaseRecord, revert: str, approved: bool) -> None:
        service = self.service
        request = ReleaseRequest(TargetKey(rolled_back.target), revert, trigger=f"rollback:{rolled_back.id}")
        own = RollbackRevert(rolled_back.id, rolled_back.target, rolled_back.revision).context()
        context = own if approved else {"reverts_release": rolled_back.id}
        now = service.clock()
        gathered = service.gather(request, now)  # outside any transaction
        with service.store.transaction() as tx:
            raced = tx.find_release(request.target, request.revision, lock=True) if approved else None
            if raced is not None and raced.context != context:  # a gate call between push and here
                tx.add_context(raced, own)
            record = service.decide_in(tx, request, gathered, now, context=context, actor="gatekeeper")
        service.committed(record)
        logger.info(
            "revert %s of release %s recorded as release %s: %s",
            revert[:12], rolled_back.id, record.release.id, record.decision.verdict,
            extra={"target": rolled_back.target, "release_id": record.release.id},
        )  # fmt: skip

"""The revert gatekeeper pushes for a rollback is its own release, approved (DESIGN §3 Rollback).

The ``rollback`` handler calls ``RevertRecorder`` with the revert's sha after the commit exists
and before it is pushed: the revert is decided through the service's one decision path, in one
short transaction, as a release of the rolled-back target whose context names the release it
rolls back and the offending commit. ``decide`` approves it (reason ``rollback``) whatever the
calendar, freezes, drift or provenance say; the decision is audited (actor ``gatekeeper``) and
causes what any approval causes (a Flux target resumed). Only that sha on that target: a person's
commit during the freeze is decided as before. Facts are gathered before the transaction.
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

    def __call__(self, rolled_back: ReleaseRecord, revert: str) -> None:
        service = self.service
        request = ReleaseRequest(TargetKey(rolled_back.target), revert, trigger=f"rollback:{rolled_back.id}")
        context = RollbackRevert(rolled_back.id, rolled_back.target, rolled_back.revision).context()
        now = service.clock()
        gathered = service.gather(request, now)  # outside any transaction
        with service.store.transaction() as tx:
            record = service.decide_in(tx, request, gathered, now, context=context, actor="gatekeeper")
        service.committed(record)
        logger.info(
            "revert %s of release %s recorded as release %s: %s",
            revert[:12], rolled_back.id, record.release.id, record.decision.verdict,
            extra={"target": rolled_back.target, "release_id": record.release.id},
        )  # fmt: skip

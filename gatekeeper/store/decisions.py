"""Decisions: each one appended with the reasons it was made on; the latest one is the answer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from gatekeeper.domain.records import DecisionRecord, ReleaseRecord
from gatekeeper.domain.releases import ReleaseStatus
from gatekeeper.domain.types import Decision
from gatekeeper.store.rows import decision_record, decision_values
from gatekeeper.store.tables import decisions, releases


class DecisionRows:
    connection: Connection

    def add_decision(
        self, release: ReleaseRecord, decision: Decision, trigger: str, status: ReleaseStatus, now: datetime
    ) -> DecisionRecord:
        """Store ``decision``; the release takes ``status`` (checked by the state machine before)
        and keeps the decision's ``not_before`` (the scheduler's due list), in one statement."""
        values = decision_values(release.id, decision, trigger)
        decision_id = self.connection.execute(insert(decisions).values(**values).returning(decisions.c.id)).scalar_one()
        moved = {"status": status.value, "updated_at": now} if status is not release.status else {}
        if moved or decision.not_before != release.not_before:
            self.connection.execute(
                update(releases).where(releases.c.id == release.id).values(not_before=decision.not_before, **moved)
            )
        return DecisionRecord(id=decision_id, **values)

    def latest_decision(self, release_id: int) -> DecisionRecord | None:
        row = self.connection.execute(
            select(decisions).where(decisions.c.release_id == release_id).order_by(decisions.c.id.desc()).limit(1)
        ).first()
        return decision_record(row._mapping) if row is not None else None

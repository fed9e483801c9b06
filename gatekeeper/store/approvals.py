"""Approvals given on releases, and who touched each commit (the facts four eyes compares)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, insert, select

from gatekeeper.domain.approvals import Approval
from gatekeeper.ports import People
from gatekeeper.store.dialect import upsert
from gatekeeper.store.rows import approval_of
from gatekeeper.store.tables import approvals, commits


class ApprovalRows:
    connection: Connection

    def approvals_of(self, release_id: int) -> tuple[Approval, ...]:
        rows = self.connection.execute(
            select(approvals).where(approvals.c.release_id == release_id).order_by(approvals.c.id)
        ).all()
        return tuple(approval_of(row._mapping) for row in rows)

    def add_approval(self, release_id: int, approval: Approval, now: datetime) -> None:
        self.connection.execute(
            insert(approvals).values(
                release_id=release_id,
                approver=approval.approver,
                roles=sorted(approval.roles),
                reason=approval.reason,
                break_glass=approval.break_glass,
                created_at=now,
            )
        )

    def people_of(self, sha: str) -> People:
        row = self.connection.execute(select(commits.c.author, commits.c.merger).where(commits.c.sha == sha)).first()
        return People(row.author, row.merger) if row is not None else People()

    def record_commit(self, sha: str, author: str | None, merger: str | None, now: datetime) -> None:
        """Remember who wrote and merged a commit; later events fill in what earlier ones lacked
        (one upsert: concurrent events on one SHA cannot race)."""
        statement = upsert(self.connection, commits).values(
            sha=sha, recorded_at=now, author=author or None, merger=merger or None
        )
        self.connection.execute(
            statement.on_conflict_do_update(
                index_elements=[commits.c.sha],
                set_={
                    "author": func.coalesce(commits.c.author, statement.excluded.author),
                    "merger": func.coalesce(statement.excluded.merger, commits.c.merger),
                    "recorded_at": statement.excluded.recorded_at,
                },
            )
        )

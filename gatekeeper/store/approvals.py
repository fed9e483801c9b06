"""Approvals given on releases, and who touched each commit (the facts four eyes compares)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, func, insert, select

from gatekeeper.domain.approvals import Approval, identity_set
from gatekeeper.ports import People
from gatekeeper.store.dialect import insert_ignore, upsert
from gatekeeper.store.rows import approval_of
from gatekeeper.store.tables import approvals, commit_people, commits


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
                identities=sorted(approval.person),
                drift_digests=sorted(approval.acknowledged) or None,
            )
        )

    def people_of(self, sha: str) -> People:
        """Who touched ``sha``, in one statement (every event writes both tables together)."""
        rows = self.connection.execute(
            select(commits.c.author, commits.c.merger, commit_people.c.identity)
            .select_from(commits.outerjoin(commit_people, commit_people.c.sha == commits.c.sha))
            .where(commits.c.sha == sha)
        ).all()
        if not rows:
            return People()
        touched = frozenset(row.identity for row in rows if row.identity is not None)
        return People(rows[0].author, rows[0].merger, touched)

    def record_commit(
        self, sha: str, author: str | None, merger: str | None, identities: Iterable[str], now: datetime
    ) -> None:
        """Remember who touched a commit. The identities only grow (insert, never replace); the
        author and merger shown are the first an event named (a later push of the merge commit,
        whose commit author is the merger, does not overwrite the pull request's author). One
        statement each: concurrent events on one SHA cannot race."""
        rows = [
            {"sha": sha, "identity": identity[:320], "recorded_at": now}
            for identity in sorted(identity_set((*identities, author, merger)))
        ]
        if rows:
            self.connection.execute(insert_ignore(self.connection, commit_people).values(rows))
        statement = upsert(self.connection, commits).values(
            sha=sha, recorded_at=now, author=author or None, merger=merger or None
        )
        self.connection.execute(
            statement.on_conflict_do_update(
                index_elements=[commits.c.sha],
                set_={
                    "author": func.coalesce(commits.c.author, statement.excluded.author),
                    "merger": func.coalesce(commits.c.merger, statement.excluded.merger),
                    "recorded_at": statement.excluded.recorded_at,
                },
            )
        )

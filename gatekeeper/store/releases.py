"""Releases: find (locked or not), create under the target's lock, supersede, move, list.

Status changes are checked by the domain's state machine before they reach this module.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, select, text, update

from gatekeeper.domain.records import DecidedRelease, DecisionRecord, ReleaseRecord
from gatekeeper.domain.releases import REDECIDABLE, ReleaseStatus
from gatekeeper.store.dialect import TARGET_LOCK_CLASS, for_update, is_postgresql, lock_target, one_of
from gatekeeper.store.rows import decision_values, release_record
from gatekeeper.store.tables import commits, decisions, releases

OPEN_STATUSES = tuple(status.value for status in REDECIDABLE)
INSERT_RELEASES = text(
    'INSERT INTO releases (target, revision, status, "trigger", context, created_at, updated_at, not_before) '
    "SELECT t, r, s, tr, CAST(c AS json), :now, :now, nb FROM unnest(CAST(:targets AS text[]), "
    "CAST(:revisions AS text[]), CAST(:statuses AS text[]), CAST(:triggers AS text[]), CAST(:contexts AS text[]), "
    "CAST(:not_befores AS timestamptz[])) AS u(t, r, s, tr, c, nb) RETURNING *"
)
INSERT_DECISIONS = text(
    'INSERT INTO decisions (release_id, verdict, reasons, not_before, requires, policy_hash, would_defer, "trigger", '
    "decided_at) SELECT i, v, CAST(re AS json), nb, CAST(rq AS json), ph, CAST(wd AS json), tr, da FROM unnest("
    "CAST(:release_ids AS bigint[]), CAST(:verdicts AS text[]), CAST(:reasons AS text[]), "
    "CAST(:not_befores AS timestamptz[]), CAST(:requires AS text[]), CAST(:policy_hashes AS text[]), "
    "CAST(:would_defers AS text[]), CAST(:triggers AS text[]), CAST(:decided_ats AS timestamptz[])) "
    "AS u(i, v, re, nb, rq, ph, wd, tr, da) RETURNING release_id, id"
)
# The target locks of lock_target, taken for many targets in sorted order (the subquery orders them).
TARGET_LOCKS = text(
    "SELECT pg_advisory_xact_lock(:classid, hashtext(t)) FROM (SELECT t FROM unnest(CAST(:targets AS text[])) AS u(t) "
    "ORDER BY t) AS ordered"
)
WITH_PEOPLE = select(releases, commits.c.author, commits.c.merger).select_from(
    releases.outerjoin(commits, commits.c.sha == releases.c.revision)
)


class ReleaseRows:
    """The releases table, inside one transaction (``self.connection``)."""

    connection: Connection

    def _one(self, where: Any, *, lock: bool) -> ReleaseRecord | None:
        if lock and is_postgresql(self.connection):
            # Lock the release row alone (an outer join cannot be locked). Who touched its revision
            # is read where a decision needs it (people_of), not on every locked read.
            row = self.connection.execute(select(releases).where(where).with_for_update()).first()
            return release_record(row._mapping) if row is not None else None
        row = self.connection.execute(WITH_PEOPLE.where(where)).first()
        return release_record(row._mapping) if row is not None else None

    def find_release(self, target: str, revision: str, *, lock: bool) -> ReleaseRecord | None:
        return self._one(and_(releases.c.target == target, releases.c.revision == revision), lock=lock)

    def release_by_id(self, release_id: int, *, lock: bool) -> ReleaseRecord | None:
        return self._one(releases.c.id == release_id, lock=lock)

    def lock_target(self, target: str) -> None:
        lock_target(self.connection, target)

    def create_release(
        self,
        target: str,
        revision: str,
        trigger: str,
        context: dict[str, Any],
        now: datetime,
        *,
        status: ReleaseStatus = ReleaseStatus.PENDING,
        not_before: datetime | None = None,
    ) -> ReleaseRecord:
        """A new release (the caller holds the target's lock and found none), in the status its
        first decision gives it."""
        values = {
            "target": target,
            "revision": revision,
            "status": status.value,
            "not_before": not_before,
            "trigger": trigger,
            "context": context or None,
            "created_at": now,
            "updated_at": now,
        }
        row = self.connection.execute(insert(releases).values(**values).returning(*releases.c)).one()
        return release_record(row._mapping)

    def supersede_open(self, target: str, keep_id: int, now: datetime) -> int:
        """Every other open release of ``target`` becomes superseded, in one statement (the
        caller holds the target's lock, so at most one other is open)."""
        superseded = self.connection.execute(
            update(releases)
            .where(releases.c.target == target, releases.c.id != keep_id, releases.c.status.in_(OPEN_STATUSES))
            .values(status=ReleaseStatus.SUPERSEDED.value, updated_at=now, not_before=None)
        )
        return superseded.rowcount

    def add_context(self, release: ReleaseRecord, context: dict[str, Any]) -> ReleaseRecord:
        merged = dict(release.context or {}) | context
        self.connection.execute(update(releases).where(releases.c.id == release.id).values(context=merged))
        return replace(release, context=merged)

    # --- set-based: a push announcing many releases in one transaction ----------------------------

    def find_releases(self, targets: Sequence[str], revision: str, *, lock: bool) -> dict[str, ReleaseRecord]:
        """The releases of ``revision`` of any of ``targets``, by target, in one statement."""
        if not targets:
            return {}
        query = select(releases).where(
            one_of(self.connection, releases.c.target, list(targets)), releases.c.revision == revision
        )
        rows = self.connection.execute(for_update(self.connection, query) if lock else query).all()
        return {row.target: release_record(row._mapping) for row in rows}

    def lock_targets(self, targets: Sequence[str]) -> None:
        """``lock_target`` for many, in one statement (in order: two announcers cannot deadlock)."""
        if targets and is_postgresql(self.connection):
            self.connection.execute(TARGET_LOCKS, {"classid": TARGET_LOCK_CLASS, "targets": sorted(set(targets))})

    def create_decided(
        self, items: Sequence[DecidedRelease], now: datetime
    ) -> list[tuple[ReleaseRecord, DecisionRecord]]:
        """New releases already decided: the releases (at the status their decision moved them to),
        the open releases of those targets superseded, the decisions; one statement each."""
        if not items:
            return []
        if is_postgresql(self.connection):
            return self._create_decided_pg(items, now)
        rows = self.connection.execute(
            insert(releases).returning(*releases.c, sort_by_parameter_order=True),
            [
                {
                    "target": item.target,
                    "revision": item.revision,
                    "status": item.status.value,
                    "trigger": item.trigger,
                    "context": item.context or None,
                    "created_at": now,
                    "updated_at": now,
                    "not_before": item.decision.not_before,
                }
                for item in items
            ],
        ).all()
        created = [release_record(row._mapping) for row in rows]
        self._supersede_many([release.target for release in created], [release.id for release in created], now)
        values = [
            decision_values(release.id, item.decision, item.trigger)
            for release, item in zip(created, items, strict=True)
        ]
        ids = self.connection.execute(
            insert(decisions).returning(decisions.c.id, sort_by_parameter_order=True), values
        ).scalars().all()
        return [
            (release, DecisionRecord(id=decision_id, **value))
            for release, decision_id, value in zip(created, ids, values, strict=True)
        ]

    def _create_decided_pg(
        self, items: Sequence[DecidedRelease], now: datetime
    ) -> list[tuple[ReleaseRecord, DecisionRecord]]:
        """The same on PostgreSQL, with arrays: a few statements of a few hundred bytes each, where
        a multi-row VALUES of 1,500 rows costs more to build and parse than to run."""
        rows = self.connection.execute(
            INSERT_RELEASES,
            {
                "targets": [item.target for item in items],
                "revisions": [item.revision for item in items],
                "statuses": [item.status.value for item in items],
                "triggers": [item.trigger for item in items],
                "contexts": [json.dumps(item.context) if item.context else None for item in items],
                "not_befores": [item.decision.not_before for item in items],
                "now": now,
            },
        ).all()
        by_target = {row.target: release_record(row._mapping) for row in rows}
        created = [by_target[item.target] for item in items]
        self._supersede_many(list(by_target), [release.id for release in created], now)
        values = [
            decision_values(release.id, item.decision, item.trigger)
            for release, item in zip(created, items, strict=True)
        ]
        ids: dict[int, int] = {
            release_id: decision_id
            for release_id, decision_id in self.connection.execute(
                INSERT_DECISIONS,
                {
                    "release_ids": [value["release_id"] for value in values],
                    "verdicts": [value["verdict"] for value in values],
                    "reasons": [json.dumps(value["reasons"]) for value in values],
                    "not_befores": [value["not_before"] for value in values],
                    "requires": [json.dumps(value["requires"]) for value in values],
                    "policy_hashes": [value["policy_hash"] for value in values],
                    "would_defers": [_json_or_none(value["would_defer"]) for value in values],
                    "triggers": [value["trigger"] for value in values],
                    "decided_ats": [value["decided_at"] for value in values],
                },
            ).all()
        }
        pairs = zip(created, values, strict=True)
        return [(release, DecisionRecord(id=ids[release.id], **value)) for release, value in pairs]

    def _supersede_many(self, targets: list[str], keep: list[int], now: datetime) -> None:
        older = select(releases.c.id).where(
            one_of(self.connection, releases.c.target, targets),
            one_of(self.connection, releases.c.id, keep, negate=True),
            releases.c.status.in_(OPEN_STATUSES),
        )
        ids = list(self.connection.execute(for_update(self.connection, older.order_by(releases.c.id))).scalars())
        if ids:
            self.connection.execute(
                update(releases)
                .where(one_of(self.connection, releases.c.id, ids))
                .values(status=ReleaseStatus.SUPERSEDED.value, updated_at=now, not_before=None)
            )

    def set_status(self, release: ReleaseRecord, status: ReleaseStatus, now: datetime) -> ReleaseRecord:
        if status is release.status:
            return release
        self.connection.execute(
            update(releases).where(releases.c.id == release.id).values(status=status.value, updated_at=now)
        )
        return replace(release, status=status, updated_at=now)

    def set_not_before(self, release: ReleaseRecord, not_before: datetime | None) -> ReleaseRecord:
        """An applied release's ``not_before`` is the end of its verification period (None: it is
        not verified by the period rule)."""
        if not_before != release.not_before:
            self.connection.execute(update(releases).where(releases.c.id == release.id).values(not_before=not_before))
        return replace(release, not_before=not_before)


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value)

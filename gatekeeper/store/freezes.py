"""Ad-hoc freezes: started, lifted and read (the decision path reads them through a short cache).

A freeze is never deleted: lifting it records who lifted it, when and why, and windows keep the
part it was in force.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, insert, or_, select, update

from gatekeeper.domain.freezes import Freeze
from gatekeeper.store.dialect import for_update, utc
from gatekeeper.store.rows import EPOCH
from gatekeeper.store.tables import freezes


def freeze_record(m: Mapping[Any, Any]) -> Freeze:
    return Freeze(
        id=m["id"],
        targets=tuple(m["targets"]),
        start=utc(m["starts_at"]) or EPOCH,
        end=utc(m["ends_at"]),
        reason=m["reason"],
        created_by=m["created_by"],
        created_at=utc(m["created_at"]) or EPOCH,
        code=m["code"],
        lifted_at=utc(m["lifted_at"]),
        lifted_by=m["lifted_by"],
        lift_reason=m["lift_reason"],
    )


class FreezeRows:
    """The freezes table, inside one transaction (``self.connection``)."""

    connection: Connection

    def add_freeze(
        self,
        targets: tuple[str, ...],
        start: datetime,
        end: datetime | None,
        reason: str,
        code: str,
        created_by: str,
        now: datetime,
    ) -> Freeze:
        values = {
            "targets": list(targets),
            "starts_at": start,
            "ends_at": end,
            "reason": reason,
            "code": code,
            "created_by": created_by,
            "created_at": now,
        }
        row = self.connection.execute(insert(freezes).values(**values).returning(*freezes.c)).one()
        return freeze_record(row._mapping)

    def freeze_by_id(self, freeze_id: int, *, lock: bool) -> Freeze | None:
        query = select(freezes).where(freezes.c.id == freeze_id)
        row = self.connection.execute(for_update(self.connection, query) if lock else query).first()
        return freeze_record(row._mapping) if row is not None else None

    def lift_freeze(self, freeze: Freeze, who: str, reason: str, now: datetime) -> Freeze:
        row = self.connection.execute(
            update(freezes)
            .where(freezes.c.id == freeze.id)
            .values(lifted_at=now, lifted_by=who, lift_reason=reason)
            .returning(*freezes.c)
        ).one()
        return freeze_record(row._mapping)


def listing(ending_after: datetime | None, before_id: int | None, limit: int | None) -> Select[Any]:
    """Freezes newest first; ``ending_after``: only those still closing the gate after it (not
    lifted by then, and with no end or a later one)."""
    query = select(freezes).order_by(freezes.c.id.desc())
    if ending_after is not None:
        query = query.where(
            or_(freezes.c.ends_at.is_(None), freezes.c.ends_at > ending_after),
            or_(freezes.c.lifted_at.is_(None), freezes.c.lifted_at > ending_after),
        )
    if before_id is not None:
        query = query.where(freezes.c.id < before_id)
    return query.limit(limit) if limit is not None else query


def read_freezes(
    connection: Connection, *, ending_after: datetime | None, before_id: int | None, limit: int | None
) -> list[Freeze]:
    return [freeze_record(row._mapping) for row in connection.execute(listing(ending_after, before_id, limit))]

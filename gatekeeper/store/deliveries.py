"""Webhook deliveries: the unique (source, delivery id) key makes a redelivery find the stored answer.

A concurrent redelivery waits on the key until the first delivery's transaction ends, then reads
its answer: one release, one decision.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, select, update

from gatekeeper.ports import StoredAnswer
from gatekeeper.store.dialect import insert_ignore
from gatekeeper.store.tables import deliveries


class DeliveryRows:
    connection: Connection

    def claim_delivery(self, source: str, delivery_id: str, now: datetime) -> StoredAnswer | None:
        """None when this transaction claimed the delivery; the stored answer of a redelivery."""
        claimed = self.connection.execute(
            insert_ignore(self.connection, deliveries)
            .values(source=source, delivery_id=delivery_id, status_code=0, response={}, received_at=now)
            .returning(deliveries.c.id)
        ).scalar_one_or_none()
        if claimed is not None:
            return None
        row = self.connection.execute(
            select(deliveries.c.status_code, deliveries.c.response).where(
                deliveries.c.source == source, deliveries.c.delivery_id == delivery_id
            )
        ).one()
        return StoredAnswer(row.status_code, row.response)

    def answer_delivery(self, source: str, delivery_id: str, answer: StoredAnswer) -> None:
        self.connection.execute(
            update(deliveries)
            .where(deliveries.c.source == source, deliveries.c.delivery_id == delivery_id)
            .values(status_code=answer.status, response=answer.body)
        )


def prune(connection: Connection, older_than: datetime) -> int:
    result = connection.execute(delete(deliveries).where(deliveries.c.received_at < older_than))
    return int(result.rowcount or 0)

"""The audit log: records appended inside a request's transaction (``audit_pending``) and linked
into the hash chain (``audit``) by one chainer at a time, in the order they became visible.

Requests never queue on a global lock: they insert a pending row; the chainer (its own loop in
every replica, one at a time through an advisory lock on PostgreSQL) moves them into the chain.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, text, update

from gatekeeper.audit import GENESIS, chain_hash
from gatekeeper.store.dialect import is_postgresql
from gatekeeper.store.rows import audit_instant
from gatekeeper.store.tables import audit, audit_head, audit_pending

AUDIT_LOCK = 0x6761_7465  # "gate": the one advisory lock that orders audit appends
LOCK_AUDIT = text("SELECT pg_advisory_xact_lock(:key)")
TRY_LOCK_AUDIT = text("SELECT pg_try_advisory_xact_lock(:key)")
INSERT_AUDITS = text(
    "INSERT INTO audit_pending (at, kind, actor, subject, data, break_glass) "
    "SELECT :now, :kind, a, s, CAST(d AS json), g FROM unnest(CAST(:actors AS text[]), CAST(:subjects AS text[]), "
    "CAST(:datas AS text[]), CAST(:glasses AS boolean[])) AS u(a, s, d, g)"
)
CHAIN_COLUMNS = ("seq", "at", "kind", "actor", "subject", "data", "prev_hash", "hash", "break_glass")
CHAIN_COPY = f"COPY audit ({', '.join(CHAIN_COLUMNS)}) FROM STDIN"


class AuditRows:
    connection: Connection

    def append_audit(
        self,
        kind: str,
        actor: str,
        subject: str | None,
        data: dict[str, Any],
        now: datetime,
        *,
        break_glass: bool = False,
    ) -> None:
        """Record an audit entry in this transaction; the chainer links it into the chain."""
        values = {"at": now, "kind": kind, "actor": actor, "subject": subject, "data": data, "break_glass": break_glass}
        self.connection.execute(insert(audit_pending).values(**values))


    def append_audits(
        self, kind: str, entries: Sequence[tuple[str, str | None, dict[str, Any], bool]], now: datetime
    ) -> None:
        """Many audit entries of one kind (actor, subject, data, break_glass), in one statement."""
        if entries and is_postgresql(self.connection):
            self.connection.execute(
                INSERT_AUDITS,
                {
                    "now": now,
                    "kind": kind,
                    "actors": [actor for actor, _, _, _ in entries],
                    "subjects": [subject for _, subject, _, _ in entries],
                    "datas": [json.dumps(data) for _, _, data, _ in entries],
                    "glasses": [glass for _, _, _, glass in entries],
                },
            )
        elif entries:
            rows = [
                {"at": now, "kind": kind, "actor": actor, "subject": subject, "data": data, "break_glass": glass}
                for actor, subject, data, glass in entries
            ]
            self.connection.execute(insert(audit_pending), rows)


def take_chain_lock(connection: Connection, *, wait: bool) -> bool:
    """The chainer's lock (PostgreSQL advisory; SQLite: the write lock the transaction holds)."""
    if not is_postgresql(connection):
        return True
    return connection.execute(LOCK_AUDIT if wait else TRY_LOCK_AUDIT, {"key": AUDIT_LOCK}).scalar() is not False


def chain_pending(connection: Connection, limit: int, key: bytes | None = None) -> int:
    """Move committed pending records into the chain, oldest first (caller holds the chain lock).
    Each record's hash is an HMAC-SHA256 under ``key`` (AUDIT_KEY), plain SHA-256 without one."""
    pending = connection.execute(select(audit_pending).order_by(audit_pending.c.id).limit(limit)).all()
    if not pending:
        return 0
    seq, previous = read_head(connection)
    rows = []
    for entry in pending:
        seq += 1
        record = {
            "seq": seq,
            "at": audit_instant(entry.at),
            "kind": entry.kind,
            "actor": entry.actor,
            "subject": entry.subject,
            "data": entry.data,
            "break_glass": bool(entry.break_glass),
        }
        digest = chain_hash(previous, record, key)
        rows.append({**record, "at": entry.at, "prev_hash": previous, "hash": digest})
        previous = digest
    if is_postgresql(connection):
        _copy_into_chain(connection, rows)
    else:
        connection.execute(insert(audit), rows)
    connection.execute(delete(audit_pending).where(audit_pending.c.id.in_([entry.id for entry in pending])))
    moved = connection.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=seq, hash=previous))
    if not moved.rowcount:
        connection.execute(insert(audit_head).values(id=1, seq=seq, hash=previous))
    return len(rows)


def read_head(connection: Connection) -> tuple[int, str]:
    """The chain's newest (seq, hash): the head row, else the newest record (a chain chained before
    the head was kept), else nothing yet (0, GENESIS). The larger of head and newest record wins,
    so neither a deleted record nor a stale head makes a sequence number come back."""
    head = connection.execute(select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)).first()
    last = connection.execute(select(audit.c.seq, audit.c.hash).order_by(audit.c.seq.desc()).limit(1)).first()
    found = [(int(row.seq), str(row.hash)) for row in (head, last) if row is not None]
    return max(found) if found else (0, GENESIS)


def _copy_into_chain(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: append the batch with one COPY (cheaper than an INSERT per row)."""
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(CHAIN_COPY) as copy:
        for row in rows:
            copy.write_row([row[name] if name != "data" else json.dumps(row["data"]) for name in CHAIN_COLUMNS])

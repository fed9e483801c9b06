"""The hash chain of the audit log (DESIGN §3 Audit, docs/audit.md).

Each record's ``hash`` covers the previous record's hash and the record's canonical JSON (sorted
keys, no whitespace, UTF-8): HMAC-SHA256 under ``AUDIT_KEY``, plain SHA-256 when no key is set
(then anyone who can write the table can recompute a rewritten chain; ``key_warning`` says so at
start-up). Sequence numbers run 1, 2, 3, ... without a gap. A head (``seq``, ``hash``) seen
earlier and kept outside the database proves that the chain was not cut since.

This module hashes and checks records handed to it; it reads no database, no file and no
environment (the key comes from settings, the records from the store or an export).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
FIELDS = ("seq", "at", "kind", "actor", "subject", "data", "break_glass")
_HASH = re.compile(r"[0-9a-f]{64}")
# How many ids a report of unaudited decisions lists (the count is always given).
_LISTED = 20


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's hash covers: its fields (not its hashes) as canonical JSON."""
    content = {key: record[key] for key in FIELDS}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(previous: str, record: Mapping[str, Any], key: bytes | None) -> str:
    """The hash of ``record`` chained after ``previous``: HMAC-SHA256 under ``key``, else SHA-256."""
    message = previous.encode() + canonical(record)
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def key_warning(key: bytes | None) -> str | None:
    """Log (and return) the start-up warning for a chain without a key; None when a key is set."""
    if key:
        return None
    message = (
        "GATEKEEPER_AUDIT_KEY is not set: the audit chain is plain SHA-256, so anyone who can write the "
        "database can rewrite records and recompute every later hash unnoticed; set a key (docs/audit.md)"
    )
    logger.warning("%s", message)
    return message


@dataclass(frozen=True, slots=True)
class Head:
    """The newest record of a chain as published: ``SEQ:HASH``."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Head:
        """``SEQ:HASH`` (seq >= 1, hash 64 lowercase hex digits); ValueError naming what is wrong."""
        seq, sep, digest = text.strip().partition(":")
        if not sep or not seq.isdigit() or int(seq) < 1:
            raise ValueError(f"expected SEQ:HASH with SEQ a positive integer (got {text!r})")
        if not _HASH.fullmatch(digest):
            raise ValueError(f"expected SEQ:HASH with HASH 64 lowercase hex digits (got {digest!r})")
        return cls(int(seq), digest)

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a chain. ``code``: ``malformed``, ``sequence_gap``, ``broken_link``,
    ``hash_mismatch``, ``truncated``, ``head_mismatch`` or ``unaudited_decisions``; ``seq`` the
    record concerned (None for the chain as a whole)."""

    code: str
    seq: int | None
    message: str

    def __str__(self) -> str:
        return self.message


def head_of(records: Sequence[Mapping[str, Any]]) -> Head | None:
    """The last record's ``seq`` and ``hash`` (None for an empty chain or a malformed last record)."""
    if not records:
        return None
    seq, digest = records[-1].get("seq"), records[-1].get("hash")
    return Head(seq, digest) if isinstance(seq, int) and isinstance(digest, str) else None


def verify(
    records: Iterable[Mapping[str, Any]],
    *,
    key: bytes | None = None,
    expect_head: tuple[int, str] | None = None,
    decision_ids: Iterable[int] | None = None,
) -> tuple[Problem, ...]:
    """Everything wrong with the chain ``records`` (oldest first); empty when it is intact.

    Each record is checked on its own (its seq follows the previous one's, its ``prev_hash`` is
    the previous record's ``hash``, its ``hash`` is its content's under ``key``), so one rewritten
    record is named as such instead of breaking every later one. ``expect_head``: a head seen
    earlier; the chain must reach it and hold the same hash there. ``decision_ids``: the ids of
    every decision stored; each must be named by some record's ``data.decision_id``."""
    problems: list[Problem] = []
    seen: dict[int, str] = {}
    audited: set[int] = set()
    last_seq, previous = 0, GENESIS
    for position, record in enumerate(records, start=1):
        seq = record.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            problems.append(Problem("malformed", None, f"record {position} in order has no integer seq"))
            continue
        problems.extend(_sequence(seq, last_seq))
        problems.extend(_record(seq, record, previous, key))
        previous, last_seq = str(record.get("hash")), seq
        seen[seq] = previous
        data = record.get("data")
        if isinstance(data, Mapping) and isinstance(data.get("decision_id"), int):
            audited.add(int(data["decision_id"]))
    if expect_head is not None:
        problems.extend(_head(Head(*expect_head), seen, last_seq))
    if decision_ids is not None:
        problems.extend(_unaudited(decision_ids, audited))
    return tuple(problems)


def _sequence(seq: int, last: int) -> list[Problem]:
    if seq == last + 1:
        return []
    if seq > last + 1:
        missing = f"record {last + 1}" if seq == last + 2 else f"records {last + 1} to {seq - 1}"
        return [Problem("sequence_gap", seq, f"record {seq}: follows record {last}, {missing} missing")]
    return [Problem("sequence_gap", seq, f"record {seq}: follows record {last} (a sequence number reused)")]


def _record(seq: int, record: Mapping[str, Any], previous: str, key: bytes | None) -> list[Problem]:
    problems: list[Problem] = []
    missing = [name for name in (*FIELDS, "prev_hash", "hash") if name not in record]
    if missing:
        return [Problem("malformed", seq, f"record {seq}: lacks {', '.join(missing)}")]
    linked = str(record["prev_hash"])
    if linked != previous:
        problems.append(
            Problem(
                "broken_link",
                seq,
                f"record {seq}: prev_hash {linked[:12]}... is not the previous record's hash {previous[:12]}...",
            )
        )
    stored = str(record["hash"])
    if stored != chain_hash(linked, record, key):
        if key is not None and stored == chain_hash(linked, record, None):
            why = "its hash is a plain SHA-256, not the HMAC under AUDIT_KEY: recomputed without the key"
        elif key is not None:
            why = "its hash is not the HMAC of its content under AUDIT_KEY: content or hash changed (or another key)"
        else:
            why = "hash does not match the record's content"
        problems.append(Problem("hash_mismatch", seq, f"record {seq}: {why}"))
    return problems


def _head(head: Head, seen: Mapping[int, str], last: int) -> list[Problem]:
    if last < head.seq:
        return [Problem("truncated", head.seq, f"chain ends at seq {last}, a head at seq {head.seq} was seen")]
    if head.seq not in seen:
        return [Problem("head_mismatch", head.seq, f"record {head.seq}: missing, a head at seq {head.seq} was seen")]
    if seen[head.seq] != head.hash:
        return [
            Problem(
                "head_mismatch",
                head.seq,
                f"record {head.seq}: hash {seen[head.seq][:12]}... differs from the head seen ({head.hash[:12]}...)",
            )
        ]
    return []


def _unaudited(decision_ids: Iterable[int], audited: set[int]) -> list[Problem]:
    missing = sorted(set(decision_ids) - audited)
    if not missing:
        return []
    listed = ", ".join(str(i) for i in missing[:_LISTED]) + (", ..." if len(missing) > _LISTED else "")
    noun = "decision has" if len(missing) == 1 else "decisions have"
    return [Problem("unaudited_decisions", None, f"{len(missing)} {noun} no audit record: {listed}")]

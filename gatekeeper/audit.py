"""The hash chain of the audit log: each record's hash is SHA-256 over the previous record's hash
and the record's canonical JSON (sorted keys, no whitespace, UTF-8). Verifying recomputes it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
FIELDS = ("seq", "at", "kind", "actor", "subject", "data", "break_glass")


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's hash covers: its fields (not its hashes) as canonical JSON."""
    content = {key: record[key] for key in FIELDS}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(previous: str, record: Mapping[str, Any]) -> str:
    return hashlib.sha256(previous.encode() + canonical(record)).hexdigest()


@dataclass(frozen=True, slots=True)
class Broken:
    seq: int
    problem: str


def verify(records: Iterable[Mapping[str, Any]]) -> Broken | None:
    """The first record whose chain does not hold, or None when the whole chain is intact."""
    previous = GENESIS
    for record in records:
        if record.get("prev_hash") != previous:
            return Broken(int(record.get("seq", -1)), "prev_hash does not match the previous record's hash")
        expected = chain_hash(previous, record)
        if record.get("hash") != expected:
            return Broken(int(record.get("seq", -1)), "hash does not match the record's content")
        previous = expected
    return None

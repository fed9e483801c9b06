"""What the store returns: plain frozen records, independent of SQLAlchemy rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class ReleaseStatus(StrEnum):
    PENDING = "pending"
    DEFERRED = "deferred"
    APPROVED = "approved"
    REJECTED = "rejected"
    APPLIED = "applied"
    VERIFIED = "verified"
    ROLLED_BACK = "rolled_back"
    SUPERSEDED = "superseded"


# A gate call for a release in one of these states decides again (DESIGN §3).
REDECIDABLE = frozenset({ReleaseStatus.PENDING, ReleaseStatus.DEFERRED, ReleaseStatus.APPROVED})


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    id: int
    release_id: int
    verdict: str
    reasons: list[dict[str, Any]]
    not_before: datetime | None
    requires: list[str]
    policy_hash: str
    would_defer: list[dict[str, Any]] | None
    trigger: str
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    id: int
    approver: str
    roles: list[str]
    reason: str | None
    break_glass: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ReleaseRecord:
    id: int
    target: str
    revision: str
    status: ReleaseStatus
    trigger: str
    created_at: datetime
    updated_at: datetime
    author: str | None = None
    merger: str | None = None
    has_approvals: bool | None = None  # None: not looked up


@dataclass(frozen=True, slots=True)
class ReleaseDetail:
    release: ReleaseRecord
    decisions: tuple[DecisionRecord, ...]
    approvals: tuple[ApprovalRecord, ...]


@dataclass(frozen=True, slots=True)
class GateRecord:
    """The outcome of a gate call as stored: the release and the decision it now stands on."""

    release: ReleaseRecord
    decision: DecisionRecord
    decided_now: bool

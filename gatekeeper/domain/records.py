"""Records of what was decided and done: releases, decisions, approvals, actions (frozen values).

The store returns these (never SQLAlchemy rows) and the orchestrator passes them around."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gatekeeper.domain.releases import REDECIDABLE, ReleaseStatus
from gatekeeper.domain.types import Decision, reason_dict


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
    context: dict[str, Any] | None = None
    not_before: datetime | None = None


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
    actions: bool = False  # the decision enqueued or woke an action: the scheduler has work


@dataclass(frozen=True, slots=True)
class NewAction:
    """An effect to carry out after commit (an outbox row).

    ``scope`` names what the effect sets (``github_status:acme/odoo@<sha>``): a still-waiting action
    of the same scope is replaced, and one identical (``digest``) to the scope's last done action
    is not enqueued. ``key`` makes it once: a second action with the same key is dropped.
    """

    kind: str
    key: str
    scope: str
    payload: dict[str, Any]
    digest: str = ""
    release_id: int | None = None


@dataclass(frozen=True, slots=True)
class ActionRecord:
    id: int
    kind: str
    release_id: int | None
    scope: str
    key: str
    payload: dict[str, Any]
    digest: str
    status: str  # pending | running | done | failed
    attempts: int
    next_attempt_at: datetime
    claimed_until: datetime | None
    claimed_by: str | None
    last_error: str | None
    result: str | None
    created_at: datetime
    updated_at: datetime


__all__ = [
    "REDECIDABLE",
    "ActionRecord",
    "ApprovalRecord",
    "DecisionRecord",
    "GateRecord",
    "NewAction",
    "ReleaseDetail",
    "ReleaseRecord",
    "ReleaseStatus",
]


@dataclass(frozen=True, slots=True)
class DecidedRelease:
    """A release to create already decided: a push's announcements, written set-based (one
    statement per table however many targets). ``status`` is where its decision moved it."""

    target: str
    revision: str
    trigger: str
    context: dict[str, Any]
    decision: Decision
    status: ReleaseStatus


def repeats(decision: Decision, latest: DecisionRecord | None) -> bool:
    """True when ``decision`` says exactly what ``latest`` said: verdict, reasons, ``not_before``,
    requirements, policies' hash and the observe-mode shadow.

    A hook polling through a freeze gets the same answer every 15 s; such a poll is answered from
    the latest decision and stores nothing (the decision log holds each change, not each poll).
    """
    if latest is None:
        return False
    would_defer = None if decision.would_defer is None else [reason_dict(r) for r in decision.would_defer]
    return (
        decision.verdict.value == latest.verdict
        and decision.not_before == latest.not_before
        and decision.policy_hash == latest.policy_hash
        and list(decision.requires) == latest.requires
        and [reason_dict(r) for r in decision.reasons] == latest.reasons
        and would_defer == latest.would_defer
    )

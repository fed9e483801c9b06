"""When will it ship: for a release still waiting, the instant its calendar lets it go, what else
still blocks it, and where it stands in its target's queue (issue 18).

Pure: the orchestrator passes the calendar status at now (freezes included), the latest
decision's reasons, the approval facts and the target's open releases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gatekeeper.domain import approvals
from gatekeeper.domain.approvals import ApprovalFacts
from gatekeeper.domain.policy import Policy
from gatekeeper.domain.records import ReleaseRecord
from gatekeeper.domain.types import Reason


@dataclass(frozen=True, slots=True)
class ApprovalCount:
    """One policy's approvals: how many distinct people of ``role`` approved, of how many."""

    policy: str
    role: str
    required: int
    approvers: tuple[str, ...]

    @property
    def given(self) -> int:
        return len(self.approvers)


@dataclass(frozen=True, slots=True)
class Outlook:
    """``at``: the first instant at or after ``as_of`` at which the calendar and the freezes let
    the release go (None: not within 366 days, or a freeze until lifted). ``closed_by``: what
    closes the calendar at ``as_of``. ``blocked_by``: everything else the latest decision named
    (approvals, provenance, drift, facts that could not be read). ``queue``: the target's releases
    not yet applied, oldest first; ``position`` 1-based."""

    as_of: datetime
    at: datetime | None
    closed_by: tuple[Reason, ...]
    blocked_by: tuple[dict[str, Any], ...]
    approvals: tuple[ApprovalCount, ...]
    queue: tuple[ReleaseRecord, ...]
    position: int


def approval_counts(policies: Sequence[Policy], facts: ApprovalFacts) -> tuple[ApprovalCount, ...]:
    """Each policy that asks for approvals: who counts so far and how many it needs (four eyes
    with nobody known needs two)."""
    return tuple(
        ApprovalCount(policy.name, policy.approvals.role, approvals.needed(policy.approvals, facts),
                      tuple(approvals.counted(policy.approvals, facts)))
        for policy in policies
        if policy.approvals.required
    )


def blockers(latest_reasons: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """The latest decision's reasons other than the calendar's (those are answered fresh)."""
    return tuple(reason for reason in latest_reasons if reason.get("check") != "calendar")


def position(release: ReleaseRecord, queue: Sequence[ReleaseRecord]) -> int:
    ids = [queued.id for queued in queue]
    return ids.index(release.id) + 1 if release.id in ids else 0

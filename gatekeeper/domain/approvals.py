"""Approvals: N distinct approvers holding a role, four eyes, and break-glass (DESIGN §3).

With four eyes an approver is neither the author nor the merger of the revision; where neither
is known, four eyes needs two distinct approvers. The same person approving twice counts once.
A normal approval satisfies ``approvals`` only; a break-glass approval (role ``break-glass``,
reason required) overrides calendar, freezes, drift and approvals, and provenance only where the
policy allows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gatekeeper.domain.policy import ApprovalRules, Policy
from gatekeeper.domain.types import Reason

BREAK_GLASS_ROLE = "break-glass"
# Checks a break-glass approval overrides (provenance only where the policy says so).
OVERRIDABLE = frozenset({"calendar", "freeze", "drift", "approval"})


@dataclass(frozen=True, slots=True)
class Approval:
    approver: str
    roles: frozenset[str]
    break_glass: bool = False
    reason: str | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApprovalFacts:
    """The approvals given on a release and who wrote and merged its revision."""

    approvals: tuple[Approval, ...] = ()
    author: str | None = None
    merger: str | None = None

    @property
    def break_glass(self) -> Approval | None:
        return next((a for a in self.approvals if a.break_glass and BREAK_GLASS_ROLE in a.roles), None)


def four_eyes_conflict(approver: str, facts: ApprovalFacts) -> str | None:
    """Why ``approver`` may not approve under four eyes, or None."""
    if facts.author is not None and approver == facts.author:
        return f"{approver} wrote this revision and cannot approve it under four-eyes"
    if facts.merger is not None and approver == facts.merger:
        return f"{approver} merged this revision and cannot approve it under four-eyes"
    return None


def needed(rules: ApprovalRules, facts: ApprovalFacts) -> int:
    if rules.four_eyes and facts.author is None and facts.merger is None:
        return max(rules.required, 2) if rules.required else 0
    return rules.required


def counted(rules: ApprovalRules, facts: ApprovalFacts) -> set[str]:
    """Distinct approvers that count toward ``rules``."""
    return {
        approval.approver
        for approval in facts.approvals
        if rules.role in approval.roles and not (rules.four_eyes and four_eyes_conflict(approval.approver, facts))
    }


def missing(policies: Sequence[Policy], facts: ApprovalFacts) -> tuple[tuple[Reason, ...], tuple[str, ...]]:
    """Reasons and requirements for every policy whose approvals are not yet given."""
    reasons: list[Reason] = []
    requires: list[str] = []
    for policy in policies:
        rules = policy.approvals
        want = needed(rules, facts)
        have = counted(rules, facts)
        if len(have) >= want:
            continue
        given = f" (so far: {', '.join(sorted(have))})" if have else ""
        reasons.append(
            Reason(
                "approval",
                "approval_missing",
                f"policy {policy.name} needs {_approvals(want)} by {rules.role}"
                f"{_four_eyes_note(rules, facts)}, has {len(have)}{given}",
                None,
            )
        )
        requires.append(f"approval:{rules.role}")
    return tuple(reasons), tuple(dict.fromkeys(requires))


def _four_eyes_note(rules: ApprovalRules, facts: ApprovalFacts) -> str:
    if not rules.four_eyes:
        return ""
    people = sorted({name for name in (facts.author, facts.merger) if name})
    if not people:
        return " (four eyes: author and merger unknown, so at least two people)"
    return f" (four eyes: not {' or '.join(people)})"


def _approvals(count: int) -> str:
    return "1 approval" if count == 1 else f"{count} distinct approvals"

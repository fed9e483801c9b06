"""Approvals: N distinct approvers holding a role, four eyes, and break-glass (DESIGN §3).

With four eyes an approver is none of the people who touched the revision: every login, username
and e-mail address the Git events gave for it (``ApprovalFacts.touched``, docs/four-eyes.md). An
approver is a person: the token's name plus its ``identities``. All of them are compared
casefolded. Where nobody is known, four eyes needs two distinct people. The same person approving
twice (or through two tokens that share an identity) counts once. A normal approval satisfies
``approvals`` only; a break-glass approval (role ``break-glass``, reason required) overrides
calendar, freezes, drift and approvals, and provenance only where the policy allows it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from gatekeeper.domain.policy import ApprovalRules, Policy
from gatekeeper.domain.types import Reason

BREAK_GLASS_ROLE = "break-glass"
# Checks a break-glass approval overrides (provenance only where the policy says so).
OVERRIDABLE = frozenset({"calendar", "freeze", "drift", "approval"})


def identity_set(values: Iterable[str | None]) -> frozenset[str]:
    """Identities as four eyes compares them: stripped, casefolded, the empty and None left out
    (GitHub logins, GitLab usernames and e-mail addresses are all case-insensitive)."""
    return frozenset(value.strip().casefold() for value in values if value and value.strip())


@dataclass(frozen=True, slots=True)
class Approval:
    """One approval. ``identities``: the approver's token name plus its ``identities`` (casefolded);
    empty means only ``approver`` is known. ``acknowledged``: the digests of the drift the release
    was deferred for when it was given (that drift, and only that, no longer blocks)."""

    approver: str
    roles: frozenset[str]
    break_glass: bool = False
    reason: str | None = None
    at: datetime | None = None
    identities: frozenset[str] = frozenset()
    acknowledged: frozenset[str] = frozenset()

    @property
    def person(self) -> frozenset[str]:
        """Every identity of the approver, its name included."""
        return identity_set((self.approver, *self.identities))


@dataclass(frozen=True, slots=True)
class ApprovalFacts:
    """The approvals given on a release and who touched its revision.

    ``touched``: the casefolded identities of everyone who touched the revision (grows with every
    Git event for its SHA). ``author`` and ``merger`` (logins or usernames) count as touched too.
    """

    approvals: tuple[Approval, ...] = ()
    author: str | None = None
    merger: str | None = None
    touched: frozenset[str] = frozenset()

    @property
    def people(self) -> frozenset[str]:
        """Everyone known to have touched the revision, casefolded."""
        return identity_set((*self.touched, self.author, self.merger))

    @property
    def break_glass(self) -> Approval | None:
        return next((a for a in self.approvals if a.break_glass and BREAK_GLASS_ROLE in a.roles), None)


def four_eyes_conflict(approver: str, facts: ApprovalFacts, identities: Iterable[str] = ()) -> str | None:
    """Why ``approver`` (with its token's ``identities``) may not approve under four eyes, or None."""
    person = identity_set((approver, *identities))
    if facts.author and facts.author.strip().casefold() in person:
        return f"{approver} wrote this revision and cannot approve it under four-eyes"
    if facts.merger and facts.merger.strip().casefold() in person:
        return f"{approver} merged this revision and cannot approve it under four-eyes"
    shared = sorted(person & facts.people)
    if shared:
        return f"{approver} touched this revision (as {', '.join(shared)}) and cannot approve it under four-eyes"
    return None


def needed(rules: ApprovalRules, facts: ApprovalFacts) -> int:
    if rules.four_eyes and not facts.people:
        return max(rules.required, 2) if rules.required else 0
    return rules.required


def counted(rules: ApprovalRules, facts: ApprovalFacts) -> list[str]:
    """One name per distinct person whose approval counts toward ``rules`` (sorted).

    Two approvals are one person when their identity sets share an identity, however their
    token names differ."""
    people: list[tuple[set[str], set[str]]] = []  # (identities, token names) per person
    for approval in facts.approvals:
        if rules.role not in approval.roles:
            continue
        if rules.four_eyes and four_eyes_conflict(approval.approver, facts, approval.person):
            continue
        identities, names = set(approval.person), {approval.approver}
        for other in [p for p in people if p[0] & identities]:
            people.remove(other)
            identities |= other[0]
            names |= other[1]
        people.append((identities, names))
    return sorted(min(names) for _, names in people)


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
        given = f" (so far: {', '.join(have)})" if have else ""
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
    people = facts.people
    if not people:
        return " (four eyes: nobody known to have touched it, so at least two people)"
    # Logins are named; e-mail addresses only counted (reasons travel to commit statuses).
    logins = sorted(person for person in people if "@" not in person)
    addresses = len(people) - len(logins)
    named = " or ".join(logins) if logins else "anyone who touched it"
    extra = f"; {_count(addresses, 'e-mail address', 'e-mail addresses')} also excluded" if logins and addresses else ""
    return f" (four eyes: not {named}{extra})"


def _approvals(count: int) -> str:
    return "1 approval" if count == 1 else f"{count} distinct approvals"


def _count(count: int, one: str, many: str) -> str:
    return f"1 {one}" if count == 1 else f"{count} {many}"

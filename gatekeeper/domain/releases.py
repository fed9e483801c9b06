"""The release state machine (DESIGN §2): the states a release can be in and the moves between them.

Every status change in gatekeeper goes through ``transition``; an illegal move is an error that
names both states. Pure: no clock, no store.
"""

from __future__ import annotations

from enum import StrEnum

from gatekeeper.domain.types import Verdict


class ReleaseStatus(StrEnum):
    PENDING = "pending"
    DEFERRED = "deferred"
    APPROVED = "approved"
    REJECTED = "rejected"
    APPLIED = "applied"
    VERIFIED = "verified"
    ROLLED_BACK = "rolled_back"
    SUPERSEDED = "superseded"


P, D, A = ReleaseStatus.PENDING, ReleaseStatus.DEFERRED, ReleaseStatus.APPROVED

# A gate call for a release in one of these states decides again (DESIGN §3).
REDECIDABLE = frozenset({P, D, A})

# Where each state may go. Deciding again in the same state (deferred -> deferred) is no move.
MOVES: dict[ReleaseStatus, frozenset[ReleaseStatus]] = {
    P: frozenset({A, D, ReleaseStatus.REJECTED, ReleaseStatus.APPLIED, ReleaseStatus.SUPERSEDED}),
    D: frozenset({A, ReleaseStatus.REJECTED, ReleaseStatus.APPLIED, ReleaseStatus.SUPERSEDED}),
    A: frozenset({D, ReleaseStatus.REJECTED, ReleaseStatus.APPLIED, ReleaseStatus.SUPERSEDED}),
    ReleaseStatus.APPLIED: frozenset({ReleaseStatus.VERIFIED, ReleaseStatus.ROLLED_BACK}),
    ReleaseStatus.VERIFIED: frozenset({ReleaseStatus.ROLLED_BACK}),
    ReleaseStatus.REJECTED: frozenset(),
    ReleaseStatus.ROLLED_BACK: frozenset(),
    ReleaseStatus.SUPERSEDED: frozenset(),
}

# What a decision makes of an open release; a rollback verdict leaves the status to the
# rollback itself (the action that restores the last verified revision).
STATUS_OF_VERDICT = {Verdict.APPROVE: A, Verdict.DEFER: D}


class IllegalTransitionError(ValueError):
    """A status change the state machine does not allow."""

    def __init__(self, current: ReleaseStatus, new: ReleaseStatus) -> None:
        allowed = ", ".join(sorted(MOVES[current])) or "nothing"
        super().__init__(f"a release cannot go from {current.value} to {new.value} (from {current.value}: {allowed})")
        self.current, self.new = current, new


def may_move(current: ReleaseStatus, new: ReleaseStatus) -> bool:
    return new is current or new in MOVES[current]


def transition(current: ReleaseStatus, new: ReleaseStatus) -> ReleaseStatus:
    """``new`` if the state machine allows ``current -> new`` (staying is allowed), else raise."""
    if not may_move(current, new):
        raise IllegalTransitionError(current, new)
    return new


def after_decision(current: ReleaseStatus, verdict: Verdict) -> ReleaseStatus:
    """The status of an open release once ``verdict`` is decided for it."""
    return transition(current, STATUS_OF_VERDICT.get(verdict, current))

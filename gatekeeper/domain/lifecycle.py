"""What the GitOps controller reports after the gate: a release applied or turned unhealthy.

Pure rules (DESIGN §2, §3 Rollback): a revision applied without an approve decision gets verdict
``rollback``; an applied one that turns unhealthy within its policy's verification period gets
``rollback`` where the policy asks for it; one healthy through the longest verification period of its
policies becomes ``verified`` (``verification_deadline``). The action that restores the last verified revision
belongs to the actions layer. The revert gatekeeper pushes for a rollback is its own
(``RollbackRevert``, kept in that revision's release context): ``decide`` approves it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gatekeeper.domain.policy import Policy
from gatekeeper.domain.types import Decision, Reason, Verdict


def applied_without_approval(revision: str, status: str, policy_hash: str, now: datetime) -> Decision:
    """A revision went out while its release was not approved (e.g. a sync in a freeze)."""
    reason = Reason(
        "lifecycle",
        "applied_without_approval",
        f"revision {revision} was applied while its release was {status}, not approved",
        None,
    )
    return Decision(Verdict.ROLLBACK, (reason,), None, (), policy_hash, now)


def unhealthy_after_apply(
    revision: str, applied_at: datetime, policies: Sequence[Policy], policy_hash: str, now: datetime
) -> Decision | None:
    """Rollback when a governing policy rolls back unhealthy releases within its verification period."""
    for policy in policies:
        rules = policy.verification
        if not rules.rollback_on_unhealthy or rules.period is None:
            continue
        period = rules.period
        elapsed = (now - applied_at).total_seconds()
        if elapsed <= period.days * 86_400 + period.seconds:
            reason = Reason(
                "verification",
                "unhealthy",
                f"revision {revision} turned unhealthy {int(elapsed)}s after it was applied "
                f"(policy {policy.name} verifies for {period})",
                None,
            )
            return Decision(Verdict.ROLLBACK, (reason,), None, (), policy_hash, now)
    return None


def verification_deadline(applied_at: datetime, policies: Sequence[Policy]) -> datetime | None:
    """When a release applied at ``applied_at`` becomes verified if no unhealthy report came: the end
    of the longest ``verification.period`` of its policies (strictest wins). None: no policy sets
    one, and the release stays ``applied``."""
    periods = [p.verification.period for p in policies if p.verification.period is not None]
    if not periods:
        return None
    longest = max(timedelta(days=period.days, seconds=period.seconds) for period in periods)
    return applied_at + longest


ROLLBACK_CONTEXT = "rollback"  # the release-context key of a revert gatekeeper pushed itself


@dataclass(frozen=True, slots=True)
class RollbackRevert:
    """The revert of ``reverts`` that gatekeeper pushed to roll back release ``release_id`` of
    ``target``: it restores the state before the offending commit, so its own release is approved
    whatever the calendar, freezes, drift or provenance say (reason ``rollback``). Only callers
    inside gatekeeper can set it: no webhook or gate call can put this key in a release context."""

    release_id: int
    target: str
    reverts: str

    def context(self) -> dict[str, Any]:
        return {ROLLBACK_CONTEXT: {"release_id": self.release_id, "target": self.target, "reverts": self.reverts}}

    @classmethod
    def from_context(cls, context: Mapping[str, Any] | None, target: str) -> RollbackRevert | None:
        """The revert a release context records, if it is one of ``target`` (else None)."""
        found = (context or {}).get(ROLLBACK_CONTEXT)
        if not isinstance(found, Mapping) or found.get("target") != target:
            return None
        release_id, reverts = found.get("release_id"), found.get("reverts")
        if not isinstance(release_id, int) or not isinstance(reverts, str):
            return None  # not what gatekeeper writes: no revert of its own
        return cls(release_id, target, reverts)

    def message(self, overridden: Sequence[str]) -> str:
        codes = ", ".join(dict.fromkeys(overridden)) or "nothing"
        return (
            f"gatekeeper's revert of {self.reverts}, rolling back release {self.release_id} of {self.target}: "
            f"it restores the state before that commit (overrides: {codes})"
        )

"""When an applied release becomes verified: the end of the longest verification period of its
policies (strictest wins); no period, no deadline (it stays applied)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gatekeeper.domain.durations import Duration
from gatekeeper.domain.lifecycle import verification_deadline
from gatekeeper.domain.policy import Policy, VerificationRules

APPLIED = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def policy(name: str, period: str | None, *, rollback: bool = False) -> Policy:
    rules = VerificationRules(Duration.parse(period) if period else None, rollback)
    return Policy(name, ("argocd:odoo-prod",), verification=rules)


def test_the_longest_period_of_the_governing_policies_sets_the_deadline() -> None:
    policies = [policy("a", "15m"), policy("b", "1h", rollback=True), policy("c", None)]
    assert verification_deadline(APPLIED, policies) == APPLIED + timedelta(hours=1)
    assert verification_deadline(APPLIED, [policy("d", "1d")]) == APPLIED + timedelta(days=1)


def test_a_release_whose_policies_set_no_period_has_no_deadline() -> None:
    assert verification_deadline(APPLIED, []) is None
    assert verification_deadline(APPLIED, [policy("a", None, rollback=True)]) is None

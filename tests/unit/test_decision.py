"""decide(): strictest wins, reasons, not_before, fail-closed paths and observe mode (DESIGN §3)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from gatekeeper.domain import decision
from gatekeeper.domain.approvals import Approval, ApprovalFacts
from gatekeeper.domain.decision import CheckResult, DecideOptions, Facts, decide
from gatekeeper.domain.lifecycle import RollbackRevert
from gatekeeper.domain.policy import ApprovalRules, Mode, Policy
from gatekeeper.domain.types import Reason, ReleaseRequest, TargetKey, Verdict
from gatekeeper.domain.windows import OUTSIDE_ALLOW, WindowIndex

NOW = datetime(2026, 6, 3, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
HOUR = 3600
DAY = 86_400
LO, HI = T - 31 * DAY, T + 400 * DAY
REQUEST = ReleaseRequest(TargetKey("argocd:odoo-prod"), "a" * 40)


def index(**code_spans: list[tuple[int, int]]) -> WindowIndex:
    """An index around NOW with closed spans given relative to NOW in seconds."""
    return WindowIndex.build(LO, HI, {code: [(T + s, T + e) for s, e in spans] for code, spans in code_spans.items()})


def policy(name: str, mode: Mode = Mode.ENFORCE, approvals: ApprovalRules | None = None) -> Policy:
    return Policy(name=name, targets=("argocd:odoo-*",), mode=mode, approvals=approvals or ApprovalRules())


def facts(calendars: dict[str, WindowIndex], **extra: object) -> Facts:
    return Facts(policy_hash="sha256:test", calendars=calendars, **extra)  # type: ignore[arg-type]


OPEN = index()
CUTOFF = index(dispatch_cutoff=[(-HOUR, 2 * HOUR)])  # closed now, opens in 2 h
EVENING = index(dispatch_cutoff=[(-HOUR, 2 * HOUR)], outside_allow_window=[(2 * HOUR, 5 * HOUR)])  # opens in 5 h
FROZEN = index(year_freeze=[(-HOUR, 367 * DAY)])  # opens after the 366-day horizon
RETRY = timedelta(minutes=5)


def at(seconds: int) -> datetime:
    return NOW + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("calendar", "verdict", "codes", "not_before"),
    [
        pytest.param(OPEN, Verdict.APPROVE, [], None, id="open-approves"),
        pytest.param(CUTOFF, Verdict.DEFER, ["dispatch_cutoff"], at(2 * HOUR), id="closed-defers-until-open"),
        pytest.param(EVENING, Verdict.DEFER, ["dispatch_cutoff"], at(5 * HOUR), id="not-before-skips-a-following-window"),
        pytest.param(FROZEN, Verdict.DEFER, ["year_freeze"], None, id="not-before-null-beyond-366-days"),
        pytest.param(
            index(exact=[(-HOUR, 366 * DAY)]), Verdict.DEFER, ["exact"], at(366 * DAY), id="exactly-366-days-answered"
        ),
    ],
)
def test_the_calendar_decides_with_not_before_the_next_open(
    calendar: WindowIndex, verdict: Verdict, codes: list[str], not_before: datetime | None
) -> None:
    result = decide(REQUEST, facts({"prod": calendar}), [policy("prod")], now=NOW)
    assert result.verdict is verdict
    assert [reason.code for reason in result.reasons] == codes
    assert result.not_before == not_before
    assert (result.policy_hash, result.decided_at, result.policies) == ("sha256:test", NOW, ("prod",))


def test_each_reason_has_check_code_message_and_until() -> None:
    result = decide(REQUEST, facts({"prod": EVENING}), [policy("prod")], now=NOW)
    (reason,) = result.reasons
    assert (reason.check, reason.code, reason.until) == ("calendar", "dispatch_cutoff", at(2 * HOUR))
    assert "dispatch_cutoff" in reason.message and "2026-06-03T14:00:00Z" in reason.message


def test_a_reason_names_its_end_in_the_policys_local_time_beside_utc() -> None:
    """Issue 14 item 8: people read the policy's zone; the instant itself stays UTC."""
    berlin = Policy(name="prod", targets=("argocd:odoo-*",), timezone="Europe/Berlin")
    (reason,) = decide(REQUEST, facts({"prod": EVENING}), [berlin], now=NOW).reasons
    assert "until 2026-06-03T14:00:00Z (16:00 Europe/Berlin)" in reason.message
    assert reason.until == at(2 * HOUR)


def test_a_reason_running_past_the_index_has_until_null() -> None:
    result = decide(REQUEST, facts({"prod": index(forever=[(-HOUR, 500 * DAY)])}), [policy("prod")], now=NOW)
    assert result.reasons[0].until is None
    assert result.not_before is None


def test_several_policies_are_closed_when_any_is_and_open_when_all_are() -> None:
    staging, prod = policy("staging"), policy("prod")
    closed = decide(REQUEST, facts({"staging": OPEN, "prod": CUTOFF}), [staging, prod], now=NOW)
    assert (closed.verdict, [r.code for r in closed.reasons]) == (Verdict.DEFER, ["dispatch_cutoff"])
    both = decide(
        REQUEST, facts({"staging": index(outside_allow_window=[(0, 3 * HOUR)]), "prod": CUTOFF}), [staging, prod], now=NOW
    )
    assert [r.code for r in both.reasons] == ["dispatch_cutoff", OUTSIDE_ALLOW]
    assert both.not_before == at(3 * HOUR)


def test_all_non_passing_checks_add_their_reasons_and_the_strictest_verdict_wins() -> None:
    gated = policy("prod", approvals=ApprovalRules(required=1, role="release-manager"))
    result = decide(REQUEST, facts({"prod": CUTOFF}), [gated], now=NOW)
    assert result.verdict is Verdict.DEFER
    assert [(r.check, r.code) for r in result.reasons] == [("calendar", "dispatch_cutoff"), ("approval", "approval_missing")]
    assert result.requires == ("approval:release-manager",)
    assert result.not_before == at(2 * HOUR)
    approved = facts({"prod": OPEN}, approvals=ApprovalFacts((Approval("alice", frozenset({"release-manager"})),)))
    assert decide(REQUEST, approved, [gated], now=NOW).verdict is Verdict.APPROVE


def _returning(verdict: Verdict, code: str) -> decision.Check:
    def check(request: ReleaseRequest, facts: Facts, policies: Sequence[Policy], now: datetime) -> CheckResult:
        if verdict is Verdict.APPROVE:
            return CheckResult()
        return CheckResult(verdict, (Reason("test", code, code, None),))

    return check


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        pytest.param([Verdict.APPROVE, Verdict.APPROVE], Verdict.APPROVE, id="all-approve"),
        pytest.param([Verdict.APPROVE, Verdict.DEFER], Verdict.DEFER, id="defer-beats-approve"),
        pytest.param([Verdict.ROLLBACK, Verdict.DEFER, Verdict.APPROVE], Verdict.ROLLBACK, id="rollback-beats-defer"),
        pytest.param([], Verdict.DEFER, id="no-checks-never-approves"),
    ],
)
def test_the_strictest_check_wins(monkeypatch: pytest.MonkeyPatch, verdicts: list[Verdict], expected: Verdict) -> None:
    checks = tuple(_returning(verdict, f"code_{n}") for n, verdict in enumerate(verdicts))
    monkeypatch.setattr(decision, "CHECKS", checks)
    result = decide(REQUEST, facts({"prod": OPEN}), [policy("prod")], now=NOW)
    assert result.verdict is expected
    if not verdicts:
        assert [r.code for r in result.reasons] == ["no_checks"]


@pytest.mark.parametrize(
    ("options", "verdict", "codes"),
    [
        pytest.param(DecideOptions(), Verdict.DEFER, ["no_policy"], id="default-defers"),
        pytest.param(DecideOptions(ungoverned=Verdict.APPROVE), Verdict.APPROVE, [], id="ungoverned-approve"),
    ],
)
def test_a_target_no_policy_governs(options: DecideOptions, verdict: Verdict, codes: list[str]) -> None:
    other = Policy(name="flux-only", targets=("flux:*",))
    result = decide(REQUEST, facts({}), [other], now=NOW, options=options)
    assert (result.verdict, [r.code for r in result.reasons], result.not_before) == (verdict, codes, None)
    assert result.policies == ()


def test_a_configuration_that_never_loaded_defers_with_config_invalid_and_a_retry() -> None:
    broken = Facts(policy_hash="", config_errors=("policies/prod.yaml:3: spec.targets: required field is missing",))
    result = decide(REQUEST, broken, [], now=NOW, options=DecideOptions(ungoverned=Verdict.APPROVE, retry_delay=RETRY))
    assert result.verdict is Verdict.DEFER
    assert [(r.check, r.code) for r in result.reasons] == [("config", "config_invalid")]
    assert "policies/prod.yaml:3" in result.reasons[0].message
    assert result.not_before == NOW + RETRY


GATHER = Reason("drift", "cluster_unreachable", "the Kubernetes API did not answer", None)


@pytest.mark.parametrize(
    ("calendar", "not_before"),
    [
        pytest.param(OPEN, NOW + RETRY, id="open-calendar-retries-after-the-delay"),
        pytest.param(CUTOFF, at(2 * HOUR), id="later-of-retry-and-next-open"),
        pytest.param(FROZEN, None, id="an-indefinite-calendar-stays-null"),
    ],
)
def test_an_error_while_gathering_facts_defers_with_a_retry(calendar: WindowIndex, not_before: datetime | None) -> None:
    gathered = facts({"prod": calendar}, gather_errors=(GATHER,))
    result = decide(REQUEST, gathered, [policy("prod")], now=NOW, options=DecideOptions(retry_delay=RETRY))
    assert result.verdict is Verdict.DEFER
    assert GATHER in result.reasons
    assert result.not_before == not_before


def test_a_gather_error_without_governing_policies_still_defers_even_when_ungoverned_approves() -> None:
    # The service drops policies whose calendar failed to compile: that must not fail open.
    gathered = Facts(policy_hash="x", gather_errors=(GATHER,))
    options = DecideOptions(ungoverned=Verdict.APPROVE, retry_delay=RETRY)
    result = decide(REQUEST, gathered, [], now=NOW, options=options)
    assert (result.verdict, result.reasons, result.not_before) == (Verdict.DEFER, (GATHER,), NOW + RETRY)


def test_observe_mode_approves_and_fills_would_defer() -> None:
    shadow = policy("prod", mode=Mode.OBSERVE)
    result = decide(REQUEST, facts({"prod": CUTOFF}), [shadow], now=NOW)
    assert (result.verdict, result.reasons, result.not_before) == (Verdict.APPROVE, (), None)
    assert result.would_defer is not None
    assert [r.code for r in result.would_defer] == ["dispatch_cutoff"]


def test_observe_mode_reports_a_gather_error_under_would_defer_instead_of_blocking() -> None:
    shadow = policy("prod", mode=Mode.OBSERVE)
    result = decide(REQUEST, facts({"prod": OPEN}, gather_errors=(GATHER,)), [shadow], now=NOW)
    assert result.verdict is Verdict.APPROVE
    assert result.would_defer == (GATHER,)


def test_an_open_observe_policy_has_an_empty_would_defer_and_enforce_only_has_none() -> None:
    observed = decide(REQUEST, facts({"prod": OPEN}), [policy("prod", mode=Mode.OBSERVE)], now=NOW)
    assert observed.would_defer == ()
    enforced = decide(REQUEST, facts({"prod": CUTOFF}), [policy("prod")], now=NOW)
    assert enforced.would_defer is None


@pytest.mark.parametrize(
    ("enforce_calendar", "observe_calendar", "verdict", "codes", "would"),
    [
        pytest.param(CUTOFF, OPEN, Verdict.DEFER, ["dispatch_cutoff"], [], id="enforce-closed-observe-open"),
        pytest.param(OPEN, FROZEN, Verdict.APPROVE, [], ["year_freeze"], id="enforce-open-observe-closed"),
        pytest.param(CUTOFF, FROZEN, Verdict.DEFER, ["dispatch_cutoff"], ["year_freeze"], id="both-closed"),
    ],
)
def test_mixed_enforce_and_observe_policies_block_only_on_the_enforced_ones(
    enforce_calendar: WindowIndex, observe_calendar: WindowIndex, verdict: Verdict, codes: list[str], would: list[str]
) -> None:
    policies = [policy("prod"), policy("shadow", mode=Mode.OBSERVE)]
    result = decide(REQUEST, facts({"prod": enforce_calendar, "shadow": observe_calendar}), policies, now=NOW)
    assert result.verdict is verdict
    assert [r.code for r in result.reasons] == codes
    assert [r.code for r in result.would_defer or ()] == would
    assert result.not_before == (at(2 * HOUR) if verdict is Verdict.DEFER else None)
    assert result.policies == ("prod", "shadow")


def test_a_break_glass_approval_overrides_the_calendar_and_says_so() -> None:
    glass = Approval("bob", frozenset({"break-glass"}), break_glass=True, reason="hotfix for the carrier API")
    result = decide(REQUEST, facts({"prod": CUTOFF}, approvals=ApprovalFacts((glass,))), [policy("prod")], now=NOW)
    assert result.verdict is Verdict.APPROVE
    assert [r.code for r in result.reasons] == ["break_glass"]
    assert "dispatch_cutoff" in result.reasons[0].message


def test_decide_is_deterministic() -> None:
    calendars = {"prod": EVENING, "shadow": FROZEN}
    policies = [policy("prod", approvals=ApprovalRules(required=2, four_eyes=True)), policy("shadow", mode=Mode.OBSERVE)]
    first = decide(REQUEST, facts(calendars), policies, now=NOW)
    again = decide(REQUEST, facts(dict(calendars)), list(policies), now=NOW)
    assert first == again


def test_decide_refuses_an_instant_without_offset() -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        decide(REQUEST, facts({"prod": OPEN}), [policy("prod")], now=NOW.replace(tzinfo=None))


STALE = Reason("calendar", "calendar_stale", "calendar feed https://h.example/…/calendar.ics was last fetched 2d ago", None)


def test_a_stale_feed_defers_only_its_policys_targets_and_is_retried_after_the_retry_delay() -> None:
    stale = facts({"prod": OPEN, "other": OPEN}, stale_calendars={"prod": (STALE,)})
    result = decide(REQUEST, stale, [policy("prod")], now=NOW)
    assert (result.verdict, [r.code for r in result.reasons], result.not_before) == (
        Verdict.DEFER, ["calendar_stale"], NOW + RETRY,
    )
    assert decide(REQUEST, stale, [policy("other")], now=NOW).verdict is Verdict.APPROVE


def test_a_stale_feed_beside_a_closed_calendar_waits_for_both() -> None:
    stale = facts({"prod": CUTOFF}, stale_calendars={"prod": (STALE,)})
    result = decide(REQUEST, stale, [policy("prod")], now=NOW)
    assert [r.code for r in result.reasons] == ["dispatch_cutoff", "calendar_stale"]
    assert result.not_before == at(2 * HOUR)  # the later of the opening and the retry


def test_a_stale_feed_of_an_observed_policy_only_would_defer() -> None:
    stale = facts({"prod": OPEN}, stale_calendars={"prod": (STALE,)})
    result = decide(REQUEST, stale, [policy("prod", Mode.OBSERVE)], now=NOW)
    assert result.verdict is Verdict.APPROVE
    assert [r.code for r in result.would_defer or ()] == ["calendar_stale"]


def test_break_glass_overrides_a_stale_feed_as_it_does_the_calendar() -> None:
    glass = Approval("bob", frozenset({"break-glass"}), break_glass=True, reason="carrier outage")
    stale = facts({"prod": OPEN}, stale_calendars={"prod": (STALE,)}, approvals=ApprovalFacts((glass,)))
    result = decide(REQUEST, stale, [policy("prod")], now=NOW)
    assert result.verdict is Verdict.APPROVE and "calendar_stale" in result.reasons[0].message


def test_gatekeepers_own_revert_is_approved_through_a_closed_calendar_and_a_gather_error_and_says_why() -> None:
    revert = RollbackRevert(41, "argocd:odoo-prod", "b" * 40)
    failed = (Reason("drift", "facts_unavailable", "cluster down", None),)
    result = decide(REQUEST, facts({"p": CUTOFF}, rollback=revert, gather_errors=failed), [policy("p")], now=NOW)
    assert result.verdict is Verdict.APPROVE and result.not_before is None
    assert [r.code for r in result.reasons] == ["rollback"]
    assert "release 41" in result.reasons[0].message and "b" * 40 in result.reasons[0].message
    assert "dispatch_cutoff, facts_unavailable" in result.reasons[0].message
    without = decide(REQUEST, facts({"p": CUTOFF}), [policy("p")], now=NOW)
    assert without.verdict is Verdict.DEFER


def test_a_revert_recorded_for_another_target_is_no_revert_of_this_one() -> None:
    context = RollbackRevert(41, "argocd:odoo-prod-eu", "b" * 40).context()
    assert RollbackRevert.from_context(context, "argocd:odoo-prod") is None
    assert RollbackRevert.from_context(context, "argocd:odoo-prod-eu") == RollbackRevert(41, "argocd:odoo-prod-eu", "b" * 40)
    assert RollbackRevert.from_context({"namespace": "odoo"}, "argocd:odoo-prod") is None
    assert RollbackRevert.from_context({"rollback": {"target": "argocd:odoo-prod"}}, "argocd:odoo-prod") is None

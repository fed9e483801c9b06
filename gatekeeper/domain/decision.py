"""``decide``: the pure function from (request, facts, policies, now) to a Decision.

Every check runs; the decision is the strictest outcome, and each non-passing check adds its
reasons (DESIGN §3). Checks are plain functions in ``CHECKS`` (calendar, drift, approvals,
and the fail-closed gather check); provenance plugs in there with its facts. Nothing here
reads a clock, a file or the network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import lru_cache

from gatekeeper.domain import approvals, drift, provenance
from gatekeeper.domain.approvals import Approval, ApprovalFacts
from gatekeeper.domain.drift import DriftOutcome, DriftReading
from gatekeeper.domain.lifecycle import RollbackRevert
from gatekeeper.domain.policy import DriftMode, Mode, Policy
from gatekeeper.domain.provenance import ProvenanceReading
from gatekeeper.domain.types import (
    STRICTNESS,
    Decision,
    Reason,
    ReleaseRequest,
    Verdict,
    from_epoch,
    utc_epoch,
    with_local_time,
)
from gatekeeper.domain.windows import OUTSIDE_ALLOW, WindowIndex

# How far ahead "next open" looks; beyond it not_before is null (DESIGN §4).
LOOKAHEAD = timedelta(days=366)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the orchestrator gathered before deciding.

    ``calendars`` maps each governing policy's name to its window index (covering at least
    ``[now, now + 366 days]``). ``config_errors`` is non-empty when no configuration ever loaded;
    ``gather_errors`` are failures while gathering facts. Both fail closed. ``readings`` holds
    what each fact reader (Git, cluster, registry) returned, by the reader's name.
    """

    policy_hash: str
    calendars: Mapping[str, WindowIndex] = field(default_factory=dict)
    config_errors: tuple[str, ...] = ()
    gather_errors: tuple[Reason, ...] = ()
    approvals: ApprovalFacts = field(default_factory=ApprovalFacts)
    readings: Mapping[str, object] = field(default_factory=dict)
    # Per policy name: a ``calendar_stale`` reason for each published calendar it uses whose last
    # good copy is older than the entry's maxAge (or that was never fetched). Fails closed.
    stale_calendars: Mapping[str, tuple[Reason, ...]] = field(default_factory=dict)
    # The revision is gatekeeper's own revert of a rolled-back release (its release context says so).
    rollback: RollbackRevert | None = None


@dataclass(frozen=True, slots=True)
class DecideOptions:
    """Settings that shape decisions (DESIGN §7 ``UNGOVERNED`` and ``RETRY_DELAY``)."""

    ungoverned: Verdict = Verdict.DEFER
    retry_delay: timedelta = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check's outcome. A defer clears by itself at ``not_before`` unless ``indefinite``."""

    verdict: Verdict = Verdict.APPROVE
    reasons: tuple[Reason, ...] = ()
    not_before: datetime | None = None
    indefinite: bool = False
    requires: tuple[str, ...] = ()
    retry: bool = False  # clears when a source recovers: retried after the retry delay
    overridable: bool = False  # break-glass may override it whatever its checks (provenance.breakGlass)


Check = Callable[[ReleaseRequest, Facts, Sequence[Policy], datetime], CheckResult]


def calendar_check(request: ReleaseRequest, facts: Facts, policies: Sequence[Policy], now: datetime) -> CheckResult:
    """Closed when any policy's calendar is closed at ``now``; not_before is the next open."""
    if not policies:
        return CheckResult()
    index = _combined(tuple(facts.calendars[policy.name] for policy in policies))
    at = utc_epoch(now)
    state = index.state(at)
    if not state.closed:
        return CheckResult()
    zone = policies[0].timezone  # people read the (first governing) policy's local time beside UTC
    reasons = tuple(
        calendar_reason(index, code, state.until[code], index.sources_at(code, at), zone) for code in state.codes
    )
    opens = index.next_open(at)
    not_before = from_epoch(opens) if opens is not None else None
    if not_before is not None and not_before - now > LOOKAHEAD:
        not_before = None
    return CheckResult(Verdict.DEFER, reasons, not_before=not_before, indefinite=not_before is None)


@lru_cache(maxsize=128)
def _combined(indexes: tuple[WindowIndex, ...]) -> WindowIndex:
    """Policies' indexes combined; memoised (indexes are immutable and hash by identity)."""
    return WindowIndex.union(indexes)


@lru_cache(maxsize=8192)
def calendar_reason(
    index: WindowIndex, code: str, until: int | None, active: tuple[str, ...], zone: str = "UTC"
) -> Reason:
    """A calendar reason naming the ``active`` entries behind ``code`` and when it stops applying.

    Memoised: a reason is a pure function of the (identity-hashed, immutable) index, the code, its
    end and the entries active, and the same few spans are asked about again and again.
    """
    end = from_epoch(until) if until is not None else None
    sources = ", ".join(active) or code
    when = f"until {with_local_time(end, zone)}" if end else "with no end in sight"
    if code == OUTSIDE_ALLOW:
        message = f"outside the allowed windows ({sources}) {when}"
    else:
        message = f"{code} is active ({sources}) {when}"
    return Reason(check="calendar", code=code, message=message, until=end)


def freshness_check(
    request: ReleaseRequest, facts: Facts, policies: Sequence[Policy], now: datetime
) -> CheckResult:
    """Closed while a published calendar a policy uses is older than its maxAge (fail closed):
    the copy may miss a freeze added since. Retried after the retry delay (the feed may recover)."""
    reasons = tuple(
        dict.fromkeys(reason for policy in policies for reason in facts.stale_calendars.get(policy.name, ()))
    )
    if not reasons:
        return CheckResult()
    return CheckResult(Verdict.DEFER, reasons, retry=True)


def gather_check(request: ReleaseRequest, facts: Facts, policies: Sequence[Policy], now: datetime) -> CheckResult:
    """Fail closed when gathering facts failed: retry after the retry delay.

    Only policies that enforce are blocked; observe-only policies report it under would_defer.
    """
    if not facts.gather_errors or not policies:
        return CheckResult()
    return CheckResult(Verdict.DEFER, facts.gather_errors)


def approvals_check(request: ReleaseRequest, facts: Facts, policies: Sequence[Policy], now: datetime) -> CheckResult:
    """Defer until each policy's required approvers (four eyes where asked) have approved."""
    reasons, requires = approvals.missing(policies, facts.approvals)
    if not reasons:
        return CheckResult()
    return CheckResult(Verdict.DEFER, reasons, requires=requires)


def drift_check(request: ReleaseRequest, facts: Facts, policies: Sequence[Policy], now: datetime) -> CheckResult:
    """Each policy's drift rule against the drift reader's outcome for it (DESIGN §3, Drift).

    ``warn`` approves with the reason; ``block`` defers until a holder of the policy's approvals
    role approves; a cluster or repository that cannot be read defers until RETRY_DELAY (fail
    closed); an unsupported source or a first release warns.
    """
    checked = [policy for policy in policies if policy.drift is not DriftMode.OFF]
    if not checked or any(reason.check == "drift" for reason in facts.gather_errors):
        return CheckResult()  # no rule, or the reader failed: gather_check defers already
    reading = facts.readings.get("drift")
    given = facts.approvals.approvals
    results = [_drift_result(policy, reading.of(policy.name) if isinstance(reading, DriftReading) else None, given)
               for policy in checked]  # fmt: skip
    verdict = max((result.verdict for result in results), key=STRICTNESS.__getitem__)
    return CheckResult(
        verdict,
        tuple(dict.fromkeys(reason for result in results for reason in result.reasons)),
        requires=tuple(dict.fromkeys(need for result in results for need in result.requires)),
        retry=any(result.retry for result in results),
    )


def _drift_result(policy: Policy, outcome: DriftOutcome | None, facts_approvals: Sequence[Approval]) -> CheckResult:
    if outcome is None:
        reason = Reason("drift", "facts_unavailable", f"policy {policy.name} checks drift, but drift was not read")
        return CheckResult(Verdict.DEFER, (reason,), retry=True)
    if outcome.problem is not None:
        if outcome.problem.code in drift.RETRIED:
            return CheckResult(Verdict.DEFER, (outcome.problem,), retry=True)
        return CheckResult(reasons=(outcome.problem,))
    if not outcome.drifted:
        return CheckResult()
    reason = Reason(
        "drift",
        drift.DETECTED,
        drift.summary(outcome.drifted, outcome.checked, outcome.baseline or "?"),
        None,
        drift.diff_lines(outcome.drifted),
        drift.digest(outcome.drifted),
    )
    if policy.drift is DriftMode.WARN:
        return CheckResult(reasons=(reason,))
    role = policy.approvals.role
    given = [approval.approver for approval in facts_approvals if _acknowledges(approval, role, reason.digest)]
    if given:  # an approval given while exactly this drift was shown
        return CheckResult(reasons=(replace(reason, message=f"{reason.message} (acknowledged by {given[0]})"),))
    return CheckResult(Verdict.DEFER, (reason,), requires=(f"approval:{role}",))


def provenance_check(
    request: ReleaseRequest, facts: Facts, policies: Sequence[Policy], now: datetime
) -> CheckResult:
    """Each policy's provenance rules against the provenance reader's outcome (DESIGN §3).

    A failure defers with no not_before (a new revision unblocks it; break-glass only where every
    failing policy says ``breakGlass: true``); a registry or repository that could not be read
    defers with a retry (fail closed).
    """
    checked = [policy for policy in policies if provenance.has_rules(policy.provenance)]
    if not checked or any(reason.check == provenance.CHECK for reason in facts.gather_errors):
        return CheckResult()  # no rule, or the reader failed: gather_check defers already
    reading = facts.readings.get(provenance.CHECK)
    reasons: list[Reason] = []
    failing: list[Policy] = []
    for policy in checked:
        outcome = reading.of(policy.name) if isinstance(reading, ProvenanceReading) else None
        unread = provenance.reason(provenance.NOT_READ, f"policy {policy.name} checks provenance, but it was not read")
        found = outcome.reasons if outcome is not None else (unread,)
        if found:
            failing.append(policy)
            reasons.extend(found)
    if not reasons:
        return CheckResult()
    unique = tuple(dict.fromkeys(reasons))
    retry = all(reason.code in provenance.RETRIED for reason in unique)
    return CheckResult(
        Verdict.DEFER,
        unique,
        indefinite=not retry,
        retry=retry,
        overridable=all(policy.provenance.break_glass for policy in failing),
    )


def _acknowledges(approval: Approval, role: str, digest: str | None) -> bool:
    return not approval.break_glass and role in approval.roles and digest in approval.acknowledged


def break_glass(results: Sequence[CheckResult], facts: Facts) -> list[CheckResult]:
    """A break-glass approval overrides calendar, freezes, drift and approvals (DESIGN §3)."""
    given = facts.approvals.break_glass
    if given is None:
        return list(results)
    kept: list[CheckResult] = []
    overridden: list[str] = []
    for result in results:
        overridable = result.overridable or all(reason.check in approvals.OVERRIDABLE for reason in result.reasons)
        if result.reasons and overridable:
            overridden.extend(reason.code for reason in result.reasons)
        else:
            kept.append(result)
    codes = ", ".join(dict.fromkeys(overridden)) or "nothing"
    message = f"break-glass by {given.approver}: {given.reason or 'no reason given'} (overrides: {codes})"
    kept.append(CheckResult(reasons=(Reason("approval", "break_glass", message, None),)))
    return kept


def rollback_revert(results: Sequence[CheckResult], facts: Facts) -> list[CheckResult]:
    """gatekeeper's own revert restores the state before an offending commit: nothing that holds
    a release back holds it (DESIGN §3 Rollback); what only warns is kept."""
    revert = facts.rollback
    if revert is None:
        return list(results)
    kept = [result for result in results if result.verdict is Verdict.APPROVE]
    held = [result for result in results if result.verdict is not Verdict.APPROVE]
    overridden = [reason.code for result in held for reason in result.reasons]
    kept.append(CheckResult(reasons=(Reason("rollback", "rollback", revert.message(overridden), None),)))
    return kept


CHECKS: tuple[Check, ...] = (
    calendar_check, freshness_check, drift_check, provenance_check, approvals_check, gather_check
)  # fmt: skip


def decide(
    request: ReleaseRequest,
    facts: Facts,
    policies: Sequence[Policy],
    *,
    now: datetime,
    options: DecideOptions = DecideOptions(),
) -> Decision:
    """Decide whether ``request`` may go out at ``now`` (strictest check wins)."""
    retry_at = now + options.retry_delay
    if facts.config_errors:
        reasons = tuple(
            Reason("config", "config_invalid", f"configuration did not load: {error}", None)
            for error in facts.config_errors
        )
        return _decision(Verdict.DEFER, reasons, retry_at, (), facts, now, ())
    governing = [policy for policy in policies if policy.governs(request.target)]
    if not governing and facts.gather_errors:  # fail closed, whatever UNGOVERNED says
        return _decision(Verdict.DEFER, facts.gather_errors, retry_at, (), facts, now, ())
    if not governing:
        return _ungoverned(request, facts, now, options)
    names = tuple(policy.name for policy in governing)
    enforced = [policy for policy in governing if policy.mode is Mode.ENFORCE]
    observed = [policy for policy in governing if policy.mode is Mode.OBSERVE]
    results = rollback_revert(break_glass([check(request, facts, enforced, now) for check in CHECKS], facts), facts)
    verdict, reasons, not_before, requires = _combine(results, retry_at, facts)
    would_defer = None
    if observed:
        shadow = [check(request, facts, observed, now) for check in CHECKS]
        would_defer = tuple(reason for result in shadow for reason in result.reasons)
    return _decision(verdict, reasons, not_before, requires, facts, now, names, would_defer)


def _combine(
    results: Sequence[CheckResult], retry_at: datetime, facts: Facts
) -> tuple[Verdict, tuple[Reason, ...], datetime | None, tuple[str, ...]]:
    if not results:  # an empty rule set never approves by accident
        reason = Reason("decision", "no_checks", "no check ran; refusing to approve", None)
        return Verdict.DEFER, (reason,), None, ()
    verdict = max((result.verdict for result in results), key=STRICTNESS.__getitem__)
    reasons = tuple(reason for result in results for reason in result.reasons)
    requires = tuple(dict.fromkeys(need for result in results for need in result.requires))
    if verdict is Verdict.APPROVE:
        return verdict, reasons, None, requires
    blocking = [result for result in results if result.verdict is not Verdict.APPROVE]
    instants = [result.not_before for result in blocking if result.not_before is not None]
    if facts.gather_errors or any(result.retry for result in blocking):
        instants.append(retry_at)
    if any(result.indefinite for result in blocking) or not instants:
        return verdict, reasons, None, requires
    return verdict, reasons, max(instants), requires


def _ungoverned(request: ReleaseRequest, facts: Facts, now: datetime, options: DecideOptions) -> Decision:
    if options.ungoverned is Verdict.APPROVE:
        return _decision(Verdict.APPROVE, (), None, (), facts, now, ())
    reason = Reason("policy", "no_policy", f"no policy governs target {request.target}", None)
    return _decision(Verdict.DEFER, (reason,), None, (), facts, now, ())


def _decision(
    verdict: Verdict,
    reasons: tuple[Reason, ...],
    not_before: datetime | None,
    requires: tuple[str, ...],
    facts: Facts,
    now: datetime,
    policies: tuple[str, ...],
    would_defer: tuple[Reason, ...] | None = None,
) -> Decision:
    return Decision(
        verdict=verdict,
        reasons=reasons,
        not_before=not_before if verdict is not Verdict.APPROVE else None,
        requires=requires,
        policy_hash=facts.policy_hash,
        decided_at=now,
        would_defer=would_defer,
        policies=policies,
    )

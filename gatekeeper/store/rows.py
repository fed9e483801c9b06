"""Rows to records: what every store module returns instead of SQLAlchemy rows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gatekeeper.domain.approvals import Approval
from gatekeeper.domain.records import ActionRecord, ApprovalRecord, DecisionRecord, ReleaseRecord
from gatekeeper.domain.releases import ReleaseStatus
from gatekeeper.domain.types import Decision, reason_dict
from gatekeeper.store.dialect import utc

EPOCH = datetime.min.replace(tzinfo=UTC)


def decision_values(release_id: int, decision: Decision, trigger: str) -> dict[str, Any]:
    """The columns of a decision row."""
    return {
        "release_id": release_id,
        "verdict": decision.verdict.value,
        "reasons": [reason_dict(reason) for reason in decision.reasons],
        "not_before": decision.not_before,
        "requires": list(decision.requires),
        "policy_hash": decision.policy_hash,
        "would_defer": None if decision.would_defer is None else [reason_dict(r) for r in decision.would_defer],
        "trigger": trigger,
        "decided_at": decision.decided_at,
    }


def release_record(m: Mapping[Any, Any]) -> ReleaseRecord:
    return ReleaseRecord(
        id=m["id"],
        target=m["target"],
        revision=m["revision"],
        status=ReleaseStatus(m["status"]),
        trigger=m["trigger"],
        created_at=utc(m["created_at"]) or EPOCH,
        updated_at=utc(m["updated_at"]) or EPOCH,
        author=m.get("author"),
        merger=m.get("merger"),
        context=m.get("context"),
        not_before=utc(m.get("not_before")),
    )


def decision_record(m: Mapping[Any, Any]) -> DecisionRecord:
    return DecisionRecord(
        id=m["id"],
        release_id=m["release_id"],
        verdict=m["verdict"],
        reasons=m["reasons"],
        not_before=utc(m["not_before"]),
        requires=m["requires"],
        policy_hash=m["policy_hash"],
        would_defer=m["would_defer"],
        trigger=m["trigger"],
        decided_at=utc(m["decided_at"]) or EPOCH,
    )


def approval_record(m: Mapping[Any, Any]) -> ApprovalRecord:
    return ApprovalRecord(
        id=m["id"],
        approver=m["approver"],
        roles=m["roles"],
        reason=m["reason"],
        break_glass=m["break_glass"],
        created_at=utc(m["created_at"]) or EPOCH,
    )


def approval_of(m: Mapping[Any, Any]) -> Approval:
    """An approval row as the fact ``decide`` counts."""
    roles, identities = frozenset(m["roles"]), frozenset(m.get("identities") or ())
    acknowledged = frozenset(m.get("drift_digests") or ())
    return Approval(m["approver"], roles, m["break_glass"], m["reason"], utc(m["created_at"]), identities, acknowledged)


def action_record(m: Mapping[Any, Any]) -> ActionRecord:
    return ActionRecord(
        id=m["id"],
        kind=m["kind"],
        release_id=m["release_id"],
        scope=m["scope"],
        key=m["idempotency_key"],
        payload=m["payload"],
        digest=m["digest"],
        status=m["status"],
        attempts=m["attempts"],
        next_attempt_at=utc(m["next_attempt_at"]) or EPOCH,
        claimed_until=utc(m["claimed_until"]),
        claimed_by=m["claimed_by"],
        last_error=m["last_error"],
        result=m["result"],
        created_at=utc(m["created_at"]) or EPOCH,
        updated_at=utc(m["updated_at"]) or EPOCH,
    )


def audit_instant(value: datetime) -> str:
    """How an audit instant is hashed: UTC with microseconds (stable across both databases)."""
    moment = utc(value) or value
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def audit_row(m: Mapping[Any, Any]) -> dict[str, Any]:
    """An audit row as the JSON record that ``audit export`` writes and ``audit verify`` reads."""
    return {
        "seq": m["seq"],
        "at": audit_instant(m["at"]),
        "kind": m["kind"],
        "actor": m["actor"],
        "subject": m["subject"],
        "data": m["data"],
        "break_glass": bool(m["break_glass"]),
        "prev_hash": m["prev_hash"],
        "hash": m["hash"],
    }


def short(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's text, truncated (never a whole driver message)."""
    text_ = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text_[:limit]

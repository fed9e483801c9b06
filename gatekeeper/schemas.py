"""Wire shapes (DESIGN §4) shared by the HTTP API and the CLI's ``--json`` output.

Request bodies are pydantic models (validated at the edge); responses are rendered from domain
values by the ``*_json`` functions, so the CLI and the API print exactly the same shapes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from gatekeeper.calendar import Status, Windows
from gatekeeper.domain.durations import Duration
from gatekeeper.domain.freezes import MAX_GLOBS, Freeze, check_glob
from gatekeeper.domain.outlook import Outlook
from gatekeeper.domain.records import DecisionRecord
from gatekeeper.domain.types import (
    Decision,
    Reason,
    ReleaseRequest,
    format_instant,
    from_epoch,
    parse_target,
    reason_details,
)

# No control characters (NUL among them): PostgreSQL refuses them in text, and one such call
# would fail the batch it shares with other callers' (gatekeeper.store.batching).
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

# The white space that Python's and Rust's (pydantic's) ``\s`` match beyond the control characters
# above, spelled out: ECMA 262's ``\s`` (OpenAPI readers, schemathesis) differs at U+0085 and U+FEFF,
# so a pattern of the document never says ``\s``.
SPACE = r"\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
REVISION_PATTERN = rf"^[^\x00-\x1f\x7f{SPACE}]+$"

# Ids are PostgreSQL BIGINTs: a release id, audit sequence number or cursor outside 1..2^63-1
# is a 422 naming the parameter, never a database error (DESIGN §4 "Limits").
MAX_ID = 2**63 - 1
MAX_TARGET = 512
MAX_STATUS = 32



def decimal_pattern(maximum: int) -> str:
    """A regular expression of the decimals 1..``maximum`` without leading zeros (for OpenAPI:
    a range of an integer sent as a string, as cursors are, said as exactly as the server checks it)."""
    digits = str(maximum)
    shorter = f"[1-9][0-9]{{0,{len(digits) - 2}}}" if len(digits) > 1 else ""
    same_length = [digits]
    for at, digit in enumerate(digits):
        low = 1 if at == 0 else 0
        if int(digit) > low:
            rest = len(digits) - at - 1
            same_length.append(f"{digits[:at]}[{low}-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    return "^(?:" + "|".join(filter(None, [shorter, *same_length])) + ")$"


# What ``?cursor=`` takes, for the OpenAPI document (empty: the first page, as when absent).
CURSOR_PATTERN = decimal_pattern(MAX_ID).replace("^(?:", "^(?:|", 1)

# The target formats of ``domain.types.parse_target`` as one pattern, without control characters
# (PRINTABLE): what the API accepts as a target, for the OpenAPI document. A unit test holds the
# two together.
TARGET_PATTERN = (
    r"^(?:argocd:(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?/)?[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?"
    r"|flux:(?:Kustomization|HelmRelease)/[a-z0-9](?:[-a-z0-9]*[a-z0-9])?/[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?"
    rf"|git:[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+@[^@\x00-\x1f\x7f{SPACE}]+)$"
)


def _cursor(value: str | None) -> str | None:
    if value and (
        not (value.isascii() and value.isdigit())
        or value.startswith("0")
        or len(value) > 19
        or not 1 <= int(value) <= MAX_ID
    ):
        raise ValueError(f"not a cursor returned by this API (a release id from 1 to {MAX_ID})")
    return value


# A ``?cursor=`` as the list routes take it: digits of an id in 1..2^63-1 (else 422 naming it).
Cursor = Annotated[str | None, AfterValidator(_cursor)]


class GateContext(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str | None = Field(None, max_length=256, pattern=PRINTABLE)
    cluster: str | None = Field(None, max_length=256, pattern=PRINTABLE)
    project: str | None = Field(None, max_length=256, pattern=PRINTABLE)


# What gatekeeper and its webhooks write as a decision's trigger (the audit record's actor): a
# hook's gate call cannot use them (its own labels: presync, sync-wave, pipeline, ...).
RESERVED_TRIGGERS = frozenset({"scheduler", "gatekeeper", "gate_closed", "gate_opened"})
WEBHOOK_TRIGGERS = ("github-", "gitlab-", "argocd-", "flux-")


class GateRequest(BaseModel):
    """The body of ``POST /v1/gate`` (and of ``gatekeeper check REQUEST.json``)."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(
        min_length=1, max_length=MAX_TARGET, pattern=PRINTABLE, json_schema_extra={"pattern": TARGET_PATTERN}
    )
    revision: str = Field(min_length=1, max_length=256, pattern=REVISION_PATTERN)
    # A label of what called (presync, sync-wave, pipeline...). No ":", which marks the decisions
    # gatekeeper itself makes ("approval:alice", "rejection:bob"): a caller cannot pass as one.
    trigger: str = Field("presync", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    context: GateContext | None = None

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        return parse_target(value)

    @field_validator("trigger")
    @classmethod
    def _trigger(cls, value: str) -> str:
        if value.lower() in RESERVED_TRIGGERS or value.lower().startswith(WEBHOOK_TRIGGERS):
            raise ValueError(f"trigger {value!r} is gatekeeper's own or a webhook's: a gate call cannot pass as one")
        return value

    def to_domain(self) -> ReleaseRequest:
        context = self.context.model_dump(exclude_none=True) if self.context else {}
        return ReleaseRequest(
            target=parse_target(self.target),
            revision=self.revision,
            trigger=self.trigger,
            context=tuple(sorted(context.items())),
        )


def _instant(value: str | None) -> datetime | None:
    return parse_instant(value) if value is not None else None


def _checked_instant(value: str | None) -> str | None:
    _instant(value)  # a ValueError naming the problem: 422 naming the field
    return value


MAX_FREEZE = timedelta(days=3660)


def _duration(text: str) -> timedelta:
    parsed = Duration.parse(text)
    if parsed.days > MAX_FREEZE.days or parsed.seconds > MAX_FREEZE.total_seconds():
        raise ValueError(f"duration {text!r} is longer than {MAX_FREEZE.days} days")
    return timedelta(days=parsed.days, seconds=parsed.seconds)


def _checked_duration(value: str | None) -> str | None:
    if value is not None:
        _duration(value)  # a ValueError naming the problem: 422 naming duration
    return value


def _glob(value: str) -> str:
    return check_glob(value)  # its InvalidGlobError is a ValueError: 422 naming targets.N


# RFC 3339 with an offset (else 422 naming the field); the document says date-time.
InstantIn = Annotated[
    str | None, Field(json_schema_extra={"format": "date-time"}), AfterValidator(_checked_instant)
]
Glob = Annotated[str, Field(min_length=1, max_length=512, pattern=PRINTABLE), AfterValidator(_glob)]


class FreezeRequest(BaseModel):
    """The body of ``POST /v1/freezes``: which targets, from when (default now), until when (null:
    until lifted) and why."""

    model_config = ConfigDict(extra="forbid")

    targets: list[Glob] = Field(min_length=1, max_length=MAX_GLOBS, description="globs on target keys")
    start: InstantIn = Field(None, description="RFC 3339 with an offset; default (and at the earliest) now")
    end: InstantIn = Field(None, description="RFC 3339 with an offset; null: until lifted")
    duration: Annotated[str | None, AfterValidator(_checked_duration)] = Field(
        None, max_length=64, description="instead of end: how long from the start, e.g. 2h, 90m, PT2H (a day is 24 h)"
    )
    # Not blank: checked by the release manager (its message says what needs it); the document says it.
    reason: str = Field(max_length=2000, description="why (required, not blank)", json_schema_extra={"pattern": r"\S"})

    def instants(self) -> tuple[datetime | None, datetime | None, timedelta | None]:
        """Start, end and duration (the service counts a duration from the start it settles on)."""
        lasting = _duration(self.duration) if self.duration is not None else None
        return _instant(self.start), _instant(self.end), lasting


def freeze_json(freeze: Freeze, now: datetime) -> dict[str, Any]:
    return {
        "id": freeze.id,
        "targets": list(freeze.targets),
        "start": format_instant(freeze.start),
        "end": format_instant(freeze.end),
        "reason": freeze.reason,
        "code": freeze.code,
        "state": freeze.state(now).value,
        "created_by": freeze.created_by,
        "created_at": format_instant(freeze.created_at),
        "lifted_at": format_instant(freeze.lifted_at),
        "lifted_by": freeze.lifted_by,
        "lift_reason": freeze.lift_reason,
    }


def outlook_json(outlook: Outlook | None) -> dict[str, Any] | None:
    """``shipping`` of ``GET /v1/releases/{id}``: when it can go and what else holds it."""
    if outlook is None:
        return None
    return {
        "as_of": format_instant(outlook.as_of),
        "at": format_instant(outlook.at),
        "closed_by": [reason_json(reason) for reason in outlook.closed_by],
        "blocked_by": list(outlook.blocked_by),
        "approvals": [
            {
                "policy": count.policy,
                "role": count.role,
                "required": count.required,
                "given": count.given,
                "approvers": list(count.approvers),
            }
            for count in outlook.approvals
        ],
        "queue": [
            {
                "id": queued.id,
                "revision": queued.revision,
                "status": queued.status.value,
                "created_at": format_instant(queued.created_at),
            }
            for queued in outlook.queue
        ],
        "position": outlook.position,
    }


def parse_instant(text: str) -> datetime:
    """RFC 3339 with an offset; ValueError (naming the problem) otherwise."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an RFC 3339 instant (e.g. 2026-11-24T14:00:00+01:00)") from None
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset (add Z or +01:00)")
    return value


def reason_json(reason: Reason) -> dict[str, Any]:
    return {
        "check": reason.check,
        "code": reason.code,
        "message": reason.message,
        "until": format_instant(reason.until),
        **reason_details(reason),
    }


def status_json(status: Status) -> dict[str, Any]:
    return {
        "target": status.target,
        "at": format_instant(status.at),
        "closed": status.closed,
        "reasons": [reason_json(reason) for reason in status.reasons],
        "next_open": format_instant(status.next_open),
        "next_close": format_instant(status.next_close),
        "next_close_reason": status.next_close_reason,
    }


def windows_json(windows: Windows) -> dict[str, Any]:
    return {
        "target": windows.target,
        "from": format_instant(windows.start),
        "to": format_instant(windows.end),
        "closed": [
            {
                "start": format_instant(from_epoch(window.start)),
                "end": format_instant(from_epoch(window.end)),
                "codes": list(window.codes),
            }
            for window in windows.closed
        ],
    }


def decision_json(decision: Decision, *, release_id: str | None, target: str, revision: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "release_id": release_id,
        "target": target,
        "revision": revision,
        "verdict": decision.verdict.value,
        "reasons": [reason_json(reason) for reason in decision.reasons],
        "not_before": format_instant(decision.not_before),
        "requires": list(decision.requires),
        "policy_hash": decision.policy_hash,
        "decided_at": format_instant(decision.decided_at),
    }
    if decision.would_defer is not None:
        body["would_defer"] = [reason_json(reason) for reason in decision.would_defer]
    return body


def decision_record_json(record: DecisionRecord, *, target: str, revision: str) -> dict[str, Any]:
    """A stored decision in the Decision shape (plus its ``trigger``)."""
    body: dict[str, Any] = {
        "release_id": record.release_id,
        "target": target,
        "revision": revision,
        "verdict": record.verdict,
        "reasons": record.reasons,
        "not_before": format_instant(record.not_before),
        "requires": record.requires,
        "policy_hash": record.policy_hash,
        "decided_at": format_instant(record.decided_at),
        "trigger": record.trigger,
    }
    if record.would_defer is not None:
        body["would_defer"] = record.would_defer
    return body

"""Wire shapes (DESIGN §4) shared by the HTTP API and the CLI's ``--json`` output.

Request bodies are pydantic models (validated at the edge); responses are rendered from domain
values by the ``*_json`` functions, so the CLI and the API print exactly the same shapes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from gatekeeper.calendar import Status, Windows
from gatekeeper.domain.records import DecisionRecord
from gatekeeper.domain.types import (
    Decision,
    Reason,
    ReleaseRequest,
    format_instant,
    from_epoch,
    parse_target,
)

# No control characters (NUL among them): PostgreSQL refuses them in text, and one such call
# would fail the batch it shares with other callers' (gatekeeper.store.batching).
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"

# Ids are PostgreSQL BIGINTs: a release id, audit sequence number or cursor outside 1..2^63-1
# is a 422 naming the parameter, never a database error (DESIGN §4 "Limits").
MAX_ID = 2**63 - 1
MAX_TARGET = 512
MAX_STATUS = 32


def _cursor(value: str | None) -> str | None:
    if value and (not (value.isascii() and value.isdigit()) or len(value) > 19 or not 1 <= int(value) <= MAX_ID):
        raise ValueError(f"not a cursor returned by this API (a release id from 1 to {MAX_ID})")
    return value


# A ``?cursor=`` as the list routes take it: digits of an id in 1..2^63-1 (else 422 naming it).
Cursor = Annotated[str | None, AfterValidator(_cursor)]


class GateContext(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str | None = Field(None, max_length=256, pattern=PRINTABLE)
    cluster: str | None = Field(None, max_length=256, pattern=PRINTABLE)
    project: str | None = Field(None, max_length=256, pattern=PRINTABLE)


class GateRequest(BaseModel):
    """The body of ``POST /v1/gate`` (and of ``gatekeeper check REQUEST.json``)."""

    model_config = ConfigDict(extra="forbid")

    target: str = Field(min_length=1, max_length=MAX_TARGET, pattern=PRINTABLE)
    revision: str = Field(min_length=1, max_length=256, pattern=r"^[^\s\x00-\x1f\x7f]+$")
    # A label of what called (presync, sync-wave, pipeline...). No ":", which marks the decisions
    # gatekeeper itself makes ("approval:alice", "rejection:bob"): a caller cannot pass as one.
    trigger: str = Field("presync", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    context: GateContext | None = None

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        return parse_target(value)

    def to_domain(self) -> ReleaseRequest:
        context = self.context.model_dump(exclude_none=True) if self.context else {}
        return ReleaseRequest(
            target=parse_target(self.target),
            revision=self.revision,
            trigger=self.trigger,
            context=tuple(sorted(context.items())),
        )


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

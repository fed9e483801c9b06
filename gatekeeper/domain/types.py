"""Domain values shared by the core: targets, releases, reasons and decisions.

Frozen dataclasses only; wire formats are converted to these at the edges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NewType
from zoneinfo import ZoneInfo

TargetKey = NewType("TargetKey", str)
CommitSha = NewType("CommitSha", str)
Digest = NewType("Digest", str)
DeliveryId = NewType("DeliveryId", str)

_TARGET_PATTERNS = (
    re.compile(r"argocd:([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?"),
    re.compile(r"flux:(Kustomization|HelmRelease)/[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?"),
    re.compile(r"git:[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+@[^\s@]+"),
)
TARGET_FORMATS = "argocd:[<namespace>/]<application>, flux:<Kind>/<namespace>/<name> or git:<owner/repo>@<branch>"


class InvalidTargetError(ValueError):
    """A target key that matches none of the documented formats."""


def parse_target(raw: str) -> TargetKey:
    """Return ``raw`` as a TargetKey, or raise InvalidTargetError naming the expected formats."""
    if any(pattern.fullmatch(raw) for pattern in _TARGET_PATTERNS):
        return TargetKey(raw)
    raise InvalidTargetError(f"target {raw!r} is not of the form {TARGET_FORMATS}")


class Verdict(StrEnum):
    APPROVE = "approve"
    DEFER = "defer"
    ROLLBACK = "rollback"


# Strictness order: the decision is the strictest verdict of its checks.
STRICTNESS = {Verdict.APPROVE: 0, Verdict.DEFER: 1, Verdict.ROLLBACK: 2}


@dataclass(frozen=True, slots=True)
class DiffLine:
    """One difference a check found, readable as is: in ``object`` (e.g. ``apps/v1 Deployment
    odoo/web``) the field at JSON pointer ``path`` is ``desired`` in Git and ``live`` in the
    cluster (values as short JSON; ``path`` empty when the whole object is missing)."""

    object: str
    path: str
    desired: str
    live: str


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a check did not pass: a stable snake_case code, a message, and when it stops applying.

    ``diff`` carries the differences behind a reason where a check has them (drift), truncated;
    ``digest`` identifies them (an approval acknowledges exactly the drift of that digest)."""

    check: str
    code: str
    message: str
    until: datetime | None = None
    diff: tuple[DiffLine, ...] = ()
    digest: str | None = None


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """One revision of one target asking to go out (the body of ``POST /v1/gate``)."""

    target: TargetKey
    revision: str
    trigger: str = "presync"
    context: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of ``decide``: a verdict with its reasons (DESIGN §2)."""

    verdict: Verdict
    reasons: tuple[Reason, ...]
    not_before: datetime | None
    requires: tuple[str, ...]
    policy_hash: str
    decided_at: datetime
    would_defer: tuple[Reason, ...] | None = None
    policies: tuple[str, ...] = field(default=())


def reason_details(reason: Reason) -> dict[str, object]:
    """The optional parts of a reason as JSON (``diff``, ``digest``): present only when set, so
    that the reasons of every other check keep their four keys."""
    details: dict[str, object] = {}
    if reason.diff:
        details["diff"] = [
            {"object": line.object, "path": line.path, "desired": line.desired, "live": line.live}
            for line in reason.diff
        ]
    if reason.digest is not None:
        details["digest"] = reason.digest
    return details


def utc_epoch(instant: datetime) -> int:
    """Seconds since the epoch of an aware datetime (the index works in whole seconds)."""
    if instant.tzinfo is None:
        raise ValueError(f"instant {instant.isoformat()} has no UTC offset")
    return int(instant.timestamp())


def from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def format_instant(instant: datetime | None) -> str | None:
    """Instants out are UTC ``YYYY-MM-DDTHH:MM:SSZ`` (DESIGN §4)."""
    if instant is None:
        return None
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def with_local_time(instant: datetime, zone: str) -> str:
    """``2026-11-24T15:00:00Z (16:00 Europe/Berlin)``: the UTC instant with the local time people
    read beside it (the local date too when it is another day); UTC says it once."""
    text = format_instant(instant) or ""
    if zone == "UTC":
        return text
    local = instant.astimezone(ZoneInfo(zone))
    same_day = local.date() == instant.astimezone(UTC).date()
    return f"{text} ({local.strftime('%H:%M' if same_day else '%Y-%m-%d %H:%M')} {zone})"


def reason_dict(reason: Reason) -> dict[str, Any]:
    """A reason as stored and answered (DESIGN §4)."""
    until = format_instant(reason.until)
    base = {"check": reason.check, "code": reason.code, "message": reason.message, "until": until}
    return base | reason_details(reason) if reason.diff or reason.digest else base

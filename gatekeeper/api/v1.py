"""Routes of ``/v1`` for hooks, people and tools: parse, call the service, render."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from gatekeeper.api.auth import check_target, require
from gatekeeper.api.errors import ApiError
from gatekeeper.api.feed import closed_windows_feed
from gatekeeper.api.openapi import (
    AUTH,
    BODY,
    ActionPage,
    AuditHead,
    AuditPage,
    ClosedWindows,
    GateDecision,
    GateStatus,
    Release,
    ReleasePage,
    errors,
    reason_required,
    reason_with_break_glass,
    text,
)
from gatekeeper.domain.records import ActionRecord, DecisionRecord, GateRecord, ReleaseDetail
from gatekeeper.domain.types import InvalidTargetError, format_instant, parse_target, utc_epoch
from gatekeeper.people import ReleaseManager
from gatekeeper.schemas import (
    CURSOR_PATTERN,
    MAX_ID,
    MAX_STATUS,
    MAX_TARGET,
    PRINTABLE,
    TARGET_PATTERN,
    Cursor,
    GateRequest,
    decision_record_json,
    outlook_json,
    parse_instant,
    reason_json,
    status_json,
    windows_json,
)
from gatekeeper.service import GateService
from gatekeeper.tokens import Identity

router = APIRouter(prefix="/v1", tags=["v1: hooks, people and tools"])
PAGE = 50
FEED_DAYS = 120  # the calendar feed: from 7 days back (UTC midnight) to 120 days ahead
FEED_PAST_DAYS = 7
FEED_MARGIN_DAYS = 62
_SPACE_OFFSET = re.compile(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:\d{2})$")


def feed_range(now: datetime) -> tuple[datetime, datetime]:
    """The calendar feed's span at ``now``: whole UTC days, the same all day long."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=FEED_PAST_DAYS), today + timedelta(days=FEED_DAYS + 1)


async def service(request: Request) -> GateService:
    result: GateService = request.app.state.service
    return result


Service = Annotated[GateService, Depends(service)]
ReleaseId = Annotated[int, Path(ge=1, le=MAX_ID)]
# The target formats are checked by target_param (its message names them); the document says them.
Target = Annotated[str, Query(max_length=MAX_TARGET, pattern=PRINTABLE, json_schema_extra={"pattern": TARGET_PATTERN})]
# RFC 3339 with an offset, checked by instant_param (an instant without one is 422).
CursorQuery = Annotated[Cursor, Query(json_schema_extra={"pattern": CURSOR_PATTERN})]
INSTANT = {"format": "date-time", "description": "RFC 3339 with an offset, e.g. 2026-11-24T14:00:00+01:00"}



def instant_param(value: str, field: str) -> datetime:
    # A '+' offset sent unencoded in a query string arrives as a space.
    value = _SPACE_OFFSET.sub(r"\1+\2", value.strip())
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise ApiError(422, "invalid_request", f"{field}: {exc}", field) from None


def target_param(value: str) -> str:
    try:
        return parse_target(value)
    except InvalidTargetError as exc:
        raise ApiError(422, "invalid_request", f"target: {exc}", "target") from None


def decision_body(record: DecisionRecord, target: str, revision: str) -> dict[str, Any]:
    return decision_record_json(record, target=target, revision=revision)


def gate_body(record: GateRecord) -> dict[str, Any]:
    body = decision_body(record.decision, record.release.target, record.release.revision)
    body["status"] = record.release.status.value
    return body


def release_body(detail: ReleaseDetail) -> dict[str, Any]:
    release = detail.release
    return {
        "id": release.id,
        "target": release.target,
        "revision": release.revision,
        "status": release.status.value,
        "author": release.author,
        "merger": release.merger,
        "created_at": format_instant(release.created_at),
        "updated_at": format_instant(release.updated_at),
        "decisions": [decision_body(d, release.target, release.revision) for d in detail.decisions],
        "approvals": [
            {
                "approver": a.approver,
                "roles": a.roles,
                "reason": a.reason,
                "break_glass": a.break_glass,
                "created_at": format_instant(a.created_at),
            }
            for a in detail.approvals
        ],
    }


@router.post(
    "/gate",
    summary="Decide whether a release may go now (Argo CD PreSync hook, pipelines)",
    description="Role `hook` (a token limited to targets may act only on those).",
    responses={200: {"model": GateDecision}, **errors(*AUTH, *BODY)},
)
def gate(
    body: GateRequest, gatekeeper: Service, identity: Annotated[Identity, Depends(require("hook"))]
) -> dict[str, Any]:
    check_target(identity, body.target)
    record = gatekeeper.gate(body.to_domain())
    return gate_body(record) | {"goes_out_by_itself": gatekeeper.goes_out_by_itself(record.release.target)}


@router.get(
    "/releases",
    summary="Releases, newest first",
    description="Role `viewer`.",
    responses={200: {"model": ReleasePage}, **errors(*AUTH, 422, 503)},
)
def list_releases(
    gatekeeper: Service,
    _identity: Annotated[Identity, Depends(require("viewer"))],
    status: Annotated[str | None, Query(max_length=MAX_STATUS, pattern=PRINTABLE)] = None,
    target: Annotated[str | None, Query(max_length=MAX_TARGET, pattern=PRINTABLE)] = None,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE,
) -> dict[str, Any]:
    before = None
    if cursor:
        if not cursor.isdigit():
            raise ApiError(422, "invalid_request", "cursor: not a cursor returned by this API", "cursor")
        before = int(cursor)
    page, next_id = gatekeeper.releases(status=status, target=target, before_id=before, limit=limit)
    return {"items": [release_body(d) for d in page], "next": str(next_id) if next_id is not None else None}


@router.get(
    "/releases/{release_id}",
    summary="One release with its decisions, approvals and when it can ship",
    description="Role `viewer` or `hook`. `shipping` (null once the release no longer waits): `at`, the "
    "first instant its calendar and the ad-hoc freezes let it go (null: not within 366 days, or a freeze "
    "until lifted); `closed_by`, what closes the calendar now; `blocked_by`, what else the latest "
    "decision named (approvals, provenance, drift, facts); `approvals`, given of required per policy; "
    "`queue`, the target's releases not yet applied, oldest first, and this one's `position`.",
    responses={200: {"model": Release}, **errors(*AUTH, 404, 422, 503)},
)
def get_release(
    release_id: ReleaseId, gatekeeper: Service, _identity: Annotated[Identity, Depends(require("viewer", "hook"))]
) -> dict[str, Any]:
    detail = gatekeeper.release(release_id)
    if detail is None:
        raise ApiError(404, "not_found", f"release {release_id} does not exist")
    shipping = outlook_json(gatekeeper.forecast.outlook(detail))
    if shipping is not None:
        shipping["goes_out_by_itself"] = gatekeeper.goes_out_by_itself(detail.release.target)
    return release_body(detail) | {"shipping": shipping}


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=reason_with_break_glass)

    reason: str | None = Field(None, max_length=2000)
    break_glass: StrictBool = False  # true or false, never "yes" or 1: it overrides the calendar


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=2000)


class RejectBody(ReasonBody):
    # The reason is checked by the release manager (its message says what needs it); the
    # document says it is required.
    model_config = ConfigDict(extra="forbid", json_schema_extra=reason_required)


async def manager(request: Request) -> ReleaseManager:
    result: ReleaseManager = request.app.state.manager
    return result


Manager = Annotated[ReleaseManager, Depends(manager)]


@router.post(
    "/releases/{release_id}/approve",
    summary="Approve (release-manager); break_glass also needs break-glass",
    description="Role `release-manager`; with `break_glass: true` the role `break-glass`. "
    "A four-eyes refusal is 403 with error `four_eyes`.",
    responses={200: {"model": Release}, **errors(*AUTH, 404, 409, *BODY)},
)
def approve(
    release_id: ReleaseId,
    body: ApproveBody,
    people: Manager,
    identity: Annotated[Identity, Depends(require("release-manager", "break-glass"))],
) -> dict[str, Any]:
    if not body.break_glass and "release-manager" not in identity.roles:
        raise ApiError(403, "forbidden", f"token {identity.name!r} lacks the role release-manager")
    return release_body(people.approve(release_id, identity, body.reason, break_glass=body.break_glass))


@router.post(
    "/releases/{release_id}/reject",
    summary="Reject a waiting release (release-manager)",
    description="Role `release-manager`.",
    responses={200: {"model": Release}, **errors(*AUTH, 404, 409, *BODY)},
)
def reject(
    release_id: ReleaseId,
    body: RejectBody,
    people: Manager,
    identity: Annotated[Identity, Depends(require("release-manager"))],
) -> dict[str, Any]:
    return release_body(people.reject(release_id, identity, body.reason))


@router.post(
    "/releases/{release_id}/rollback",
    summary="Ask for a rollback of a release (release-manager)",
    description="Role `release-manager`.",
    responses={200: {"model": Release}, **errors(*AUTH, 404, 409, *BODY)},
)
def rollback(
    release_id: ReleaseId,
    body: ReasonBody,
    people: Manager,
    identity: Annotated[Identity, Depends(require("release-manager"))],
) -> dict[str, Any]:
    return release_body(people.rollback(release_id, identity, body.reason))


@router.get(
    "/audit/head",
    summary="The newest record of the audit chain: keep it outside the database",
    description="Role `viewer`.",
    responses={200: {"model": AuditHead}, **errors(*AUTH, 503)},
)
def get_audit_head(gatekeeper: Service, _identity: Annotated[Identity, Depends(require("viewer"))]) -> dict[str, Any]:
    seq, digest = gatekeeper.store.audit_head()
    return {"seq": seq, "hash": digest}


@router.get(
    "/audit",
    summary="The hash-chained audit log, oldest first",
    description="Role `viewer`.",
    responses={200: {"model": AuditPage}, **errors(*AUTH, 422, 503)},
)
def get_audit(
    gatekeeper: Service,
    _identity: Annotated[Identity, Depends(require("viewer"))],
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    items = gatekeeper.store.audit_records(after=after, limit=limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return {"items": items, "next": str(items[-1]["seq"]) if more and items else None}


ACTION_STATUSES = ("pending", "running", "done", "failed")


def action_body(action: ActionRecord) -> dict[str, Any]:
    return {
        "id": action.id,
        "release_id": action.release_id,
        "kind": action.kind,
        "status": action.status,
        "attempts": action.attempts,
        "next_attempt_at": format_instant(action.next_attempt_at),
        "last_error": action.last_error,
        "result": action.result,
        "claimed_by": action.claimed_by,
        "created_at": format_instant(action.created_at),
        "updated_at": format_instant(action.updated_at),
    }


@router.get(
    "/actions",
    summary="The outbox: effects of decisions and how they went, newest first",
    description="Role `viewer`.",
    responses={200: {"model": ActionPage}, **errors(*AUTH, 422, 503)},
)
def list_actions(
    gatekeeper: Service,
    _identity: Annotated[Identity, Depends(require("viewer"))],
    release: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    status: Annotated[str | None, Query(json_schema_extra={"enum": list(ACTION_STATUSES)})] = None,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = PAGE,
) -> dict[str, Any]:
    if status is not None and status not in ACTION_STATUSES:
        raise ApiError(422, "invalid_request", f"status: one of {', '.join(ACTION_STATUSES)}", "status")
    before = int(cursor) if cursor else None
    found = gatekeeper.store.actions(status=status, before_id=before, limit=limit + 1, release_id=release)
    page = found[:limit]
    more = len(found) > limit
    return {"items": [action_body(a) for a in page], "next": str(page[-1].id) if more and page else None}


@router.get(
    "/status",
    summary="Is the gate of a target open at an instant?",
    description="Role `viewer`. `at` defaults to now. A published calendar past its `maxAge` closes the "
    "gate from now on with reason `calendar_stale` (`until` and `next_open` null: a fresh copy ends it), "
    "as it closes the gate's decisions; instants before now are answered from its last good copy.",
    responses={200: {"model": GateStatus}, **errors(*AUTH, 422, 503)},
)
def get_status(
    gatekeeper: Service,
    _identity: Annotated[Identity, Depends(require("viewer"))],
    target: Target,
    at: Annotated[str | None, Query(json_schema_extra=INSTANT)] = None,
) -> dict[str, Any]:
    key = target_param(target)
    moment = instant_param(at, "at") if at is not None else None
    return status_json(gatekeeper.forecast.status(key, moment))


@router.get(
    "/windows",
    summary="Closed windows of a target in [from, to)",
    description="Role `viewer`. `to` must not be before `from`, and at most 800 days after it (else 422). "
    "A published calendar past its `maxAge` closes `[now, to)` with code `calendar_stale`.",
    responses={200: {"model": ClosedWindows}, **errors(*AUTH, 422, 503)},
)
def get_windows(
    gatekeeper: Service,
    _identity: Annotated[Identity, Depends(require("viewer"))],
    target: Target,
    start: Annotated[str, Query(alias="from", json_schema_extra=INSTANT)],
    end: Annotated[str, Query(alias="to", json_schema_extra=INSTANT)],
) -> dict[str, Any]:
    key = target_param(target)
    first, last = instant_param(start, "from"), instant_param(end, "to")
    if last < first:
        raise ApiError(422, "invalid_request", "to: must not be before from", "to")
    if last - first > timedelta(days=800):
        raise ApiError(422, "invalid_request", "to: at most 800 days after from", "to")
    return windows_json(gatekeeper.forecast.windows(key, first, last))


@router.get(
    "/calendar.ics",
    summary="Closed windows as an iCalendar feed (token may be a query parameter)",
    description="Role `viewer`, as a bearer token or as `?token=` (calendar clients send no headers).",
    response_class=Response,
    responses={**text("text/calendar", "RFC 5545 feed of the closed windows"), **errors(*AUTH, 422, 503)},
)
def calendar_feed(
    request: Request,
    gatekeeper: Service,
    _identity: Annotated[Identity, Depends(require("viewer", allow_query_token=True))],
    target: Target,
) -> Response:
    key = target_param(target)
    now = gatekeeper.clock().replace(microsecond=0)
    start, end = feed_range(now)
    # Windows that reach past the feed's edges are computed whole (up to a margin), so every event
    # keeps its real start and end, and its UID: a calendar client that refreshes the feed sees the
    # same events, not a new first and last one on every fetch.
    margin = timedelta(days=FEED_MARGIN_DAYS)
    # A stale published calendar is left out: it is a state of now (with /readyz, /metrics and the
    # gate saying it), and an event from "now" would change its start and UID on every fetch.
    windows = gatekeeper.forecast.windows(key, start - margin, end + margin, stale=False)
    lo, hi = utc_epoch(start), utc_epoch(end)
    shown = replace(windows, closed=tuple(w for w in windows.closed if w.end > lo and w.start < hi))
    frozen = gatekeeper.forecast.freezes_of(key, start - margin)
    body = closed_windows_feed(shown, stamp=now, host=request.url.hostname or "gatekeeper", freezes=frozen)
    return Response(body, media_type="text/calendar; charset=utf-8")


__all__ = ["reason_json", "router"]

"""Operational routes without a token: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from gatekeeper.api.openapi import Health, Readiness, text
from gatekeeper.store import StoreError
from gatekeeper.tokens import TokenFileState

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers", responses={200: {"model": Health}})
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database reachable, a configuration and (if configured) tokens active",
    responses={
        200: {"model": Readiness, "description": "Ready"},
        503: {"model": Readiness, "description": "Not ready: the body says what is missing"},
    },
)
def readyz(request: Request) -> JSONResponse:
    """503 while the database is down, no configuration ever loaded, or a tokens file is configured
    but none ever loaded (every authenticated call would be 401)."""
    state = request.app.state.service.config.state
    tokens: TokenFileState = request.app.state.tokens.state
    database = "ok" if request.app.state.service.store.ping() else "unavailable"
    body: dict[str, Any] = {
        "database": database,
        "config": {
            "status": state.status,
            "errors": list(state.errors),
            "policy_hash": state.configuration.policy_hash if state.configuration else None,
            # What the active files set but this version does not enforce (FILE:LINE: message).
            "not_enforced": [str(notice) for notice in state.configuration.notices] if state.configuration else [],
        },
        # ok | stale (rejected change, last good tokens serve) | invalid | missing | unset (no file configured)
        "tokens": {"state": tokens.state, "error": tokens.error},
        # Each published calendar: last success and error, age, events; stale ones close their
        # targets' gates (calendar_stale) but leave the replica ready: the gate still decides.
        "calendars": _feeds(request),
    }
    if database == "ok":
        with contextlib.suppress(StoreError):
            counts = request.app.state.service.store.action_counts()
            # Failing actions (retrying after errors) and failed ones (given up) show here; they do
            # not make the replica unready: the gate still decides.
            body["actions"] = {key: counts[key] for key in ("pending", "failing", "failed")}
            request.app.state.metrics.actions_seen(counts)
    ready = database == "ok" and state.configuration is not None and tokens.ready
    return JSONResponse(body, status_code=200 if ready else 503)


def _feeds(request: Request) -> list[dict[str, Any]]:
    configuration = request.app.state.service.config.state.configuration
    feeds = request.app.state.service.config.feeds
    if configuration is None or feeds is None:
        return []
    rows: list[dict[str, Any]] = feeds.report(configuration.feeds, request.app.state.service.clock())
    return rows


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses=text("text/plain", "Prometheus text exposition format"),
)
def metrics(request: Request) -> Response:
    with contextlib.suppress(StoreError):  # the database is down: /readyz says so; the rest still answers
        store, recorder = request.app.state.service.store, request.app.state.metrics
        recorder.actions_seen(store.action_counts())
        recorder.audit_head_seen(*store.audit_head())
        service = request.app.state.service
        if service.freezes is not None:
            now = service.clock()
            states = [freeze.state(now).value for freeze in service.freezes.current()]
            recorder.freezes_seen(states.count("active"), states.count("scheduled"))
    service = request.app.state.service
    if service.config.feeds is not None and service.config.state.configuration is not None:
        feeds = service.config.feeds.freshness(service.config.state.configuration.feeds, service.clock())
        request.app.state.metrics.feeds_seen(feeds)
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

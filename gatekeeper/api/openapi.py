"""What the OpenAPI document says: the statuses each route really answers, with the real bodies.

The models here only document; the routes keep rendering their bodies with ``gatekeeper.schemas``
(so the CLI's ``--json`` and the API stay one shape), and schemathesis checks, through the served
app, that every answer matches what is written here. FastAPI's own 422 (``HTTPValidationError``)
is never sent: every error is ``{error, message, field}`` (``gatekeeper.api.errors``), so it is
taken out of the document. ``/docs`` is Swagger UI served from a Python package, with no CDN.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """Every error answer (DESIGN §4)."""

    error: str = Field(description="stable snake_case code, e.g. invalid_request, unauthorized, four_eyes")
    message: str = Field(description="what is wrong, naming the object and the values")
    field: str | None = Field(description="the request field at fault (dotted path), if any")


ERROR_MEANING = {
    400: "Malformed request body (not JSON, too deep, huge integers, invalid strings)",
    401: "No valid bearer token (webhooks: signature or token wrong)",
    403: "The token lacks the role, may not act on the target, or four-eyes refused",
    404: "Not found (a webhook route whose secret is unset is 404 too)",
    409: "The release is not in a state that allows this action (e.g. no longer waiting)",
    408: "Request body not complete within BODY_TIMEOUT",
    413: "Request body larger than MAX_BODY_BYTES",
    422: "A field is missing, of the wrong type or outside its limits; `field` names it",
    503: "Database unavailable or not migrated, no valid configuration, or too many bodies in flight",
}

BODY = (400, 408, 413, 422, 503)  # any request with a body (the BodyLimit middleware and the parser)
AUTH = (401, 403)


# A reason the server requires (people.ReleaseManager): at least one non-blank character.
REASON = {"type": "string", "maxLength": 2000, "pattern": r"\S"}


def reason_required(schema: dict[str, Any]) -> None:
    """The body of a rejection: the reason is required and not blank."""
    schema["properties"]["reason"] = {**REASON, "description": "why (required, not blank)"}
    schema["required"] = ["reason"]


def reason_with_break_glass(schema: dict[str, Any]) -> None:
    """The body of an approval: a break-glass approval requires a reason that is not blank."""
    schema["if"] = {"properties": {"break_glass": {"const": True}}, "required": ["break_glass"]}
    schema["then"] = {"properties": {"reason": REASON}, "required": ["reason"]}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody, "description": ERROR_MEANING[status]} for status in sorted(set(statuses))}


def text(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """A 200 of another media type than JSON (no JSON schema: FastAPI would otherwise say JSON)."""
    return {200: {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}}


class DiffLine(BaseModel):
    object: str = Field(description="apiVersion, kind, namespace/name of the object, e.g. apps/v1 Deployment odoo/web")
    path: str = Field(description="JSON pointer of the field; empty when the whole object is missing live")
    desired: str = Field(description="the value in Git, as short JSON (truncated)")
    live: str = Field(description="the value in the cluster, as short JSON (truncated); (unset) when absent")


class Reason(BaseModel):
    check: str
    code: str = Field(description="stable snake_case code, e.g. freeze_window_active")
    message: str
    until: str | None = Field(description="UTC instant the reason stops applying, if known")
    diff: list[DiffLine] | None = Field(None, description="drift_detected only: the differences, truncated")
    digest: str | None = Field(None, description="drift_detected only: sha256 identifying exactly this drift")


Instant = Field(description="UTC instant, YYYY-MM-DDTHH:MM:SSZ")


class Decision(BaseModel):
    release_id: int | None
    target: str
    revision: str
    verdict: Literal["approve", "defer", "rollback"]
    reasons: list[Reason]
    not_before: str | None = Field(description="when the gate opens; null when not within 366 days")
    requires: list[str]
    policy_hash: str | None
    decided_at: str = Instant
    trigger: str
    would_defer: list[Reason] | None = Field(None, description="observe mode only: what would have deferred")


class GateDecision(Decision):
    status: str = Field(description="the release's status after this decision")
    goes_out_by_itself: bool | None = Field(
        None,
        description="on `POST /v1/gate`: whether gatekeeper itself syncs (Argo CD, with an Argo CD API configured) "
        "or resumes (Flux, with FLUX_GATE) this release when it may go; false: the caller must sync again then",
    )


class Approval(BaseModel):
    approver: str
    roles: list[str]
    reason: str | None
    break_glass: bool
    created_at: str = Instant


ReleaseState = Literal[
    "pending", "deferred", "approved", "rejected", "applied", "verified", "rolled_back", "superseded"
]


class ApprovalCount(BaseModel):
    policy: str
    role: str
    required: int
    given: int = Field(description="distinct people of the role whose approval counts")
    approvers: list[str]


class Queued(BaseModel):
    id: int
    revision: str
    status: ReleaseState
    created_at: str = Instant


class Shipping(BaseModel):
    """When a waiting release can go, and what else holds it (issue 18)."""

    as_of: str = Instant
    at: str | None = Field(description="first instant the calendar and freezes let it go; null: none in 366 days")
    closed_by: list[Reason]
    blocked_by: list[Reason]
    approvals: list[ApprovalCount]
    queue: list[Queued] = Field(description="the target's releases not yet applied, oldest first")
    position: int = Field(description="1-based place of this release in queue")
    goes_out_by_itself: bool | None = Field(
        None, description="whether gatekeeper syncs (Argo CD) or resumes (Flux) it itself when it may go"
    )


class Release(BaseModel):
    id: int
    target: str
    revision: str
    status: ReleaseState
    author: str | None
    merger: str | None
    created_at: str = Instant
    updated_at: str = Instant
    decisions: list[Decision]
    approvals: list[Approval]
    shipping: Shipping | None = Field(None, description="GET /v1/releases/{id} only: null once it no longer waits")


class ReleasePage(BaseModel):
    items: list[Release]
    next: str | None = Field(description="the cursor of the next page; null on the last")


class GateStatus(BaseModel):
    target: str
    at: str = Instant
    closed: bool
    reasons: list[Reason]
    next_open: str | None
    next_close: str | None
    next_close_reason: str | None


class ClosedWindow(BaseModel):
    start: str = Instant
    end: str = Instant
    codes: list[str]


class ClosedWindows(BaseModel):
    target: str
    from_: str = Field(alias="from")
    to: str
    closed: list[ClosedWindow]


class AuditRecord(BaseModel):
    seq: int
    at: str
    kind: str
    actor: str | None
    subject: str | None
    data: Any
    break_glass: bool
    prev_hash: str | None
    hash: str


class AuditPage(BaseModel):
    items: list[AuditRecord]
    next: str | None


class AuditHead(BaseModel):
    seq: int = Field(description="0 while the chain is empty")
    hash: str | None


class Action(BaseModel):
    id: int
    release_id: int | None
    kind: str
    status: Literal["pending", "running", "done", "failed"]
    attempts: int
    next_attempt_at: str | None
    last_error: str | None
    result: str | None
    claimed_by: str | None
    created_at: str
    updated_at: str


class ActionPage(BaseModel):
    items: list[Action]
    next: str | None


class Freeze(BaseModel):
    id: int
    targets: list[str] = Field(description="globs on target keys (fnmatch, `*` also matches `/`)")
    start: str = Instant
    end: str | None = Field(description="UTC instant; null: until lifted")
    reason: str
    code: str = Field(description="the reason code while it is active: adhoc_freeze")
    state: Literal["scheduled", "active", "ended", "lifted"]
    created_by: str
    created_at: str = Instant
    lifted_at: str | None
    lifted_by: str | None
    lift_reason: str | None


class FreezePage(BaseModel):
    items: list[Freeze]
    next: str | None


class Health(BaseModel):
    status: Literal["ok"]


class ConfigState(BaseModel):
    status: Literal["ok", "stale", "invalid"] | str
    errors: list[str] = Field(description="FILE:LINE: message")
    policy_hash: str | None
    not_enforced: list[str]


class TokensState(BaseModel):
    state: str = Field(description="ok | stale | invalid | missing | unset")
    error: str | None


class CalendarFeed(BaseModel):
    source: str = Field(description="The feed's URL, redacted to scheme, host and last path segment")
    kind: Literal["url"]
    code: str
    state: str = Field(description="ok | failing (serving the last good copy) | stale | never_fetched")
    last_success: str | None
    last_attempt: str | None
    age_seconds: int | None
    max_age_seconds: int | None
    events: int | None
    last_error: str | None
    last_error_at: str | None


class Readiness(BaseModel):
    database: Literal["ok", "unavailable"]
    config: ConfigState
    tokens: TokensState
    calendars: list[CalendarFeed] = Field(default_factory=list, description="published calendars (ics: https://)")
    actions: dict[str, int] | None = Field(None, description="pending, failing and failed actions")


class Announced(BaseModel):
    target: str
    release_id: int | None
    verdict: str


class WebhookAnswer(BaseModel):
    """200: the delivery decided (or a ping); 202: ignored, with the reason."""

    delivery_id: str | None = None
    release_id: int | None = None
    decision: GateDecision | None = None
    ignored: bool | None = None
    reason: str | None = None
    announced: list[Announced] | None = None


SOURCES = ("github", "gitlab", "flux", "argocd")

_HEADERS = (
    ("X-Hub-Signature-256", "github: sha256=<hex HMAC-SHA256 of the raw body with GITHUB_SECRET>"),
    ("X-GitHub-Event", "github: ping, push, pull_request or deployment_protection_rule"),
    ("X-GitHub-Delivery", "github: the delivery id (a redelivery returns the stored answer)"),
    ("X-Gitlab-Token", "gitlab: GITLAB_TOKEN"),
    ("X-Gitlab-Event", "gitlab: Push Hook or Merge Request Hook"),
    ("Idempotency-Key", "gitlab: the delivery id (else X-Gitlab-Event-UUID)"),
    ("X-Signature", "flux: sha256=<hex HMAC-SHA256 of the raw body with FLUX_SECRET> (generic-hmac)"),
    ("Authorization", "argocd: Bearer <ARGOCD_TOKEN>"),
)

# The webhook route reads its raw body and headers itself (the signature is over the raw bytes),
# so its parameters are declared here. Which headers a source needs is the source's: none is
# required of every source.
WEBHOOK_OPENAPI: dict[str, Any] = {
    "parameters": [
        {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": meaning}
        for name, meaning in _HEADERS
    ],
    "requestBody": {
        "required": True,
        "description": "The sender's event, as it sends it (GitHub may send it form-encoded as payload=)",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": {"payload": {"type": "string"}}, "required": ["payload"]}
            },
        },
    },
}


def _drop_framework_validation_error(document: dict[str, Any]) -> None:
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def install(app: FastAPI) -> None:
    """The honest document at /openapi.json and Swagger UI at /docs with its assets served here."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, summary=app.summary, description=app.description,
                routes=app.routes,
            )
            _drop_framework_validation_error(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    # fastapi-offline ships Swagger UI 5 (which reads OpenAPI 3.1, as FastAPI writes it; the 4.x
    # of swagger-ui-bundle does not): only its static files are used.
    app.mount("/docs/assets", StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/assets/favicon.png",
        )

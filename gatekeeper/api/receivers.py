"""``POST /webhooks/{source}``: hands the raw request to the webhook service and renders its answer."""

from __future__ import annotations

from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from gatekeeper.api import errors as failures
from gatekeeper.api.openapi import BODY, SOURCES, WEBHOOK_OPENAPI, WebhookAnswer, errors
from gatekeeper.receivers import ReceiverError
from gatekeeper.webhooks import SourceDisabledError, WebhookService

router = APIRouter(tags=["webhooks"])


@router.post(
    "/webhooks/{source}",
    summary="Inbound webhooks: github, gitlab, flux, argocd",
    description="Each source authenticates as its sender does (DESIGN §4); a source whose secret is unset is 404.",
    responses={
        200: {"model": WebhookAnswer, "description": "Decided (or a ping); a redelivery gets the stored answer"},
        202: {"model": WebhookAnswer, "description": "Ignored, with the reason"},
        **errors(401, 404, *BODY),
    },
    openapi_extra=WEBHOOK_OPENAPI,
)
async def webhook(
    source: Annotated[str, Path(json_schema_extra={"enum": list(SOURCES)})], request: Request
) -> JSONResponse:
    body = await request.body()  # already bounded by the BodyLimit middleware (413)
    headers = {name.lower(): value for name, value in request.headers.items()}
    service: WebhookService = request.app.state.webhooks
    try:
        # At most WEBHOOK_CONCURRENCY deliveries decide at once per process: a burst of pushes
        # waits here, holding no thread, while the hooks' gate calls keep the other threads.
        slots: anyio.CapacityLimiter = request.app.state.webhook_slots
        answer = await anyio.to_thread.run_sync(service.receive, source, headers, body, limiter=slots)
    except (SourceDisabledError, ReceiverError) as exc:
        return failures.response(exc)
    return JSONResponse(answer.body, answer.status)

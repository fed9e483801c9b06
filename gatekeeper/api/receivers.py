"""``POST /webhooks/{source}``: hands the raw request to the webhook service and renders its answer."""

from __future__ import annotations

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gatekeeper.api import errors
from gatekeeper.receivers import ReceiverError
from gatekeeper.webhooks import SourceDisabledError, WebhookService

router = APIRouter()


@router.post("/webhooks/{source}", summary="Inbound webhooks: github, gitlab, flux, argocd")
async def webhook(source: str, request: Request) -> JSONResponse:
    body = await request.body()  # already bounded by the BodyLimit middleware (413)
    headers = {name.lower(): value for name, value in request.headers.items()}
    service: WebhookService = request.app.state.webhooks
    try:
        # At most WEBHOOK_CONCURRENCY deliveries decide at once per process: a burst of pushes
        # waits here, holding no thread, while the hooks' gate calls keep the other threads.
        slots: anyio.CapacityLimiter = request.app.state.webhook_slots
        answer = await anyio.to_thread.run_sync(service.receive, source, headers, body, limiter=slots)
    except (SourceDisabledError, ReceiverError) as exc:
        return errors.response(exc)
    return JSONResponse(answer.body, answer.status)

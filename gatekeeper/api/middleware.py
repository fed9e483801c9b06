"""Pure ASGI middleware: bounded request bodies (413) and request metrics.

The body is read up to the limit + 1 byte before the app sees it, so an oversized request is
refused without being parsed, whatever route it targets. A JSON body of the API is then parsed
once with the bounded parser (``receivers.jsonbody``; 400 naming the problem), so the
framework's own parser only ever meets bodies it handles; webhook bodies are left to their
receivers, which parse only after checking the signature.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatekeeper.metrics import Metrics
from gatekeeper.receivers.jsonbody import JsonBodyError, parse_json


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        too_large = {
            "error": "payload_too_large",
            "message": f"request body exceeds {self.max_bytes} bytes",
            "field": None,
        }
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _send_json(send, 413, too_large)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _send_json(send, 413, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False
        if not scope["path"].startswith("/webhooks/"):  # receivers parse theirs, after the signature
            scope = _json_content_type(scope)
            problem = _json_problem(scope, body)
            if problem is not None:
                await _send_json(send, 400, {"error": "malformed_json", "message": problem, "field": None})
                return

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _json_content_type(scope: Scope) -> Scope:
    """Every body this API takes is JSON: read a body sent with curl's default form content type,
    or with none at all, as JSON (otherwise FastAPI would not parse it and answer a puzzling 422)."""
    original = scope.get("headers", ())
    headers = [
        (name, value)
        for name, value in original
        if not (name == b"content-type" and value.startswith(b"application/x-www-form-urlencoded"))
    ]
    if len(headers) == len(original) and any(name == b"content-type" for name, _ in original):
        return scope
    return {**scope, "headers": [*headers, (b"content-type", b"application/json")]}


def _json_problem(scope: Scope, body: bytes) -> str | None:
    """What makes a JSON body unfit to parse (None: fit, or not JSON at all). The framework's own
    parser is neither bounded nor total (deep nesting, huge integers, lone surrogates: 500s)."""
    if not body:
        return None  # the route answers 422: a JSON object is required
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            media = value.split(b";")[0].strip().lower()
            if media != b"application/json" and not media.endswith(b"+json"):
                return None
    try:
        parse_json(body)
    except JsonBodyError as exc:
        return f"request {exc}"
    return None


class RequestMetrics:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.metrics.request_seconds.labels(scope["method"], path, str(status)).observe(
                time.perf_counter() - started
            )

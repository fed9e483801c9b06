"""Pure ASGI middleware: bounded request bodies (413, 408, 503) and request metrics.

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

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatekeeper.metrics import Metrics
from gatekeeper.receivers.jsonbody import JsonBodyError, parse_json

DEFAULT_TIMEOUT = 10.0  # BODY_TIMEOUT's default, when the app carries no settings
DEFAULT_IN_FLIGHT = 64  # BODIES_IN_FLIGHT's default


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": code, "message": message, "field": None}


class BodyLimit:
    """Reads each request body whole before the app sees it: at most ``max_bytes`` (413), within
    ``timeout`` seconds of the request's start (408: a client that sends its headers and stalls
    no longer holds a connection and a buffer for ever), and at most ``in_flight`` bodies at once
    per process, so the memory of bodies being read stays about ``in_flight * max_bytes``; a
    request that finds every turn taken waits for one within its own deadline (else 503,
    ``Retry-After``). ``timeout`` and ``in_flight`` default to the app's settings (``BODY_TIMEOUT``,
    ``BODIES_IN_FLIGHT``)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, timeout: float | None = None, in_flight: int | None = None
    ) -> None:
        self.app, self.max_bytes = app, max_bytes
        self.timeout, self.in_flight = timeout, in_flight
        self._turns: anyio.Semaphore | None = None

    def _limits(self, scope: Scope) -> tuple[float, anyio.Semaphore]:
        if self.timeout is None or self._turns is None:  # first request: in the loop, the app in the scope
            settings: Any = getattr(getattr(scope.get("app"), "state", None), "settings", None)
            if self.timeout is None:
                self.timeout = float(settings.body_timeout_seconds) if settings is not None else DEFAULT_TIMEOUT
            if self.in_flight is None:
                self.in_flight = int(settings.BODIES_IN_FLIGHT) if settings is not None else DEFAULT_IN_FLIGHT
            self._turns = anyio.Semaphore(self.in_flight)
        return self.timeout, self._turns

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        too_large = _error("payload_too_large", f"request body exceeds {self.max_bytes} bytes")
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _send_json(send, 413, too_large)
                return
        timeout, turns = self._limits(scope)
        outcome: bytes | int | None = None
        reading = False
        with anyio.move_on_after(timeout) as deadline:
            async with turns:
                reading = True
                outcome = await self._read(receive)
        close = ((b"connection", b"close"),)  # the rest of the body may still come: no reuse
        if deadline.cancelled_caught and reading:
            message = f"request body not complete within BODY_TIMEOUT ({timeout:g} s)"
            await _send_json(send, 408, _error("request_timeout", message), close)
            return
        if deadline.cancelled_caught:
            message = f"{self.in_flight} request bodies are being read; try again"
            await _send_json(send, 503, _error("server_busy", message), (*close, (b"retry-after", b"1")))
            return
        if outcome is None:  # the client went away
            return
        if isinstance(outcome, int):
            await _send_json(send, 413, too_large, close)
            return
        body = outcome
        sent = False
        if not scope["path"].startswith("/webhooks/"):  # receivers parse theirs, after the signature
            scope = _json_content_type(scope)
            problem = _json_problem(scope, body)
            if problem is not None:
                await _send_json(send, 400, _error("malformed_json", problem))
                return

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> bytes | int | None:
        """The whole body; 413 once it exceeds the limit; None if the client disconnected."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return 413
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


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

"""One table maps exceptions to HTTP statuses; every error body is ``{error, message, field}``.

No response carries a traceback: unexpected exceptions are logged and answered with a generic
500 body, and every expected failure has its own entry in ``STATUS_OF``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from gatekeeper.forecast import ConfigUnavailableError
from gatekeeper.people import (
    ActionRefusedError,
    ConflictError,
    ForbiddenError,
    FourEyesError,
    FreezeNotFoundError,
    InvalidFreezeError,
    ReasonRequiredError,
    ReleaseNotFoundError,
)
from gatekeeper.receivers import InvalidPayloadError, MalformedPayloadError, ReceiverError, UnauthorizedError
from gatekeeper.schemas import PRINTABLE
from gatekeeper.store import NotMigratedError, StoreError
from gatekeeper.webhooks import SourceDisabledError

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answer: HTTP status, stable code, message, and the field at fault if any."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


# exception type -> (HTTP status, error code; None: the exception's own ``code``). The first
# entry the exception is an instance of wins, so subclasses come before their bases. Only ApiError,
# the HTTP layer's own error, carries its status itself.
STATUS_OF: dict[type[Exception], tuple[int, str | None]] = {
    UnauthorizedError: (401, None),
    MalformedPayloadError: (400, None),
    InvalidPayloadError: (422, None),
    ReceiverError: (422, None),
    SourceDisabledError: (404, "not_found"),
    ForbiddenError: (403, None),
    FourEyesError: (403, None),
    ConflictError: (409, None),
    ReasonRequiredError: (422, None),
    InvalidFreezeError: (422, None),
    ActionRefusedError: (403, None),
    ReleaseNotFoundError: (404, "not_found"),
    FreezeNotFoundError: (404, "not_found"),
    NotMigratedError: (503, "database_not_migrated"),
    StoreError: (503, "database_unavailable"),
    ConfigUnavailableError: (503, "config_invalid"),
}
REFUSALS = (ReceiverError, ActionRefusedError)  # their message and field are the client's answer


def response(exc: Exception) -> JSONResponse:
    """The answer to ``exc`` as the table says (500, logged, for anything not in it)."""
    for kind, (status, code) in STATUS_OF.items():
        if not isinstance(exc, kind):
            continue
        if isinstance(exc, REFUSALS):
            return JSONResponse(error_body(code or exc.code, exc.message, exc.field), status)
        logger.warning("%s: %s", code, exc)
        return JSONResponse(error_body(code or "error", _public_message(exc)), status)
    logger.exception("unexpected error", exc_info=exc)
    return JSONResponse(error_body("internal", "internal error; the server log has details"), 500)

# What a 503 of the store says: never the driver's words (they go to the log). The messages of a
# missing migration and of a lock timeout are gatekeeper's own and say what to do.
STORE_MESSAGE = "the database could not complete the request; try again later (the server log has details)"

_STARLETTE_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 400: "bad_request"}


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": code, "message": message, "field": field}


def _field(location: tuple[Any, ...] | list[Any]) -> str | None:
    steps = [str(step) for step in location if step not in ("body", "query", "path", "header")]
    return ".".join(steps) or None


def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        detail = errors[0].get("ctx", {}).get("error", "invalid JSON")
        return JSONResponse(error_body("malformed_json", f"request body is not valid JSON: {detail}"), 400)
    first = errors[0]
    field = _field(first.get("loc", ()))
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if field is None:  # the body as a whole: empty, or not JSON (another Content-Type)
        message = "a JSON object is required (Content-Type: application/json)"
    elif first.get("type") == "missing":
        message = "field required"
    elif first.get("type") == "extra_forbidden":
        message = "unknown field"
    elif first.get("type") == "string_pattern_mismatch" and first.get("ctx", {}).get("pattern") == PRINTABLE:
        message = "must not contain control characters"
    return JSONResponse(error_body("invalid_request", f"{field or 'body'}: {message}", field), 422)


def _public_message(exc: Exception) -> str:
    message = str(exc)
    own = isinstance(exc, NotMigratedError) or message.startswith("database busy:")
    if isinstance(exc, StoreError) and not own:
        return STORE_MESSAGE
    return message


def _allowed(request: Request) -> str:
    """Every method of every route at the request's path (Starlette names only the first route's,
    and ``/v1/freezes`` has a GET and a POST route)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    """Register the handlers of the table on ``app``."""

    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)  # noqa: S101
        return JSONResponse(error_body(exc.code, exc.message, exc.field), exc.status)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)  # noqa: S101
        code = _STARLETTE_CODES.get(exc.status_code, "http_error")
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed(request)}
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=headers)

    async def mapped(_request: Request, exc: Exception) -> JSONResponse:
        return response(exc)

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        return _validation(request, exc)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation)
    for kind in STATUS_OF:
        app.add_exception_handler(kind, mapped)
    app.add_exception_handler(Exception, mapped)

"""The release-manager page at ``/``: server-rendered shell, data from the API with the user's token.

The token is typed into a login form and kept in sessionStorage, never in a URL; every API
refusal is shown as it is. ``GET /v1/me`` tells the page who the token is and what it may do, so
it offers only the controls the token's roles allow (the API still decides), and the server's
clock, which the page reckons its 14-day calendar from (never the browser's own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from gatekeeper.api.auth import Bearer, authenticate, bearer
from gatekeeper.api.openapi import errors
from gatekeeper.domain.types import format_instant

router = APIRouter()
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


class Me(BaseModel):
    name: str
    roles: list[str] = Field(description="sorted; roles are not hierarchical")
    targets: list[str] = Field(description="globs the token may act on; empty: no limit")
    now: str = Field(description="the server's clock (UTC): the instant the page reckons its calendar from")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(request: Request) -> HTMLResponse:
    timezone = request.app.state.settings.UI_TIMEZONE
    return templates.TemplateResponse(request, "index.html", {"title": "releases", "timezone": timezone})


@router.get(
    "/v1/me",
    tags=["v1: hooks, people and tools"],
    summary="Who this token is: its name, roles and target limits (any valid token)",
    responses={200: {"model": Me}, **errors(401)},
)
async def me(request: Request, _declared: Bearer) -> dict[str, Any]:
    identity = authenticate(request.app.state.tokens, bearer(request))
    now = format_instant(request.app.state.service.clock().replace(microsecond=0))
    return {"name": identity.name, "roles": sorted(identity.roles), "targets": list(identity.targets), "now": now}



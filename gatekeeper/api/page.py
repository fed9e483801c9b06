"""The release-manager page at ``/``: server-rendered shell, data from the API with the user's token.

The token is typed into a login form and kept in sessionStorage, never in a URL; every API
refusal is shown as it is.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

router = APIRouter()
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(request: Request) -> HTMLResponse:
    timezone = request.app.state.settings.UI_TIMEZONE
    return templates.TemplateResponse(request, "index.html", {"title": "releases", "timezone": timezone})

"""Outbound notifications, one file per system we call: commit statuses and deployment reviews.

Calls go through httpx with timeouts; failures become ``UpstreamError`` (never an httpx
exception) with a truncated upstream body.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

logger = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class UpstreamError(Exception):
    """An outbound call failed after its retries."""


def send(client: httpx.Client, method: str, url: str, *, json: Any, headers: dict[str, str]) -> httpx.Response:
    """One call; any failure is an ``UpstreamError``. Retries are the outbox's (with backoff and a
    lease), not this function's: a call that holds a thread for 3 x 10 s helps nobody."""
    try:
        response = client.request(method, url, json=json, headers=headers)
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{method} {url} failed: {type(exc).__name__}: {str(exc)[:200]}") from exc
    if response.status_code >= 400:
        raise UpstreamError(f"{method} {url} answered {response.status_code}: {response.text[:200]}")
    return response


def describe(verdict: str, reasons: list[dict[str, Any]]) -> str:
    """A commit-status description (GitHub allows 140 characters)."""
    words = {"approve": "approved", "defer": "deferred", "rollback": "rollback"}
    codes = ", ".join(reason["code"] for reason in reasons[:3])
    text = f"gatekeeper: {words.get(verdict, verdict)}" + (f" ({codes})" if codes else "")
    return text[:140]

"""Outbound notifications, one file per system we call: commit statuses and deployment reviews.

Calls go through httpx with timeouts and a bounded retry on connection errors and 5xx; failures
become ``UpstreamError`` (never an httpx exception) with a truncated upstream body.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import httpx

logger = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
ATTEMPTS = 3


class UpstreamError(Exception):
    """An outbound call failed after its retries."""


def send(client: httpx.Client, method: str, url: str, *, json: Any, headers: dict[str, str]) -> httpx.Response:
    """One call with retries on connection errors and 5xx (0.2 s, 0.4 s backoff)."""
    last = ""
    for attempt in range(ATTEMPTS):
        try:
            response = client.request(method, url, json=json, headers=headers)
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {str(exc)[:200]}"
        else:
            if response.status_code < 500:
                if response.status_code >= 400:
                    raise UpstreamError(f"{method} {url} answered {response.status_code}: {response.text[:200]}")
                return response
            last = f"answered {response.status_code}: {response.text[:200]}"
        time.sleep(0.2 * 2**attempt)
    raise UpstreamError(f"{method} {url} failed after {ATTEMPTS} attempts: {last}")


def describe(verdict: str, reasons: list[dict[str, Any]]) -> str:
    """A commit-status description (GitHub allows 140 characters)."""
    words = {"approve": "approved", "defer": "deferred", "rollback": "rollback"}
    codes = ", ".join(reason["code"] for reason in reasons[:3])
    text = f"gatekeeper: {words.get(verdict, verdict)}" + (f" ({codes})" if codes else "")
    return text[:140]

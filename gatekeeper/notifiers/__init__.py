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


HEADLINES = {
    "defer": "deferred",
    "approve": "approved",
    "rollback": "to be rolled back",
    "break_glass": "approved by BREAK-GLASS",
    "rejected": "rejected",
}


def headline(event: dict[str, Any]) -> str:
    """One line for a person (a chat message's text, a card's title): what happened to what."""
    kind = event["event"]
    freeze = event.get("freeze")
    if freeze is not None:
        verb = "started" if kind == "freeze_started" else "lifted"
        by = f" by {event['actor']}" if event.get("actor") else ""
        return f"gatekeeper: freeze #{freeze['id']} {verb}{by} on {', '.join(freeze['targets'])}"
    release = event["release"]
    return f"gatekeeper: release #{release['id']} of {release['target']} {HEADLINES.get(kind, kind)}"


def facts(event: dict[str, Any]) -> list[tuple[str, str]]:
    """The details under the headline, as (name, value) pairs, in reading order."""
    found: list[tuple[str, str]] = []
    release, decision, freeze = event.get("release"), event.get("decision"), event.get("freeze")
    if release is not None:
        found += [("Target", release["target"]), ("Revision", release["revision"][:12]), ("Status", release["status"])]
    if decision is not None:
        found += [("Reason", f"{r['code']}: {r['message']}") for r in decision["reasons"][:5]]
        if decision.get("not_before"):
            found.append(("Not before", decision["not_before"]))
        if decision.get("requires"):
            found.append(("Requires", ", ".join(decision["requires"])))
    if freeze is not None:
        found += [("Targets", ", ".join(freeze["targets"])), ("From", freeze["start"] or "now")]
        found += [("Until", freeze["end"] or "lifted"), ("Reason", freeze["reason"])]
        if freeze.get("lift_reason"):
            found.append(("Lifted because", freeze["lift_reason"]))
    if event.get("actor"):
        found.append(("By", event["actor"]))
    return found

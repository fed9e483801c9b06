"""A generic JSON webhook, HMAC-signed (docs/notifications.md).

The body is the event as JSON with a ``timestamp`` (Unix seconds); headers:
``X-Gatekeeper-Signature: sha256=<hex HMAC-SHA256 of the raw body under the endpoint's secret>``,
``X-Gatekeeper-Timestamp`` (the body's timestamp: a receiver refuses one too old, against replay),
``X-Gatekeeper-Event`` and ``X-Gatekeeper-Delivery`` (the same on every retry: dedupe on it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import httpx

from gatekeeper.notifiers import UpstreamError
from gatekeeper.notifiers.endpoints import Endpoint
from gatekeeper.ports import Clock

SIGNATURE = "X-Gatekeeper-Signature"
TIMESTAMP = "X-Gatekeeper-Timestamp"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    kind = "webhook"

    def __init__(self, clock: Clock, timeout: float, client: httpx.Client | None = None) -> None:
        self._clock = clock
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout))

    def close(self) -> None:
        self._client.close()

    def body(self, event: Mapping[str, Any], timestamp: int) -> bytes:
        return json.dumps({**event, "timestamp": timestamp}, sort_keys=True, separators=(",", ":")).encode()

    def deliver(self, endpoint: Endpoint, event: Mapping[str, Any]) -> str:
        assert endpoint.secret is not None  # noqa: S101 - the endpoint file refuses a webhook without one
        timestamp = int(self._clock().timestamp())
        body = self.body(event, timestamp)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "gatekeeper",
            SIGNATURE: sign(endpoint.secret.get_secret_value(), body),
            TIMESTAMP: str(timestamp),
            "X-Gatekeeper-Event": str(event["event"]),
            "X-Gatekeeper-Delivery": str(event["id"]),
        }
        try:
            response = self._client.post(endpoint.url.get_secret_value(), content=body, headers=headers)
        except httpx.HTTPError as exc:  # the URL is a secret: name the endpoint, not where it points
            raise UpstreamError(f"webhook {endpoint.name} failed: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise UpstreamError(f"webhook {endpoint.name} answered {response.status_code}: {response.text[:200]}")
        return f"webhook {endpoint.name}: {response.status_code}"

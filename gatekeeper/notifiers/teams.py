"""Microsoft Teams incoming webhooks (Workflows, and the older connectors): a message with one
Adaptive Card attachment (``application/vnd.microsoft.card.adaptive``, card version 1.2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from gatekeeper.notifiers import UpstreamError, facts, headline
from gatekeeper.notifiers.endpoints import Endpoint

CARD = "application/vnd.microsoft.card.adaptive"
SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


class TeamsNotifier:
    kind = "teams"

    def __init__(self, timeout: float, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout))

    def close(self) -> None:
        self._client.close()

    def body(self, event: Mapping[str, Any]) -> dict[str, Any]:
        title = headline(dict(event))
        card: dict[str, Any] = {
            "$schema": SCHEMA,
            "type": "AdaptiveCard",
            "version": "1.2",
            "body": [
                {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": True},
                {"type": "FactSet", "facts": [{"title": name, "value": value} for name, value in facts(dict(event))]},
            ],
        }
        if event.get("link"):
            card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in gatekeeper", "url": event["link"]}]
        return {"type": "message", "attachments": [{"contentType": CARD, "contentUrl": None, "content": card}]}

    def deliver(self, endpoint: Endpoint, event: Mapping[str, Any]) -> str:
        try:
            response = self._client.post(endpoint.url.get_secret_value(), json=self.body(event))
        except httpx.HTTPError as exc:  # the URL is the credential: never in a message
            raise UpstreamError(f"teams {endpoint.name} failed: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise UpstreamError(f"teams {endpoint.name} answered {response.status_code}: {response.text[:200]}")
        return f"teams {endpoint.name}: {response.status_code}"

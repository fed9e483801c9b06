"""Slack incoming webhooks: ``{"text": ..., "blocks": [...]}`` (Block Kit; ``text`` is the
notification's fallback). Slack answers 200 ``ok``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from gatekeeper.notifiers import UpstreamError, facts, headline
from gatekeeper.notifiers.endpoints import Endpoint


def _mrkdwn(text: str) -> str:
    """Slack's three control characters escaped (its documented rule for mrkdwn text)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackNotifier:
    kind = "slack"

    def __init__(self, timeout: float, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout))

    def close(self) -> None:
        self._client.close()

    def body(self, event: Mapping[str, Any]) -> dict[str, Any]:
        title = headline(dict(event))
        details = [f"*{name}:* {_mrkdwn(value)}" for name, value in facts(dict(event))]
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_mrkdwn(title)}*"}},
        ]
        if details:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(details)[:3000]}})
        if event.get("link"):
            link = f"<{event['link']}|Open in gatekeeper>"
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": link}]})
        return {"text": title, "blocks": blocks}

    def deliver(self, endpoint: Endpoint, event: Mapping[str, Any]) -> str:
        try:
            response = self._client.post(endpoint.url.get_secret_value(), json=self.body(event))
        except httpx.HTTPError as exc:  # the URL is the credential: never in a message
            raise UpstreamError(f"slack {endpoint.name} failed: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise UpstreamError(f"slack {endpoint.name} answered {response.status_code}: {response.text[:200]}")
        return f"slack {endpoint.name}: {response.status_code}"

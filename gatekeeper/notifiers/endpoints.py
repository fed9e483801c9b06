"""Notification endpoints (``NOTIFICATIONS_FILE``) and the ``Notifier`` family that posts to them.

An endpoint is a generic JSON webhook (HMAC-signed), a Slack or a Microsoft Teams incoming
webhook. Its URL and key are secrets (``SecretStr``: never logged, never stored in the outbox;
an action names its endpoint and the handler looks the secrets up). The file is read at start-up;
a bad file fails it, naming the file and the entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

# What an endpoint may ask to be told (docs/notifications.md says when each is sent).
EVENTS = ("defer", "approve", "rollback", "break_glass", "rejected", "freeze_started", "freeze_lifted")
Kind = Literal["webhook", "slack", "teams"]


class EndpointsError(Exception):
    """The notifications file cannot be used (start-up fails with this message)."""


class Endpoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Kind
    url: SecretStr  # a Slack or Teams webhook URL is itself the credential
    secret: SecretStr | None = None  # the HMAC key of a generic webhook (required there)
    events: tuple[str, ...] = EVENTS
    targets: tuple[str, ...] = ()  # globs on target keys; empty: every target

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("url must be an http:// or https:// URL")
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(EVENTS))
        if unknown or not value:
            raise ValueError(f"events: unknown {unknown} (known: {', '.join(EVENTS)})" if unknown else "events: empty")
        return value

    @model_validator(mode="after")
    def _signed(self) -> Endpoint:
        if self.kind == "webhook" and (self.secret is None or not self.secret.get_secret_value().strip()):
            raise ValueError("a webhook endpoint needs a secret (its deliveries are HMAC-signed)")
        return self

    def wants(self, event: str, targets: tuple[str, ...]) -> bool:
        """Whether this endpoint is told of ``event`` about ``targets`` (a release's target, or
        a freeze's globs: a glob that one of the endpoint's globs matches, or that matches it)."""
        if event not in self.events:
            return False
        if not self.targets:
            return True
        return any(fnmatchcase(t, mine) or fnmatchcase(mine, t) for t in targets for mine in self.targets)


class Notifier(Protocol):
    """Posts one event to one endpoint of its ``kind`` (one httpx client per notifier).

    Returns a short result; raises ``UpstreamError`` when the endpoint refuses or is unreachable.
    """

    kind: str

    def deliver(self, endpoint: Endpoint, event: Mapping[str, Any]) -> str: ...

    def close(self) -> None: ...


def load_endpoints(path: Path | None) -> tuple[Endpoint, ...]:
    """``NOTIFICATIONS_FILE``: a YAML list of endpoints. None: no notifications."""
    if path is None:
        return ()
    try:
        raw = yaml.safe_load(path.read_text("utf-8")) or []
    except (OSError, yaml.YAMLError) as exc:
        raise EndpointsError(f"{path}: cannot read notification endpoints: {exc}") from None
    if not isinstance(raw, list):
        raise EndpointsError(f"{path}: expected a list of endpoints")
    found: list[Endpoint] = []
    for number, spec in enumerate(raw, 1):
        try:
            endpoint = Endpoint.model_validate(spec)
        except ValidationError as exc:
            messages = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'entry'}: {error['msg'].removeprefix('Value error, ')}"
                for error in exc.errors()
            )
            raise EndpointsError(f"{path}: endpoint {number}: {messages}") from None
        if any(other.name == endpoint.name for other in found):
            raise EndpointsError(f"{path}: endpoint {number}: name {endpoint.name!r} is used twice")
        found.append(endpoint)
    return tuple(found)


class _HideUrls(logging.Filter):
    """httpx logs every request's URL at INFO; a Slack or Teams URL is the credential itself.
    On the ``httpx`` logger this puts the endpoint's name where its URL would be."""

    def __init__(self, endpoints: tuple[Endpoint, ...]) -> None:
        super().__init__()
        self.urls = {endpoint.url.get_secret_value(): f"<endpoint {endpoint.name}>" for endpoint in endpoints}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = message
        for url, name in self.urls.items():
            hidden = hidden.replace(url, name)
        if hidden != message:
            record.msg, record.args = hidden, ()
        return True


def hide_urls(endpoints: tuple[Endpoint, ...]) -> Callable[[], None]:
    """Keep the endpoints' URLs out of httpx's request log; returns what undoes it."""
    logger, hiding = logging.getLogger("httpx"), _HideUrls(endpoints)
    logger.addFilter(hiding)
    return lambda: logger.removeFilter(hiding)

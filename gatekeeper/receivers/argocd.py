"""Argo CD notifications (the webhook service and templates shipped in ``webhooks/argocd/``).

Authenticated by ``Authorization: Bearer <token>`` (constant time); the delivery id is the
sha256 of source and body. ``sync-succeeded`` marks the release applied, ``health-degraded``
unhealthy; ``sync-running`` asks for a decision (the PreSync hook gates the sync itself).
"""

from __future__ import annotations

from collections.abc import Mapping

from gatekeeper.domain.types import InvalidTargetError, ReleaseRequest, parse_target
from gatekeeper.receivers import (
    Ignored,
    Inbound,
    body_digest,
    invalid,
    load_json,
    secret_matches,
    text_at,
    unauthorized,
)

OBSERVED = {"sync-succeeded": "applied", "health-degraded": "unhealthy", "sync-running": None}


class ArgoCDReceiver:
    source = "argocd"

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("missing Authorization: Bearer header")
        if not secret_matches(secret, token.strip()):
            raise unauthorized("bearer token is wrong")

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str:
        return body_digest(self.source, body)

    def parse(self, headers: Mapping[str, str], body: bytes) -> Inbound | Ignored:
        data = load_json(body)
        event = text_at(data, "event")
        if event not in OBSERVED:
            return Ignored(f"Argo CD event {event!r} is not handled (handled: {', '.join(OBSERVED)})")
        app = text_at(data, "app")
        revision = text_at(data, "revision", required=False)
        if not revision:
            return Ignored(f"Argo CD event {event} for {app} carries no revision")
        try:
            target = parse_target(f"argocd:{app}")
        except InvalidTargetError as exc:
            raise invalid("app", str(exc)) from None
        context = tuple(
            (key, value)
            for key in ("namespace", "project")
            if (value := text_at(data, key, required=False)) is not None
        )
        request = ReleaseRequest(target=target, revision=revision, trigger=f"argocd-{event}", context=context)
        return Inbound(request=request, observed=OBSERVED[event])

"""Argo CD notifications (the webhook service and templates shipped in ``webhooks/argocd/``).

Authenticated by ``Authorization: Bearer <token>`` (constant time); the delivery id is the
sha256 of source and body. ``sync-succeeded`` marks the release applied, ``health-degraded``
unhealthy; ``sync-running`` asks for a decision (the PreSync hook gates the sync itself).
An Application outside the control plane's namespace (``appNamespace``, Argo CD's "apps in any
namespace") is the target ``argocd:<appNamespace>/<app>``; in it, or without the field,
``argocd:<app>``. (``namespace`` is the destination namespace, kept in the release context.)
"""

from __future__ import annotations

from collections.abc import Mapping

from gatekeeper.domain.types import ReleaseRequest
from gatekeeper.receivers import (
    NAME,
    REVISION,
    Ignored,
    Inbound,
    body_digest,
    load_json,
    secret_matches,
    target_of,
    text_at,
    unauthorized,
)

OBSERVED = {"sync-succeeded": "applied", "health-degraded": "unhealthy", "sync-running": None}


class ArgoCDReceiver:
    source = "argocd"

    def __init__(self, control_namespace: str = "argocd") -> None:
        self.control_namespace = control_namespace

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
        revision = text_at(data, "revision", required=False, max_length=REVISION)
        if not revision:
            return Ignored(f"Argo CD event {event} for {app} carries no revision")
        namespace = text_at(data, "appNamespace", required=False, max_length=NAME)
        qualified = f"{namespace}/{app}" if namespace and namespace != self.control_namespace else app
        target = target_of(f"argocd:{qualified}", "appNamespace" if qualified != app else "app")
        context = tuple(
            (key, value)
            for key in ("namespace", "project")
            if (value := text_at(data, key, required=False, max_length=NAME)) is not None
        )
        request = ReleaseRequest(target=target, revision=revision, trigger=f"argocd-{event}", context=context)
        return Inbound(request=request, observed=OBSERVED[event])

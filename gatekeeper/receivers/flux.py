"""Flux notification-controller events, sent by a ``generic-hmac`` Provider.

Authenticated by ``X-Signature: sha256=<hex HMAC of the raw body>`` (the Provider secret's
``token``); Flux sends no delivery id, so it is the sha256 of source and body. The involved
Kustomization or HelmRelease and its revision become the target ``flux:<Kind>/<namespace>/<name>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from gatekeeper.domain.types import ReleaseRequest
from gatekeeper.receivers import (
    REVISION,
    Ignored,
    Inbound,
    body_digest,
    checked_text,
    hmac_sha256_matches,
    load_json,
    target_of,
    text_at,
    unauthorized,
)

KINDS = ("Kustomization", "HelmRelease")
_SHA = re.compile(r"(?:sha1|sha256):([0-9a-f]{7,64})$")
APPLIED = frozenset({"ReconciliationSucceeded", "UpgradeSucceeded", "InstallSucceeded"})
UNHEALTHY = frozenset({"HealthCheckFailed", "UpgradeFailed", "InstallFailed", "ReconciliationFailed"})


def revision_of(raw: str) -> str:
    """Flux writes ``main@sha1:<sha>`` (or ``sha1:<sha>``, or a chart version): keep the commit SHA."""
    match = _SHA.search(raw)
    return match.group(1) if match else raw


class FluxReceiver:
    source = "flux"

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str) -> None:
        signature = headers.get("x-signature")
        if not signature:
            raise unauthorized("missing X-Signature header")
        if not hmac_sha256_matches(secret, body, signature):
            raise unauthorized("X-Signature does not match the body")

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str:
        return body_digest(self.source, body)

    def parse(self, headers: Mapping[str, str], body: bytes) -> Inbound | Ignored:
        data = load_json(body)
        kind = text_at(data, "involvedObject.kind")
        if kind not in KINDS:
            return Ignored(f"Flux event for a {kind} (handled: {', '.join(KINDS)})")
        namespace = text_at(data, "involvedObject.namespace")
        name = text_at(data, "involvedObject.name")
        raw = text_at(data, "metadata.revision", required=False)
        if raw is None:
            return Ignored(f"Flux event for {kind}/{namespace}/{name} carries no revision")
        target = target_of(f"flux:{kind}/{namespace}/{name}", "involvedObject")
        reason = text_at(data, "reason", required=False) or ""
        severity = text_at(data, "severity", required=False) or "info"
        observed = (
            "applied" if reason in APPLIED else "unhealthy" if reason in UNHEALTHY or severity == "error" else None
        )
        revision = checked_text(revision_of(raw), "metadata.revision", REVISION)
        request = ReleaseRequest(target=target, revision=revision, trigger="flux-event")
        return Inbound(request=request, observed=observed)

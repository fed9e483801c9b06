"""Flux notification-controller events, sent by a ``generic-hmac`` Provider.

Authenticated by ``X-Signature: sha256=<hex HMAC of the raw body>`` (the Provider secret's
``token``); Flux sends no delivery id, so it is the sha256 of source and body. The involved
Kustomization or HelmRelease and its revision become the target ``flux:<Kind>/<namespace>/<name>``.

The revision follows Flux's own rules (``docs/receivers.md`` cites them): the metadata keys
``commit``, then ``originRevision``, then ``revision`` (fluxcd/pkg ``Event.GetRevision``), each
bare (as the notification-controller forwards them) or prefixed with the Event API group or the
object's API group (as the controllers emit them: ``kustomize.toolkit.fluxcd.io/revision``); the
value reduced to the commit as ``git.ExtractHashFromRevision`` does (``main@sha1:<sha>``,
``sha1:<sha>``, legacy ``main/<sha>``). A HelmRelease's chart version stays as it is.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gatekeeper.domain.types import ReleaseRequest
from gatekeeper.receivers import (
    REVISION,
    TEXT,
    Ignored,
    Inbound,
    body_digest,
    checked_text,
    hmac_sha256_matches,
    invalid,
    load_json,
    target_of,
    text_at,
    unauthorized,
)

KINDS = ("Kustomization", "HelmRelease")
REVISION_KEYS = ("commit", "originRevision", "revision")  # Flux's precedence
EVENT_GROUP = "event.toolkit.fluxcd.io"
OBJECT_GROUPS = {"Kustomization": "kustomize.toolkit.fluxcd.io", "HelmRelease": "helm.toolkit.fluxcd.io"}
_HASH = re.compile(r"[0-9a-f]{7,64}")
_LEGACY_HASH = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
APPLIED = frozenset({"ReconciliationSucceeded", "UpgradeSucceeded", "InstallSucceeded"})
UNHEALTHY = frozenset({"HealthCheckFailed", "UpgradeFailed", "InstallFailed", "ReconciliationFailed"})
# helm-controller before v1 gave every event the severity as its reason: success reads in the message.
_LEGACY_HELM_APPLIED = re.compile(r"Helm (install|upgrade) succeeded\b")


def revision_of(raw: str) -> str:
    """The commit in Flux's revision forms (``main@sha1:<sha>``, ``sha1:<sha>``, legacy
    ``main/<sha>`` or ``HEAD/<sha>``); anything else (a chart version) as it is."""
    if ":" in raw:
        digest = raw.rsplit(":", 1)[1]
        return digest if _HASH.fullmatch(digest) else raw
    if "/" in raw:
        last = raw.rsplit("/", 1)[1]
        return last if _LEGACY_HASH.fullmatch(last) else raw
    return raw


def _group(data: Mapping[str, Any], kind: str) -> str:
    api_version = text_at(data, "involvedObject.apiVersion", required=False) or ""
    return api_version.split("/", 1)[0] if "/" in api_version else OBJECT_GROUPS[kind]


def raw_revision(data: Mapping[str, Any], kind: str) -> tuple[str, str] | None:
    """The metadata key that carries the revision, by Flux's precedence, and its value."""
    metadata = data.get("metadata")
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise invalid("metadata", f"expected an object, got {type(metadata).__name__}")
    group = _group(data, kind)
    for key in REVISION_KEYS:
        for name in (key, f"{EVENT_GROUP}/{key}", f"{group}/{key}"):
            value = metadata.get(name)
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise invalid(f"metadata.{name}", f"expected a string, got {type(value).__name__}")
            return name, checked_text(value, f"metadata.{name}", TEXT)
    return None


def observed_state(data: Mapping[str, Any], kind: str) -> str | None:
    reason = text_at(data, "reason", required=False) or ""
    severity = text_at(data, "severity", required=False) or "info"
    if reason in APPLIED:
        return "applied"
    if kind == "HelmRelease" and reason == "info" and severity == "info":
        message = data.get("message")
        if isinstance(message, str) and _LEGACY_HELM_APPLIED.match(message):
            return "applied"
    if reason in UNHEALTHY or severity == "error":
        return "unhealthy"
    return None


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
        found = raw_revision(data, kind)
        if found is None:
            return Ignored(f"Flux event for {kind}/{namespace}/{name} carries no revision")
        key, raw = found
        target = target_of(f"flux:{kind}/{namespace}/{name}", "involvedObject")
        revision = checked_text(revision_of(raw), f"metadata.{key}", REVISION)
        request = ReleaseRequest(target=target, revision=revision, trigger="flux-event")
        return Inbound(request=request, observed=observed_state(data, kind))

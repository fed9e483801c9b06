"""Webhook payloads built from the providers' documented formats (only the fields we read,
plus typical neighbours), and signing helpers that produce the headers each sender really sends."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
import uuid
from typing import Any

SHA_A = "8f2c1d7e9a0b4c3d2e1f0a9b8c7d6e5f4a3b2c1d"
SHA_B = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"


def github_push(sha: str = SHA_A, files: tuple[str, ...] = ("clusters/prod/odoo/deployment.yaml",)) -> dict[str, Any]:
    return {
        "ref": "refs/heads/main",
        "before": "0" * 40,
        "after": sha,
        "created": False,
        "deleted": False,
        "forced": False,
        "repository": {"id": 1, "name": "odoo-config", "full_name": "acme/odoo-config", "private": True},
        "pusher": {"name": "dora", "email": "dora@acme.io"},
        "sender": {"login": "dora", "id": 7},
        "commits": [
            {
                "id": sha,
                "message": "Bump odoo image",
                "timestamp": "2026-11-24T09:00:00+01:00",
                "author": {"name": "Erik", "email": "erik@acme.io", "username": "erik"},
                "committer": {"name": "Dora", "email": "dora@acme.io", "username": "dora"},
                "added": [],
                "modified": list(files),
                "removed": [],
            }
        ],
        "head_commit": {"id": sha, "author": {"name": "Erik", "username": "erik"}},
    }


def github_merge(sha: str = SHA_B, action: str = "closed", merged: bool = True) -> dict[str, Any]:
    return {
        "action": action,
        "number": 42,
        "pull_request": {
            "number": 42,
            "state": "closed",
            "merged": merged,
            "merge_commit_sha": sha,
            "user": {"login": "erik"},
            "merged_by": {"login": "frank"},
            "base": {"ref": "main", "repo": {"full_name": "acme/odoo-config"}},
            "head": {"ref": "feature/bump", "sha": "f" * 40},
        },
        "repository": {"full_name": "acme/odoo-config"},
        "sender": {"login": "frank"},
    }


def github_protection_rule(callback_url: str, sha: str = SHA_A) -> dict[str, Any]:
    return {
        "action": "requested",
        "environment": "production",
        "event": "push",
        "sha": sha,
        "ref": "refs/heads/main",
        "deployment_callback_url": callback_url,
        "deployment": {"id": 9, "sha": sha, "ref": "main", "environment": "production"},
        "repository": {"full_name": "acme/odoo-config"},
        "installation": {"id": 5},
        "sender": {"login": "github-actions[bot]"},
    }


def gitlab_push(
    sha: str = SHA_A, files: tuple[str, ...] = ("clusters/prod/odoo/kustomization.yaml",)
) -> dict[str, Any]:
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": "0" * 40,
        "after": sha,
        "ref": "refs/heads/main",
        "checkout_sha": sha,
        "user_username": "dora",
        "project": {"id": 15, "path_with_namespace": "acme/odoo-config", "default_branch": "main"},
        "commits": [
            {
                "id": sha,
                "message": "Bump odoo",
                "author": {"name": "erik", "email": "erik@acme.io"},
                "added": [],
                "modified": list(files),
                "removed": [],
            }
        ],
        "total_commits_count": 1,
    }


def gitlab_merge(sha: str = SHA_B, action: str = "merge") -> dict[str, Any]:
    return {
        "object_kind": "merge_request",
        "event_type": "merge_request",
        "user": {"username": "frank", "name": "Frank"},
        "project": {"id": 15, "path_with_namespace": "acme/odoo-config"},
        "object_attributes": {
            "iid": 7,
            "action": action,
            "state": "merged",
            "target_branch": "main",
            "merge_commit_sha": sha,
            "last_commit": {"id": "e" * 40, "author": {"name": "erik", "email": "erik@acme.io"}},
        },
    }


def flux_event(reason: str = "Progressing", sha: str = SHA_A, severity: str = "info") -> dict[str, Any]:
    return {
        "involvedObject": {
            "kind": "Kustomization",
            "namespace": "odoo-prod",
            "name": "odoo",
            "uid": "b0e5c2f4-8f35-4e43-9a4d-3f0e6c1d2a7b",
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
            "resourceVersion": "12345",
        },
        "severity": severity,
        "timestamp": "2026-11-24T09:00:00Z",
        "message": "Applied revision: main@sha1:" + sha,
        "reason": reason,
        "metadata": {"revision": f"main@sha1:{sha}"},
        "reportingController": "kustomize-controller",
        "reportingInstance": "kustomize-controller-7c9d8f-abcde",
    }


def argocd_event(event: str, revision: str = SHA_A, app: str = "odoo-prod") -> dict[str, Any]:
    return {
        "event": event,
        "app": app,
        "namespace": "argocd",
        "project": "erp",
        "revision": revision,
        "syncStatus": "Synced",
        "healthStatus": "Degraded" if event == "health-degraded" else "Healthy",
        "operationPhase": "Succeeded",
        "finishedAt": "2026-11-24T09:01:00Z",
        "repoURL": "https://git.acme.io/odoo-config.git",
    }


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def hmac_header(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github_headers(secret: str, event: str, body: bytes, delivery: str | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/abc123",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "123456",
        "X-Hub-Signature-256": hmac_header(secret, body),
    }


def gitlab_headers(token: str, event: str, delivery: str | None = None) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": "GitLab/17.5.0",
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": token,
        "X-Gitlab-Event-UUID": delivery or str(uuid.uuid4()),
        "X-Gitlab-Instance": "https://git.acme.io",
    }


def flux_headers(secret: str, body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Signature": hmac_header(secret, body)}


def argocd_headers(token: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


# Fixtures for issue 14, written from each sender's documented format (docs/receivers.md cites them).

DIGEST = "4f1d6c0a9b8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a392817060f5e"


def flux_with_metadata(
    metadata: dict[str, str],
    kind: str = "Kustomization",
    reason: str = "Progressing",
    message: str = "Reconciliation in progress",
    severity: str = "info",
) -> dict[str, Any]:
    """A notification-controller event for ``kind`` odoo-prod/odoo with exactly ``metadata``."""
    group = {"Kustomization": "kustomize.toolkit.fluxcd.io/v1", "HelmRelease": "helm.toolkit.fluxcd.io/v2"}[kind]
    event = flux_event(reason=reason, severity=severity)
    event["involvedObject"] |= {"kind": kind, "apiVersion": group}
    event["metadata"] = metadata
    event["message"] = message
    event["reportingController"] = "helm-controller" if kind == "HelmRelease" else "kustomize-controller"
    return event


def github_form(payload: Any) -> bytes:
    """GitHub's ``application/x-www-form-urlencoded`` delivery: ``payload=<url-encoded JSON>``."""
    return b"payload=" + urllib.parse.quote_plus(json.dumps(payload)).encode()


def gitlab_merge_without_project(sha: str = SHA_B) -> dict[str, Any]:
    """A merge hook that names its project only in ``object_attributes.target``."""
    hook = gitlab_merge(sha)
    del hook["project"]
    hook["object_attributes"]["target"] = {
        "name": "odoo-config",
        "namespace": "acme",
        "path_with_namespace": "acme/odoo-config",
        "web_url": "https://git.acme.io/acme/odoo-config",
        "default_branch": "main",
    }
    hook["object_attributes"]["source"] = dict(hook["object_attributes"]["target"])
    hook["repository"] = {"name": "odoo-config", "url": "git@git.acme.io:acme/odoo-config.git"}
    return hook

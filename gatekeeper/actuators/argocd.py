"""Argo CD: sync an application to a revision, and roll it back, through Argo CD's REST API.

``POST /api/v1/applications/{name}/sync`` with an ``ApplicationSyncRequest`` (``revision``,
``prune: false``: gatekeeper lets a release out, it never deletes what Git dropped on its own
behalf) and ``POST /api/v1/applications/{name}/rollback`` with an ``ApplicationRollbackRequest``
(``id`` from ``status.history``). Bearer ``ARGOCD_API_TOKEN`` against ``ARGOCD_SERVER``.

Applications in any namespace (Argo CD's ``application.namespaces``): an application named
``<namespace>/<name>`` (the target ``argocd:<namespace>/<name>``) that lives outside the control
plane's namespace (``ARGOCD_NAMESPACE``) is asked for with ``appNamespace``, as Argo CD's API takes
it: a query parameter of the GET (``ApplicationQuery``), a field of the sync and rollback bodies
(``ApplicationSyncRequest``, ``ApplicationRollbackRequest``: their gateway routes read the whole
body and no query). A plain ``<name>``, or one in the control plane's namespace, sends none.

Idempotent: an application already synced to the revision, or whose running operation syncs to
it, is left alone; a rollback to the history entry the application already runs changes nothing.
Argo CD refuses a rollback of an application with auto-sync (it would sync back at once): that is
``RefusedError``, and the caller reverts in Git instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from gatekeeper.actuators import ActuatorError, RefusedError

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
RUNNING = ("Running", "Terminating")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a call did: ``changed`` False when the application already was as asked."""

    changed: bool
    message: str


class ArgoCdActuator:
    def __init__(
        self, server: str, token: str, *, control_namespace: str = "argocd", client: httpx.Client | None = None
    ) -> None:
        self._api = server.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "User-Agent": "gatekeeper"}
        self._control_namespace = control_namespace
        self._client = client or httpx.Client(timeout=TIMEOUT)

    def close(self) -> None:
        self._client.close()

    def application(self, name: str) -> dict[str, Any]:
        answer = self._call("GET", name, "", None)
        return answer if isinstance(answer, dict) else {}

    def sync(self, name: str, revision: str) -> Outcome:
        """Sync ``name`` to ``revision``, unless it is there already or an operation takes it there."""
        status = self.application(name).get("status") or {}
        synced = status.get("sync") or {}
        if synced.get("revision") == revision and synced.get("status") == "Synced":
            return Outcome(False, f"{name} already synced to {revision[:12]}")
        operation = status.get("operationState") or {}
        running_to = ((operation.get("operation") or {}).get("sync") or {}).get("revision")
        if operation.get("phase") in RUNNING and running_to == revision:
            return Outcome(False, f"{name}: a sync to {revision[:12]} is already running")
        body: dict[str, Any] = {"name": name, "revision": revision, "prune": False, "dryRun": False}
        self._call("POST", name, "/sync", body)
        return Outcome(True, f"{name}: sync to {revision[:12]} started")

    def rollback(self, name: str, revision: str) -> Outcome:
        """Roll ``name`` back to the newest ``status.history`` entry of ``revision``."""
        application = self.application(name)
        if ((application.get("spec") or {}).get("syncPolicy") or {}).get("automated") is not None:
            raise RefusedError(f"{name} has auto-sync: Argo CD refuses its rollback (revert in Git instead)")
        status = application.get("status") or {}
        if (status.get("sync") or {}).get("revision") == revision:
            return Outcome(False, f"{name} already runs {revision[:12]}")
        entries = [entry for entry in status.get("history") or [] if entry.get("revision") == revision]
        if not entries:
            raise RefusedError(f"{name} has no history entry of revision {revision[:12]} to roll back to")
        entry_id = int(entries[-1]["id"])
        body: dict[str, Any] = {"name": name, "id": entry_id, "prune": False, "dryRun": False}
        self._call("POST", name, "/rollback", body)
        return Outcome(True, f"{name}: rollback to history {entry_id} ({revision[:12]}) started")

    def _call(self, method: str, application: str, suffix: str, body: dict[str, Any] | None) -> Any:
        namespace, _, name = application.rpartition("/")
        url = f"{self._api}/api/v1/applications/{quote(name, safe='')}{suffix}"
        other = namespace if namespace and namespace != self._control_namespace else None
        params = {"appNamespace": other} if other and body is None else None
        if body is not None:
            body = body | {"name": name} | ({"appNamespace": other} if other else {})
        try:
            response = self._client.request(method, url, json=body, headers=self._headers, params=params)
        except httpx.HTTPError as exc:
            raise ActuatorError(f"{method} {url} failed: {type(exc).__name__}: {str(exc)[:200]}") from exc
        if response.status_code >= 400:
            raise ActuatorError(f"{method} {url} answered {response.status_code}: {response.text[:200]}")
        try:
            return response.json()
        except ValueError as exc:
            raise ActuatorError(f"{method} {url} answered no JSON: {response.text[:200]}") from exc

"""A wire-level fake of Argo CD's REST API on loopback (real HTTP, real httpx).

It checks what Argo CD documents: ``GET /api/v1/applications/{name}``, ``POST .../sync`` with an
``ApplicationSyncRequest`` (``revision`` a string, ``prune`` a boolean) and ``POST .../rollback``
with an ``ApplicationRollbackRequest`` (``id`` an integer from ``status.history``), a bearer token
on every request. A rollback of an application with ``spec.syncPolicy.automated`` is refused as
Argo CD refuses it. An Application outside the control plane's namespace (``add(..., namespace=)``,
"apps in any namespace") is found only when asked for with ``appNamespace`` where Argo CD reads
it: the query of a GET, the body of a sync or rollback (their routes read no query); otherwise
404, as Argo CD answers for an application it does not find in the namespace asked. A sync completes at once (history grows, ``status.sync`` moves), unless
``hold`` is set: then it stays ``Running``. Every request is recorded; effects are counted.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ARGOCD_TOKEN = "argocd-api-token-fake"
CONTROL_NAMESPACE = "argocd"
APP = re.compile(r"^/api/v1/applications/(?P<name>[a-z0-9][-a-z0-9.]*)(?P<verb>/sync|/rollback)?(?:\?.*)?$")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeArgoCd:
    url: str = ""
    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    syncs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (app, revision) -> POSTs
    rollbacks: Counter[tuple[str, int]] = field(default_factory=Counter)
    hold: bool = False  # a sync stays Running (an operation in progress)
    autocreate: bool = False  # an unknown application exists (manual sync, no history)
    delay: float = 0.0
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(
        self,
        name: str,
        revision: str,
        *,
        automated: bool = False,
        history: tuple[str, ...] = (),
        source: dict[str, str] | None = None,
        namespace: str = CONTROL_NAMESPACE,
    ) -> None:
        entries = [{"id": n, "revision": rev} for n, rev in enumerate((*history, revision), start=1)]
        policy: dict[str, Any] = {"automated": {"prune": False, "selfHeal": False}} if automated else {}
        self.apps[name] = {
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"syncPolicy": policy, "source": source or {"repoURL": "https://git.acme.io/odoo-config.git"}},
            "status": {"sync": {"status": "Synced", "revision": revision}, "history": entries},
        }

    def posts(self, verb: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith(verb)]

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def handle(self, recorded: Recorded) -> tuple[int, dict[str, Any]]:
        if recorded.headers.get("authorization") != f"Bearer {ARGOCD_TOKEN}":
            return 401, {"error": "invalid session", "code": 16, "message": "invalid session"}
        match = APP.match(recorded.path)
        if match is None:
            return 404, {"code": 5, "message": f"unknown path {recorded.path}"}
        name, verb = match["name"], match["verb"]
        with self.lock:
            if name not in self.apps and self.autocreate:
                self.apps[name] = {"metadata": {"name": name}, "spec": {"syncPolicy": {}}, "status": {"history": []}}
            app = self.apps.get(name)
            asked = _asked_namespace(recorded)
            if app is not None and app["metadata"].get("namespace", CONTROL_NAMESPACE) != asked:
                app = None
            if app is None:
                return 404, {"code": 5, "message": f'application "{name}" not found in namespace "{asked}"'}
            if recorded.method == "GET" and verb is None:
                return 200, json.loads(json.dumps(app))
            if recorded.method == "POST" and verb == "/sync":
                return self._sync(name, app, recorded.body)
            if recorded.method == "POST" and verb == "/rollback":
                return self._rollback(name, app, recorded.body)
        return 405, {"code": 12, "message": f"{recorded.method} not allowed on {recorded.path}"}

    def _sync(self, name: str, app: dict[str, Any], body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("revision"), str) or body.get("name") != name:
            return 400, {"code": 3, "message": "ApplicationSyncRequest needs name and a string revision"}
        if not isinstance(body.get("prune"), bool) or body["prune"]:
            return 400, {"code": 3, "message": "gatekeeper must sync with prune false"}
        status = app["status"]
        if (status.get("operationState") or {}).get("phase") == "Running":
            return 400, {"code": 9, "message": "another operation is already in progress"}
        revision = body["revision"]
        self.syncs[(name, revision)] += 1
        operation = {"sync": {"revision": revision, "prune": False}}
        if self.hold:
            status["operationState"] = {"phase": "Running", "operation": operation}
        else:
            self._synced(status, revision, operation)
        return 200, json.loads(json.dumps(app))

    def _rollback(self, name: str, app: dict[str, Any], body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("id"), int) or body.get("name") != name:
            return 400, {"code": 3, "message": "ApplicationRollbackRequest needs name and an integer id"}
        if app["spec"].get("syncPolicy", {}).get("automated") is not None:
            return 400, {"code": 9, "message": "rollback cannot be initiated when auto-sync is enabled"}
        status = app["status"]
        entries = [e for e in status.get("history", []) if e["id"] == body["id"]]
        if not entries:
            return 400, {"code": 3, "message": f"application {name} does not have deployment id '{body['id']}'"}
        self.rollbacks[(name, body["id"])] += 1
        self._synced(status, entries[0]["revision"], {"sync": {"revision": entries[0]["revision"]}})
        return 200, json.loads(json.dumps(app))

    @staticmethod
    def _synced(status: dict[str, Any], revision: str, operation: dict[str, Any]) -> None:
        history = status.setdefault("history", [])
        history.append({"id": len(history) + 1, "revision": revision})
        status["sync"] = {"status": "Synced", "revision": revision}
        status["operationState"] = {"phase": "Succeeded", "operation": operation}


def _asked_namespace(recorded: Recorded) -> str:
    """The ``appNamespace`` where Argo CD reads it: a GET's query, a POST's body."""
    if recorded.method == "GET":
        values = parse_qs(urlsplit(recorded.path).query).get("appNamespace") or [CONTROL_NAMESPACE]
        return values[0]
    body = recorded.body if isinstance(recorded.body, dict) else {}
    return str(body.get("appNamespace") or CONTROL_NAMESPACE)


def start_fake_argocd() -> FakeArgoCd:
    fake = FakeArgoCd()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("content-length", "0"))
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = None
            recorded = Recorded(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            if fake.delay:
                time.sleep(fake.delay)
            with fake.lock:
                fake.requests.append(recorded)
            status, answer = fake.handle(recorded)
            if status >= 400:
                with fake.lock:
                    fake.errors.append(f"{method} {self.path}: {answer['message']}")
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake.server = server
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    return fake

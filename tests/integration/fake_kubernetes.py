"""A wire-level fake of the Kubernetes API on loopback, for the real ``kubernetes`` client.

It speaks the documented REST paths and JSON: discovery (``/api/v1``, ``/apis/{group}/{version}``
as ``APIResourceList``), LIST (``/api/v1/namespaces/{ns}/configmaps``, ``/apis/apps/v1/namespaces/
{ns}/deployments``, an ``...List`` with ``metadata.resourceVersion`` and items without kind and
apiVersion, as the API sends them) and GET of one object, bearer-token authentication (401), and
``Status`` objects for 404 (NotFound) and 403 (Forbidden, as RBAC words it). Every request is
recorded, so tests and the bench count them.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TOKEN = "fake-serviceaccount-token"
USER = "system:serviceaccount:gatekeeper:gatekeeper"


@dataclass(frozen=True)
class Kind:
    group_version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.group_version.rpartition("/")[0]


KINDS = [
    Kind("v1", "ConfigMap", "configmaps"),
    Kind("v1", "Secret", "secrets"),
    Kind("v1", "Service", "services"),
    Kind("v1", "ServiceAccount", "serviceaccounts"),
    Kind("v1", "Namespace", "namespaces", namespaced=False),
    Kind("apps/v1", "Deployment", "deployments"),
    Kind("apps/v1", "StatefulSet", "statefulsets"),
    Kind("argoproj.io/v1alpha1", "Application", "applications"),
    Kind("kustomize.toolkit.fluxcd.io/v1", "Kustomization", "kustomizations"),
    Kind("helm.toolkit.fluxcd.io/v2", "HelmRelease", "helmreleases"),
    Kind("source.toolkit.fluxcd.io/v1", "GitRepository", "gitrepositories"),
]
SUBRESOURCES = {"Deployment": ["scale", "status"], "StatefulSet": ["scale", "status"]}
_PATH = re.compile(
    r"^/(?:api/(?P<core>v1)|apis/(?P<gv>[^/]+/[^/]+))(?:/namespaces/(?P<ns>[^/]+))?(?:/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?)?$"
)


@dataclass
class Request:
    method: str
    path: str
    authorization: str | None
    content_type: str | None = None
    body: Any = None


@dataclass
class FakeKubernetes:
    url: str = ""
    objects: dict[tuple[str, str, str | None, str], dict[str, Any]] = field(default_factory=dict)
    forbidden: set[tuple[str, str | None]] = field(default_factory=set)  # (plural, namespace) RBAC denies
    requests: list[Request] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    version: int = 1000
    latency: float = 0.0  # seconds each GET waits before answering (a real API server is not in-process)

    # --- state ------------------------------------------------------------------------------------

    def put(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Store an object as the API server returns it (the caller gives every server field)."""
        kind = _kind_of(manifest["apiVersion"], manifest["kind"])
        metadata = manifest["metadata"]
        with self.lock:
            self.version += 1
            stored = copy.deepcopy(manifest)
            stored["metadata"].setdefault("resourceVersion", str(self.version))
            key = (kind.group_version, kind.plural, metadata.get("namespace") if kind.namespaced else None, metadata["name"])
            self.objects[key] = stored
            return stored

    def object(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        found = _kind_of(api_version, kind)
        return self.objects[(found.group_version, found.plural, namespace, name)]

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        found = _kind_of(api_version, kind)
        with self.lock:
            del self.objects[(found.group_version, found.plural, namespace, name)]

    def clear(self) -> None:
        with self.lock:
            self.objects.clear()
            self.forbidden.clear()
            self.requests.clear()

    def count(self, *, since: int = 0, discovery: bool = True) -> int:
        chosen = self.requests[since:]
        if not discovery:
            chosen = [r for r in chosen if (m := _PATH.match(r.path)) is not None and m.group("plural")]
        return len(chosen)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def patches(self) -> list[Request]:
        return [r for r in self.requests if r.method == "PATCH"]

    # --- the API ------------------------------------------------------------------------------------

    def patch(self, path: str, authorization: str | None, content_type: str | None, body: Any) -> tuple[int, dict[str, Any]]:
        """A JSON merge patch (RFC 7386) of one object; other patch types are refused (415)."""
        if authorization != f"Bearer {TOKEN}":
            return 401, _status(401, "Unauthorized", "Unauthorized")
        if content_type != "application/merge-patch+json":
            return 415, _status(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content_type}")
        match = _PATH.match(path.split("?", 1)[0])
        if match is None or match.group("name") is None or not isinstance(body, dict):
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        group_version = match.group("core") or match.group("gv")
        key = (group_version, match.group("plural"), match.group("ns"), match.group("name"))
        with self.lock:
            found = self.objects.get(key)
            if found is None:
                return 404, _status(404, "NotFound", f'{key[1]} "{key[3]}" not found')
            _merge(found, body)
            self.version += 1
            found["metadata"]["resourceVersion"] = str(self.version)
            return 200, copy.deepcopy(found)

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        if authorization != f"Bearer {TOKEN}":
            return 401, _status(401, "Unauthorized", "Unauthorized")
        match = _PATH.match(path.split("?", 1)[0])
        if match is None:
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        group_version = match.group("core") or match.group("gv")
        namespace, plural, name = match.group("ns"), match.group("plural"), match.group("name")
        kinds = [kind for kind in KINDS if kind.group_version == group_version]
        if not kinds:
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        if plural is None:
            return 200, _discovery(group_version, kinds)
        kind = next((k for k in kinds if k.plural == plural), None)
        if kind is None:
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        if (plural, namespace) in self.forbidden:
            verb = "get" if name else "list"
            group = f'"{kind.group}"' if kind.group else '""'
            message = (
                f'{plural}{"." + kind.group if kind.group else ""} is forbidden: User "{USER}" cannot {verb} resource '
                f'"{plural}" in API group {group} in the namespace "{namespace}"'
            )
            return 403, _status(403, "Forbidden", message, {"kind": plural, "group": kind.group})
        with self.lock:
            if name is not None:
                found = self.objects.get((group_version, plural, namespace if kind.namespaced else None, name))
                if found is None:
                    details = {"name": name, "kind": plural, "group": kind.group}
                    return 404, _status(404, "NotFound", f'{plural} "{name}" not found', details)
                return 200, copy.deepcopy(found)
            items = [
                _as_list_item(obj)
                for (gv, pl, ns, _), obj in sorted(self.objects.items(), key=lambda item: str(item[0]))
                if gv == group_version and pl == plural and (namespace is None or ns == namespace)
            ]
            return 200, {
                "kind": f"{kind.kind}List",
                "apiVersion": group_version,
                "metadata": {"resourceVersion": str(self.version)},
                "items": items,
            }


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _kind_of(api_version: str, kind: str) -> Kind:
    return next(k for k in KINDS if k.group_version == api_version and k.kind == kind)


def _as_list_item(obj: dict[str, Any]) -> dict[str, Any]:
    item = copy.deepcopy(obj)
    item.pop("kind", None)
    item.pop("apiVersion", None)
    return item


def _discovery(group_version: str, kinds: list[Kind]) -> dict[str, Any]:
    resources: list[dict[str, Any]] = []
    for kind in kinds:
        resources.append(
            {
                "name": kind.plural,
                "singularName": kind.kind.lower(),
                "namespaced": kind.namespaced,
                "kind": kind.kind,
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "storageVersionHash": "abcdEFGH123=",
            }
        )
        for sub in SUBRESOURCES.get(kind.kind, []):
            resources.append(
                {"name": f"{kind.plural}/{sub}", "singularName": "", "namespaced": True,
                 "kind": "Scale" if sub == "scale" else kind.kind, "verbs": ["get", "patch", "update"]}
            )  # fmt: skip
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # clients list side by side: socketserver's 5 drops SYNs (a 1 s retry)


def start_fake_kubernetes() -> FakeKubernetes:
    fake = FakeKubernetes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            authorization = self.headers.get("Authorization")
            with fake.lock:
                fake.requests.append(Request("GET", self.path, authorization))
            if fake.latency:
                time.sleep(fake.latency)
            status, body = fake.answer(self.path, authorization)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Audit-Id", "00000000-0000-0000-0000-000000000000")
            self.end_headers()
            self.wfile.write(payload)

        def do_PATCH(self) -> None:
            authorization, content_type = self.headers.get("Authorization"), self.headers.get("Content-Type")
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = None
            with fake.lock:
                fake.requests.append(Request("PATCH", self.path, authorization, content_type, body))
            status, answer = fake.patch(self.path, authorization, content_type, body)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_args: Any) -> None:
            return

    server = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake.server = server
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    return fake


def write_kubeconfig(path: Path, clusters: dict[str, str], current: str) -> Path:
    """A kubeconfig with one context per cluster (name -> server URL), token authentication."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": url}} for name, url in clusters.items()],
        "users": [{"name": "gatekeeper", "user": {"token": TOKEN}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "gatekeeper"}} for name in clusters],
        "current-context": current,
    }
    path.write_text(json.dumps(document, indent=2))
    return path


@contextmanager
def running() -> Iterator[FakeKubernetes]:
    fake = start_fake_kubernetes()
    try:
        yield fake
    finally:
        fake.stop()

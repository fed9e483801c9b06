"""Flux: suspend and resume a Kustomization or HelmRelease (DESIGN §3 Flux) with the kubernetes client.

Flux has no pre-sync hook, so gatekeeper gates it from outside: ``spec.suspend: true`` (a JSON
merge patch, ``application/merge-patch+json``) while its release is deferred, ``false`` again when
it is approved, with the ``reconcile.fluxcd.io/requestedAt`` annotation so the controller
reconciles at once instead of at its next interval. A target is ``flux:<Kind>/<namespace>/<name>``
in the cluster of a kubeconfig context (None: the current one).

Idempotent: the object is read first; one already suspended, or already resumed with the same
reconcile request, is not patched again. No ``ApiException`` or urllib3 error escapes: they become
``ActuatorError`` naming the object.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from gatekeeper.actuators import ActuatorError, RefusedError

REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"
RESOURCES = {  # kind -> (API path prefix, plural)
    "Kustomization": ("/apis/kustomize.toolkit.fluxcd.io/v1", "kustomizations"),
    "HelmRelease": ("/apis/helm.toolkit.fluxcd.io/v2", "helmreleases"),
}


@dataclass(frozen=True, slots=True)
class FluxObject:
    kind: str
    namespace: str
    name: str

    @classmethod
    def from_target(cls, target: str) -> FluxObject:
        kind, _, rest = target.removeprefix("flux:").partition("/")
        namespace, _, name = rest.partition("/")
        if kind not in RESOURCES or not namespace or not name:
            raise RefusedError(f"{target!r} is not flux:<Kustomization|HelmRelease>/<namespace>/<name>")
        return cls(kind, namespace, name)

    @property
    def path(self) -> str:
        prefix, plural = RESOURCES[self.kind]
        return f"{prefix}/namespaces/{self.namespace}/{plural}/{self.name}"

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Patched:
    changed: bool
    message: str


class FluxActuator:
    def __init__(self, kubeconfig: Path | None = None, *, cluster: str | None = None, timeout: float = 10.0) -> None:
        self.kubeconfig = kubeconfig
        self.cluster = cluster
        self.timeout = timeout
        self._api: client.ApiClient | None = None

    def suspend(self, target: FluxObject) -> Patched:
        spec = self._call("GET", target.path, None).get("spec") or {}
        if spec.get("suspend") is True:
            return Patched(False, f"{target} already suspended")
        self._call("PATCH", target.path, {"spec": {"suspend": True}})
        return Patched(True, f"{target} suspended")

    def resume(self, target: FluxObject, requested_at: str) -> Patched:
        found = self._call("GET", target.path, None)
        annotations = (found.get("metadata") or {}).get("annotations") or {}
        if (found.get("spec") or {}).get("suspend") is not True and annotations.get(REQUESTED_AT) == requested_at:
            return Patched(False, f"{target} already resumed (reconcile requested at {requested_at})")
        patch = {"metadata": {"annotations": {REQUESTED_AT: requested_at}}, "spec": {"suspend": False}}
        self._call("PATCH", target.path, patch)
        return Patched(True, f"{target} resumed, reconcile requested at {requested_at}")

    def close(self) -> None:
        if self._api is not None:
            self._api.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        api = self._client()
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/merge-patch+json"
        try:
            response = api.call_api(
                path, method, header_params=headers, body=body, auth_settings=["BearerToken"],
                _preload_content=False, _request_timeout=self.timeout,
            )  # fmt: skip
            answer: dict[str, Any] = json.loads(response.data)
            return answer
        except ApiException as exc:
            raise ActuatorError(f"{method} {path} answered {exc.status}: {str(exc.body or exc.reason)[:200]}") from exc
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise ActuatorError(f"{method} {path} failed: {str(exc)[:200]}") from exc

    def _client(self) -> client.ApiClient:
        if self._api is None:
            configuration = client.Configuration()
            try:
                if self.kubeconfig is None and self.cluster is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                    config.load_incluster_config(client_configuration=configuration)
                else:
                    config.load_kube_config(
                        config_file=str(self.kubeconfig) if self.kubeconfig else None,
                        context=self.cluster,
                        client_configuration=configuration,
                        persist_config=False,
                    )
            except (ConfigException, OSError, TypeError, ValueError) as exc:
                raise ActuatorError(f"no usable kubeconfig: {str(exc)[:200]}") from exc
            configuration.retries = 1
            self._api = client.ApiClient(configuration)
        return self._api

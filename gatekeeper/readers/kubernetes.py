"""``KubernetesClusterReader``: live objects from the Kubernetes API with the official client.

A cluster is a kubeconfig context (None: the current one; with no kubeconfig file, in-cluster
config where it is available). Objects are read raw (the API's JSON, not the client's models, which
would rename and drop fields): one LIST per (apiVersion, kind, namespace) a check needs, never a GET
per object; the resource names of a group version are discovered once per cluster and cached. No
``ApiException`` or urllib3 error escapes: they become ``ClusterReadError`` naming the cluster (a
404 on a GET is an absent object, not an error; an API group the cluster does not serve lists
nothing).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from gatekeeper.ports import ClusterReadError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Resource:
    plural: str
    namespaced: bool


class KubernetesClusterReader:
    def __init__(self, kubeconfig: Path | None = None, *, timeout: float = 10.0) -> None:
        self.kubeconfig = kubeconfig
        self.timeout = timeout
        self.requests = 0  # API requests made (the bench counts them per check)
        self._clients: dict[str | None, client.ApiClient] = {}
        self._resources: dict[tuple[str | None, str], dict[str, _Resource] | None] = {}
        self._lock = threading.Lock()

    def list(self, cluster: str | None, api_version: str, kind: str, namespace: str | None) -> list[dict[str, Any]]:
        resource = self._resource(cluster, api_version, kind)
        if resource is None:
            return []
        where = f"/namespaces/{namespace}" if resource.namespaced and namespace else ""
        body = self._get(cluster, f"{_base(api_version)}{where}/{resource.plural}")
        return list((body or {}).get("items") or [])

    def get(
        self, cluster: str | None, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        resource = self._resource(cluster, api_version, kind)
        if resource is None:
            return None
        where = f"/namespaces/{namespace}" if resource.namespaced and namespace else ""
        return self._get(cluster, f"{_base(api_version)}{where}/{resource.plural}/{name}")

    def close(self) -> None:
        with self._lock:
            for api in self._clients.values():
                api.close()
            self._clients.clear()

    # --- discovery and the wire -------------------------------------------------------------------

    def _resource(self, cluster: str | None, api_version: str, kind: str) -> _Resource | None:
        key = (cluster, api_version)
        if key not in self._resources:
            body = self._get(cluster, _base(api_version))
            self._resources[key] = (
                None
                if body is None
                else {
                    item["kind"]: _Resource(item["name"], bool(item.get("namespaced")))
                    for item in body.get("resources", [])
                    if "/" not in item.get("name", "/")  # not a subresource (deployments/scale)
                }
            )
        kinds = self._resources[key]
        return None if kinds is None else kinds.get(kind)

    def _get(self, cluster: str | None, path: str) -> dict[str, Any] | None:
        api = self._client(cluster)
        with self._lock:  # the drift reader lists side by side
            self.requests += 1
        try:
            response = api.call_api(
                path,
                "GET",
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=self.timeout,
            )
            body: dict[str, Any] = json.loads(response.data)
            return body
        except ApiException as exc:
            if exc.status == 404:
                return None
            message = f"{_name(cluster)}: GET {path} answered {exc.status}: {_status_message(exc)}"
            raise ClusterReadError(message) from exc
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise ClusterReadError(f"{_name(cluster)}: GET {path} failed: {str(exc)[:200]}") from exc

    def _client(self, cluster: str | None) -> client.ApiClient:
        with self._lock:
            if cluster not in self._clients:
                self._clients[cluster] = self._connect(cluster)
            return self._clients[cluster]

    def _connect(self, cluster: str | None) -> client.ApiClient:
        configuration = client.Configuration()
        try:
            if self.kubeconfig is None and cluster is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config(client_configuration=configuration)
            else:
                config.load_kube_config(
                    config_file=str(self.kubeconfig) if self.kubeconfig else None,
                    context=cluster,
                    client_configuration=configuration,
                    persist_config=False,
                )
        except (ConfigException, OSError, TypeError, ValueError) as exc:
            raise ClusterReadError(f"{_name(cluster)}: no usable kubeconfig: {str(exc)[:200]}") from exc
        configuration.retries = 1  # an unreachable API fails fast; the decision retries later
        return client.ApiClient(configuration)


def _base(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


def _name(cluster: str | None) -> str:
    return f"cluster {cluster}" if cluster else "the current cluster"


def _status_message(exc: ApiException) -> str:
    """The ``Status`` object's message, truncated (never the whole body)."""
    try:
        status = json.loads(exc.body or "{}")
        message = str(status.get("message") or exc.reason)
    except (ValueError, AttributeError):
        message = str(exc.reason)
    return message[:200]

"""The world the drift tests and the bench live in: a Git config repository made with pygit2 and
the live objects an API server would hold after Argo CD applied it.

The repository (a bare remote the reader fetches from, built commit by commit with pygit2):
``apps/odoo/`` (a plain directory: the web Deployment; a ConfigMap and a Service in one
multi-document file), ``clusters/prod/kustomization.yaml`` (``resources: [../../apps/odoo]``,
``namespace: odoo``), ``clusters/patched/`` (a Kustomize patch) and ``charts/odoo/`` (a Helm chart).
The live objects carry every field the API server and its controllers set, as
``kubectl get -o json`` prints them (apps/v1 Deployment, v1 ConfigMap and Service, June 2025
Kubernetes 1.33 defaults).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pygit2

IMAGE_BASELINE = "registry.acme.io/odoo:17.0@sha256:" + "1" * 64
IMAGE_RELEASE = "registry.acme.io/odoo:17.1@sha256:" + "2" * 64
SIGNATURE = pygit2.Signature("Ada Release", "ada@acme.io", 1_764_000_000, 60)

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app.kubernetes.io/name: odoo, app.kubernetes.io/component: web}
  annotations:
    acme.io/owner: erp-team
    acme.io/last-review: 2026-11-02
spec:
  replicas: 2
  selector:
    matchLabels: {app.kubernetes.io/name: odoo, app.kubernetes.io/component: web}
  template:
    metadata:
      labels: {app.kubernetes.io/name: odoo, app.kubernetes.io/component: web}
    spec:
      containers:
        - name: odoo
          image: {image}
          args: ["--proxy-mode", "--workers=4"]
          env:
            - {name: ODOO_DB_HOST, value: postgres.odoo.svc}
            - {name: ODOO_WORKERS, value: "4"}
          ports:
            - {name: http, containerPort: 8069}
          readinessProbe:
            httpGet: {path: /web/health, port: http}
          resources:
            requests: {cpu: 1000m, memory: 1024Mi}
            limits: {cpu: 2, memory: 2Gi}
          volumeMounts:
            - {name: config, mountPath: /etc/odoo}
      volumes:
        - name: config
          configMap: {name: odoo-config}
"""

CONFIG_AND_SERVICE = """\
# the web tier's configuration and its Service, in one file
apiVersion: v1
kind: ConfigMap
metadata:
  name: odoo-config
data:
  odoo.conf: |
    [options]
    proxy_mode = True
  workers: "4"
---
apiVersion: v1
kind: Service
metadata:
  name: odoo
spec:
  selector: {app.kubernetes.io/name: odoo, app.kubernetes.io/component: web}
  ports:
    - {name: http, port: 80, targetPort: http}
---
"""

KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: odoo
resources:
  - ../../apps/odoo
"""

PATCHED = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: odoo
resources: [../../apps/odoo]
patches:
  - target: {kind: Deployment, name: web}
    patch: |
      - {op: replace, path: /spec/replicas, value: 4}
"""

CHART = """\
apiVersion: v2
name: odoo
version: 1.4.0
"""


def files_at(image: str) -> dict[str, str]:
    return {
        "apps/odoo/deployment.yaml": DEPLOYMENT.replace("{image}", image),
        "apps/odoo/config.yaml": CONFIG_AND_SERVICE,
        "apps/odoo/README.md": "The Odoo web tier (not a manifest).\n",
        "clusters/prod/kustomization.yaml": KUSTOMIZATION,
        "clusters/patched/kustomization.yaml": PATCHED,
        "charts/odoo/Chart.yaml": CHART,
        "charts/odoo/templates/deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: {{ .Release.Name }}}\n",
    }


def _tree(repo: pygit2.Repository, files: dict[str, str]) -> pygit2.Oid:
    """A tree (and its subtrees) holding ``files`` (path -> text)."""
    here: dict[str, str] = {}
    below: dict[str, dict[str, str]] = {}
    for path, text in files.items():
        head, _, rest = path.partition("/")
        if rest:
            below.setdefault(head, {})[rest] = text
        else:
            here[head] = text
    builder = repo.TreeBuilder()
    for name, text in here.items():
        builder.insert(name, repo.create_blob(text.encode()), pygit2.enums.FileMode.BLOB)
    for name, children in below.items():
        builder.insert(name, _tree(repo, children), pygit2.enums.FileMode.TREE)
    return builder.write()


def commit(repo: pygit2.Repository, branch: str, files: dict[str, str], message: str) -> str:
    """Commit ``files`` as the whole tree on ``branch`` (its tip the parent), return the SHA."""
    ref = f"refs/heads/{branch}"
    parents = [repo.references[ref].target] if ref in repo.references else []
    oid = repo.create_commit(ref, SIGNATURE, SIGNATURE, message, _tree(repo, files), parents)
    return str(oid)


class ConfigRepo:
    """The bare remote (``file://`` URL) and the commits the tests use."""

    def __init__(self, root: Path, objects: int = 0) -> None:
        self.path = root / "odoo-config.git"
        self.repo = pygit2.init_repository(str(self.path), bare=True)
        extra = bulk_files(objects)
        self.baseline = commit(self.repo, "main", {**files_at(IMAGE_BASELINE), **extra}, "odoo 17.0")
        self.release = commit(self.repo, "main", {**files_at(IMAGE_RELEASE), **extra}, "odoo 17.1")
        self.url = self.path.resolve().as_uri()

    def branch(self, name: str, files: dict[str, str], message: str) -> str:
        return commit(self.repo, name, files, message)


def bulk_files(count: int) -> dict[str, str]:
    """``count`` more ConfigMaps under apps/odoo/bulk/ (the bench), in four namespaces' worth of kinds."""
    if not count:
        return {}
    documents = [
        textwrap.dedent(
            f"""\
            apiVersion: v1
            kind: ConfigMap
            metadata: {{name: feature-{index:04d}}}
            data: {{enabled: "true", owner: erp-team, index: "{index}"}}
            """
        )
        for index in range(count)
    ]
    return {"apps/odoo/bulk/features.yaml": "---\n".join(documents)}


# --- the live side: what the API server holds after Argo CD applied the baseline ----------------

ARGO_APP = "odoo-prod"


def _tracking(kind: str, group: str, name: str) -> str:
    return f"{ARGO_APP}:{group}/{kind}:odoo/{name}"


def managed_fields(manager: str, api_version: str, when: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:argocd.argoproj.io/tracking-id": {}}}},
            "manager": manager,
            "operation": "Apply",
            "time": when,
        },
        {
            "apiVersion": api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:status": {}},
            "manager": "kube-controller-manager",
            "operation": "Update",
            "subresource": "status",
            "time": when,
        },
    ]


def live_deployment(image: str = IMAGE_BASELINE, replicas: int = 2) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "odoo", "app.kubernetes.io/component": "web"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "annotations": {
                "acme.io/owner": "erp-team",
                "acme.io/last-review": "2026-11-02",
                "argocd.argoproj.io/tracking-id": _tracking("Deployment", "apps", "web"),
                "deployment.kubernetes.io/revision": "7",
            },
            "creationTimestamp": "2026-06-02T08:14:51Z",
            "generation": 7,
            "labels": {**labels, "app.kubernetes.io/instance": ARGO_APP},
            "managedFields": managed_fields("argocd-controller", "apps/v1", "2026-11-20T09:03:12Z"),
            "name": "web",
            "namespace": "odoo",
            "resourceVersion": "48213377",
            "uid": "4f6c2f9e-8d0a-4c1e-9b67-0f1d2e3a4b5c",
        },
        "spec": {
            "progressDeadlineSeconds": 600,
            "replicas": replicas,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": dict(labels)},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
            "template": {
                "metadata": {"creationTimestamp": None, "labels": dict(labels)},
                "spec": {
                    "containers": [
                        {
                            "args": ["--proxy-mode", "--workers=4"],
                            "env": [
                                {"name": "ODOO_DB_HOST", "value": "postgres.odoo.svc"},
                                {"name": "ODOO_WORKERS", "value": "4"},
                            ],
                            "image": image,
                            "imagePullPolicy": "IfNotPresent",
                            "name": "odoo",
                            "ports": [{"containerPort": 8069, "name": "http", "protocol": "TCP"}],
                            "readinessProbe": {
                                "failureThreshold": 3,
                                "httpGet": {"path": "/web/health", "port": "http", "scheme": "HTTP"},
                                "periodSeconds": 10,
                                "successThreshold": 1,
                                "timeoutSeconds": 1,
                            },
                            "resources": {
                                "limits": {"cpu": "2", "memory": "2Gi"},
                                "requests": {"cpu": "1", "memory": "1Gi"},
                            },
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                            "volumeMounts": [{"mountPath": "/etc/odoo", "name": "config"}],
                        },
                        {  # injected by the mesh's mutating webhook: not Git's, not drift
                            "image": "registry.acme.io/mesh/proxy:1.24.2",
                            "imagePullPolicy": "IfNotPresent",
                            "name": "mesh-proxy",
                            "resources": {},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                        },
                    ],
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "Always",
                    "schedulerName": "default-scheduler",
                    "securityContext": {},
                    "terminationGracePeriodSeconds": 30,
                    "volumes": [{"configMap": {"defaultMode": 420, "name": "odoo-config"}, "name": "config"}],
                },
            },
        },
        "status": {
            "availableReplicas": replicas,
            "conditions": [
                {
                    "lastTransitionTime": "2026-06-02T08:15:20Z",
                    "lastUpdateTime": "2026-06-02T08:15:20Z",
                    "message": "Deployment has minimum availability.",
                    "reason": "MinimumReplicasAvailable",
                    "status": "True",
                    "type": "Available",
                },
                {
                    "lastTransitionTime": "2026-06-02T08:14:51Z",
                    "lastUpdateTime": "2026-11-20T09:03:40Z",
                    "message": 'ReplicaSet "web-6d9f7c5b8d" has successfully progressed.',
                    "reason": "NewReplicaSetAvailable",
                    "status": "True",
                    "type": "Progressing",
                },
            ],
            "observedGeneration": 7,
            "readyReplicas": replicas,
            "replicas": replicas,
            "updatedReplicas": replicas,
        },
    }


def live_config_map(name: str = "odoo-config", data: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "annotations": {"argocd.argoproj.io/tracking-id": _tracking("ConfigMap", "", name)},
            "creationTimestamp": "2026-06-02T08:14:50Z",
            "managedFields": managed_fields("argocd-controller", "v1", "2026-06-02T08:14:50Z")[:1],
            "name": name,
            "namespace": "odoo",
            "resourceVersion": "48210001",
            "uid": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
        },
        "data": data if data is not None else {"odoo.conf": "[options]\nproxy_mode = True\n", "workers": "4"},
    }


def live_service() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "annotations": {"argocd.argoproj.io/tracking-id": _tracking("Service", "", "odoo")},
            "creationTimestamp": "2026-06-02T08:14:50Z",
            "managedFields": managed_fields("argocd-controller", "v1", "2026-06-02T08:14:50Z")[:1],
            "name": "odoo",
            "namespace": "odoo",
            "resourceVersion": "48210002",
            "uid": "9a8b7c6d-5e4f-3a2b-1c0d-e9f8a7b6c5d4",
        },
        "spec": {
            "clusterIP": "10.96.112.40",
            "clusterIPs": ["10.96.112.40"],
            "internalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}],
            "selector": {"app.kubernetes.io/name": "odoo", "app.kubernetes.io/component": "web"},
            "sessionAffinity": "None",
            "type": "ClusterIP",
        },
        "status": {"loadBalancer": {}},
    }


def argocd_application(repo_url: str, synced: str, *, path: str = "clusters/prod", status: str = "Synced") -> dict[str, Any]:
    """An Argo CD Application as the API returns it, synced to ``synced``."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": ARGO_APP,
            "namespace": "argocd",
            "uid": "77aa88bb-99cc-4ddd-8eee-ffff00001111",
            "resourceVersion": "51234",
            "generation": 42,
            "creationTimestamp": "2026-01-10T10:00:00Z",
        },
        "spec": {
            "project": "erp",
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "odoo"},
            "source": {"repoURL": repo_url, "path": path, "targetRevision": "main"},
            "syncPolicy": {"syncOptions": ["ServerSideApply=true"]},
        },
        "status": {
            "sync": {
                "status": status,
                "revision": synced,
                "comparedTo": {"source": {"repoURL": repo_url, "path": path, "targetRevision": "main"}},
            },
            "health": {"status": "Healthy"},
            "history": [{"id": 7, "revision": synced, "deployedAt": "2026-11-20T09:03:10Z"}],
            "reconciledAt": "2026-11-24T12:00:00Z",
        },
    }

"""Which governed targets a push concerns: those that deploy from the pushed repository and whose
source path the push touched (DESIGN §4, "announced"). Read before any transaction.

A target's source (DESIGN §3, Target sources): a policy's ``spec.source`` for the concrete target
keys it lists (no glob characters), the Argo CD ``Application`` objects in ``ARGOCD_NAMESPACE``
and the Flux ``Kustomization`` objects with their ``GitRepository`` (three LISTs, cached for
``ttl`` seconds) that some policy governs. Repository
URLs are compared normalised (``https://github.com/acme/x.git``, ``git@github.com:acme/x`` and
``ssh://git@github.com/acme/x`` are one repository). A cluster that cannot be read leaves the
Applications out (logged): the announcement is an early view, the gate still decides at sync.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gatekeeper.domain.types import TargetKey
from gatekeeper.ports import ClusterReader, ClusterReadError
from gatekeeper.reload import ConfigHolder

logger = logging.getLogger(__name__)

_GLOB = re.compile(r"[*?\[]")
_SCP = re.compile(r"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)$")


def normalise(url: str) -> str:
    """A repository URL as ``host/path`` (lowercase host, no user, no ``.git``, no trailing ``/``)."""
    text = url.strip()
    if "://" in text:
        scheme, _, rest = text.partition("://")
        if scheme == "file":
            return "file:" + rest.rstrip("/").removesuffix(".git")
        host, _, path = rest.partition("/")
        host = host.rpartition("@")[2].lower()
    else:
        match = _SCP.match(text)
        if match is None:
            return text.rstrip("/").removesuffix(".git").lower()
        host, path = match.group("host").lower(), match.group("path")
    host = host.split(":")[0] if host.count(":") == 1 and host.split(":")[1].isdigit() else host
    return f"{host}/{path.strip('/').removesuffix('.git')}"


def touched(source_path: str, paths: Iterable[str]) -> bool:
    """Whether a change of ``paths`` lies inside ``source_path`` (empty: the whole repository)."""
    return _inside(source_path, directories(paths))


def directories(paths: Iterable[str]) -> frozenset[str]:
    """Every path changed and every directory above one (a push's paths, asked once per target)."""
    found: set[str] = set()
    for path in paths:
        parts = path.strip("/").split("/")
        found.update("/".join(parts[:end]) for end in range(1, len(parts) + 1))
    return frozenset(found)


def _inside(source_path: str, changed: frozenset[str]) -> bool:
    base = source_path.strip("/").removeprefix("./").strip("/")
    return base in ("", ".") or base in changed


@dataclass(frozen=True, slots=True)
class Deploys:
    target: TargetKey
    repo: str  # normalised
    path: str


class Announcer:
    def __init__(
        self,
        config: ConfigHolder,
        cluster: ClusterReader | None = None,
        *,
        argocd_namespace: str = "argocd",
        ttl: float = 30.0,
    ) -> None:
        self.config = config
        self.cluster = cluster
        self.argocd_namespace = argocd_namespace
        self.ttl = ttl
        self._applications: tuple[float, tuple[Deploys, ...]] | None = None
        self._lock = threading.Lock()

    def targets(self, repo_urls: Sequence[str], paths: Sequence[str], *, exclude: str = "") -> list[TargetKey]:
        """The governed targets deploying from one of ``repo_urls`` whose source path ``paths`` touch."""
        configuration = self.config.state.configuration
        wanted = {normalise(url) for url in repo_urls if url}
        if configuration is None or not wanted or not paths:
            return []
        found: dict[str, None] = {}
        changed = directories(paths)
        for item in (*self._from_policies(), *self._from_applications()):
            concerned = item.repo in wanted and item.target != exclude and _inside(item.path, changed)
            if concerned and configuration.governing(item.target):
                found[item.target] = None
        return [TargetKey(target) for target in found]

    def _from_policies(self) -> list[Deploys]:
        configuration = self.config.state.configuration
        if configuration is None:
            return []
        return [
            Deploys(TargetKey(target), normalise(policy.source.repo), policy.source.path or "")
            for policy in configuration.policies
            if policy.source.repo
            for target in policy.targets
            if not _GLOB.search(target)
        ]

    def _from_applications(self) -> tuple[Deploys, ...]:
        if self.cluster is None:
            return ()
        with self._lock:
            if self._applications is not None and time.monotonic() - self._applications[0] < self.ttl:
                return self._applications[1]
            try:
                items = self.cluster.list(None, "argoproj.io/v1alpha1", "Application", self.argocd_namespace)
                kustomizations = self.cluster.list(None, "kustomize.toolkit.fluxcd.io/v1", "Kustomization", None)
                repositories = self.cluster.list(None, "source.toolkit.fluxcd.io/v1", "GitRepository", None)
            except ClusterReadError as exc:  # asked again after ttl, not at every push
                logger.warning("Argo CD and Flux objects not read for push announcements: %s", exc)
                kept = self._applications[1] if self._applications else ()
                self._applications = (time.monotonic(), kept)
                return kept
            found = (
                *(deploy for item in items for deploy in _application_sources(item)),
                *_kustomization_sources(kustomizations, repositories),
            )
            self._applications = (time.monotonic(), found)
            return found


def _application_sources(app: dict[str, object]) -> list[Deploys]:
    metadata = app.get("metadata") if isinstance(app.get("metadata"), dict) else {}
    spec = app.get("spec") if isinstance(app.get("spec"), dict) else {}
    assert isinstance(metadata, dict) and isinstance(spec, dict)  # noqa: S101 - by the lines above
    name = str(metadata.get("name") or "")
    sources = spec.get("sources") or ([spec["source"]] if spec.get("source") else [])
    if not name or not isinstance(sources, list):
        return []
    return [
        Deploys(TargetKey(f"argocd:{name}"), normalise(str(source.get("repoURL") or "")), str(source.get("path") or ""))
        for source in sources
        if isinstance(source, dict) and source.get("repoURL") and source.get("path") is not None
    ]


def _kustomization_sources(kustomizations: list[dict[str, Any]], repositories: list[dict[str, Any]]) -> list[Deploys]:
    """Flux Kustomizations with a GitRepository source: ``flux:Kustomization/<ns>/<name>``."""
    urls = {
        (str(_at(repo, "metadata", "namespace")), str(_at(repo, "metadata", "name"))): str(_at(repo, "spec", "url"))
        for repo in repositories
    }
    found = []
    for item in kustomizations:
        namespace, name = str(_at(item, "metadata", "namespace")), str(_at(item, "metadata", "name"))
        ref = _at(item, "spec", "sourceRef")
        if not isinstance(ref, dict) or ref.get("kind") != "GitRepository":
            continue
        url = urls.get((str(ref.get("namespace") or namespace), str(ref.get("name"))))
        if url:
            path = str(_at(item, "spec", "path") or "")
            found.append(Deploys(TargetKey(f"flux:Kustomization/{namespace}/{name}"), normalise(url), path))
    return found


def _at(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data

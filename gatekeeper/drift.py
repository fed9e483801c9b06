"""The drift reader: a ``FactReader`` that brings, per policy that checks drift, how the live
objects of a target differ from Git at its baseline (DESIGN §3, Target sources and Drift).

Where a target deploys from: the policy's ``spec.source`` where it names a repository, else the
controller's own object (Argo CD ``Application`` in ``ARGOCD_NAMESPACE``, or in ``<namespace>`` for
``argocd:<namespace>/<name>``; Flux ``Kustomization``
and its ``GitRepository``), read fresh at every check in the same request that gives the baseline.
The baseline: the revision the controller reports as deployed, else the target's last applied
release; never the revision asked for. Known failures become the outcome's reason (the check maps
them to defer or warn); the comparison itself is ``domain.drift.compare``. Runs outside any
transaction, under ``FACT_TIMEOUT``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gatekeeper.domain import drift
from gatekeeper.domain.drift import DriftOutcome, DriftReading, ObjectDrift, ObjectRef
from gatekeeper.domain.policy import DriftMode, Policy
from gatekeeper.domain.types import Reason, ReleaseRequest
from gatekeeper.ports import (
    ClusterReader,
    ClusterReadError,
    GitReader,
    GitReadError,
    ReleaseStore,
    RevisionNotFoundError,
    UnsupportedManifestsError,
)

logger = logging.getLogger(__name__)

ARGOCD_APPLICATION = "argoproj.io/v1alpha1"
FLUX_KUSTOMIZATION = "kustomize.toolkit.fluxcd.io/v1"
FLUX_GITREPOSITORY = "source.toolkit.fluxcd.io/v1"
# Source fields that make Argo CD or Flux render manifests (not done here: drift_unsupported).
ARGOCD_RENDERING = ("chart", "helm", "kustomize", "plugin")
FLUX_RENDERING = ("patches", "images", "postBuild", "components", "namePrefix", "nameSuffix", "commonMetadata")
_FLUX_REVISION = re.compile(r"(?:sha1|sha256):([0-9a-f]{7,64})$|/([0-9a-f]{40})$")

LastApplied = Callable[[str], "str | None"]


@dataclass(frozen=True, slots=True)
class TargetSource:
    """Where a target deploys from, and the revision its controller reports as deployed."""

    repo: str
    path: str
    cluster: str | None
    namespace: str
    synced: str | None = None
    override_namespace: bool = False  # Flux targetNamespace: every namespaced object goes there


class _Unsupported(Exception):
    pass


def no_release(target: str) -> str | None:
    return None


def last_applied_in(store: ReleaseStore) -> LastApplied:
    """The revision of the target's newest release that reached ``applied`` or ``verified``."""

    def last_applied(target: str) -> str | None:
        newest = [item for status in ("applied", "verified")
                  for item in store.releases(status=status, target=target, before_id=None, limit=1)[0]]  # fmt: skip
        return max(newest, key=lambda detail: detail.release.id).release.revision if newest else None

    return last_applied


LIST_PARALLEL = 8  # LISTs of one check in flight at once (each waits on the API server)


class DriftReader:
    name = "drift"

    def __init__(
        self,
        git: GitReader,
        cluster: ClusterReader,
        *,
        argocd_namespace: str = "argocd",
        last_applied: LastApplied = no_release,
        list_parallel: int = LIST_PARALLEL,
    ) -> None:
        self.git = git
        self.cluster = cluster
        self.argocd_namespace = argocd_namespace
        self.last_applied = last_applied
        self.list_parallel = list_parallel

    def needed(self, policies: Sequence[Policy]) -> bool:
        return any(policy.drift is not DriftMode.OFF for policy in policies)

    def read(self, request: ReleaseRequest, policies: Sequence[Policy], now: datetime) -> DriftReading:
        outcomes = tuple(
            (policy.name, self.outcome(request, policy)) for policy in policies if policy.drift is not DriftMode.OFF
        )
        return DriftReading(outcomes)

    def outcome(self, request: ReleaseRequest, policy: Policy) -> DriftOutcome:
        target = request.target
        try:
            source = self.source(target, policy)
            baseline = source.synced if source.synced != request.revision else None
            baseline = baseline or self.last_applied(target)
            if baseline is None or baseline == request.revision:
                message = f"{target} has no deployed revision to compare the cluster with (a first release)"
                return DriftOutcome(problem=Reason("drift", drift.BASELINE_UNKNOWN, message))
            desired = self.git.manifests(source.repo, source.path, baseline)
            return self.compare(source, baseline, desired, policy)
        except (_Unsupported, UnsupportedManifestsError) as exc:
            return _problem(drift.UNSUPPORTED, f"drift of {target} is not checked: {exc}")
        except RevisionNotFoundError as exc:
            return _problem(drift.REVISION_UNKNOWN, f"baseline of {target} not found: {exc}")
        except GitReadError as exc:
            return _problem(drift.GIT_UNAVAILABLE, f"Git could not be read for {target}: {exc}")
        except ClusterReadError as exc:
            return _problem(drift.CLUSTER_UNREACHABLE, f"the cluster could not be read for {target}: {exc}")

    # --- where a target deploys from --------------------------------------------------------------

    def source(self, target: str, policy: Policy) -> TargetSource:
        configured = policy.source
        cluster = configured.cluster if configured.cluster not in (None, "", "default") else None
        found: TargetSource | None = None
        if target.startswith("flux:HelmRelease/"):
            raise _Unsupported("a HelmRelease renders a Helm chart")
        if target.startswith("argocd:"):
            found = self._argocd(target.removeprefix("argocd:"), cluster)
        elif target.startswith("flux:Kustomization/"):
            found = self._flux(target.removeprefix("flux:Kustomization/"), cluster)
        if configured.repo:
            return TargetSource(
                configured.repo,
                configured.path or (found.path if found else ""),
                cluster,
                found.namespace if found else "default",
                found.synced if found else None,
                found.override_namespace if found else False,
            )
        if found is None:
            raise _Unsupported(f"{target} has no spec.source and no Argo CD or Flux object to read it from")
        return found

    def _argocd(self, key: str, cluster: str | None) -> TargetSource | None:
        namespace, _, name = key.rpartition("/")  # argocd:<namespace>/<name>: apps in any namespace
        app = self.cluster.get(cluster, ARGOCD_APPLICATION, "Application", namespace or self.argocd_namespace, name)
        if app is None:
            return None
        spec, status = app.get("spec") or {}, app.get("status") or {}
        sources = spec.get("sources") or ([spec["source"]] if spec.get("source") else [])
        rendered = [key for item in sources for key in ARGOCD_RENDERING if item.get(key)]
        if rendered:
            raise _Unsupported(f"Application {name} renders its source ({', '.join(rendered)})")
        paths = [index for index, item in enumerate(sources) if item.get("path") is not None]
        if len(paths) != 1:
            raise _Unsupported(f"Application {name} has {len(paths)} sources with a path (one is compared)")
        index = paths[0]
        source = sources[index]
        return TargetSource(
            str(source.get("repoURL", "")),
            str(source.get("path", "")),
            cluster,
            str((spec.get("destination") or {}).get("namespace") or "default"),
            _argocd_deployed(status, index, multi=bool(spec.get("sources"))),
        )

    def _flux(self, key: str, cluster: str | None) -> TargetSource | None:
        namespace, _, name = key.partition("/")
        kustomization = self.cluster.get(cluster, FLUX_KUSTOMIZATION, "Kustomization", namespace, name)
        if kustomization is None:
            return None
        spec, status = kustomization.get("spec") or {}, kustomization.get("status") or {}
        rendered = [field for field in FLUX_RENDERING if spec.get(field)]
        if rendered:
            raise _Unsupported(f"Kustomization {key} renders its manifests ({', '.join(rendered)})")
        ref = spec.get("sourceRef") or {}
        if ref.get("kind") != "GitRepository":
            raise _Unsupported(f"Kustomization {key} has a {ref.get('kind')} source (GitRepository is read)")
        repository = self.cluster.get(
            cluster, FLUX_GITREPOSITORY, "GitRepository", ref.get("namespace") or namespace, str(ref.get("name"))
        )
        if repository is None:
            raise _Unsupported(f"Kustomization {key}: GitRepository {ref.get('name')} does not exist")
        target_namespace = spec.get("targetNamespace")
        return TargetSource(
            str((repository.get("spec") or {}).get("url", "")),
            str(spec.get("path") or ""),
            cluster,
            str(target_namespace or namespace),
            _flux_revision(status.get("lastAppliedRevision")),
            override_namespace=bool(target_namespace),
        )

    # --- live objects -------------------------------------------------------------------------------

    def compare(
        self, source: TargetSource, baseline: str, desired: Sequence[Mapping[str, Any]], policy: Policy
    ) -> DriftOutcome:
        # Secrets are never read (deploy/: the service account may not); their values never leave Git.
        refs = [(self._ref(manifest, source), manifest) for manifest in desired if not _secret(manifest)]
        groups = sorted({(ref.api_version, ref.kind, ref.namespace) for ref, _ in refs}, key=str)
        # One LIST per (apiVersion, kind, namespace), asked side by side: a check of twelve pairs
        # waits about one round trip to the API server, not twelve. Threads of this check's own (an
        # unreachable cluster holds only its checks), and what is not asked yet is dropped when one fails.
        pool = ThreadPoolExecutor(max(1, min(self.list_parallel, len(groups))), thread_name_prefix="drift-list")
        try:
            listed = list(pool.map(lambda group: self.cluster.list(source.cluster, *group), groups))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        live: dict[tuple[str, str, str | None], dict[str, Mapping[str, Any]]] = {}
        for (api_version, kind, namespace), items in zip(groups, listed, strict=True):
            live[(api_version, kind, namespace)] = {
                str((item.get("metadata") or {}).get("name")): item
                for item in items
                if namespace is None or (item.get("metadata") or {}).get("namespace") in (namespace, None)
            }
        drifted: list[ObjectDrift] = []
        for ref, manifest in refs:
            found = drift.compare(
                ref, manifest, live[(ref.api_version, ref.kind, ref.namespace)].get(ref.name), policy.drift_ignore
            )
            if found is not None:
                drifted.append(found)
        return DriftOutcome(baseline, len(refs), tuple(sorted(drifted, key=lambda item: item.ref)))

    @staticmethod
    def _ref(manifest: Mapping[str, Any], source: TargetSource) -> ObjectRef:
        ref = ObjectRef.of(manifest, source.namespace)
        if source.override_namespace and ref.namespace is not None:
            return ObjectRef(ref.api_version, ref.kind, source.namespace, ref.name)
        return ref


def _secret(manifest: Mapping[str, Any]) -> bool:
    return manifest.get("kind") == "Secret" and manifest.get("apiVersion") == "v1"


def _problem(code: str, message: str) -> DriftOutcome:
    logger.info("drift: %s", message)
    return DriftOutcome(problem=Reason("drift", code, message[:600]))


def _argocd_deployed(status: Mapping[str, Any], index: int, *, multi: bool) -> str | None:
    """What Argo CD last deployed: the synced revision while Synced, else the newest history entry
    (while OutOfSync, ``status.sync.revision`` is already the new revision: the release itself)."""
    sync = status.get("sync") or {}
    if sync.get("status") == "Synced":
        revisions = sync.get("revisions") if multi else None
        if revisions and index < len(revisions):
            return str(revisions[index])
        if sync.get("revision"):
            return str(sync["revision"])
    history = status.get("history") or []
    if history:
        last = history[-1]
        revisions = last.get("revisions") if multi else None
        if revisions and index < len(revisions):
            return str(revisions[index])
        return str(last.get("revision")) if last.get("revision") else None
    return None


def _flux_revision(value: object) -> str | None:
    """``main@sha1:<sha>`` (Flux v2) or ``main/<sha>`` (older) to the commit SHA."""
    if not value:
        return None
    match = _FLUX_REVISION.search(str(value))
    if match is None:
        return str(value)
    return match.group(1) or match.group(2)

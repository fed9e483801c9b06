"""``rollback``: restore the last verified revision of an Argo CD application or a Flux
Kustomization (DESIGN §3 Rollback).

Enqueued with a ``rollback`` decision (a revision applied without approval, one turning
unhealthy within its verification period). Where auto-sync is off, Argo CD's rollback API to the
history entry of the last verified revision (else the last applied one before this release, else
the entry before the offending one); where auto-sync is on, Argo CD refuses that and would sync the
change straight back, so the offending commit is reverted on the branch the application follows.
A Flux Kustomization always applies its branch: the offending commit is reverted on the branch of
its ``GitRepository`` (``spec.url``, ``spec.ref.branch``, read through the kubernetes client).
Once done, the release becomes ``rolled_back``, with an audit record saying how.

Once the revert is pushed, ``on_revert`` records it as a release of the target. It is gatekeeper's
own, approved whatever the window says (reason ``rollback``), only where it restores exactly a
state that went out approved: its tree is the offending commit's parent's (no later commit on the
branch) and that parent is the target's newest verified release, or its newest applied one that
was approved. Any other revert is recorded as an ordinary release, gated as usual (a Flux target
stays suspended while it waits). A push that is refused records nothing (the action is retried).

Idempotent: a rollback to the revision the application already runs, or a revert already on the
branch, changes nothing; a release already rolled back is not touched again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gatekeeper.actions import ActionFailedError, ActionRefusedError
from gatekeeper.actuators import ActuatorError
from gatekeeper.actuators.argocd import ArgoCdActuator
from gatekeeper.actuators.git import GitReverter
from gatekeeper.domain.records import ActionRecord, ReleaseDetail, ReleaseRecord
from gatekeeper.domain.releases import ReleaseStatus, transition
from gatekeeper.ports import Clock, ClusterReader, ClusterReadError, ReleaseStore

ROLLED_OUT = (ReleaseStatus.APPLIED, ReleaseStatus.VERIFIED)
FLUX_KUSTOMIZATION = ("kustomize.toolkit.fluxcd.io/v1", "Kustomization")
FLUX_GITREPOSITORY = ("source.toolkit.fluxcd.io/v1", "GitRepository")
OnRevert = Callable[[ReleaseRecord, str, bool], None]  # (the release rolled back, the revert's sha, pre-approved)


class RollbackHandler:
    kind = "rollback"

    def __init__(
        self,
        argocd: ArgoCdActuator | None,
        git: GitReverter | None,
        store: ReleaseStore,
        clock: Clock,
        *,
        cluster: ClusterReader | None = None,
        on_revert: OnRevert | None = None,
    ) -> None:
        self.argocd = argocd
        self.git = git
        self.store = store
        self.clock = clock
        self.cluster = cluster
        self.on_revert = on_revert

    def run(self, action: ActionRecord, release: ReleaseDetail | None) -> str:
        if release is None:
            raise ActionFailedError(f"release {action.release_id} is gone")
        record = release.release
        if record.status is ReleaseStatus.ROLLED_BACK:
            return f"release {record.id} is already rolled back"
        if record.status not in ROLLED_OUT:
            return f"release {record.id} is {record.status.value}: nothing went out to roll back"
        try:
            how, result = self._restore(record, action.payload)
        except ActuatorError as exc:
            raise ActionFailedError(str(exc)) from exc
        self._rolled_back(record, how, result)
        return result

    def _restore(self, release: ReleaseRecord, payload: dict[str, Any]) -> tuple[str, str]:
        if release.target.startswith("flux:"):
            url, followed = self._flux_source(release.target)
            return "git_revert", self._revert(release, url, followed, payload["reason"])
        if self.argocd is None:
            raise ActionFailedError("no Argo CD API is configured (ARGOCD_SERVER, ARGOCD_API_TOKEN)")
        name = payload["application"]
        application = self.argocd.application(name)
        spec = application.get("spec") or {}
        if (spec.get("syncPolicy") or {}).get("automated") is None:
            restore = self._last_good(release) or _entry_before(application, release.revision)
            if restore is None:
                raise ActionFailedError(f"{name} has no earlier revision to roll back to")
            return "argocd_rollback", self.argocd.rollback(name, restore).message
        source = spec.get("source") or {}
        repo, branch = source.get("repoURL"), source.get("targetRevision") or "HEAD"
        if not repo or branch == "HEAD":
            raise ActionRefusedError(f"{name} follows no named branch (targetRevision {branch!r}): revert by hand")
        return "git_revert", self._revert(release, str(repo), str(branch), payload["reason"])

    def _revert(self, release: ReleaseRecord, repo: str, branch: str, reason: str) -> str:
        """Revert the release's commit on ``branch``; once pushed, record the revert as a release
        (pre-approved where it restores the last approved state)."""
        if self.git is None:
            raise ActionFailedError(f"{release.target} needs a revert and no Git credentials are configured")
        base = self._approved_base(release)

        def pushed(sha: str, restored: str | None) -> None:
            if self.on_revert is not None:
                self.on_revert(release, sha, restored is not None and restored == base)

        title = f"gatekeeper: roll back release {release.id} ({release.target})"
        return self.git.revert(repo, branch, release.revision, title, reason, on_pushed=pushed).message

    def _approved_base(self, release: ReleaseRecord) -> str | None:
        """The revision a revert of ``release`` may restore pre-approved: the target's newest
        release before it that is verified, or applied with an approve as its latest decision."""
        for status in ("verified", "applied"):
            found, _ = self.store.releases(status=status, target=release.target, before_id=release.id, limit=5)
            for detail in found:
                if status == "verified" or (detail.decisions and detail.decisions[-1].verdict == "approve"):
                    return detail.release.revision
        return None

    def _flux_source(self, target: str) -> tuple[str, str]:
        """The URL and branch of the GitRepository a Kustomization applies (current kube context)."""
        kind, _, rest = target.removeprefix("flux:").partition("/")
        namespace, _, name = rest.partition("/")
        if kind != "Kustomization" or self.cluster is None:
            raise ActionRefusedError(f"{target}: only a Kustomization's GitRepository can be reverted (revert by hand)")
        try:
            kustomization = self.cluster.get(None, *FLUX_KUSTOMIZATION, namespace, name)
            source = ((kustomization or {}).get("spec") or {}).get("sourceRef") or {}
            if kustomization is None or source.get("kind") != "GitRepository":
                raise ActionRefusedError(f"{target} does not exist or applies no GitRepository: revert by hand")
            found = f"GitRepository {source.get('namespace') or namespace}/{source.get('name')}"
            repository = self.cluster.get(None, *FLUX_GITREPOSITORY, source.get("namespace") or namespace,
                                          str(source.get("name")))  # fmt: skip
        except ClusterReadError as exc:
            raise ActionFailedError(f"{target}: its source could not be read: {exc}") from exc
        spec = (repository or {}).get("spec") or {}
        ref = spec.get("ref") or {}
        pinned = [field for field in ("commit", "name", "semver", "tag") if ref.get(field)]
        if pinned:  # Flux applies these before the branch: a revert on the branch changes nothing it runs
            raise ActionRefusedError(f"{target}: {found} follows spec.ref.{pinned[0]}, not a branch: revert by hand")
        url, branch = spec.get("url"), ref.get("branch")
        if not url or not branch:
            raise ActionRefusedError(f"{target}: {found} follows no named branch (spec.ref.branch): revert by hand")
        return str(url), str(branch)

    def _last_good(self, release: ReleaseRecord) -> str | None:
        """The newest verified revision of the target, else the newest applied before this one."""
        for status in ("verified", "applied"):
            found, _ = self.store.releases(status=status, target=release.target, before_id=release.id, limit=1)
            if found:
                return found[0].release.revision
        return None

    def _rolled_back(self, release: ReleaseRecord, how: str, result: str) -> None:
        now = self.clock()
        with self.store.transaction() as tx:
            current = tx.release_by_id(release.id, lock=True)
            if current is None or current.status not in ROLLED_OUT:
                return
            tx.set_status(current, transition(current.status, ReleaseStatus.ROLLED_BACK), now)
            data = {"target": release.target, "revision": release.revision, "how": how, "result": result}
            tx.append_audit("rollback", "gatekeeper", f"release/{release.id}", data, now)


def _entry_before(application: dict[str, Any], revision: str) -> str | None:
    """The revision of the newest history entry that is not ``revision``."""
    history = (application.get("status") or {}).get("history") or []
    earlier = [entry.get("revision") for entry in history if entry.get("revision") != revision]
    return earlier[-1] if earlier else None

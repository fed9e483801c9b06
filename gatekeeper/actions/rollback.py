"""``rollback``: restore the last verified revision of an Argo CD application (DESIGN §3 Rollback).

Enqueued with a ``rollback`` decision (a revision applied without approval, one turning
unhealthy within its verification period). Where auto-sync is off, Argo CD's rollback API to the
history entry of the last verified revision (else the last applied one before this release, else
the entry before the offending one); where auto-sync is on, Argo CD refuses that and would sync the
change straight back, so the offending commit is reverted on the branch the application follows.
Once done, the release becomes ``rolled_back``, with an audit record saying how.

Idempotent: a rollback to the revision the application already runs, or a revert already on the
branch, changes nothing; a release already rolled back is not touched again.
"""

from __future__ import annotations

from typing import Any

from gatekeeper.actions import ActionFailedError
from gatekeeper.actuators import ActuatorError
from gatekeeper.actuators.argocd import ArgoCdActuator
from gatekeeper.actuators.git import GitReverter
from gatekeeper.domain.records import ActionRecord, ReleaseDetail, ReleaseRecord
from gatekeeper.domain.releases import ReleaseStatus, transition
from gatekeeper.ports import Clock, ReleaseStore

ROLLED_OUT = (ReleaseStatus.APPLIED, ReleaseStatus.VERIFIED)


class RollbackHandler:
    kind = "rollback"

    def __init__(
        self, argocd: ArgoCdActuator | None, git: GitReverter | None, store: ReleaseStore, clock: Clock
    ) -> None:
        self.argocd = argocd
        self.git = git
        self.store = store
        self.clock = clock

    def run(self, action: ActionRecord, release: ReleaseDetail | None) -> str:
        if self.argocd is None:
            raise ActionFailedError("no Argo CD API is configured (ARGOCD_SERVER, ARGOCD_API_TOKEN)")
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
        assert self.argocd is not None  # noqa: S101 - checked by run
        name = payload["application"]
        application = self.argocd.application(name)
        spec = application.get("spec") or {}
        if (spec.get("syncPolicy") or {}).get("automated") is None:
            restore = self._last_good(release) or _entry_before(application, release.revision)
            if restore is None:
                raise ActionFailedError(f"{name} has no earlier revision to roll back to")
            return "argocd_rollback", self.argocd.rollback(name, restore).message
        if self.git is None:
            raise ActionFailedError(f"{name} has auto-sync and no Git credentials are configured for a revert")
        source = spec.get("source") or {}
        repo, branch = source.get("repoURL"), source.get("targetRevision") or "HEAD"
        if not repo or branch == "HEAD":
            raise ActionFailedError(f"{name} follows no named branch (targetRevision {branch!r}): revert by hand")
        title = f"gatekeeper: roll back release {release.id} ({release.target})"
        return "git_revert", self.git.revert(repo, branch, release.revision, title, payload["reason"]).message

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

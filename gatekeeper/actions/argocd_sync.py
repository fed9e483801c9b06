"""``argocd_sync``: sync an Argo CD application to an approved release's revision.

Enqueued when a deferred release is approved by someone or something other than its own PreSync
hook (the window opened, the approval arrived, a freeze was lifted): the hook failed fast, so
gatekeeper starts the sync itself. Run only while the release is approved; a release deferred
again waits (``ActionWaitError``), one applied already or ended is not synced. Idempotent: the
actuator leaves an application already synced, or syncing, to the revision alone.
"""

from __future__ import annotations

from datetime import timedelta

from gatekeeper.actions import ActionFailedError, ActionWaitError
from gatekeeper.actuators import ActuatorError
from gatekeeper.actuators.argocd import ArgoCdActuator
from gatekeeper.domain.records import ActionRecord, ReleaseDetail
from gatekeeper.domain.releases import ReleaseStatus
from gatekeeper.ports import Clock

WAITING = (ReleaseStatus.PENDING, ReleaseStatus.DEFERRED)


class ArgoCdSyncHandler:
    kind = "argocd_sync"

    def __init__(self, argocd: ArgoCdActuator | None, clock: Clock, recheck: timedelta = timedelta(minutes=5)) -> None:
        self.argocd = argocd
        self.clock = clock
        self.recheck = recheck

    def run(self, action: ActionRecord, release: ReleaseDetail | None) -> str:
        if self.argocd is None:
            raise ActionFailedError("no Argo CD API is configured (ARGOCD_SERVER, ARGOCD_API_TOKEN)")
        if release is None:
            raise ActionFailedError(f"release {action.release_id} is gone")
        status = release.release.status
        if status in WAITING:
            now = self.clock()
            until = release.release.not_before or now + self.recheck
            raise ActionWaitError(min(until, now + self.recheck), f"release {release.release.id} is {status.value}")
        application, revision = action.payload["application"], action.payload["revision"]
        if status is not ReleaseStatus.APPROVED:
            return f"{application}: not synced, release {release.release.id} is {status.value}"
        try:
            return self.argocd.sync(application, revision).message
        except ActuatorError as exc:
            raise ActionFailedError(str(exc)) from exc

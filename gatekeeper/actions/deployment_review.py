"""``deployment_review``: answer a GitHub deployment protection rule once, when the release is decided.

Approved (and its latest decision approves): ``approved``. Rejected, superseded or rolled back:
``rejected``. Still waiting: not due (``ActionWaitError``); the scheduler wakes the action at the
release's next decision, and re-checks it at least every ``recheck`` seconds.
"""

from __future__ import annotations

from datetime import timedelta

from gatekeeper.actions import ActionFailedError, ActionWaitError
from gatekeeper.domain.records import ActionRecord, ReleaseDetail
from gatekeeper.domain.releases import ReleaseStatus
from gatekeeper.notifiers import UpstreamError
from gatekeeper.notifiers.github import REVIEW, GitHubNotifier
from gatekeeper.ports import Clock

GONE_OUT = (ReleaseStatus.APPLIED, ReleaseStatus.VERIFIED)
ENDED = (ReleaseStatus.REJECTED, ReleaseStatus.ROLLED_BACK, ReleaseStatus.SUPERSEDED)


class DeploymentReviewHandler:
    kind = "deployment_review"

    def __init__(self, github: GitHubNotifier | None, public_url: str, recheck: timedelta, clock: Clock) -> None:
        self.github = github
        self.public_url = public_url.rstrip("/")
        self.recheck = recheck
        self.clock = clock

    def run(self, action: ActionRecord, release: ReleaseDetail | None) -> str:
        if self.github is None:
            raise ActionFailedError("no GitHub API token is configured for deployment reviews")
        if release is None:
            raise ActionFailedError(f"release {action.release_id} is gone")
        answer = self._answer(release)
        if answer is None:
            now = self.clock()
            until = release.release.not_before or now + self.recheck
            raise ActionWaitError(min(until, now + self.recheck), f"release {release.release.id} is still waiting")
        verdict, comment = answer
        payload = action.payload
        try:
            self.github.review_deployment(payload["callback_url"], payload["environment"], verdict, comment)
        except UpstreamError as exc:
            raise ActionFailedError(str(exc)) from exc
        return f"release {release.release.id}: {REVIEW[verdict]}"

    def _answer(self, detail: ReleaseDetail) -> tuple[str, str] | None:
        release = detail.release
        latest = detail.decisions[-1] if detail.decisions else None
        link = f"{self.public_url}/#release-{release.id}"  # the page's view: a browser has no token
        reasons = "; ".join(reason["message"] for reason in latest.reasons) if latest is not None else ""
        if release.status in GONE_OUT or (
            release.status is ReleaseStatus.APPROVED and latest is not None and latest.verdict == "approve"
        ):
            return "approve", f"approved by gatekeeper ({link})" + (f": {reasons}" if reasons else "")
        if release.status is ReleaseStatus.SUPERSEDED:
            return "rollback", f"superseded by a newer revision of {release.target} ({link})"
        if release.status in ENDED:
            return "rollback", f"{release.status.value} ({link})" + (f": {reasons}" if reasons else "")
        return None

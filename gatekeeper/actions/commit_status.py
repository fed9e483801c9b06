"""``commit_status``: set gatekeeper's commit status on the revision (GitHub or GitLab).

Idempotent: posting the same state and description again leaves the commit as it was. GitLab
refuses a transition to the state a status already has ("Cannot transition status via :enqueue
from :pending"): that answer means the status is already there, not a failure.
"""

from __future__ import annotations

from collections.abc import Mapping

from gatekeeper.actions import ActionFailedError
from gatekeeper.domain.records import ActionRecord, ReleaseDetail
from gatekeeper.notifiers import UpstreamError
from gatekeeper.notifiers.github import GitHubNotifier
from gatekeeper.notifiers.gitlab import GitLabNotifier

ALREADY_IN_STATE = "Cannot transition status"


class CommitStatusHandler:
    kind = "commit_status"

    def __init__(self, notifiers: Mapping[str, GitHubNotifier | GitLabNotifier]) -> None:
        self.notifiers = notifiers

    def run(self, action: ActionRecord, release: ReleaseDetail | None) -> str:
        payload = action.payload
        notifier = self.notifiers.get(payload["source"])
        if notifier is None:
            raise ActionFailedError(f"no {payload['source']} API token is configured for commit statuses")
        body = notifier.status_body(payload["verdict"], [], payload["link"])
        body["description"] = payload["description"]
        try:
            notifier.post_status(payload["repo"], payload["sha"], body)
        except UpstreamError as exc:
            if isinstance(notifier, GitLabNotifier) and ALREADY_IN_STATE in str(exc):
                return f"{payload['repo']}@{payload['sha'][:12]} already {body['state']}"
            raise ActionFailedError(str(exc)) from exc
        return f"{payload['repo']}@{payload['sha'][:12]}: {body['state']}"

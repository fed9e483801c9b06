"""What a decision causes outside gatekeeper: the outbox rows written in its transaction.

A decision of a Git target that came from GitHub or GitLab sets a commit status on its revision
(again on every later decision of that release: an approval turns it green); a GitHub deployment
protection rule gets one review, answered once the release may go or never will. The handlers
in ``gatekeeper.actions`` carry them out after commit.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gatekeeper.domain.records import DecisionRecord, NewAction, ReleaseRecord
from gatekeeper.notifiers import describe

COMMIT_STATUS = "commit_status"
DEPLOYMENT_REVIEW = "deployment_review"


def release_link(public_url: str, release_id: int) -> str:
    """Where a person follows a status or review to: the page's view of the release (a browser
    sends no token, so the API's /v1/releases/{id} would answer it 401)."""
    return f"{public_url.rstrip('/')}/#release-{release_id}"


def _digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def commit_status(
    release: ReleaseRecord, decision: DecisionRecord, public_url: str, sources: frozenset[str]
) -> NewAction | None:
    """The commit status of ``decision``, if its release came from a source that shows them and
    whose API gatekeeper may post to (``sources``)."""
    context = release.context or {}
    source, repo = context.get("source"), context.get("repo")
    if source not in sources or not repo or not release.target.startswith("git:"):
        return None
    payload = {
        "source": source,
        "repo": repo,
        "sha": release.revision,
        "verdict": decision.verdict,
        "description": describe(decision.verdict, decision.reasons),
        "link": release_link(public_url, release.id),
    }
    scope = f"{COMMIT_STATUS}:{source}:{repo}@{release.revision}"
    return NewAction(
        COMMIT_STATUS, f"{scope}#{decision.id}", scope, payload, digest=_digest(payload), release_id=release.id
    )


WAITED_ON = "review"  # a release context key: a deployment review waits for this release


def waited_on(release: ReleaseRecord) -> bool:
    """Whether an action waits for this release's decisions (its context says so)."""
    return bool((release.context or {}).get(WAITED_ON))


def deployment_review(release: ReleaseRecord, callback_url: str, environment: str) -> NewAction:
    """One answer to a GitHub deployment protection rule, given when the release is decided."""
    payload = {"callback_url": callback_url, "environment": environment}
    return NewAction(
        DEPLOYMENT_REVIEW,
        f"{DEPLOYMENT_REVIEW}:{release.id}:{callback_url}",
        f"{DEPLOYMENT_REVIEW}:{callback_url}",
        payload,
        release_id=release.id,
    )

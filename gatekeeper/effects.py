"""What a decision causes outside gatekeeper: the outbox rows written in its transaction.

A decision of a Git target that came from GitHub or GitLab sets a commit status on its revision
(again on every later decision of that release: an approval turns it green); a GitHub deployment
protection rule gets one review, answered once the release may go or never will. The handlers
in ``gatekeeper.actions`` carry them out after commit. An Argo CD release that was deferred and
is approved by anything but its own PreSync hook (its window opened, its approval arrived) is
synced by gatekeeper to its revision (``argocd_sync``, once per release); a ``rollback`` decision
of an Argo CD or Flux release restores its last verified revision (``rollback``); a Flux release's
decision suspends (defer) or resumes (approve) its Kustomization or HelmRelease (``flux_gate``).
A decision that changes the verdict (and a
break-glass, a rejection, a freeze started or lifted) notifies each configured endpoint that wants
it (``notification``, docs/notifications.md); a repeated poll that stores nothing notifies nobody.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from gatekeeper.domain.freezes import Freeze
from gatekeeper.domain.records import DecisionRecord, NewAction, ReleaseRecord
from gatekeeper.domain.releases import ReleaseStatus
from gatekeeper.domain.types import format_instant
from gatekeeper.notifiers import describe
from gatekeeper.notifiers.endpoints import Endpoint

COMMIT_STATUS = "commit_status"
DEPLOYMENT_REVIEW = "deployment_review"
ARGOCD_SYNC = "argocd_sync"
ROLLBACK = "rollback"
FLUX_GATE = "flux_gate"
FLUX_PREFIX = "flux:"
ARGOCD_PREFIX = "argocd:"
HOOK_TRIGGER = "presync"  # the PreSync hook's own gate call: its sync is already under way
NOTIFICATION = "notification"


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


def argocd_sync(release: ReleaseRecord, before: ReleaseStatus, trigger: str) -> NewAction | None:
    """The sync of a deferred Argo CD release that has just been approved, once per release (the
    hook that was told to come back later failed fast: nothing else would sync it)."""
    if not release.target.startswith(ARGOCD_PREFIX) or trigger == HOOK_TRIGGER:
        return None
    if before is not ReleaseStatus.DEFERRED or release.status is not ReleaseStatus.APPROVED:
        return None
    application = release.target.removeprefix(ARGOCD_PREFIX)
    payload = {"application": application, "revision": release.revision}
    return NewAction(
        ARGOCD_SYNC, f"{ARGOCD_SYNC}:{release.id}", f"{ARGOCD_SYNC}:{application}", payload, release_id=release.id
    )


def rollback(release: ReleaseRecord, decision: DecisionRecord, *, argocd: bool, flux: bool) -> NewAction | None:
    """The rollback a ``rollback`` decision causes, once per release: of an Argo CD release where
    an Argo CD API is configured (``argocd``), of a Flux release with FLUX_GATE (``flux``)."""
    ours = (argocd and release.target.startswith(ARGOCD_PREFIX)) or (flux and release.target.startswith(FLUX_PREFIX))
    if decision.verdict != ROLLBACK or not ours:
        return None
    reason = "; ".join(f"{r['message']} ({r['code']})" for r in decision.reasons) or "rollback decided"
    payload = {"target": release.target, "revision": release.revision, "reason": reason}
    if release.target.startswith(ARGOCD_PREFIX):
        payload["application"] = release.target.removeprefix(ARGOCD_PREFIX)
    key, scope = f"{ROLLBACK}:{release.id}", f"{ROLLBACK}:{release.target}"
    return NewAction(ROLLBACK, key, scope, payload, release_id=release.id)


def flux_gate(release: ReleaseRecord, decision: DecisionRecord) -> NewAction | None:
    """A Flux target suspended while its release is deferred or to be rolled back, resumed (with a
    reconcile request at the decision's instant) when it is approved; the newest decision of a
    target wins."""
    if not release.target.startswith(FLUX_PREFIX) or decision.verdict not in ("approve", "defer", ROLLBACK):
        return None
    suspend = decision.verdict != "approve"  # deferred, or to be rolled back: held until the revert
    requested_at = decision.decided_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = {"target": release.target, "suspend": suspend, "requested_at": requested_at}
    scope = f"{FLUX_GATE}:{release.target}"
    digest = _digest({"target": release.target, "suspend": suspend})
    return NewAction(FLUX_GATE, f"{scope}#{decision.id}", scope, payload, digest=digest, release_id=release.id)


def flux_window(release: ReleaseRecord, suspend: bool, since: datetime) -> NewAction:
    """A Flux target following its gate with no new decision (its newest release was applied):
    suspended when the gate closed at ``since``, resumed with a reconcile request at ``since``
    when it opened. The key names the transition and the release, so every replica enqueues the
    same one."""
    requested_at = format_instant(since)
    payload = {"target": release.target, "suspend": suspend, "requested_at": requested_at}
    scope = f"{FLUX_GATE}:{release.target}"
    digest = _digest({"target": release.target, "suspend": suspend})
    key = f"{scope}#gate:{'closed' if suspend else 'open'}:{requested_at}:{release.id}"
    return NewAction(FLUX_GATE, key, scope, payload, digest=digest, release_id=release.id)


def _broke_glass(decision: DecisionRecord | None) -> bool:
    return decision is not None and any(reason["code"] == "break_glass" for reason in decision.reasons)


def decision_event(previous: DecisionRecord | None, decision: DecisionRecord, status: ReleaseStatus) -> str | None:
    """What a stored decision tells people, None when nothing worth a message changed: a
    break-glass (first of its run), a rejection, else a verdict other than the previous one."""
    if _broke_glass(decision) and not (_broke_glass(previous) and previous and previous.verdict == decision.verdict):
        return "break_glass"
    if status is ReleaseStatus.REJECTED and (previous is None or not previous.trigger.startswith("rejection")):
        return "rejected"
    if previous is None or previous.verdict != decision.verdict:
        return decision.verdict
    return None


def release_event(
    event: str, release: ReleaseRecord, decision: DecisionRecord, public_url: str, actor: str | None
) -> dict[str, Any]:
    """The event a release's decision notifies (the webhook body, and what chat messages say)."""
    return {
        "event": event,
        "at": format_instant(decision.decided_at),
        "actor": actor,
        "release": {"id": release.id, "target": release.target, "revision": release.revision,
                    "status": release.status.value},
        "decision": {"id": decision.id, "verdict": decision.verdict, "reasons": decision.reasons,
                     "not_before": format_instant(decision.not_before), "requires": decision.requires,
                     "trigger": decision.trigger},
        "freeze": None,
        "link": release_link(public_url, release.id),
    }


def freeze_event(event: str, freeze: Freeze, public_url: str, actor: str, now: datetime) -> dict[str, Any]:
    """The event of a freeze started (``freeze_started``) or lifted (``freeze_lifted``)."""
    return {
        "event": event,
        "at": format_instant(now),
        "actor": actor,
        "release": None,
        "decision": None,
        "freeze": {"id": freeze.id, "targets": list(freeze.targets), "start": format_instant(freeze.start),
                   "end": format_instant(freeze.end), "reason": freeze.reason, "code": freeze.code,
                   "lift_reason": freeze.lift_reason},
        "link": f"{public_url.rstrip('/')}/#freezes",
    }


def notifications(
    endpoints: tuple[Endpoint, ...], event: dict[str, Any], subject: str, targets: tuple[str, ...],
    release_id: int | None = None,
) -> list[NewAction]:
    """One ``notification`` action per endpoint that wants ``event``; ``subject`` names what it
    is about once (``decision:42``, ``freeze_started:7``), so the same event is never sent twice."""
    found = []
    for endpoint in endpoints:
        if not endpoint.wants(event["event"], targets):
            continue
        key = f"{NOTIFICATION}:{endpoint.name}:{subject}"
        payload = {"endpoint": endpoint.name, "event": {"id": key, **event}}
        found.append(NewAction(NOTIFICATION, key, key, payload, release_id=release_id))
    return found

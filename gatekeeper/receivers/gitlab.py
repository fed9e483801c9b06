"""GitLab webhooks: ``Push Hook`` and ``Merge Request Hook`` (action merge).

Authenticated by ``X-Gitlab-Token`` (compared in constant time); the delivery id is
``Idempotency-Key``, else ``X-Gitlab-Event-UUID``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gatekeeper.domain.types import ReleaseRequest
from gatekeeper.receivers import (
    COMMIT_ID,
    NAME,
    CommitPeople,
    Ignored,
    Inbound,
    body_digest,
    git_target,
    header_text,
    identities_at,
    invalid,
    list_at,
    load_json,
    secret_matches,
    text_at,
    unauthorized,
    urls_at,
)

EVENTS = ("Push Hook", "Merge Request Hook")
# Who touched the revision (``name`` fields are display names: never). ``user`` is who merged.
PUSH_PEOPLE = ("user_username", "user_email")
MERGE_PEOPLE = (
    "user.username",
    "user.email",
    "object_attributes.last_commit.author.email",
)


class GitLabReceiver:
    source = "gitlab"

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str) -> None:
        token = headers.get("x-gitlab-token")
        if not token:
            raise unauthorized("missing X-Gitlab-Token header")
        if not secret_matches(secret, token):
            raise unauthorized("X-Gitlab-Token is wrong")

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str:
        return (
            header_text(headers, "Idempotency-Key")
            or header_text(headers, "X-Gitlab-Event-UUID")
            or body_digest(self.source, body)
        )

    def parse(self, headers: Mapping[str, str], body: bytes) -> Inbound | Ignored:
        event = headers.get("x-gitlab-event", "")
        if event not in EVENTS:
            return Ignored(f"GitLab event {event or '(none)'!r} is not handled (handled: {', '.join(EVENTS)})")
        data = load_json(body)
        return self._push(data) if event == "Push Hook" else self._merge(data)

    def _push(self, data: dict[str, Any]) -> Inbound | Ignored:
        ref = text_at(data, "ref") or ""
        if not ref.startswith("refs/heads/"):
            return Ignored(f"push to {ref} is not a branch")
        sha = (
            text_at(data, "checkout_sha", required=False, max_length=COMMIT_ID)
            or text_at(data, "after", max_length=COMMIT_ID)
            or ""
        )
        if set(sha) == {"0"}:
            return Ignored(f"push deleted {ref}")
        repo = text_at(data, "project.path_with_namespace") or ""
        people, paths = _pushed(data, sha)
        target = git_target(repo, ref.removeprefix("refs/heads/"), "ref")
        request = ReleaseRequest(target=target, revision=sha, trigger="gitlab-push")
        urls = urls_at(data, "project.git_http_url", "project.git_ssh_url", "project.web_url")
        return Inbound(request=request, commits=people, paths=paths, repo=repo, repo_urls=urls)

    def _merge(self, data: dict[str, Any]) -> Inbound | Ignored:
        action = text_at(data, "object_attributes.action", required=False)
        if action != "merge":
            return Ignored(f"merge request action {action!r} is not a merge")
        # A merge request hook names the target project in object_attributes.target as well; some
        # senders (older GitLab, system hooks) leave out the top-level project.
        repo = (
            text_at(data, "project.path_with_namespace", required=False)
            or text_at(data, "object_attributes.target.path_with_namespace", required=False)
            or text_at(data, "project.path_with_namespace")
            or ""
        )
        branch = text_at(data, "object_attributes.target_branch") or ""
        sha = (
            text_at(data, "object_attributes.merge_commit_sha", required=False, max_length=COMMIT_ID)
            or text_at(data, "object_attributes.last_commit.id", max_length=COMMIT_ID)
            or ""
        )
        # GitLab names the merge request's author only by a numeric author_id, and commit authors
        # only by display name and e-mail: the author is known here by the last commit's address.
        people = CommitPeople(
            sha,
            None,
            text_at(data, "user.username", required=False, max_length=NAME),
            identities_at(data, *MERGE_PEOPLE),
        )
        target = git_target(repo, branch, "object_attributes.target_branch")
        request = ReleaseRequest(target=target, revision=sha, trigger="gitlab-merge")
        return Inbound(request=request, commits=(people,), paths=None, repo=repo)


def _pushed(data: dict[str, Any], sha: str) -> tuple[tuple[CommitPeople, ...], tuple[str, ...]]:
    """Who touched each pushed commit, and the paths the push changed.

    GitLab's commit objects carry no username, only ``author.name`` (a display name, never used)
    and ``author.email``. The pusher touched every commit pushed; the released revision holds
    every pushed change, so everyone who touched any pushed commit touched it."""
    pusher = text_at(data, "user_username", required=False, max_length=NAME)
    pushed = identities_at(data, *PUSH_PEOPLE)
    everyone = dict.fromkeys(pushed)
    people: list[CommitPeople] = []
    paths: set[str] = set()
    for position, commit in enumerate(list_at(data, "commits")):
        if not isinstance(commit, dict):
            raise invalid(f"commits.{position}", "expected an object")
        commit_sha = text_at(commit, "id", max_length=COMMIT_ID) or ""
        touched = identities_at(commit, "author.email")
        everyone.update(dict.fromkeys(touched))
        if commit_sha != sha:
            people.append(CommitPeople(commit_sha, None, None, (*touched, *pushed)))
        for kind in ("added", "modified", "removed"):
            paths.update(str(path) for path in list_at(commit, kind))
    people.append(CommitPeople(sha, None, pusher, tuple(everyone)))
    return tuple(people), tuple(sorted(paths))

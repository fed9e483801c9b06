"""GitHub webhooks: ``ping``, ``push``, ``pull_request`` (closed and merged), ``deployment_protection_rule``.

Authenticated by ``X-Hub-Signature-256: sha256=<hex HMAC of the raw body>``; the delivery id is
``X-GitHub-Delivery``. A webhook may be configured with either content type GitHub offers:
``application/json``, or ``application/x-www-form-urlencoded``, whose body is ``payload=<JSON>``
(the signature is over the raw body either way). A push or merge to a branch asks for a
decision on ``git:<owner/repo>@<branch>``; a deployment protection rule is answered through its
``deployment_callback_url``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from gatekeeper.domain.types import ReleaseRequest
from gatekeeper.receivers import (
    COMMIT_ID,
    NAME,
    URL,
    Callback,
    CommitPeople,
    Ignored,
    Inbound,
    body_digest,
    git_target,
    header_text,
    hmac_sha256_matches,
    identities_at,
    invalid,
    list_at,
    load_json,
    malformed,
    text_at,
    unauthorized,
    urls_at,
)

EVENTS = ("ping", "push", "pull_request", "deployment_protection_rule")
# Who touched a pushed commit, in GitHub's commit objects (``name`` is a display name: never).
COMMIT_PEOPLE = ("author.username", "author.email", "committer.username", "committer.email")


FORM = "application/x-www-form-urlencoded"


def is_form(headers: Mapping[str, str]) -> bool:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower() == FORM


def form_payload(body: bytes) -> str:
    """The JSON of a form-encoded delivery: its one ``payload`` field (400 if there is none)."""
    try:
        fields = parse_qs(body.decode("latin-1"), max_num_fields=20, encoding="utf-8", errors="strict")
    except ValueError as exc:  # too many fields, or percent-escapes that are not UTF-8
        raise malformed(f"form body is not valid: {exc}") from None
    payload = fields.get("payload")
    if not payload:
        raise malformed(f"form body ({FORM}) has no payload field")
    return payload[0]


class GitHubReceiver:
    source = "github"

    def verify(self, headers: Mapping[str, str], body: bytes, secret: str) -> None:
        signature = headers.get("x-hub-signature-256")
        if not signature:
            raise unauthorized("missing X-Hub-Signature-256 header")
        if not hmac_sha256_matches(secret, body, signature):
            raise unauthorized("X-Hub-Signature-256 does not match the body")

    def delivery_id(self, headers: Mapping[str, str], body: bytes) -> str:
        return header_text(headers, "X-GitHub-Delivery") or body_digest(self.source, body)

    def parse(self, headers: Mapping[str, str], body: bytes) -> Inbound | Ignored:
        event = headers.get("x-github-event", "")
        if event not in EVENTS:
            return Ignored(f"GitHub event {event or '(none)'!r} is not handled (handled: {', '.join(EVENTS)})")
        data = load_json(form_payload(body) if is_form(headers) else body)
        if event == "ping":
            return Inbound()
        if event == "push":
            return self._push(data)
        if event == "pull_request":
            return self._pull_request(data)
        return self._protection_rule(data)

    def _push(self, data: dict[str, Any]) -> Inbound | Ignored:
        ref = text_at(data, "ref") or ""
        if not ref.startswith("refs/heads/"):
            return Ignored(f"push to {ref} is not a branch")
        if data.get("deleted") is True:
            return Ignored(f"push deleted {ref}")
        repo = text_at(data, "repository.full_name") or ""
        sha = text_at(data, "after", max_length=COMMIT_ID) or ""
        target = git_target(repo, ref.removeprefix("refs/heads/"), "ref")
        people, paths = _pushed(data, sha)
        request = ReleaseRequest(target=target, revision=sha, trigger="github-push")
        urls = urls_at(data, "repository.clone_url", "repository.ssh_url", "repository.html_url")
        return Inbound(request=request, commits=people, paths=paths, repo=repo, repo_urls=urls)

    def _pull_request(self, data: dict[str, Any]) -> Inbound | Ignored:
        action = text_at(data, "action")
        merged = isinstance(data.get("pull_request"), dict) and data["pull_request"].get("merged") is True
        if action != "closed" or not merged:
            return Ignored(f"pull_request {action} (merged: {merged}) is not a merge")
        repo = text_at(data, "pull_request.base.repo.full_name") or ""
        branch = text_at(data, "pull_request.base.ref") or ""
        sha = text_at(data, "pull_request.merge_commit_sha", max_length=COMMIT_ID) or ""
        people = CommitPeople(
            sha,
            text_at(data, "pull_request.user.login", required=False, max_length=NAME),
            text_at(data, "pull_request.merged_by.login", required=False, max_length=NAME),
            identities_at(data, "pull_request.user.login", "pull_request.merged_by.login", "sender.login"),
        )
        request = ReleaseRequest(
            target=git_target(repo, branch, "pull_request.base.ref"), revision=sha, trigger="github-merge"
        )
        return Inbound(request=request, commits=(people,), paths=None, repo=repo)

    def _protection_rule(self, data: dict[str, Any]) -> Inbound | Ignored:
        action = text_at(data, "action")
        if action != "requested":
            return Ignored(f"deployment_protection_rule {action} is not a request")
        repo = text_at(data, "repository.full_name") or ""
        ref = text_at(data, "deployment.ref", required=False) or text_at(data, "ref") or ""
        sha = (
            text_at(data, "deployment.sha", required=False, max_length=COMMIT_ID)
            or text_at(data, "sha", max_length=COMMIT_ID)
            or ""
        )
        environment = text_at(data, "environment", max_length=NAME)
        url = text_at(data, "deployment_callback_url", max_length=URL) or ""
        callback = Callback("github-deployment", url, environment)
        target = git_target(repo, ref.removeprefix("refs/heads/"), "deployment.ref")
        context = (("environment", environment or ""),)
        request = ReleaseRequest(target=target, revision=sha, trigger="github-deployment", context=context)
        return Inbound(request=request, callback=callback, repo=repo)


def _pushed(data: dict[str, Any], sha: str) -> tuple[tuple[CommitPeople, ...], tuple[str, ...]]:
    """Who touched each pushed commit, and the paths the push changed.

    The pusher and sender touched every commit they pushed. The released revision (``after``)
    holds every pushed change, so everyone who touched any pushed commit touched it."""
    pusher = text_at(data, "pusher.name", required=False, max_length=NAME)  # GitHub puts the pusher's login here
    pushed = identities_at(data, "pusher.name", "pusher.email", "sender.login")
    everyone = dict.fromkeys(pushed)
    people: list[CommitPeople] = []
    paths: set[str] = set()
    author = text_at(data, "head_commit.author.username", required=False, max_length=NAME)
    for position, commit in enumerate(list_at(data, "commits")):
        if not isinstance(commit, dict):
            raise invalid(f"commits.{position}", "expected an object")
        commit_sha = text_at(commit, "id", max_length=COMMIT_ID) or ""
        touched = identities_at(commit, *COMMIT_PEOPLE)
        everyone.update(dict.fromkeys(touched))
        login = text_at(commit, "author.username", required=False, max_length=NAME)
        if commit_sha == sha:
            author = login or author
        else:
            people.append(CommitPeople(commit_sha, login, None, (*touched, *pushed)))
        for kind in ("added", "modified", "removed"):
            paths.update(str(path) for path in list_at(commit, kind))
    everyone.update(dict.fromkeys(identities_at(data, *(f"head_commit.{path}" for path in COMMIT_PEOPLE))))
    people.append(CommitPeople(sha, author, pusher, tuple(everyone)))
    return tuple(people), tuple(sorted(paths))

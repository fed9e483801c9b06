"""Receivers give four eyes every login, username and e-mail address a payload holds for the people
who touched a commit, and never a display name (docs/four-eyes.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gatekeeper.receivers import CommitPeople, Inbound, identities_at
from gatekeeper.receivers.github import GitHubReceiver
from gatekeeper.receivers.gitlab import GitLabReceiver
from tests.integration import payloads as p

HEAD = "c" * 40
EARLIER = "b" * 40


def github(event: str, payload: dict[str, Any]) -> Inbound:
    parsed = GitHubReceiver().parse({"x-github-event": event}, json.dumps(payload).encode())
    assert isinstance(parsed, Inbound)
    return parsed


def gitlab(event: str, payload: dict[str, Any]) -> Inbound:
    parsed = GitLabReceiver().parse({"x-gitlab-event": event}, json.dumps(payload).encode())
    assert isinstance(parsed, Inbound)
    return parsed


def of(inbound: Inbound, sha: str) -> CommitPeople:
    (found,) = [person for person in inbound.commits if person.sha == sha]
    return found


def two_commit_github_push() -> dict[str, Any]:
    payload = p.github_push(sha=HEAD)
    payload["pusher"] = {"name": "Dora", "email": "dora@acme.io"}
    payload["sender"] = {"login": "dora-bot"}
    payload["commits"] = [
        {
            "id": EARLIER,
            "author": {"name": "Mallory Evil", "email": "mallory@evil.io", "username": "mallory"},
            "committer": {"name": "GitHub", "email": "noreply@github.com", "username": "web-flow"},
        },
        {
            "id": HEAD,
            "author": {"name": "Erik Example", "email": "erik@acme.io", "username": "erik"},
            "committer": {"name": "Erik Example", "email": "erik@acme.io", "username": "erik"},
        },
    ]
    payload["head_commit"] = {
        "id": HEAD,
        "author": {"name": "Erik Example", "email": "erik@acme.io", "username": "erik"},
    }
    return payload


def test_a_github_push_gives_the_head_everyone_who_touched_any_pushed_commit() -> None:
    head = of(github("push", two_commit_github_push()), HEAD)
    assert (head.author, head.merger) == ("erik", "Dora")
    assert set(head.identities) == {
        "Dora", "dora@acme.io", "dora-bot", "erik", "erik@acme.io", "mallory", "mallory@evil.io",
        "web-flow", "noreply@github.com",
    }  # fmt: skip


def test_an_earlier_pushed_commit_gets_its_own_people_and_the_pusher() -> None:
    earlier = of(github("push", two_commit_github_push()), EARLIER)
    assert earlier.author == "mallory"
    assert set(earlier.identities) == {
        "mallory", "mallory@evil.io", "web-flow", "noreply@github.com", "Dora", "dora@acme.io", "dora-bot",
    }  # fmt: skip


def test_a_github_push_never_takes_a_display_name_for_an_identity() -> None:
    payload = p.github_push(sha=HEAD)
    payload["commits"] = [{"id": HEAD, "author": {"name": "Erik Example", "email": "erik@acme.io"}}]
    payload["head_commit"] = {"id": HEAD, "author": {"name": "Erik Example"}}
    head = of(github("push", payload), HEAD)
    assert head.author is None
    assert "Erik Example" not in head.identities
    assert "erik@acme.io" in head.identities


def test_a_merged_pull_request_gives_author_merger_and_sender_logins() -> None:
    payload = p.github_merge()
    payload["sender"] = {"login": "merge-queue[bot]"}
    people = of(github("pull_request", payload), p.SHA_B)
    assert (people.author, people.merger) == ("erik", "frank")
    assert people.identities == ("erik", "frank", "merge-queue[bot]")


def test_a_gitlab_push_gives_usernames_and_addresses_but_no_author_name() -> None:
    payload = p.gitlab_push(sha=HEAD)
    payload["user_email"] = "dora@acme.io"
    payload["commits"] = [
        {"id": EARLIER, "author": {"name": "Mallory", "email": "mallory@evil.io"}},
        {"id": HEAD, "author": {"name": "erik", "email": "erik@acme.io"}},
    ]
    inbound = gitlab("Push Hook", payload)
    head = of(inbound, HEAD)
    assert (head.author, head.merger) == (None, "dora")
    assert set(head.identities) == {"dora", "dora@acme.io", "mallory@evil.io", "erik@acme.io"}
    assert set(of(inbound, EARLIER).identities) == {"mallory@evil.io", "dora", "dora@acme.io"}


def test_a_gitlab_merge_gives_the_merger_and_the_last_commits_address_not_its_name() -> None:
    payload = p.gitlab_merge()
    payload["user"]["email"] = "frank@acme.io"
    people = of(gitlab("Merge Request Hook", payload), p.SHA_B)
    assert (people.author, people.merger) == (None, "frank")
    assert people.identities == ("frank", "frank@acme.io", "erik@acme.io")


@pytest.mark.parametrize(
    "address",
    [pytest.param("[REDACTED]", id="gitlab-redacted"), pytest.param("", id="empty"), pytest.param("  ", id="blank")],
)
def test_an_address_that_is_not_one_identifies_nobody(address: str) -> None:
    assert identities_at({"user": {"username": "frank", "email": address}}, "user.username", "user.email") == ("frank",)


def test_an_identity_given_twice_is_listed_once() -> None:
    data = {"a": {"login": "erik"}, "b": {"login": "erik"}}
    assert identities_at(data, "a.login", "b.login", "c.login") == ("erik",)

"""Every event of every source as real signed HTTP requests to uvicorn; outbound calls land on
wire-level fakes of GitHub and GitLab on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.settings import Settings
from tests.integration import payloads as p
from tests.integration.conftest import MutableClock, Server, eventually, make_settings, start_server
from tests.integration.fakes import GITHUB_TOKEN, GITLAB_TOKEN, FakeApi, start_fake
from tests.integration.test_gate_api import CUTOFF, OPEN

GITHUB_SECRET = "gh-webhook-secret"
GITLAB_SECRET = "gl-webhook-token"
FLUX_SECRET = "flux-hmac-key"
ARGOCD_SECRET = "argocd-notify-token"


@pytest.fixture
def fakes() -> Iterator[tuple[FakeApi, FakeApi]]:
    github, gitlab = start_fake("github"), start_fake("gitlab")
    yield github, gitlab
    github.stop()
    gitlab.stop()


def hook_settings(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path, fakes: tuple[FakeApi, FakeApi], **extra: object
) -> Settings:
    github, gitlab = fakes
    return make_settings(
        database_url,
        *config_tree,
        tokens_file,
        GITHUB_SECRET=GITHUB_SECRET,
        GITLAB_TOKEN=GITLAB_SECRET,
        FLUX_SECRET=FLUX_SECRET,
        ARGOCD_TOKEN=ARGOCD_SECRET,
        GITHUB_API_TOKEN=GITHUB_TOKEN,
        GITLAB_API_TOKEN=GITLAB_TOKEN,
        GITHUB_API_URL=github.url,
        GITLAB_API_URL=f"{gitlab.url}/api/v4",
        PUBLIC_URL="https://gatekeeper.acme.io",
        **extra,
    )


@pytest.fixture
def hooks(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path, fakes: tuple[FakeApi, FakeApi]
) -> Iterator[Server]:
    running = start_server(hook_settings(database_url, config_tree, tokens_file, fakes), MutableClock(OPEN))
    yield running
    running.stop()


def post(server: Server, source: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    with server.client() as client:
        return client.post(f"/webhooks/{source}", content=body, headers=headers)


def release(server: Server, release_id: int) -> dict[str, Any]:
    with server.client("viewer") as client:
        return client.get(f"/v1/releases/{release_id}").json()


def github(server: Server, event: str, payload: Any, delivery: str | None = None) -> httpx.Response:
    body = p.encode(payload)
    return post(server, "github", body, p.github_headers(GITHUB_SECRET, event, body, delivery))


def test_github_ping_is_answered_200(hooks: Server) -> None:
    response = github(hooks, "ping", {"zen": "Keep it logically awesome.", "hook_id": 1})
    assert response.status_code == 200
    assert response.json()["release_id"] is None


def test_github_push_decides_records_people_and_posts_one_commit_status(
    hooks: Server, fakes: tuple[FakeApi, FakeApi]
) -> None:
    response = github(hooks, "push", p.github_push(), delivery="d-push-1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["delivery_id"] == "d-push-1"
    assert body["decision"]["verdict"] == "approve"
    assert body["decision"]["target"] == "git:acme/odoo-config@main"
    eventually(lambda: len(fakes[0].requests) == 1)
    sent = fakes[0].requests[0]
    assert sent.path == f"/repos/acme/odoo-config/statuses/{p.SHA_A}"
    assert sent.body["state"] == "success"
    assert sent.body["context"] == "gatekeeper"
    assert sent.body["target_url"] == f"https://gatekeeper.acme.io/#release-{body['release_id']}"
    assert fakes[0].errors == []
    detail = release(hooks, body["release_id"])
    assert (detail["author"], detail["merger"]) == ("erik", "dora")
    again = github(hooks, "push", p.github_push(), delivery="d-push-1")
    assert again.status_code == 200
    assert again.json() == body
    assert len(release(hooks, body["release_id"])["decisions"]) == 1
    time.sleep(0.3)
    assert len(fakes[0].requests) == 1


def test_the_same_status_is_never_posted_twice(hooks: Server, fakes: tuple[FakeApi, FakeApi]) -> None:
    github(hooks, "push", p.github_push(), delivery="d-twice-1")
    eventually(lambda: len(fakes[0].requests) == 1)
    github(hooks, "push", p.github_push(), delivery="d-twice-2")  # a new delivery, same outcome
    time.sleep(0.5)
    assert len(fakes[0].requests) == 1


def test_a_deferred_push_posts_a_pending_status(hooks: Server, fakes: tuple[FakeApi, FakeApi]) -> None:
    hooks.clock.set(CUTOFF)
    response = github(hooks, "push", p.github_push())
    assert response.json()["decision"]["verdict"] == "defer"
    eventually(lambda: len(fakes[0].requests) == 1)
    assert fakes[0].requests[0].body["state"] == "pending"
    assert "dispatch_cutoff" in fakes[0].requests[0].body["description"]


def test_a_push_that_touches_no_governed_path_is_ignored(hooks: Server) -> None:
    response = github(hooks, "push", p.github_push(files=("docs/README.md",)))
    assert response.status_code == 202
    assert response.json()["ignored"] is True
    assert "clusters/prod/*" in response.json()["reason"]


def test_a_merged_pull_request_records_author_and_merger(hooks: Server) -> None:
    response = github(hooks, "pull_request", p.github_merge())
    assert response.status_code == 200, response.text
    detail = release(hooks, response.json()["release_id"])
    assert detail["revision"] == p.SHA_B
    assert (detail["author"], detail["merger"]) == ("erik", "frank")


def test_an_unmerged_pull_request_and_unknown_events_are_202(hooks: Server) -> None:
    assert github(hooks, "pull_request", p.github_merge(action="opened", merged=False)).status_code == 202
    unknown = github(hooks, "issues", {"action": "opened"})
    assert unknown.status_code == 202
    assert "issues" in unknown.json()["reason"]


def test_a_deployment_protection_rule_is_reviewed_through_its_callback(
    hooks: Server, fakes: tuple[FakeApi, FakeApi]
) -> None:
    callback = f"{fakes[0].url}/repos/acme/odoo-config/actions/runs/77/deployment_protection_rule"
    response = github(hooks, "deployment_protection_rule", p.github_protection_rule(callback))
    assert response.status_code == 200, response.text
    eventually(lambda: len(fakes[0].requests) == 1)
    review = fakes[0].requests[0]
    assert review.path == "/repos/acme/odoo-config/actions/runs/77/deployment_protection_rule"
    assert review.body["state"] == "approved"
    assert review.body["environment_name"] == "production"
    assert fakes[0].errors == []


@pytest.fixture
def scheduled(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path, fakes: tuple[FakeApi, FakeApi]
) -> Iterator[Server]:
    """A server whose scheduler runs every 0.2 s, started in the dispatch cut-off."""
    settings = hook_settings(database_url, config_tree, tokens_file, fakes, REVIEW_INTERVAL=0.2)
    running = start_server(settings, MutableClock(CUTOFF))
    yield running
    running.stop()


def deferred_review(server: Server, fakes: tuple[FakeApi, FakeApi], run: int) -> int:
    callback = f"{fakes[0].url}/repos/acme/odoo-config/actions/runs/{run}/deployment_protection_rule"
    response = github(server, "deployment_protection_rule", p.github_protection_rule(callback), delivery=f"dpr-{run}")
    assert response.status_code == 200, response.text
    assert response.json()["decision"]["verdict"] == "defer"
    time.sleep(0.6)  # the scheduler ran a few times
    assert fakes[0].requests == []  # a deferral is not answered yet
    return int(response.json()["release_id"])


def test_a_deferred_deployment_review_is_answered_once_the_window_opens(
    scheduled: Server, fakes: tuple[FakeApi, FakeApi]
) -> None:
    release_id = deferred_review(scheduled, fakes, 78)
    scheduled.clock.set(datetime(2026, 11, 24, 15, 0, 1, tzinfo=UTC))  # the cut-off ended at 16:00 local
    eventually(lambda: len(fakes[0].requests) == 1)
    review = fakes[0].requests[0]
    assert review.path == "/repos/acme/odoo-config/actions/runs/78/deployment_protection_rule"
    assert (review.body["state"], review.body["environment_name"]) == ("approved", "production")
    assert fakes[0].errors == []
    time.sleep(0.6)
    assert len(fakes[0].requests) == 1  # answered once
    triggers = [decision["trigger"] for decision in release(scheduled, release_id)["decisions"]]
    assert triggers == ["github-deployment", "scheduler"]


def test_a_rejected_release_gets_its_deferred_review_rejected(scheduled: Server, fakes: tuple[FakeApi, FakeApi]) -> None:
    release_id = deferred_review(scheduled, fakes, 79)
    with scheduled.client("manager") as client:
        rejected = client.post(f"/v1/releases/{release_id}/reject", json={"reason": "wrong image"})
    assert rejected.status_code == 200, rejected.text
    eventually(lambda: len(fakes[0].requests) == 1)
    review = fakes[0].requests[0]
    assert review.body["state"] == "rejected"
    assert "rejected by alice: wrong image" in review.body["comment"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param(lambda body: p.github_headers("wrong-secret", "push", body), 401, id="bad-signature"),
        pytest.param(
            lambda body: {
                k: v for k, v in p.github_headers(GITHUB_SECRET, "push", body).items() if "Signature" not in k
            },
            401,
            id="missing-signature",
        ),
    ],
)
def test_github_signatures_are_checked(hooks: Server, headers: Callable[[bytes], dict[str, str]], status: int) -> None:
    body = p.encode(p.github_push())
    response = post(hooks, "github", body, headers(body))
    assert response.status_code == status
    assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        pytest.param(b'{"ref": "refs/heads/main", ', 400, None, id="malformed-json"),
        pytest.param(
            p.encode({"ref": "refs/heads/main", "after": p.SHA_A}), 422, "repository.full_name", id="missing-repo"
        ),
        pytest.param(p.encode({**p.github_push(), "after": 5}), 200, None, id="number-sha-is-text"),
        pytest.param(p.encode({**p.github_push(), "commits": "nope"}), 422, "commits", id="commits-not-a-list"),
    ],
)
def test_bad_github_payloads_name_the_field(hooks: Server, body: bytes, status: int, field: str | None) -> None:
    response = post(hooks, "github", body, p.github_headers(GITHUB_SECRET, "push", body))
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.json()["field"] == field


def test_an_oversized_webhook_is_413(hooks: Server) -> None:
    body = b'{"pad": "' + b"x" * 1_100_000 + b'"}'
    response = post(hooks, "github", body, p.github_headers(GITHUB_SECRET, "push", body))
    assert response.status_code == 413


def test_gitlab_push_and_merge_decide_and_post_statuses(hooks: Server, fakes: tuple[FakeApi, FakeApi]) -> None:
    push = p.encode(p.gitlab_push())
    response = post(hooks, "gitlab", push, p.gitlab_headers(GITLAB_SECRET, "Push Hook"))
    assert response.status_code == 200, response.text
    assert response.json()["decision"]["target"] == "git:acme/odoo-config@main"
    eventually(lambda: len(fakes[1].requests) == 1)
    sent = fakes[1].requests[0]
    assert sent.path == f"/api/v4/projects/acme%2Fodoo-config/statuses/{p.SHA_A}"
    assert sent.body["state"] == "success"
    assert fakes[1].errors == []
    merge = p.encode(p.gitlab_merge())
    merged = post(hooks, "gitlab", merge, p.gitlab_headers(GITLAB_SECRET, "Merge Request Hook"))
    assert merged.status_code == 200, merged.text
    detail = release(hooks, merged.json()["release_id"])
    assert detail["merger"] == "frank"
    opened = p.encode(p.gitlab_merge(action="open"))
    assert post(hooks, "gitlab", opened, p.gitlab_headers(GITLAB_SECRET, "Merge Request Hook")).status_code == 202
    assert post(hooks, "gitlab", push, p.gitlab_headers(GITLAB_SECRET, "Tag Push Hook")).status_code == 202


def test_gitlab_redelivery_uses_the_idempotency_key(hooks: Server) -> None:
    body = p.encode(p.gitlab_push())
    headers = {**p.gitlab_headers(GITLAB_SECRET, "Push Hook"), "Idempotency-Key": "retry-7"}
    first = post(hooks, "gitlab", body, headers)
    second = post(hooks, "gitlab", body, {**headers, "X-Gitlab-Event-UUID": "another"})
    assert first.json() == second.json()


def test_gitlab_wrong_or_missing_token_is_401(hooks: Server) -> None:
    body = p.encode(p.gitlab_push())
    assert post(hooks, "gitlab", body, p.gitlab_headers("wrong", "Push Hook")).status_code == 401
    headers = {k: v for k, v in p.gitlab_headers(GITLAB_SECRET, "Push Hook").items() if k != "X-Gitlab-Token"}
    assert post(hooks, "gitlab", body, headers).status_code == 401


def test_flux_events_map_to_the_flux_target_and_an_apply_in_a_freeze_is_a_rollback(hooks: Server) -> None:
    progressing = p.encode(p.flux_event("Progressing"))
    response = post(hooks, "flux", progressing, p.flux_headers(FLUX_SECRET, progressing))
    assert response.status_code == 200, response.text
    decision = response.json()["decision"]
    assert decision["target"] == "flux:Kustomization/odoo-prod/odoo"
    assert decision["revision"] == p.SHA_A
    hooks.clock.set(CUTOFF)
    frozen = p.encode(p.flux_event("Progressing", sha=p.SHA_B))
    assert post(hooks, "flux", frozen, p.flux_headers(FLUX_SECRET, frozen)).json()["decision"]["verdict"] == "defer"
    applied = p.encode(p.flux_event("ReconciliationSucceeded", sha=p.SHA_B))
    answer = post(hooks, "flux", applied, p.flux_headers(FLUX_SECRET, applied)).json()
    assert answer["decision"]["verdict"] == "rollback"
    assert answer["decision"]["reasons"][0]["code"] == "applied_without_approval"
    assert answer["decision"]["status"] == "applied"


def test_flux_signatures_are_checked_and_other_kinds_ignored(hooks: Server) -> None:
    body = p.encode(p.flux_event())
    assert post(hooks, "flux", body, p.flux_headers("wrong", body)).status_code == 401
    assert post(hooks, "flux", body, {"Content-Type": "application/json"}).status_code == 401
    other = p.flux_event()
    other["involvedObject"]["kind"] = "GitRepository"
    raw = p.encode(other)
    assert post(hooks, "flux", raw, p.flux_headers(FLUX_SECRET, raw)).status_code == 202


def test_argocd_sync_succeeded_applies_and_health_degraded_rolls_back(hooks: Server) -> None:
    gate = {"target": "argocd:odoo-prod", "revision": p.SHA_A}
    with hooks.client("hook") as client:
        assert client.post("/v1/gate", json=gate).json()["verdict"] == "approve"
    synced = p.encode(p.argocd_event("sync-succeeded"))
    answer = post(hooks, "argocd", synced, p.argocd_headers(ARGOCD_SECRET)).json()
    assert answer["decision"]["status"] == "applied"
    assert answer["decision"]["verdict"] == "approve"
    degraded = p.encode(p.argocd_event("health-degraded"))
    answer = post(hooks, "argocd", degraded, p.argocd_headers(ARGOCD_SECRET)).json()
    assert answer["decision"]["verdict"] == "rollback"
    assert answer["decision"]["reasons"][0]["code"] == "unhealthy"


def test_argocd_token_is_checked_and_unknown_events_ignored(hooks: Server) -> None:
    body = p.encode(p.argocd_event("sync-succeeded"))
    assert post(hooks, "argocd", body, p.argocd_headers("wrong")).status_code == 401
    assert post(hooks, "argocd", body, {"Content-Type": "application/json"}).status_code == 401
    other = p.encode(p.argocd_event("app-created"))
    assert post(hooks, "argocd", other, p.argocd_headers(ARGOCD_SECRET)).status_code == 202


def test_a_source_whose_secret_is_unset_answers_404(server: Server) -> None:
    body = p.encode(p.github_push())
    response = post(server, "github", body, p.github_headers(GITHUB_SECRET, "push", body))
    assert response.status_code == 404
    assert post(server, "bitbucket", body, {}).status_code == 404


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    source=st.sampled_from(["github", "gitlab", "flux", "argocd"]),
    body=st.binary(max_size=200)
    | st.builds(lambda d: p.encode(d), st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4)),
    event=st.sampled_from(["push", "pull_request", "Push Hook", "Merge Request Hook", "ping"]),
)
def test_signed_arbitrary_bodies_over_http_never_get_a_5xx(hooks: Server, source: str, body: bytes, event: str) -> None:
    headers = {
        "github": p.github_headers(GITHUB_SECRET, event, body),
        "gitlab": p.gitlab_headers(GITLAB_SECRET, event),
        "flux": p.flux_headers(FLUX_SECRET, body),
        "argocd": p.argocd_headers(ARGOCD_SECRET),
    }[source]
    response = post(hooks, source, body, headers)
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text

"""Edges (issue 14), through real uvicorn on both backends: every bad input a clear 4xx naming
what is wrong, never a 500 or a 503 with a driver's text; real payloads understood."""

from __future__ import annotations

import http.client
import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration import payloads as p
from tests.integration.conftest import MutableClock, Server, make_settings, start_server

GITHUB_SECRET = "gh-edge-secret"
GITLAB_SECRET = "gl-edge-token"
FLUX_SECRET = "flux-edge-key"
ARGOCD_SECRET = "argocd-edge-token"


@pytest.fixture
def edges(database_url: str, config_tree: tuple[Path, Path], tokens_file: Path) -> Iterator[Server]:
    """A server with every inbound source enabled and no outbound notifier."""
    settings = make_settings(
        database_url,
        *config_tree,
        tokens_file,
        GITHUB_SECRET=GITHUB_SECRET,
        GITLAB_TOKEN=GITLAB_SECRET,
        FLUX_SECRET=FLUX_SECRET,
        ARGOCD_TOKEN=ARGOCD_SECRET,
    )
    running = start_server(settings, MutableClock())
    yield running
    running.stop()


def post(server: Server, source: str, body: bytes, headers: dict[str, str | bytes]) -> httpx.Response:
    with server.client() as client:
        return client.post(f"/webhooks/{source}", content=body, headers=headers)


# 1. Signatures with bytes that are not ASCII ------------------------------------------------


@pytest.mark.parametrize(
    ("source", "header"),
    [
        pytest.param("github", "X-Hub-Signature-256", id="github"),
        pytest.param("flux", "X-Signature", id="flux"),
    ],
)
@pytest.mark.parametrize("value", [b"sha256=\xe9", b"sha256=\xff\xfe" + b"a" * 62, "sha256=é".encode()])
def test_a_signature_with_non_ascii_bytes_is_401(edges: Server, source: str, header: str, value: bytes) -> None:
    body = p.encode(p.github_push() if source == "github" else p.flux_event())
    headers: dict[str, str | bytes] = {"Content-Type": "application/json", header: value}
    if source == "github":
        headers |= {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-non-ascii"}
    response = post(edges, source, body, headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "unauthorized"


@pytest.mark.parametrize(
    ("source", "header", "value"),
    [
        pytest.param("gitlab", "X-Gitlab-Token", b"\xe9\xff", id="gitlab"),
        pytest.param("argocd", "Authorization", b"Bearer \xe9\xff", id="argocd"),
    ],
)
def test_a_token_with_non_ascii_bytes_is_401(edges: Server, source: str, header: str, value: bytes) -> None:
    headers: dict[str, str | bytes] = {"Content-Type": "application/json", header: value, "X-Gitlab-Event": "Push Hook"}
    response = post(edges, source, b"{}", headers)
    assert response.status_code == 401, response.text


# 2. Bounded, total JSON parsing ----------------------------------------------------------------

HOSTILE_JSON = [
    pytest.param(b"[" * 100_000, "levels deep", id="100000-nested-arrays"),
    pytest.param(b'{"a":' * 65 + b"1" + b"}" * 65, "levels deep", id="65-nested-objects"),
    pytest.param(b'{"x": ' + b"7" * 5000 + b"}", "integer of 5000 digits", id="5000-digit-integer"),
    pytest.param(b'{"x": "\\ud800"}', "lone surrogate", id="lone-high-surrogate"),
    pytest.param(b'{"x": ["\\udc00"]}', "lone surrogate", id="lone-low-surrogate"),
    pytest.param(b'{"x": NaN}', "NaN", id="nan"),
    pytest.param(b'{"x": 1e999}', "out of range", id="infinite-number"),
    pytest.param(b'{"x": "\xff"}', "not UTF-8", id="not-utf8"),
]


def signed(source: str, body: bytes, event: str) -> dict[str, str | bytes]:
    headers: dict[str, str] = {
        "github": p.github_headers(GITHUB_SECRET, event, body),
        "gitlab": p.gitlab_headers(GITLAB_SECRET, event),
        "flux": p.flux_headers(FLUX_SECRET, body),
        "argocd": p.argocd_headers(ARGOCD_SECRET),
    }[source]
    return dict(headers)


@pytest.mark.parametrize(("body", "problem"), HOSTILE_JSON)
@pytest.mark.parametrize(
    ("source", "event"),
    [("github", "push"), ("gitlab", "Push Hook"), ("flux", ""), ("argocd", "")],
)
def test_hostile_json_in_a_signed_webhook_is_400_naming_the_problem(
    edges: Server, source: str, event: str, body: bytes, problem: str
) -> None:
    with edges.client() as client:
        response = client.post(f"/webhooks/{source}", content=body, headers=signed(source, body, event))
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "malformed_payload"
        assert problem in response.json()["message"]
        assert client.get("/healthz").status_code == 200  # the connection survived


@pytest.mark.parametrize(("body", "problem"), HOSTILE_JSON)
@pytest.mark.parametrize(
    ("path", "role"),
    [("/v1/gate", "hook"), ("/v1/releases/1/approve", "manager"), ("/v1/releases/1/reject", "manager")],
)
def test_hostile_json_in_an_api_body_is_400_naming_the_problem(
    edges: Server, path: str, role: str, body: bytes, problem: str
) -> None:
    with edges.client(role) as client:
        response = client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "malformed_json"
        assert problem in response.json()["message"]
        assert client.get("/healthz").status_code == 200


FUZZ_KEYS = [
    "ref", "after", "repository", "full_name", "commits", "id", "author", "username", "pull_request",
    "merged", "action", "base", "merge_commit_sha", "deployment", "sha", "environment",
    "deployment_callback_url", "project", "path_with_namespace", "object_attributes", "target_branch",
    "involvedObject", "kind", "namespace", "name", "metadata", "revision", "reason", "event", "app",
]  # fmt: skip


def fuzz_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(10 if depth < 4 else 6)
    if choice == 0:
        return rng.choice([None, True, False, 0, -1, 2**63, 10**30, 1.5, -0.0])
    if choice == 1:
        return rng.choice(["", "main", "refs/heads/main", p.SHA_A, "x" * rng.randrange(300, 700), "a\x00b"])
    if choice == 2:
        return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0, 0x2FFFF)])) for _ in range(8))
    if choice == 3:
        return rng.choice(["Kustomization", "HelmRelease", "sync-succeeded", "merge", "closed", "odoo-prod"])
    if choice in (4, 5):
        return rng.randrange(-(10**25), 10**25)
    if choice in (6, 7):
        return {rng.choice(FUZZ_KEYS): fuzz_value(rng, depth + 1) for _ in range(rng.randrange(6))}
    return [fuzz_value(rng, depth + 1) for _ in range(rng.randrange(4))]


def fuzz_body(rng: random.Random, source: str) -> bytes:
    """One of: random bytes, random JSON, a real payload truncated, nested deeply, or hostile."""
    real = {
        "github": p.github_push(),
        "gitlab": p.gitlab_push(),
        "flux": p.flux_event(),
        "argocd": p.argocd_event("sync-running"),
    }[source]
    kind = rng.choice([0, 1, 2, 3, 5])
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 400))
    if kind == 1:
        return json.dumps(fuzz_value(rng)).encode()
    if kind == 2:
        whole = p.encode(real)
        return whole[: rng.randrange(len(whole))]
    if kind == 3:
        depth = rng.choice([63, 64, 65, 1000, 100_000])
        opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
        return opener * depth + (b"1" + closer * depth if rng.random() < 0.5 else b"")
    if kind == 4:
        mutated = dict(real)
        mutated[rng.choice(list(mutated))] = fuzz_value(rng)
        return p.encode(mutated)
    return rng.choice(HOSTILE_JSON).values[0]  # type: ignore[no-any-return]


FUZZ_EVENTS = {
    "github": ["push", "pull_request", "deployment_protection_rule", "ping"],
    "gitlab": ["Push Hook", "Merge Request Hook"],
    "flux": [""],
    "argocd": [""],
}


@pytest.mark.parametrize("source", ["github", "gitlab", "flux", "argocd"])
def test_200_signed_fuzzed_bodies_never_get_a_5xx_and_keep_the_connection(edges: Server, source: str) -> None:
    rng = random.Random(f"edges-{source}")  # reproducible
    url = httpx.URL(edges.url)
    connection = http.client.HTTPConnection(url.host, url.port, timeout=30)
    counts: Counter[int] = Counter()
    try:
        connection.connect()
        sock = connection.sock
        for number in range(200):
            body = fuzz_body(rng, source)
            headers = {k: str(v) for k, v in signed(source, body, rng.choice(FUZZ_EVENTS[source])).items()}
            connection.request("POST", f"/webhooks/{source}", body=body, headers=headers)
            response = connection.getresponse()
            text = response.read()
            counts[response.status] += 1
            assert response.status < 500, (number, body[:200], text[:500])
            assert b"Traceback" not in text
            assert connection.sock is sock, f"the server closed the connection after request {number}"
        ping = p.encode({"zen": "Keep it logically awesome.", "hook_id": 1})
        connection.request("POST", "/webhooks/github", body=ping, headers=dict(signed("github", ping, "ping")))
        after = connection.getresponse()
        after.read()
        assert after.status == 200 if source == "github" else after.status in (200, 404)
        assert connection.sock is sock
    finally:
        connection.close()
    print(f"{source}: status counts over 200 signed fuzzed bodies: {dict(sorted(counts.items()))}")

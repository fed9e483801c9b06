"""Bad input gets a clear error naming the field, never a 500 or a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import MutableClock, Server, make_settings, start_server


@pytest.mark.parametrize(
    ("body", "status", "error", "field"),
    [
        pytest.param(b'{"target": "argocd:odoo-prod", "revision": ', 400, "malformed_json", None, id="malformed-json"),
        pytest.param(
            b'{"target": "argocd:odoo-prod", "revision": 5}',
            422,
            "invalid_request",
            "revision",
            id="revision-not-a-string",
        ),
        pytest.param(
            b'{"target": ["argocd:odoo-prod"], "revision": "a"}',
            422,
            "invalid_request",
            "target",
            id="target-not-a-string",
        ),
        pytest.param(b'{"revision": "a"}', 422, "invalid_request", "target", id="target-missing"),
        pytest.param(
            b'{"target": "odoo-prod", "revision": "a"}', 422, "invalid_request", "target", id="unknown-target-format"
        ),
        pytest.param(
            b'{"target": "argocd:odoo-prod", "revision": "a", "colour": 1}',
            422,
            "invalid_request",
            "colour",
            id="unknown-field",
        ),
        pytest.param(
            b'{"target": "argocd:odoo-prod", "revision": "a", "context": {"namespace": 3}}',
            422,
            "invalid_request",
            "context.namespace",
            id="nested-wrong-type",
        ),
        pytest.param(b"[]", 422, "invalid_request", None, id="not-an-object"),
        pytest.param(b"", 422, "invalid_request", None, id="empty"),
        pytest.param(
            b'{"target": "argocd:odoo-prod", "revision": "a\\u0000b"}', 422, "invalid_request", "revision", id="nul"
        ),
        pytest.param(
            b'{"target": "argocd:odoo-prod", "revision": "a", "context": {"cluster": "x\\u0007"}}',
            422,
            "invalid_request",
            "context.cluster",
            id="control-character-in-context",
        ),
        pytest.param(
            b'{"target": "argocd:odoo-prod", "revision": "a", "trigger": "approval:alice"}',
            422,
            "invalid_request",
            "trigger",
            id="trigger-posing-as-an-approval",
        ),
        pytest.param(
            b'{"target": "argocd:odoo-prod", "revision": "a", "trigger": "scheduler"}',
            422,
            "invalid_request",
            "trigger",
            id="trigger-posing-as-the-scheduler",
        ),
        pytest.param(
            b'{"target": "argocd:odoo-prod", "revision": "a", "trigger": "argocd-sync-succeeded"}',
            422,
            "invalid_request",
            "trigger",
            id="trigger-posing-as-a-webhook",
        ),
    ],
)
def test_bad_gate_bodies_get_a_clear_error_naming_the_field(
    server: Server, body: bytes, status: int, error: str, field: str | None
) -> None:
    with server.client("hook") as client:
        response = client.post("/v1/gate", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["error"] == error
    assert payload["field"] == field
    assert "Traceback" not in response.text
    if field:
        assert field in payload["message"]


def test_a_body_that_is_not_json_says_a_json_object_is_required(server: Server) -> None:
    with server.client("hook") as client:
        body = b'{"target": "argocd:odoo-prod", "revision": "a"}'
        response = client.post("/v1/gate", content=body, headers={"Content-Type": "text/plain"})
    assert response.status_code == 422
    assert response.json()["message"] == "body: a JSON object is required (Content-Type: application/json)"


def test_break_glass_must_be_a_boolean_not_a_truthy_string(server: Server) -> None:
    with server.client("hook") as client:
        release_id = client.post("/v1/gate", json={"target": "argocd:odoo-prod", "revision": "bg"}).json()["release_id"]
    with server.client("breakglass") as client:
        response = client.post(f"/v1/releases/{release_id}/approve", json={"reason": "x", "break_glass": "yes"})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "break_glass"


def test_a_body_over_the_limit_is_refused_with_413(server: Server) -> None:
    oversized = b'{"target": "argocd:odoo-prod", "revision": "' + b"a" * 1_100_000 + b'"}'
    with server.client("hook") as client:
        response = client.post("/v1/gate", content=oversized)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_max_body_bytes_sets_the_limit(tmp_path: Path, config_tree: tuple[Path, Path], tokens_file: Path) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'limit.db'}", *config_tree, tokens_file, MAX_BODY_BYTES=100)
    running = start_server(settings, MutableClock())
    try:
        fits = b'{"target": "argocd:odoo-prod", "revision": "abc"}'
        with running.client("hook") as client:
            fitting = client.post("/v1/gate", content=fits)
            assert fitting.status_code == 200, fitting.text
            too_large = client.post("/v1/gate", content=fits[:-2] + b" " * 100 + b'"}')
        assert too_large.status_code == 413
        assert too_large.json()["message"] == "request body exceeds 100 bytes"
    finally:
        running.stop()


def test_a_chunked_body_over_the_limit_is_refused_with_413(server: Server) -> None:
    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(40):
            yield b"x" * 32_768

    with server.client("hook") as client:
        response = client.post("/v1/gate", content=chunks())
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        pytest.param(
            "/v1/status", {"target": "argocd:odoo-prod", "at": "2026-11-24T10:00:00"}, "at", id="instant-without-offset"
        ),
        pytest.param("/v1/status", {"target": "argocd:odoo-prod", "at": "tomorrow"}, "at", id="instant-garbage"),
        pytest.param("/v1/status", {"target": "nope"}, "target", id="status-bad-target"),
        pytest.param(
            "/v1/windows", {"target": "argocd:odoo-prod", "from": "2026-11-24T00:00:00Z"}, "to", id="windows-missing-to"
        ),
        pytest.param(
            "/v1/windows",
            {"target": "argocd:odoo-prod", "from": "2026-11-25T00:00:00Z", "to": "2026-11-24T00:00:00Z"},
            "to",
            id="windows-reversed",
        ),
        pytest.param("/v1/releases", {"cursor": "abc"}, "cursor", id="bad-cursor"),
        pytest.param("/v1/releases", {"limit": "0"}, "limit", id="bad-limit"),
    ],
)
def test_bad_query_parameters_are_422_naming_the_parameter(
    server: Server, path: str, params: dict[str, str], field: str
) -> None:
    with server.client("viewer") as client:
        response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_unknown_routes_and_releases_are_404_in_the_error_shape(server: Server) -> None:
    with server.client("viewer") as client:
        assert client.get("/v1/nothing").json()["error"] == "not_found"
        missing = client.get("/v1/releases/999999")
    assert missing.status_code == 404
    assert set(missing.json()) == {"error", "message", "field"}

"""Configuration reload: a broken set never replaces a good one, and never approves."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.integration.conftest import MutableClock, Server, make_settings, start_server
from tests.integration.test_gate_api import OPEN, gate

BROKEN = """\
apiVersion: gatekeeper/v1
kind: ReleasePolicy
metadata: {name: broken}
spec:
  targets: ["argocd:other*"]
  calendar:
    deny:
      - {cron: "0 14 * * 1-5", duration: 2 hours}
"""


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def readiness(server: Server) -> httpx.Response:
    with server.client() as client:
        return client.get("/readyz")


def test_a_broken_policy_dropped_in_keeps_the_last_good_set_and_reports_file_and_line(
    server: Server, config_tree: tuple[Path, Path]
) -> None:
    server.clock.set(OPEN)
    before = gate(server, "r1")
    (config_tree[0] / "zz-broken.yaml").write_text(BROKEN)
    wait_for(lambda: readiness(server).json()["config"]["status"] == "stale")
    ready = readiness(server)
    assert ready.status_code == 200
    errors = ready.json()["config"]["errors"]
    assert any(error.startswith(f"{config_tree[0]}/zz-broken.yaml:8: ") for error in errors), errors
    after = gate(server, "r2")
    assert after["verdict"] == "approve"
    assert after["policy_hash"] == before["policy_hash"]
    (config_tree[0] / "zz-broken.yaml").unlink()
    wait_for(lambda: readiness(server).json()["config"]["status"] == "ok")


def test_a_fixed_policy_is_picked_up_without_a_restart(server: Server, config_tree: tuple[Path, Path]) -> None:
    server.clock.set(OPEN)
    assert gate(server, "n1", target="argocd:billing")["reasons"][0]["code"] == "no_policy"
    (config_tree[0] / "billing.yaml").write_text(
        "apiVersion: gatekeeper/v1\nkind: ReleasePolicy\nmetadata: {name: billing}\n"
        "spec:\n  targets: ['argocd:billing']\n"
    )
    wait_for(lambda: gate(server, "n1", target="argocd:billing")["verdict"] == "approve")


def test_a_cold_start_on_a_broken_set_is_not_ready_and_defers_every_gate_call(
    database_url: str, config_tree: tuple[Path, Path], tokens_file: Path
) -> None:
    (config_tree[0] / "zz-broken.yaml").write_text(BROKEN)
    running = start_server(make_settings(database_url, *config_tree, tokens_file), MutableClock())
    try:
        ready = readiness(running)
        assert ready.status_code == 503
        assert ready.json()["config"]["status"] == "invalid"
        body = gate(running, "x1")
        assert body["verdict"] == "defer"
        assert {reason["code"] for reason in body["reasons"]} == {"config_invalid"}
        assert body["not_before"] == "2026-11-24T09:05:00Z"
        with running.client("viewer") as client:
            status = client.get("/v1/status", params={"target": "argocd:odoo-prod"})
        assert status.status_code == 503
        assert status.json()["error"] == "config_invalid"
    finally:
        running.stop()

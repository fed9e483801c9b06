"""``gatekeeper gate``, the hook Job's client, as a real process against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.conftest import Server, decisions_of, eventually, free_port, token_of
from tests.integration.test_gate_api import CUTOFF, OPEN, gate

GATEKEEPER = str(Path(sys.executable).with_name("gatekeeper"))


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gatekeeper.db'}"


def run_gate(server_url: str, *args: str, token: str | None = "hook", wait: str = "0s") -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if key != "GATEKEEPER_TOKEN"}
    if token:
        env["GATEKEEPER_TOKEN"] = token_of(token)
    command = [
        GATEKEEPER,
        "gate",
        "--server",
        server_url,
        "--wait",
        wait,
        "--interval",
        "1s",
        "--timezone",
        "Europe/Berlin",
        *args,
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_gate_exits_0_at_once_when_approved(server: Server) -> None:
    server.clock.set(OPEN)
    process = run_gate(server.url, "--target", "argocd:odoo-prod", "--revision", "g1")
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "approve" in out


def test_gate_waits_through_a_deferral_and_exits_0_when_the_window_opens(server: Server) -> None:
    server.clock.set(CUTOFF)
    process = run_gate(server.url, "--target", "argocd:odoo-prod", "--revision", "g2", wait="60s")
    eventually(lambda: decisions_of(server, "argocd:odoo-prod", "g2") >= 1)  # it polled and was deferred
    assert process.poll() is None
    server.clock.set(datetime(2026, 11, 24, 15, 0, tzinfo=UTC))
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "dispatch_cutoff" in out
    assert "not before: 2026-11-24T15:00:00Z (16:00 Europe/Berlin)" in out


def test_gate_exits_1_when_the_wait_runs_out(server: Server) -> None:
    server.clock.set(CUTOFF)
    process = run_gate(server.url, "--target", "argocd:odoo-prod", "--revision", "g3", wait="2s")
    _, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "wait ran out" in err


def test_gate_exits_3_when_its_revision_is_superseded(server: Server) -> None:
    server.clock.set(CUTOFF)
    gate(server, "g4")
    gate(server, "g5")
    process = run_gate(server.url, "--target", "argocd:odoo-prod", "--revision", "g4")
    process.communicate(timeout=30)
    assert process.returncode == 3


def test_gate_exits_4_when_the_token_is_refused(server: Server) -> None:
    process = run_gate(server.url, "--target", "argocd:odoo-prod", "--revision", "g6", token="viewer")
    _, err = process.communicate(timeout=30)
    assert process.returncode == 4
    assert "403" in err


def test_gate_exits_5_when_the_server_never_answers() -> None:
    process = run_gate(f"http://127.0.0.1:{free_port()}", "--target", "argocd:odoo-prod", "--revision", "g7", wait="3s")
    _, err = process.communicate(timeout=30)
    assert process.returncode == 5
    assert "unreachable" in err


def test_gate_reads_its_token_from_a_file(server: Server, tmp_path: Path) -> None:
    server.clock.set(OPEN)
    token_file = tmp_path / "token"
    token_file.write_text(token_of("hook") + "\n")
    process = run_gate(
        server.url, "--target", "argocd:odoo-prod", "--revision", "g8", "--token-file", str(token_file), token=None
    )
    process.communicate(timeout=30)
    assert process.returncode == 0

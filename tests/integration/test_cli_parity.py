"""The API's status and windows answer exactly what the offline CLI prints for the same files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Server

GATEKEEPER = str(Path(sys.executable).with_name("gatekeeper"))


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The calendar answers do not touch the database: one backend is enough here."""
    return f"sqlite:///{tmp_path / 'gatekeeper.db'}"


def cli(*args: str) -> tuple[int, dict]:
    done = subprocess.run([GATEKEEPER, *args, "--json"], capture_output=True, text=True, timeout=60)
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize(
    "at",
    [
        pytest.param("2026-11-24T09:00:00Z", id="open-business-hours"),
        pytest.param("2026-11-24T13:30:00Z", id="dispatch-cutoff"),
        pytest.param("2026-11-28T12:00:00+01:00", id="saturday"),
        pytest.param("2026-12-25T10:00:00+01:00", id="christmas-holiday"),
        pytest.param("2027-03-28T01:30:00Z", id="spring-forward-night"),
    ],
)
@pytest.mark.parametrize("target", ["argocd:odoo-prod", "argocd:odoo-staging", "argocd:billing"])
def test_status_over_http_equals_the_offline_cli(
    server: Server, config_tree: tuple[Path, Path], at: str, target: str
) -> None:
    code, offline = cli(
        "status", "--target", target, "--at", at, "--policies", str(config_tree[0]), "--calendars", str(config_tree[1])
    )
    with server.client("viewer") as client:
        online = client.get("/v1/status", params={"target": target, "at": at}).json()
    assert online == offline
    assert code == (1 if offline["closed"] else 0)


@pytest.mark.parametrize("target", ["argocd:odoo-prod", "argocd:billing"])
def test_windows_over_http_equal_the_offline_cli(server: Server, config_tree: tuple[Path, Path], target: str) -> None:
    span = ("2026-11-20T00:00:00+01:00", "2026-12-31T00:00:00+01:00")
    code, offline = cli(
        "windows",
        "--target",
        target,
        "--from",
        span[0],
        "--to",
        span[1],
        "--policies",
        str(config_tree[0]),
        "--calendars",
        str(config_tree[1]),
    )
    with server.client("viewer") as client:
        online = client.get("/v1/windows", params={"target": target, "from": span[0], "to": span[1]}).json()
    assert code == 0
    assert online == offline
    assert online["closed"]

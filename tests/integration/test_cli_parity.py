"""The API's status and windows answer exactly what the offline CLI prints for the same files.

One server and one batch of CLI processes for the module: the processes run side by side (each
costs a Python start-up), and each case is still its own test."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.conftest import MutableClock, Server, make_settings, start_server, write_config, write_tokens

GATEKEEPER = str(Path(sys.executable).with_name("gatekeeper"))

INSTANTS = {
    "open-business-hours": "2026-11-24T09:00:00Z",
    "dispatch-cutoff": "2026-11-24T13:30:00Z",
    "saturday": "2026-11-28T12:00:00+01:00",
    "christmas-holiday": "2026-12-25T10:00:00+01:00",
    "spring-forward-night": "2027-03-28T01:30:00Z",
}
STATUS_TARGETS = ["argocd:odoo-prod", "argocd:odoo-staging", "argocd:billing"]
WINDOW_TARGETS = ["argocd:odoo-prod", "argocd:billing"]
SPAN = ("2026-11-20T00:00:00+01:00", "2026-12-31T00:00:00+01:00")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("parity")
    policies, calendars = write_config(folder)
    return policies, calendars, write_tokens(folder)


@pytest.fixture(scope="module")
def parity_server(tree: tuple[Path, Path, Path]) -> Iterator[Server]:
    """The calendar answers do not touch the database: one backend is enough here."""
    policies, calendars, tokens = tree
    running = start_server(
        make_settings(f"sqlite:///{policies.parent / 'gk.db'}", policies, calendars, tokens), MutableClock()
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def offline(tree: tuple[Path, Path, Path]) -> dict[tuple[str, str, str], tuple[int, dict]]:
    """Every case's CLI answer (exit code, JSON), the processes run side by side."""
    files = ["--policies", str(tree[0]), "--calendars", str(tree[1]), "--json"]
    commands = {
        ("status", target, at): ["status", "--target", target, "--at", at]
        for target in STATUS_TARGETS
        for at in INSTANTS.values()
    }
    commands |= {
        ("windows", target, ""): ["windows", "--target", target, "--from", SPAN[0], "--to", SPAN[1]]
        for target in WINDOW_TARGETS
    }

    def run(args: list[str]) -> tuple[int, dict]:
        done = subprocess.run([GATEKEEPER, *args, *files], capture_output=True, text=True, timeout=120)
        return done.returncode, json.loads(done.stdout)

    with ThreadPoolExecutor(len(commands)) as pool:
        answers = dict(zip(commands, pool.map(run, commands.values()), strict=True))
    return answers


@pytest.mark.parametrize("at", list(INSTANTS.values()), ids=list(INSTANTS))
@pytest.mark.parametrize("target", STATUS_TARGETS)
def test_status_over_http_equals_the_offline_cli(parity_server: Server, offline: dict, at: str, target: str) -> None:
    code, answer = offline[("status", target, at)]
    with parity_server.client("viewer") as client:
        online = client.get("/v1/status", params={"target": target, "at": at}).json()
    assert online == answer
    assert code == (1 if answer["closed"] else 0)


@pytest.mark.parametrize("target", WINDOW_TARGETS)
def test_windows_over_http_equal_the_offline_cli(parity_server: Server, offline: dict, target: str) -> None:
    code, answer = offline[("windows", target, "")]
    with parity_server.client("viewer") as client:
        online = client.get("/v1/windows", params={"target": target, "from": SPAN[0], "to": SPAN[1]}).json()
    assert code == 0
    assert online == answer
    assert online["closed"]
